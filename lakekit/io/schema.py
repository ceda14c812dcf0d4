"""Schema unification across shards: widen compatible types, fill missing columns with
nulls, and name both files and the column when types cannot be reconciled."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from lakekit.errors import SchemaMismatchError

__all__ = ["unify"]


def unify(schemas: Sequence[tuple[str, pa.Schema]]) -> pa.Schema:
    """Unify ``(url, schema)`` pairs in order into one schema.

    Compatible types widen (int32 -> int64, float32 -> float64, int -> float, null -> any);
    a column missing from some files becomes nullable; incompatible types raise
    :class:`SchemaMismatchError` naming both files and the column.

    Examples
    --------
    >>> a = pa.schema([("x", pa.int32())]); b = pa.schema([("x", pa.int64()), ("y", pa.string())])
    >>> unify([("a.parquet", a), ("b.parquet", b)])
    x: int64
    y: string
    """
    if not schemas:
        return pa.schema([])
    first_url, unified = schemas[0]
    origin = {name: first_url for name in unified.names}
    seen_in_all = set(unified.names)
    previous = unified
    for url, schema in schemas[1:]:
        if schema.equals(previous):
            continue  # shards written alike: nothing new to unify (the common case)
        previous = schema
        seen_in_all &= set(schema.names)
        try:
            unified = pa.unify_schemas([unified, schema], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            raise _mismatch(unified, schema, origin, url, exc) from None
        for name in schema.names:
            origin.setdefault(name, url)
    fields = [
        f if f.name in seen_in_all else f.with_nullable(True) for f in unified
    ]
    return pa.schema(fields, metadata=unified.metadata)


def _mismatch(
    unified: pa.Schema, schema: pa.Schema, origin: dict[str, str], url: str, exc: Exception
) -> SchemaMismatchError:
    for f in schema:
        if f.name not in unified.names:
            continue
        g = unified.field(f.name)
        try:
            pa.unify_schemas([pa.schema([g]), pa.schema([f])], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            return SchemaMismatchError(
                f"column {f.name!r} is {g.type} in {origin.get(f.name, '?')} but {f.type} in "
                f"{url}; these types cannot be reconciled (cast one side, or read the files "
                "separately)"
            )
    return SchemaMismatchError(f"{url}: schema cannot be reconciled with earlier files: {exc}")
