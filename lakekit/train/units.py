"""The units of an epoch: row groups (or files) with their row counts, learnt from metadata.

A unit is one parquet row group (a Delta data file's, too), or a whole file where the
format has no row groups (JSONL, CSV) or rows are masked by a Delta deletion vector. Row
counts come from footers and the Delta log; only a filter on data columns (or a text
format) needs data: the filter columns are read once per unit to count the rows it keeps,
and the counts are cached under the data's fingerprint (in memory, and as a small JSON file
in ``$LAKEKIT_CACHE_DIR`` or ``~/.cache/lakekit``), so the next planning of the same data,
filter and columns reads nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakekit.errors import ConfigError
from lakekit.io.filters import Filter, to_expression
from lakekit.io.parquet import filter_columns
from lakekit.io.pieces import Piece
from lakekit.io.pipeline import ordered_map

if TYPE_CHECKING:
    from lakekit.io.dataset import Dataset

__all__ = ["Plan", "UnitReader", "check_rows", "plan_units"]

_COUNTS: dict[str, list[int]] = {}  # fingerprint -> rows per unit, this process
_COUNTS_MAX = 64


@dataclass(frozen=True, eq=False)
class Plan:
    """What an epoch is made of, before any order: units, their rows, their files.

    Attributes
    ----------
    pieces
        One :class:`~lakekit.io.pieces.Piece` per unit, in planning order.
    rows
        Rows each unit yields (after deletion vectors and the filter).
    files
        The index of each unit's file (its shard) in :attr:`file_names`.
    file_names
        The data files, credential-free, relative to the dataset's root.
    nbytes
        Estimated decoded bytes per unit of the columns read.
    fingerprint
        A digest of the data (files, sizes, row groups, rows, table version) and the filter.
    counted
        How many units had their rows counted by reading filter columns (0 when the
        metadata answered, or the counts came from the cache).
    """

    pieces: list[Piece]
    rows: np.ndarray
    files: np.ndarray
    file_names: list[str]
    nbytes: np.ndarray
    fingerprint: str
    counted: int

    @functools.cached_property
    def total_rows(self) -> int:
        """Rows per epoch (summed once: every batch's positions need it)."""
        return int(self.rows.sum())


def plan_units(
    ds: Dataset, columns: Sequence[str], filter: Filter, *, workers: int | None = None
) -> Plan:
    """Plan the units of ``ds`` for ``columns`` and ``filter``, from metadata where it can."""
    expr = to_expression(filter)
    schema = ds.schema
    parts = set(ds.partition_schema.names)
    data_cols = sorted(filter_columns(expr, [n for n in schema.names if n not in parts])) if (
        expr is not None) else []
    pieces = ds.pieces(list(columns), filter=filter, split="row_group", piece_bytes=1,
                       workers=workers)
    root = ds.location.path.rstrip("/") + "/"
    names: list[str] = []
    index: dict[str, int] = {}
    files = np.empty(len(pieces), dtype=np.int64)
    for i, p in enumerate(pieces):
        name = p.entry.path.removeprefix(root)
        if name not in index:
            index[name] = len(names)
            names.append(name)
        files[i] = index[name]
    digest = hashlib.sha256()
    digest.update(json.dumps([ds.location.url, ds.format, ds.version, str(expr)]).encode())
    for p in pieces:
        digest.update(json.dumps([p.entry.path.removeprefix(root), p.entry.size,
                                  p.row_groups, p.rows, p.keep_rows]).encode())
        if p.keep is not None:
            digest.update(p.keep)
    fingerprint = digest.hexdigest()[:24]
    known = [_rows_from_metadata(p) for p in pieces]
    counted = 0
    if data_cols or any(r is None for r in known):
        rows_list = _cached(fingerprint)
        if rows_list is None or len(rows_list) != len(pieces):
            todo = [i for i, r in enumerate(known) if data_cols or r is None]
            count_cols = data_cols or [schema.names[0]]

            def count(i: int) -> int:
                return int(ds.read_piece(pieces[i], count_cols, filter=filter).num_rows)

            for i, n in zip(todo, ordered_map(count, todo, workers=workers or 4), strict=True):
                known[i] = n
            counted = len(todo)
            rows_list = [int(r) for r in known]  # type: ignore[arg-type]
            _store(fingerprint, rows_list)
        known = list(rows_list)
    rows = np.asarray(known, dtype=np.int64)
    keep = rows > 0
    if not keep.all():
        pieces = [p for p, k in zip(pieces, keep, strict=True) if k]
        rows, files = rows[keep], files[keep]
    nbytes = np.asarray([max(p.nbytes, 1) for p in pieces], dtype=np.int64)
    return Plan(pieces, rows, files, names, nbytes, fingerprint, counted)


def _rows_from_metadata(p: Piece) -> int | None:
    if p.keep is not None:
        bits = np.unpackbits(np.frombuffer(p.keep, dtype=np.uint8))[: p.keep_rows]
        return int(bits.sum())
    if p.rows is not None:
        return int(p.rows)
    return p.entry.rows if p.row_groups is None and p.entry.rows is not None else None


def _cache_dir() -> Path:
    base = os.environ.get("LAKEKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lakekit")
    return Path(base) / "train"


def _cached(fingerprint: str) -> list[int] | None:
    if fingerprint in _COUNTS:
        return _COUNTS[fingerprint]
    path = _cache_dir() / f"{fingerprint}.json"
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, list) or not all(isinstance(n, int) and n >= 0 for n in data):
        return None
    _COUNTS[fingerprint] = data
    return data


def _store(fingerprint: str, rows: list[int]) -> None:
    if len(_COUNTS) >= _COUNTS_MAX:
        _COUNTS.pop(next(iter(_COUNTS)))
    _COUNTS[fingerprint] = rows
    path = _cache_dir() / f"{fingerprint}.json"
    try:  # a cache: a read-only home only costs the next planning a count
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(path)
    except OSError:
        pass


def check_rows(plan: Plan) -> None:
    """Refuse an empty epoch, saying what to change."""
    if plan.total_rows == 0:
        raise ConfigError("the loader has no rows to yield: the filter matches no row (or the "
                          "dataset is empty); loosen the filter or check the source")


class UnitReader:
    """Reads units as tables of the dataset's types: ``Dataset.read_piece``, or for local
    parquet row groups that need no conversion, ``pyarrow.parquet`` on the file
    with the footer parsed once (a row group then costs its decoding, not a dataset scan's
    set-up: ~6x faster for small row groups).

    The fast path applies when the file is on local disk, the unit is a list of row groups
    without a deletion vector, the filter (if any) is on partition columns only, and every
    column read is in the file with exactly the dataset's type; anything else goes the
    general way, with the same result.
    """

    MAX_FOOTERS = 4096  # parsed footers kept by one reader
    MAX_OPEN = 8  # files kept open by one reader

    def __init__(self, ds: Dataset, plan: Plan, columns: Sequence[str], filter: Filter) -> None:
        self._ds = ds
        self._plan = plan
        self._columns = list(columns)
        self._filter = filter
        expr = to_expression(filter)
        parts = set(ds.partition_schema.names)
        data_filter = expr is not None and bool(
            filter_columns(expr, [n for n in ds.schema.names if n not in parts]))
        self._fast = (ds.location.is_local and not data_filter
                      and not parts.intersection(self._columns))
        self._schema = ds.schema
        self._footers: dict[str, Any] = {}  # path -> FileMetaData, or None: not eligible
        self._open: dict[str, tuple[Any, threading.Lock]] = {}  # a few open files, LRU
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_footers"] = {}
        state["_open"] = {}
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def read(self, u: int) -> pa.Table:
        piece = self._plan.pieces[u]
        if self._fast and piece.row_groups is not None and piece.keep is None:
            pf = self._file(piece.entry.path)
            if pf is not None:
                with pf[1]:  # one reader of a ParquetFile at a time
                    return pf[0].read_row_groups(list(piece.row_groups),
                                                 columns=self._columns, use_threads=False)
        return self._ds.read_piece(piece, self._columns, filter=self._filter)

    def _file(self, path: str) -> tuple[Any, threading.Lock] | None:
        """An open ParquetFile of ``path`` (a few kept: a kept-open file holds on to the
        buffers of what it read, ~1 MiB a file, so only a handful stay open)."""
        with self._lock:
            got = self._open.pop(path, None)
            if got is not None:
                self._open[path] = got  # most recently used last
                return got
        metadata = self._metadata(path)
        if metadata is None:
            return None
        # an OSFile: no filesystem resolution per open (a shuffled epoch opens often)
        got = (pq.ParquetFile(pa.OSFile(path), metadata=metadata), threading.Lock())
        with self._lock:
            while len(self._open) >= self.MAX_OPEN:  # closed by GC once no read holds it
                self._open.pop(next(iter(self._open)))
            self._open[path] = got
        return got

    def _metadata(self, path: str) -> Any:
        """The file's parsed footer, or None when its types differ from the dataset's."""
        with self._lock:
            if path in self._footers:
                return self._footers[path]
        with pq.ParquetFile(path, memory_map=False) as pf:
            arrow = pf.schema_arrow
            ok = all(
                arrow.get_field_index(c) >= 0
                and arrow.field(c).type == self._schema.field(c).type
                for c in self._columns
            )
            got = pf.metadata if ok else None
        with self._lock:
            if len(self._footers) >= self.MAX_FOOTERS:
                self._footers.pop(next(iter(self._footers)))
            self._footers[path] = got
        return got
