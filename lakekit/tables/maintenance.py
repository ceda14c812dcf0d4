"""The bodies of ``Table.compact``, ``checkpoint`` and ``vacuum``: housekeeping commits.

Vacuum is tag-safe: the versions that tags name are passed to deltalake as versions to
keep, so their data files survive any retention; and no lakekit commit deletes expired
log files (see :func:`lakekit.tables._delta.hooks`), so tagged versions stay loadable.
It is deltalake's *full* vacuum: besides the files that commits removed, it lists the
files no commit ever referenced (those of a failed or abandoned write), which deltalake's
default "lite" vacuum never sees.

Compaction is fenced by a lease: deltalake (1.6) lets two concurrent ``optimize.compact``
calls that remove the same files both commit, and every rewritten row is then in the
table twice (its conflict checker, app transactions included, does not catch it). Before
planning, :func:`compact_files` claims the next generation of the table's compaction lease,
``<table>/_lakekit/compact/<generation>.json``, with an atomic create-if-absent write (as
tags are claimed), and plans from the latest version only once it holds it; it marks the
lease released when done. A compaction that finds a live lease waits for it (bounded),
then fails with :class:`~lakekit.errors.CommitConflictError`. The holder renews the lease
while it compacts; one whose holder died (kill -9) expires :data:`LEASE_SECONDS` after its
last renewal. The holder is the creator of the highest generation:
a claim decided on an old listing (a generation since pruned, then created again) is
given up when a higher one exists. The sink's compaction holds the same lease.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from lakekit.errors import CommitConflictError, ConfigError, LakekitError, NotFoundError
from lakekit.io.tags import TagStore
from lakekit.storage import Location, retry_call
from lakekit.tables._delta import DeltaHandle, commit_properties, hooks
from lakekit.tables._inputs import delta_errors
from lakekit.tables.commits import commit_once, new_write
from lakekit.tables.history import read_history
from lakekit.tables.types import CompactResult, VacuumResult

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = [
    "LEASE_SECONDS",
    "LEASE_WAIT",
    "CompactLease",
    "compact_files",
    "protected_versions",
    "vacuum_files",
    "write_checkpoint",
]

LEASE_DIR = "_lakekit/compact"
# A compaction lease not renewed for this long is taken to be a dead holder's (a process
# killed mid-compaction); its holder renews it every LEASE_SECONDS / 4 while it compacts.
LEASE_SECONDS = 60.0
# How long a compaction waits for another one to finish before it fails.
LEASE_WAIT = 120.0
# Generations kept (older ones are deleted by the next holder): a sink compacts often.
LEASE_KEEP = 8


class CompactLease:
    """The table's compaction lease: at most one holder at a time, in any process.

    ``wait``: seconds to wait for another holder (default :data:`LEASE_WAIT`).
    ``Table.compact`` and the sink's compaction both hold it while they compact.
    """

    def __init__(self, location: Location, *, wait: float | None = None) -> None:
        self._location = location
        self._dir = location.path.rstrip("/") + "/" + LEASE_DIR
        self._wait = LEASE_WAIT if wait is None else wait
        self._owner = uuid.uuid4().hex
        self._path: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _generations(self) -> list[str]:
        fs = self._location.fs
        fs.invalidate_cache(self._dir)

        def listing() -> list[str]:
            try:
                return sorted(str(p) for p in fs.ls(self._dir, detail=False)
                              if str(p).rsplit("/", 1)[-1][:20].isdigit())
            except FileNotFoundError:
                return []

        return list(retry_call(listing, what=f"{self._location.url}: listing compaction leases"))

    def _state(self, path: str) -> dict[str, object] | None:
        """The lease at ``path``; None when it is released, expired or gone (a claim of
        the next generation is still decided by its exclusive create)."""
        fs = self._location.fs
        try:
            raw = retry_call(lambda: bytes(fs.cat_file(path)),
                             what=f"{self._location.url}: reading the compaction lease")
        except NotFoundError:
            return None
        try:
            doc = json.loads(raw)
            expires = datetime.fromisoformat(str(doc["expires"]))
            released = bool(doc.get("released", False))
        except (ValueError, KeyError, TypeError):
            return None  # a torn or foreign file does not hold the lease
        if released or expires <= datetime.now(timezone.utc):
            return None
        return dict(doc)

    def _body(self, *, released: bool) -> bytes:
        now = datetime.now(timezone.utc)
        expires = now if released else now + timedelta(seconds=LEASE_SECONDS)
        return json.dumps({"owner": self._owner, "expires": expires.isoformat(),
                           "released": released}).encode()

    def _renew(self, path: str) -> None:
        """Push the expiry forward while the lease is held (a daemon thread)."""
        while not self._stop.wait(LEASE_SECONDS / 4):
            with contextlib.suppress(OSError, LakekitError):
                self._write(path, self._body(released=False), exclusive=False)

    def _write(self, path: str, body: bytes, *, exclusive: bool) -> None:
        retry_call(lambda: self._location.write_whole(path, body, exclusive=exclusive),
                   what=f"{self._location.url}: writing the compaction lease")

    def acquire(self) -> None:
        """Claim the next generation; wait (bounded) while another holder has it."""
        fs = self._location.fs
        if self._location.is_local:
            fs.makedirs(self._dir, exist_ok=True)
        deadline = time.monotonic() + self._wait
        pause = 0.02
        while True:
            generations = self._generations()
            last = generations[-1] if generations else None
            held = self._state(last) if last is not None else None
            if held is None:
                number = int(last.rsplit("/", 1)[-1][:20]) + 1 if last is not None else 0
                path = f"{self._dir}/{number:020d}.json"
                body = self._body(released=False)
                try:
                    self._write(path, body, exclusive=True)
                except FileExistsError:
                    # another compaction claimed it first, or our own PUT landed and only
                    # its response was lost (then the lease is ours)
                    mine = self._state(path)
                    if mine is None or mine.get("owner") != self._owner:
                        continue
                self._path = path
                # A claim decided on an old listing may have re-created a pruned number:
                # it holds the lease only if no higher generation exists.
                newest = self._generations()[-1].rsplit("/", 1)[-1]
                if int(newest[:20]) != number:
                    self.release()
                    continue
                self._prune(generations, number)
                self._stop.clear()
                self._renewer = threading.Thread(
                    target=self._renew, args=(path,), daemon=True,
                    name=f"lakekit-compact-lease {self._location.url}")
                self._renewer.start()
                return
            if time.monotonic() >= deadline:
                assert last is not None
                raise CommitConflictError(
                    f"{self._location.url}: another compaction of this table is running "
                    f"(lease {LEASE_DIR}/{last.rsplit('/', 1)[-1]}, until {held['expires']}); "
                    f"waited {self._wait:g} s for it. Try again later; if no compaction runs "
                    "(its process died), the lease expires by itself at that time"
                )
            time.sleep(pause)
            pause = min(1.0, pause * 2)

    def _prune(self, generations: list[str], number: int) -> None:
        """Delete generations older than the last :data:`LEASE_KEEP` (best effort)."""
        fs = self._location.fs
        old = [p for p in generations if int(p.rsplit("/", 1)[-1][:20]) <= number - LEASE_KEEP]
        if old:
            with contextlib.suppress(OSError, LakekitError):
                retry_call(lambda: fs.rm(old),
                           what=f"{self._location.url}: pruning compaction leases")

    def release(self) -> None:
        """Mark the lease released (only its holder writes to it)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=LEASE_SECONDS)
            self._renewer = None
        path, self._path = self._path, None
        if path is None:
            return
        self._write(path, self._body(released=True), exclusive=False)
        self._location.fs.invalidate_cache(self._dir)


def compact_files(delta: DeltaHandle, target_file_size: int | None) -> CompactResult:
    """Rewrite small files into files of about ``target_file_size`` bytes.

    Planned from the latest version once the compaction lease is held, so two
    compactions never remove (and rewrite) the same files.
    """
    if target_file_size is not None and target_file_size <= 0:
        raise ConfigError(f"target_file_size must be > 0, got {target_file_size}")
    delta.latest()  # a missing table fails here, before any lease file is written
    lease = CompactLease(delta.location)
    lease.acquire()
    write_id, props = new_write({})
    metrics: dict[str, Any] = {}

    def commit(dt: DeltaTable | None) -> int:
        # planned from the latest version, refreshed under the lease (a previous
        # holder's commit is seen); a retry after a transient error plans again
        assert dt is not None
        metrics.update(dt.optimize.compact(
            target_size=target_file_size, commit_properties=props,
            post_commithook_properties=hooks(),
        ))
        return int(dt.version())

    try:
        version = commit_once(delta, "compact", commit, write_id=write_id, attempts=1)
    finally:
        lease.release()
    if not metrics:  # the commit landed but its answer was lost: the log has its metrics
        commits = read_history(delta.location, version, 1)
        metrics = dict(commits[0].metrics) if commits else {}
    return CompactResult(
        version=version,
        files_added=int(metrics.get("numFilesAdded", 0)),
        files_removed=int(metrics.get("numFilesRemoved", 0)),
    )


def write_checkpoint(delta: DeltaHandle) -> int:
    """Write a checkpoint of the latest version; returns that version."""
    dt = delta.latest()
    with delta_errors(delta.location, "checkpoint"):
        dt.create_checkpoint()
    return int(dt.version())


def protected_versions(tags: TagStore, last: int) -> tuple[int, ...]:
    """The versions up to ``last`` that a tag names, sorted: vacuum keeps their files."""
    return tuple(sorted({tag.version for tag in tags.all().values() if tag.version <= last}))


def vacuum_files(delta: DeltaHandle, tags: TagStore, retention_hours: int, *,
                 dry_run: bool) -> VacuumResult:
    """Delete data files no version within ``retention_hours`` or tagged needs."""
    if retention_hours < 0:
        raise ConfigError(f"retention_hours must be >= 0, got {retention_hours}")
    dt = delta.latest()
    protected = protected_versions(tags, int(dt.version()))
    with delta_errors(delta.location, "vacuum"):
        files = dt.vacuum(
            retention_hours=int(retention_hours),
            dry_run=dry_run,
            enforce_retention_duration=False,
            full=True,  # also files no commit references (failed writes)
            commit_properties=commit_properties({}),
            post_commithook_properties=hooks(),
            keep_versions=list(protected) or None,
        )
    return VacuumResult(files=tuple(sorted(files)), dry_run=dry_run,
                        protected_versions=protected)
