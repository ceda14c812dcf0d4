"""Parquet data files for a Delta commit, written by pyarrow, with Delta statistics.

Where lakekit writes a table's data files itself and commits them later as ``add``
actions (the workers of a distributed ``Table.write``, the Kafka sink), the files come
from here. :class:`DataFile` streams rows into one file (locally first for remote tables,
then uploaded with retries); each ``add`` carries Delta statistics (row count, null
counts, and min / max where they are exact) so that readers can skip files.
:func:`write_files` writes a whole table, in hive partition directories when the table
is partitioned, named as delta-rs names them. Every file name holds a fresh uuid, so two
attempts of one task never write the same file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakekit.storage import Location, retry_call

__all__ = [
    "ROW_GROUP_BYTES",
    "DataFile",
    "FileStats",
    "delta_compatible",
    "delta_type",
    "dictionary_columns",
    "partition_value",
    "write_files",
]

ROW_GROUP_BYTES = 16 << 20
_DICTIONARY_SAMPLE = 2000  # rows looked at to decide whether a text column is worth a dictionary
_MAX_STAT_STRING = 32
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def delta_type(t: pa.DataType) -> pa.DataType:
    """The arrow type Delta stores ``t`` as (microsecond timestamps, signed integers)."""
    if pa.types.is_dictionary(t):
        return delta_type(t.value_type)
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


class FileStats:
    """Delta file statistics (``numRecords``, ``minValues``, ``maxValues``,
    ``nullCount``), accumulated over the pieces written to one file."""

    def __init__(self) -> None:
        self.rows = 0
        self.nulls: dict[str, int] = {}
        self.lows: dict[str, Any] = {}
        self.highs: dict[str, Any] = {}
        self.types: dict[str, pa.DataType] = {}
        self.unordered: set[str] = set()

    def update(self, table: pa.Table) -> None:
        """Count the rows of ``table`` in."""
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
        """The ``stats`` string of an ``add`` action."""
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


def dictionary_columns(table: pa.Table) -> bool | list[str]:
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


class DataFile:
    """A parquet file being written into a table's directory, then described by an
    ``AddAction``.

    Local tables are written in place; remote ones into ``scratch`` (a local directory)
    first, uploaded with retries by :meth:`close`. ``directory`` is the hive partition
    directory (``"k=1"``, as on storage) and ``partition_values`` the values of the
    ``add`` action; ``index`` goes into the name (``part-00003-<uuid>-c000...``).
    """

    def __init__(self, location: Location, schema: pa.Schema, first: pa.Table, *,
                 scratch: str | None = None, directory: str = "",
                 partition_values: Mapping[str, str | None] | None = None,
                 index: int = 0) -> None:
        self.location = location
        self.name = f"part-{index:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        self.partition_values = dict(partition_values or {})
        # the path in the log is a URI reference: a "%" of the directory name is escaped
        self.path = quote(f"{directory}/{self.name}", safe="/=") if directory else self.name
        root = location.path.rstrip("/")
        self.remote = f"{root}/{directory}/{self.name}" if directory else f"{root}/{self.name}"
        if location.is_local:
            os.makedirs(os.path.dirname(self.remote), exist_ok=True)
            self.local = self.remote
        else:
            if scratch is None:
                raise ValueError("a remote table's data files need a scratch directory")
            self.local = os.path.join(scratch, self.name)
        self.schema = schema
        self.writer = pq.ParquetWriter(self.local, schema, compression="snappy",
                                       use_dictionary=dictionary_columns(first))
        self.stats = FileStats()
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0

    @property
    def pending_bytes(self) -> int:
        """Rows added but not written yet (at most about a row group's worth)."""
        return self._pending_bytes

    def write(self, table: pa.Table) -> None:
        """Add rows; they are written once a row group's worth is pending."""
        self.stats.update(table)
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            group = pa.concat_tables(self._pending)
            self._pending, self._pending_bytes = [], 0
            self.writer.write_table(group, row_group_size=group.num_rows)

    def close(self) -> Any:
        """Finish the file (upload it to a remote table); its ``AddAction``."""
        from deltalake.transaction import AddAction

        self._flush()
        self.writer.close()
        size = os.path.getsize(self.local)
        if not self.location.is_local:
            fs = self.location.fs
            retry_call(lambda: fs.put_file(self.local, self.remote),
                       what=f"uploading a data file to {self.location.url}")
            os.remove(self.local)
        return AddAction(self.path, size, self.partition_values, int(time.time() * 1000),
                         True, self.stats.to_json())

    def discard(self) -> None:
        """Stop writing (the file, never committed, is left for ``vacuum``)."""
        self.writer.close()


def partition_value(value: Any) -> str | None:
    """A partition value as Delta writes it in ``partitionValues`` (``None``: null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _directory(values: Mapping[str, str | None]) -> str:
    """The hive directory of a file with ``values`` (each value percent-encoded)."""
    return "/".join(
        f"{name}={_NULL_PARTITION if value is None else quote(value, safe='')}"
        for name, value in values.items()
    )


def write_files(location: Location, table: pa.Table, *, partition_by: Sequence[str] = (),
                index: int = 0) -> list[Any]:
    """Write ``table`` as new data files of the table at ``location``; their ``AddAction`` s.

    ``table`` holds the file columns in their Delta types, plus the ``partition_by``
    columns: one file per distinct combination of their values, in its hive directory
    (the partition columns are not stored in the files). An empty table writes nothing.
    """
    if table.num_rows == 0:
        return []
    scratch = None if location.is_local else tempfile.TemporaryDirectory(prefix="lakekit-write-")
    try:
        groups = [({}, table)] if not partition_by else _partitions(table, list(partition_by))
        adds = []
        for values, rows in groups:
            rows = rows.drop_columns(list(partition_by)) if partition_by else rows
            file = DataFile(location, rows.schema, rows, index=index,
                            scratch=scratch.name if scratch is not None else None,
                            directory=_directory(values), partition_values=values)
            try:
                for batch in rows.to_batches(max_chunksize=1 << 20):
                    file.write(pa.Table.from_batches([batch], schema=rows.schema))
                adds.append(file.close())
            except BaseException:
                file.discard()
                raise
        return adds
    finally:
        if scratch is not None:
            scratch.cleanup()


def _partitions(table: pa.Table,
                columns: list[str]) -> list[tuple[dict[str, str | None], pa.Table]]:
    """The rows of each distinct combination of values of ``columns`` (nulls included)."""
    rows = pa.array(range(table.num_rows), pa.int64())
    groups = (table.select(columns).append_column("__lakekit_row", rows)
              .group_by(columns, use_threads=False)
              .aggregate([("__lakekit_row", "list")]))
    out = []
    for key, taken in zip(groups.select(columns).to_pylist(),
                          groups.column("__lakekit_row_list").to_pylist(), strict=True):
        values = {name: partition_value(key[name]) for name in columns}
        out.append((values, table.take(pa.array(taken, pa.int64()))))
    return out
