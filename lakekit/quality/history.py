"""Check history: each report's summary appended to a Delta table, one row per check.

The table can be read back with the loaders (``lk.load(uri, output="polars")``) to
follow trends: the age of the data, the row count, the failure count over time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.quality.report import QualityReport

__all__ = ["append_summary", "summary_table"]


def summary_table(report: QualityReport) -> pa.Table:
    """The rows :func:`append_summary` writes: one per check result."""
    import pyarrow as pa

    from lakekit.quality.report import _jsonable

    rows = report.results
    checked_at = report.checked_at
    return pa.table({
        "checked_at": pa.array([checked_at] * len(rows), pa.timestamp("us", "UTC")),
        "source": pa.array([report.source] * len(rows), pa.string()),
        "status": pa.array([report.status] * len(rows), pa.string()),
        "check": pa.array([r.name for r in rows], pa.string()),
        "check_status": pa.array([r.status for r in rows], pa.string()),
        "observed": pa.array([_number(r.observed) for r in rows], pa.float64()),
        "observed_json": pa.array([json.dumps(_jsonable(r.observed)) for r in rows], pa.string()),
        "threshold_json": pa.array([json.dumps(_jsonable(r.threshold)) for r in rows],
                                   pa.string()),
        "message": pa.array([r.message for r in rows], pa.string()),
        "schema": pa.array([report.schema_name] * len(rows), pa.string()),
        "rows_checked": pa.array([report.rows_checked] * len(rows), pa.int64()),
        "failure_count": pa.array([report.failure_count] * len(rows), pa.int64()),
        "duration_s": pa.array([report.duration_s] * len(rows), pa.float64()),
    })


def append_summary(
    report: QualityReport,
    results_table: Any,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Append ``report``'s summary to the Delta table at ``results_table`` (created if needed).

    ``results_table`` is a URI (resolved with ``storage_options``) or a lakekit ``Table``.
    """
    from lakekit.tables import Table

    data = summary_table(report)
    table = results_table if isinstance(results_table, Table) else Table(
        str(results_table), storage_options=storage_options)
    table.write(data, mode="append")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
