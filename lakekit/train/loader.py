"""Loader: exact, resumable, rank-balanced training batches over a lakekit Dataset.

The epoch is planned from metadata (:mod:`lakekit.train.units`), ordered by
:mod:`lakekit.train.order` as a function of (data, seed, epoch) only, and cut into global
steps of ``batch_size * world_size`` rows: rank ``k`` takes rows ``k * batch_size ..`` of
each step. The concatenation of all ranks' batches, step by step, is therefore the same
sequence for any world size, which is what makes a resume on another world size exact.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from lakekit.errors import ConfigError, DataChangedError
from lakekit.io.filters import Filter
from lakekit.io.pipeline import read_ahead
from lakekit.train.describe import LoaderPlan, describe_plan
from lakekit.train.order import EpochOrder
from lakekit.train.reader import (
    CHUNK_ROWS,
    BatchReader,
    as_arrow,
    missing_shard,
    prefetch_units,
)
from lakekit.train.state import check_state, make_state
from lakekit.train.units import Plan, UnitReader, check_rows, plan_units

if TYPE_CHECKING:
    from lakekit.io.dataset import Dataset
    from lakekit.train.torch import TorchDataset

__all__ = ["Loader", "Output", "parse_bytes"]

Output = Literal["numpy", "arrow", "polars", "torch"]
_OUTPUTS = ("numpy", "arrow", "polars", "torch")
PLAN_BYTES_PER_ROW = 48  # keys, unit and row indexes of a window, and their sort
PREFETCH_UNITS = 2
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_bytes(value: int | str, *, what: str = "memory_budget") -> int:
    """``"1GiB"``, ``"512MB"``, ``1_000_000`` -> bytes.

    Examples
    --------
    >>> parse_bytes("1GiB"), parse_bytes("64 MiB"), parse_bytes(4096)
    (1073741824, 67108864, 4096)
    """
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a size like '1GiB' or a number of bytes; got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ConfigError(f"{what} must be a size like '1GiB' or a number of bytes; "
                              f"got {value!r}")
        n = int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])
    if n <= 0:
        raise ConfigError(f"{what} must be positive; got {value!r}")
    return n


class Loader:
    """Batches of a dataset for training: planned, shuffled, cut among ranks, resumable.

    Build one with :meth:`lakekit.Dataset.loader`. Iterating yields this rank's batches of
    the current epoch from the current position; :meth:`set_epoch` picks the epoch.

    Examples
    --------
    >>> import lakekit as lk
    >>> loader = lk.dataset("data/events/").loader(["user_id"], batch_size=4, seed=1)
    >>> len(loader), loader.describe().rows_per_epoch
    (3, 12)
    >>> first = [b["user_id"].tolist() for b in loader]
    >>> sorted(sum(first, []))
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    >>> loader.set_epoch(0)
    >>> batch = next(iter(loader))
    >>> state = loader.state_dict()          # one batch consumed
    >>> again = lk.dataset("data/events/").loader(["user_id"], batch_size=4, seed=1)
    >>> again.load_state_dict(state)
    >>> [b["user_id"].tolist() for b in again] == first[1:]
    True
    """

    def __init__(
        self,
        dataset: Dataset,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = True,
        memory_budget: int | str = "1GiB",
        output: Output = "numpy",
        workers: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer; got {seed!r}")
        if output not in _OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(_OUTPUTS)}; got {output!r}")
        rank, world_size = _rank_and_world(rank, world_size)
        self._epoch = self._position = 0
        self._dataset = dataset
        self._columns = _columns(dataset, columns)
        self._filter = filter
        self._batch_size = batch_size
        self._shuffle = bool(shuffle)
        self._seed = seed
        self._rank = rank
        self._world_size = world_size
        self._drop_last = bool(drop_last)
        self._budget = parse_bytes(memory_budget)
        self._output: Output = output
        self._plan: Plan = plan_units(dataset, self._columns, filter, workers=workers)
        check_rows(self._plan)
        self._units = UnitReader(dataset, self._plan, self._columns, filter)
        self._schema = pa.schema([dataset.schema.field(c) for c in self._columns])
        self._chunk_rows = CHUNK_ROWS
        self._max_window = self._window_for(self._budget)
        self._window = self._max_window
        self._epoch = 0
        self._position = 0
        self._resumed = False
        self._order_cache: EpochOrder | None = None
        if len(self) == 0:
            raise ConfigError(
                f"an epoch has {self._plan.total_rows:,} rows, fewer than one global batch "
                f"({self.global_batch_size:,} = batch_size {batch_size} x world_size "
                f"{world_size}) with drop_last=True: lower batch_size, or pass drop_last=False"
            )

    # -- what it is -----------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Rows per batch on this rank."""
        return self._batch_size

    @property
    def global_batch_size(self) -> int:
        """Rows per step over all ranks: ``batch_size * world_size``."""
        return self._batch_size * self._world_size

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def position(self) -> int:
        """The index (in this rank's epoch) of the next batch to yield."""
        return self._position

    @property
    def output(self) -> Output:
        return self._output

    @property
    def shuffle(self) -> bool:
        """Whether epochs are shuffled (a batch then mixes rows of many units)."""
        return self._shuffle

    @property
    def fingerprint(self) -> str:
        """A digest of the data, the table version and the filter the epoch is planned on."""
        return self._plan.fingerprint

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        total, g = self._plan.total_rows, self.global_batch_size
        return total // g if self._drop_last else -(-total // g)

    def __repr__(self) -> str:
        return (f"Loader({self._dataset.location.url!r}, version={self._dataset.version}, "
                f"batch_size={self._batch_size}, rank={self._rank}/{self._world_size}, "
                f"epoch={self._epoch}, position={self._position}/{len(self)})")

    # -- epochs and iteration -------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch (each epoch has its own order).

        Right after :meth:`load_state_dict`, setting the saved epoch keeps the saved
        position, so the usual loop (``for e in range(start, n): loader.set_epoch(e)``)
        resumes exactly.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be a non-negative integer; got {epoch!r}")
        if self._resumed and epoch == self._epoch:
            return
        self._resumed = False
        self._epoch = epoch
        self._position = 0

    def __iter__(self) -> Iterator[Any]:
        if self._position >= len(self):
            self._position = 0  # an epoch iterated again without set_epoch: the same order
        self._resumed = False
        for i, batch in self._iter(self._position, 0, 1, self._output):
            self._position = i + 1
            yield batch

    def batches(self, *, start: int = 0, worker: int = 0, num_workers: int = 1,
                output: Output | None = None) -> Iterator[Any]:
        """This rank's batches ``i >= start`` with ``i % num_workers == worker``, in order.

        For readers that split a rank's work (DataLoader workers); the position of the
        loader does not move.
        """
        if not 0 <= worker < num_workers:
            raise ConfigError(f"worker must be in 0..{num_workers - 1}; got {worker}")
        out = self._output if output is None else output
        for _, batch in self._iter(start, worker, num_workers, out):
            yield batch

    def _iter(self, start: int, worker: int, num_workers: int,
              output: Output) -> Iterator[tuple[int, Any]]:
        order = self._order()
        n = len(self)
        first = start + (worker - start) % num_workers
        indexes = range(first, n, num_workers)
        reader = BatchReader(self._plan, order, self._read_unit, schema=self._schema,
                             prefetch=PREFETCH_UNITS, chunk_rows=self._chunk_rows,
                             describe_unit=self._describe_unit)
        def converted() -> Iterator[tuple[Any, list[int]]]:
            chunks = reader.chunks(self._positions(i) for i in indexes)
            try:
                for rows, sizes in chunks:
                    yield self._convert(rows, output), sizes
            finally:
                chunks.close()

        # the next chunk is located, read and gathered while the caller trains on this one
        got = read_ahead(converted(), depth=1, name="lakekit-train-batches")
        numbers = iter(indexes)
        try:
            for chunk, sizes in got:
                at = 0
                for n in sizes:
                    yield next(numbers), _slice(chunk, at, n)
                    at += n
        finally:
            got.close()

    def _positions(self, i: int) -> np.ndarray:
        """Epoch positions of this rank's batch ``i``."""
        g, b, total = self.global_batch_size, self._batch_size, self._plan.total_rows
        start = i * g
        if start + g <= total:
            return np.arange(start + self._rank * b, start + (self._rank + 1) * b,
                             dtype=np.int64)
        # the last, partial step (drop_last=False): the same share for every rank, the
        # missing rows taken from the epoch's start, as torch's DistributedSampler does
        share = -(-(total - start) // self._world_size)
        pos = np.arange(start + self._rank * share, start + (self._rank + 1) * share,
                        dtype=np.int64)
        return np.where(pos >= total, pos - total, pos)

    def _order(self) -> EpochOrder:
        cached = self._order_cache
        if (cached is None or cached.epoch != self._epoch or cached.window != self._window):
            cached = EpochOrder(self._plan.rows, self._plan.files, seed=self._seed,
                                epoch=self._epoch, shuffle=self._shuffle, window=self._window)
            self._order_cache = cached
        return cached

    def _read_unit(self, u: int) -> pa.Table:
        try:
            table = self._units.read(u)
        except FileNotFoundError as exc:  # lakekit's NotFoundError, or pyarrow's on local disk
            raise missing_shard(self._describe_unit(u), exc) from None
        return table.combine_chunks()

    def _describe_unit(self, u: int) -> str:
        piece = self._plan.pieces[u]
        name = self._plan.file_names[int(self._plan.files[u])]
        groups = "" if piece.row_groups is None else f" row group {piece.row_groups[0]}"
        return f"shard {name!r}{groups} of {self._dataset.location.url}"

    def _convert(self, batch: dict[str, np.ndarray] | pa.Table, output: Output) -> Any:
        if isinstance(batch, dict):  # from the slot pool
            if output == "numpy":
                return batch
            if output == "torch":
                from lakekit.train.torch import to_tensors

                return to_tensors(batch)
            batch = as_arrow(batch, self._schema)
        table = batch
        if output == "arrow":
            batches = table.combine_chunks().to_batches()
            return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
        if output == "polars":
            import polars as pl

            return pl.from_arrow(table)
        arrays = {name: to_numpy(table.column(name)) for name in table.column_names}
        if output == "torch":
            from lakekit.train.torch import to_tensors

            return to_tensors(arrays)
        return arrays

    # -- memory ---------------------------------------------------------------------------
    def _window_for(self, budget: int) -> int:
        """Rows the budget lets the order mix: what is left after the units read ahead and
        the batches being gathered. The same on every rank and world size (it depends on
        the global batch, not on this rank's share), so all ranks compute one order."""
        plan = self._plan
        rows = max(plan.total_rows, 1)
        per_row = max(float(plan.nbytes.sum()) / rows, 1.0)
        g = self.global_batch_size
        self._chunk_rows = int(max(g, min(CHUNK_ROWS, budget // (16 * per_row))))
        biggest = int(plan.nbytes.max())
        ahead = (prefetch_units(plan, PREFETCH_UNITS, self._chunk_rows) + 1) * biggest
        gathering = 3 * (self._chunk_rows + g) * per_row  # one in use, one queued, one built
        room = budget - ahead - gathering
        if room < per_row + PLAN_BYTES_PER_ROW:
            need = math.ceil(ahead + gathering + 1024 * (per_row + PLAN_BYTES_PER_ROW))
            why = (f"the units read ahead take ~{ahead:,} bytes (the largest row group decodes "
                   f"to ~{biggest:,} bytes for the columns read)" if ahead >= gathering else
                   f"gathering global batches of {g:,} rows takes ~{int(gathering):,} bytes")
            raise ConfigError(
                f"memory_budget {budget:,} bytes is too small: {why}; give memory_budget >= "
                f"{need:,} bytes, read fewer columns, write smaller row groups or use a "
                "smaller batch_size"
            )
        return int(min(room // (per_row + PLAN_BYTES_PER_ROW), rows))

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where this loader is, as a small JSON-safe dict (the next batch to yield).

        The same on every rank at the same step; :meth:`load_state_dict` takes it on any
        world size whose ranks split the same global batch.
        """
        return make_state(
            fingerprint=self._plan.fingerprint, version=self._dataset.version,
            seed=self._seed, shuffle=self._shuffle, drop_last=self._drop_last,
            epoch=self._epoch, rows=self._position * self.global_batch_size,
            global_batch=self.global_batch_size, window=self._window,
            world_size=self._world_size,
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`, on any world size).

        Raises
        ------
        DataChangedError
            The state is from other data, another table version or another filter.
        ConfigError
            Another seed or shuffle, a global batch this loader's ranks do not split (it
            says which ``batch_size`` to pass), or a ``memory_budget`` too small for the
            saved order.
        """
        got = check_state(state, fingerprint=self._plan.fingerprint,
                          version=self._dataset.version, seed=self._seed,
                          shuffle=self._shuffle, drop_last=self._drop_last,
                          world_size=self._world_size, batch_size=self._batch_size)
        if got.window != self._window:
            if got.window > self._max_window:
                raise ConfigError(
                    f"the saved order mixes {got.window:,} rows, more than memory_budget "
                    f"({self._budget:,} bytes) allows here ({self._max_window:,}): resume "
                    "with the memory_budget (and columns) the state was saved with"
                )
            self._window = got.window
        if got.rows // self.global_batch_size > len(self):
            raise DataChangedError("the state's position is past the end of this data's epoch")
        self._epoch = got.epoch
        self._position = got.rows // self.global_batch_size
        self._resumed = True

    # -- describing -----------------------------------------------------------------------
    def describe(self) -> LoaderPlan:
        """The plan: units, window, rows and batches per epoch, expected shuffle quality,
        bytes to read — computed from metadata."""
        return describe_plan(
            self._plan, self._order(), batch_size=self._batch_size,
            world_size=self._world_size, batches=len(self), budget=self._budget,
            url=self._dataset.location.url, version=self._dataset.version,
        )

    def torch(self) -> TorchDataset:
        """A ``torch.utils.data.IterableDataset`` over this loader (needs ``lakekit[torch]``)."""
        from lakekit.train.torch import TorchDataset

        return TorchDataset(self)


def _slice(batch: Any, start: int, n: int) -> Any:
    """Rows ``start .. start + n`` of a converted chunk (views, no copy)."""
    if isinstance(batch, dict):
        return {k: v[start:start + n] for k, v in batch.items()}
    return batch.slice(start, n)


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy: fixed- or equal-length lists as a 2-D array, else 1-D."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_fixed_size_list(array.type) and array.null_count == 0:
        width = array.type.list_size
        return np.asarray(array.flatten().to_numpy(zero_copy_only=False)).reshape(-1, width)
    if (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)) and (
            array.null_count == 0 and len(array)):
        offsets = np.asarray(array.offsets.to_numpy())
        widths = np.diff(offsets)
        if (widths == widths[0]).all():
            flat = array.flatten().to_numpy(zero_copy_only=False)
            return np.asarray(flat).reshape(len(array), int(widths[0]))
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
        rank = 0 if rank is None else rank
        world_size = 1 if world_size is None else world_size
    for name, v in (("rank", rank), ("world_size", world_size)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{name} must be an integer; got {v!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 <= rank < world_size; got rank={rank}, "
                          f"world_size={world_size}")
    return rank, world_size


def _columns(dataset: Dataset, columns: Sequence[str] | None) -> list[str]:
    names = dataset.schema.names
    if columns is None:
        return list(names)
    if isinstance(columns, str):
        raise ConfigError("columns must be a list of names, not a string")
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise ConfigError(f"unknown column(s) {', '.join(map(repr, unknown))} in "
                          f"{dataset.location.url}; available: {', '.join(names)}")
    return list(columns)
