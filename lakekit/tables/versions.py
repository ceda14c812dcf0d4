"""Time travel: which version a reference names, opening it, and restoring it.

A version is named by number, by commit time (``as_of``: the last version committed at or
before it) or by tag. Opening an old version costs what deltalake's own open of that
version costs, plus one existence check of one of its data files: a version that does not
exist, or whose files ``vacuum`` removed, is a clear :class:`VersionNotFoundError`. The
latest log is loaded only to explain such an error, never on the way to a read; a data
file found missing later, by the read itself, is the same error naming the version (see
:func:`lakekit.io.delta.delta_file_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from lakekit.errors import ConfigError, VersionNotFoundError
from lakekit.io.tags import TagStore
from lakekit.tables._delta import DeltaHandle, hooks
from lakekit.tables._inputs import as_utc, as_version, check_metadata
from lakekit.tables.commits import commit_once, new_write
from lakekit.tables.history import read_history

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from lakekit.io.dataset import Dataset

__all__ = [
    "VersionRef",
    "open_dataset",
    "ref_version",
    "resolve_version",
    "restore_version",
    "version_as_of",
]

VersionRef = int | str


def resolve_version(delta: DeltaHandle, tags: TagStore, version: int | None,
                    as_of: datetime | date | str | None, tag: str | None) -> int | None:
    """The version named by at most one of ``version``, ``as_of``, ``tag``; None if none."""
    given = [x is not None for x in (version, as_of, tag)]
    if sum(given) > 1:
        raise ConfigError("give at most one of version=, as_of= and tag=")
    if version is not None:
        return as_version(version)
    if tag is not None:
        return tags.get(tag).version
    if as_of is not None:
        return version_as_of(delta, as_of)
    return None


def ref_version(tags: TagStore, reference: VersionRef) -> int:
    """The version a number, a string of digits or a tag name names."""
    if isinstance(reference, str) and not reference.isdigit():
        return tags.get(reference).version
    return as_version(int(reference))


def version_as_of(delta: DeltaHandle, when: datetime | date | str) -> int:
    """The last version committed at or before ``when``.

    A binary search over commit times (one small read per probe, about log2(versions)
    in all), as Delta commit times increase with versions; when a probed commit file
    is missing (log retention), every remaining commit is read instead.
    """
    moment = as_utc(when)
    last = int(delta.latest().version())
    cache: dict[int, datetime | None] = {}

    def time_of(v: int) -> datetime | None:
        if v not in cache:
            found = read_history(delta.location, v, 1)
            cache[v] = found[0].timestamp if found and found[0].version == v else None
        return cache[v]

    lo, hi = 0, last
    t_lo, t_hi = time_of(lo), time_of(hi)
    if t_lo is None or t_hi is None:
        return _version_as_of_scan(delta, moment)
    if t_hi <= moment:
        return last
    if t_lo > moment:
        raise _before_first(delta, moment, lo, t_lo)
    while hi - lo > 1:  # invariant: time(lo) <= moment < time(hi)
        mid = (lo + hi) // 2
        t_mid = time_of(mid)
        if t_mid is None:
            return _version_as_of_scan(delta, moment)
        if t_mid <= moment:
            lo = mid
        else:
            hi = mid
    return lo


def _version_as_of_scan(delta: DeltaHandle, moment: datetime) -> int:
    commits = read_history(delta.location, int(delta.latest().version()))
    before = [c for c in commits if c.timestamp <= moment]
    if not before:
        first = min(commits, key=lambda c: c.version)
        raise _before_first(delta, moment, first.version, first.timestamp)
    return max(c.version for c in before)


def _before_first(delta: DeltaHandle, moment: datetime, version: int,
                  at: datetime) -> VersionNotFoundError:
    return VersionNotFoundError(
        f"{delta.url}: no version was committed at or before {moment.isoformat()}; "
        f"the first readable commit (version {version}) is at {at.isoformat()}"
    )


def open_dataset(delta: DeltaHandle, target: int | None, *, source: str,
                 storage_options: dict[str, Any] | None, check: bool = True) -> Dataset:
    """A Dataset over version ``target`` (latest when None) of the table at ``source``.

    An older version is opened by deltalake alone (no load of the latest log). With
    ``check``, one of its data files is then checked, so a version that vacuum emptied
    fails here, not at its first read (a caller that reads at once passes False). Any
    missing file fails the read that reaches it, with the same :class:`VersionNotFoundError`.
    """
    from lakekit.io.dataset import dataset

    if target is None:
        return dataset(source, format="delta", storage_options=storage_options)
    try:
        ds = dataset(source, format="delta", version=target, storage_options=storage_options)
    except VersionNotFoundError:
        # newer than the latest: say so, with the latest version (only on this error path)
        delta.check_exists(target, int(delta.latest().version()))
        raise
    if check and ds.entries:
        delta.check_sample(target, ds.entries[0].path)
    return ds


def restore_version(delta: DeltaHandle, target: int, *, tag: str | None,
                    metadata: Mapping[str, Any] | None) -> int:
    """Commit a new version equal to ``target`` (``tag``: the name it was given by)."""
    latest = delta.latest()
    delta.check_readable(target, latest)
    last = int(latest.version())
    if target == last:
        return last
    meta = check_metadata(metadata)
    meta.setdefault("lakekit.restored_from", f"tag {tag}" if tag else f"version {target}")
    write_id, props = new_write(meta)

    def commit(dt: DeltaTable | None) -> int:
        assert dt is not None
        dt.restore(target, commit_properties=props, post_commithook_properties=hooks())
        return int(dt.version())

    return commit_once(delta, f"restore to version {target}", commit, write_id=write_id,
                       attempts=1)
