"""Compaction while the sink runs: small files of recent commits rewritten into large ones.

A sink that commits every second writes a small file per commit; readers then pay per
file. With ``compact_every=N``, every N commits to a table (the main table and the
dead-letter table count separately) start a compaction of that table in a background
thread: deltalake's ``optimize.compact`` bin-packs the files below the target size into
files of about the target size and commits them as ``remove`` / ``add`` actions with
``dataChange=false`` (readers of the change feed and streaming readers skip such
commits). It never runs on the commit thread, and one compaction at a time.

Racing the sink's own appends is safe both ways (deltalake's conflict checker):

- a sink append lands while a compaction runs: the compaction only adds and removes
  files that existed at its snapshot, and an append does neither, so deltalake commits
  the compaction at the next version (no conflict);
- a compaction takes the version the sink's commit wanted: the append (``txn`` actions
  plus new files) does not conflict with it either, and lands at the next version; its
  ``txn`` fence is unaffected, because a compaction writes no ``txn`` action. A
  compaction that did conflict (a schema change in between) fails and is retried.

What deltalake does *not* catch (deltalake 1.6): two compactions that remove the same
files both commit, and those rows are then in the table twice. So only one sink process
of a group compacts a table: the one that owns partition 0 of the sink's first topic,
and a sink waits for its compaction before it gives that partition up in a rebalance.
Each compaction also holds the table's compaction lease
(:class:`lakekit.tables.maintenance.CompactLease`, which ``Table.compact()`` holds too),
without waiting: an attempt that finds it held fails and is retried. After each
compaction the commits it raced with are checked for removals of the same files; finding
one (a writer that does not take the lease) is logged as an error and counted.

A failure (storage errors, a conflict, a data file that cannot be read) is retried a
few times with backoff, then the compaction is skipped with a warning; the next one
starts after N more commits. A SIGKILL at any instant leaves either the compaction
committed or nothing of it but unreferenced files (``vacuum`` removes them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lakekit.errors import ConfigError
from lakekit.storage import Location
from lakekit.tables.maintenance import CompactLease

__all__ = ["CompactionOutcome", "SinkCompactor", "check_compaction_options", "compact_table"]

log = logging.getLogger("lakekit.sink")

_ATTEMPTS = 3
_BASE_DELAY = 0.5
_MAX_DELAY = 5.0
_CLOSE_TIMEOUT = 120.0

TableName = Literal["main", "dead_letter"]


@dataclass(frozen=True)
class CompactionOutcome:
    """What one compaction of one table did."""

    table: str
    """The table's URL (without credentials)."""
    ok: bool
    """False when every attempt failed (the compaction was skipped)."""
    version: int | None = None
    """The compaction's commit (``None``: nothing to compact, or it failed)."""
    files_removed: int = 0
    files_added: int = 0
    attempts: int = 1
    seconds: float = 0.0
    raced: bool = False
    """Another writer removed some of the same files concurrently (see the module doc)."""
    error: str | None = None


COMPACTION_ROW_GROUP = 65_536
"""Rows per row group of a compacted file (bounds the writer's memory; see docs/benchmarks.md)."""


def compact_table(location: Location, *, target_size: int | None = None,
                  attempts: int = _ATTEMPTS, base_delay: float = _BASE_DELAY) -> CompactionOutcome:
    """Compact the Delta table at ``location`` once: bin-pack its files below
    ``target_size`` bytes (default: the table's ``delta.targetFileSize``, else 100 MB)
    into ``dataChange=false`` commits; retried ``attempts`` times, never raising.

    Examples
    --------
    >>> from lakekit.storage import resolve
    >>> for i in range(3):
    ...     _ = t.write(pa.table({"id": [10 + i], "kind": ["more"]}))
    >>> outcome = compact_table(resolve("lake/events"))
    >>> outcome.ok, outcome.files_added, outcome.files_removed
    (True, 1, 5)
    >>> t.read().num_rows  # the same rows, in one file
    6
    """
    from deltalake import (
        CommitProperties,
        DeltaTable,
        PostCommitHookProperties,
        WriterProperties,
    )

    uri, options = location.delta_uri(), location.delta_storage_options() or None
    start = time.monotonic()
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            # Table.compact() by hand holds the same lease: never two compactions at once
            lease = CompactLease(location, wait=0.0)
            lease.acquire()
            try:
                dt = DeltaTable(uri, storage_options=options)
                read_version = int(dt.version())
                metrics = dt.optimize.compact(
                    target_size=target_size,
                    max_concurrent_tasks=1,  # one core, one file's rows in memory at a time
                    # snappy, like the sink's own files (optimize defaults to zstd, which
                    # decodes slower: whole-table reads were up to 1.4x slower in bench_sink)
                    # row groups of 64Ki rows: the parquet writer holds one row group in
                    # memory, and its default (1Mi rows) held ~500 MB of 1 KB events
                    writer_properties=WriterProperties(compression="SNAPPY",
                                                       max_row_group_size=COMPACTION_ROW_GROUP),
                    commit_properties=CommitProperties(
                        custom_metadata={"lakekit.operation": "sink compaction"}),
                    # checkpoints as usual; never delete expired log files (tagged versions)
                    post_commithook_properties=PostCommitHookProperties(
                        create_checkpoint=True, cleanup_expired_logs=False),
                )
            finally:
                lease.release()
            removed = int(metrics.get("numFilesRemoved", 0))
            version = int(dt.version()) if removed else None
            raced = version is not None and _raced(location, read_version, version)
            return CompactionOutcome(
                location.url, True, version, removed, int(metrics.get("numFilesAdded", 0)),
                attempt, time.monotonic() - start, raced)
        except Exception as exc:
            error = f"{type(exc).__name__}: {location.redact(str(exc)).splitlines()[0][:300]}"
            if attempt < attempts:
                delay = min(_MAX_DELAY, base_delay * 2 ** (attempt - 1))
                log.info("compaction of %s failed (attempt %d/%d), retrying in %.1fs: %s",
                         location.url, attempt, attempts, delay, error)
                time.sleep(delay)
    return CompactionOutcome(location.url, False, attempts=attempts,
                             seconds=time.monotonic() - start, error=error)


def _raced(location: Location, read_version: int, version: int) -> bool:
    """Whether a commit between ``read_version`` and the compaction's own ``version``
    removed a file that the compaction removed too (its rows would then be twice)."""
    if version <= read_version + 1:
        return False

    def removes(v: int) -> set[str]:
        path = f"{location.path.rstrip('/')}/_delta_log/{v:020d}.json"
        lines = location.fs.cat_file(path).decode().splitlines()
        return {a["remove"]["path"] for a in map(json.loads, filter(None, lines))
                if "remove" in a}

    try:
        ours = removes(version)
        return any(ours & removes(v) for v in range(read_version + 1, version))
    except Exception as exc:  # the check is best effort; the compaction itself landed
        log.debug("could not check compaction v%d of %s for races: %s", version,
                  location.url, exc)
        return False


class SinkCompactor:
    """Starts compactions of a sink's tables after every ``every`` commits to each, in
    a background thread, one at a time; reports each outcome to ``on_done`` (from that
    thread).

    The sink calls :meth:`committed` after each commit (from its loop thread), and
    :meth:`wait` before giving up the right to compact (a rebalance, the end of a run).
    """

    def __init__(self, tables: dict[TableName, Location], *, every: int,
                 target_size: int | None,
                 on_done: Callable[[CompactionOutcome], None]) -> None:
        self.tables = tables
        self.every = every
        self.target_size = target_size
        self._on_done = on_done
        self._since = dict.fromkeys(tables, 0)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (f"SinkCompactor(every={self.every}, target_size={self.target_size}, "
                f"tables={[loc.url for loc in self.tables.values()]})")

    @property
    def running(self) -> bool:
        """A compaction is in progress."""
        return self._thread is not None and self._thread.is_alive()

    def committed(self, *, main: bool, dead_letter: bool, allowed: bool) -> None:
        """Count a commit to the main and / or dead-letter table; start a compaction of the
        tables that reached ``every`` commits when ``allowed`` (this process compacts) and
        none is running. Tables whose turn comes while one runs wait for the next commit."""
        for name, did in (("main", main), ("dead_letter", dead_letter)):
            if did and name in self._since:
                self._since[name] += 1
        if not allowed or self.running:
            return
        due = [n for n, count in self._since.items() if count >= self.every]
        if not due:
            return
        for name in due:
            self._since[name] = 0
        self._thread = threading.Thread(
            target=self._compact, args=([self.tables[n] for n in due],),
            name="lakekit-sink-compaction", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        """Wait (at most ``timeout`` seconds) for the compaction in progress to end."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("compaction still running after %.0fs; not waiting for it",
                            timeout)

    def _compact(self, locations: list[Location]) -> None:
        for location in locations:
            outcome = compact_table(location, target_size=self.target_size)
            if not outcome.ok:
                log.warning("compaction of %s skipped after %d failed attempts (the sink "
                            "goes on; the next compaction starts after %d more commits): %s",
                            outcome.table, outcome.attempts, self.every, outcome.error)
            elif outcome.raced:
                log.error("compaction v%d of %s removed files another writer removed at the "
                          "same time: their rows may now be in the table twice; run one "
                          "compacting writer per table", outcome.version, outcome.table)
            elif outcome.version is not None:
                log.info("compaction v%d of %s: %d files into %d in %.1fs", outcome.version,
                         outcome.table, outcome.files_removed, outcome.files_added,
                         outcome.seconds)
            with contextlib.suppress(Exception):  # a callback error must not kill the thread
                self._on_done(outcome)


def check_compaction_options(every: int | None, target_size: int | None) -> None:
    """Raise :class:`~lakekit.errors.ConfigError` for bad ``compact_every`` /
    ``compact_target_file_size`` values.

    Examples
    --------
    >>> check_compaction_options(10, 128 << 20)
    >>> check_compaction_options(None, 128 << 20)
    Traceback (most recent call last):
    ...
    lakekit.errors.ConfigError: compact_target_file_size needs compact_every=N too
    """
    if every is not None and (isinstance(every, bool) or int(every) != every or every < 1):
        raise ConfigError(f"compact_every must be a positive number of commits or None, "
                          f"got {every!r}")
    if target_size is not None:
        if every is None:
            raise ConfigError("compact_target_file_size needs compact_every=N too")
        if isinstance(target_size, bool) or int(target_size) != target_size or target_size < 1:
            raise ConfigError(f"compact_target_file_size must be a positive number of bytes, "
                              f"got {target_size!r}")
