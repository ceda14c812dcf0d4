"""Dataset: a lazy view over parquet / JSONL / CSV shards or a Delta table version.

Nothing is read until asked: ``files`` lists, ``schema`` reads footers (or the first
block of text files), ``to_arrow`` / ``iter_batches`` read only the columns and row
groups needed, in parallel, in a deterministic order. This module holds the public
entry points; how a read is planned and run is :mod:`lakekit.io.scan`, and what each
format is, :mod:`lakekit.io.formats`.

Longer than 500 lines because it is the public reading API: every method's docstring is
user documentation, with examples that run. The work is in scan.py, pieces.py and formats.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from lakekit._deps import import_optional
from lakekit.errors import ConfigError
from lakekit.io import pieces as piece_plan
from lakekit.io._html import dataset_html
from lakekit.io.discover import FileEntry, discover
from lakekit.io.filters import Filter, partition_schema, to_expression
from lakekit.io.formats import Format, common_format, detect_table, get_format
from lakekit.io.parquet import filter_columns
from lakekit.io.pieces import PIECE_BYTES, Piece, Split
from lakekit.io.rebatch import rebatch
from lakekit.io.scan import DEFAULT_BUDGET, Scan, Scope, concat
from lakekit.io.tags import TagStore
from lakekit.storage import Location, resolve

if TYPE_CHECKING:
    import dask.dataframe
    import fsspec
    import pandas
    import polars
    import ray.data

    from lakekit.train import Loader

__all__ = ["Dataset", "dataset", "load"]


class Dataset:
    """A lazy dataset: parquet / JSONL / CSV shards, or one version of a Delta table.

    Build one with :func:`dataset`. Reading methods take ``columns``, ``filter`` (a
    ``pyarrow.compute.Expression`` or DNF tuples) and ``workers``.

    Examples
    --------
    >>> import lakekit as lk
    >>> ds = lk.dataset("data/events/")
    >>> ds.to_polars(columns=["user_id"], n_rows=5)["user_id"].to_list()
    [0, 1, 2, 3, 4]
    """

    def __init__(
        self,
        location: Location,
        entries: Sequence[FileEntry],
        *,
        format: Format,
        schema: pa.Schema | None = None,
        partition_fields: pa.Schema | None = None,
        version: int | None = None,
        num_rows: int | None = None,
        on_bad_lines: Literal["error", "skip"] = "error",
        engine: Any = None,
    ) -> None:
        self._location = location
        self._entries = list(entries)
        self._format: Format = format
        self._partition_fields = partition_fields or pa.schema([])
        self._version = version
        self._num_rows = num_rows
        # Delta tables with deletion vectors or column mapping are read through deltalake.
        self._engine = engine
        self._on_bad_lines: Literal["error", "skip"] = on_bad_lines
        self._scan = Scan(
            location,
            self._entries,
            spec=get_format(format),
            schema=schema,
            partition_fields=self._partition_fields,
            on_bad_lines=on_bad_lines,
            engine=engine,
            version=version,
        )

    # -- what it is --------------------------------------------------------------------------
    @property
    def format(self) -> str:
        """``"parquet"``, ``"jsonl"``, ``"csv"`` or ``"delta"``."""
        return self._format

    @property
    def location(self) -> Location:
        """Where the dataset lives (filesystem and root path; its repr holds no credentials)."""
        return self._location

    @property
    def version(self) -> int | None:
        """The Delta table version read (``None`` for plain files)."""
        return self._version

    @property
    def files(self) -> list[str]:
        """The data files, as credential-free URLs, in read order."""
        return [self._location.url_of(e.path) for e in self._entries]

    @property
    def entries(self) -> list[FileEntry]:
        """The data files as :class:`~lakekit.io.discover.FileEntry` (filesystem path, size,
        hive partition values), in read order."""
        return list(self._entries)

    @property
    def partition_schema(self) -> pa.Schema:
        """The hive partition columns and their types (empty when there are none)."""
        return self._partition_fields

    @property
    def total_bytes(self) -> int:
        """The summed size of the data files (where known)."""
        return sum(e.size or 0 for e in self._entries)

    @property
    def schema(self) -> pa.Schema:
        """The unified schema of all files, hive partition columns last."""
        return self._scan.schema

    def __repr__(self) -> str:
        known = self._scan.known_schema
        cols = f", columns={len(known)}" if known is not None else ""
        ver = f", version={self._version}" if self._version is not None else ""
        return (
            f"Dataset({self._location.url!r}, format={self._format!r}, "
            f"files={len(self._entries)}, bytes={self.total_bytes:,}{cols}{ver})"
        )

    def _repr_html_(self) -> str:
        return dataset_html(self)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as a small spec: location (with its storage options), the resolved file
        list, the schema (inferred now if it was not yet), format options. A worker that
        unpickles it lists nothing and reads no footer to rebuild it."""
        spec = (
            self._location,
            tuple(self._entries),
            self._format,
            self.schema,
            self._partition_fields,
            self._version,
            self._num_rows,
            self._on_bad_lines,
            self._engine,
        )
        return (_rebuild, spec)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        """What identifies the data read (Dask names its tasks after it): no credentials."""
        return (
            "lakekit.Dataset", self._location.url, self._format, self._version,
            tuple((e.path, e.size) for e in self._entries),
        )

    # -- reading -----------------------------------------------------------------------------
    def count_rows(self, filter: Filter = None) -> int:
        """The number of rows (matching ``filter``), from metadata where possible."""
        expr = to_expression(filter)
        if expr is None and self._num_rows is not None:  # Delta: from the log
            if self._engine is None or not self._engine.deletion_vectors:
                return self._num_rows
            # numRecords counts the rows deletion vectors remove: subtract those
            return self._num_rows - int(self._engine.deleted_rows())
        if expr is None:
            from_footers = self._scan.count_from_footers()
            if from_footers is not None:
                return from_footers
        scope = self._scan.scope(filter)
        names = scope.schema.names
        cols = sorted(filter_columns(expr, names)) or names[:1]
        return sum(b.num_rows for b in self._batches(cols, scope, 65_536, None, DEFAULT_BUDGET))

    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        n_rows: int | None = None,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> pa.Table:
        """Read into a ``pyarrow.Table``.

        Parameters
        ----------
        columns
            Columns to read (all by default); only these are fetched and decoded.
        filter
            A ``pyarrow.compute.Expression`` or DNF tuples ``[("col", ">", 5)]``; pushed
            down to partitions and row-group statistics. Files that hive partition
            values rule out are never opened; without ``schema=`` (or a :attr:`schema`
            read already) the result is typed by the files that match.
        n_rows
            Stop after this many rows; only the shards / row groups needed are read.
        workers
            Parallel reads (default: about the core count locally, many on object stores).
        progress
            Show a progress bar (default: only in interactive sessions).

        Examples
        --------
        >>> ds.to_arrow(columns=["user_id"], filter=[("kind", "=", "buy")]).to_pydict()
        {'user_id': [2, 6, 10]}
        >>> ds.to_arrow(filter=[("amount", ">", 10)], n_rows=2).num_rows
        2
        """
        scope = self._scan.scope(filter, columns)
        columns = self._check_columns(columns, scope.schema)
        if n_rows is not None and n_rows < 0:
            raise ConfigError(f"n_rows must be >= 0, got {n_rows}")
        tables: list[pa.Table] = []
        got = 0
        if n_rows != 0:
            stream = self._scan.tables(
                columns, filter, workers=workers, progress=progress, budget=DEFAULT_BUDGET,
                n_rows=n_rows, scope=scope,
            )
            try:
                for t in stream:
                    tables.append(t)
                    got += t.num_rows
                    if n_rows is not None and got >= n_rows:
                        break
            finally:
                stream.close()
        target = scope.schema.empty_table().select(columns).schema
        if not tables:
            return target.empty_table()
        out = concat(tables, target)
        if n_rows is not None and out.num_rows > n_rows:
            out = out.slice(0, n_rows)
        return out

    def to_polars(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        n_rows: int | None = None,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> polars.DataFrame:
        """Read into a ``polars.DataFrame`` (see :meth:`to_arrow`)."""
        import polars as pl

        table = self.to_arrow(
            columns, filter=filter, n_rows=n_rows, workers=workers, progress=progress
        )
        return pl.from_arrow(table, rechunk=False)  # type: ignore[return-value]

    def to_pandas(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        n_rows: int | None = None,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> pandas.DataFrame:
        """Read into a ``pandas.DataFrame`` (see :meth:`to_arrow`)."""
        import_optional("pandas", purpose="to_pandas()")
        return self.to_arrow(
            columns, filter=filter, n_rows=n_rows, workers=workers, progress=progress
        ).to_pandas()

    def iter_batches(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        batch_size: int = 65_536,
        workers: int | None = None,
        memory_budget: int = DEFAULT_BUDGET,
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of exactly ``batch_size`` rows (the last one smaller), in a
        deterministic order.

        Every format gives the same batches: rows are re-cut across row groups, blocks
        of text and files (slices where a batch lies within what was read, one batch's
        rows copied where it spans more). At most about ``memory_budget`` bytes of
        decoded data are in flight, whatever the size of the files.

        Examples
        --------
        >>> for batch in ds.iter_batches(columns=["user_id"], batch_size=3):
        ...     print(batch.num_rows, batch["user_id"].to_pylist())
        3 [0, 1, 2]
        3 [3, 4, 5]
        3 [6, 7, 8]
        3 [9, 10, 11]
        """
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {batch_size}")
        scope = self._scan.scope(filter, columns)
        columns = self._check_columns(columns, scope.schema)
        yield from self._batches(columns, scope, batch_size, workers, memory_budget)

    def _batches(
        self, columns: list[str], scope: Scope, batch_size: int, workers: int | None,
        memory_budget: int,
    ) -> Iterator[pa.RecordBatch]:
        tables = self._scan.tables(
            columns, scope.expr, workers=workers, progress=False, budget=memory_budget,
            n_rows=None, streaming=True, scope=scope,
        )
        try:
            yield from rebatch(tables, batch_size)
        finally:
            tables.close()

    def to_batch_reader(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        batch_size: int = 65_536,
    ) -> pa.RecordBatchReader:
        """A ``pyarrow.RecordBatchReader`` over :meth:`iter_batches`."""
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {batch_size}")
        scope = self._scan.scope(filter, columns)
        columns = self._check_columns(columns, scope.schema)
        schema = scope.schema.empty_table().select(columns).schema
        return pa.RecordBatchReader.from_batches(
            schema, self._batches(columns, scope, batch_size, None, DEFAULT_BUDGET)
        )

    # -- beyond one machine -----------------------------------------------------------------
    def pieces(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        split: Split = "file",
        piece_bytes: int = PIECE_BYTES,
        workers: int | None = None,
    ) -> list[Piece]:
        """Cut a read into pieces that other processes read with :meth:`read_piece`.

        One piece per file (``split="file"``), or per group of row groups of about
        ``piece_bytes`` decoded bytes (``split="row_group"``, parquet). Partition values
        and row-group statistics prune files and row groups here, before any task exists;
        footers are read once, in parallel, and travel with the pieces.

        Examples
        --------
        >>> pieces = ds.pieces(["user_id"], filter=[("user_id", ">=", 8)])
        >>> [p.rows for p in pieces]
        [4]
        >>> ds.read_piece(pieces[0], ["user_id"], filter=[("user_id", ">=", 8)]).num_rows
        4
        """
        columns = self._check_columns(columns)
        return piece_plan.plan(
            self._scan, columns, to_expression(filter), split=split,
            piece_bytes=piece_bytes, workers=workers,
        )

    def read_piece(
        self, piece: Piece, columns: Sequence[str] | None = None, *, filter: Filter = None
    ) -> pa.Table:
        """Read one piece of :meth:`pieces` as a ``pyarrow.Table`` typed as :attr:`schema`
        (partition values added, deleted rows removed, ``filter`` applied)."""
        columns = self._check_columns(columns)
        return piece_plan.read(self._scan, piece, columns, to_expression(filter))

    def to_dask(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        split: Split = "file",
        piece_bytes: int = PIECE_BYTES,
    ) -> dask.dataframe.DataFrame:
        """A ``dask.dataframe.DataFrame`` over this dataset, planned by lakekit.

        One partition per piece (see :meth:`pieces`): per file, or per group of row
        groups with ``split="row_group"``. ``meta`` comes from the unified schema; Dask's
        column projection reaches the reader (``ddf[["a"]].sum()`` fetches only ``a``);
        filters prune files and row groups before the graph exists. Needs
        ``pip install 'lakekit[dask]'``.

        Examples
        --------
        >>> ddf = ds.to_dask(filter=[("kind", "=", "buy")])
        >>> ddf.npartitions, int(ddf["user_id"].sum().compute(scheduler="sync"))
        (3, 18)
        """
        from lakekit.scale.dask import to_dask

        return to_dask(self, columns, filter=filter, split=split, piece_bytes=piece_bytes)

    def to_ray(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        split: Split = "file",
        piece_bytes: int = PIECE_BYTES,
    ) -> ray.data.Dataset:
        """A ``ray.data.Dataset`` over this dataset, read through lakekit's Datasource.

        One read task per piece (see :meth:`pieces`): per file, or per group of row
        groups with ``split="row_group"``. Filters prune files and row groups before the
        tasks exist and are applied in each task; rows, sizes and the schema are known
        before anything runs (footers, the Delta log); Ray's projection pushdown
        (``rd.select_columns(["a"])``) reaches the reader, which fetches only those
        columns. The rows and types are :meth:`to_arrow`'s, in its order when Ray keeps
        the task order (``rd.context.execution_options.preserve_order = True``; Ray's
        default yields blocks as tasks finish). Ray is started (``ray.init()``) if it is
        not yet. Needs ``pip install 'lakekit[ray]'``.
        """
        from lakekit.scale.ray import to_ray

        return to_ray(self, columns, filter=filter, split=split, piece_bytes=piece_bytes)

    # -- training ----------------------------------------------------------------------------
    def loader(
        self,
        columns: Sequence[str] | None = None,
        *,
        filter: Filter = None,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = True,
        memory_budget: int | str = "1GiB",
        output: Literal["numpy", "arrow", "polars", "torch"] = "numpy",
    ) -> Loader:
        """A training loader over this dataset: exact epochs, global shuffle, resumable.

        The epoch is planned from footers and the Delta log (row groups and row counts);
        rows are shuffled across a window sized by ``memory_budget``; every rank yields
        the same number of batches of ``batch_size`` rows; ``state_dict()`` /
        ``load_state_dict()`` resume exactly, also on another world size. See
        :class:`lakekit.train.Loader` and docs/training.md.

        Parameters
        ----------
        columns, filter
            What to read (a filter on partition columns prunes at planning; one on data
            columns is counted once per unit, cached by the data's fingerprint).
        batch_size
            Rows per batch on each rank.
        shuffle, seed
            The order is a function of (data, seed, epoch).
        rank, world_size
            Default: ``torch.distributed`` when initialised, else 0 and 1.
        drop_last
            Drop the last, partial global step (else it is shared evenly, padded from
            the epoch's start).
        memory_budget
            Bytes of decoded data a reader holds (``"1GiB"``, ``"512MB"`` or an int).
        output
            ``"numpy"`` (dict of arrays), ``"arrow"`` (RecordBatch), ``"polars"``,
            ``"torch"`` (dict of tensors; needs ``lakekit[torch]``).

        Examples
        --------
        >>> loader = ds.loader(["user_id"], batch_size=4, shuffle=False)
        >>> [b["user_id"].tolist() for b in loader]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
        """
        from lakekit.train import Loader

        return Loader(self, columns, filter=filter, batch_size=batch_size, shuffle=shuffle,
                      seed=seed, rank=rank, world_size=world_size, drop_last=drop_last,
                      memory_budget=memory_budget, output=output)

    # -- internals ---------------------------------------------------------------------------
    def _check_columns(
        self, columns: Sequence[str] | None, schema: pa.Schema | None = None
    ) -> list[str]:
        names = (schema if schema is not None else self.schema).names
        if columns is None:
            return list(names)
        if isinstance(columns, str):
            raise ConfigError("columns must be a list of names, not a string")
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise ConfigError(
                f"unknown column(s) {', '.join(map(repr, unknown))} in {self._location.url}; "
                f"available: {', '.join(names)}"
            )
        return list(columns)


def _rebuild(
    location: Location,
    entries: tuple[FileEntry, ...],
    format: Format,
    schema: pa.Schema,
    partition_fields: pa.Schema,
    version: int | None,
    num_rows: int | None,
    on_bad_lines: Literal["error", "skip"],
    engine: Any,
) -> Dataset:
    return Dataset(
        location, entries, format=format, schema=schema, partition_fields=partition_fields,
        version=version, num_rows=num_rows, on_bad_lines=on_bad_lines, engine=engine,
    )


def _as_list(source: Any) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        return [os.fspath(source)]
    if (
        isinstance(source, Sequence)
        and source
        and all(isinstance(s, (str, os.PathLike)) for s in source)
    ):
        return [os.fspath(s) for s in source]
    raise ConfigError(
        "source must be a path or URL (a file, directory or glob), or a non-empty list of them"
    )


def dataset(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    format: Format | None = None,
    filesystem: fsspec.AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    partitioning: Literal["hive"] | None = "hive",
    version: int | None = None,
    tag: str | None = None,
    schema: pa.Schema | None = None,
    on_bad_lines: Literal["error", "skip"] = "error",
) -> Dataset:
    """Open a dataset lazily: files, a directory (recursive), a glob, a list, or a Delta table.

    Parameters
    ----------
    source
        A local path or any fsspec URL (``s3://``, ``memory://``, ...), or a list of them.
    format
        ``"parquet"``, ``"jsonl"``, ``"csv"`` or ``"delta"``; inferred from extensions and
        from a ``_delta_log`` directory when omitted.
    filesystem
        Any fsspec filesystem instance (wins over ``storage_options``).
    storage_options
        Filesystem options (fsspec or deltalake conventions).
    partitioning
        ``"hive"`` turns ``key=value/`` directories into columns; ``None`` ignores them.
    version
        For Delta tables: the version to read (latest by default).
    tag
        For Delta tables: read the version this tag names (see ``lk.Table.tag``); not with
        ``version``.
    schema
        An explicit schema (skips inference; files are cast to it).
    on_bad_lines
        JSONL: ``"error"`` raises naming the file and line; ``"skip"`` skips them and warns
        with :class:`lakekit.errors.BadRecordsWarning`.

    Examples
    --------
    >>> import lakekit as lk
    >>> ds = lk.dataset("data/events/")
    >>> len(ds.files), ds.schema.names
    (3, ['user_id', 'kind', 'amount'])

    On an object store, name it by URL and pass credentials and endpoints as
    ``storage_options``: ``lk.dataset("s3://lake/events/", storage_options={"anon": True})``.
    """
    spec = get_format(format) if format is not None else None
    if on_bad_lines not in ("error", "skip"):
        raise ConfigError(f"on_bad_lines must be 'error' or 'skip'; got {on_bad_lines!r}")
    sources = _as_list(source)
    first = resolve(sources[0], storage_options=storage_options, filesystem=filesystem)
    paths = [first.path]
    for s in sources[1:]:
        loc = resolve(s, storage_options=storage_options, filesystem=filesystem or first.fs)
        paths.append(loc.path)
    if spec is None and len(paths) == 1:
        spec = detect_table(first)
    if tag is not None:
        if version is not None:
            raise ConfigError("pass version= or tag=, not both")
        if spec is None or spec.snapshot is None:
            raise ConfigError("tag= applies to Delta tables only")
        version = TagStore(first).get(tag).version
    if spec is not None and spec.snapshot is not None:
        if len(paths) != 1:
            raise ConfigError("a Delta dataset reads one table; pass a single table URI")
        snap = spec.snapshot(first, version)
        parts = pa.schema([snap.schema.field(c) for c in snap.partition_columns])
        return Dataset(
            first,
            snap.entries,
            format=spec.name,  # type: ignore[arg-type]
            schema=schema or snap.schema,
            partition_fields=parts,
            version=snap.version,
            num_rows=snap.num_rows,
            engine=snap.engine,
        )
    if version is not None:
        raise ConfigError("version= applies to Delta tables only")
    entries = discover(first, paths, partitioning=partitioning)
    fmt: Format = format or common_format(entries, first)  # type: ignore[assignment]
    parts = partition_schema([e.partition for e in entries]) if partitioning else pa.schema([])
    return Dataset(
        first,
        entries,
        format=fmt,
        schema=schema,
        partition_fields=parts,
        on_bad_lines=on_bad_lines,
    )


def load(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    columns: Sequence[str] | None = None,
    *,
    filter: Filter = None,
    n_rows: int | None = None,
    output: Literal["arrow", "polars", "pandas"] = "arrow",
    workers: int | None = None,
    progress: bool | None = None,
    **dataset_kwargs: Any,
) -> Any:
    """Load a dataset in one call: ``lk.dataset(source, **dataset_kwargs)`` then read it.

    Returns a ``pyarrow.Table``, a ``polars.DataFrame`` or a ``pandas.DataFrame``.

    Examples
    --------
    >>> import lakekit as lk
    >>> df = lk.load("data/events/*.parquet", columns=["kind"], output="polars")
    >>> df.shape
    (12, 1)
    """
    readers: dict[str, Callable[..., Any]] = {}
    ds = dataset(source, **dataset_kwargs)
    readers = {"arrow": ds.to_arrow, "polars": ds.to_polars, "pandas": ds.to_pandas}
    if output not in readers:
        raise ConfigError(f"output must be 'arrow', 'polars' or 'pandas'; got {output!r}")
    return readers[output](
        columns, filter=filter, n_rows=n_rows, workers=workers, progress=progress
    )
