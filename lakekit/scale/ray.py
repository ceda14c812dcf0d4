"""``Dataset.to_ray``: a ``ray.data.Dataset`` read through a lakekit ``Datasource``.

lakekit plans, Ray runs: :meth:`lakekit.Dataset.pieces` prunes files and row groups
(partition values, row-group statistics) on the driver, and each piece (a file, or a
group of row groups) becomes one Ray read task calling :meth:`lakekit.Dataset.read_piece`.
So a Ray read gives exactly the rows and types of ``to_arrow()``: the unified schema,
hive partition columns, Delta column mapping and deletion vectors, the filter applied.

- Projection: Ray's projection pushdown (``rd.select_columns(["a"])``, or any operator
  reading only some columns) reaches lakekit's reader, which fetches only those column
  chunks; the blocks keep Ray's column order.
- Sizes: each task's ``BlockMetadata`` carries the rows from the footers (when there is
  no filter) and the decoded size lakekit planned with; the schema is known before any
  task runs (the read tasks carry it).
- Order: the read tasks are the pieces in ``to_arrow()``'s order, and each task's rows
  are in file order. Ray yields the blocks in task order only when its
  ``DataContext.execution_options.preserve_order`` is set (Ray's default is off, for
  throughput); lakekit does not change that setting.
- Count: where the footers give every piece's rows (parquet, no filter), ``rd.count()``
  adds them up and reads nothing; otherwise each task reads one column for its count.
- An empty plan (every file pruned) is one task giving no rows: Ray still knows the schema.
- What travels: the dataset is put in Ray's object store once (it pickles to a small
  spec, with the storage options the workers need); each read task holds a reference to
  it, its piece (with the parquet footer read on the driver), the columns and the filter,
  so a task's size does not grow with the number of files. The datasource's name
  ("ReadLakekit" in Ray's progress and task names) and reprs name no credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakekit.scale.engines import ray_module

if TYPE_CHECKING:
    import ray.data

    from lakekit.io.dataset import Dataset
    from lakekit.io.filters import Filter
    from lakekit.io.pieces import Piece

__all__ = ["NAME", "STUB_COLUMN", "PieceRead", "datasource", "datasource_class", "to_ray"]

NAME = "Lakekit"  # Ray calls the read operator and its tasks "Read" + NAME
# Ray counts no rows in a block without columns; its own readers give a block of a read of
# no columns (``ds.count()`` with a filter) this all-null column, which Ray hides.
STUB_COLUMN = "__bsp_stub"


class PieceRead:
    """What one Ray read task runs: read one piece of a dataset into one arrow table.

    Small when pickled: ``dataset`` is a Ray object reference (the dataset was put in the
    object store once for all tasks), plus the piece, the columns and the filter. A read
    with no piece gives the empty table (a dataset whose plan has no pieces).
    """

    def __init__(
        self, dataset: Any, piece: Piece | None, columns: list[str], filter: Filter
    ) -> None:
        self.dataset = dataset
        self.piece = piece
        self.columns = columns
        self.filter = filter
        self.__name__ = f"Read{NAME}"  # Ray names a read function in its warnings

    def __call__(self) -> list[pa.Table]:
        ray = ray_module(purpose="Dataset.to_ray()")
        dataset: Dataset = ray.get(self.dataset)
        if self.columns:
            if self.piece is None:
                return [dataset.schema.empty_table().select(self.columns)]
            return [dataset.read_piece(self.piece, self.columns, filter=self.filter)]
        # No columns (Ray's count()): read one and keep only the row count, because a
        # lakekit read of no columns loses the rows of JSONL, CSV and column-mapped files.
        rows = 0
        if self.piece is not None:
            first = dataset.schema.names[:1]
            rows = dataset.read_piece(self.piece, first, filter=self.filter).num_rows
        return [pa.table({STUB_COLUMN: pa.nulls(rows)})]

    def __repr__(self) -> str:
        return f"PieceRead({self.piece!r}, columns={self.columns!r})"


@functools.cache
def datasource_class() -> type:
    """The ``ray.data.Datasource`` subclass (built on first use: Ray is an optional extra).

    It is reachable as ``lakekit.scale.ray.LakekitDatasource``, so it pickles by
    reference with the Ray dataset's plan.
    """
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class LakekitDatasource(Datasource):
        """The pieces of one lakekit read, one Ray read task each."""

        def __init__(
            self,
            dataset: Any,
            pieces: Sequence[Piece],
            urls: Sequence[str],
            schema: pa.Schema,
            filter: Filter,
            url: str,
        ) -> None:
            super().__init__()
            self._dataset = dataset  # a Ray object reference
            self._pieces = list(pieces)
            self._urls = list(urls)
            self._schema = schema  # of the columns planned for, in their order
            self._filter = filter
            self._url = url  # credential-free, for reprs
            self._projection_map: dict[str, str] | None = None

        def __repr__(self) -> str:
            return (
                f"LakekitDatasource({self._url!r}, pieces={len(self._pieces)}, "
                f"columns={self.columns()!r})"
            )

        def get_name(self) -> str:
            return NAME

        def supports_projection_pushdown(self) -> bool:
            return True

        def columns(self) -> list[str]:
            """The columns to read: those planned for, narrowed by Ray's projection (in
            the projection's order)."""
            planned = self._schema.names
            chosen = self._get_data_columns()
            if chosen is None:
                return list(planned)
            return [c for c in chosen if c in planned]

        def _share(self) -> float:
            """The projected columns' share of the planned bytes (by column count)."""
            planned = len(self._schema)
            return 1.0 if planned == 0 else len(self.columns()) / planned

        def estimate_inmemory_data_size(self) -> int:
            return int(sum(p.nbytes for p in self._pieces) * self._share())

        def get_read_tasks(
            self,
            parallelism: int,
            per_task_row_limit: int | None = None,
            data_context: Any = None,
        ) -> list[Any]:
            # One task per piece, whatever ``parallelism`` asks: the pieces are lakekit's
            # plan (split="row_group" and piece_bytes set their size), and Ray splits
            # large blocks into smaller ones after the read when it wants more.
            columns = self.columns()
            fields = [self._schema.field(c) for c in columns] or [pa.field(STUB_COLUMN, pa.null())]
            schema = pa.schema(fields, metadata=self._schema.metadata)
            share = self._share()
            tasks = []
            if not self._pieces:  # one task giving the empty table: Ray then knows the schema
                meta = BlockMetadata(num_rows=0, size_bytes=0, input_files=(), exec_stats=None)
                read = PieceRead(self._dataset, None, columns, self._filter)
                return [ReadTask(read, meta, schema=schema)]
            for piece, url in zip(self._pieces, self._urls, strict=True):
                meta = BlockMetadata(
                    num_rows=piece.rows if self._filter is None else None,
                    size_bytes=int(piece.nbytes * share),
                    input_files=(url,),
                    exec_stats=None,
                )
                read = PieceRead(self._dataset, piece, columns, self._filter)
                tasks.append(
                    ReadTask(read, meta, schema=schema, per_task_row_limit=per_task_row_limit)
                )
            return tasks

    LakekitDatasource.__module__ = __name__
    LakekitDatasource.__qualname__ = LakekitDatasource.__name__
    return LakekitDatasource


def __getattr__(name: str) -> Any:
    """``LakekitDatasource``, built on first access (how its pickles find it)."""
    if name == "LakekitDatasource":
        return datasource_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def datasource(
    dataset: Dataset, columns: Sequence[str], filter: Filter, pieces: Sequence[Piece]
) -> Any:
    """A ``ray.data.Datasource`` reading ``pieces`` of ``dataset`` (``columns`` of the rows
    matching ``filter``); the dataset is put in Ray's object store here, once."""
    ray = ray_module(purpose="Dataset.to_ray()")
    location = dataset.location
    schema = dataset.schema
    planned = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    urls = [location.url_of(p.entry.path) for p in pieces]
    return datasource_class()(
        ray.put(dataset), pieces, urls, planned, filter, location.url
    )


def to_ray(
    dataset: Dataset,
    columns: Sequence[str] | None = None,
    *,
    filter: Filter = None,
    split: str = "file",
    piece_bytes: int,
) -> ray.data.Dataset:
    """See :meth:`lakekit.Dataset.to_ray`."""
    ray = ray_module(purpose="Dataset.to_ray()")
    # pieces() checks the columns (names, and a string where a list belongs) and the filter
    pieces = dataset.pieces(columns, filter=filter, split=split,  # type: ignore[arg-type]
                            piece_bytes=piece_bytes)
    cols = list(dataset.schema.names) if columns is None else list(columns)
    return ray.data.read_datasource(datasource(dataset, cols, filter, pieces))
