"""One table's handle on deltalake: where it is, its latest snapshot, and readability checks.

Every part of :class:`lakekit.Table` (writes, time travel, diffs, maintenance) loads the
table the same way, commits with the same properties and asks the same question of an
old version (does it exist, are its data files still there?); :class:`DeltaHandle` and the
functions below are that shared ground, so the modules beside it need nothing of the
``Table`` object itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa

from lakekit.errors import VersionNotFoundError
from lakekit.storage import Location, retry_call
from lakekit.tables._inputs import delta_errors

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = [
    "CHECKPOINT_INTERVAL",
    "COMMIT_RETRIES",
    "EXISTS_CHECKS",
    "DeltaHandle",
    "commit_properties",
    "file_paths",
    "file_rows",
    "hooks",
    "txn_done",
]

# deltalake retries a commit that lost a race itself (cheap: it re-reads the new log
# entries and checks for conflicts); a blind append never conflicts, so this bound is
# only reached under heavy contention.
COMMIT_RETRIES = 100
# Tables lakekit creates write a checkpoint every this many commits (deltalake's default
# is 100, Spark's 10): opening any version replays at most this many JSON commits.
CHECKPOINT_INTERVAL = 10
# A version's files that are not in the latest version are checked one by one up to this
# many; beyond it, one listing of the table directory is cheaper.
EXISTS_CHECKS = 64


class DeltaHandle:
    """The Delta table at ``location``: deltalake's URI and options, the cached snapshot."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.uri = location.delta_uri()
        self.options = location.delta_storage_options() or None
        self._dt: DeltaTable | None = None

    @property
    def url(self) -> str:
        """The table's URL, without credentials."""
        return self.location.url

    @property
    def loaded(self) -> bool:
        """True once :meth:`latest` has loaded the table (so it exists)."""
        return self._dt is not None

    def exists(self) -> bool:
        """True when a Delta table is at the URI."""
        from deltalake import DeltaTable

        return bool(retry_call(
            lambda: DeltaTable.is_deltatable(self.uri, self.options),
            what=f"{self.url}: looking for a Delta table",
        ))

    def latest(self) -> DeltaTable:
        """The table at its latest version (cached, refreshed incrementally)."""
        from deltalake import DeltaTable

        with delta_errors(self.location, "loading the table"):
            if self._dt is None:
                self._dt = retry_call(
                    lambda: DeltaTable(self.uri, storage_options=self.options),
                    what=f"{self.url}: loading the Delta log",
                )
            else:
                dt = self._dt
                retry_call(dt.update_incremental, what=f"{self.url}: refreshing the Delta log")
        return self._dt

    def at(self, version: int) -> DeltaTable:
        """The table at ``version`` (a fresh snapshot, not cached)."""
        from deltalake import DeltaTable

        with delta_errors(self.location, f"loading version {version}", version=version):
            return retry_call(
                lambda: DeltaTable(self.uri, version=version, storage_options=self.options),
                what=f"{self.url}: loading version {version}",
            )

    def check_exists(self, version: int, last: int) -> None:
        """Fail with VersionNotFoundError when ``version`` is newer than ``last``."""
        if version > last:
            raise VersionNotFoundError(
                f"{self.url}: version {version} does not exist (the latest is {last})"
            )

    def check_readable(self, version: int, latest: DeltaTable) -> None:
        """Fail with VersionNotFoundError unless ``version`` exists and has all its files.

        ``latest`` is the latest snapshot: files it still uses are not checked again.
        """
        last = int(latest.version())
        self.check_exists(version, last)
        if version != last:
            self.check_files(version, file_paths(self.at(version)) - file_paths(latest))

    def check_files(self, version: int, paths: set[str]) -> None:
        """Fail with VersionNotFoundError when files of ``version`` were removed (vacuum)."""
        if not paths:
            return
        fs = self.location.fs
        root = self.location.path.rstrip("/")
        fs.invalidate_cache(root)
        if len(paths) <= EXISTS_CHECKS:
            missing = [p for p in sorted(paths) if not self._file_exists(f"{root}/{p}")]
        else:
            present = retry_call(lambda: fs.find(root), what=f"{self.url}: listing files")
            have = {str(p)[len(root) + 1:] for p in present}
            missing = sorted(paths - have)
        if missing:
            raise self._vacuumed(version, f"{len(missing)} of its data files were removed "
                                 f"by vacuum (e.g. {missing[0]!r})")

    def check_sample(self, version: int, path: str) -> None:
        """Fail with VersionNotFoundError when ``path``, a data file of ``version`` (a
        filesystem path), is missing and the latest version no longer uses it: vacuum
        removed it. One existence check; the latest log is loaded only when it is missing.
        """
        self.location.fs.invalidate_cache(path)
        if self._file_exists(path):
            return
        latest = self.latest()
        name = path.removeprefix(self.location.path.rstrip("/") + "/")
        if version < int(latest.version()) and name not in file_paths(latest):
            raise self._vacuumed(version, f"its data file {name!r} was removed by vacuum")
        # a file the latest version uses: no vacuum removed it; the read reports it

    def _vacuumed(self, version: int, what: str) -> VersionNotFoundError:
        return VersionNotFoundError(
            f"{self.url}: version {version} can no longer be read: {what}. Versions that "
            "vacuum keeps readable: the latest, tagged ones, and those newer than the "
            "retention period."
        )

    def _file_exists(self, path: str) -> bool:
        fs = self.location.fs
        return bool(retry_call(lambda: fs.exists(path), what=f"{self.url}: checking files"))


def commit_properties(metadata: Mapping[str, Any], txn: tuple[str, int] | None = None) -> Any:
    """deltalake commit properties: the caller's metadata, lakekit's retry bound and, with
    ``txn``, the app transaction (``txn`` action) the commit records."""
    from deltalake import CommitProperties, Transaction

    return CommitProperties(
        custom_metadata=dict(metadata) or None, max_commit_retries=COMMIT_RETRIES,
        app_transactions=[Transaction(txn[0], txn[1])] if txn is not None else None,
    )


def txn_done(dt: DeltaTable, txn: tuple[str, int] | None) -> bool:
    """True when ``dt`` records ``txn``'s app id at ``txn``'s version or a later one."""
    if txn is None:
        return False
    done = dt.transaction_version(txn[0])
    return done is not None and int(done) >= txn[1]


def hooks() -> Any:
    """deltalake post-commit hooks: checkpoints on, log cleanup off."""
    # Never delete expired log files on commit: tagged versions must stay loadable.
    from deltalake import PostCommitHookProperties

    return PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)


def file_paths(dt: DeltaTable) -> set[str]:
    """The data files of a snapshot, relative to the table root."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    return {unquote(p) for p in actions.column("path").to_pylist()}


def file_rows(dt: DeltaTable) -> dict[str, int]:
    """The data files of a snapshot and their row counts (from the log's statistics)."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    rows = actions.column("num_records").to_pylist()
    return {unquote(p): int(n or 0) for p, n in zip(paths, rows, strict=True)}
