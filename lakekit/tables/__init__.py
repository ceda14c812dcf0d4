"""Versioned Delta tables: :class:`Table` and the results its methods return.

The class lives in :mod:`lakekit.tables.table`, a surface of thin methods; the work they
delegate lives beside it: writes (:mod:`~lakekit.tables.write`, creating the table in
:mod:`~lakekit.tables.create`), time travel and restore (:mod:`~lakekit.tables.versions`),
the commit log (:mod:`~lakekit.tables.history`), tags (:mod:`~lakekit.io.tags`), schema
changes (:mod:`~lakekit.tables.schema`), maintenance (:mod:`~lakekit.tables.maintenance`),
diffs (:mod:`~lakekit.tables.diff`) and its notebook view. They share one handle on
deltalake (``_delta.py``: the location, the cached latest snapshot, readability checks).
"""

from lakekit.tables.table import Table
from lakekit.tables.types import ColumnChange, Commit, CompactResult, TableDiff, VacuumResult

__all__ = ["ColumnChange", "Commit", "CompactResult", "Table", "TableDiff", "VacuumResult"]
