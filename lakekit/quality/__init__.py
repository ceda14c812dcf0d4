"""Quality checks: pandera schemas, metadata-fast freshness and volume, one verdict.

Examples
--------
>>> import lakekit as lk
>>> report = lk.check("lake/events", "events",                           # doctest: +SKIP
...                   freshness=lk.Freshness(column="event_time", max_age="1h"))
"""

from lakekit.quality.anomaly import VolumeAnomaly
from lakekit.quality.check import check
from lakekit.quality.completeness import Completeness
from lakekit.quality.drift import SchemaDrift
from lakekit.quality.freshness import Freshness
from lakekit.quality.pii import Pii
from lakekit.quality.report import CheckResult, QualityReport
from lakekit.quality.schemas import available_schemas, load_schema
from lakekit.quality.volume import Volume

__all__ = [
    "CheckResult",
    "Completeness",
    "Freshness",
    "Pii",
    "QualityReport",
    "SchemaDrift",
    "Volume",
    "VolumeAnomaly",
    "available_schemas",
    "check",
    "load_schema",
]
