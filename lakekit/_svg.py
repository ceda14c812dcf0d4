"""Small inline SVG charts for notebook views: a series, an expected band, one marked point.

Notebook views (``VolumeAnomaly`` results, ``Table``) draw with this instead of a plotting
library: a few hundred bytes of SVG, no dependency, and readable in any HTML renderer
(GitHub, nbviewer, VS Code). Like :mod:`lakekit._html` it imports nothing from lakekit but
that module, so any package may use it.

Examples
--------
>>> svg = series_svg([5, 7, 6], labels=["mon", "tue", "wed"], band=(4, 8), marked=2,
...                  status="pass")
>>> svg.startswith("<svg") and "<polyline" in svg and "wed: 6" in svg
True
"""

from __future__ import annotations

from collections.abc import Sequence

from lakekit._html import STATUS_COLOURS, esc

__all__ = ["series_svg"]

_LINE = "#57606a"
_BAND = "#1a7f37"


def series_svg(
    values: Sequence[float],
    *,
    labels: Sequence[str],
    band: tuple[float, float] | None = None,
    marked: int | None = None,
    compared: Sequence[int] = (),
    status: str = "pass",
    width: int = 360,
    height: int = 90,
    unit: str = "",
) -> str:
    """An SVG line chart of ``values``; ``band`` shaded, point ``marked`` in its status colour.

    Each point carries a tooltip (``<title>``) ``label: value``; the y range covers the
    values and the band, and its ends are written on the left.

    Parameters
    ----------
    values
        The series, oldest first.
    labels
        One label per value (a date, a version), shown in tooltips and at both ends.
    band
        ``(low, high)``: the expected range, drawn as a shaded strip.
    marked
        The index of the point to mark (the observed one).
    compared
        Indexes of the points it was compared with (drawn a little larger, in the band's
        colour).
    status
        ``"pass"``, ``"warn"`` or ``"fail"``: the colour of the marked point.
    unit
        Appended to values in tooltips (``" rows"``).
    """
    if not values:
        return ""
    pad_l, pad_r, pad_t, pad_b = 48, 8, 6, 16
    span = [float(v) for v in values] + (list(band) if band is not None else [])
    lo, hi = min(span), max(span)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    step = inner_w / max(len(values) - 1, 1)

    def x(i: int) -> float:
        return pad_l + i * step

    def y(v: float) -> float:
        return pad_t + (hi - v) / (hi - lo) * inner_h

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' style='font:9px sans-serif'>"]
    if band is not None:
        top, bottom = y(max(band)), y(min(band))
        parts.append(f"<rect x='{pad_l}' y='{top:.1f}' width='{inner_w}' "
                     f"height='{max(bottom - top, 1):.1f}' fill='{_BAND}' fill-opacity='0.15'>"
                     f"<title>expected {esc(_num(min(band)))}\u2013{esc(_num(max(band)))}"
                     f"{esc(unit)}</title></rect>")
    points = " ".join(f"{x(i):.1f},{y(float(v)):.1f}" for i, v in enumerate(values))
    parts.append(f"<polyline points='{points}' fill='none' stroke='{_LINE}' "
                 "stroke-width='1.2'/>")
    for i, (v, label) in enumerate(zip(values, labels, strict=True)):
        is_marked = i == marked
        colour = STATUS_COLOURS.get(status, _LINE) if is_marked else (
            _BAND if i in compared else _LINE)
        radius = 3.5 if is_marked else 2.4 if i in compared else 1.6
        parts.append(f"<circle cx='{x(i):.1f}' cy='{y(float(v)):.1f}' r='{radius}' "
                     f"fill='{colour}'><title>{esc(label)}: {esc(_num(v))}{esc(unit)}"
                     "</title></circle>")
    parts.append(f"<text x='{pad_l - 3}' y='{pad_t + 7}' text-anchor='end'>{esc(_num(hi))}"
                 f"</text><text x='{pad_l - 3}' y='{pad_t + inner_h}' text-anchor='end'>"
                 f"{esc(_num(lo))}</text>")
    parts.append(f"<text x='{pad_l}' y='{height - 3}'>{esc(labels[0])}</text>"
                 f"<text x='{width - pad_r}' y='{height - 3}' text-anchor='end'>"
                 f"{esc(labels[-1])}</text></svg>")
    return "".join(parts)


def _num(v: float) -> str:
    """A compact number: ``1,234``, ``1.2M``.

    Examples
    --------
    >>> _num(1234), _num(2_500_000), _num(0.5)
    ('1,234', '2.5M', '0.5')
    """
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.1f}G"
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.1f}"
