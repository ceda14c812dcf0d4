"""Inputs and error translation for :class:`lakekit.Table`.

``as_arrow`` turns what users write (pyarrow tables / batches / readers, iterators of
batches, polars and pandas frames, lakekit Datasets) into a pyarrow Table or a streaming
RecordBatchReader. ``delta_errors`` turns deltalake's exceptions into lakekit errors with
the table's credential-free URL in the message. The small parsers at the end check
versions, ``as_of`` times, upsert keys and turn DNF delete filters into SQL.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Union

import pyarrow as pa
import pyarrow.compute as pc

from lakekit.errors import (
    CommitConflictError,
    ConfigError,
    LakekitError,
    NotFoundError,
    SchemaMismatchError,
    StorageError,
    TableError,
    VersionNotFoundError,
)
from lakekit.storage import Location, is_transient, storage_error
from lakekit.tables.types import STANDARD_KEYS

__all__ = [
    "ANSI",
    "Arrowish",
    "Source",
    "as_arrow",
    "as_utc",
    "as_version",
    "check_metadata",
    "check_txn",
    "check_unique_keys",
    "delta_errors",
    "dnf_to_sql",
]

Arrowish = Union[pa.Table, pa.RecordBatchReader]  # noqa: UP007 (a runtime alias on 3.10)


@dataclass
class Source:
    """Data to write: a pyarrow Table (replayable) or a RecordBatchReader (read once).

    ``failure`` collects an error raised while the stream was read, so that the caller
    sees it rather than deltalake's wrapper around it.
    """

    data: Arrowish
    failure: list[BaseException] = field(default_factory=list)

    @property
    def schema(self) -> pa.Schema:
        return self.data.schema

    @property
    def replayable(self) -> bool:
        """True when the data can be written again after a failed commit."""
        return isinstance(self.data, pa.Table)

    def replace(self, data: Arrowish) -> Source:
        return Source(data, self.failure)


def as_arrow(data: Any) -> Source:
    """The :class:`Source` for ``data`` (see :data:`Arrowish`)."""
    out = _arrow(data)
    if isinstance(out, pa.Table):
        return Source(out)
    failure: list[BaseException] = []
    return Source(pa.RecordBatchReader.from_batches(out.schema, _guard(out, failure)), failure)


def _guard(
    batches: Iterable[pa.RecordBatch], failure: list[BaseException]
) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except BaseException as exc:
        failure.append(exc)
        raise


def _arrow(data: Any) -> Arrowish:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "lakekit" and hasattr(data, "iter_batches") and hasattr(data, "schema"):
        return pa.RecordBatchReader.from_batches(data.schema, data.iter_batches())
    if module == "polars":
        if hasattr(data, "collect") and not hasattr(data, "to_arrow"):
            data = data.collect()
        table = data.to_arrow()
        return table if isinstance(table, pa.Table) else pa.table(table)
    if module == "pandas" and hasattr(data, "columns"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
        return _reader_of(iter(data))
    raise ConfigError(
        f"cannot write a {type(data).__name__}: pass a pyarrow Table, RecordBatch or "
        "RecordBatchReader, an iterator of RecordBatches, a polars or pandas DataFrame, "
        "or a lakekit Dataset"
    )


def _reader_of(batches: Iterator[Any]) -> pa.RecordBatchReader:
    first = next(batches, None)
    if first is None:
        raise ConfigError("the iterator of record batches is empty: nothing to write")
    first = _as_batch(first, 0)
    schema = first.schema

    def checked() -> Iterator[pa.RecordBatch]:
        yield first
        for i, item in enumerate(batches, start=1):
            batch = _as_batch(item, i)
            if not batch.schema.equals(schema):
                raise SchemaMismatchError(
                    f"record batch {i} has the schema {_names(batch.schema)}, unlike "
                    f"batch 0 ({_names(schema)})"
                )
            yield batch

    return pa.RecordBatchReader.from_batches(schema, checked())


def _names(schema: pa.Schema) -> str:
    return "(" + ", ".join(f"{f.name}: {f.type}" for f in schema) + ")"


def _as_batch(item: Any, index: int) -> pa.RecordBatch:
    if isinstance(item, pa.RecordBatch):
        return item
    if isinstance(item, pa.Table):
        batches = item.combine_chunks().to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=item.schema)
    raise ConfigError(
        f"item {index} of the iterator is a {type(item).__name__}, not a pyarrow RecordBatch"
    )


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate commit metadata: string keys, JSON values, no reserved Delta keys."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ConfigError(
            f"metadata must be a mapping of str to JSON values, got {type(metadata).__name__}"
        )
    out = dict(metadata)
    for key in out:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"metadata keys must be non-empty strings, got {key!r}")
        if key in STANDARD_KEYS:
            raise ConfigError(
                f"metadata key {key!r} is reserved by Delta Lake; choose another name"
            )
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metadata must be JSON-serializable (no NaN/Infinity): {exc}") from None
    return out


def check_txn(txn: Any) -> tuple[str, int] | None:
    """Validate a write's ``txn=(app_id, version)``: a non-empty string, an integer >= 0."""
    if txn is None:
        return None
    if not isinstance(txn, (tuple, list)) or len(txn) != 2:
        raise ConfigError(f"txn must be a pair (app_id, version), got {txn!r}")
    app_id, version = txn
    if not isinstance(app_id, str) or not app_id.strip():
        raise ConfigError(f"txn's app_id must be a non-empty string, got {app_id!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigError(f"txn's version must be an integer >= 0, got {version!r}")
    return app_id, version


@contextlib.contextmanager
def delta_errors(
    location: Location, what: str, *, version: int | None = None, source: Source | None = None
) -> Iterator[None]:
    """Translate deltalake / object-store exceptions raised inside the block.

    When the write was reading a stream that failed (a bad batch, a loader error), that
    error is raised rather than deltalake's wrapper around it.
    """
    try:
        yield
    except LakekitError:
        raise
    except Exception as exc:
        if source is not None and source.failure:
            first = source.failure[0]
            if isinstance(first, LakekitError):
                raise first from None
            raise TableError(
                f"{location.url}: {what}: reading the data failed: "
                f"{type(first).__name__}: {_text(location, first)}"
            ) from first
        raise _translate(location, what, version, exc) from None


def _translate(location: Location, what: str, version: int | None, exc: Exception) -> Exception:
    from deltalake.exceptions import (
        CommitFailedError,
        DeltaError,
        TableNotFoundError,
    )
    from deltalake.exceptions import SchemaMismatchError as DeltaSchemaMismatch

    url = location.url
    text = _text(location, exc)
    if isinstance(exc, TableNotFoundError):
        return NotFoundError(f"{url}: no Delta table here (no _delta_log)")
    if isinstance(exc, DeltaSchemaMismatch):
        return SchemaMismatchError(f"{url}: {what}: {text}")
    if isinstance(exc, CommitFailedError):
        return CommitConflictError(f"{url}: {what} conflicted with a concurrent commit: {text}")
    if isinstance(exc, FileNotFoundError):
        if version is not None:
            return VersionNotFoundError(
                f"{url}: version {version} can no longer be read: a data file it needs is "
                f"gone (removed by vacuum?): {text}"
            )
        return NotFoundError(f"{url}: {what}: {text}")
    if isinstance(exc, DeltaError):
        low = text.lower()
        if is_transient(exc) and "conflict" not in low and "already exists" not in low:
            return StorageError(f"{url}: {what}: transient storage error: {text}")
        if version is not None and ("version" in low or "logsegment" in low):
            return VersionNotFoundError(f"{url}: version {version} cannot be loaded ({text})")
        if "already exists" in low or "conflict" in low or "concurrent" in low:
            return CommitConflictError(f"{url}: {what}: {text}")
        return TableError(f"{url}: {what} failed: {text}")
    if isinstance(exc, OSError):
        if is_transient(exc):
            return StorageError(f"{url}: {what}: transient storage error: {text}")
        error = storage_error(exc, f"{url}: {what}", scrub=location.redact)
        return error or StorageError(f"{url}: {what}: storage error: {text}")
    return TableError(f"{url}: {what} failed: {type(exc).__name__}: {text}")


# deltalake (object_store) colours the arrows of its error chains; Ray colours task errors
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _text(location: Location, exc: BaseException) -> str:
    lines = [ln.strip() for ln in ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    return location.redact(" ".join(lines)[:600]) or type(exc).__name__


def as_version(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigError(f"a version is an integer >= 0, got {version!r}")
    return version


def as_utc(when: datetime | date | str) -> datetime:
    if isinstance(when, str):
        text = when.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"as_of {when!r} is not an ISO 8601 time (e.g. '2026-03-01T12:00:00Z')"
            ) from None
    elif isinstance(when, date) and not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day)
    if not isinstance(when, datetime):
        raise ConfigError(f"as_of must be a datetime or an ISO string, got {type(when).__name__}")
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def check_unique_keys(table: pa.Table, keys: list[str]) -> None:
    counts = table.group_by(keys).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows:
        first = dup.slice(0, 1).to_pylist()[0]
        n = first.pop("count_all")
        raise TableError(
            f"upsert: {dup.num_rows} key(s) occur more than once in the data, e.g. {first} "
            f"({n} rows); keys in on={keys} must be unique"
        )


_SQL_OPS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", ">": ">", "<=": "<=",
            ">=": ">=", "in": "IN", "not in": "NOT IN"}


def dnf_to_sql(filters: Sequence[Any]) -> str:
    """DNF tuples -> a SQL condition deltalake understands."""
    if not filters:
        raise ConfigError("delete needs a predicate; got an empty filter")
    groups = filters if isinstance(filters[0], (list, tuple)) and filters[0] and isinstance(
        filters[0][0], (list, tuple)) else [filters]
    ors = []
    for group in groups:
        ands = []
        for item in group:
            if not isinstance(item, (list, tuple)) or len(item) != 3:
                raise ConfigError(f"invalid filter term {item!r}; expected (column, op, value)")
            col, op, value = item
            sql_op = _SQL_OPS.get(str(op).lower())
            if sql_op is None or "`" in str(col):
                raise ConfigError(f"invalid filter term {item!r}")
            if sql_op in ("IN", "NOT IN"):
                rhs = "(" + ", ".join(_sql_literal(v) for v in value) + ")"
            else:
                rhs = _sql_literal(value)
            ands.append(f"`{col}` {sql_op} {rhs}")
        ors.append("(" + " AND ".join(ands) + ")")
    return " OR ".join(ors)


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise ConfigError(f"unsupported value in a delete filter: {value!r}")
