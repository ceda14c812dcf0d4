"""The sink's target schema: types to decode into and a pandera schema to validate against.

``schema=`` of :class:`~lakekit.KafkaDeltaSink` may be a ``pyarrow.Schema`` (decode and
cast to exactly these fields), a pandera schema (polars or pandas backend, or a
``DataFrameModel``; the column dtypes become the decode types and every row is
validated), a path to a pandera YAML file, or a name in the ``schemas/`` registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakekit.errors import ConfigError
from lakekit.sink.decode import ExtraFields

__all__ = ["SinkSchema", "resolve_sink_schema", "validate_rows"]

_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class SinkSchema:
    """What the sink decodes into and validates against."""

    arrow: pa.Schema | None
    """Fields with fixed types (``None``: infer everything)."""
    pandera: Any = None
    """A pandera schema every decoded row is validated against, or ``None``."""
    extra: ExtraFields = "infer"
    """Fields not in ``arrow``: inferred and merged into the table, or ignored."""
    description: str = "inferred"


def resolve_sink_schema(schema: Any) -> SinkSchema:
    """Turn a ``schema=`` argument into a :class:`SinkSchema`.

    Examples
    --------
    >>> import pyarrow as pa
    >>> resolve_sink_schema(pa.schema([("id", pa.int64())])).extra
    'ignore'
    """
    if schema is None:
        return SinkSchema(None)
    if isinstance(schema, pa.Schema):
        return SinkSchema(_normalize_schema(schema), None, "ignore", "pyarrow schema")
    pandera_schema, description = _pandera_schema(schema)
    arrow = _arrow_from_pandera(pandera_schema)
    extra: ExtraFields = "ignore" if getattr(pandera_schema, "strict", False) else "infer"
    return SinkSchema(arrow, pandera_schema, extra, description)


def _pandera_schema(schema: Any) -> tuple[Any, str]:
    module = type(schema).__module__ or ""
    if module.startswith("pandera.api.pandas") or module.startswith("pandera.api.polars"):
        return schema, f"pandera schema {getattr(schema, 'name', None) or ''}".strip()
    to_schema = getattr(schema, "to_schema", None)
    if isinstance(schema, type) and callable(to_schema):
        return to_schema(), f"pandera model {schema.__name__}"
    if isinstance(schema, (str, os.PathLike)):
        from lakekit.quality.schemas import load_schema

        resolved = load_schema(schema)
        return resolved.schema, f"schema {resolved.name or schema}"
    raise ConfigError(
        "schema must be a pyarrow.Schema, a pandera schema, a path to a pandera YAML file or "
        f"a schema name; got {type(schema).__name__}"
    )


def _normalize_type(t: pa.DataType) -> pa.DataType:
    """Plain arrow types for decoding: no large / view variants, microsecond timestamps."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t) and t.unit == "ns":
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(t.value_field.with_type(_normalize_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_normalize_type(f.type)) for f in t])
    return t


def _normalize_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(_normalize_type(f.type)) for f in schema])


def _arrow_from_pandera(schema: Any) -> pa.Schema | None:
    columns = getattr(schema, "columns", None) or {}
    polars = (type(schema).__module__ or "").startswith("pandera.api.polars")
    fields = []
    for name, column in columns.items():
        dtype = getattr(column, "dtype", None)
        if dtype is None or getattr(column, "regex", False):
            continue
        t = _arrow_type(dtype, polars)
        if t is not None:
            fields.append(pa.field(str(name), t, nullable=True))
    return pa.schema(fields) if fields else None


def _arrow_type(dtype: Any, polars: bool) -> pa.DataType | None:
    native = getattr(dtype, "type", dtype)
    try:
        if polars:
            import polars as pl

            return _normalize_type(pl.Series([], dtype=native).to_arrow().type)
        import numpy as np

        if isinstance(native, np.dtype):
            if native.kind == "O":
                return None
            return _normalize_type(pa.from_numpy_dtype(native))
        import pandas as pd

        return _normalize_type(pa.array(pd.Series([], dtype=native)).type)
    except Exception:
        return None


def validate_rows(table: pa.Table, schema: Any) -> dict[int, str]:
    """Validate ``table`` with a pandera schema; map each failing row to what failed.

    A failure that names no row (a missing column, a wrong dtype, a dataframe-wide check)
    fails every row.

    Examples
    --------
    >>> import pyarrow as pa, pandera.polars as pap, polars as pl
    >>> s = pap.DataFrameSchema({"x": pap.Column(pl.Int64, pap.Check.ge(0))})
    >>> validate_rows(pa.table({"x": [1, -1]}), s)
    {1: "column 'x' failed greater_than_or_equal_to(0): -1"}
    """
    import pandera.errors as pe

    if table.num_rows == 0:
        return {}
    polars = (type(schema).__module__ or "").startswith("pandera.api.polars")
    if polars:
        import polars as pl

        frame: Any = pl.from_arrow(table)
    else:
        frame = table.to_pandas()
    try:
        schema.validate(frame, lazy=True)
        return {}
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
        records = cases.to_dicts() if polars else cases.to_dict("records")
    except pe.SchemaError as exc:
        message = " ".join(str(exc).split())[:_MAX_ERROR_CHARS]
        return dict.fromkeys(range(table.num_rows), message)
    per_row: dict[int, list[str]] = {}
    everywhere: list[str] = []
    for rec in records:
        text = _describe(rec)
        index = rec.get("index")
        if index is None or (isinstance(index, float) and index != index):
            everywhere.append(text)
        else:
            per_row.setdefault(int(index), []).append(text)
    if everywhere:
        for i in range(table.num_rows):
            per_row.setdefault(i, []).extend(everywhere)
    return {i: "; ".join(msgs)[:_MAX_ERROR_CHARS] for i, msgs in per_row.items()}


def _describe(rec: dict[str, Any]) -> str:
    column, check, case = rec.get("column"), rec.get("check"), rec.get("failure_case")
    where = f"column {column!r}" if column not in (None, "") else "dataframe"
    if check == "column_in_dataframe":
        return f"column {case!r} is missing"
    return f"{where} failed {check}: {case}"
