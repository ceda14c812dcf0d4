"""Notebook views of the sink's :class:`~lakekit.SinkStats`: a one-line repr and an HTML table.

Kept apart from ``lakekit/sink`` so the sink's modules stay about streaming; ``SinkStats``
delegates its ``__repr__`` and ``_repr_html_`` here.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakekit.sink.stats import SinkStats

__all__ = ["sink_stats_html", "sink_stats_repr"]


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def sink_stats_repr(stats: SinkStats) -> str:
    """One line: records, rows, dead letters, commits, versions, total lag, time."""
    lag = sum(stats.lag.values())
    return (
        f"SinkStats(records_in={stats.records_in}, rows_written={stats.rows_written}, "
        f"dead_lettered={stats.dead_lettered}, commits={stats.commits}, "
        f"table={_v(stats.table_version)}, partitions={len(stats.offsets)}, lag={lag}, "
        f"elapsed={stats.elapsed_seconds:.1f}s)"
    )


def sink_stats_html(stats: SinkStats) -> str:
    """A summary line, per-partition offsets and lag, and the last commit."""
    rate = stats.records_per_second
    dead_colour = "#cf222e" if stats.dead_lettered else "#1a7f37"
    parts = "".join(
        f"<tr><td><code>{html.escape(tp)}</code></td><td>{offset:,}</td>"
        f"<td style='color:{'#9a6700' if stats.lag.get(tp) else '#1a7f37'}'>"
        f"{stats.lag.get(tp, 0):,}</td></tr>"
        for tp, offset in sorted(stats.offsets.items())
    )
    last = (f"<br>last commit: {html.escape(str(stats.last_commit))}"
            if stats.last_commit is not None else "")
    dropped = (f", {stats.dropped_on_rebalance:,} dropped on rebalance (re-read by their "
               "new owner)" if stats.dropped_on_rebalance else "")
    return (
        f"<div><b>lakekit.SinkStats</b><br>{stats.records_in:,} records in "
        f"({stats.bytes_in:,} bytes, {rate:,.0f}/s over {stats.elapsed_seconds:.1f}s), "
        f"{stats.rows_written:,} rows written in {stats.commits} commit(s), table "
        f"{_v(stats.table_version)}; <span style='color:{dead_colour}'>"
        f"{stats.dead_lettered:,} dead-lettered</span> (dead-letter table "
        f"{_v(stats.dead_letter_version)}){dropped}; {stats.rebalances} rebalance(s)"
        f"<table><tr><th>partition</th><th>committed offset</th><th>lag</th></tr>{parts}</table>"
        f"{last}</div>"
    )
