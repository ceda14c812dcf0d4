"""Schema checks for writes to a versioned table, and schema changes between versions.

deltalake casts incoming columns to the table's types quite freely (strings into longs,
doubles into longs); lakekit is stricter: a column may only arrive as the same type (up to
representation: ``large_string`` is ``string``) or as a lossless widening (``int32`` into
``int64``, ``float32`` into ``float64``). Anything else is a :class:`SchemaMismatchError`
naming the columns, raised before a byte is written.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.types as pat

from lakekit.tables._inputs import Source
from lakekit.tables.types import ColumnChange

__all__ = ["fill_missing", "normalize", "schema_changes", "write_conflicts"]

_INT_RANK = {pa.int8(): 1, pa.int16(): 2, pa.int32(): 3, pa.int64(): 4}
_UINT_FITS = {pa.uint8(): 2, pa.uint16(): 3, pa.uint32(): 4}  # smallest signed rank it fits
_FLOATS = {pa.float16(): 1, pa.float32(): 2, pa.float64(): 3}


def normalize(t: pa.DataType) -> pa.DataType:
    """A type with representation differences removed (large / view / dictionary)."""
    if pat.is_dictionary(t):
        return normalize(t.value_type)
    if pat.is_large_string(t) or pat.is_string_view(t):
        return pa.string()
    if pat.is_large_binary(t) or pat.is_binary_view(t):
        return pa.binary()
    if pat.is_timestamp(t):
        return pa.timestamp("us", "UTC" if t.tz else None)
    if pat.is_list(t) or pat.is_large_list(t) or pat.is_list_view(t) or pat.is_large_list_view(t):
        return pa.list_(normalize(t.value_type))
    if pat.is_fixed_size_list(t):
        return pa.list_(normalize(t.value_type))
    if pat.is_struct(t):
        return pa.struct([pa.field(f.name, normalize(f.type)) for f in t])
    if pat.is_map(t):
        return pa.map_(normalize(t.key_type), normalize(t.item_type))
    return t


def _fits(data: pa.DataType, table: pa.DataType) -> bool:
    """True when values of ``data`` go into a ``table`` column without loss."""
    d, t = normalize(data), normalize(table)
    if d == t or pat.is_null(d):
        return True
    if t in _INT_RANK:
        if d in _INT_RANK:
            return _INT_RANK[d] <= _INT_RANK[t]
        if d in _UINT_FITS:
            return _UINT_FITS[d] <= _INT_RANK[t]
        return False
    if t in _FLOATS and d in _FLOATS:
        return _FLOATS[d] <= _FLOATS[t]
    if pat.is_list(t) and pat.is_list(d):
        return _fits(d.value_type, t.value_type)
    if pat.is_struct(t) and pat.is_struct(d):
        names = {f.name: f.type for f in t}
        return all(f.name in names and _fits(f.type, names[f.name]) for f in d)
    return False


def write_conflicts(
    table: pa.Schema, data: pa.Schema, *, allow_new_columns: bool
) -> list[str]:
    """Why ``data`` cannot be written into a table of schema ``table`` (empty: it can).

    Nullable columns missing from ``data`` are fine (see :func:`fill_missing`), required
    ones are conflicts; extra columns are
    conflicts unless ``allow_new_columns``; a column of another type is a conflict unless
    the type widens losslessly.

    Examples
    --------
    >>> write_conflicts(pa.schema({"id": pa.int64()}), pa.schema({"id": pa.string()}),
    ...                 allow_new_columns=False)
    ["column 'id': the table has int64, the data has string"]
    """
    existing = {f.name: f.type for f in table}
    problems: list[str] = [
        f"required column {f.name!r} ({normalize(f.type)}, not null) is missing from the data"
        for f in table if not f.nullable and f.name not in data.names
    ]
    for f in data:
        if f.name not in existing:
            if not allow_new_columns:
                problems.append(f"column {f.name!r} is not in the table")
        elif not _fits(f.type, existing[f.name]):
            problems.append(
                f"column {f.name!r}: the table has {normalize(existing[f.name])}, "
                f"the data has {normalize(f.type)}"
            )
    return problems


def fill_missing(source: Source, table: pa.Schema) -> Source:
    """Add the table's nullable columns that ``source`` lacks, as nulls of the table's type."""
    missing = [f for f in table if f.name not in source.schema.names and f.nullable]
    if not missing:
        return source
    schema = source.schema
    for f in missing:
        schema = schema.append(pa.field(f.name, f.type, nullable=True))

    def widen(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = list(batch.columns) + [pa.nulls(batch.num_rows, f.type) for f in missing]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    data = source.data
    if isinstance(data, pa.Table):
        for f in missing:
            data = data.append_column(pa.field(f.name, f.type), pa.nulls(data.num_rows, f.type))
        return source.replace(data)
    return source.replace(pa.RecordBatchReader.from_batches(schema, (widen(b) for b in data)))


def schema_changes(
    before: pa.Schema, after: pa.Schema
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[ColumnChange, ...]]:
    """Columns added, removed and retyped going from ``before`` to ``after``."""
    old = {f.name: normalize(f.type) for f in before}
    new = {f.name: normalize(f.type) for f in after}
    added = tuple(n for n in new if n not in old)
    removed = tuple(n for n in old if n not in new)
    retyped = tuple(
        ColumnChange(n, str(old[n]), str(new[n])) for n in new if n in old and old[n] != new[n]
    )
    return added, removed, retyped
