"""Completeness: the share of non-null values per column, from metadata before any data.

A Delta log holds each file's ``nullCount`` per column and its ``numRecords``; parquet
footers hold ``null_count`` per row group. Only where that is missing (a file written
without statistics, a column past the writer's statistics limit) is the file's footer read,
and only where the footer has none too is that one column of that one file scanned. The
result says how: ``method`` and ``files_read`` (files whose data was read) as freshness
does, and ``footers_read``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from lakekit.errors import ConfigError
from lakekit.io.formats import FORMATS
from lakekit.quality.report import CheckResult, Status
from lakekit.quality.sources import Source, guard

__all__ = ["Completeness", "NullCounts", "check_completeness", "null_counts"]

_FileNeed = tuple[str, int | None, list[str], int | None]  # path, size, columns, rows

_METHOD_TEXT = {
    "delta_stats": "from Delta log statistics, no data file read",
    "parquet_footer": "from parquet footer statistics, no data read",
    "scan": "from a scan of the column(s)",
    "frame": "from the in-memory data",
}


@dataclass(frozen=True)
class Completeness:
    """A completeness check: fail when a column's non-null ratio is below ``min_ratio``.

    Parameters
    ----------
    columns
        A column name or a list of them; one result per column.
    min_ratio
        The least share of non-null values (0..1) that passes.
    warn_ratio
        Below this (but at least ``min_ratio``) warns; ``None``: no warning band.

    Examples
    --------
    >>> import lakekit as lk
    >>> lk.Completeness(["email", "country"], min_ratio=0.95, warn_ratio=0.99).columns
    ('email', 'country')
    """

    columns: str | Sequence[str]
    min_ratio: float = 0.95
    warn_ratio: float | None = None
    name: ClassVar[str] = "completeness"

    def __post_init__(self) -> None:
        cols = (self.columns,) if isinstance(self.columns, str) else self.columns
        if not isinstance(cols, Sequence) or not cols or not all(
                isinstance(c, str) and c for c in cols):
            raise ConfigError(f"Completeness columns must be column names, e.g. ['email']; "
                              f"got {self.columns!r}")
        object.__setattr__(self, "columns", tuple(dict.fromkeys(cols)))
        for name in ("min_ratio", "warn_ratio"):
            value = getattr(self, name)
            if value is None and name == "warn_ratio":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    0.0 <= value <= 1.0):
                raise ConfigError(f"Completeness {name} must be a ratio between 0 and 1 "
                                  f"(0.95 for 95%); got {value!r}")
        if self.warn_ratio is not None and self.warn_ratio < self.min_ratio:
            raise ConfigError(f"Completeness warn_ratio ({self.warn_ratio}) must be at least "
                              f"min_ratio ({self.min_ratio})")

    def evaluate(self, source: Source, *, now: datetime) -> list[CheckResult]:
        """Run this check on ``source`` (the :class:`~lakekit.quality.protocol.Check` protocol)."""
        return check_completeness(source, self)


@dataclass(frozen=True)
class NullCounts:
    """Rows and null counts of some columns, and how they were found.

    ``files_read`` counts files whose data was read (a scan of those columns only);
    ``footers_read`` files whose parquet footer was read for missing statistics.
    """

    rows: int
    nulls: dict[str, int]
    method: str
    files: int = 0
    files_read: int = 0
    footers_read: int = 0


def check_completeness(source: Source, check: Completeness) -> list[CheckResult]:
    """Run ``check`` on ``source``: one result per column, ``observed`` the non-null ratio."""
    columns = list(check.columns)
    _require_columns(source, columns)
    counts = null_counts(source, columns)
    how = _METHOD_TEXT.get(counts.method, counts.method)
    if counts.footers_read:
        how += f", {counts.footers_read} of {counts.files} footers read for missing statistics"
    if counts.files_read and counts.method != "scan":
        how += f", a scan of {counts.files_read} of {counts.files} files lacking them"
    results = []
    for column in columns:
        nulls = counts.nulls[column]
        details: dict[str, Any] = {
            "column": column, "rows": counts.rows, "nulls": nulls, "method": counts.method,
            "files": counts.files, "files_read": counts.files_read,
            "footers_read": counts.footers_read, "warn_ratio": check.warn_ratio,
            "null_counts": {column: nulls},  # read by lineage (dataQualityMetrics)
        }
        if counts.rows == 0:
            results.append(CheckResult(
                "completeness", "warn", None, check.min_ratio,
                f"{column}: no rows, so no completeness to measure ({how})", details))
            continue
        ratio = (counts.rows - nulls) / counts.rows
        status: Status = "pass"
        if ratio < check.min_ratio:
            status = "fail"
        elif check.warn_ratio is not None and ratio < check.warn_ratio:
            status = "warn"
        limits = f"min {check.min_ratio:.2%}" + (
            f", warn {check.warn_ratio:.2%}" if check.warn_ratio is not None else "")
        message = (f"{column}: {ratio:.2%} non-null ({nulls:,} nulls in {counts.rows:,} rows; "
                   f"{limits}) ({how})")
        results.append(CheckResult("completeness", status, round(ratio, 6), check.min_ratio,
                                   message, details))
    return results


def _require_columns(source: Source, columns: list[str]) -> None:
    names = source.column_names()
    missing = [c for c in columns if c not in names]
    if missing:
        raise ConfigError(
            f"{source.label}: completeness column(s) {', '.join(map(repr, missing))} not in "
            f"the data; columns: {', '.join(names[:30])}{' ...' if len(names) > 30 else ''}"
        )


def null_counts(source: Source, columns: list[str]) -> NullCounts:
    """Rows and nulls of ``columns`` in ``source``, from metadata where it has them."""
    if source.frame is not None:
        df = source.frame.select(columns)
        return NullCounts(df.height, {c: int(n) for c, n in zip(
            columns, df.null_count().row(0), strict=True)}, "frame")
    if source.kind == "delta":
        return guard(lambda: _delta_counts(source, columns), what=source.label,
                     redact=source.redact)
    return guard(lambda: _files_counts(source, columns), what=source.label, redact=source.redact)


# -- Delta ------------------------------------------------------------------------------

def _delta_counts(source: Source, columns: list[str]) -> NullCounts:
    import pyarrow as pa
    import pyarrow.compute as pc

    dt = source.delta_table()
    actions = pa.table(dt.get_add_actions(flatten=True))
    n = actions.num_rows
    if n == 0:
        return NullCounts(0, dict.fromkeys(columns, 0), "delta_stats")
    for name in ("deletionVector.cardinality", "deletion_vector.cardinality"):
        if name in actions.column_names and (pc.max(actions.column(name)).as_py() or 0) > 0:
            # the statistics count rows a deletion vector has since removed: scan instead
            return _scan_counts(source.dataset(), columns, files=n)
    records = actions.column("num_records").to_pylist()
    partitions = set(dt.metadata().partition_columns)
    nulls = dict.fromkeys(columns, 0)
    need: dict[int, list[str]] = {}  # file index -> columns without statistics
    for i, rows in enumerate(records):
        if rows is None:
            need[i] = list(columns)
    for column in columns:
        if column in partitions:
            values = actions.column(f"partition.{column}").to_pylist()
            for value, rows in zip(values, records, strict=True):
                if value is None and rows is not None:
                    nulls[column] += rows
            continue
        stat = f"null_count.{column}"
        counts = actions.column(stat).to_pylist() if stat in actions.column_names else [None] * n
        for i, (count, rows) in enumerate(zip(counts, records, strict=True)):
            if rows is None:
                continue
            if count is None:
                need.setdefault(i, []).append(column)
            else:
                nulls[column] += int(count)
    total = sum(r for r in records if r is not None)
    if not need:
        return NullCounts(total, nulls, "delta_stats", files=n)
    from urllib.parse import unquote

    root = source.location.path.rstrip("/") if source.location is not None else ""
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    files = [(p if "://" in p else f"{root}/{unquote(p)}", sizes[i], need[i],
              records[i]) for i, p in enumerate(paths) if i in need]
    file_rows, extra, footers, scanned = _footer_or_scan(source, files)
    extra_rows = sum(n for (_, _, _, rows), n in zip(files, file_rows, strict=True)
                     if rows is None)
    for column, count in extra.items():
        nulls[column] += count
    method = "scan" if scanned == n else "delta_stats"
    return NullCounts(total + extra_rows, nulls, method, files=n, files_read=scanned,
                      footers_read=footers)


# -- plain files ------------------------------------------------------------------------

def _files_counts(source: Source, columns: list[str]) -> NullCounts:
    ds = source.dataset()
    entries = ds.entries
    if not FORMATS[ds.format].parquet_files:
        return _scan_counts(ds, columns, files=len(entries))
    parts = [c for c in columns if c in ds.partition_schema.names]
    plain = [c for c in columns if c not in parts]
    files: list[_FileNeed] = [(e.path, e.size, plain, None) for e in entries]
    file_rows, nulls, footers, scanned = _footer_or_scan(source, files)
    for c in parts:  # a partition value that is missing makes its file's rows null
        nulls[c] = sum(rows for e, rows in zip(entries, file_rows, strict=True)
                       if dict(e.partition).get(c) in (None, "", "__HIVE_DEFAULT_PARTITION__"))
    method = "scan" if scanned == len(entries) and entries else "parquet_footer"
    return NullCounts(sum(file_rows), {c: nulls.get(c, 0) for c in columns}, method,
                      files=len(entries), files_read=scanned, footers_read=footers)


# -- footers, then scans ----------------------------------------------------------------

def _footer_or_scan(
    source: Source, files: list[_FileNeed]
) -> tuple[list[int], dict[str, int], int, int]:
    """For each ``(path, size, columns, rows)``: nulls from the footer, else a scan.

    Returns each file's rows (from its footer), the nulls found per column, the footers
    read and the files scanned.
    """
    from lakekit.io.discover import FileEntry
    from lakekit.io.parquet import ParquetFiles
    from lakekit.io.pipeline import ordered_map
    from lakekit.storage import default_workers

    location = source.location
    assert location is not None
    pf = ParquetFiles(location)

    def footer(item: _FileNeed) -> Any:
        return pf.open(FileEntry(item[0], item[1]), None, keep_tail=False).metadata

    file_rows: list[int] = []
    nulls: dict[str, int] = {}
    to_scan: dict[str, list[str]] = {}
    metas = ordered_map(footer, files, workers=default_workers(location))
    for (path, _, columns, _), meta in zip(files, metas, strict=True):
        file_rows.append(int(meta.num_rows))
        for column in columns:
            count = _footer_nulls(meta, column)
            if count is None:
                to_scan.setdefault(path, []).append(column)
            else:
                nulls[column] = nulls.get(column, 0) + count
    for path, columns in to_scan.items():
        scanned = _scan_counts(_files_dataset(source, [path]), columns, files=1)
        for column in columns:
            nulls[column] = nulls.get(column, 0) + scanned.nulls[column]
    return file_rows, nulls, len(files), len(to_scan)


def _footer_nulls(meta: Any, column: str) -> int | None:
    """Nulls of top-level ``column`` in one file's footer; None when a row group lacks them.

    A column the file does not have is all null (a column added to the table later).
    """
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    if column not in names:
        leaves = [n for n in names if n.split(".")[0] == column]
        return None if leaves else meta.num_rows
    idx = names.index(column)
    total = 0
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(idx).statistics
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def _files_dataset(source: Source, paths: list[str]) -> Any:
    import lakekit as lk

    location = source.location
    assert location is not None
    return lk.dataset(paths, filesystem=location.fs, format="parquet", partitioning=None)


def _scan_counts(ds: Any, columns: list[str], *, files: int) -> NullCounts:
    rows = 0
    nulls = dict.fromkeys(columns, 0)
    for batch in ds.iter_batches(columns=columns):
        rows += batch.num_rows
        for column in columns:
            nulls[column] += batch.column(column).null_count
    return NullCounts(rows, nulls, "scan", files=files, files_read=files)
