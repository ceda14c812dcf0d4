"""Dataset: a lazy view over parquet / JSONL / CSV shards or a Delta table version.

Nothing is read until asked: ``files`` lists, ``schema`` reads footers (or the first
block of text files), ``to_arrow`` / ``iter_batches`` read only the columns and row
groups needed, in parallel, in a deterministic order.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakekit._deps import import_optional
from lakekit.errors import ConfigError, FormatError
from lakekit.io import delta as delta_source
from lakekit.io._html import dataset_html
from lakekit.io.discover import FileEntry, check_formats, discover
from lakekit.io.filters import Filter, partition_expression, partition_schema, to_expression
from lakekit.io.parquet import ParquetFiles, ReadUnit, filter_columns
from lakekit.io.pipeline import ordered_map
from lakekit.io.progress import Progress
from lakekit.io.schema import unify
from lakekit.storage import Location, default_workers, resolve

if TYPE_CHECKING:
    import fsspec
    import pandas
    import polars

__all__ = ["Dataset", "dataset", "load"]

Format = Literal["parquet", "jsonl", "csv", "delta"]
_FORMATS = ("parquet", "jsonl", "csv", "delta")
DEFAULT_BUDGET = 256 << 20


class Dataset:
    """A lazy dataset: parquet / JSONL / CSV shards, or one version of a Delta table.

    Build one with :func:`dataset`. Reading methods take ``columns``, ``filter`` (a
    ``pyarrow.compute.Expression`` or DNF tuples) and ``workers``.

    Examples
    --------
    >>> import lakekit as lk
    >>> ds = lk.dataset("data/events/")              # doctest: +SKIP
    >>> ds.to_polars(columns=["user_id"], n_rows=5)  # doctest: +SKIP
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
        self._schema = schema
        self._explicit_schema = schema is not None
        self._partition_fields = partition_fields or pa.schema([])
        self._version = version
        self._num_rows = num_rows
        self._on_bad_lines = on_bad_lines
        self._parquet = ParquetFiles(location) if format in ("parquet", "delta") else None
        self._pexprs: dict[str, pc.Expression | None] = {}
        # Delta tables with deletion vectors or column mapping are read through deltalake.
        self._engine = engine

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
    def total_bytes(self) -> int:
        """The summed size of the data files (where known)."""
        return sum(e.size or 0 for e in self._entries)

    @property
    def schema(self) -> pa.Schema:
        """The unified schema of all files, hive partition columns last."""
        if self._schema is None:
            self._schema = self._infer_schema()
        return self._schema

    def __repr__(self) -> str:
        cols = f", columns={len(self._schema)}" if self._schema is not None else ""
        ver = f", version={self._version}" if self._version is not None else ""
        return (
            f"Dataset({self._location.url!r}, format={self._format!r}, "
            f"files={len(self._entries)}, bytes={self.total_bytes:,}{cols}{ver})"
        )

    def _repr_html_(self) -> str:
        return dataset_html(self)

    # -- reading -----------------------------------------------------------------------------
    def count_rows(self, filter: Filter = None) -> int:
        """The number of rows (matching ``filter``), from metadata where possible."""
        expr = to_expression(filter)
        exact = self._engine is None  # with deletion vectors, numRecords over-counts
        if expr is None and self._format == "delta" and self._num_rows is not None and exact:
            return self._num_rows
        if expr is None and self._parquet is not None and self._engine is None:
            pf = self._parquet

            def rows(e: FileEntry) -> int:
                return int(pf.open(e, self._pexpr(e), keep_tail=False).metadata.num_rows)

            return sum(ordered_map(rows, self._entries, workers=self._workers(None)))
        schema = self.schema
        cols = sorted(filter_columns(expr, schema.names)) or schema.names[:1]
        return sum(b.num_rows for b in self.iter_batches(columns=cols, filter=expr))

    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
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
            down to partitions and row-group statistics.
        n_rows
            Stop after this many rows; only the shards / row groups needed are read.
        workers
            Parallel reads (default: about the core count locally, many on object stores).
        progress
            Show a progress bar (default: only in interactive sessions).

        Examples
        --------
        >>> ds.to_arrow(columns=["a"], filter=[("b", ">", 0)], n_rows=10)  # doctest: +SKIP
        """
        columns = self._check_columns(columns)
        if n_rows is not None and n_rows < 0:
            raise ConfigError(f"n_rows must be >= 0, got {n_rows}")
        tables: list[pa.Table] = []
        got = 0
        if n_rows != 0:
            stream = self._tables(columns, filter, workers, progress, DEFAULT_BUDGET, n_rows)
            try:
                for t in stream:
                    tables.append(t)
                    got += t.num_rows
                    if n_rows is not None and got >= n_rows:
                        break
            finally:
                stream.close()
        target = self.schema.empty_table().select(columns).schema
        if not tables:
            return target.empty_table()
        if columns:
            out = pa.concat_tables(tables)
        else:  # pa.concat_tables drops the row count of tables without columns
            out = pa.Table.from_batches([b for t in tables for b in t.to_batches()], target)
        if n_rows is not None and out.num_rows > n_rows:
            out = out.slice(0, n_rows)
        return out

    def to_polars(
        self,
        columns: Sequence[str] | None = None,
        filter: Filter = None,
        n_rows: int | None = None,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> polars.DataFrame:
        """Read into a ``polars.DataFrame`` (see :meth:`to_arrow`)."""
        import polars as pl

        table = self.to_arrow(columns, filter, n_rows, workers, progress)
        return pl.from_arrow(table, rechunk=False)  # type: ignore[return-value]

    def to_pandas(
        self,
        columns: Sequence[str] | None = None,
        filter: Filter = None,
        n_rows: int | None = None,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> pandas.DataFrame:
        """Read into a ``pandas.DataFrame`` (see :meth:`to_arrow`)."""
        import_optional("pandas", purpose="to_pandas()")
        return self.to_arrow(columns, filter, n_rows, workers, progress).to_pandas()

    def iter_batches(
        self,
        columns: Sequence[str] | None = None,
        filter: Filter = None,
        batch_size: int = 65_536,
        workers: int | None = None,
        memory_budget: int = DEFAULT_BUDGET,
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of at most ``batch_size`` rows, in a deterministic order.

        At most about ``memory_budget`` bytes of decoded data are in flight, whatever
        the size of the files.

        Examples
        --------
        >>> for batch in ds.iter_batches(columns=["a"], batch_size=10_000):  # doctest: +SKIP
        ...     process(batch)
        """
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {batch_size}")
        columns = self._check_columns(columns)
        tables = self._tables(columns, filter, workers, False, memory_budget, None, streaming=True)
        for table in tables:
            yield from table.to_batches(max_chunksize=batch_size)

    def to_batch_reader(
        self, columns: Sequence[str] | None = None, filter: Filter = None, batch_size: int = 65_536
    ) -> pa.RecordBatchReader:
        """A ``pyarrow.RecordBatchReader`` over :meth:`iter_batches`."""
        columns = self._check_columns(columns)
        schema = self.schema.empty_table().select(columns).schema
        return pa.RecordBatchReader.from_batches(
            schema, self.iter_batches(columns, filter, batch_size)
        )

    # -- internals ---------------------------------------------------------------------------
    def _workers(self, workers: int | None) -> int:
        if workers is not None:
            if workers < 1:
                raise ConfigError(f"workers must be >= 1, got {workers}")
            return workers
        return default_workers(self._location)

    def _check_columns(self, columns: Sequence[str] | None) -> list[str]:
        names = self.schema.names
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

    def _pexpr(self, entry: FileEntry) -> pc.Expression | None:
        if entry.path not in self._pexprs:
            self._pexprs[entry.path] = (
                partition_expression(entry.partition, self._partition_fields)
                if entry.partition
                else None
            )
        return self._pexprs[entry.path]

    def _selected(self, expr: pc.Expression | None) -> list[FileEntry]:
        """Files whose partition values may match ``expr``."""
        if expr is None or not any(e.partition for e in self._entries):
            return self._entries
        schema = self.schema
        true = pc.scalar(True)
        parts = [self._pexpr(e) for e in self._entries]
        probe = pads.FileSystemDataset.from_paths(
            [e.path for e in self._entries],
            schema=schema,
            format=pads.ParquetFileFormat(),
            filesystem=pa.fs.LocalFileSystem(),
            partitions=[p if p is not None else true for p in parts],
        )
        try:
            keep = {f.path for f in probe.get_fragments(filter=expr)}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ConfigError(f"invalid filter {expr}: {exc}") from None
        return [e for e in self._entries if e.path in keep]

    def _tables(
        self,
        columns: list[str],
        filter: Filter,
        workers: int | None,
        progress: bool | None,
        budget: int,
        n_rows: int | None,
        *,
        streaming: bool = False,
    ) -> Generator[pa.Table, None, None]:
        expr = to_expression(filter)
        schema = self.schema
        if expr is not None:
            _validate_filter(expr, schema)
        needed = list(dict.fromkeys([*columns, *sorted(filter_columns(expr, schema.names))]))
        entries = self._selected(expr)
        n_workers = self._workers(workers)
        bar = Progress(
            total_bytes=sum(e.size or 0 for e in entries),
            total_files=len(entries),
            desc=f"lakekit {self._format}",
            enabled=progress,
        )
        with bar:
            if self._engine is not None:
                tables: Iterator[pa.Table] = self._engine_tables(columns, needed, expr)
            elif self._parquet is not None:
                whole_local = self._location.is_local and self._format == "parquet"
                if whole_local and not streaming and n_rows is None:
                    tables = self._local_scan(entries, columns, needed, expr, n_workers, bar)
                else:
                    tables = self._parquet_tables(
                        entries, columns, needed, expr, n_workers, budget, n_rows, bar
                    )
            else:
                tables = self._text_tables(
                    entries, columns, needed, expr, 1 if streaming else n_workers, n_rows, bar,
                    budget=budget,
                )
            try:
                yield from tables
            finally:
                close = getattr(tables, "close", None)
                if close:
                    close()

    def _engine_tables(
        self, columns: list[str], needed: list[str], expr: pc.Expression | None
    ) -> Iterator[pa.Table]:
        schema = self.schema
        for batch in delta_source.scan(self._engine, needed):
            table = pa.Table.from_batches([batch]).cast(
                pa.schema([schema.field(c) for c in batch.schema.names])
            )
            if expr is not None:
                table = table.filter(expr)
            yield table.select(columns)

    def _local_scan(
        self,
        entries: list[FileEntry],
        columns: list[str],
        needed: list[str],
        expr: pc.Expression | None,
        workers: int,
        bar: Progress,
    ) -> Iterator[pa.Table]:
        """Whole reads on local disk: one pyarrow.dataset scan over the opened fragments
        (the same engine as ``pyarrow.parquet.read_table``), batches in file order."""
        pf = self._parquet
        assert pf is not None
        plans = list(
            ordered_map(lambda e: pf.open(e, self._pexpr(e)), entries, workers=workers)
        )
        if not plans:
            return
        dset = pads.FileSystemDataset(
            [p.fragment for p in plans], self.schema, pf.format, pf.pa_fs
        )
        scanner = dset.scanner(columns=needed, filter=expr, use_threads=True)
        total = sum(p.metadata.num_rows for p in plans) or 1
        size = sum(e.size or 0 for e in entries)
        batches = scanner.to_batches()
        yielded = False
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                bar.advance(0, files=len(entries))
                return
            except (pa.ArrowException, OSError) as exc:
                # Read file by file instead: its errors name the file that failed. Rows
                # already given are skipped, not repeated.
                again = self._parquet_tables(
                    entries, columns, needed, expr, workers, DEFAULT_BUDGET, None, bar
                )
                if not yielded:
                    yield from again
                    return
                for _ in again:
                    pass
                raise FormatError(
                    f"{self._location.url}: {str(exc).strip().splitlines()[0]}"
                ) from None
            bar.advance(int(size * batch.num_rows / total))
            table = pa.Table.from_batches([batch])
            yielded = True
            yield table.select(columns) if needed != columns else table

    def _parquet_tables(
        self,
        entries: list[FileEntry],
        columns: list[str],
        needed: list[str],
        expr: pc.Expression | None,
        workers: int,
        budget: int,
        n_rows: int | None,
        bar: Progress,
    ) -> Iterator[pa.Table]:
        pf = self._parquet
        assert pf is not None
        schema = self.schema
        unit_bytes = max(1 << 20, min(64 << 20, budget // max(2, 2 * workers)))

        def plan(entry: FileEntry) -> list[ReadUnit]:
            p = pf.open(entry, self._pexpr(entry))
            return pf.units(p, columns=needed, filter=expr, schema=schema, unit_bytes=unit_bytes)

        planned = ordered_map(plan, entries, workers=workers, window=workers)
        units: Iterable[ReadUnit] = itertools.chain.from_iterable(planned)
        if n_rows is not None and expr is None:
            units = _take_rows(units, n_rows)

        def read(unit: ReadUnit) -> pa.Table:
            table = pf.read(unit, columns=needed, filter=expr, schema=schema)
            size = unit.plan.entry.size or 0
            total_rows = unit.plan.metadata.num_rows or 1
            bar.advance(int(size * unit.rows / total_rows), files=int(unit.last))
            return table.select(columns) if needed != columns else table

        results = ordered_map(read, units, workers=workers, cost=lambda u: u.cost, budget=budget)
        try:
            yield from results
        finally:
            results.close()
            planned.close()

    def _text_tables(
        self,
        entries: list[FileEntry],
        columns: list[str],
        needed: list[str],
        expr: pc.Expression | None,
        workers: int,
        n_rows: int | None,
        bar: Progress,
        *,
        budget: int,
    ) -> Iterator[pa.Table]:
        schema = self.schema
        parallel = workers > 1 and len(entries) > 1 and n_rows is None
        # Each file in flight holds a few blocks of text plus what it parsed.
        block_size = max(64 << 10, min(16 << 20, budget // (4 * (workers if parallel else 1))))
        order = {e.path: i for i, e in enumerate(entries)}
        file_cols = [c for c in needed if c not in self._partition_fields.names]
        file_schema = pa.schema([schema.field(c) for c in file_cols])
        tally = _new_tally(self._format)

        def batches(entry: FileEntry) -> Iterator[pa.Table]:
            url = self._location.url_of(entry.path)
            for batch in _read_text(
                self._format,
                self._location.fs,
                entry.path,
                url=url,
                schema=file_schema,
                columns=file_cols,
                on_bad_lines=self._on_bad_lines,
                tally=tally,
                block_size=block_size,
                order=order[entry.path],
            ):
                yield self._finish(pa.Table.from_batches([batch]), entry, needed, columns, expr)

        def whole(entry: FileEntry) -> pa.Table:
            parts = list(batches(entry))
            bar.advance(entry.size or 0, files=1)
            target = schema.empty_table().select(columns).schema
            return pa.concat_tables(parts) if parts else target.empty_table()

        try:
            if parallel:
                yield from ordered_map(whole, entries, workers=workers)
            else:
                # Streaming (iter_batches, n_rows): block by block, so reading stops early.
                for entry in entries:
                    yield from batches(entry)
                    bar.advance(entry.size or 0, files=1)
        finally:
            if tally is not None:
                tally.warn()

    def _finish(
        self,
        table: pa.Table,
        entry: FileEntry,
        needed: list[str],
        columns: list[str],
        expr: pc.Expression | None,
    ) -> pa.Table:
        """Add partition columns, apply the filter and select the output columns."""
        for key, raw in entry.partition:
            if key in needed and key not in table.column_names:
                typ = self._partition_fields.field(key).type
                value = pa.scalar(raw).cast(typ) if raw is not None else pa.scalar(None, typ)
                table = table.append_column(
                    pa.field(key, typ), pa.array([value.as_py()] * table.num_rows, typ)
                )
        for key in self._partition_fields.names:
            if key in needed and key not in table.column_names:
                typ = self._partition_fields.field(key).type
                table = table.append_column(pa.field(key, typ), pa.nulls(table.num_rows, typ))
        if expr is not None:
            table = table.filter(expr)
        return table.select(columns)

    def _infer_schema(self) -> pa.Schema:
        workers = self._workers(None)
        if self._parquet is not None:
            pf = self._parquet

            def one(e: FileEntry) -> tuple[str, pa.Schema]:
                plan = pf.open(e, self._pexpr(e), keep_tail=len(self._entries) <= 64)
                return self._location.url_of(e.path), plan.fragment.physical_schema

            schemas = list(ordered_map(one, self._entries, workers=workers))
        else:

            def text(e: FileEntry) -> tuple[str, pa.Schema]:
                url = self._location.url_of(e.path)
                return url, _infer_text(self._format, self._location.fs, e.path, url=url)

            schemas = list(ordered_map(text, self._entries, workers=workers))
        unified = unify(schemas)
        extra = [f for f in self._partition_fields if f.name not in unified.names]
        return pa.schema([*unified, *extra], metadata=unified.metadata)


def _validate_filter(expr: pc.Expression, schema: pa.Schema) -> None:
    try:
        schema.empty_table().filter(expr)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError) as exc:
        raise ConfigError(
            f"invalid filter {expr}: {str(exc).splitlines()[0]} "
            f"(columns: {', '.join(schema.names)})"
        ) from None


def _take_rows(units: Iterable[ReadUnit], n_rows: int) -> Iterator[ReadUnit]:
    """Units until their row counts cover ``n_rows`` (no filter: counts are exact)."""
    seen = 0
    for unit in units:
        yield unit
        seen += unit.rows
        if seen >= n_rows:
            return


def _new_tally(fmt: str) -> Any:
    if fmt != "jsonl":
        return None
    from lakekit.io.jsonl import BadLineTally

    return BadLineTally()


def _read_text(
    fmt: str,
    fs: Any,
    path: str,
    *,
    url: str,
    schema: pa.Schema,
    columns: list[str],
    on_bad_lines: str,
    tally: Any,
    block_size: int,
    order: int,
) -> Iterator[pa.RecordBatch]:
    if fmt == "jsonl":
        from lakekit.io.jsonl import compression_of, read_jsonl_batches

        return read_jsonl_batches(
            fs,
            path,
            url=url,
            compression=compression_of(path),
            schema=schema,
            columns=columns,
            on_bad_lines=on_bad_lines,  # type: ignore[arg-type]
            tally=tally,
            block_size=block_size,
            order=order,
        )
    from lakekit.io.csv import read_csv_batches
    from lakekit.io.jsonl import compression_of

    return read_csv_batches(
        fs, path, url=url, compression=compression_of(path), schema=schema, columns=columns,
        block_size=block_size,
    )


def _infer_text(fmt: str, fs: Any, path: str, *, url: str) -> pa.Schema:
    from lakekit.io.jsonl import compression_of

    if fmt == "jsonl":
        from lakekit.io.jsonl import infer_jsonl_schema

        return infer_jsonl_schema(fs, path, url=url, compression=compression_of(path))
    from lakekit.io.csv import infer_csv_schema

    return infer_csv_schema(fs, path, url=url, compression=compression_of(path))


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
    schema
        An explicit schema (skips inference; files are cast to it).
    on_bad_lines
        JSONL: ``"error"`` raises naming the file and line; ``"skip"`` skips them and warns
        with :class:`lakekit.errors.BadRecordsWarning`.

    Examples
    --------
    >>> import lakekit as lk
    >>> ds = lk.dataset("s3://lake/events/", storage_options={"anon": True})  # doctest: +SKIP
    >>> ds.files[:2], ds.schema                                               # doctest: +SKIP
    """
    if format is not None and format not in _FORMATS:
        raise ConfigError(f"format must be one of {', '.join(_FORMATS)}; got {format!r}")
    if on_bad_lines not in ("error", "skip"):
        raise ConfigError(f"on_bad_lines must be 'error' or 'skip'; got {on_bad_lines!r}")
    sources = _as_list(source)
    first = resolve(sources[0], storage_options=storage_options, filesystem=filesystem)
    paths = [first.path]
    for s in sources[1:]:
        loc = resolve(s, storage_options=storage_options, filesystem=filesystem or first.fs)
        paths.append(loc.path)
    if format == "delta" or (
        format is None and len(paths) == 1 and delta_source.is_delta_table(first)
    ):
        if len(paths) != 1:
            raise ConfigError("a Delta dataset reads one table; pass a single table URI")
        snap = delta_source.snapshot(first, version)
        parts = pa.schema([snap.schema.field(c) for c in snap.partition_columns])
        return Dataset(
            first,
            snap.entries,
            format="delta",
            schema=schema or snap.schema,
            partition_fields=parts,
            version=snap.version,
            num_rows=snap.num_rows,
            engine=snap.engine,
        )
    if version is not None:
        raise ConfigError("version= applies to Delta tables only")
    entries = discover(first, paths, partitioning=partitioning)
    fmt: Format = format or check_formats(entries, first)  # type: ignore[assignment]
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
    filter: Filter = None,
    n_rows: int | None = None,
    output: Literal["arrow", "polars", "pandas"] = "arrow",
    *,
    workers: int | None = None,
    progress: bool | None = None,
    **dataset_kwargs: Any,
) -> Any:
    """Load a dataset in one call: ``lk.dataset(source, **dataset_kwargs)`` then read it.

    Returns a ``pyarrow.Table``, a ``polars.DataFrame`` or a ``pandas.DataFrame``.

    Examples
    --------
    >>> import lakekit as lk
    >>> df = lk.load("data/*.parquet", columns=["a"], output="polars")  # doctest: +SKIP
    """
    readers: dict[str, Callable[..., Any]] = {}
    ds = dataset(source, **dataset_kwargs)
    readers = {"arrow": ds.to_arrow, "polars": ds.to_polars, "pandas": ds.to_pandas}
    if output not in readers:
        raise ConfigError(f"output must be 'arrow', 'polars' or 'pandas'; got {output!r}")
    return readers[output](columns, filter, n_rows, workers, progress)
