"""Delta tables as loader sources: the files of one version, with their partition values.

A table lakekit cannot read correctly is refused here, naming the table and the cause:
a log deltalake cannot replay or that breaks the protocol (:func:`log_error`), a reader
feature outside :data:`READABLE_FEATURES`, an add action with a negative size or row
count, and (while reading, :func:`delta_file_errors`) a data file that storage lacks or
holds with fewer bytes than the log records; a file of an older version that vacuum
removed is a :class:`VersionNotFoundError` naming the version.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from lakekit.errors import (
    FormatError,
    LakekitError,
    NotFoundError,
    StorageError,
    VersionNotFoundError,
)
from lakekit.io.discover import FileEntry
from lakekit.storage import (
    Location,
    is_transient,
    missing_credentials_error,
    retry_call,
    storage_error,
)

__all__ = [
    "READABLE_FEATURES",
    "DeltaEngine",
    "DeltaSnapshot",
    "column_mapping_mode",
    "delta_file_errors",
    "is_delta_table",
    "log_error",
    "snapshot",
]


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
# Reader features lakekit's file-by-file reader (io/scan.py, io/mapped.py) reads correctly:
# deletion vectors and column mapping it applies itself; timestampNtz is a type (a parquet
# timestamp without time zone, read as the table's schema says); v2Checkpoint changes only
# the log, which deltalake replays; vacuumProtocolCheck binds only vacuum. Any other reader
# feature that deltalake accepts is refused, naming it: typeWidening (files written before
# a widening hold the narrower type, which per-file casts, statistics and partition values
# were not built for), variantType and variantShredding (variant columns are encoded
# binary structs, not values), and any feature newer than this list.
READABLE_FEATURES = frozenset(
    {"deletionVectors", "columnMapping", "timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"}
)
# deltalake's messages for a log that breaks the protocol (not for storage failures).
_INVALID_LOG = re.compile(
    r"Invalid protocol action|Json error|Schema error|Failed to parse|unmasked nulls|"
    r"Reader features must|Writer features must|Max catalog version|Invalid table version|"
    r"at line \d+ column \d+"
)
_WHY_NOT = {
    "typeWidening": "columns whose type was widened are stored in older files with the "
                    "narrower type",
    "variantType": "variant columns are stored as encoded binary, not as values",
    "variantShredding": "variant columns are stored as encoded binary, not as values",
}


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
        self._masks: dict[str, Any] | None = None  # read once: the version never changes

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
        state["_masks"] = None  # not in the spec: pieces carry their own
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
        if self._masks is not None:
            return self._masks
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
        self._masks = masks
        return masks

    def deleted_rows(self) -> int:
        """The rows that the deletion vectors remove (the log's numRecords counts them)."""
        return sum(int(mask.size - mask.sum()) for mask in self.keep_masks().values())


def column_mapping_mode(dt: Any) -> str | None:
    """``"name"`` or ``"id"`` when the table maps logical to physical column names."""
    mode = (dt.metadata().configuration or {}).get("delta.columnMapping.mode")
    return mode if mode in ("name", "id") else None


def is_delta_table(location: Location) -> bool:
    """True when ``location`` holds a ``_delta_log`` directory.

    A listing that fails transiently is retried, then a :class:`StorageError`: never taken
    for "no log", which would read a Delta table's files (removed ones included) as a plain
    parquet dataset.
    """
    log = location.path.rstrip("/") + "/_delta_log"

    def probe() -> bool:
        try:
            return bool(location.fs.isdir(log))
        except (OSError, ValueError) as exc:
            if is_transient(exc):
                raise  # retried; a StorageError once the attempts are spent
            return False  # a missing bucket, a refusal: the listing that follows names it

    return retry_call(probe, what=f"{location.url}: looking for a Delta log")


def snapshot(location: Location, version: int | None = None) -> DeltaSnapshot:
    """Read a Delta table's log at ``version`` (latest by default)."""
    import deltalake
    from deltalake.exceptions import DeltaError, TableNotFoundError

    uri = location.delta_uri()
    try:
        # deltalake's own retries give up on a body cut short (a truncated GET of the log)
        dt = retry_call(
            lambda: deltalake.DeltaTable(
                uri, version=version, storage_options=location.delta_storage_options() or None
            ),
            what=location.url,
        )
    except TableNotFoundError:
        raise NotFoundError(f"{location.url}: no Delta table here") from None
    except Exception as exc:  # deltalake raises generic errors for missing versions
        text = location.redact(str(exc))
        unreadable = log_error(location.url, version, text)
        if unreadable is not None:
            raise unreadable from None
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
        if isinstance(exc, DeltaError) and "Kernel error" in text:
            raise _invalid_log(location.url, version, text) from None
        raise
    features = set(dt.protocol().reader_features or ())
    refused = sorted(features - READABLE_FEATURES)
    if refused:
        raise _refused(location, refused)
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
        if int(r["size_bytes"]) < 0 or (n is not None and int(n) < 0):
            raise FormatError(
                f"{location.url}: the Delta log's add action of {rel!r} is invalid "
                f"(size {r['size_bytes']}, numRecords {n}: neither may be negative); the "
                "table's log was written by a faulty writer or edited by hand. Read an "
                "earlier version, or repair the log"
            )
        entries.append(FileEntry(path, int(r["size_bytes"]), part, None if n is None else int(n)))
        total = None if total is None or n is None else total + int(n)
    # Reader version 2 has no feature list: column mapping is then only in the configuration.
    mapped = "columnMapping" in features or column_mapping_mode(dt) is not None
    engine = None
    if features & _ENGINE_FEATURES or mapped:
        engine = DeltaEngine(
            location, dt.version(), deletion_vectors="deletionVectors" in features,
            column_mapping=mapped, table=dt,
        )
    return DeltaSnapshot(dt.version(), schema, partition_columns, tuple(entries), total, engine)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no message"
    return line.removeprefix("Kernel error: ")


def log_error(url: str, version: int | None, text: str) -> FormatError | None:
    """The error for deltalake's message ``text`` (redacted) when it says that the table
    at ``url`` cannot be read correctly: a reader feature deltalake does not implement,
    or a log that breaks the protocol; None for any other failure (storage, a version)."""
    import deltalake

    feature = re.search(r"Unsupported: Feature '([^']+)'", text)
    if feature:  # a reader feature of the table's protocol that deltalake cannot read
        return FormatError(
            f"{url}: the table needs the Delta reader feature "
            f"{feature.group(1)!r}, which deltalake {deltalake.__version__} cannot read; "
            "upgrade deltalake, or read the table with an engine that supports it"
        )
    if _INVALID_LOG.search(text):
        return _invalid_log(url, version, text)
    return None


def _invalid_log(url: str, version: int | None, text: str) -> FormatError:
    """deltalake could not replay the log: an invalid action (a missing required field,
    a partition value of the wrong type, a bad schemaString) or a protocol it rejects."""
    at = f" at version {version}" if version is not None else ""
    return FormatError(
        f"{url}: the table's Delta log{at} cannot be read: {_first_line(text)}. "
        "The log holds an action that breaks the Delta protocol (written by a faulty "
        "writer or edited by hand); lakekit reads no data from such a table. Read an "
        "earlier version (version=), or repair the log"
    )


def _refused(location: Location, features: list[str]) -> FormatError:
    reasons = []
    for feature in features:
        why = _WHY_NOT.get(feature.removesuffix("-preview"))
        reasons.append(f"{feature!r} ({why})" if why else repr(feature))
    names = ", ".join(reasons)
    return FormatError(
        f"{location.url}: the table needs the Delta reader "
        f"feature{'s' if len(features) > 1 else ''} {names}, which lakekit's reader does "
        "not implement, so it could return wrong data; lakekit reads only tables whose "
        f"reader features are {', '.join(sorted(READABLE_FEATURES))}. Read the table "
        "with deltalake's engine (deltalake.QueryBuilder) or Spark"
    )


@contextmanager
def delta_file_errors(location: Location, entry: FileEntry | None = None, *,
                      enabled: bool = True, version: int | None = None) -> Iterator[None]:
    """A data file a Delta table's log references but storage lacks (``NotFoundError``),
    or holds with fewer bytes than the log's ``size`` (``FormatError``), named with the
    table at ``location`` (and ``entry``, the file being read, when given). Not
    ``enabled`` (another dataset's files), errors propagate unchanged.

    ``version`` is the table version being read: a file of a version older than the
    latest that storage lacks was removed by vacuum, a :class:`VersionNotFoundError`
    naming the version. Only then, on this error path, is the latest log loaded: time
    travel checks no file before reading it.
    """
    try:
        yield
    except FileNotFoundError as exc:
        if not enabled or str(exc).startswith(f"{location.url}: "):
            raise  # not a Delta table's file, or already named (an inner read's error)
        last = _vacuumed_by(location, version, entry, str(exc)) if version is not None else None
        if version is not None and last is not None:
            which = f" {location.url_of(entry.path)}" if entry is not None else ""
            raise VersionNotFoundError(
                f"{location.url}: version {version} can no longer be read: its data "
                f"file{which} is missing from storage ({_first_error_line(exc)}); vacuum "
                f"removed it (the latest version, {last}, no longer uses it). Versions "
                "that vacuum keeps readable: the latest, tagged ones, and those newer than "
                "the retention period. Read a newer version, or restore the file"
            ) from None
        raise NotFoundError(
            f"{location.url}: a data file of this Delta table is missing from storage "
            f"({_first_error_line(exc)}). The table's log references it, so no correct read is "
            "possible: it was deleted outside Delta, or vacuumed with a retention shorter "
            "than a reader needed. Restore the file, or restore the table to an earlier "
            "version whose files are all present (Table.restore)"
        ) from None
    except OSError as exc:
        text = str(exc).lower()
        # a StorageError too: retry_call names the raw 416 it gave up on
        if not enabled or (isinstance(exc, LakekitError) and not isinstance(
            exc, StorageError
        )) or not ("range is not satisfiable" in text or "invalidrange" in text):
            raise
        which = f" {location.url_of(entry.path)}" if entry is not None else ""
        size = f" ({entry.size} bytes)" if entry is not None else ""
        raise FormatError(
            f"{location.url}: the data file{which} of this Delta table is shorter than "
            f"the size its log records{size} ({_first_error_line(exc)}): it was replaced or "
            "truncated outside Delta, so no correct read is possible. Restore the file, or "
            "restore the table to an earlier version (Table.restore)"
        ) from None


def _vacuumed_by(location: Location, version: int, entry: FileEntry | None,
                 text: str) -> int | None:
    """The latest version when vacuum explains a data file of ``version`` missing from
    storage (``entry``, or the file that the error ``text`` names): ``version`` is older
    and the latest version no longer uses the file. None otherwise, or when the latest
    log cannot be read now (the caller then reports the missing file as it is)."""
    import deltalake

    try:
        latest = deltalake.DeltaTable(
            location.delta_uri(), storage_options=location.delta_storage_options() or None
        )
        last = int(latest.version())
        paths = pa.table(latest.get_add_actions(flatten=True)).column("path").to_pylist()
    except Exception:  # an explanation only: the missing file is the error
        return None
    if version >= last:
        return None
    names = {unquote(p) for p in paths}
    if entry is not None:
        root = location.path.rstrip("/")
        in_latest = any(entry.path in (f"{root}/{n}", n) for n in names)
    else:
        in_latest = any(n in text for n in names)
    return None if in_latest else last


def _first_error_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
