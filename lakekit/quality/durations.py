"""Durations written as text (``"30m"``, ``"1h"``, ``"2d"``) or :class:`datetime.timedelta`."""

from __future__ import annotations

import re
from datetime import timedelta

from lakekit.errors import ConfigError

__all__ = ["format_duration", "parse_duration", "short_duration"]

_UNITS = {
    "ms": 0.001, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "d": 86400, "day": 86400, "days": 86400,
    "w": 604800,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_ZERO_TAIL = re.compile(r"(?<=[dhm])00[hms]$")


def parse_duration(value: str | timedelta | int | float, *, what: str = "duration") -> timedelta:
    """Turn ``"30m"``, ``"1h30m"``, ``"2d"``, a number of seconds or a timedelta into a timedelta.

    Examples
    --------
    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("2d").days
    2
    """
    if isinstance(value, timedelta):
        out = value
    elif isinstance(value, bool):
        raise ConfigError(f"{what} must be a duration like '30m', '1h' or '2d'; got {value!r}")
    elif isinstance(value, (int, float)):
        out = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos or m.group(2) not in _UNITS:
                pos = -1
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            raise ConfigError(
                f"{what} must be a duration like '30m', '1h' or '2d' "
                f"(units: s, m, h, d, w); got {value!r}"
            )
        out = timedelta(seconds=seconds)
    else:
        raise ConfigError(f"{what} must be a string like '1h' or a timedelta; got {value!r}")
    if out <= timedelta(0):
        raise ConfigError(f"{what} must be positive; got {value!r}")
    return out


def format_duration(delta: timedelta) -> str:
    """A short human form: ``"2h03m"``, ``"45s"``, ``"3d04h"``; negative ages read ``"-5s"``.

    Examples
    --------
    >>> format_duration(timedelta(hours=2, minutes=3))
    '2h03m'
    """
    total = delta.total_seconds()
    sign = "-" if total < 0 else ""
    s = int(abs(total))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m{secs:02d}s"
    if s == 0 and abs(total) > 0:
        return f"{sign}{abs(total):.3f}s"
    return f"{sign}{secs}s"


def short_duration(delta: timedelta) -> str:
    """:func:`format_duration` less a zero tail: ``"1d"``, ``"1h"``, ``"1h30m"``.

    Examples
    --------
    >>> short_duration(timedelta(days=1)), short_duration(timedelta(minutes=90))
    ('1d', '1h30m')
    """
    return _ZERO_TAIL.sub("", format_duration(delta))
