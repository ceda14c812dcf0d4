"""Commit infos read straight from a Delta log, labelled with the versions they belong to.

``deltalake.DeltaTable.history()`` labels entries by counting down from the version of the
snapshot it was called on, while reading every commit up to the newest one in storage: when
another writer committed after the snapshot was loaded, the labels shift (even below zero)
and more than ``limit`` entries come back (deltalake 1.6.6). lakekit reads the
``_delta_log/<version>.json`` files itself, so a label is the file's own version; the
files are fetched concurrently (one batched call, which s3fs turns into parallel GETs).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lakekit.errors import FormatError
from lakekit.storage import Location, retry_call
from lakekit.tables.types import Commit

__all__ = ["read_history"]

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
    fs = location.fs
    # fsspec checks a list of paths against its listings cache first: a listing made
    # before the newest commits (any find() of the table) would hide them
    fs.invalidate_cache(f"{location.path.rstrip('/')}/_delta_log")
    raw: dict[str, Any] = retry_call(
        lambda: _cat_commits(fs, list(paths)), what=f"{location.url}: reading the Delta log",
    )
    found = {fs._strip_protocol(p): data for p, data in raw.items()
             if isinstance(data, bytes)}
    commits = []
    for path, version in paths.items():
        data = found.get(fs._strip_protocol(path))
        if data is None:
            continue
        info = _commit_info(data, location, version)
        if "timestamp" not in info:  # no commitInfo: the file's own time
            info["timestamp"] = _mtime_millis(location, path)
        commits.append(Commit.from_delta({**info, "version": version}))
    return commits


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
