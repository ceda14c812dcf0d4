"""The notebook view of a :class:`~lakekit.Table`: version, size, schema, tags, recent commits."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from lakekit.errors import LakekitError

if TYPE_CHECKING:
    from lakekit.tables import Table

from lakekit.io.dataset import human_bytes

__all__ = ["table_html"]

_RECENT = 5



def table_html(table: Table) -> str:
    """HTML for ``table._repr_html_``; never raises (an unreadable table says why)."""
    head = f"<b>lakekit.Table</b> <code>{html.escape(table.uri)}</code>"
    try:
        if not table.exists:
            return f"<div>{head}<br>no Delta table here yet (the first write creates it)</div>"
        ds = table.dataset()
        schema, parts = ds.schema, set(table.partition_by)
        tags = table.tags()
        commits = table.history(limit=_RECENT)
        rows = ds.count_rows()
    except LakekitError as exc:
        return f"<div>{head}<br>cannot be read: {html.escape(str(exc))}</div>"
    by_version: dict[int, list[str]] = {}
    for name, version in sorted(tags.items()):
        by_version.setdefault(version, []).append(name)
    cols = "".join(
        f"<tr><td><code>{html.escape(f.name)}</code></td><td>{html.escape(str(f.type))}</td>"
        f"<td>{'partition' if f.name in parts else ''}</td></tr>"
        for f in schema
    )
    history = "".join(
        f"<tr><td>{c.version}</td><td>{c.timestamp:%Y-%m-%d %H:%M:%S} UTC</td>"
        f"<td>{html.escape(c.operation)}</td>"
        f"<td>{html.escape(', '.join(by_version.get(c.version, [])))}</td></tr>"
        for c in commits
    )
    tag_text = ", ".join(f"{html.escape(n)}=v{v}" for n, v in sorted(tags.items()))
    return (
        f"<div>{head}<br>version {ds.version}, {rows:,} rows in {len(ds.files)} file(s), "
        f"{human_bytes(ds.total_bytes)}" + (f"; tags: {tag_text}" if tag_text else "")
        + f"<table><tr><th>column</th><th>type</th><th></th></tr>{cols}</table>"
        f"<details><summary>last {len(commits)} commit(s)</summary><table><tr><th>version</th>"
        f"<th>committed</th><th>operation</th><th>tags</th></tr>{history}</table></details></div>"
    )
