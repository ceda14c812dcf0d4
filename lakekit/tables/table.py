"""Versioned tables on Delta Lake: write, upsert, history, time travel, tags, restore, diff.

:class:`Table` is a thin, git-like surface over deltalake (delta-rs). Every write makes a
new version; any version can be read back (``read`` / ``dataset``) by number, by commit
time (``as_of``) or by a tag; ``restore`` makes a new version equal to an old one; ``diff``
says what changed. Tags are stored with the table (see :mod:`lakekit.io.tags`) and
protect their versions from ``vacuum``.

The methods here check their arguments and delegate; the bodies live in the modules
beside this one (see :mod:`lakekit.tables`), so this file stays the readable API.

On S3, deltalake commits with a conditional put (``If-None-Match: *``), so several
processes may append to one table at once; see ``docs/tables.md`` for the settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakekit import lineage
from lakekit.errors import ConfigError, NotFoundError, VersionNotFoundError
from lakekit.io.filters import Filter
from lakekit.io.tags import TagStore, check_tag_name
from lakekit.scale.engines import engine_of
from lakekit.storage import Location, resolve
from lakekit.tables._delta import DeltaHandle
from lakekit.tables._html import table_html
from lakekit.tables._inputs import as_version, check_txn
from lakekit.tables.diff import diff_versions
from lakekit.tables.distributed import write_distributed
from lakekit.tables.history import read_history
from lakekit.tables.maintenance import compact_files, vacuum_files, write_checkpoint
from lakekit.tables.types import Commit, CompactResult, TableDiff, VacuumResult
from lakekit.tables.versions import (
    VersionRef,
    open_dataset,
    ref_version,
    resolve_version,
    restore_version,
)
from lakekit.tables.write import Mode, SchemaMode, delete_rows, upsert_rows, write_data

if TYPE_CHECKING:
    from lakekit.io.dataset import Dataset

__all__ = ["Table"]


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
    >>> import lakekit as lk, pyarrow as pa
    >>> orders = lk.Table("lake/orders")
    >>> orders.write(pa.table({"id": [1, 2]}))
    0
    >>> orders.tag("v1")
    0
    >>> orders.read(tag="v1").num_rows
    2
    """

    def __init__(
        self, uri: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self._source = os.fspath(uri)
        self._storage_options = dict(storage_options or {})
        location = resolve(self._source, storage_options=self._storage_options)
        self._delta = DeltaHandle(location)
        self._tags = TagStore(location)

    def __repr__(self) -> str:
        return f"Table({self._delta.url!r})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as (uri, storage_options): a worker reopens the table, nothing else travels."""
        return (_rebuild_table, (self._source, self._storage_options))

    def _repr_html_(self) -> str:
        return table_html(self)

    # -- what it is --------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """The table's URL, without credentials."""
        return self._delta.url

    @property
    def location(self) -> Location:
        """Where the table lives (filesystem and root path; its repr holds no credentials)."""
        return self._delta.location

    @property
    def exists(self) -> bool:
        """True when a Delta table is at the URI."""
        return self._delta.exists()

    @property
    def version(self) -> int:
        """The latest version."""
        return int(self._delta.latest().version())

    @property
    def schema(self) -> pa.Schema:
        """The schema of the latest version."""
        return pa.schema(self._delta.latest().schema().to_arrow())

    @property
    def partition_by(self) -> list[str]:
        """The partition columns."""
        return list(self._delta.latest().metadata().partition_columns)

    # -- writing -----------------------------------------------------------------------------
    def write(
        self,
        data: Any,
        *,
        mode: Mode = "append",
        schema_mode: SchemaMode | None = None,
        partition_by: str | Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        txn: tuple[str, int] | None = None,
        client: Any = None,
    ) -> int:
        """Write ``data`` as a new version; the first write creates the table.

        A Dask DataFrame or a Ray Dataset is written by the engine's workers, one task
        per partition, and committed once by this process: one new version however many
        partitions (see ``docs/tables.md``, "Distributed writes").

        Parameters
        ----------
        data
            A pyarrow Table, RecordBatch or RecordBatchReader, an iterator of RecordBatches,
            a polars or pandas DataFrame, a lakekit ``Dataset`` (streamed), a Dask
            DataFrame or a Ray Dataset (written by their workers).
        mode
            ``"append"`` adds rows; ``"overwrite"`` replaces them (history is kept).
        schema_mode
            ``None``: the data's columns must be columns of the table, of the same type or
            a lossless widening, else :class:`SchemaMismatchError` and nothing is written.
            ``"merge"``: new columns are added to the table. ``"overwrite"`` (with
            ``mode="overwrite"``): the data's schema replaces the table's. Dask and Ray
            data need ``None``.
        partition_by
            Partition columns, when the write creates the table.
        metadata
            JSON-serializable values stored in the commit and shown by :meth:`history`.
        txn
            ``(app_id, version)``: an idempotent write. When the table already records
            ``app_id`` at ``version`` or later, nothing is written and the current
            version is returned; otherwise the commit records it (a Delta ``txn``
            action), atomically: of two writers racing with the same pair, one commits.
        client
            The ``distributed.Client`` that runs a Dask DataFrame's write (default: the
            default client, else Dask's local scheduler); only for Dask data.

        Returns
        -------
        int
            The version this write created (with ``txn``: or the current version, when
            the pair was committed before).

        Examples
        --------
        >>> t.write(pa.table({"id": [4], "kind": ["buy"]}), metadata={"source": "backfill"})
        2
        >>> t.read().num_rows, t.history(limit=1)[0].metadata
        (4, {'source': 'backfill'})
        >>> t.write(pa.table({"id": [5], "kind": ["buy"]}), txn=("nightly", 7))
        3
        >>> t.write(pa.table({"id": [5], "kind": ["buy"]}), txn=("nightly", 7))  # done: no-op
        3
        >>> t.read().num_rows
        5
        """
        checked_txn = check_txn(txn)
        if engine_of(data) is not None:
            return lineage.table_run(self, "write", lambda: write_distributed(
                self._delta, data, mode=mode, schema_mode=schema_mode,
                partition_by=partition_by, metadata=metadata, txn=checked_txn, client=client),
                mode=mode)
        if client is not None:
            raise ConfigError("client= is for writing a Dask DataFrame; this data is not one")
        return lineage.table_run(self, "write", lambda: write_data(
            self._delta, data, mode=mode, schema_mode=schema_mode, partition_by=partition_by,
            metadata=metadata, txn=checked_txn), data=data, mode=mode)

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
        >>> t.upsert(pa.table({"id": [2, 9], "kind": ["buy", "view"]}), on="id")
        2
        >>> t.read().sort_by("id").to_pydict()
        {'id': [1, 2, 3, 9], 'kind': ['view', 'buy', 'test', 'view']}
        """
        return lineage.table_run(self, "upsert", lambda: upsert_rows(
            self._delta, data, on=on, metadata=metadata), data=data)

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
        >>> t.delete([("kind", "=", "test")])
        2
        >>> t.delete("kind = 'test'")  # no row matches any more: no new version
        2
        """
        return lineage.table_run(self, "delete", lambda: delete_rows(
            self._delta, predicate, metadata=metadata))

    # -- history and time travel -------------------------------------------------------------
    def history(self, limit: int | None = None) -> list[Commit]:
        """The commits, newest first (version, UTC time, operation, parameters, metrics, metadata).

        Examples
        --------
        >>> for commit in t.history():
        ...     print(commit.version, commit.operation, commit.metadata)
        1 WRITE {}
        0 WRITE {'load': 'initial'}
        """
        if limit is not None and limit < 1:
            raise ConfigError(f"limit must be >= 1, got {limit}")
        latest = int(self._delta.latest().version())
        return read_history(self._delta.location, latest, limit)

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
        >>> t.read().num_rows, t.read(0).num_rows, t.read(tag="reviewed").num_rows
        (3, 2, 2)
        >>> t.read(columns=["id"], filter=[("kind", "=", "test")]).to_pylist()
        [{'id': 3}]
        """
        # no up-front file check: the read itself names a version whose files were vacuumed
        target = resolve_version(self._delta, self._tags, version, as_of, tag)
        ds = open_dataset(self._delta, target, source=self._source,
                          storage_options=self._storage_options or None, check=False)
        try:
            return ds.to_arrow(columns=columns, filter=filter, progress=False)
        except NotFoundError as exc:
            detail = str(exc).removeprefix(f"{self.uri}: ")  # named once
            raise VersionNotFoundError(
                f"{self.uri}: version {ds.version} can no longer be read: {detail}"
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
        >>> ds = t.dataset(tag="reviewed")
        >>> ds.version, ds.count_rows()
        (0, 2)
        >>> ds.to_polars(columns=["id"])["id"].to_list()
        [1, 2]
        """
        target = resolve_version(self._delta, self._tags, version, as_of, tag)
        return open_dataset(self._delta, target, source=self._source,
                            storage_options=self._storage_options or None)

    # -- tags --------------------------------------------------------------------------------
    def tag(self, name: str, version: int | None = None, *, force: bool = False) -> int:
        """Name a version (the latest by default); returns the version tagged.

        Tags are stored with the table, so every process reading this URI sees them, and
        a tagged version is never vacuumed. Reusing a name is an error unless ``force``.

        Examples
        --------
        >>> t.tag("trained-2026-03-01")
        1
        >>> t.tags()
        {'reviewed': 0, 'trained-2026-03-01': 1}
        """
        check_tag_name(name)
        latest = self._delta.latest()
        target = int(latest.version()) if version is None else as_version(version)
        self._delta.check_readable(target, latest)
        self._tags.put(name, target, force=force)
        return target

    def tags(self) -> dict[str, int]:
        """Every tag and the version it names, sorted by name.

        Like :attr:`version` and :meth:`history`, a :class:`NotFoundError` when there is
        no table at the URI.
        """
        self._delta.latest()  # no table: NotFoundError, as for .version and history()
        return {name: tag.version for name, tag in self._tags.all().items()}

    def untag(self, name: str) -> int:
        """Remove a tag; returns the version it named (:class:`NotFoundError`: no table)."""
        self._delta.latest()
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
        >>> t.restore(tag="reviewed")
        2
        >>> t.read().num_rows
        2
        """
        target = resolve_version(self._delta, self._tags, version, as_of, tag)
        if target is None:
            raise ConfigError("restore needs one of version=, as_of= or tag=")
        return lineage.table_run(self, "restore", lambda: restore_version(
            self._delta, target, tag=tag, metadata=metadata))

    def diff(self, from_version: VersionRef, to_version: VersionRef) -> TableDiff:
        """What changed from one version to another (versions or tag names).

        Examples
        --------
        >>> print(t.diff("reviewed", t.version).summary())
        v0 -> v1: 2 -> 3 rows (+1)
        files: +1 -0; rows in those files: +1 -0
        schema: unchanged
        operations: v1 WRITE
        """
        a = ref_version(self._tags, from_version)
        b = ref_version(self._tags, to_version)
        return diff_versions(self._delta, a, b)

    # -- maintenance -------------------------------------------------------------------------
    def compact(self, target_file_size: int | None = None) -> CompactResult:
        """Rewrite small files into files of about ``target_file_size`` bytes (default 100 MB).

        Examples
        --------
        >>> t.compact(target_file_size=64 << 20)
        CompactResult(version=2, files_added=1, files_removed=2)
        """
        return compact_files(self._delta, target_file_size)

    def checkpoint(self) -> int:
        """Write a checkpoint of the latest version (short log replay); returns that version."""
        return write_checkpoint(self._delta)

    def vacuum(self, retention_hours: int = 168, *, dry_run: bool = True) -> VacuumResult:
        """Delete data files no version within ``retention_hours`` needs (a dry run by default).

        Files of tagged versions are always kept. With a short retention, readers and
        writers still working on older versions may fail; the default is a week.

        Examples
        --------
        >>> t.compact().files_removed  # the files of versions 0 and 1 are no longer current
        2
        >>> result = t.vacuum(retention_hours=0, dry_run=False)
        >>> len(result.files), result.protected_versions  # the tagged version keeps its file
        (1, (0,))
        """
        return vacuum_files(self._delta, self._tags, retention_hours, dry_run=dry_run)


def _rebuild_table(source: str, storage_options: dict[str, Any]) -> Table:
    return Table(source, storage_options=storage_options)
