"""Partition pruning from paths alone: which files a filter can match, before any is opened.

A filter on hive partition columns decides from the ``key=value/`` directories alone which
files may hold matching rows. :func:`partition_filter` finds the part of a filter that can
be judged that way (the whole filter when it names only partition columns; for DNF tuples,
each AND group's partition terms), and :func:`select` keeps the files whose partition
values may match an expression. Neither reads a byte of data: the scan then infers the
schema from the files kept (:meth:`lakekit.io.scan.Scan.scope`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from lakekit.errors import ConfigError
from lakekit.io.discover import FileEntry
from lakekit.io.filters import Filter

__all__ = ["binds", "partition_filter", "select", "select_by_values"]

_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

_BIND_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError)


def binds(expr: pc.Expression, schema: pa.Schema) -> bool:
    """True when ``expr`` applies to ``schema`` (every column it names is there, types fit)."""
    try:
        schema.empty_table().filter(expr)
    except _BIND_ERRORS:
        return False
    return True


def partition_filter(
    filter: Filter, expr: pc.Expression, partition_fields: pa.Schema
) -> pc.Expression | None:
    """An expression on partition columns only that every row matching ``filter`` satisfies,
    or ``None`` when none is found (the filter names data columns in a way that cannot be
    separated, or does not constrain the partitions).

    Examples
    --------
    >>> parts = pa.schema([("year", pa.int64())])
    >>> dnf = [("year", "=", 2021), ("amount", ">", 5)]
    >>> partition_filter(dnf, pq.filters_to_expression(dnf), parts)
    <pyarrow.compute.Expression (year == 2021)>
    """
    if not partition_fields.names:
        return None
    if binds(expr, partition_fields):
        return expr
    terms = _dnf_partition_terms(filter, set(partition_fields.names))
    if terms is not None and binds(terms, partition_fields):
        return terms
    return None


def _dnf_partition_terms(filter: Filter, names: set[str]) -> pc.Expression | None:
    """DNF tuples with the terms on data columns dropped (a wider filter: each AND group
    keeps its partition terms); ``None`` when an AND group has none, or not DNF."""
    if not isinstance(filter, (list, tuple)) or not filter:
        return None
    groups: Sequence[Any] = [filter] if isinstance(filter[0], tuple) else filter
    kept: list[list[tuple[Any, ...]]] = []
    for group in groups:
        if not isinstance(group, (list, tuple)):
            return None
        terms = [t for t in group if isinstance(t, tuple) and len(t) == 3 and t[0] in names]
        if not terms:
            return None  # this group may match any partition
        kept.append(terms)
    try:
        expr: pc.Expression = pq.filters_to_expression(kept)
    except (TypeError, ValueError, NotImplementedError):
        return None
    return expr


def select(
    entries: list[FileEntry],
    expr: pc.Expression,
    schema: pa.Schema,
    partition_expr: Callable[[FileEntry], pc.Expression | None],
) -> list[FileEntry]:
    """The entries whose partition values may match ``expr`` (typed by ``schema``), in order."""
    true = pc.scalar(True)
    parts = [partition_expr(e) for e in entries]
    probe = pads.FileSystemDataset.from_paths(
        [e.path for e in entries],
        schema=schema,
        format=pads.ParquetFileFormat(),
        filesystem=pa.fs.LocalFileSystem(),
        partitions=[p if p is not None else true for p in parts],
    )
    try:
        keep = {f.path for f in probe.get_fragments(filter=expr)}
    except _BIND_ERRORS as exc:
        raise ConfigError(f"invalid filter {expr}: {exc}") from None
    return [e for e in entries if e.path in keep]


def select_by_values(
    entries: list[FileEntry], expr: pc.Expression, partition_fields: pa.Schema
) -> list[FileEntry] | None:
    """The entries whose partition values satisfy ``expr``, an expression on partition
    columns only, evaluated once over a table of every file's values (no expression per
    file: thousands of partitions take milliseconds). ``None`` when some file lacks one of
    the partition keys (then :func:`select` decides, keeping such files)."""
    keys = partition_fields.names
    values: dict[str, list[str | None]] = {k: [] for k in keys}
    for e in entries:
        found = dict(e.partition)
        if len(found) != len(keys) or any(k not in found for k in keys):
            return None
        for k in keys:
            v = found[k]
            values[k].append(None if v == _NULL_PARTITION else v)
    try:
        table = pa.table({
            k: pa.array(values[k], pa.string()).cast(partition_fields.field(k).type)
            for k in keys
        })
        mask = pc.fill_null(pads.dataset(table).to_table(
            columns={"keep": expr}).column("keep"), False)
    except _BIND_ERRORS:
        return None
    return [e for e, keep in zip(entries, mask.to_pylist(), strict=True) if keep]
