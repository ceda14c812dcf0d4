"""The notebook view of a :class:`~lakekit.QualityReport`: the verdict, one row per check,
the failure cases.

Kept beside ``report.py`` so the report stays plain data; ``QualityReport._repr_html_``
calls :func:`report_html`. Only the view speaks human units: a freshness result shows its
age as ``1m01s`` against ``max 1h`` (``warn 30m``), a volume result ``>= 1,000 rows``;
``to_dict()`` / ``to_json()`` / ``summary()`` keep the raw numbers that XCom and logs read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

from lakekit._html import (
    coloured,
    esc,
    header_row,
    number_cell,
    row,
    short,
    text_cell,
)
from lakekit._svg import series_svg
from lakekit.quality.durations import short_duration

if TYPE_CHECKING:
    from lakekit.quality.report import CheckResult, QualityReport

__all__ = ["anomaly_chart", "observed_text", "report_html", "threshold_text"]

_SHOWN_CASES = 20


def _age(seconds: float) -> str:
    """A duration as ``format_duration`` writes it, less a zero tail (``1h``, not ``1h00m``).

    Examples
    --------
    >>> _age(3600.0), _age(61.064), _age(5400)
    ('1h', '1m01s', '1h30m')
    """
    return short_duration(timedelta(seconds=seconds))


def _rows(n: int) -> str:
    return f"{n:,} rows"


def _failures(n: int) -> str:
    return f"{n:,} failure" + ("" if n == 1 else "s")


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> str:
    """Any other value as ``to_json`` writes it: JSON for mappings and lists (ISO times,
    non-finite numbers as null), the value itself otherwise."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (datetime, date)):
        return short(value.isoformat())
    if isinstance(value, (Mapping, list, tuple)):
        return short(json.dumps(value, default=_iso))
    return short(str(value))


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (datetime, date)) else str(value)


def observed_text(result: CheckResult) -> str:
    """What a check measured, in human units.

    Examples
    --------
    >>> from lakekit.quality.report import CheckResult
    >>> observed_text(CheckResult("freshness", "pass", 61.064, 3600.0, ""))
    '1m01s'
    >>> observed_text(CheckResult("volume", "pass", 1234, {}, ""))
    '1,234 rows'
    """
    value = result.observed
    if value is None:
        return "-"
    if result.name == "freshness" and _number(value):
        return _age(value)
    if result.name == "volume" and _number(value):
        return _rows(int(value))
    if result.name == "schema" and _number(value):
        return _failures(int(value))
    if result.name == "completeness" and _number(value):
        return f"{value:.2%}"
    if result.name == "volume_anomaly" and _number(value):
        return _rows(int(value))
    if result.name == "schema_drift" and _number(value):
        return f"{int(value)} change" + ("" if value == 1 else "s")
    return _plain(value)


def threshold_text(result: CheckResult) -> str:
    """What a check compared with, in human units.

    Examples
    --------
    >>> from lakekit.quality.report import CheckResult
    >>> threshold_text(CheckResult("freshness", "warn", 2000.0, 3600.0, "",
    ...                            {"warn_age_s": 1800.0}))
    'max 1h, warn 30m'
    >>> threshold_text(CheckResult("volume", "pass", 5, {"min_rows": 1000, "max_rows": None}, ""))
    '>= 1,000 rows'
    >>> threshold_text(CheckResult("volume", "pass", 5, {"min_rows": 1000, "max_rows": 5000}, ""))
    '1,000\u20135,000 rows'
    """
    value = result.threshold
    if result.name == "freshness" and _number(value):
        warn = result.details.get("warn_age_s")
        return f"max {_age(value)}" + (f", warn {_age(warn)}" if _number(warn) else "")
    if result.name == "volume" and isinstance(value, Mapping):
        low, high = value.get("min_rows"), value.get("max_rows")
        if _number(low) and _number(high):
            return _row_range(low, high)
        if _number(low):
            return f">= {_rows(int(low))}"
        if _number(high):
            return f"<= {_rows(int(high))}"
    if result.name == "schema" and _number(value):
        return _failures(int(value))
    if result.name == "completeness" and _number(value):
        warn = result.details.get("warn_ratio")
        return f">= {value:.2%}" + (f", warn {warn:.2%}" if _number(warn) else "")
    if result.name == "volume_anomaly" and isinstance(value, Mapping):
        low, high = value.get("low"), value.get("high")
        if _number(low) and _number(high):
            return _row_range(low, high)
    return _plain(value)


def _row_range(low: float, high: float) -> str:
    return f"{round(low):,}\u2013{_rows(round(high))}"


def anomaly_chart(result: CheckResult) -> str:
    """The series of a ``volume_anomaly`` result as inline SVG: the rows per period, the
    expected band, the periods compared with (same weekday / hour) and the observed (last)
    point in its status colour; ``""`` otherwise.

    Examples
    --------
    >>> from lakekit.quality.report import CheckResult
    >>> series = [{"start": f"d{i}", "rows": 10} for i in range(4)]
    >>> r = CheckResult("volume_anomaly", "fail", 10, {"low": 1, "high": 5}, "",
    ...                 {"series": series, "expected_low": 1, "expected_high": 5})
    >>> anomaly_chart(r).startswith("<svg")
    True
    """
    series = result.details.get("series")
    if result.name != "volume_anomaly" or not isinstance(series, list) or not series:
        return ""
    low, high = result.details.get("expected_low"), result.details.get("expected_high")
    band = (float(low), float(high)) if _number(low) and _number(high) else None
    last, season = len(series) - 1, result.details.get("season")
    baseline = result.details.get("baseline")
    compared = [last - k * season for k in range(1, len(baseline) + 1)] if isinstance(
        season, int) and isinstance(baseline, list) else []
    return series_svg([p["rows"] for p in series], labels=[p["start"] for p in series],
                      band=band, marked=last, compared=compared, status=result.status,
                      unit=" rows")


def _check_row(result: CheckResult) -> str:
    return row([
        text_cell(esc(result.name)),
        text_cell(coloured(esc(result.status), result.status, bold=True)),
        number_cell(esc(observed_text(result))),
        number_cell(esc(threshold_text(result))),
        text_cell(esc(result.message)),
    ])


def _cases(report: QualityReport) -> str:
    if not report.failure_cases.height:
        return ""
    shown = report.failure_cases.head(_SHOWN_CASES)
    numeric = {c for c, dtype in shown.schema.items() if dtype.is_numeric()}
    body = "".join(
        row(number_cell(esc(_plain(v))) if c in numeric else text_cell(esc(_plain(v)))
            for c, v in zip(shown.columns, values, strict=True))
        for values in shown.iter_rows()
    )
    return (
        f"<details><summary>failure cases: {shown.height} shown of "
        f"{report.failure_count}</summary><table>{header_row(shown.columns, numeric=numeric)}"
        f"{body}</table></details>"
    )


def _charts(report: QualityReport) -> str:
    charts = [(r, anomaly_chart(r)) for r in report.results]
    return "".join(
        f"<div>{esc(r.details.get('period', ''))} rows added, expected band and observed "
        f"period ({coloured(esc(r.status), r.status)}):<br>{svg}</div>"
        for r, svg in charts if svg
    )


def report_html(report: QualityReport) -> str:
    """HTML for ``report._repr_html_``: the verdict, a row per check, the failure cases."""
    head = header_row(["check", "status", "observed", "threshold", "message"],
                      numeric={"observed", "threshold"})
    return (
        f"<div><b>lakekit.QualityReport</b> "
        f"{coloured(report.status.upper(), report.status, bold=True)} "
        f"<code>{esc(report.source)}</code>"
        f"<table>{head}{''.join(_check_row(r) for r in report.results)}</table>"
        f"{_charts(report)}{_cases(report)}</div>"
    )
