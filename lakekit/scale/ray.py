"""``Dataset.to_ray``: a ``ray.data.Dataset`` read through a lakekit ``Datasource``.

One read task per piece of :meth:`lakekit.Dataset.pieces` (a file, or a group of row
groups), its size estimated from footers or the Delta log; Ray's projection pushdown
(``ds.select_columns([...])``) reaches lakekit's reader.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lakekit.scale.engines import ray_module

if TYPE_CHECKING:
    import ray.data

    from lakekit.io.dataset import Dataset
    from lakekit.io.filters import Filter

__all__ = ["datasource", "to_ray"]


def datasource(
    dataset: Dataset, columns: list[str], filter: Filter, pieces: list[Any]
) -> Any:
    """A ``ray.data.Datasource`` over the pieces (built lazily: Ray is an optional extra)."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class LakekitDatasource(Datasource):
        def __init__(self) -> None:
            super().__init__()
            self._projection_map: dict[str, str] | None = None

        def get_name(self) -> str:
            return "Lakekit"

        def supports_projection_pushdown(self) -> bool:
            return True

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(p.nbytes for p in pieces) or None

        def _columns(self) -> list[str]:
            chosen = self._get_data_columns()
            if chosen is None:
                return list(columns)
            return [c for c in columns if c in chosen]

        def get_read_tasks(
            self,
            parallelism: int,
            per_task_row_limit: int | None = None,
            data_context: Any = None,
        ) -> list[Any]:
            cols = self._columns()
            schema = dataset.schema.empty_table().select(cols).schema
            tasks = []
            for piece in pieces:
                meta = BlockMetadata(
                    num_rows=piece.rows if filter is None else None,
                    size_bytes=piece.nbytes,
                    input_files=(os.path.basename(piece.entry.path),),
                    exec_stats=None,
                )

                def read(piece: Any = piece) -> list[Any]:
                    return [dataset.read_piece(piece, cols, filter=filter)]

                tasks.append(ReadTask(read, meta, schema=schema,
                                      per_task_row_limit=per_task_row_limit))
            return tasks

    return LakekitDatasource()


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
    cols = list(columns) if columns is not None else list(dataset.schema.names)
    pieces = dataset.pieces(cols, filter=filter, split=split,  # type: ignore[arg-type]
                            piece_bytes=piece_bytes)
    if not pieces:
        return ray.data.from_arrow(dataset.schema.empty_table().select(cols))
    return ray.data.read_datasource(datasource(dataset, cols, filter, pieces))
