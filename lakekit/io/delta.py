"""Delta tables as loader sources: the files of one version, with their partition values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from lakekit.errors import FormatError, NotFoundError, StorageError, VersionNotFoundError
from lakekit.io.discover import FileEntry
from lakekit.storage import Location, is_transient, missing_credentials_error, storage_error

__all__ = ["DeltaEngine", "DeltaSnapshot", "column_mapping_mode", "is_delta_table", "snapshot"]


@dataclass(frozen=True)
class DeltaSnapshot:
    """The files and schema of one version of a Delta table."""

    version: int
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    entries: tuple[FileEntry, ...]
    num_rows: int | None
    engine: DeltaEngine | None = None  # when the files alone are not the data


# Reader features under which a data file alone does not give the table's rows.
_ENGINE_FEATURES = {"deletionVectors", "columnMapping"}


class DeltaEngine:
    """deltalake's handle on one version of a table, for the reads that need its engine.

    Tables with deletion vectors or column mapping cannot be read from their data files
    alone. The handle is opened when first needed and pickles as (location, version):
    a Dataset sent to a worker does not carry, or re-read, the log until it must.
    """

    def __init__(
        self,
        location: Location,
        version: int,
        *,
        deletion_vectors: bool,
        column_mapping: bool,
        table: Any = None,
    ) -> None:
        self.location = location
        self.version = version
        self.deletion_vectors = deletion_vectors
        self.column_mapping = column_mapping
        self._table = table

    @property
    def table(self) -> Any:
        """The ``deltalake.DeltaTable`` at this version."""
        if self._table is None:
            import deltalake

            self._table = deltalake.DeltaTable(
                self.location.delta_uri(),
                version=self.version,
                storage_options=self.location.delta_storage_options() or None,
            )
        return self._table

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_table"] = None
        return state

    def __repr__(self) -> str:
        return f"DeltaEngine({self.location.url!r}, version={self.version})"

    def keep_masks(self) -> dict[str, Any]:
        """Filesystem path -> boolean keep-mask (numpy) of the files with deletion vectors.

        The paths are those of the snapshot's entries: deltalake names files by URL under
        its own form of the table root (local paths with symlinks resolved), so a file
        under that root is keyed by its path relative to it, joined to this location's.
        """
        if not self.deletion_vectors:
            return {}
        masks: dict[str, Any] = {}
        fs = self.location.fs
        root = self.location.path.rstrip("/")
        table_uri = self.table.table_uri.rstrip("/") + "/"
        for batch in pa.RecordBatchReader.from_stream(self.table.deletion_vectors()):
            paths = batch.column("filepath").to_pylist()
            vectors = batch.column("selection_vector")
            for i, uri in enumerate(paths):
                if uri.startswith(table_uri):
                    path = f"{root}/{unquote(uri[len(table_uri):])}"
                else:  # an absolute path outside the table's root
                    path = fs._strip_protocol(unquote(uri))
                masks[path] = vectors[i].values.to_numpy(zero_copy_only=False)
        return masks

    def deleted_rows(self) -> int:
        """The rows that the deletion vectors remove (the log's numRecords counts them)."""
        return sum(int(mask.size - mask.sum()) for mask in self.keep_masks().values())


def column_mapping_mode(dt: Any) -> str | None:
    """``"name"`` or ``"id"`` when the table maps logical to physical column names."""
    mode = (dt.metadata().configuration or {}).get("delta.columnMapping.mode")
    return mode if mode in ("name", "id") else None


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
        feature = re.search(r"Unsupported: Feature '([^']+)'", text)
        if feature:  # a reader feature of the table's protocol that deltalake cannot read
            raise FormatError(
                f"{location.url}: the table needs the Delta reader feature "
                f"{feature.group(1)!r}, which deltalake {deltalake.__version__} cannot read; "
                "upgrade deltalake, or read the table with an engine that supports it"
            ) from None
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
        error = storage_error(exc, f"{location.url}: reading the Delta log",
                              scrub=location.redact)
        if error is not None:
            raise error from None
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
        n = r.get("num_records")
        entries.append(FileEntry(path, int(r["size_bytes"]), part, None if n is None else int(n)))
        total = None if total is None or n is None else total + int(n)
    features = set(dt.protocol().reader_features or ())
    # Reader version 2 has no feature list: column mapping is then only in the configuration.
    mapped = "columnMapping" in features or column_mapping_mode(dt) is not None
    engine = None
    if features & _ENGINE_FEATURES or mapped:
        engine = DeltaEngine(
            location, dt.version(), deletion_vectors="deletionVectors" in features,
            column_mapping=mapped, table=dt,
        )
    return DeltaSnapshot(dt.version(), schema, partition_columns, tuple(entries), total, engine)
