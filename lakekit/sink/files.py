"""The rows of a sink batch, staged for a Delta commit.

The sink writes its parquet files itself, piece by piece as a batch is decoded (so a
batch never sits in memory twice), and commits them as ``add`` actions. A retried
commit reuses the files instead of writing them again. The files, and the Delta
statistics each ``add`` action carries, come from :mod:`lakekit.tables.files`.
"""

from __future__ import annotations

import tempfile
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakekit.storage import Location, retry_call
from lakekit.tables.files import DataFile, delta_compatible

__all__ = ["StagedRows"]


class _OpenFile:
    """A data file being written, with the topic-partition index of each of its rows."""

    def __init__(self, location: Location, schema: pa.Schema, scratch: str | None,
                 first: pa.Table) -> None:
        self.file = DataFile(location, schema, first, scratch=scratch)
        self.schema = schema
        self.parts: list[np.ndarray] = []

    @property
    def pending_bytes(self) -> int:
        return self.file.pending_bytes

    def write(self, table: pa.Table, parts: np.ndarray) -> None:
        """Add rows; they are written once a row group's worth is pending."""
        self.parts.append(parts)
        self.file.write(table)

    def close(self) -> tuple[Any, np.ndarray]:
        add = self.file.close()
        parts = np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.int32)
        return add, parts


class StagedRows:
    """The rows of one batch on their way into a commit.

    With ``location`` (the sink writes the files) rows go into parquet files as they
    are added: a batch then holds a row group in memory, not a second copy of itself,
    and a retried commit reuses the files. Without (delta-rs writes the files, e.g. for
    partitioned tables) the rows stay in memory until the commit. ``parts`` gives, for
    every row, the index of its topic-partition in the batch.
    """

    def __init__(self, location: Location | None) -> None:
        self.location = location
        self.schema: pa.Schema | None = None
        self.num_rows = 0
        self._tables: list[pa.Table] = []
        self._parts: list[np.ndarray] = []
        self._files: list[tuple[Any, np.ndarray]] = []
        self._open: _OpenFile | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def held_bytes(self) -> int:
        """Decoded rows held in memory: a row group being gathered, or the whole batch."""
        if self._open is not None:
            return self._open.pending_bytes
        return sum(t.nbytes for t in self._tables) if self._tables else 0

    @property
    def parts(self) -> np.ndarray:
        """The topic-partition index of every row, in order."""
        if self._files:
            return np.concatenate([p for _, p in self._files])
        return np.concatenate(self._parts) if self._parts else np.empty(0, dtype=np.int32)

    def add(self, table: pa.Table, parts: np.ndarray) -> None:
        """Add rows (``parts``: their topic-partition indices)."""
        if not table.num_columns:
            return
        table = delta_compatible(table)
        self.schema = table.schema if self.schema is None else pa.unify_schemas(
            [self.schema, table.schema], promote_options="permissive")
        self.num_rows += table.num_rows
        if self.location is None:
            self._tables.append(table)
            self._parts.append(parts)
            return
        if table.num_rows == 0:
            return
        if self._open is not None and not self._open.schema.equals(table.schema):
            self._files.append(self._open.close())
            self._open = None
        if self._open is None:
            if self._scratch is None and not self.location.is_local:
                self._scratch = tempfile.TemporaryDirectory(prefix="lakekit-sink-")
            scratch = self._scratch.name if self._scratch is not None else None
            self._open = _OpenFile(self.location, table.schema, scratch, table)
        self._open.write(table, parts)

    def finish(self) -> StagedRows:
        """Close the file being written."""
        if self._open is not None:
            self._files.append(self._open.close())
            self._open = None
        return self

    def table(self, keep: np.ndarray | None = None) -> pa.Table:
        """The rows (of the partitions ``keep`` marks) as one table (in-memory staging)."""
        if not self._tables:
            return self.schema.empty_table() if self.schema is not None else pa.table({})
        table = pa.concat_tables(self._tables, promote_options="permissive")
        if keep is not None and not keep.all():
            table = table.filter(pa.array(keep))
        return table

    def add_actions(self, keep: np.ndarray | None = None) -> list[Any]:
        """``AddAction`` s of the files; with ``keep``, files holding rows it drops are
        rewritten without them first (a partition was lost to another writer)."""
        self.finish()
        if keep is None or keep.all():
            return [add for add, _ in self._files]
        assert self.location is not None
        out = []
        start = 0
        fs = self.location.pyarrow_filesystem()
        root = self.location.path.rstrip("/")
        for add, parts in self._files:
            mask = keep[start : start + len(parts)]
            start += len(parts)
            if mask.all():
                out.append(add)
                continue
            if not mask.any():
                continue
            path = f"{root}/{add.path}"
            old: pa.Table = retry_call(partial(pq.read_table, path, filesystem=fs),
                                       what=f"reading back a data file of {self.location.url}")
            redo = StagedRows(self.location)
            redo.add(old.filter(pa.array(mask)), parts[mask])
            out.extend(a for a, _ in redo.finish()._files)
        return out

    def close(self) -> None:
        """Remove scratch files."""
        if self._open is not None:
            self._open.file.discard()
            self._open = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
