"""Parallel reading: an ordered, bounded parallel map, and the process-wide thread pools.

:func:`ordered_map` gives results back in input order, with at most ``window`` tasks (and at
most ``budget`` estimated bytes) in flight; stopping early cancels what has not started.
:func:`shared_pool` hands out long-lived pools created on first use, one per purpose (range
requests of parquet reads, JSONL block parsing), so that every read shares them instead of
each module keeping its own global and lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map", "shared_pool"]

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
