"""Commit infos read straight from a Delta log, labelled with the versions they belong to.

``deltalake.DeltaTable.history()`` labels entries by counting down from the version of the
snapshot it was called on, while reading every commit up to the newest one in storage: when
another writer committed after the snapshot was loaded, the labels shift (even below zero)
and more than ``limit`` entries come back (deltalake 1.6.6). lakekit reads the
``_delta_log/<version>.json`` files itself, so a label is the file's own version; the
files are fetched concurrently (one batched call, which s3fs turns into parallel GETs).

:func:`read_row_changes` reads whole commit files for the rows each version added and
removed (``numRecords`` of its ``add`` actions, and of the files its ``remove`` actions
drop), newest first in batches, until the commits are older than asked for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from lakekit.errors import FormatError
from lakekit.storage import Location, retry_call
from lakekit.tables.types import Commit

__all__ = ["RowChange", "read_history", "read_row_changes"]

_COMMIT_INFO = re.compile(rb'^\s*\{\s*"commitInfo"\s*:')


def _log_path(location: Location, version: int) -> str:
    return f"{location.path.rstrip('/')}/_delta_log/{version:020d}.json"


def read_history(location: Location, latest: int, limit: int | None = None) -> list[Commit]:
    """The commits of versions ``latest, latest - 1, ...`` (at most ``limit``), newest first.

    Versions whose commit file is gone (log retention) are left out.
    """
    oldest = 0 if limit is None else max(0, latest - limit + 1)
    versions = list(range(latest, oldest - 1, -1))
    if not versions:
        return []
    paths = {_log_path(location, v): v for v in versions}
    found = _fetch(location, list(paths))
    commits = []
    for path, version in paths.items():
        data = found.get(path)
        if data is None:
            continue
        info = _commit_info(data, location, version)
        if "timestamp" not in info:  # no commitInfo: the file's own time
            info["timestamp"] = _mtime_millis(location, path)
        commits.append(Commit.from_delta({**info, "version": version}))
    return commits


def _fetch(location: Location, paths: list[str]) -> dict[str, bytes]:
    """The bytes of the commit files ``paths`` that exist, by path, fetched in one batch."""
    fs = location.fs
    # fsspec checks a list of paths against its listings cache first: a listing made
    # before the newest commits (any find() of the table) would hide them
    fs.invalidate_cache(f"{location.path.rstrip('/')}/_delta_log")
    raw: dict[str, Any] = retry_call(
        lambda: _cat_commits(fs, paths), what=f"{location.url}: reading the Delta log",
    )
    found = {fs._strip_protocol(p): data for p, data in raw.items()
             if isinstance(data, bytes)}
    return {p: found[fs._strip_protocol(p)] for p in paths if fs._strip_protocol(p) in found}


def _cat_commits(fs: Any, paths: list[str]) -> dict[str, Any]:
    """The commit files' bytes, or ``FileNotFoundError`` for a file that is gone (log
    retention); any other failure is raised, never taken for a missing commit (a version
    left out by a failed read would make a landed commit look absent)."""
    raw: dict[str, Any] = fs.cat(paths, on_error="return")
    for data in raw.values():
        if isinstance(data, BaseException) and not isinstance(data, FileNotFoundError):
            raise data
    return raw


def _commit_info(data: bytes, location: Location, version: int) -> dict[str, Any]:
    """The commitInfo action of one commit file (``{}`` when the writer wrote none)."""
    for line in data.splitlines():
        if not _COMMIT_INFO.match(line):
            continue  # only this action is parsed: add actions can be large
        try:
            info = json.loads(line)["commitInfo"]
        except (ValueError, KeyError):
            raise FormatError(
                f"{location.url}: _delta_log/{version:020d}.json has a malformed commitInfo"
            ) from None
        return dict(info) if isinstance(info, dict) else {}
    return {}


def _mtime_millis(location: Location, path: str) -> int:
    modified = retry_call(lambda: location.fs.modified(path),
                          what=f"{location.url}: reading a commit's time")
    return int(modified.timestamp() * 1000)


@dataclass(frozen=True)
class RowChange:
    """The rows one version added and removed, from its commit file alone.

    ``unknown_files`` counts files whose row count the log does not hold (no statistics,
    or a removed file added before the oldest commit file kept); they count as 0 rows.
    """

    version: int
    timestamp: datetime
    operation: str
    rows_added: int
    rows_removed: int
    unknown_files: int = 0

    @property
    def net_rows(self) -> int:
        """``rows_added - rows_removed``."""
        return self.rows_added - self.rows_removed


_BATCH = 100


def read_row_changes(location: Location, latest: int, *, since: datetime | None = None,
                     limit: int | None = None) -> list[RowChange]:
    """The rows each version added and removed, oldest first, reading commit files only.

    Versions ``latest, latest - 1, ...`` are read in batches until one is committed before
    ``since``, ``limit`` versions are read, or a commit file is gone (log retention). The
    rows of a removed file come from the ``add`` that created it; one added before the
    first commit read is looked up in the snapshot before the first commit removing such a
    file (one log load).
    """
    parsed: list[tuple[int, dict[str, Any]]] = []
    hi = latest
    oldest = 0 if limit is None else max(0, latest - limit + 1)
    while hi >= oldest:
        lo = max(oldest, hi - _BATCH + 1)
        batch = _read_commits(location, lo, hi)
        parsed.extend(batch)
        gone = len(batch) < hi - lo + 1
        if gone or (since is not None and batch
                    and min(c["timestamp"] for _, c in batch) < since):
            break
        hi = lo - 1
    parsed.sort(key=lambda item: item[0])
    rows_of: dict[str, int] = {}
    for _, commit in parsed:  # every file added in the versions read
        rows_of.update({p: n for p, n in commit["adds"] if n is not None})
    unresolved = [v for v, c in parsed
                  if any(n is None and p not in rows_of for p, n in c["removes"])]
    if unresolved and unresolved[0] > 0:
        # files added before the first commit read, all live just before the first
        # commit that removes one of them
        rows_of = {**_snapshot_rows(location, unresolved[0] - 1), **rows_of}
    out = []
    for version, commit in parsed:
        unknown = sum(1 for _, n in commit["adds"] if n is None)
        removed = 0
        for path, n in commit["removes"]:
            rows = n if n is not None else rows_of.get(path)
            if rows is None:
                unknown += 1
            removed += rows or 0
        out.append(RowChange(version, commit["timestamp"], commit["operation"],
                             sum(n or 0 for _, n in commit["adds"]), removed, unknown))
    return out


def _read_commits(location: Location, lo: int, hi: int) -> list[tuple[int, dict[str, Any]]]:
    """Versions ``hi`` down to ``lo``, parsed, stopping at the first commit file gone."""
    paths = {_log_path(location, v): v for v in range(hi, lo - 1, -1)}
    found = _fetch(location, list(paths))
    out = []
    for path, version in paths.items():
        data = found.get(path)
        if data is None:
            break
        commit = _row_actions(data, location, version)
        if commit["timestamp"] is None:
            commit["timestamp"] = _mtime_millis(location, path)
        commit["timestamp"] = datetime.fromtimestamp(commit["timestamp"] / 1000, tz=timezone.utc)
        out.append((version, commit))
    return out


def _row_actions(data: bytes, location: Location, version: int) -> dict[str, Any]:
    """A commit file's time, operation, and (path, rows) of its adds and removes."""
    adds: list[tuple[str, int | None]] = []
    removes: list[tuple[str, int | None]] = []
    timestamp: int | None = None
    operation = "UNKNOWN"
    for line in data.splitlines():
        line = line.strip()
        if not line.startswith((b'{"add"', b'{"remove"', b'{"commitInfo"')):
            continue
        try:
            action = json.loads(line)
        except ValueError:
            raise FormatError(
                f"{location.url}: _delta_log/{version:020d}.json has a malformed line"
            ) from None
        if "commitInfo" in action:
            info = action["commitInfo"] or {}
            stamp = info.get("inCommitTimestamp", info.get("timestamp"))
            timestamp = int(stamp) if stamp is not None else None
            operation = str(info.get("operation", "UNKNOWN"))
        elif "add" in action:
            adds.append((unquote(action["add"]["path"]), _file_rows(action["add"])))
        elif "remove" in action:
            removes.append((unquote(action["remove"]["path"]), _file_rows(action["remove"])))
    return {"timestamp": timestamp, "operation": operation, "adds": adds, "removes": removes}


def _file_rows(action: dict[str, Any]) -> int | None:
    """The live rows of an add / remove action: ``numRecords`` less deletion-vector rows."""
    stats = action.get("stats")
    if not stats:
        return None
    try:
        rows = json.loads(stats).get("numRecords")
    except (ValueError, AttributeError):
        return None
    if rows is None:
        return None
    dv = action.get("deletionVector") or {}
    return int(rows) - int(dv.get("cardinality") or 0)


def _snapshot_rows(location: Location, version: int) -> dict[str, int]:
    """Each data file of ``version`` and its live rows (from the snapshot's log); ``{}``
    when the log no longer holds that version."""
    import pyarrow as pa
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        dt = retry_call(
            lambda: DeltaTable(location.delta_uri(), version=version,
                               storage_options=location.delta_storage_options() or None),
            what=f"{location.url}: loading version {version}",
        )
    except DeltaError:  # that version cannot be loaded any more (its log is gone)
        return {}
    actions = pa.table(dt.get_add_actions(flatten=True))
    rows = actions.column("num_records").to_pylist()
    cards = [0] * actions.num_rows
    for name in ("deletionVector.cardinality", "deletion_vector.cardinality"):
        if name in actions.column_names:
            cards = [int(c or 0) for c in actions.column(name).to_pylist()]
    return {unquote(p): int(n) - c for p, n, c in zip(
        actions.column("path").to_pylist(), rows, cards, strict=True) if n is not None}
