"""The notebook view of a :class:`~lakekit.Table`: version, size, schema, tags, recent commits.

Kept beside ``table.py`` so that module stays about Delta; ``Table._repr_html_`` calls
:func:`table_html`, which only imports ``Table`` for type checking (no import cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakekit._html import esc, header_row, human_bytes, number_cell, row, text_cell
from lakekit._svg import series_svg
from lakekit.errors import LakekitError
from lakekit.tables.history import read_row_changes

if TYPE_CHECKING:
    from lakekit.tables.history import RowChange
    from lakekit.tables.table import Table

__all__ = ["table_html"]

_RECENT = 5
_CHART_VERSIONS = 30


def table_html(table: Table) -> str:
    """HTML for ``table._repr_html_``; never raises (an unreadable table says why)."""
    head = f"<b>lakekit.Table</b> <code>{esc(table.uri)}</code>"
    try:
        if not table.exists:
            return f"<div>{head}<br>no Delta table here yet (the first write creates it)</div>"
        ds = table.dataset()
        schema, parts = ds.schema, set(table.partition_by)
        tags = table.tags()
        commits = table.history(limit=_RECENT)
        rows = ds.count_rows()
        changes = read_row_changes(table.location, int(ds.version or 0),
                                   limit=_CHART_VERSIONS)
    except LakekitError as exc:
        return f"<div>{head}<br>cannot be read: {esc(exc)}</div>"
    by_version: dict[int, list[str]] = {}
    for name, version in sorted(tags.items()):
        by_version.setdefault(version, []).append(name)
    cols = "".join(
        row([text_cell(esc(f.name), code=True), text_cell(esc(f.type)),
             text_cell("partition" if f.name in parts else "")])
        for f in schema
    )
    history = "".join(
        row([number_cell(str(c.version)), text_cell(f"{c.timestamp:%Y-%m-%d %H:%M:%S} UTC"),
             text_cell(esc(c.operation)),
             text_cell(esc(", ".join(by_version.get(c.version, []))))])
        for c in commits
    )
    tag_text = ", ".join(f"{esc(n)}=v{v}" for n, v in sorted(tags.items()))
    return (
        f"<div>{head}<br>version {ds.version}, {rows:,} rows in {len(ds.files)} file(s), "
        f"{human_bytes(ds.total_bytes)}" + (f"; tags: {tag_text}" if tag_text else "")
        + f"<table>{header_row(['column', 'type', ''])}{cols}</table>"
        + _rows_chart(changes, rows)
        + f"<details><summary>last {len(commits)} commit(s)</summary><table>"
        f"{header_row(['version', 'committed', 'operation', 'tags'], numeric={'version'})}"
        f"{history}</table></details></div>"
    )


def _rows_chart(changes: list[RowChange], rows: int) -> str:
    """Rows in the table after each of the last versions (from the log), as inline SVG."""
    if len(changes) < 2:
        return ""
    totals, total = [], rows
    for change in reversed(changes):  # newest first: undo each version's net change
        totals.append(total)
        total -= change.net_rows
    totals.reverse()
    labels = [f"v{c.version} {c.operation}" for c in changes]
    return (f"<div>rows per version (last {len(changes)}):<br>"
            f"{series_svg(totals, labels=labels, marked=len(totals) - 1, unit=' rows')}</div>")
