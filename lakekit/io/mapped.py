"""Delta data files read as the table sees them, file by file (for local reads and pieces).

Tables with column mapping store columns under physical names (``col-<uuid>``) at every
level of nesting; tables with deletion vectors mark deleted rows outside the data files.
:func:`read_mapped` reads one data file with the physical names, relabels the columns with
the logical ones (a zero-copy view: a cast would match struct fields by name and give
nulls), removes the rows the file's deletion vector deletes, then adds partition values
and applies the filter like any other file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakekit.errors import FormatError
from lakekit.io.discover import FileEntry

if TYPE_CHECKING:
    from lakekit.io.scan import Scan

__all__ = ["read_mapped"]


_PHYSICAL_NAME = b"delta.columnMapping.physicalName"


def _physical_field(field: pa.Field) -> pa.Field:
    """``field`` as a column-mapped data file stores it: the physical name at every level
    (struct fields nested in structs, lists and maps have physical names too)."""
    physical = (field.metadata or {}).get(_PHYSICAL_NAME)
    name = physical.decode() if physical else field.name
    return pa.field(name, _physical_type(field.type), field.nullable)


def _physical_type(typ: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(typ):
        return pa.struct([_physical_field(typ.field(i)) for i in range(typ.num_fields)])
    if pa.types.is_map(typ):
        return pa.map_(_physical_field(typ.key_field), _physical_field(typ.item_field),
                       keys_sorted=typ.keys_sorted)
    if pa.types.is_large_list(typ):
        return pa.large_list(_physical_field(typ.value_field))
    if pa.types.is_fixed_size_list(typ):
        return pa.list_(_physical_field(typ.value_field), typ.list_size)
    if pa.types.is_list(typ):
        return pa.list_(_physical_field(typ.value_field))
    return typ


def _as_logical(column: pa.ChunkedArray, typ: pa.DataType) -> pa.ChunkedArray:
    """A column read under its physical nested names, with the logical ones: the same
    layout, so a zero-copy view (a cast would match struct fields by name: all nulls)."""
    if column.type == typ:
        return column
    return pa.chunked_array([c.view(typ) for c in column.chunks], type=typ)


def read_mapped(
    scan: Scan,
    entry: FileEntry,
    keep: np.ndarray | None,
    needed: list[str],
    columns: list[str],
    filter: pc.Expression | None,
    *,
    footer: bytes | None = None,
) -> pa.Table:
    """A Delta data file read as the table sees it: physical names mapped to logical ones,
    the rows its deletion vector deletes removed (``keep``: the rows to keep), partition
    values added, ``filter`` applied, ``columns`` selected."""
    pf = scan.parquet_files
    assert pf is not None
    schema = scan.schema
    parts = set(scan.partition_fields.names)
    mapped = bool(scan.engine.column_mapping)
    file_cols = [c for c in needed if c not in parts]
    physical = pa.schema([
        _physical_field(schema.field(c)) if mapped else schema.field(c).remove_metadata()
        for c in file_cols
    ])
    opened = pf.open(entry, None, footer=footer)
    n = opened.metadata.num_rows
    if file_cols:
        groups = tuple(range(opened.metadata.num_row_groups))
        phys_cols = physical.names
        unit = pf.unit(opened, groups, columns=phys_cols)
        table = pf.read(unit, columns=phys_cols, filter=None, schema=physical, use_threads=True)
        table = pa.table(
            [_as_logical(table.column(i), schema.field(c).type) for i, c in enumerate(file_cols)],
            names=file_cols,
        )
    else:  # only partition columns: the row count still matters
        pf.release(entry.path)
        table = pa.table({"rows": pa.nulls(n)}).select([])
    if keep is not None:
        if len(keep) < n:  # a selection vector ends at its last deleted row
            keep = np.concatenate([keep, np.ones(n - len(keep), dtype=bool)])
        elif len(keep) > n:
            raise FormatError(
                f"{scan.location.url_of(entry.path)}: the deletion vector covers "
                f"{len(keep)} rows but the file holds {n}; the table's log and files disagree"
            )
        table = table.filter(pa.array(keep))
    return scan.finish(table, entry, needed, columns, filter)
