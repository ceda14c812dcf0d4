"""Creating a table with its first write, safely when several writers race to do it.

The first ``write`` or ``upsert`` at an empty location creates the table. A location that
holds other files is refused (lakekit never mixes a table into them); files that look like
a table another writer is creating right now are waited for. When two writers create the
table at once, the Delta log's atomic first commit decides, and the loser writes again
into the winner's table when its data can be replayed.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyarrow as pa

from lakekit.errors import CommitConflictError, TableError
from lakekit.storage import retry_call
from lakekit.tables._delta import CHECKPOINT_INTERVAL, DeltaHandle, hooks, txn_done
from lakekit.tables._inputs import Source
from lakekit.tables.commits import commit_once, new_write
from lakekit.tables.history import read_history

__all__ = [
    "CREATE_ATTEMPTS", "create", "create_or_yield", "create_with_files", "needs_create",
    "own_commit",
]

# While another writer creates the table: how many times to look again (0.25 s apart).
CREATE_WAITS = 12
# A creation proven not to have landed after a transient storage error is tried again (the
# whole write) at most this many times in all.
CREATE_ATTEMPTS = 3
_PART_FILE = r"part-\d{5}-[0-9a-f-]{36}-c\d{3}(\.\w+)?\.parquet"
_DELTA_FILE = re.compile(rf"^(_delta_log|{_PART_FILE})$")
_PARTITION_DIR = re.compile(r"^[^_.][^=/]*=[^/]*$")


def needs_create(delta: DeltaHandle) -> bool:
    """True when there is no table yet and the location is free to create one.

    A location holding other files is a :class:`TableError`. Files that look like a
    table another writer is creating right now (deltalake's ``part-...`` data files, also
    in hive partition directories, a ``_delta_log`` without a commit yet) are waited for,
    a bounded while; if no commit appears (a slow creator, or one that crashed), this
    writer tries to create the table, and the Delta log's atomic first commit decides
    between them.
    """
    if delta.loaded:
        return False
    delta_files_only = False
    partitions: set[str] = set()  # partition directories found to hold only data files
    for _ in range(CREATE_WAITS):
        if delta.exists():
            return False
        others = _foreign_entries(delta)
        if not others:
            return True
        for name in others:
            if name not in partitions and not _DELTA_FILE.match(name) \
                    and _unused_partition(delta, name):
                partitions.add(name)
        delta_files_only = all(_DELTA_FILE.match(name) or name in partitions
                               for name in others)
        if not delta_files_only:
            break
        time.sleep(0.25)
    if delta.exists():
        return False
    if delta_files_only:
        return True
    raise TableError(
        f"{delta.url} holds {len(others)} file(s) or folder(s) (e.g. {others[0]!r}) but "
        "no Delta log (_delta_log): it is not a Delta table, and lakekit will not "
        "create one mixed into existing files. Write to an empty location, or move "
        "the files away."
    )


def _unused_partition(delta: DeltaHandle, name: str) -> bool:
    """True for a hive partition directory (``k=v``) holding only data files as Delta
    writers name them: what a partitioned first write leaves before its commit."""
    if not _PARTITION_DIR.match(name):
        return False
    fs = delta.location.fs
    path = f"{delta.location.path.rstrip('/')}/{name}"
    files = retry_call(lambda: fs.find(path), what=f"{delta.url}: listing")
    return bool(files) and all(
        _PARTITION_DIR.match(part) or re.fullmatch(_PART_FILE, part)
        for f in files for part in str(f)[len(path) + 1:].split("/")
    )


def _foreign_entries(delta: DeltaHandle) -> list[str]:
    fs = delta.location.fs
    path = delta.location.path.rstrip("/")
    fs.invalidate_cache(path)

    def listing() -> list[str]:
        try:
            if fs.isfile(path):
                return [path]
            return [str(p) for p in fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []

    entries = retry_call(listing, what=f"{delta.url}: listing")
    names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in entries)
    return [n for n in names if n != "_lakekit"]


def create_or_yield(delta: DeltaHandle, source: Source, mode: str, parts: list[str] | None,
                    meta: dict[str, Any], txn: tuple[str, int] | None = None) -> int | None:
    """Create the table with this write; ``None`` when another writer created it first
    and the data can be written again (then the caller writes into that table)."""
    try:
        return create(delta, source, mode, parts, meta, txn)
    except CommitConflictError:
        if not delta.exists():
            raise
        latest = delta.latest()
        if txn_done(latest, txn):  # the other writer committed this very txn
            return int(latest.version())
        if source.replayable:
            return None
        raise


def create(delta: DeltaHandle, source: Source, mode: str, parts: list[str] | None,
           meta: dict[str, Any], txn: tuple[str, int] | None = None) -> int:
    """Create the table with ``source`` as its first commit; returns that commit's version."""
    from deltalake import write_deltalake

    write_id, props = new_write(meta, txn)

    def commit(_: Any) -> int:
        write_deltalake(delta.uri, source.data, mode=mode,  # type: ignore[call-overload]
                        partition_by=parts, storage_options=delta.options,
                        configuration={"delta.checkpointInterval": str(CHECKPOINT_INTERVAL)},
                        commit_properties=props, post_commithook_properties=hooks())
        return own_commit(delta, write_id, "the table was created")

    return commit_once(delta, "creating the table", commit, write_id=write_id,
                       attempts=CREATE_ATTEMPTS, source=source, creating=True)


def create_with_files(delta: DeltaHandle, schema: pa.Schema, adds: list[Any],
                      parts: list[str] | None, meta: dict[str, Any],
                      txn: tuple[str, int] | None) -> int | None:
    """Create the table with data files already written (``adds``) as its first commit;
    ``None`` when another writer created the table first (the files are still unused)."""
    from deltalake import Schema as DeltaSchema
    from deltalake.transaction import create_table_with_add_actions

    write_id, props = new_write(meta, txn)

    def commit(_: Any) -> int:
        create_table_with_add_actions(
            delta.uri, DeltaSchema.from_arrow(schema), adds, mode="error",
            partition_by=parts, storage_options=delta.options,
            configuration={"delta.checkpointInterval": str(CHECKPOINT_INTERVAL)},
            commit_properties=props, post_commithook_properties=hooks(),
        )
        return own_commit(delta, write_id, "the table was created")

    try:
        return commit_once(delta, "creating the table", commit, write_id=write_id,
                           attempts=CREATE_ATTEMPTS, creating=True)
    except (CommitConflictError, TableError):
        if delta.exists():
            return None
        raise


def own_commit(delta: DeltaHandle, write_id: str, what: str) -> int:
    """The version of the commit whose ``lakekit.write_id`` is ``write_id``, among the
    newest 100 (another process may have committed right after it)."""
    latest = int(delta.latest().version())
    for commit in read_history(delta.location, latest, 100):
        if commit.write_id == write_id:
            return commit.version
    raise TableError(
        f"{delta.url}: {what} but lakekit cannot find its own commit among the newest "
        "100; read history() to see what happened"
    )
