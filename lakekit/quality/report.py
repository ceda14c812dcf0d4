"""QualityReport: the verdict of :func:`lakekit.check`, one result per check, failure cases.

A report is plain data: ``to_dict()`` / ``to_json()`` give a stable, JSON-safe form for
XCom, logs and results tables; ``raise_for_status()`` turns a failing verdict into a
:class:`lakekit.errors.QualityError`; ``_repr_html_`` renders it in notebooks. Reports hold
credential-free source labels only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from lakekit.errors import ConfigError, QualityError
from lakekit.quality._html import report_html

if TYPE_CHECKING:
    import polars as pl

__all__ = ["FAILURE_CASE_COLUMNS", "CheckResult", "QualityReport", "Status", "worst"]

Status = Literal["pass", "warn", "fail"]
_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}
FAILURE_CASE_COLUMNS = ("column", "check", "failure_case", "index")


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The most severe status (``"pass"`` for none).

    Examples
    --------
    >>> worst(["pass", "warn"])
    'warn'
    """
    out: Status = "pass"
    for s in statuses:
        if _RANK[s] > _RANK[out]:
            out = s
    return out


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes
    ----------
    name
        ``"schema"``, ``"freshness"`` or ``"volume"``.
    status
        ``"pass"``, ``"warn"`` or ``"fail"``.
    observed
        What was measured (failure count, age in seconds, row count); JSON-safe.
    threshold
        What it was compared with; JSON-safe.
    message
        One human sentence.
    details
        Extra JSON-safe facts (how the answer was obtained, the newest value, ...).
    """

    name: str
    status: Status
    observed: Any
    threshold: Any
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "name": self.name,
            "status": self.status,
            "observed": _jsonable(self.observed),
            "threshold": _jsonable(self.threshold),
            "message": self.message,
            "details": _jsonable(dict(self.details)),
        }


@dataclass(frozen=True, eq=False)
class QualityReport:
    """The verdict of :func:`lakekit.check`.

    Attributes
    ----------
    source
        A credential-free description of what was checked.
    results
        One :class:`CheckResult` per check run.
    failure_cases
        Validation failures as a polars DataFrame (``column``, ``check``,
        ``failure_case``, ``index``), capped at ``max_failure_cases`` rows.
    failure_count
        The number of failure cases before the cap.
    rows_checked
        Rows validated against the schema (``None`` when no schema was checked).
    sample
        The sample size asked for, or ``None`` when every row was validated.
    engine
        ``"dask"`` or ``"ray"`` when the schema was validated partition by partition on
        that engine, else ``None``.
    partitions
        The number of partitions validated on ``engine`` (``None`` for a local run).

    Examples
    --------
    >>> import lakekit as lk, polars as pl
    >>> report = lk.check(pl.DataFrame({"n": [1, 2]}), volume=lk.Volume(min_rows=1))
    >>> report.status
    'pass'
    """

    source: str
    results: tuple[CheckResult, ...]
    failure_cases: pl.DataFrame
    failure_count: int = 0
    rows_checked: int | None = None
    schema_name: str | None = None
    sample: int | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now().astimezone())
    duration_s: float = 0.0
    engine: str | None = None
    partitions: int | None = None

    @property
    def status(self) -> Status:
        """``"fail"`` if any check failed, else ``"warn"`` if any warned, else ``"pass"``."""
        return worst([r.status for r in self.results])

    @property
    def ok(self) -> bool:
        """True unless the status is ``"fail"``."""
        return self.status != "fail"

    def result(self, name: str) -> CheckResult:
        """The result of the check called ``name``.

        Raises
        ------
        KeyError
            When no such check ran.
        """
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no {name!r} check in this report; checks: "
                       f"{', '.join(r.name for r in self.results) or 'none'}")

    def summary(self) -> str:
        """A few readable lines: the verdict, then one line per check."""
        where = (f" (validated on {self.engine}, {self.partitions} partition"
                 f"{'s' if self.partitions != 1 else ''})" if self.engine else "")
        lines = [f"{self.status.upper()}: {self.source}{where}"]
        lines += [f"  [{r.status}] {r.name}: {r.message}" for r in self.results]
        if self.failure_count > self.failure_cases.height:
            kept = self.failure_cases.height
            lines.append(f"  ({kept} of {self.failure_count} failure cases kept)")
        return "\n".join(lines)

    def to_dict(self, *, failure_cases: bool = True) -> dict[str, Any]:
        """A JSON-safe dict of the whole report.

        Parameters
        ----------
        failure_cases
            Include the (capped) failure cases as a list of records.
        """
        out: dict[str, Any] = {
            "status": self.status,
            "source": self.source,
            "checked_at": self.checked_at.isoformat(),
            "duration_s": round(self.duration_s, 6),
            "schema": self.schema_name,
            "rows_checked": self.rows_checked,
            "sample": self.sample,
            "engine": self.engine,
            "partitions": self.partitions,
            "results": [r.to_dict() for r in self.results],
            "failure_count": self.failure_count,
        }
        if failure_cases:
            out["failure_cases"] = [
                {k: _jsonable(v) for k, v in row.items()}
                for row in self.failure_cases.to_dicts()
            ]
        return out

    def to_json(self, *, indent: int | None = None, failure_cases: bool = True) -> str:
        """The report as JSON (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(failure_cases=failure_cases), indent=indent,
                          allow_nan=False)

    def raise_for_status(self, *, on: Literal["fail", "warn"] = "fail") -> QualityReport:
        """Raise :class:`lakekit.errors.QualityError` (carrying this report) on failure.

        Parameters
        ----------
        on
            ``"fail"`` (default) raises for a failing report; ``"warn"`` also for a warning.

        Returns
        -------
        QualityReport
            This report, so calls chain: ``report = lk.check(...).raise_for_status()``.
        """
        if on not in ("fail", "warn"):
            raise ConfigError(f"on must be 'fail' or 'warn'; got {on!r}")
        if _RANK[self.status] >= _RANK[on]:
            bad = [r for r in self.results if _RANK[r.status] >= _RANK[on]]
            detail = "; ".join(f"{r.name}: {r.message}" for r in bad)
            raise QualityError(f"quality check {self.status} for {self.source}: {detail}", self)
        return self

    def __repr__(self) -> str:
        checks = ", ".join(f"{r.name}={r.status}" for r in self.results)
        return f"QualityReport({self.status!r}, source={self.source!r}, {checks or 'no checks'})"

    def _repr_html_(self) -> str:
        return report_html(self)


def _jsonable(value: Any) -> Any:
    """Make ``value`` JSON-safe: datetimes as ISO strings, non-finite floats as None."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)
