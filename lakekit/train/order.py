"""The order of an epoch: which unit and row each position of the epoch's sequence holds.

The sequence is a function of the units' row counts, ``seed``, ``epoch`` and the window
only, never of the world size or the number of workers, and it is computed from those
numbers alone, a piece at a time, so any process can find any position without data.

With ``shuffle``:

1. **Units** are ordered by a stratified permutation: each file's units are shuffled and
   spread evenly over the epoch (unit ``j`` of ``n`` in a file goes at ``(j + u) / n`` with a
   random ``u``), files interleaved at random. Consecutive units then come from different
   files, so a window of units covers as many shards as it can.
2. **Rows** are mixed across a window of ``window`` rows: row ``r`` of the unit starting at
   offset ``o`` (rows of the units before it) gets the key ``o + x * window`` with ``x``
   uniform in [0, 1) (a hash of seed, epoch, unit and row); the epoch is the rows sorted by
   key. Units of the first window get ``x * (o + window)`` instead: they all start at 0,
   so the epoch's first batches mix a whole window too. A unit's rows are spread over
   ``window`` positions, and the rows around any position come from every unit of the
   last ``window`` rows, each in proportion to its size: a sliding shuffle buffer of
   ``window`` rows, but computed, not buffered, so that it can be resumed anywhere and cut
   among ranks exactly. A reader holds at most about ``window`` rows plus one unit.

Keys are computed segment by segment (``window`` keys wide): segment ``m`` needs only the
units whose offsets lie within one window of it. Without ``shuffle`` the epoch is the
units in planning order, rows in file order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EpochOrder", "Segment"]


@dataclass(frozen=True)
class Segment:
    """Positions ``start .. start + len(units)`` of the epoch: unit (planning index), row, and
    the row's key (sorted; the position itself without shuffle)."""

    start: int
    units: np.ndarray
    rows: np.ndarray
    keys: np.ndarray

    @property
    def stop(self) -> int:
        return self.start + len(self.units)


class EpochOrder:
    """The sequence of (unit, row) of one epoch.

    Parameters
    ----------
    rows
        Rows per unit, in planning order.
    files
        The file (shard) of each unit, for the stratified permutation.
    seed, epoch
        Which of the orders.
    shuffle
        False: units in planning order, rows in file order.
    window
        Rows mixed together (>= 1).

    Examples
    --------
    >>> order = EpochOrder(np.array([3, 2]), np.array([0, 1]), seed=0, epoch=0,
    ...                    shuffle=False, window=4)
    >>> seg = order.segment(0)
    >>> seg.units.tolist(), seg.rows.tolist()
    ([0, 0, 0, 1, 1], [0, 1, 2, 0, 1])
    """

    def __init__(self, rows: np.ndarray, files: np.ndarray, *, seed: int, epoch: int,
                 shuffle: bool, window: int) -> None:
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.shuffle = bool(shuffle)
        self.window = max(int(window), 1)
        rows = np.asarray(rows, dtype=np.int64)
        self.total = int(rows.sum())
        if shuffle:
            self.perm = _stratified(np.asarray(files, dtype=np.int64),
                                    np.random.default_rng([self.seed, self.epoch, 1]))
        else:
            self.perm = np.arange(len(rows), dtype=np.int64)
        self.sizes = rows[self.perm]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        # a unit's keys lie in [start, start + span) = [offset, offset + window), except in
        # the first window: there every unit starts at 0 (and ends where it would), so the
        # first batches already mix a whole window instead of ramping up from one unit
        first = self.offsets[:-1] < self.window
        self.starts = np.where(first, 0, self.offsets[:-1]).astype(np.float64)
        self.spans = np.where(first, self.offsets[:-1] + self.window,
                              self.window).astype(np.float64)
        with np.errstate(over="ignore"):
            self._salt = _mix(_mix(np.uint64(self.seed)) + np.uint64(self.epoch) * _GOLDEN)
        self._bases: dict[int, int] = {}
        # the segment size: one window of keys when shuffled, a fixed span of rows when not
        self.span = self.window if shuffle else max(self.window, 1 << 16)
        self.segments = -(-self.total // self.span) + (1 if shuffle else 0)

    # -- shuffled keys ---------------------------------------------------------------------
    def _keys_of(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys of every row of epoch units ``first .. last - 1``, with their unit's epoch
        index and their row. A key is ``offset + u * window`` with ``u`` a counter-based
        hash of (seed, epoch, unit, row): the same whichever segment asks, no state."""
        sizes = self.sizes[first:last]
        n = int(sizes.sum())
        idx = np.repeat(np.arange(first, last, dtype=np.int64), sizes)
        starts = np.repeat(self.starts[first:last], sizes)
        spans = np.repeat(self.spans[first:last], sizes)
        rows = np.arange(n, dtype=np.int64) - np.repeat(
            self.offsets[first:last] - self.offsets[first], sizes)
        u = uniform(self._salt, self.perm[idx], rows)
        return starts + u * spans, idx, rows

    def base(self, m: int) -> int:
        """The epoch position of segment ``m``'s first row (rows in earlier segments)."""
        if not self.shuffle:
            return min(m * self.span, self.total)
        if m <= 0:
            return 0
        got = self._bases.get(m)
        if got is not None:
            return got
        lo_key = m * self.window
        # units whose keys all lie below lo_key: offset + window <= lo_key
        full = int(np.searchsorted(self.offsets[:-1], lo_key - self.window, side="right"))
        end = int(np.searchsorted(self.starts, lo_key, side="left"))
        keys, _, _ = self._keys_of(full, max(end, full))
        total = int(self.offsets[full]) + int(np.count_nonzero(keys < lo_key))
        if len(self._bases) > 4096:
            self._bases.clear()
        self._bases[m] = total
        return total

    def segment(self, m: int) -> Segment:
        """Segment ``m``: its start position and the (unit, row) of each of its positions."""
        if not self.shuffle:
            start, stop = self.base(m), self.base(m + 1)
            return self._plain(start, stop)
        lo_key, hi_key = m * self.window, (m + 1) * self.window
        first = int(np.searchsorted(self.offsets[:-1], lo_key - self.window, side="right"))
        last = int(np.searchsorted(self.starts, hi_key, side="left"))
        keys, idx, rows = self._keys_of(first, max(last, first))
        sel = np.flatnonzero((keys >= lo_key) & (keys < hi_key))
        keys, idx, rows = keys[sel], idx[sel], rows[sel]
        order = np.argsort(keys, kind="stable")
        start = self.base(m)
        return Segment(start, self.perm[idx[order]], rows[order], keys[order])

    def segment_of(self, position: int) -> int:
        """The segment holding epoch position ``position`` (0 <= position < total)."""
        if not self.shuffle:
            return position // self.span
        # past the first window, position ~ key - window / 2: start there, then step
        m = min(max((position + self.window // 2) // self.window, 0), self.segments - 1)
        for _ in range(self.segments + 1):  # base() is non-decreasing in m
            if m > 0 and self.base(m) > position:
                m -= 1
            elif m + 1 < self.segments and self.base(m + 1) <= position:
                m += 1
            else:
                return m
        raise AssertionError(f"position {position} is in no segment")

    def _plain(self, start: int, stop: int) -> Segment:
        if stop <= start:
            empty = np.empty(0, dtype=np.int64)
            return Segment(start, empty, empty, empty.astype(np.float64))
        pos = np.arange(start, stop, dtype=np.int64)
        idx = np.searchsorted(self.offsets, pos, side="right") - 1
        return Segment(start, self.perm[idx], pos - self.offsets[idx], pos.astype(np.float64))


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray | np.uint64) -> np.ndarray:
    """splitmix64's finalizer: a bijective mix of 64-bit integers (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(z, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniform(salt: np.ndarray, units: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) per (unit, row), a pure function of ``salt`` and the pair.

    Examples
    --------
    >>> u = uniform(_mix(np.uint64(7)), np.array([0, 0, 5]), np.array([0, 1, 0]))
    >>> bool(((u >= 0) & (u < 1)).all()), len(set(u.tolist()))
    (True, 3)
    """
    with np.errstate(over="ignore"):
        z = _mix(salt ^ (units.astype(np.uint64) * _GOLDEN))
        z = _mix(z + rows.astype(np.uint64) * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _stratified(files: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Units ordered so that each file's units are shuffled and spread over the epoch."""
    n = len(files)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(files, kind="stable")
    sorted_files = files[order]
    starts = np.flatnonzero(np.r_[True, sorted_files[1:] != sorted_files[:-1]])
    counts = np.diff(np.r_[starts, n])
    # within each file, a random rank j of its n_f units; its time is (j + u) / n_f
    within = np.empty(n, dtype=np.float64)
    for s, c in zip(starts, counts, strict=True):
        within[s:s + c] = rng.permutation(c)
    per_unit_count = np.repeat(counts, counts).astype(np.float64)
    times = np.empty(n, dtype=np.float64)
    times[order] = (within + rng.random(n)) / per_unit_count
    return np.argsort(times, kind="stable").astype(np.int64)
