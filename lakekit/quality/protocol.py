"""What a check is: an object that turns a :class:`~lakekit.quality.sources.Source` into results.

:func:`lakekit.check` runs its ``schema``, ``freshness`` and ``volume`` arguments, then every
object in ``checks=``: anything with a ``name`` and an ``evaluate(source, *, now)`` method
returning :class:`~lakekit.quality.report.CheckResult` s. Freshness and Volume follow it too,
so ``checks=[lk.Volume(min_rows=1)]`` equals ``volume=lk.Volume(min_rows=1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from lakekit.quality.report import CheckResult
from lakekit.quality.sources import Source

__all__ = ["Check"]


@runtime_checkable
class Check(Protocol):
    """A check that :func:`lakekit.check` runs from ``checks=[...]``.

    ``evaluate`` returns one result, or several (one per column, say); it raises
    :class:`~lakekit.errors.ConfigError` for a check that cannot apply to the source (a
    column that does not exist) and lets storage errors through.
    """

    name: str

    def evaluate(self, source: Source, *, now: datetime) -> CheckResult | Sequence[CheckResult]:
        """Run the check on ``source`` (``now``: the report's ``checked_at``)."""
        ...
