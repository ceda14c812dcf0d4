"""lakekit: get data into a lakehouse fast and keep it trustworthy.

Examples
--------
>>> import lakekit as lk
>>> table = lk.load("data/events/", columns=["user_id", "ts"])  # doctest: +SKIP
"""

from lakekit import errors
from lakekit.load.dataset import Dataset, dataset, load
from lakekit.quality import Freshness, QualityReport, Volume, check
from lakekit.sink import KafkaDeltaSink, SinkStats
from lakekit.tables import Table
from lakekit.tables_types import ColumnChange, Commit, CompactResult, TableDiff, VacuumResult

__version__ = "0.1.0"

__all__ = [
    "ColumnChange",
    "Commit",
    "CompactResult",
    "Dataset",
    "Freshness",
    "KafkaDeltaSink",
    "QualityReport",
    "SinkStats",
    "Table",
    "TableDiff",
    "VacuumResult",
    "Volume",
    "__version__",
    "check",
    "dataset",
    "errors",
    "load",
]
