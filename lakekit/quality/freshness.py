"""Freshness, answered from metadata before any data is read.

With a column, the age is *now* minus the newest value of that column. For a Delta table
that value comes from the log's per-file statistics (``maxValues``) or partition values;
for parquet from the footers' row-group statistics; only files without statistics are
scanned, and then for that one column only. Without a column, the age is the time since
the last Delta commit, or since the newest file of a plain dataset was written.
Timestamps without a time zone are taken as UTC; a date counts from its midnight UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from lakekit.errors import ConfigError
from lakekit.io.formats import FORMATS
from lakekit.quality.durations import format_duration, parse_duration
from lakekit.quality.report import CheckResult, Status
from lakekit.quality.sources import Source, guard

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Freshness", "Newest", "check_freshness", "newest"]

_METHOD_TEXT = {
    "delta_stats": "from Delta log statistics, no data file read",
    "delta_partition_values": "from Delta partition values, no data file read",
    "delta_commit": "time of the last Delta commit, from the log",
    "parquet_footer": "from parquet footer statistics",
    "partition_values": "from partition directory names",
    "file_mtime": "modification time of the newest file",
    "scan": "from a scan of that one column",
    "frame": "from the in-memory data",
}


@dataclass(frozen=True)
class Freshness:
    """A freshness check: fail when the data is older than ``max_age``.

    Parameters
    ----------
    column
        A timestamp (or date) column whose newest value dates the data. Without one, the
        time of the last Delta commit (or the newest file's modification time) is used.
    max_age
        Older than this fails: ``"30m"``, ``"1h"``, ``"2d"`` or a ``timedelta``.
    warn_age
        Older than this (but within ``max_age``) warns.

    Examples
    --------
    >>> import lakekit as lk
    >>> lk.Freshness(column="event_time", max_age="1h", warn_age="30m").max_age_delta
    datetime.timedelta(seconds=3600)
    """

    column: str | None = None
    max_age: str | timedelta = "1h"
    warn_age: str | timedelta | None = None
    name: ClassVar[str] = "freshness"

    def __post_init__(self) -> None:
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise ConfigError(f"Freshness column must be a column name; got {self.column!r}")
        max_age = self.max_age_delta
        warn = self.warn_age_delta
        if warn is not None and warn >= max_age:
            raise ConfigError(
                f"Freshness warn_age ({format_duration(warn)}) must be shorter than max_age "
                f"({format_duration(max_age)})"
            )

    def evaluate(self, source: Source, *, now: datetime) -> CheckResult:
        """Run this check on ``source`` (the :class:`~lakekit.quality.protocol.Check` protocol)."""
        return check_freshness(source, self, now=now)

    @property
    def max_age_delta(self) -> timedelta:
        """``max_age`` as a timedelta."""
        return parse_duration(self.max_age, what="Freshness max_age")

    @property
    def warn_age_delta(self) -> timedelta | None:
        """``warn_age`` as a timedelta (``None`` when not set)."""
        if self.warn_age is None:
            return None
        return parse_duration(self.warn_age, what="Freshness warn_age")


@dataclass(frozen=True)
class Newest:
    """The newest timestamp of a source and how it was found.

    ``files_read`` counts data files whose contents (beyond footers) were read.
    """

    value: datetime | None
    method: str
    files_read: int = 0
    files: int = 0


def check_freshness(source: Source, freshness: Freshness, *, now: datetime) -> CheckResult:
    """Run ``freshness`` on ``source``; the result's ``observed`` is the age in seconds."""
    found = newest(source, freshness.column)
    max_age = freshness.max_age_delta
    warn_age = freshness.warn_age_delta
    what = f"newest {freshness.column}" if freshness.column else "last update"
    how = _METHOD_TEXT.get(found.method, found.method)
    if found.files_read and found.method != "scan":
        how = (f"{how}, and a scan of that column in {found.files_read} of {found.files} "
               "files lacking statistics")
    details: dict[str, Any] = {
        "column": freshness.column,
        "method": found.method,
        "files": found.files,
        "files_read": found.files_read,
        "max_age_s": max_age.total_seconds(),
        "warn_age_s": warn_age.total_seconds() if warn_age is not None else None,
        "now": now.isoformat(),
    }
    limits = f"max {format_duration(max_age)}" + (
        f", warn {format_duration(warn_age)}" if warn_age is not None else "")
    if found.value is None:
        return CheckResult(
            "freshness", "fail", None, max_age.total_seconds(),
            f"no {what}: the source has no rows or only nulls in it ({how})", details,
        )
    age = now - found.value
    details["newest"] = found.value.isoformat()
    status: Status = "pass"
    if age > max_age:
        status = "fail"
    elif warn_age is not None and age > warn_age:
        status = "warn"
    when = found.value.isoformat(timespec="milliseconds")
    if age < timedelta(0):
        message = (f"{what} {when} is {format_duration(-age)} in the future "
                   f"(clock skew?); {limits} ({how})")
    else:
        message = f"{what} {when} is {format_duration(age)} old ({limits}) ({how})"
    return CheckResult("freshness", status, round(age.total_seconds(), 3),
                       max_age.total_seconds(), message, details)


def newest(source: Source, column: str | None) -> Newest:
    """The newest timestamp of ``source`` (of ``column``, or of its last write)."""
    if source.kind == "frame":
        return _frame_newest(source, column)
    if source.kind == "delta":
        return guard(lambda: _delta_newest(source, column), what=source.label,
                     redact=source.redact)
    return guard(lambda: _files_newest(source, column), what=source.label, redact=source.redact)


# -- in-memory --------------------------------------------------------------------------

def _frame_newest(source: Source, column: str | None) -> Newest:
    import polars as pl

    df = source.frame
    assert df is not None
    if column is None:
        raise ConfigError(
            "freshness of in-memory data needs a column: Freshness(column='event_time', ...)"
        )
    field = _arrow_field(source.arrow_schema(), column, source.label)
    series = df.get_column(column)
    if not isinstance(series.dtype, (pl.Datetime, pl.Date)):
        series = _cast_strings(series.to_arrow(), field, source.label)
        return Newest(_max_utc(series), "frame")
    return Newest(to_utc(series.max()), "frame")


# -- Delta ------------------------------------------------------------------------------

def _delta_newest(source: Source, column: str | None) -> Newest:
    import pyarrow as pa
    import pyarrow.compute as pc

    dt = source.delta_table()
    if column is None:
        from lakekit.storage import retry_call

        history = retry_call(lambda: dt.history(1),
                             what=f"{source.label}: reading the last Delta commit")
        if not history:
            return Newest(None, "delta_commit")
        ms = history[0].get("timestamp")
        value = datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms is not None else None
        return Newest(value, "delta_commit")
    field = _arrow_field(source.arrow_schema(), column, source.label)
    _require_time_type(field, source.label, allow_string=False)
    actions = pa.table(dt.get_add_actions(flatten=True))
    n_files = actions.num_rows
    if n_files == 0:
        return Newest(None, "delta_stats")
    if column in dt.metadata().partition_columns:
        values = actions.column(f"partition.{column}")
        parsed = pc.cast(values, field.type)
        return Newest(_max_utc(parsed), "delta_partition_values", files=n_files)
    name = f"max.{column}"
    if name not in actions.column_names:
        unknown = list(range(n_files))
        best: datetime | None = None
    else:
        maxes = actions.column(name)
        has_max = pc.is_valid(maxes)
        all_null = _all_null(actions, column)
        known = pc.or_(has_max, all_null)
        unknown = [i for i, ok in enumerate(known.to_pylist()) if not ok]
        best = _max_utc(maxes)
    if not unknown:
        return Newest(best, "delta_stats", files=n_files)
    root = source.location.path.rstrip("/") if source.location is not None else ""
    from urllib.parse import unquote

    paths = actions.column("path").to_pylist()
    files = [p if "://" in p else f"{root}/{unquote(p)}" for p in (paths[i] for i in unknown)]
    scanned = _scan_files(source, files, column, field)
    value = _later(best, scanned)
    method = "scan" if len(unknown) == n_files else "delta_stats"
    return Newest(value, method, files_read=len(files), files=n_files)


def _all_null(actions: pa.Table, column: str) -> pa.ChunkedArray:
    """Per file: True when the statistics say every value of ``column`` is null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name = f"null_count.{column}"
    if name not in actions.column_names:
        return pa.chunked_array([pa.array([False] * actions.num_rows)])
    equal = pc.equal(actions.column(name), actions.column("num_records"))
    return pc.fill_null(equal, False)


# -- plain files ------------------------------------------------------------------------

def _files_newest(source: Source, column: str | None) -> Newest:
    ds = source.dataset()
    entries = ds.entries
    location = source.location
    assert location is not None
    if column is None:
        return _newest_mtime(source, entries)
    schema = ds.schema
    field = _arrow_field(schema, column, source.label)
    if column in ds.partition_schema.names:
        import pyarrow as pa
        import pyarrow.compute as pc

        values = [dict(e.partition).get(column) for e in entries]
        parsed = pc.cast(pa.array(values, pa.string()), field.type)
        return Newest(_max_utc(parsed), "partition_values", files=len(entries))
    if not FORMATS[ds.format].parquet_files:
        _require_time_type(field, source.label, allow_string=True)
        return Newest(_scan_dataset(ds, column, field, source.label), "scan",
                      files_read=len(entries), files=len(entries))
    _require_time_type(field, source.label, allow_string=False)
    from lakekit.io.parquet import ParquetFiles
    from lakekit.io.pipeline import ordered_map
    from lakekit.storage import default_workers

    pf = ParquetFiles(location)

    def footer_max(entry: Any) -> tuple[datetime | None, bool]:
        meta = pf.open(entry, None, keep_tail=False).metadata
        return _footer_max(meta, column)

    best: datetime | None = None
    missing: list[str] = []
    results = ordered_map(footer_max, entries, workers=default_workers(location))
    for entry, (value, complete) in zip(entries, results, strict=True):
        best = _later(best, value)
        if not complete:
            missing.append(entry.path)
    if missing:
        best = _later(best, _scan_files(source, missing, column, field))
    method = "scan" if len(missing) == len(entries) else "parquet_footer"
    return Newest(best, method, files_read=len(missing), files=len(entries))


def _footer_max(meta: Any, column: str) -> tuple[datetime | None, bool]:
    """The max of ``column`` over a file's row groups, and whether every group had stats."""
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    if column not in names:
        return None, meta.num_rows == 0
    idx = names.index(column)
    best: datetime | None = None
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        stats = rg.column(idx).statistics
        if stats is not None and stats.has_min_max:
            best = _later(best, to_utc(stats.max))
        elif stats is not None and stats.has_null_count and stats.null_count == rg.num_rows:
            continue
        elif rg.num_rows:
            return best, False
    return best, True


def _newest_mtime(source: Source, entries: list[Any]) -> Newest:
    from lakekit.io.pipeline import ordered_map
    from lakekit.storage import default_workers, retry_call

    location = source.location
    assert location is not None

    def mtime(entry: Any) -> datetime | None:
        info = retry_call(lambda: location.fs.info(entry.path), what=location.url_of(entry.path))
        for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
            value = info.get(key)
            if value is None:
                continue
            if isinstance(value, (int, float)):
                return datetime.fromtimestamp(float(value), tz=timezone.utc)
            if isinstance(value, str):
                try:
                    return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
                except ValueError:
                    continue
            converted = to_utc(value)
            if converted is not None:
                return converted
        return None

    best: datetime | None = None
    for value in ordered_map(mtime, entries, workers=default_workers(location)):
        best = _later(best, value)
    return Newest(best, "file_mtime", files=len(entries))


def _scan_files(source: Source, paths: list[str], column: str, field: pa.Field) -> datetime | None:
    """The max of ``column`` over ``paths`` (parquet), reading that column only."""
    import lakekit as lk

    location = source.location
    assert location is not None
    ds = lk.dataset(paths, filesystem=location.fs, format="parquet", partitioning=None)
    return _scan_dataset(ds, column, field, source.label)


def _scan_dataset(ds: Any, column: str, field: pa.Field, label: str) -> datetime | None:
    best: datetime | None = None
    for batch in ds.iter_batches(columns=[column]):
        arr = batch.column(0)
        best = _later(best, _max_utc(_cast_strings(arr, field, label)))
    return best


# -- values -----------------------------------------------------------------------------

def to_utc(value: Any) -> datetime | None:
    """A tz-aware UTC datetime for a datetime / date / pandas Timestamp (naive = UTC)."""
    if value is None:
        return None
    to_py = getattr(value, "to_pydatetime", None)
    if callable(to_py):
        value = to_py(warn=False) if "Timestamp" in type(value).__name__ else to_py()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _max_utc(values: Any) -> datetime | None:
    import pyarrow.compute as pc

    if len(values) == 0:
        return None
    return to_utc(pc.max(values).as_py())


def _arrow_field(schema: pa.Schema, column: str, label: str) -> pa.Field:
    index = schema.get_field_index(column)
    if index < 0:
        raise ConfigError(
            f"{label}: freshness column {column!r} is not in the data; columns: "
            f"{', '.join(schema.names[:30])}{' ...' if len(schema.names) > 30 else ''}"
        )
    return schema.field(index)


def _require_time_type(field: pa.Field, label: str, *, allow_string: bool) -> None:
    import pyarrow.types as pat

    t = field.type
    if pat.is_timestamp(t) or pat.is_date(t):
        return
    if allow_string and (pat.is_string(t) or pat.is_large_string(t)):
        return
    raise ConfigError(
        f"{label}: freshness column {field.name!r} has type {t}; expected a timestamp or a date"
    )


def _cast_strings(values: Any, field: pa.Field, label: str) -> Any:
    """Timestamps written as ISO strings (JSONL) cast to timestamps; others as they are."""
    import pyarrow as pa
    import pyarrow.types as pat

    t = values.type
    if pat.is_timestamp(t) or pat.is_date(t):
        return values
    if pat.is_string(t) or pat.is_large_string(t):
        for target in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
            try:
                return values.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    raise ConfigError(
        f"{label}: freshness column {field.name!r} has type {t} (values that are not ISO "
        "timestamps); expected a timestamp or a date"
    )
