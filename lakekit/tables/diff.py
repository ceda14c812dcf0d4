"""The body of ``Table.diff``: what changed between two versions, from the Delta log alone.

No data file is read: files added and removed come from the two snapshots' file lists, row
counts from the log's per-file statistics, schema changes from the two schemas, and the
operations in between from the commit log.
"""

from __future__ import annotations

import pyarrow as pa

from lakekit.tables._delta import DeltaHandle, file_rows
from lakekit.tables.history import read_history
from lakekit.tables.schema import schema_changes
from lakekit.tables.types import Commit, TableDiff

__all__ = ["diff_versions"]


def diff_versions(delta: DeltaHandle, a: int, b: int) -> TableDiff:
    """What changed from version ``a`` to version ``b`` (either may be the older one)."""
    last = int(delta.latest().version())
    for v in (a, b):
        delta.check_exists(v, last)
    da, db = delta.at(a), delta.at(b)
    files_a, files_b = file_rows(da), file_rows(db)
    added = tuple(sorted(set(files_b) - set(files_a)))
    removed = tuple(sorted(set(files_a) - set(files_b)))
    cols_added, cols_removed, retyped = schema_changes(
        pa.schema(da.schema().to_arrow()), pa.schema(db.schema().to_arrow())
    )
    lo, hi = min(a, b), max(a, b)
    ops: tuple[Commit, ...] = ()
    if hi > lo:
        commits = read_history(delta.location, last, last - lo)
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
