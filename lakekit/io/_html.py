"""The notebook view of a :class:`~lakekit.Dataset`: where, format, files, size, schema.

Kept beside ``dataset.py`` so that module stays about reading; ``Dataset._repr_html_``
calls :func:`dataset_html`. Only public attributes of the dataset are used, and its URL is
the credential-free one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakekit._html import esc, header_row, human_bytes, row, text_cell

if TYPE_CHECKING:
    from lakekit.io.dataset import Dataset

__all__ = ["dataset_html"]


def dataset_html(ds: Dataset) -> str:
    """HTML for ``ds._repr_html_``: a summary line and one row per column."""
    cols = "".join(
        row([text_cell(esc(f.name), code=True), text_cell(esc(f.type))]) for f in ds.schema
    )
    ver = f", version {ds.version}" if ds.version is not None else ""
    return (
        f"<div><b>lakekit.Dataset</b> <code>{esc(ds.location.url)}</code><br>"
        f"{esc(ds.format)}{ver}, {len(ds.files)} file(s), {human_bytes(ds.total_bytes)}"
        f"<table>{header_row(['column', 'type'])}{cols}</table></div>"
    )
