"""Versioned Delta tables: :class:`Table` and the results its methods return.

The class lives in :mod:`lakekit.tables.table`; groups of work it delegates live beside it:
the commit log (:mod:`~lakekit.tables.history`), tags (:mod:`~lakekit.tables.tags`), schema
changes (:mod:`~lakekit.tables.schema`), maintenance (:mod:`~lakekit.tables.maintenance`),
diffs (:mod:`~lakekit.tables.diff`) and its notebook view.
"""

from lakekit.tables.table import Table
from lakekit.tables.types import ColumnChange, Commit, CompactResult, TableDiff, VacuumResult

__all__ = ["ColumnChange", "Commit", "CompactResult", "Table", "TableDiff", "VacuumResult"]
