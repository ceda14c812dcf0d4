"""Reading one consumer's batches: positions -> (unit, row) -> rows of resident units.

A consumer is one rank (or one DataLoader worker of a rank). It walks its batches in
order; each batch is a list of epoch positions, mapped to (unit, row) by the
:class:`~lakekit.train.order.EpochOrder`. Units are read when first needed, a few ahead on a
small thread pool, only the columns asked for, and dropped as soon as the epoch has moved
past the last of their rows, so at most about a window of rows plus a few units is resident.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from lakekit.errors import DataChangedError
from lakekit.train.order import EpochOrder, Segment
from lakekit.train.units import Plan

__all__ = ["BatchReader"]

LOOKAHEAD_BATCHES = 32  # batches planned ahead, to know which units to prefetch


class BatchReader:
    """Yield the tables of the given batches (lists of epoch positions), in order.

    Parameters
    ----------
    plan, order
        The units and the epoch's order.
    read_unit
        Reads one unit (planning index) as a table of exactly ``plan.rows[u]`` rows.
    prefetch
        Units read ahead of need (and threads reading them).
    """

    def __init__(self, plan: Plan, order: EpochOrder, read_unit: Callable[[int], pa.Table],
                 *, prefetch: int = 2, describe_unit: Callable[[int], str]) -> None:
        self._plan = plan
        self._order = order
        self._read_unit = read_unit
        self._describe = describe_unit
        self._prefetch = max(int(prefetch), 1)
        self._segments: dict[int, Segment] = {}
        self._resident: dict[int, pa.Table] = {}
        self._pending: dict[int, Future[pa.Table]] = {}
        self._release: list[tuple[float, int]] = []  # (threshold key, unit)
        # where each unit's rows end, in key space: all its keys are below this
        pos_of = np.empty(len(plan.rows), dtype=np.int64)
        pos_of[order.perm] = np.arange(len(order.perm))
        if order.shuffle:
            self._ends = order.offsets[:-1][pos_of].astype(np.float64) + order.window
        else:
            self._ends = order.offsets[1:][pos_of].astype(np.float64)

    # -- positions -> (unit, row, key) ----------------------------------------------------
    def _segment(self, m: int) -> Segment:
        seg = self._segments.get(m)
        if seg is None:
            seg = self._order.segment(m)
            self._segments[m] = seg
            while len(self._segments) > 4:
                self._segments.pop(min(self._segments))
        return seg

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(units, rows) of sorted-or-wrapped ``positions``, and the key reached."""
        units = np.empty(len(positions), dtype=np.int64)
        rows = np.empty(len(positions), dtype=np.int64)
        i = 0
        reached = 0.0
        while i < len(positions):
            m = self._order.segment_of(int(positions[i]))
            seg = self._segment(m)
            j = i
            while j < len(positions) and seg.start <= positions[j] < seg.stop:
                j += 1
            if j == i:  # an empty segment cannot hold a position; guard the loop anyway
                raise AssertionError(f"position {positions[i]} not in segment {m}")
            idx = positions[i:j] - seg.start
            units[i:j] = seg.units[idx]
            rows[i:j] = seg.rows[idx]
            reached = max(reached, float(seg.keys[idx].max()))
            i = j
        return units, rows, reached

    # -- units ----------------------------------------------------------------------------
    def _submit(self, pool: ThreadPoolExecutor, u: int) -> None:
        if u not in self._resident and u not in self._pending:
            self._pending[u] = pool.submit(self._read_unit, u)

    def _get(self, pool: ThreadPoolExecutor, u: int) -> pa.Table:
        table = self._resident.get(u)
        if table is not None:
            return table
        self._submit(pool, u)
        fut = self._pending.pop(u)
        table = fut.result()
        if table.num_rows != int(self._plan.rows[u]):
            raise DataChangedError(
                f"{self._describe(u)} has {table.num_rows} rows now but {int(self._plan.rows[u])} "
                "when the epoch was planned: the data changed under the loader; pin a table "
                "version (version= / tag=) or restart the epoch on the new data"
            )
        self._resident[u] = table
        heapq.heappush(self._release, (float(self._ends[u]), u))
        return table

    def _drop(self, reached: float) -> None:
        while self._release and self._release[0][0] <= reached:
            _, u = heapq.heappop(self._release)
            self._resident.pop(u, None)

    def resident_rows(self) -> int:
        return sum(t.num_rows for t in self._resident.values())

    # -- batches --------------------------------------------------------------------------
    def tables(self, batches: Iterator[np.ndarray]) -> Generator[pa.Table, None, None]:
        """One table per batch of positions, rows in the batch's order."""
        ahead: deque[tuple[np.ndarray, np.ndarray, float]] = deque()
        source = iter(batches)
        exhausted = False
        with ThreadPoolExecutor(self._prefetch, thread_name_prefix="lakekit-train") as pool:
            try:
                while True:
                    while not exhausted and len(ahead) < LOOKAHEAD_BATCHES:
                        nxt = next(source, None)
                        if nxt is None:
                            exhausted = True
                            break
                        ahead.append(self.locate(nxt))
                    if not ahead:
                        return
                    units, rows, reached = ahead.popleft()
                    self._prefetch_next(pool, ahead, units)
                    yield self._assemble(pool, units, rows)
                    self._drop(reached)
            finally:
                for fut in self._pending.values():
                    fut.cancel()
                self._pending.clear()
                self._resident.clear()
                self._release.clear()

    def _prefetch_next(self, pool: ThreadPoolExecutor, ahead: Sequence[tuple[
            np.ndarray, np.ndarray, float]], current: np.ndarray) -> None:
        wanted: list[int] = []
        seen: set[int] = set()
        for units in [current, *(a[0] for a in ahead)]:
            for u in dict.fromkeys(units.tolist()):
                if u in seen or u in self._resident:
                    continue
                seen.add(u)
                wanted.append(u)
                if len(wanted) >= self._prefetch + len(set(current.tolist())):
                    break
            if len(wanted) >= self._prefetch + 1:
                break
        for u in wanted:
            if len(self._pending) >= self._prefetch and u not in current:
                break
            self._submit(pool, u)

    def _assemble(self, pool: ThreadPoolExecutor, units: np.ndarray,
                  rows: np.ndarray) -> pa.Table:
        first = int(units[0])
        if (units == first).all() and (len(rows) == 1 or (np.diff(rows) == 1).all()):
            return self._get(pool, first).slice(int(rows[0]), len(rows))
        order = np.argsort(units, kind="stable")
        su = units[order]
        cuts = np.flatnonzero(np.r_[True, su[1:] != su[:-1]])
        bounds = np.r_[cuts, len(su)]
        parts = []
        for a, b in itertools.pairwise(bounds):
            table = self._get(pool, int(su[a]))
            parts.append(table.take(pa.array(rows[order[a:b]])))
        grouped = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        return grouped.take(pa.array(inverse))


def missing_shard(describe: str, exc: OSError) -> DataChangedError:
    """The error for a unit whose file is gone (``exc``'s first line says how it failed)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataChangedError(
        f"{describe} disappeared mid-epoch ({first}); the epoch cannot go on exactly: restore "
        "the file, or train on a pinned table version (version= / tag=) that still has it"
    )
