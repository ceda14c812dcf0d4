"""Parallel reading: an ordered, bounded parallel map, and the process-wide thread pools.

:func:`ordered_map` gives results back in input order, with at most ``window`` tasks (and at
most ``budget`` estimated bytes) in flight; stopping early cancels what has not started.
:func:`shared_pool` hands out long-lived pools created on first use, one per purpose (range
requests of parquet reads, JSONL block parsing), so that every read shares them instead of
each module keeping its own global and lock.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["ordered_map", "read_ahead", "shared_pool"]

T = TypeVar("T")
R = TypeVar("R")

_POOLS: dict[str, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(name: str, *, max_workers: int) -> ThreadPoolExecutor:
    """The process-wide pool for ``name``, created on first use (threads ``lakekit-<name>``).

    ``max_workers`` applies when the pool is created; later calls get the same pool. Tasks
    on a shared pool must not wait for other tasks of the same pool (no nesting).

    Examples
    --------
    >>> shared_pool("doc", max_workers=2) is shared_pool("doc", max_workers=2)
    True
    """
    with _POOLS_LOCK:
        pool = _POOLS.get(name)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"lakekit-{name}")
            _POOLS[name] = pool
        return pool


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    window: int | None = None,
    cost: Callable[[T], int] | None = None,
    budget: int | None = None,
) -> Generator[R, None, None]:
    """Apply ``fn`` to ``items`` on a thread pool, yielding results in input order.

    At most ``window`` tasks (default ``2 * workers``) are submitted ahead of the
    consumer, and, when ``cost`` and ``budget`` are given, the summed cost of tasks in
    flight stays within ``budget`` (a single task above it still runs, alone). Closing
    the generator cancels tasks that have not started and waits for running ones.
    """
    workers = max(1, workers)
    window = max(1, window or 2 * workers)
    if workers == 1 and window == 1:
        for item in items:
            yield fn(item)
        return
    it = iter(items)
    held: list[T] = []  # an item taken from ``it`` but not yet submitted (over budget)
    pending: deque[tuple[Future[R], int]] = deque()
    in_flight = 0
    exhausted = False
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lakekit") as pool:
        try:
            while True:
                while not exhausted and len(pending) < window:
                    if held:
                        item = held.pop()
                    else:
                        try:
                            item = next(it)
                        except StopIteration:
                            exhausted = True
                            break
                    c = cost(item) if cost else 0
                    if budget is not None and pending and in_flight + c > budget:
                        held.append(item)  # wait until the oldest result is consumed
                        break
                    pending.append((pool.submit(fn, item), c))
                    in_flight += c
                if not pending:
                    return
                future, c = pending.popleft()
                result = future.result()
                in_flight -= c
                yield result
        finally:
            for future, _ in pending:
                future.cancel()


def read_ahead(items: Iterator[T], *, depth: int = 1,
               name: str = "lakekit-read-ahead") -> Generator[T, None, None]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead.

    The caller's work on one item overlaps with producing the next (a JSONL block's
    decompression, a training loader's next chunk). An error in the thread is raised in
    the caller; closing the returned generator stops and joins the thread (every wait is
    bounded).
    """
    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((0, item)):
                    return
            put((1, None))
        except BaseException as exc:
            put((2, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, item = q.get(timeout=1.0)
            except queue.Empty:
                if not thread.is_alive() and q.empty():
                    raise RuntimeError(f"the {name} thread stopped unexpectedly") from None
                continue
            if kind == 0:
                yield item
            elif kind == 1:
                return
            else:
                raise item
    finally:
        stop.set()
        while not q.empty():
            try:
                q.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=60)
