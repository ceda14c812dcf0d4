"""Reading one consumer's batches: positions -> (unit, row) -> rows of resident units.

A consumer is one rank (or one DataLoader worker of a rank). It walks its batches in
order; each batch is a list of epoch positions, mapped to (unit, row) by the
:class:`~lakekit.train.order.EpochOrder`. Units are read when first needed, a few ahead on a
small thread pool, only the columns asked for, and dropped as soon as the epoch has moved
past the last of their rows, so at most about a window of rows plus a few units is resident.

Resident units of fixed-width columns (numbers, booleans, times, fixed-size lists) are
copied into a :class:`SlotPool`, numpy arrays with one slot per unit, so that a batch is
one fancy index per column whatever the number of units it mixes; other columns
(strings, variable lists) are gathered from the units' arrow tables.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from lakekit.errors import DataChangedError
from lakekit.train.order import EpochOrder, Segment
from lakekit.train.units import Plan

__all__ = ["CHUNK_ROWS", "BatchReader", "SlotPool", "as_arrow", "fixed_width",
           "missing_shard", "prefetch_units"]

CHUNK_ROWS = 16384  # rows located and gathered at once (whole batches; at least one)
MAX_PREFETCH = 128  # units read ahead at most
LOOKAHEAD_CHUNKS = 3  # chunks located ahead, to know which units to read ahead


def fixed_width(schema: pa.Schema) -> bool:
    """Whether every column is fixed-width (so units can live in a :class:`SlotPool`)."""
    def ok(t: pa.DataType) -> bool:
        if pa.types.is_fixed_size_list(t):
            return ok(t.value_type)
        return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_temporal(t)) and not pa.types.is_time(t)
    return all(ok(f.type) for f in schema)


class SlotPool:
    """Resident units as numpy arrays: slot ``s`` holds a unit's rows at ``s * slot_rows``."""

    def __init__(self, slot_rows: int, n_units: int) -> None:
        self.slot_rows = max(int(slot_rows), 1)
        self.slot_of = np.full(n_units, -1, dtype=np.int64)
        self.free: list[int] = []
        self.slots = 0
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, u: int, table: pa.Table) -> None:
        cols = {name: _numpy(col) for name, col in zip(table.column_names, table.columns,
                                                          strict=True)}
        if not self.free:
            self._grow(cols)
        slot = self.free.pop()
        start = slot * self.slot_rows
        for name, a in cols.items():
            self.arrays[name][start:start + len(a)] = a
        self.slot_of[u] = slot

    def _grow(self, cols: dict[str, np.ndarray]) -> None:
        new = max(self.slots, 4)
        for name, a in cols.items():
            old = self.arrays.get(name)
            shape = ((self.slots + new) * self.slot_rows, *a.shape[1:])
            grown = np.empty(shape, dtype=a.dtype)
            if old is not None:
                grown[: len(old)] = old
            self.arrays[name] = grown
        self.free.extend(range(self.slots + new - 1, self.slots - 1, -1))
        self.slots += new

    def drop(self, u: int) -> None:
        slot = int(self.slot_of[u])
        if slot >= 0:
            self.free.append(slot)
            self.slot_of[u] = -1

    def gather(self, units: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        idx = self.slot_of[units] * self.slot_rows + rows
        return {name: a[idx] for name, a in self.arrays.items()}


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.null_count:
        raise _NullsInPool(column)
    if pa.types.is_fixed_size_list(array.type):
        inner = _numpy(pa.chunked_array([array.flatten()]))
        return inner.reshape(len(array), array.type.list_size, *inner.shape[1:])
    return array.to_numpy(zero_copy_only=False)


class _NullsInPool(Exception):
    """A fixed-width column with nulls: such units are gathered from arrow instead."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        super().__init__("nulls")


class BatchReader:
    """Yield the batches (lists of epoch positions) of one consumer, in order.

    Parameters
    ----------
    plan, order
        The units and the epoch's order.
    read_unit
        Reads one unit (planning index) as a table of exactly ``plan.rows[u]`` rows.
    schema
        The columns read (decides between the slot pool and arrow gathering).
    prefetch
        Units read ahead of need (and threads reading them).
    describe_unit
        Names a unit in errors.
    """

    def __init__(self, plan: Plan, order: EpochOrder, read_unit: Callable[[int], pa.Table],
                 *, schema: pa.Schema, prefetch: int = 2, chunk_rows: int = CHUNK_ROWS,
                 describe_unit: Callable[[int], str]) -> None:
        self._plan = plan
        self._order = order
        self._read_unit = read_unit
        self._describe = describe_unit
        self._threads = max(int(prefetch), 1)
        # units read ahead: a chunk's worth of new units, and at least ``prefetch``
        self._prefetch = prefetch_units(plan, prefetch, chunk_rows)
        self._chunk_rows = max(int(chunk_rows), 1)
        self._segments: dict[int, Segment] = {}
        self._next_segment: tuple[int, Future[Segment]] | None = None
        self._executor: ThreadPoolExecutor | None = None
        n = len(plan.rows)
        # a slot holds the largest unit: only when units are alike (else slots waste memory)
        alike = n > 0 and int(plan.rows.max()) <= 4 * max(int(np.median(plan.rows)), 1)
        self._pool = SlotPool(int(plan.rows.max()), n) if alike and fixed_width(
            schema) else None
        self._tables: dict[int, pa.Table] = {}  # units not in the pool
        self._resident = np.zeros(n, dtype=bool)
        self._loaded = np.zeros(n, dtype=bool)  # read once this pass (wrapped rows may re-read)
        self._pending: dict[int, Future[pa.Table]] = {}
        self._release: list[tuple[float, int]] = []  # (threshold key, unit)
        self._seen = np.zeros(n, dtype=bool)
        self._upcoming: deque[int] = deque()
        pos_of = np.empty(n, dtype=np.int64)
        pos_of[order.perm] = np.arange(len(order.perm))
        # where each unit's rows end, in key space: all its keys are below this
        if order.shuffle:
            self._ends = order.offsets[:-1][pos_of].astype(np.float64) + order.window
        else:
            self._ends = order.offsets[1:][pos_of].astype(np.float64)

    # -- positions -> (unit, row, key) ----------------------------------------------------
    def _segment(self, m: int) -> Segment:
        seg = self._segments.get(m)
        if seg is None:
            ahead = self._next_segment
            if ahead is not None and ahead[0] == m:
                seg = ahead[1].result()
            else:
                seg = self._order.segment(m)
            self._segments[m] = seg
            while len(self._segments) > 4:
                self._segments.pop(min(self._segments))
            # the next segment's keys and sort (numpy, mostly without the GIL) on the pool
            # while this one is used
            pool = self._executor
            if pool is not None and self._order.shuffle and m + 1 < self._order.segments:
                self._next_segment = (m + 1, pool.submit(self._order.segment, m + 1))
        return seg

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(units, rows) of ascending (or once wrapped) ``positions``, and the key reached."""
        units = np.empty(len(positions), dtype=np.int64)
        rows = np.empty(len(positions), dtype=np.int64)
        i = 0
        reached = 0.0
        while i < len(positions):
            seg = self._segment(self._order.segment_of(int(positions[i])))
            rest = positions[i:]
            outside = np.flatnonzero((rest < seg.start) | (rest >= seg.stop))
            j = i + (int(outside[0]) if len(outside) else len(rest))
            if j == i:  # an empty segment cannot hold a position; guard the loop anyway
                raise AssertionError(f"position {positions[i]} is in no segment")
            idx = positions[i:j] - seg.start
            units[i:j] = seg.units[idx]
            rows[i:j] = seg.rows[idx]
            reached = max(reached, float(seg.keys[idx].max()))
            i = j
        return units, rows, reached

    # -- units ----------------------------------------------------------------------------
    def _submit(self, pool: ThreadPoolExecutor, u: int) -> None:
        if not self._resident[u] and u not in self._pending:
            self._pending[u] = pool.submit(self._read_unit, u)

    def _load(self, pool: ThreadPoolExecutor, u: int) -> None:
        self._submit(pool, u)
        table = self._pending.pop(u).result()
        if table.num_rows != int(self._plan.rows[u]):
            raise DataChangedError(
                f"{self._describe(u)} has {table.num_rows} rows now but {int(self._plan.rows[u])} "
                "when the epoch was planned: the data changed under the loader; pin a table "
                "version (version= / tag=) or restart the epoch on the new data"
            )
        if self._pool is not None:
            try:
                self._pool.add(u, table)
            except _NullsInPool:
                self._to_tables()
                self._tables[u] = table
        else:
            self._tables[u] = table
        self._resident[u] = True
        self._loaded[u] = True
        heapq.heappush(self._release, (float(self._ends[u]), u))

    def _to_tables(self) -> None:
        """Leave the pool for good (a unit with nulls): its units become arrow tables."""
        pool = self._pool
        assert pool is not None
        self._pool = None
        for u in np.flatnonzero(pool.slot_of >= 0):
            n = int(self._plan.rows[u])
            start = int(pool.slot_of[u]) * pool.slot_rows
            cols = {k: _arrow(a[start:start + n]) for k, a in pool.arrays.items()}
            self._tables[int(u)] = pa.table(cols)

    def _drop(self, reached: float) -> None:
        while self._release and self._release[0][0] <= reached:
            _, u = heapq.heappop(self._release)
            self._resident[u] = False
            if self._pool is not None:
                self._pool.drop(u)
            self._tables.pop(u, None)

    def resident_rows(self) -> int:
        return int(self._plan.rows[self._resident].sum())

    # -- batches --------------------------------------------------------------------------
    def chunks(self, positions: Iterator[np.ndarray]) -> Generator[
            tuple[dict[str, np.ndarray] | pa.Table, list[int]], None, None]:
        """The rows of consecutive batches (arrays of positions), ``chunk_rows`` at a time:
        a dict of numpy arrays (slot pool) or a table, and the batches' sizes in it.

        Located and gathered a chunk at a time (one fancy index per column for several
        batches), so that the cost per batch is a slice.
        """
        ahead: deque[tuple[list[int], np.ndarray, np.ndarray, float]] = deque()
        source = iter(positions)
        exhausted = False
        with ThreadPoolExecutor(self._threads, thread_name_prefix="lakekit-train") as pool:
            self._executor = pool
            try:
                while True:
                    while not exhausted and len(ahead) < LOOKAHEAD_CHUNKS:
                        chunk: list[np.ndarray] = []
                        rows_in = 0
                        while rows_in < self._chunk_rows:
                            nxt = next(source, None)
                            if nxt is None:
                                exhausted = True
                                break
                            chunk.append(nxt)
                            rows_in += len(nxt)
                        if not chunk:
                            break
                        units, rows, reached = self.locate(np.concatenate(chunk))
                        self._note(units)
                        ahead.append(([len(c) for c in chunk], units, rows, reached))
                    if not ahead:
                        return
                    sizes, units, rows, reached = ahead.popleft()
                    self._read_ahead(pool)
                    missing = units[~self._resident[units]]
                    if len(missing):
                        for u in np.unique(missing):
                            self._load(pool, int(u))
                    yield self._gather(units, rows), sizes
                    self._drop(reached)
            finally:
                for fut in self._pending.values():
                    fut.cancel()
                self._pending.clear()
                self._tables.clear()
                self._release.clear()
                self._resident[:] = False
                self._executor = None
                self._next_segment = None

    def _note(self, units: np.ndarray) -> None:
        """Queue the units a batch needs first, in the order it needs them."""
        new = units[~self._seen[units]]
        if len(new):
            uniq, first = np.unique(new, return_index=True)
            fresh = uniq[np.argsort(first, kind="stable")]
            self._seen[fresh] = True
            self._upcoming.extend(fresh.tolist())

    def _read_ahead(self, pool: ThreadPoolExecutor) -> None:
        while self._upcoming and len(self._pending) < self._prefetch:
            u = self._upcoming.popleft()
            if not self._loaded[u]:  # not already loaded on demand (and maybe dropped since)
                self._submit(pool, u)

    def _gather(self, units: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray] | pa.Table:
        if self._pool is not None:
            return self._pool.gather(units, rows)
        first = int(units[0])
        if (units == first).all() and (len(rows) == 1 or (np.diff(rows) == 1).all()):
            return self._tables[first].slice(int(rows[0]), len(rows))
        order = np.argsort(units, kind="stable")
        su = units[order]
        cuts = np.flatnonzero(np.r_[True, su[1:] != su[:-1]])
        bounds = np.r_[cuts, len(su)]
        parts = [self._tables[int(su[a])].take(pa.array(rows[order[a:b]]))
                 for a, b in itertools.pairwise(bounds)]
        grouped = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        return grouped.take(pa.array(inverse))


def prefetch_units(plan: Plan, threads: int, chunk_rows: int) -> int:
    """Units read ahead: what a chunk of ``chunk_rows`` needs anew, at least ``threads``."""
    typical = max(int(np.median(plan.rows)) if len(plan.rows) else 1, 1)
    return int(min(max(threads, 2 * chunk_rows // typical + threads), MAX_PREFETCH))


def _arrow(a: np.ndarray) -> pa.Array:
    if a.ndim == 1:
        return pa.array(a)
    flat = _arrow(a.reshape(len(a) * a.shape[1], *a.shape[2:]))
    return pa.FixedSizeListArray.from_arrays(flat, a.shape[1])


def as_arrow(columns: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
    """A pooled batch as an arrow table of ``schema`` (fixed-size lists for 2-D columns)."""
    return pa.table({k: _arrow(v) for k, v in columns.items()}).cast(schema)


def missing_shard(describe: str, exc: OSError) -> DataChangedError:
    """The error for a unit whose file is gone (``exc``'s first line says how it failed)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataChangedError(
        f"{describe} disappeared mid-epoch ({first}); the epoch cannot go on exactly: restore "
        "the file, or train on a pinned table version (version= / tag=) that still has it"
    )
