"""An ordered, bounded parallel map: results come back in input order, at most ``window``
tasks (and at most ``budget`` estimated bytes) are in flight, and stopping early cancels
what has not started.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


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
