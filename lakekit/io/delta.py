"""Delta tables as loader sources: the files of one version, with their partition values."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from lakekit.errors import NotFoundError, StorageError, VersionNotFoundError
from lakekit.io.discover import FileEntry
from lakekit.storage import Location, is_transient, missing_credentials_error

__all__ = ["DeltaSnapshot", "is_delta_table", "snapshot"]


@dataclass(frozen=True)
class DeltaSnapshot:
    """The files and schema of one version of a Delta table."""

    version: int
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    entries: tuple[FileEntry, ...]
    num_rows: int | None
    engine: Any = None  # a DeltaTable to read through, when the files alone are not the data


# Reader features under which a data file alone does not give the table's rows.
_ENGINE_FEATURES = {"deletionVectors", "columnMapping"}


def is_delta_table(location: Location) -> bool:
    """True when ``location`` holds a ``_delta_log`` directory."""
    try:
        return bool(location.fs.isdir(location.path.rstrip("/") + "/_delta_log"))
    except (OSError, ValueError):
        return False
    except Exception as exc:
        missing = missing_credentials_error(exc, location.url)
        if missing is not None:
            raise missing from None
        if is_transient(exc):
            raise StorageError(location.redact(
                f"{location.url}: cannot reach the storage ({exc}); check the endpoint URL "
                "and the network"
            )) from None
        raise


def snapshot(location: Location, version: int | None = None) -> DeltaSnapshot:
    """Read a Delta table's log at ``version`` (latest by default)."""
    import deltalake
    from deltalake.exceptions import TableNotFoundError

    uri = location.delta_uri()
    try:
        dt = deltalake.DeltaTable(
            uri, version=version, storage_options=location.delta_storage_options() or None
        )
    except TableNotFoundError:
        raise NotFoundError(f"{location.url}: no Delta table here") from None
    except Exception as exc:  # deltalake raises generic errors for missing versions
        text = location.redact(str(exc))
        if version is not None and ("version" in text.lower() or "not found" in text.lower()):
            raise VersionNotFoundError(
                f"{location.url}: version {version} cannot be read ({text.splitlines()[0]}); "
                "it may not exist or its files were removed by vacuum"
            ) from None
        missing = missing_credentials_error(exc, location.url)
        if missing is not None:
            raise missing from None
        if "error sending request" in text or "connect error" in text:
            raise StorageError(
                f"{location.url}: cannot reach the storage (connection failed after "
                "deltalake's retries); check the endpoint URL and the network"
            ) from None
        raise
    schema = pa.schema(dt.schema().to_arrow())
    partition_columns = tuple(dt.metadata().partition_columns)
    actions = pa.table(dt.get_add_actions(flatten=True))
    root = location.path.rstrip("/")
    rows = actions.to_pylist()
    rows.sort(key=lambda r: (r["modification_time"], r["path"]))
    entries = []
    total: int | None = 0
    for r in rows:
        rel = r["path"]
        path = rel if "://" in rel else f"{root}/{unquote(rel)}"
        if "://" in path:
            path = location.fs._strip_protocol(path)
        part = tuple((c, r.get(f"partition.{c}")) for c in partition_columns)
        entries.append(FileEntry(path, int(r["size_bytes"]), part))
        n = r.get("num_records")
        total = None if total is None or n is None else total + int(n)
    features = set(dt.protocol().reader_features or ())
    engine = dt if features & _ENGINE_FEATURES else None
    return DeltaSnapshot(dt.version(), schema, partition_columns, tuple(entries), total, engine)


def scan(table: Any, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Stream a table through deltalake's own engine (deletion vectors, column mapping)."""
    reader = pa.RecordBatchReader.from_stream(table.scan(columns=columns))
    yield from reader

