"""The bodies of ``Table.compact``, ``checkpoint`` and ``vacuum``: housekeeping commits.

Vacuum is tag-safe: the versions that tags name are passed to deltalake as versions to
keep, so their data files survive any retention; and no lakekit commit deletes expired
log files (see :func:`lakekit.tables._delta.hooks`), so tagged versions stay loadable.
It is deltalake's *full* vacuum: besides the files that commits removed, it lists the
files no commit ever referenced (those of a failed or abandoned write), which deltalake's
default "lite" vacuum never sees.
"""

from __future__ import annotations

from lakekit.errors import ConfigError
from lakekit.tables._delta import DeltaHandle, commit_properties, hooks
from lakekit.tables._inputs import delta_errors
from lakekit.tables.tags import TagStore
from lakekit.tables.types import CompactResult, VacuumResult

__all__ = ["compact_files", "protected_versions", "vacuum_files", "write_checkpoint"]


def compact_files(delta: DeltaHandle, target_file_size: int | None) -> CompactResult:
    """Rewrite small files into files of about ``target_file_size`` bytes."""
    if target_file_size is not None and target_file_size <= 0:
        raise ConfigError(f"target_file_size must be > 0, got {target_file_size}")
    dt = delta.latest()
    with delta_errors(delta.location, "compact"):
        metrics = dt.optimize.compact(
            target_size=target_file_size,
            commit_properties=commit_properties({}),
            post_commithook_properties=hooks(),
        )
    return CompactResult(
        version=int(dt.version()),
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
