"""``Dataset.to_dask``: a Dask DataFrame over lakekit's own read plan.

Built with ``dask.dataframe.from_map`` over :meth:`lakekit.Dataset.pieces`: one partition
per piece (a file, or a group of row groups), ``meta`` from the unified schema. The read
function takes a ``columns=`` argument, so Dask's column projection (``ddf[["a"]]``)
reaches lakekit's reader and only those columns' chunks are fetched. Each partition read
on a ``distributed`` worker logs a ``"lakekit-read"`` event (piece, file, columns, rows),
which ``client.get_events("lakekit-read")`` returns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lakekit._deps import import_if_available, import_optional
from lakekit.errors import ConfigError
from lakekit.io.memory import return_free_memory

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd
    import pyarrow as pa

    from lakekit.io.dataset import Dataset
    from lakekit.io.filters import Filter
    from lakekit.io.pieces import Piece

__all__ = ["READ_EVENT", "PieceReader", "to_dask"]

READ_EVENT = "lakekit-read"


def to_pandas(table: pa.Table, *, arrow_strings: bool) -> pd.DataFrame:
    """Arrow -> pandas as ``Dataset.to_pandas`` converts, except that with
    ``arrow_strings`` (Dask's ``dataframe.convert-string``, on by default) string columns
    become ``string[pyarrow]`` straight from arrow: no Python ``str`` per value is made
    only for Dask to convert it back (a third of the time and most of the memory)."""
    if not arrow_strings:
        return table.to_pandas()
    import pandas as pd
    import pyarrow as pa

    strings = pd.StringDtype("pyarrow")
    mapping = {pa.string(): strings, pa.large_string(): strings}
    if hasattr(pa, "string_view"):
        mapping[pa.string_view()] = strings
    return table.to_pandas(types_mapper=mapping.get)


class PieceReader:
    """Reads one piece into a pandas partition (what each Dask task calls).

    Pickled once per graph: the dataset travels as its small spec (no listing or footer
    reads on the worker), the filter as DNF tuples or a pyarrow Expression.
    """

    def __init__(
        self, dataset: Dataset, filter: Filter, columns: list[str], *, arrow_strings: bool
    ) -> None:
        self.dataset = dataset
        self.filter = filter
        self.columns = columns
        self.arrow_strings = arrow_strings

    def __call__(self, piece: Piece, columns: Sequence[str] | None = None) -> pd.DataFrame:
        cols = list(columns) if columns is not None else self.columns
        table = self.dataset.read_piece(piece, cols, filter=self.filter)
        _log_read(piece, cols, table.num_rows)
        frame = to_pandas(table, arrow_strings=self.arrow_strings)
        del table
        return_free_memory()  # the arrow buffers just freed, before the next task
        return frame

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        from dask.base import tokenize

        return ("lakekit.PieceReader", tokenize(self.dataset), str(self.filter), self.columns,
                self.arrow_strings)


def _log_read(piece: Piece, columns: list[str], rows: int) -> None:
    """Record what the reader really read, when running on a distributed worker."""
    distributed = import_if_available("distributed")
    if distributed is None:
        return
    try:
        worker = distributed.get_worker()
    except ValueError:  # not on a distributed worker (Dask's local scheduler)
        return
    worker.log_event(
        READ_EVENT,
        {"piece": piece.index, "file": os.path.basename(piece.entry.path),
         "row_groups": None if piece.row_groups is None else list(piece.row_groups),
         "columns": list(columns), "rows": rows},
    )


def to_dask(
    dataset: Dataset,
    columns: Sequence[str] | None = None,
    *,
    filter: Filter = None,
    split: str = "file",
    piece_bytes: int,
) -> dd.DataFrame:
    """See :meth:`lakekit.Dataset.to_dask`."""
    dd = import_optional("dask.dataframe", purpose="Dataset.to_dask()")
    import_optional("pandas", purpose="Dataset.to_dask()")
    if isinstance(columns, str):
        raise ConfigError("columns must be a list of names, not a string")
    cols = list(columns) if columns is not None else list(dataset.schema.names)
    pieces = dataset.pieces(cols, filter=filter, split=split,  # type: ignore[arg-type]
                            piece_bytes=piece_bytes)
    from dask.dataframe.utils import pyarrow_strings_enabled

    arrow_strings = bool(pyarrow_strings_enabled())
    meta = to_pandas(dataset.schema.empty_table().select(cols), arrow_strings=arrow_strings)
    if not pieces:
        return dd.from_pandas(meta, npartitions=1)
    reader = PieceReader(dataset, filter, cols, arrow_strings=arrow_strings)
    return dd.from_map(
        reader, pieces, meta=meta, label="lakekit-read", enforce_metadata=False,
        columns=cols if columns is not None else None,
    )
