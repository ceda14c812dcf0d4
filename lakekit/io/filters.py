"""Filters: a pyarrow.compute.Expression or DNF tuples, and hive partition expressions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Union

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakekit.errors import ConfigError

__all__ = ["Filter", "partition_expression", "partition_schema", "to_expression"]

Filter = Union[pc.Expression, Sequence[Any], None]  # noqa: UP007 (a runtime alias on 3.10)

_INT = re.compile(r"^-?\d{1,18}$")
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def to_expression(filter: Filter) -> pc.Expression | None:
    """Normalise a filter into a pyarrow Expression.

    DNF: a list of ``(column, op, value)`` tuples is an AND; a list of such lists is an
    OR of ANDs. Ops: ``= == != < > <= >= in not in``.

    Examples
    --------
    >>> to_expression([("x", ">", 5), ("y", "=", "a")])
    <pyarrow.compute.Expression ((x > 5) and (y == "a"))>
    """
    if filter is None:
        return None
    if isinstance(filter, pc.Expression):
        return filter
    if isinstance(filter, (list, tuple)):
        if not filter:
            return None
        try:
            return pq.filters_to_expression(list(filter))
        except (TypeError, ValueError, NotImplementedError) as exc:
            raise ConfigError(
                f"invalid filter {filter!r}: {exc}; expected [('col', op, value), ...] or a "
                "pyarrow.compute.Expression"
            ) from None
    raise ConfigError(
        f"invalid filter of type {type(filter).__name__}; expected a "
        "pyarrow.compute.Expression or DNF tuples [('col', op, value), ...]"
    )


def partition_schema(partitions: Sequence[Sequence[tuple[str, str]]]) -> pa.Schema:
    """Types of hive partition keys: int64 when every value is an integer, else string."""
    keys: list[str] = []
    values: dict[str, list[str]] = {}
    for part in partitions:
        for k, v in part:
            if k not in values:
                keys.append(k)
                values[k] = []
            values[k].append(v)
    fields = []
    for k in keys:
        vals = [v for v in values[k] if v != _NULL_PARTITION]
        typ = pa.int64() if vals and all(_INT.match(v) for v in vals) else pa.string()
        fields.append(pa.field(k, typ))
    return pa.schema(fields)


def partition_expression(
    partition: Sequence[tuple[str, Any]], schema: pa.Schema
) -> pc.Expression | None:
    """The expression ``k1 == v1 and k2 == v2 ...`` for one file's partition values."""
    expr: pc.Expression | None = None
    for key, raw in partition:
        if raw is None or raw == _NULL_PARTITION:
            term = pc.field(key).is_null()
        else:
            typ = schema.field(key).type if key in schema.names else pa.string()
            try:
                value = pa.scalar(raw).cast(typ) if not isinstance(raw, pa.Scalar) else raw
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                value = pa.scalar(str(raw))
            term = pc.field(key) == value
        expr = term if expr is None else expr & term
    return expr
