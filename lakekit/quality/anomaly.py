"""Volume anomalies: the rows a Delta table gained in the last period against its own history.

The Delta log already is a metrics store: every commit has a time and the ``numRecords`` of
the files it added and removed. Summed per period (UTC), that gives the rows each period
added, net of removes (a compaction adds and removes the same rows: zero), without a data
file read or an earlier scan stored anywhere.

The last *complete* period before ``now`` is compared with the same periods of the
lookback: the same weekday for daily periods, the same hour of day for hourly ones (so a
quiet Sunday is compared with Sundays), every period otherwise. The score is robust:
``(observed - median) / (1.4826 * MAD)``, with the spread at least 5% of the median (a
perfectly regular load still tolerates some change) and at least one row. A table whose
history does not cover the lookback passes with a warning saying when it will; no baseline
is invented.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from lakekit.errors import ConfigError
from lakekit.quality.durations import parse_duration, short_duration
from lakekit.quality.report import CheckResult, Status
from lakekit.quality.sources import Source, guard

__all__ = ["VolumeAnomaly", "check_volume_anomaly", "rows_per_period"]

_MIN_SAMPLES = 3
_MIN_SPREAD = 0.05  # of the median
_MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
_DAY, _HOUR = timedelta(days=1), timedelta(hours=1)


@dataclass(frozen=True)
class VolumeAnomaly:
    """A volume anomaly check: the rows added in the last period against the same periods before.

    Parameters
    ----------
    period
        The period rows are summed over: ``"1d"`` (UTC days), ``"1h"``, ``"6h"``, ``"1w"``
        or a timedelta; at least one minute.
    lookback
        How many periods before the observed one form the baseline (28 daily periods:
        four of each weekday).
    sensitivity
        Fail when the robust score's magnitude is above this (3.0: about 3 standard
        deviations).
    warn_sensitivity
        Warn above this (below ``sensitivity``); ``None``: no warning band.
    seasonal
        Compare daily periods with the same weekday and hourly periods with the same hour
        of day (default); ``False``: with every period of the lookback.

    Examples
    --------
    >>> import lakekit as lk
    >>> lk.VolumeAnomaly(period="1d", lookback=28).season
    7
    >>> lk.VolumeAnomaly(period="1h", lookback=24 * 7).season
    24
    """

    period: str | timedelta = "1d"
    lookback: int = 28
    sensitivity: float = 3.0
    warn_sensitivity: float | None = None
    seasonal: bool = True
    name: ClassVar[str] = "volume_anomaly"

    def __post_init__(self) -> None:
        period = self.period_delta
        if period < timedelta(minutes=1):
            raise ConfigError(f"VolumeAnomaly period must be at least 1m; got {self.period!r}")
        if isinstance(self.lookback, bool) or not isinstance(self.lookback, int) or (
                self.lookback < _MIN_SAMPLES):
            raise ConfigError(f"VolumeAnomaly lookback must be a whole number of periods >= "
                              f"{_MIN_SAMPLES}; got {self.lookback!r}")
        for name in ("sensitivity", "warn_sensitivity"):
            value = getattr(self, name)
            if value is None and name == "warn_sensitivity":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"VolumeAnomaly {name} must be a positive number (3.0 is "
                                  f"about 3 standard deviations); got {value!r}")
        if self.warn_sensitivity is not None and self.warn_sensitivity >= self.sensitivity:
            raise ConfigError(f"VolumeAnomaly warn_sensitivity ({self.warn_sensitivity}) must "
                              f"be below sensitivity ({self.sensitivity})")
        samples = self.lookback // self.season
        if samples < _MIN_SAMPLES:
            what = "same-weekday" if self.season == 7 else "same-hour"
            raise ConfigError(
                f"VolumeAnomaly lookback={self.lookback} periods of {short_duration(period)} "
                f"holds {samples} {what} period(s); give lookback >= "
                f"{_MIN_SAMPLES * self.season} or seasonal=False"
            )

    @property
    def period_delta(self) -> timedelta:
        """``period`` as a timedelta."""
        return parse_duration(self.period, what="VolumeAnomaly period")

    @property
    def season(self) -> int:
        """Periods between two compared ones: 7 for days, 24 for hours, else 1."""
        if not self.seasonal:
            return 1
        return {_DAY: 7, _HOUR: 24}.get(self.period_delta, 1)

    def evaluate(self, source: Source, *, now: datetime) -> CheckResult:
        """Run this check on ``source`` (the :class:`~lakekit.quality.protocol.Check` protocol)."""
        return check_volume_anomaly(source, self, now=now)


def rows_per_period(source: Source, period: timedelta, start: datetime, end: datetime
                    ) -> tuple[list[int], datetime | None, int]:
    """Net rows added per period in ``[start, end)`` (period boundaries), from the log.

    Returns the rows per period (zeros where nothing was committed), the time of the
    oldest commit read (to tell whether the history reaches ``start``; ``None`` when the
    table has no commit), and the number of commits read.
    """
    from lakekit.tables.history import read_row_changes

    location = source.location
    assert location is not None
    latest = int(source.delta_table().version())
    changes = read_row_changes(location, latest, since=start)
    seconds = period.total_seconds()
    first = int(start.timestamp() // seconds)
    n = round((end - start).total_seconds() / seconds)
    rows = [0] * n
    for change in changes:
        i = int(change.timestamp.timestamp() // seconds) - first
        if 0 <= i < n:
            rows[i] += change.net_rows
    oldest = changes[0] if changes else None
    first_time = None
    if oldest is not None:
        # a history that begins inside the window: the table's first commit, or log retention
        first_time = oldest.timestamp if oldest.version == 0 or oldest.timestamp >= start \
            else start
    return rows, first_time, len(changes)


def check_volume_anomaly(source: Source, check: VolumeAnomaly, *, now: datetime) -> CheckResult:
    """Run ``check`` on ``source``; ``observed`` is the net rows added in the last period."""
    if source.kind != "delta":
        raise ConfigError(f"{source.label}: volume anomalies are read from a Delta table's "
                          "commit history; this source has none (check row counts with "
                          "lk.Volume instead)")
    period = check.period_delta
    seconds = period.total_seconds()
    end = datetime.fromtimestamp((now.timestamp() // seconds) * seconds, tz=timezone.utc)
    observed_start = end - period
    start = observed_start - check.lookback * period
    rows, first_time, commits = guard(lambda: rows_per_period(source, period, start, end),
                                      what=source.label, redact=source.redact)
    observed = rows[-1]
    label = _label(observed_start, period)
    labels = [_label(start + i * period, period) for i in range(len(rows))]
    details: dict[str, Any] = {
        "period": short_duration(period), "period_start": observed_start.isoformat(),
        "lookback": check.lookback, "sensitivity": check.sensitivity,
        "warn_sensitivity": check.warn_sensitivity, "season": check.season,
        "commits_read": commits, "method": "delta_log",
        "series": [{"start": lb, "rows": r} for lb, r in zip(labels, rows, strict=True)],
    }
    how = f"from the Delta log, {commits} commits, no data read"
    if first_time is None or first_time >= start + period:  # the first period is covered
        began = end if first_time is None else datetime.fromtimestamp(
            (first_time.timestamp() // seconds) * seconds, tz=timezone.utc)
        have = max(0, int((end - began) // period))
        ready = began + (check.lookback + 1) * period
        message = (f"{label}: {observed:,} rows added; too little history for a baseline: "
                   f"{have} of the {check.lookback + 1} periods needed (lookback="
                   f"{check.lookback} + the observed one); the check can judge from about "
                   f"{ready:%Y-%m-%d %H:%M} UTC, or lower lookback= ({how})")
        details["too_few_periods"] = True
        return CheckResult("volume_anomaly", "warn", observed, None, message, details)
    baseline = rows[-1 - check.season::-check.season][: check.lookback // check.season]
    median = float(statistics.median(baseline))
    mad = float(statistics.median(abs(v - median) for v in baseline))
    spread = max(_MAD_SCALE * mad, _MIN_SPREAD * abs(median), 1.0)
    score = (observed - median) / spread
    low, high = median - check.sensitivity * spread, median + check.sensitivity * spread
    status: Status = "pass"
    if abs(score) > check.sensitivity:
        status = "fail"
    elif check.warn_sensitivity is not None and abs(score) > check.warn_sensitivity:
        status = "warn"
    what = {7: "same-weekday", 24: "same-hour"}.get(check.season, "")
    details.update({"median": median, "spread": round(spread, 3), "score": round(score, 3),
                    "expected_low": round(low, 3), "expected_high": round(high, 3),
                    "baseline": baseline})
    message = (f"{label}: {observed:,} rows added; expected {low:,.0f} to {high:,.0f} (median "
               f"{median:,.0f} of {len(baseline)} {what + ' ' if what else ''}periods, score "
               f"{score:+.1f}, sensitivity {check.sensitivity:g}) ({how})")
    return CheckResult("volume_anomaly", status, observed,
                       {"low": round(low, 3), "high": round(high, 3)}, message, details)


def _label(start: datetime, period: timedelta) -> str:
    if period >= _DAY and period % _DAY == timedelta(0):
        return f"{start:%Y-%m-%d %a}"
    return f"{start:%Y-%m-%d %H:%M}"
