"""lakekit: get data into a lakehouse fast and keep it trustworthy.

The public names are imported on first use, so ``import lakekit`` stays cheap
and a process that only streams from Kafka never loads pandera or pandas.

Examples
--------
>>> import lakekit as lk
>>> table = lk.load("data/events/", columns=["user_id", "ts"])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lakekit import errors

if TYPE_CHECKING:
    from lakekit.io.dataset import Dataset, dataset, load
    from lakekit.quality import (
        Completeness,
        Freshness,
        Pii,
        QualityReport,
        SchemaDrift,
        Volume,
        VolumeAnomaly,
    )
    from lakekit.quality.check import check
    from lakekit.sink import KafkaDeltaSink, SinkStats
    from lakekit.tables import Table
    from lakekit.tables.types import (
        ColumnChange,
        Commit,
        CompactResult,
        TableDiff,
        VacuumResult,
    )
    from lakekit.train import Loader

__version__ = "0.1.0"

_LAZY = {
    "Dataset": "lakekit.io.dataset",
    "dataset": "lakekit.io.dataset",
    "load": "lakekit.io.dataset",
    "Freshness": "lakekit.quality",
    "Pii": "lakekit.quality",
    "QualityReport": "lakekit.quality",
    "Volume": "lakekit.quality",
    "Loader": "lakekit.train",
    "check": "lakekit.quality",
    "Completeness": "lakekit.quality",
    "SchemaDrift": "lakekit.quality",
    "VolumeAnomaly": "lakekit.quality",
    "KafkaDeltaSink": "lakekit.sink",
    "SinkStats": "lakekit.sink",
    "Table": "lakekit.tables.table",
    "ColumnChange": "lakekit.tables.types",
    "Commit": "lakekit.tables.types",
    "CompactResult": "lakekit.tables.types",
    "TableDiff": "lakekit.tables.types",
    "VacuumResult": "lakekit.tables.types",
}

__all__ = [
    "ColumnChange",
    "Commit",
    "CompactResult",
    "Completeness",
    "Dataset",
    "Freshness",
    "KafkaDeltaSink",
    "Loader",
    "Pii",
    "QualityReport",
    "SchemaDrift",
    "SinkStats",
    "Table",
    "TableDiff",
    "VacuumResult",
    "Volume",
    "VolumeAnomaly",
    "__version__",
    "check",
    "dataset",
    "errors",
    "load",
]

def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lakekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
