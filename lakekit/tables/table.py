"""Versioned tables on Delta Lake: write, upsert, history, time travel, tags, restore, diff.

:class:`Table` is a thin, git-like surface over deltalake (delta-rs). Every write makes a
new version; any version can be read back (``read`` / ``dataset``) by number, by commit
time (``as_of``) or by a tag; ``restore`` makes a new version equal to an old one; ``diff``
says what changed. Tags are stored with the table (see :mod:`lakekit.tables.tags`) and
protect their versions from ``vacuum``.

On S3, deltalake commits with a conditional put (``If-None-Match: *``), so several
processes may append to one table at once; see ``docs/tables.md`` for the settings.
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import pyarrow as pa

from lakekit.errors import (
    CommitConflictError,
    ConfigError,
    NotFoundError,
    SchemaMismatchError,
    TableError,
    VersionNotFoundError,
)
from lakekit.io.filters import Filter
from lakekit.storage import Location, resolve, retry_call
from lakekit.tables._html import table_html
from lakekit.tables._inputs import (
    Source,
    as_arrow,
    as_utc,
    as_version,
    check_metadata,
    check_unique_keys,
    delta_errors,
    dnf_to_sql,
)
from lakekit.tables.history import read_history
from lakekit.tables.schema import fill_missing, schema_changes, write_conflicts
from lakekit.tables.tags import TagStore, check_tag_name
from lakekit.tables.types import Commit, CompactResult, TableDiff, VacuumResult

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from lakekit.io.dataset import Dataset

__all__ = ["Table"]

# deltalake retries a commit that lost a race itself (cheap: it re-reads the new log
# entries and checks for conflicts); a blind append never conflicts, so this bound is
# only reached under heavy contention.
COMMIT_RETRIES = 100
# If deltalake still gives up, an append of an in-memory table is written again (whole
# write: new files, new commit), at most this many times.
APPEND_ATTEMPTS = 3
# Tables lakekit creates write a checkpoint every this many commits (deltalake's default
# is 100, Spark's 10): opening any version replays at most this many JSON commits.
CHECKPOINT_INTERVAL = 10
# A version's files that are not in the latest version are checked one by one up to this
# many; beyond it, one listing of the table directory is cheaper.
_EXISTS_CHECKS = 64
# While another writer creates the table: how many times to look again (0.25 s apart).
_CREATE_WAITS = 12
_DELTA_FILE = re.compile(r"^(_delta_log|part-\d{5}-[0-9a-f-]{36}-c\d{3}(\.\w+)?\.parquet)$")

Mode = Literal["append", "overwrite"]
SchemaMode = Literal["merge", "overwrite"]
VersionRef = int | str


class Table:
    """A versioned Delta Lake table on local disk or any object store deltalake supports.

    Nothing is read when the object is built; the first ``write`` creates the table.

    Parameters
    ----------
    uri
        A local path or a URL (``s3://bucket/table``, ``gs://...``, ``abfss://...``).
    storage_options
        Storage options, fsspec style (``key``, ``secret``, ``client_kwargs``) or
        deltalake style (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...).

    Examples
    --------
    >>> import tempfile
    >>> import lakekit as lk, pyarrow as pa
    >>> lake = tempfile.TemporaryDirectory()
    >>> t = lk.Table(f"{lake.name}/events")
    >>> t.write(pa.table({"id": [1, 2]}))
    0
    >>> t.tag("v1")
    0
    >>> t.read(tag="v1").num_rows
    2
    >>> lake.cleanup()
    """

    def __init__(
        self, uri: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self._source = os.fspath(uri)
        self._storage_options = dict(storage_options or {})
        self._location: Location = resolve(self._source, storage_options=self._storage_options)
        self._uri = self._location.delta_uri()
        self._delta_options = self._location.delta_storage_options() or None
        self._tags = TagStore(self._location)
        self._dt: DeltaTable | None = None

    def __repr__(self) -> str:
        return f"Table({self._location.url!r})"

    def _repr_html_(self) -> str:
        return table_html(self)

    # -- what it is --------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """The table's URL, without credentials."""
        return self._location.url

    @property
    def exists(self) -> bool:
        """True when a Delta table is at the URI."""
        from deltalake import DeltaTable

        return bool(retry_call(
            lambda: DeltaTable.is_deltatable(self._uri, self._delta_options),
            what=f"{self.uri}: looking for a Delta table",
        ))

    @property
    def version(self) -> int:
        """The latest version."""
        return int(self._latest().version())

    @property
    def schema(self) -> pa.Schema:
        """The schema of the latest version."""
        return pa.schema(self._latest().schema().to_arrow())

    @property
    def partition_by(self) -> list[str]:
        """The partition columns."""
        return list(self._latest().metadata().partition_columns)

    # -- writing -----------------------------------------------------------------------------
    def write(
        self,
        data: Any,
        *,
        mode: Mode = "append",
        schema_mode: SchemaMode | None = None,
        partition_by: str | Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Write ``data`` as a new version; the first write creates the table.

        Parameters
        ----------
        data
            A pyarrow Table, RecordBatch or RecordBatchReader, an iterator of RecordBatches,
            a polars or pandas DataFrame, or a lakekit ``Dataset`` (streamed).
        mode
            ``"append"`` adds rows; ``"overwrite"`` replaces them (history is kept).
        schema_mode
            ``None``: the data's columns must be columns of the table, of the same type or
            a lossless widening, else :class:`SchemaMismatchError` and nothing is written.
            ``"merge"``: new columns are added to the table. ``"overwrite"`` (with
            ``mode="overwrite"``): the data's schema replaces the table's.
        partition_by
            Partition columns, when the write creates the table.
        metadata
            JSON-serializable values stored in the commit and shown by :meth:`history`.

        Returns
        -------
        int
            The version this write created.

        Examples
        --------
        >>> t.write(pa.table({"id": [3]}), metadata={"source": "backfill"})  # doctest: +SKIP
        1
        """
        if mode not in ("append", "overwrite"):
            raise ConfigError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if schema_mode not in (None, "merge", "overwrite"):
            raise ConfigError(
                f"schema_mode must be None, 'merge' or 'overwrite', got {schema_mode!r}"
            )
        if schema_mode == "overwrite" and mode != "overwrite":
            raise ConfigError("schema_mode='overwrite' needs mode='overwrite'")
        parts = [partition_by] if isinstance(partition_by, str) else (
            list(partition_by) if partition_by is not None else None
        )
        meta = check_metadata(metadata)
        source = as_arrow(data)
        if parts:
            missing = [c for c in parts if c not in source.schema.names]
            if missing:
                raise ConfigError(f"partition_by names columns the data lacks: {missing}")
        if self._needs_create():
            created = self._create_or_yield(source, mode, parts, meta)
            if created is not None:
                return created
        dt = self._latest()
        existing_parts = list(dt.metadata().partition_columns)
        if parts is not None and parts != existing_parts and schema_mode != "overwrite":
            raise ConfigError(
                f"{self.uri} is partitioned by {existing_parts}; partition_by={parts} cannot "
                "change that (rewrite with mode='overwrite', schema_mode='overwrite')"
            )
        if schema_mode != "overwrite":
            self._check_schema(dt, source.schema, allow_new=schema_mode == "merge", what=mode)
            source = fill_missing(source, pa.schema(dt.schema().to_arrow()))
        return self._commit_write(source, mode=mode, schema_mode=schema_mode,
                                  partition_by=parts, metadata=meta)

    def upsert(
        self,
        data: Any,
        *,
        on: str | Sequence[str],
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Update the rows whose ``on`` key matches a row of ``data``; insert the others.

        The data is read into memory (a MERGE needs it whole); its keys must be unique.

        Returns
        -------
        int
            The version this upsert created.

        Examples
        --------
        >>> t.upsert(pa.table({"id": [2, 9], "v": ["new", "added"]}), on="id")  # doctest: +SKIP
        2
        """
        keys = [on] if isinstance(on, str) else list(on)
        if not keys:
            raise ConfigError("upsert needs at least one key column in on=")
        meta = check_metadata(metadata)
        source = as_arrow(data)
        with delta_errors(self._location, "upsert", source=source):
            data = source.data
            table = data if isinstance(data, pa.Table) else data.read_all()
        missing = [k for k in keys if k not in table.schema.names]
        if missing:
            raise SchemaMismatchError(f"upsert: the data has no key column(s) {missing}")
        check_unique_keys(table, keys)
        if self._needs_create():
            created = self._create_or_yield(Source(table), "append", None, meta)
            if created is not None:
                return created
        dt = self._latest()
        absent = [k for k in keys if k not in pa.schema(dt.schema().to_arrow()).names]
        if absent:
            raise SchemaMismatchError(
                f"{self.uri}: upsert key column(s) {absent} are not in the table"
            )
        self._check_schema(dt, table.schema, allow_new=False, what="upsert")
        for name in table.schema.names:
            if "`" in name:
                raise ConfigError(f"upsert: column names may not contain backticks: {name!r}")
        # Only the data's columns are updated; a column it lacks keeps its value on update
        # and is null on insert.
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        values = {f"`{c}`": f"s.`{c}`" for c in table.schema.names}
        with delta_errors(self._location, "upsert"):
            (
                dt.merge(
                    table, predicate, source_alias="s", target_alias="t",
                    commit_properties=self._commit_properties(meta),
                    post_commithook_properties=self._hooks(),
                )
                .when_matched_update(updates=values)
                .when_not_matched_insert(updates=values)
                .execute()
            )
        return int(dt.version())

    def delete(
        self, predicate: str | Sequence[Any], *, metadata: Mapping[str, Any] | None = None
    ) -> int:
        """Delete the rows matching ``predicate``.

        Parameters
        ----------
        predicate
            A SQL condition (``"id > 3 AND kind = 'test'"``) or DNF tuples
            (``[("id", ">", 3)]``).

        Returns
        -------
        int
            The version created, or the current version when no row matched (no commit).

        Examples
        --------
        >>> t.delete([("kind", "=", "test")])  # doctest: +SKIP
        3
        """
        sql = predicate if isinstance(predicate, str) else dnf_to_sql(predicate)
        if not sql.strip():
            raise ConfigError("delete needs a predicate; to empty a table, overwrite it")
        meta = check_metadata(metadata)
        dt = self._latest()
        with delta_errors(self._location, f"delete where {sql}"):
            dt.delete(sql, commit_properties=self._commit_properties(meta),
                      post_commithook_properties=self._hooks())
        return int(dt.version())

    # -- history and time travel -------------------------------------------------------------
    def history(self, limit: int | None = None) -> list[Commit]:
        """The commits, newest first (version, UTC time, operation, parameters, metrics, metadata).

        Examples
        --------
        >>> [c.operation for c in t.history(limit=2)]  # doctest: +SKIP
        ['MERGE', 'WRITE']
        """
        if limit is not None and limit < 1:
            raise ConfigError(f"limit must be >= 1, got {limit}")
        latest = int(self._latest().version())
        return read_history(self._location, latest, limit)

    def read(
        self,
        version: int | None = None,
        *,
        as_of: datetime | date | str | None = None,
        tag: str | None = None,
        columns: Sequence[str] | None = None,
        filter: Filter = None,
    ) -> pa.Table:
        """Read a version (latest by default) into a pyarrow Table.

        Parameters
        ----------
        version, as_of, tag
            At most one: a version number; a datetime / ISO string (the last version
            committed at or before it; naive times are UTC); or a tag name.
        columns, filter
            As for :meth:`lakekit.Dataset.to_arrow`.

        Examples
        --------
        >>> t.read(as_of="2026-01-01T00:00:00Z", columns=["id"])  # doctest: +SKIP
        """
        ds = self.dataset(version, as_of=as_of, tag=tag)
        try:
            return ds.to_arrow(columns=columns, filter=filter, progress=False)
        except NotFoundError as exc:
            raise VersionNotFoundError(
                f"{self.uri}: version {ds.version} can no longer be read: {exc}"
            ) from None

    def dataset(
        self,
        version: int | None = None,
        *,
        as_of: datetime | date | str | None = None,
        tag: str | None = None,
    ) -> Dataset:
        """A loader ``Dataset`` over one version (latest by default), for lazy reads.

        Examples
        --------
        >>> t.dataset(tag="v1").to_polars(columns=["id"])  # doctest: +SKIP
        """
        from concurrent.futures import ThreadPoolExecutor

        from lakekit.io.dataset import dataset

        target = self._resolve(version, as_of, tag)
        options = self._storage_options or None
        if target is None:
            return dataset(self._source, format="delta", storage_options=options)
        # An older version: load it and the latest log at once (the latest tells whether
        # the version exists and which of its files vacuum may have removed).
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self._latest)
            try:
                ds = dataset(self._source, format="delta", version=target,
                             storage_options=options)
            except VersionNotFoundError:
                self._check_exists(target, int(pending.result().version()))
                raise
            latest = pending.result()
        last = int(latest.version())
        self._check_exists(target, last)
        if target != last:
            root = self._location.url_of(self._location.path.rstrip("/")) + "/"
            mine = {f[len(root):] if f.startswith(root) else f for f in ds.files}
            self._check_files(target, mine - self._paths(latest))
        return ds

    # -- tags --------------------------------------------------------------------------------
    def tag(self, name: str, version: int | None = None, *, force: bool = False) -> int:
        """Name a version (the latest by default); returns the version tagged.

        Tags are stored with the table, so every process reading this URI sees them, and
        a tagged version is never vacuumed. Reusing a name is an error unless ``force``.

        Examples
        --------
        >>> t.tag("trained-2026-03-01")  # doctest: +SKIP
        4
        """
        check_tag_name(name)
        latest = self._latest()
        last = int(latest.version())
        target = last if version is None else as_version(version)
        self._check_exists(target, last)
        if target != last:
            self._check_files(target, self._paths(self._at(target)) - self._paths(latest))
        self._tags.put(name, target, force=force)
        return target

    def tags(self) -> dict[str, int]:
        """Every tag and the version it names, sorted by name."""
        return {name: tag.version for name, tag in self._tags.all().items()}

    def untag(self, name: str) -> int:
        """Remove a tag; returns the version it named."""
        return self._tags.delete(name).version

    def restore(
        self,
        version: int | None = None,
        *,
        as_of: datetime | date | str | None = None,
        tag: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Make a new version whose content equals an older one; history is kept.

        Give exactly one of ``version``, ``as_of`` or ``tag``. Restoring the latest version
        commits nothing and returns it.

        Examples
        --------
        >>> t.restore(tag="before-bad-load")  # doctest: +SKIP
        6
        """
        target = self._resolve(version, as_of, tag)
        if target is None:
            raise ConfigError("restore needs one of version=, as_of= or tag=")
        latest = self._latest()
        last = int(latest.version())
        self._check_exists(target, last)
        if target == last:
            return last
        self._check_files(target, self._paths(self._at(target)) - self._paths(latest))
        meta = check_metadata(metadata)
        meta.setdefault("lakekit.restored_from", f"tag {tag}" if tag else f"version {target}")
        with delta_errors(self._location, f"restore to version {target}", version=target):
            latest.restore(target, commit_properties=self._commit_properties(meta),
                           post_commithook_properties=self._hooks())
        return int(latest.version())

    def diff(self, from_version: VersionRef, to_version: VersionRef) -> TableDiff:
        """What changed from one version to another (versions or tag names).

        Examples
        --------
        >>> print(t.diff("v1", t.version).summary())  # doctest: +SKIP
        """
        a, b = self._ref(from_version), self._ref(to_version)
        last = self.version
        for v in (a, b):
            self._check_exists(v, last)
        da, db = self._at(a), self._at(b)
        files_a, files_b = _file_rows(da), _file_rows(db)
        added = tuple(sorted(set(files_b) - set(files_a)))
        removed = tuple(sorted(set(files_a) - set(files_b)))
        cols_added, cols_removed, retyped = schema_changes(
            pa.schema(da.schema().to_arrow()), pa.schema(db.schema().to_arrow())
        )
        lo, hi = min(a, b), max(a, b)
        ops: tuple[Commit, ...] = ()
        if hi > lo:
            commits = self.history(limit=last - lo)
            ops = tuple(sorted((c for c in commits if lo < c.version <= hi),
                               key=lambda c: c.version))
        return TableDiff(
            from_version=a, to_version=b,
            files_added=added, files_removed=removed,
            rows_added=sum(files_b[p] for p in added),
            rows_removed=sum(files_a[p] for p in removed),
            num_rows_from=sum(files_a.values()), num_rows_to=sum(files_b.values()),
            columns_added=cols_added, columns_removed=cols_removed, columns_retyped=retyped,
            operations=ops,
        )

    # -- maintenance -------------------------------------------------------------------------
    def compact(self, target_file_size: int | None = None) -> CompactResult:
        """Rewrite small files into files of about ``target_file_size`` bytes (default 100 MB).

        Examples
        --------
        >>> t.compact(target_file_size=64 << 20)  # doctest: +SKIP
        """
        if target_file_size is not None and target_file_size <= 0:
            raise ConfigError(f"target_file_size must be > 0, got {target_file_size}")
        dt = self._latest()
        with delta_errors(self._location, "compact"):
            metrics = dt.optimize.compact(
                target_size=target_file_size,
                commit_properties=self._commit_properties({}),
                post_commithook_properties=self._hooks(),
            )
        return CompactResult(
            version=int(dt.version()),
            files_added=int(metrics.get("numFilesAdded", 0)),
            files_removed=int(metrics.get("numFilesRemoved", 0)),
        )

    def checkpoint(self) -> int:
        """Write a checkpoint of the latest version (short log replay); returns that version."""
        dt = self._latest()
        with delta_errors(self._location, "checkpoint"):
            dt.create_checkpoint()
        return int(dt.version())

    def vacuum(self, retention_hours: int = 168, *, dry_run: bool = True) -> VacuumResult:
        """Delete data files no version within ``retention_hours`` needs (a dry run by default).

        Files of tagged versions are always kept. With a short retention, readers and
        writers still working on older versions may fail; the default is a week.

        Examples
        --------
        >>> t.vacuum(retention_hours=0, dry_run=False)  # doctest: +SKIP
        """
        if retention_hours < 0:
            raise ConfigError(f"retention_hours must be >= 0, got {retention_hours}")
        dt = self._latest()
        last = int(dt.version())
        protected = tuple(sorted({v for v in self.tags().values() if v <= last}))
        with delta_errors(self._location, "vacuum"):
            files = dt.vacuum(
                retention_hours=int(retention_hours),
                dry_run=dry_run,
                enforce_retention_duration=False,
                commit_properties=self._commit_properties({}),
                post_commithook_properties=self._hooks(),
                keep_versions=list(protected) or None,
            )
        return VacuumResult(files=tuple(sorted(files)), dry_run=dry_run,
                            protected_versions=protected)

    # -- internals ---------------------------------------------------------------------------
    def _latest(self) -> DeltaTable:
        """The table at its latest version (cached, refreshed incrementally)."""
        from deltalake import DeltaTable

        with delta_errors(self._location, "loading the table"):
            if self._dt is None:
                self._dt = retry_call(
                    lambda: DeltaTable(self._uri, storage_options=self._delta_options),
                    what=f"{self.uri}: loading the Delta log",
                )
            else:
                dt = self._dt
                retry_call(dt.update_incremental, what=f"{self.uri}: refreshing the Delta log")
        return self._dt

    def _at(self, version: int) -> DeltaTable:
        from deltalake import DeltaTable

        with delta_errors(self._location, f"loading version {version}", version=version):
            return retry_call(
                lambda: DeltaTable(self._uri, version=version, storage_options=self._delta_options),
                what=f"{self.uri}: loading version {version}",
            )

    def _commit_properties(self, metadata: Mapping[str, Any]) -> Any:
        from deltalake import CommitProperties

        return CommitProperties(custom_metadata=dict(metadata) or None,
                                max_commit_retries=COMMIT_RETRIES)

    def _hooks(self) -> Any:
        # Never delete expired log files on commit: tagged versions must stay loadable.
        from deltalake import PostCommitHookProperties

        return PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)

    def _check_schema(self, dt: DeltaTable, data: pa.Schema, *, allow_new: bool, what: str) -> None:
        table_schema = pa.schema(dt.schema().to_arrow())
        problems = write_conflicts(table_schema, data, allow_new_columns=allow_new)
        if problems:
            hint = "" if allow_new else "; pass schema_mode='merge' to add new columns"
            raise SchemaMismatchError(
                f"{self.uri}: cannot {what}: the data's schema conflicts with the table "
                f"(version {dt.version()}): " + "; ".join(problems)
                + f". Nothing was written{hint}."
            )

    def _needs_create(self) -> bool:
        """True when there is no table yet and the location is free to create one.

        A location holding other files is a :class:`TableError`. Files that look like a
        table another writer is creating right now (deltalake's ``part-...`` data files, a
        ``_delta_log`` without a commit yet) are waited for, a bounded while; if no commit
        appears (a slow creator, or one that crashed), this writer tries to create the table,
        and the Delta log's atomic first commit decides between them.
        """
        if self._dt is not None:
            return False
        delta_files_only = False
        for _ in range(_CREATE_WAITS):
            if self.exists:
                return False
            others = self._foreign_entries()
            if not others:
                return True
            delta_files_only = all(_DELTA_FILE.match(name) for name in others)
            if not delta_files_only:
                break
            time.sleep(0.25)
        if self.exists:
            return False
        if delta_files_only:
            return True
        raise TableError(
            f"{self.uri} holds {len(others)} file(s) or folder(s) (e.g. {others[0]!r}) but "
            "no Delta log (_delta_log): it is not a Delta table, and lakekit will not "
            "create one mixed into existing files. Write to an empty location, or move "
            "the files away."
        )

    def _foreign_entries(self) -> list[str]:
        fs = self._location.fs
        path = self._location.path.rstrip("/")
        fs.invalidate_cache(path)

        def listing() -> list[str]:
            try:
                if fs.isfile(path):
                    return [path]
                return [str(p) for p in fs.ls(path, detail=False)]
            except FileNotFoundError:
                return []

        entries = retry_call(listing, what=f"{self.uri}: listing")
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in entries)
        return [n for n in names if n != "_lakekit"]

    def _create_or_yield(self, source: Source, mode: str, parts: list[str] | None,
                         meta: dict[str, Any]) -> int | None:
        """Create the table with this write; ``None`` when another writer created it first
        and the data can be written again (then the caller writes into that table)."""
        try:
            return self._create(source, mode, parts, meta)
        except CommitConflictError:
            if source.replayable and self.exists:
                return None
            raise

    def _create(self, source: Source, mode: str, parts: list[str] | None,
                meta: dict[str, Any]) -> int:
        from deltalake import write_deltalake

        write_id = uuid.uuid4().hex
        props = self._commit_properties({**meta, "lakekit.write_id": write_id})
        with delta_errors(self._location, "creating the table", source=source):
            write_deltalake(self._uri, source.data, mode=mode,  # type: ignore[call-overload]
                            partition_by=parts, storage_options=self._delta_options,
                            configuration={"delta.checkpointInterval": str(CHECKPOINT_INTERVAL)},
                            commit_properties=props, post_commithook_properties=self._hooks())
        latest = int(self._latest().version())
        # Another process may have committed right after us: find our commit by its id.
        for commit in read_history(self._location, latest, 100):
            if commit.write_id == write_id:
                return commit.version
        raise TableError(
            f"{self.uri}: the table was created but lakekit cannot find its own commit among "
            "the newest 100; read history() to see what happened"
        )

    def _commit_write(self, source: Source, *, mode: str, schema_mode: str | None,
                      partition_by: list[str] | None, metadata: dict[str, Any]) -> int:
        from deltalake import write_deltalake

        attempts = APPEND_ATTEMPTS if mode == "append" and source.replayable else 1
        for attempt in range(1, attempts + 1):
            dt = self._latest()
            try:
                with delta_errors(self._location, f"{mode} write", source=source):
                    write_deltalake(
                        dt, source.data, mode=mode,  # type: ignore[call-overload]
                        schema_mode=schema_mode,
                        partition_by=partition_by if schema_mode == "overwrite" else None,
                        commit_properties=self._commit_properties(metadata),
                        post_commithook_properties=self._hooks(),
                    )
                return int(dt.version())
            except CommitConflictError:
                if attempt >= attempts:
                    raise
                time.sleep(min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _resolve(self, version: int | None, as_of: datetime | date | str | None,
                 tag: str | None) -> int | None:
        given = [x is not None for x in (version, as_of, tag)]
        if sum(given) > 1:
            raise ConfigError("give at most one of version=, as_of= and tag=")
        if version is not None:
            return as_version(version)
        if tag is not None:
            return self._tags.get(tag).version
        if as_of is not None:
            return self._version_as_of(as_of)
        return None

    def _ref(self, ref: VersionRef) -> int:
        if isinstance(ref, str) and not ref.isdigit():
            return self._tags.get(ref).version
        return as_version(int(ref))

    def _version_as_of(self, when: datetime | date | str) -> int:
        """The last version committed at or before ``when``.

        A binary search over commit times (one small read per probe, about log2(versions)
        in all), as Delta commit times increase with versions; when a probed commit file
        is missing (log retention), every remaining commit is read instead.
        """
        moment = as_utc(when)
        last = self.version
        cache: dict[int, datetime | None] = {}

        def time_of(v: int) -> datetime | None:
            if v not in cache:
                found = read_history(self._location, v, 1)
                cache[v] = found[0].timestamp if found and found[0].version == v else None
            return cache[v]

        lo, hi = 0, last
        t_lo, t_hi = time_of(lo), time_of(hi)
        if t_lo is None or t_hi is None:
            return self._version_as_of_scan(moment)
        if t_hi <= moment:
            return last
        if t_lo > moment:
            raise self._before_first(moment, lo, t_lo)
        while hi - lo > 1:  # invariant: time(lo) <= moment < time(hi)
            mid = (lo + hi) // 2
            t_mid = time_of(mid)
            if t_mid is None:
                return self._version_as_of_scan(moment)
            if t_mid <= moment:
                lo = mid
            else:
                hi = mid
        return lo

    def _version_as_of_scan(self, moment: datetime) -> int:
        commits = self.history()
        before = [c for c in commits if c.timestamp <= moment]
        if not before:
            first = min(commits, key=lambda c: c.version)
            raise self._before_first(moment, first.version, first.timestamp)
        return max(c.version for c in before)

    def _before_first(self, moment: datetime, version: int, at: datetime) -> VersionNotFoundError:
        return VersionNotFoundError(
            f"{self.uri}: no version was committed at or before {moment.isoformat()}; "
            f"the first readable commit (version {version}) is at {at.isoformat()}"
        )

    def _check_exists(self, version: int, last: int) -> None:
        if version > last:
            raise VersionNotFoundError(
                f"{self.uri}: version {version} does not exist (the latest is {last})"
            )

    def _paths(self, dt: DeltaTable) -> set[str]:
        actions = pa.table(dt.get_add_actions(flatten=True))
        return {unquote(p) for p in actions.column("path").to_pylist()}

    def _file_exists(self, path: str) -> bool:
        fs = self._location.fs
        return bool(retry_call(lambda: fs.exists(path), what=f"{self.uri}: checking files"))

    def _check_files(self, version: int, paths: set[str]) -> None:
        """Fail with VersionNotFoundError when files of ``version`` were removed (vacuum)."""
        if not paths:
            return
        fs = self._location.fs
        root = self._location.path.rstrip("/")
        fs.invalidate_cache(root)
        if len(paths) <= _EXISTS_CHECKS:
            missing = [p for p in sorted(paths) if not self._file_exists(f"{root}/{p}")]
        else:
            present = retry_call(lambda: fs.find(root), what=f"{self.uri}: listing files")
            have = {str(p)[len(root) + 1:] for p in present}
            missing = sorted(paths - have)
        if missing:
            raise VersionNotFoundError(
                f"{self.uri}: version {version} can no longer be read: {len(missing)} of its "
                f"data files were removed by vacuum (e.g. {missing[0]!r}). Versions that "
                "vacuum keeps readable: the latest, tagged ones, and those newer than the "
                "retention period."
            )


def _file_rows(dt: DeltaTable) -> dict[str, int]:
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    rows = actions.column("num_records").to_pylist()
    return {unquote(p): int(n or 0) for p, n in zip(paths, rows, strict=True)}
