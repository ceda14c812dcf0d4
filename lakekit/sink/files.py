"""Data files for a Delta commit, written by pyarrow's streaming parquet writer.

The sink writes its parquet files itself, piece by piece as a batch is decoded (so a
batch never sits in memory twice), and commits them as ``add`` actions. A retried
commit reuses the files instead of writing them again. Each add action carries Delta
statistics (row count, null counts, and min / max where they are exact) so readers can
skip files.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import uuid
from datetime import date, datetime, timezone
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakekit.storage import Location, retry_call

__all__ = ["StagedRows", "delta_compatible", "delta_type"]

_ROW_GROUP_BYTES = 16 << 20
_DICTIONARY_SAMPLE = 2000  # rows looked at to decide whether a text column is worth a dictionary
_MAX_STAT_STRING = 32


def delta_type(t: pa.DataType) -> pa.DataType:
    """The arrow type Delta stores ``t`` as (microsecond timestamps, signed integers)."""
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz is not None else None)
    if pa.types.is_unsigned_integer(t):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(t.bit_width, pa.int64())
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or \
            pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(t.value_field.with_type(delta_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(delta_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(delta_type(t.key_type), delta_type(t.item_type))
    return t


def delta_compatible(table: pa.Table) -> pa.Table:
    """``table`` with types Delta can store (a no-op when they already are)."""
    target = pa.schema([f.with_type(delta_type(f.type)) for f in table.schema])
    if target.equals(table.schema):
        return table
    return table.cast(target, safe=False)


def _stat(value: Any, t: pa.DataType, high: bool) -> Any:
    """A JSON-able statistic, or ``None`` when it could not be exact."""
    if value is None:
        return None
    if pa.types.is_string(t):
        return value if len(value) <= _MAX_STAT_STRING else None
    if pa.types.is_floating(t):
        return value if math.isfinite(value) else None
    if pa.types.is_timestamp(t):
        assert isinstance(value, datetime)
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        # milliseconds in the log: round the max up so that it stays an upper bound
        micros = value.microsecond
        millis = micros // 1000 + (1 if high and micros % 1000 else 0)
        if millis == 1000:
            return None
        text = value.replace(microsecond=0, tzinfo=None).isoformat() + f".{millis:03d}"
        return text + ("Z" if t.tz is not None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, bool)):
        return value
    return None


class _Stats:
    """Delta file statistics, accumulated over the pieces written to one file."""

    def __init__(self) -> None:
        self.rows = 0
        self.nulls: dict[str, int] = {}
        self.lows: dict[str, Any] = {}
        self.highs: dict[str, Any] = {}
        self.types: dict[str, pa.DataType] = {}
        self.unordered: set[str] = set()

    def update(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for field, column in zip(table.schema, table.columns, strict=True):
            t = field.type
            if pa.types.is_struct(t) or pa.types.is_map(t):
                continue
            self.nulls[field.name] = self.nulls.get(field.name, 0) + column.null_count
            self.types[field.name] = t
            orderable = (pa.types.is_integer(t) or pa.types.is_floating(t)
                         or pa.types.is_string(t) or pa.types.is_timestamp(t)
                         or pa.types.is_date(t))
            if not orderable:
                self.unordered.add(field.name)
                continue
            if column.null_count == len(column):
                continue
            mm = pc.min_max(column)
            low, high = mm["min"].as_py(), mm["max"].as_py()
            if isinstance(low, float) and (math.isnan(low) or math.isnan(high)):
                self.unordered.add(field.name)
                continue
            old_low = self.lows.get(field.name)
            old_high = self.highs.get(field.name)
            self.lows[field.name] = low if old_low is None else min(old_low, low)
            self.highs[field.name] = high if old_high is None else max(old_high, high)

    def to_json(self) -> str:
        mins: dict[str, Any] = {}
        maxs: dict[str, Any] = {}
        for name, low in self.lows.items():
            if name in self.unordered:
                continue
            t = self.types[name]
            lo, hi = _stat(low, t, high=False), _stat(self.highs[name], t, high=True)
            if lo is not None and hi is not None:
                mins[name], maxs[name] = lo, hi
        return json.dumps({"numRecords": self.rows, "minValues": mins, "maxValues": maxs,
                           "nullCount": self.nulls})


class _OpenFile:
    """A parquet file being written: locally first (a temporary file for remote tables,
    uploaded with retries when closed), then described by an ``AddAction``."""

    def __init__(self, location: Location, schema: pa.Schema, scratch: str | None,
                 first: pa.Table) -> None:
        self.location = location
        self.name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        root = location.path.rstrip("/")
        self.remote = f"{root}/{self.name}"
        if location.is_local:
            os.makedirs(root, exist_ok=True)
            self.local = self.remote
        else:
            assert scratch is not None
            self.local = os.path.join(scratch, self.name)
        self.schema = schema
        self.writer = pq.ParquetWriter(self.local, schema, compression="snappy",
                                       use_dictionary=_dictionary_columns(first))
        self.stats = _Stats()
        self.parts: list[np.ndarray] = []
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0

    def write(self, table: pa.Table, parts: np.ndarray) -> None:
        """Add rows; they are written once a row group's worth is pending."""
        self.stats.update(table)
        self.parts.append(parts)
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        if self._pending_bytes >= _ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            group = pa.concat_tables(self._pending)
            self._pending, self._pending_bytes = [], 0
            self.writer.write_table(group, row_group_size=group.num_rows)

    def close(self) -> tuple[Any, np.ndarray]:
        from deltalake.transaction import AddAction

        self._flush()
        self.writer.close()
        size = os.path.getsize(self.local)
        if not self.location.is_local:
            fs = self.location.fs
            retry_call(lambda: fs.put_file(self.local, self.remote),
                       what=f"uploading a data file to {self.location.url}")
            os.remove(self.local)
        add = AddAction(self.name, size, {}, int(time.time() * 1000), True, self.stats.to_json())
        parts = np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.int32)
        return add, parts


def _dictionary_columns(table: pa.Table) -> bool | list[str]:
    """The parquet leaf columns to dictionary-encode: all but long, mostly distinct text.

    Parquet writers try a dictionary on every column and fall back to plain pages once
    it outgrows a page; for free text (log lines, descriptions) that attempt hashes every
    value for nothing, about a quarter of the write time of such a batch.
    """
    sample = table.slice(0, _DICTIONARY_SAMPLE)
    unique_text: set[str] = set()
    for name, column in zip(sample.column_names, sample.columns, strict=True):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
                or pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            continue
        values = column.drop_null()
        if len(values) < 100:
            continue
        mean_length = pc.sum(pc.binary_length(values)).as_py() / len(values)
        if mean_length >= 64 and pc.count_distinct(values).as_py() > len(values) // 2:
            unique_text.add(name)
    if not unique_text:
        return True
    # leaf paths as parquet names them (a list column is "tags.list.element")
    probe = pa.BufferOutputStream()
    pq.write_table(table.slice(0, 0), probe)
    schema = pq.read_metadata(pa.BufferReader(probe.getvalue())).schema
    paths = [schema.column(i).path for i in range(len(schema))]
    return [p for p in paths if p.split(".", 1)[0] not in unique_text]


class StagedRows:
    """The rows of one batch on their way into a commit.

    With ``location`` (the sink writes the files) rows go into parquet files as they
    are added: a batch then holds a row group in memory, not a second copy of itself,
    and a retried commit reuses the files. Without (delta-rs writes the files, e.g. for
    partitioned tables) the rows stay in memory until the commit. ``parts`` gives, for
    every row, the index of its topic-partition in the batch.
    """

    def __init__(self, location: Location | None) -> None:
        self.location = location
        self.schema: pa.Schema | None = None
        self.num_rows = 0
        self._tables: list[pa.Table] = []
        self._parts: list[np.ndarray] = []
        self._files: list[tuple[Any, np.ndarray]] = []
        self._open: _OpenFile | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def held_bytes(self) -> int:
        """Decoded rows held in memory: a row group being gathered, or the whole batch."""
        if self._open is not None:
            return self._open._pending_bytes
        return sum(t.nbytes for t in self._tables) if self._tables else 0

    @property
    def parts(self) -> np.ndarray:
        """The topic-partition index of every row, in order."""
        if self._files:
            return np.concatenate([p for _, p in self._files])
        return np.concatenate(self._parts) if self._parts else np.empty(0, dtype=np.int32)

    def add(self, table: pa.Table, parts: np.ndarray) -> None:
        """Add rows (``parts``: their topic-partition indices)."""
        if not table.num_columns:
            return
        table = delta_compatible(table)
        self.schema = table.schema if self.schema is None else pa.unify_schemas(
            [self.schema, table.schema], promote_options="permissive")
        self.num_rows += table.num_rows
        if self.location is None:
            self._tables.append(table)
            self._parts.append(parts)
            return
        if table.num_rows == 0:
            return
        if self._open is not None and not self._open.schema.equals(table.schema):
            self._files.append(self._open.close())
            self._open = None
        if self._open is None:
            if self._scratch is None and not self.location.is_local:
                self._scratch = tempfile.TemporaryDirectory(prefix="lakekit-sink-")
            scratch = self._scratch.name if self._scratch is not None else None
            self._open = _OpenFile(self.location, table.schema, scratch, table)
        self._open.write(table, parts)

    def finish(self) -> StagedRows:
        """Close the file being written."""
        if self._open is not None:
            self._files.append(self._open.close())
            self._open = None
        return self

    def table(self, keep: np.ndarray | None = None) -> pa.Table:
        """The rows (of the partitions ``keep`` marks) as one table (in-memory staging)."""
        if not self._tables:
            return self.schema.empty_table() if self.schema is not None else pa.table({})
        table = pa.concat_tables(self._tables, promote_options="permissive")
        if keep is not None and not keep.all():
            table = table.filter(pa.array(keep))
        return table

    def add_actions(self, keep: np.ndarray | None = None) -> list[Any]:
        """``AddAction`` s of the files; with ``keep``, files holding rows it drops are
        rewritten without them first (a partition was lost to another writer)."""
        self.finish()
        if keep is None or keep.all():
            return [add for add, _ in self._files]
        assert self.location is not None
        out = []
        start = 0
        fs = self.location.pyarrow_filesystem()
        root = self.location.path.rstrip("/")
        for add, parts in self._files:
            mask = keep[start : start + len(parts)]
            start += len(parts)
            if mask.all():
                out.append(add)
                continue
            if not mask.any():
                continue
            path = f"{root}/{add.path}"
            old: pa.Table = retry_call(partial(pq.read_table, path, filesystem=fs),
                                       what=f"reading back a data file of {self.location.url}")
            redo = StagedRows(self.location)
            redo.add(old.filter(pa.array(mask)), parts[mask])
            out.extend(a for a, _ in redo.finish()._files)
        return out

    def close(self) -> None:
        """Remove scratch files."""
        if self._open is not None:
            self._open.writer.close()
            self._open = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
