"""Notebook views of the sink's :class:`~lakekit.SinkStats`: a one-line repr and an HTML table.

Kept apart from the sink's streaming modules so they stay about streaming. The dependency
is one-way: ``stats.py`` imports this module and its ``__repr__`` / ``_repr_html_`` call
:func:`sink_stats_repr` / :func:`sink_stats_html`; this module imports ``SinkStats`` only for
type checking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakekit._html import coloured, esc, header_row, number_cell, row, text_cell

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
    parts = "".join(
        row([text_cell(esc(tp), code=True), number_cell(f"{offset:,}"),
             number_cell(coloured(f"{stats.lag.get(tp, 0):,}",
                                  "warn" if stats.lag.get(tp) else "pass"))])
        for tp, offset in sorted(stats.offsets.items())
    )
    last = (f"<br>last commit: {esc(stats.last_commit)}"
            if stats.last_commit is not None else "")
    dropped = (f", {stats.dropped_on_rebalance:,} dropped on rebalance (re-read by their "
               "new owner)" if stats.dropped_on_rebalance else "")
    dead = coloured(f"{stats.dead_lettered:,} dead-lettered",
                    "fail" if stats.dead_lettered else "pass")
    head = header_row(["partition", "committed offset", "lag"],
                      numeric={"committed offset", "lag"})
    return (
        f"<div><b>lakekit.SinkStats</b><br>{stats.records_in:,} records in "
        f"({stats.bytes_in:,} bytes, {rate:,.0f}/s over {stats.elapsed_seconds:.1f}s), "
        f"{stats.rows_written:,} rows written in {stats.commits} commit(s), table "
        f"{_v(stats.table_version)}; {dead} (dead-letter table "
        f"{_v(stats.dead_letter_version)}){dropped}; {stats.rebalances} rebalance(s)"
        f"<table>{head}{parts}</table>{last}</div>"
    )
