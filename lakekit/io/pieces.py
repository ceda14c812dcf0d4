"""A dataset cut into pieces that other processes read: the plan of a distributed read.

:func:`plan` turns a read request (columns, filter, split) into :class:`Piece` s on the
planning process (the driver): hive partitions and row-group statistics prune files and
row groups before any task exists, and each piece carries what its reader needs to skip
the requests already made (the parquet footer) and what it cannot learn from the file
(a Delta deletion vector). :func:`read` reads one piece, anywhere the dataset was sent
(it pickles to a small spec, see :mod:`lakekit.io.dataset`), with exactly the semantics
of a local read: the unified schema, hive partition values, column mapping, deleted
rows removed, the filter applied.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakekit.errors import ConfigError
from lakekit.io.delta import delta_file_errors
from lakekit.io.discover import FileEntry
from lakekit.io.mapped import read_mapped
from lakekit.io.parquet import filter_columns
from lakekit.io.pipeline import ordered_map
from lakekit.io.scan import DEFAULT_BUDGET, Scan, concat, validate_filter

__all__ = ["PIECE_BYTES", "Piece", "Split", "plan", "read"]

Split = Literal["file", "row_group"]
PIECE_BYTES = 128 << 20  # decoded bytes per piece with split="row_group"
_WHOLE = 1 << 62
_EXPANSION = 2  # decoded bytes per byte of a file, roughly (for sizes not in a footer)


@dataclass(frozen=True, eq=False, repr=False)
class Piece:
    """One task's share of a dataset: a file, or a group of its row groups.

    Attributes
    ----------
    index
        Position in the read order (pieces are read and concatenated in this order).
    entry
        The file (filesystem path, size, hive partition values).
    row_groups
        The parquet row groups to read (after pruning), or ``None`` for the whole file.
    rows
        Rows before the filter, when the metadata tells (parquet footers); else ``None``.
    nbytes
        Estimated decoded bytes of the columns planned for.
    footer
        The parquet footer, so that the reader makes no request for it (object stores).
    keep
        Delta deletion vector: the rows to keep, as bits (``numpy.packbits``).
    keep_rows
        The number of rows ``keep`` covers.
    """

    index: int
    entry: FileEntry
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None
    nbytes: int = 0
    footer: bytes | None = None
    keep: bytes | None = None
    keep_rows: int = 0

    def __repr__(self) -> str:
        groups = "" if self.row_groups is None else f", row_groups={list(self.row_groups)}"
        rows = "" if self.rows is None else f", rows={self.rows}"
        return f"Piece({self.index}, {os.path.basename(self.entry.path)!r}{groups}{rows})"


def plan(
    scan: Scan,
    columns: Sequence[str],
    filter: pc.Expression | None,
    *,
    split: Split = "file",
    piece_bytes: int = PIECE_BYTES,
    workers: int | None = None,
) -> list[Piece]:
    """The pieces of a read of ``columns`` (rows matching ``filter``), in read order.

    Files whose partition values or row-group statistics rule them out get no piece;
    footers are read in parallel, once.
    """
    if split not in ("file", "row_group"):
        raise ConfigError(f"split must be 'file' or 'row_group'; got {split!r}")
    schema = scan.schema
    if filter is not None:
        validate_filter(filter, schema)
    needed = list(dict.fromkeys([*columns, *sorted(filter_columns(filter, schema.names))]))
    entries = scan.selected(filter)
    n_workers = scan.workers(workers)
    pf = scan.parquet_files
    engine = scan.engine
    out: list[Piece] = []
    if engine is not None:
        # Deletion vectors and column mapping: whole files, deleted rows masked after the read.
        masks = scan.keep_masks()
        for entry in entries:
            mask = masks.get(entry.path)
            keep = None if mask is None else np.packbits(mask.astype(bool)).tobytes()
            size = (entry.size or 0) * _EXPANSION
            out.append(Piece(len(out), entry, None, None, size, None, keep,
                             0 if mask is None else len(mask)))
        return out
    if pf is None:
        for entry in entries:
            size = (entry.size or 0) * _EXPANSION
            out.append(Piece(len(out), entry, None, None, size))
        return out
    data_filter = filter is not None and bool(
        filter_columns(filter, [n for n in schema.names if n not in scan.partition_fields.names])
    )
    if split == "file" and not data_filter:
        # Whole files, pruned by partition values only: no footer is needed to plan (a
        # Delta log or an explicit schema= means none is read at all). Footers already
        # read, for the schema, travel with the pieces.
        for entry in entries:
            opened = pf.cached(entry.path)
            rows = entry.rows
            footer = None
            if opened is not None:
                rows = int(opened.metadata.num_rows)
                footer = pf.footer_bytes(opened)
            out.append(Piece(len(out), entry, None, rows, (entry.size or 0) * _EXPANSION,
                             footer))
        return out
    unit_bytes = piece_bytes if split == "row_group" else _WHOLE

    def one(entry: FileEntry) -> list[Piece]:
        with delta_file_errors(scan.location, entry, enabled=scan.is_delta,
                               version=scan.version):
            opened = pf.open(entry, scan.partition_expr(entry))
        try:
            units = pf.units(
                opened, columns=needed, filter=filter, schema=schema, unit_bytes=unit_bytes
            )
            footer = pf.footer_bytes(opened)
        finally:
            pf.release(entry.path)
        return [
            Piece(0, entry, tuple(u.row_groups), u.rows, u.cost, footer)
            for u in units
            if u.row_groups
        ]

    # a Delta data file missing, or shorter than the log says: named with the table
    with delta_file_errors(scan.location, enabled=scan.is_delta,
                           version=scan.version):
        for group in ordered_map(one, entries, workers=n_workers):
            for p in group:
                out.append(Piece(len(out), p.entry, p.row_groups, p.rows, p.nbytes, p.footer))
    return out


def read(
    scan: Scan,
    piece: Piece,
    columns: Sequence[str],
    filter: pc.Expression | None,
) -> pa.Table:
    """Read one piece: ``columns`` of its rows matching ``filter``, typed as the dataset."""
    schema = scan.schema
    columns = list(columns)
    needed = list(dict.fromkeys([*columns, *sorted(filter_columns(filter, schema.names))]))
    with delta_file_errors(scan.location, piece.entry, enabled=scan.is_delta,
                           version=scan.version):
        return _read(scan, piece, columns, needed, filter)


def _read(scan: Scan, piece: Piece, columns: list[str], needed: list[str],
          filter: pc.Expression | None) -> pa.Table:
    schema = scan.schema
    if scan.engine is not None:
        keep = None
        if piece.keep is not None:
            bits = np.unpackbits(np.frombuffer(piece.keep, dtype=np.uint8))[: piece.keep_rows]
            keep = bits.astype(bool)
        return read_mapped(scan, piece.entry, keep, needed, columns, filter, footer=piece.footer)
    pf = scan.parquet_files
    if pf is None:
        return _read_text(scan, piece, columns, filter)
    entry = piece.entry
    opened = pf.open(entry, scan.partition_expr(entry), footer=piece.footer)
    groups = (
        piece.row_groups
        if piece.row_groups is not None
        else tuple(range(opened.metadata.num_row_groups))
    )
    unit = pf.unit(opened, groups, columns=needed)
    table = pf.read(unit, columns=needed, filter=filter, schema=schema, use_threads=True)
    return table.select(columns) if needed != columns else table


def _read_text(
    scan: Scan, piece: Piece, columns: list[str], filter: pc.Expression | None
) -> pa.Table:
    one = Scan(
        scan.location,
        [piece.entry],
        spec=scan.spec,
        schema=scan.schema,
        partition_fields=scan.partition_fields,
        on_bad_lines=scan.on_bad_lines,
    )
    parts = list(
        one.tables(columns, filter, workers=1, progress=False, budget=DEFAULT_BUDGET,
                   n_rows=None, streaming=True)
    )
    return concat(parts, scan.schema.empty_table().select(columns).schema)
