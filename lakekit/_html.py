"""The parts every notebook view shares: escaping, table cells and rows, byte sizes, colours.

The views themselves live beside their classes (``lakekit/io/_html.py``,
``lakekit/tables/_html.py``, ``lakekit/quality/_html.py``, ``lakekit/sink/_html.py``); this
module holds only what they have in common, so they all look alike: text columns
(names, types, messages) left-aligned, numbers right-aligned, and one set of pass / warn /
fail colours. It imports nothing from lakekit, so any module may import it without a cycle.

Cells take already-escaped HTML: call :func:`esc` on anything that comes from data.

Examples
--------
>>> row([text_cell(esc("a<b")), number_cell(f"{1234:,}")])
"<tr><td style='text-align:left'>a&lt;b</td><td style='text-align:right'>1,234</td></tr>"
"""

from __future__ import annotations

import html
from collections.abc import Collection, Iterable, Sequence
from typing import Any

__all__ = [
    "STATUS_COLOURS",
    "coloured",
    "esc",
    "header_row",
    "human_bytes",
    "number_cell",
    "row",
    "short",
    "text_cell",
]

STATUS_COLOURS: dict[str, str] = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}
"""Green, amber and red, for pass / warn / fail (and for good / lagging / bad numbers)."""

_LEFT = "text-align:left"
_RIGHT = "text-align:right"


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and quoted attributes.

    Examples
    --------
    >>> esc("<a & 'b'>")
    '&lt;a &amp; &#x27;b&#x27;&gt;'
    """
    return html.escape(str(value))


def short(text: str, *, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut.

    Examples
    --------
    >>> short("x" * 200, limit=10)
    'xxxxxxx...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


def coloured(markup: str, status: str, *, bold: bool = False) -> str:
    """``markup`` in a span coloured for ``status`` (``"pass"``, ``"warn"`` or ``"fail"``).

    Examples
    --------
    >>> coloured("12", "warn")
    "<span style='color:#9a6700'>12</span>"
    """
    weight = ";font-weight:bold" if bold else ""
    return f"<span style='color:{STATUS_COLOURS[status]}{weight}'>{markup}</span>"


def text_cell(markup: str, *, code: bool = False) -> str:
    """A left-aligned cell (names, types, messages); ``code`` sets it in ``<code>``."""
    inner = f"<code>{markup}</code>" if code else markup
    return f"<td style='{_LEFT}'>{inner}</td>"


def number_cell(markup: str) -> str:
    """A right-aligned cell (counts, sizes, ages, offsets)."""
    return f"<td style='{_RIGHT}'>{markup}</td>"


def row(cells: Iterable[str]) -> str:
    """One ``<tr>`` of cells made by :func:`text_cell` / :func:`number_cell`."""
    return "<tr>" + "".join(cells) + "</tr>"


def header_row(titles: Sequence[str], *, numeric: Collection[str] = ()) -> str:
    """The header ``<tr>``: titles named in ``numeric`` right-aligned, the rest left-aligned.

    Examples
    --------
    >>> header_row(["column", "rows"], numeric={"rows"})
    "<tr><th style='text-align:left'>column</th><th style='text-align:right'>rows</th></tr>"
    """
    return row(
        f"<th style='{_RIGHT if t in numeric else _LEFT}'>{esc(t)}</th>" for t in titles
    )


def human_bytes(n: int) -> str:
    """A byte count for people: ``"1.5 MiB"``.

    Examples
    --------
    >>> human_bytes(1536 * 1024)
    '1.5 MiB'
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"
