"""Read planning for a Dataset: which files, which row groups, in what order, on how many threads.

:class:`Scan` holds what a :class:`~lakekit.io.dataset.Dataset` reads from (location,
files, format, partition values) and turns a read request (columns, filter, row limit,
memory budget) into a stream of tables, in a deterministic order: parquet files by row
group with byte-range fetches, local parquet through one ``pyarrow.dataset`` scan, text
files through their format's reader from :mod:`lakekit.io.formats`, Delta tables with
deletion vectors through deltalake. The schema is inferred here too, file by file, and a
filter on hive partition columns picks the files before any is opened (:meth:`Scan.scope`).

Longer than 500 lines because it is the one place a read is planned, for every format and
store; pruning rules are in prune.py, formats in formats.py, parquet in parquet.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakekit.errors import ConfigError, FormatError
from lakekit.io.delta import delta_file_errors
from lakekit.io.discover import FileEntry
from lakekit.io.filters import Filter, partition_expression, to_expression
from lakekit.io.formats import FileFormat
from lakekit.io.mapped import read_mapped
from lakekit.io.parquet import ParquetFiles, ReadUnit, filter_columns
from lakekit.io.pipeline import ordered_map
from lakekit.io.progress import Progress
from lakekit.io.prune import binds, partition_filter, select, select_by_values
from lakekit.io.schema import unify
from lakekit.storage import Location, default_workers

__all__ = ["DEFAULT_BUDGET", "Scan", "Scope", "concat", "validate_filter"]

DEFAULT_BUDGET = 256 << 20


class Scope(NamedTuple):
    """What one read opens: its filter, the files it may match, the schema it is typed by."""

    expr: pc.Expression | None
    entries: list[FileEntry]
    schema: pa.Schema


class Scan:
    """How one dataset is read: its files, its format's readers, its partition values.

    ``schema`` is an explicit schema; without one it is inferred from the files when
    first needed (:meth:`infer_schema`) and kept.
    """

    def __init__(
        self,
        location: Location,
        entries: Sequence[FileEntry],
        *,
        spec: FileFormat,
        schema: pa.Schema | None,
        partition_fields: pa.Schema,
        on_bad_lines: Literal["error", "skip"] = "error",
        engine: Any = None,
        version: int | None = None,
    ) -> None:
        self._location = location
        self._version = version
        self._entries = list(entries)
        self._spec = spec
        self._format = spec.name
        self._schema = schema
        self._partition_fields = partition_fields
        self._on_bad_lines = on_bad_lines
        self._parquet = ParquetFiles(location) if spec.parquet_files else None
        self._pexprs: dict[str, pc.Expression | None] = {}
        # Delta tables with deletion vectors or column mapping are read through deltalake.
        self._engine = engine
        self._masks: dict[str, Any] | None = None
        self._scopes: list[Scope] = []  # pruned scopes of recent filters (see scope())

    # -- what it reads (for the piece planner, lakekit.io.pieces) ------------------------
    @property
    def location(self) -> Location:
        return self._location

    @property
    def is_delta(self) -> bool:
        """True when the files are a Delta table's (listed by its log)."""
        return self._spec.name == "delta"

    @property
    def version(self) -> int | None:
        """The Delta table version these files are (None for plain files)."""
        return self._version

    @property
    def entries(self) -> list[FileEntry]:
        return self._entries

    @property
    def spec(self) -> FileFormat:
        return self._spec

    @property
    def partition_fields(self) -> pa.Schema:
        return self._partition_fields

    @property
    def on_bad_lines(self) -> Literal["error", "skip"]:
        return self._on_bad_lines

    @property
    def engine(self) -> Any:
        """The deltalake handle for tables with deletion vectors or column mapping, else None."""
        return self._engine

    @property
    def parquet_files(self) -> ParquetFiles | None:
        return self._parquet

    @property
    def schema(self) -> pa.Schema:
        """The dataset's schema (explicit, or inferred once), hive partition columns last."""
        if self._schema is None:
            self._schema = self.infer_schema()
        return self._schema

    @property
    def known_schema(self) -> pa.Schema | None:
        """The schema if it is explicit or already inferred (nothing is read)."""
        return self._schema

    def workers(self, workers: int | None) -> int:
        """``workers``, checked, or the default for the location."""
        if workers is not None:
            if workers < 1:
                raise ConfigError(f"workers must be >= 1, got {workers}")
            return workers
        return default_workers(self._location)

    def count_from_footers(self) -> int | None:
        """The row count from parquet footers, or ``None`` where footers do not give it."""
        if self._parquet is None or self._engine is not None:
            return None
        pf = self._parquet

        def rows(e: FileEntry) -> int:
            return int(pf.open(e, self.partition_expr(e), keep_tail=False).metadata.num_rows)

        return sum(ordered_map(rows, self._entries, workers=self.workers(None)))

    def partition_expr(self, entry: FileEntry) -> pc.Expression | None:
        if entry.path not in self._pexprs:
            self._pexprs[entry.path] = (
                partition_expression(entry.partition, self._partition_fields)
                if entry.partition
                else None
            )
        return self._pexprs[entry.path]

    def selected(self, expr: pc.Expression | None) -> list[FileEntry]:
        """Files whose partition values may match ``expr`` (typed by :attr:`schema`)."""
        if expr is None or not any(e.partition for e in self._entries):
            return self._entries
        return select(self._entries, expr, self.schema, self.partition_expr)

    def scope(self, filter: Filter, columns: Sequence[str] | None = None) -> Scope:
        """The files a read with ``filter`` opens, and the schema it is typed by.

        With a known schema (explicit, or inferred already) that schema, and the files
        the partition values allow. Otherwise a filter on hive partition columns prunes
        files by their paths alone, before any is opened, and the schema is inferred from
        the files kept (from the first file when none is kept: the result is empty). When
        the filter or ``columns`` do not fit that schema (they name columns only other
        files have), or the filter's partition part cannot be told apart, the whole
        dataset's schema is inferred as without a filter.
        """
        expr = to_expression(filter)
        if self._schema is not None or expr is None or not any(e.partition for e in self._entries):
            return self._full_scope(expr)
        found = next((sc for sc in self._scopes if expr.equals(sc.expr)), None)
        if found is None:
            found = self._pruned_scope(filter, expr)
            self._scopes = [*self._scopes[-7:], found] if found is not None else self._scopes
        wanted = set(columns) if columns is not None and not isinstance(columns, str) else set()
        if found is None or not wanted <= set(found.schema.names):
            return self._full_scope(expr)
        return found

    def _full_scope(self, expr: pc.Expression | None) -> Scope:
        schema = self.schema
        if expr is not None:
            validate_filter(expr, schema)
        return Scope(expr, self.selected(expr), schema)

    def _pruned_scope(self, filter: Filter, expr: pc.Expression) -> Scope | None:
        """Files pruned by partition values before the schema is known (see :meth:`scope`);
        ``None`` where that cannot be done."""
        probe = self._partition_fields
        prune = partition_filter(filter, expr, probe)
        if prune is None:
            # the filter names data columns too: type them by the first file (one footer)
            first = self._file_schemas(self._entries[:1])[0][1]
            probe = self._with_partitions(first)
            prune = expr if binds(expr, probe) else None
        if prune is None:
            return None
        try:
            entries = (select_by_values(self._entries, prune, probe)
                       if probe is self._partition_fields else None)
            if entries is None:
                entries = select(self._entries, prune, probe, self.partition_expr)
        except ConfigError:
            return None  # reported as before, with the whole schema
        schema = self._with_partitions(unify(self._file_schemas(entries or self._entries[:1])))
        if not binds(expr, schema):
            return None
        return Scope(expr, entries, schema)

    def _with_partitions(self, schema: pa.Schema) -> pa.Schema:
        extra = [f for f in self._partition_fields if f.name not in schema.names]
        return pa.schema([*schema, *extra], metadata=schema.metadata)

    def tables(
        self,
        columns: list[str],
        filter: Filter,
        *,
        workers: int | None,
        progress: bool | None,
        budget: int,
        n_rows: int | None,
        streaming: bool = False,
        scope: Scope | None = None,
    ) -> Generator[pa.Table, None, None]:
        """Tables of ``columns`` (rows matching ``filter``), in a deterministic order.

        About ``budget`` bytes of decoded data are in flight at most; ``n_rows`` lets the
        read stop early (the caller slices); ``streaming`` reads text files one at a time,
        block by block, and never scans local parquet whole. ``scope``: what
        :meth:`scope` gave for this filter and these columns.
        """
        expr, entries, schema = scope if scope is not None else self.scope(filter, columns)
        needed = list(dict.fromkeys([*columns, *sorted(filter_columns(expr, schema.names))]))
        n_workers = self.workers(workers)
        bar = Progress(
            total_bytes=sum(e.size or 0 for e in entries),
            total_files=len(entries),
            desc=f"lakekit {self._format}",
            enabled=progress,
        )
        with bar:
            if self._engine is not None:
                tables: Iterator[pa.Table] = self._engine_tables(
                    entries, columns, needed, expr, n_workers, bar
                )
            elif self._parquet is not None:
                whole_local = self._location.is_local and self._spec.local_scan
                if whole_local and not streaming and n_rows is None:
                    tables = self._local_scan(
                        entries, columns, needed, expr, n_workers, bar, schema
                    )
                else:
                    tables = self._parquet_tables(
                        entries, columns, needed, expr, n_workers, budget, n_rows, bar, schema
                    )
            else:
                tables = self._text_tables(
                    entries, columns, needed, expr, 1 if streaming else n_workers, n_rows, bar,
                    budget=budget, schema=schema,
                )
            try:
                with delta_file_errors(self.location, enabled=self.is_delta,
                                       version=self._version):
                    yield from tables
            finally:
                close = getattr(tables, "close", None)
                if close:
                    close()

    def keep_masks(self) -> dict[str, Any]:
        """Path -> rows to keep (a boolean numpy array), for the data files that have a
        deletion vector; read from the Delta log once."""
        if self._masks is None:
            masks = self._engine.keep_masks() if self._engine is not None else {}
            listed = {e.path for e in self._entries}
            lost = [path for path in masks if path not in listed]
            if lost:  # reading on would return rows the table deleted
                raise FormatError(
                    f"{self._location.url}: the deletion vector of "
                    f"{self._location.url_of(lost[0])}"
                    f"{f' (and {len(lost) - 1} more)' if len(lost) > 1 else ''} matches none "
                    "of the data files lakekit listed for this version, so its deleted rows "
                    "cannot be removed; this is a lakekit bug: please report it with the "
                    "table's _delta_log"
                )
            self._masks = masks
        return self._masks

    def _engine_tables(
        self,
        entries: list[FileEntry],
        columns: list[str],
        needed: list[str],
        expr: pc.Expression | None,
        workers: int,
        bar: Progress,
    ) -> Iterator[pa.Table]:
        """Delta tables with deletion vectors or column mapping: file by file, in order,
        each data file read with its physical names and its deletion vector applied."""
        masks = self.keep_masks()

        def one(entry: FileEntry) -> pa.Table:
            with delta_file_errors(self.location, entry, enabled=self.is_delta,
                                   version=self._version):
                table = read_mapped(self, entry, masks.get(entry.path), needed, columns, expr)
            bar.advance(entry.size or 0, files=1)
            return table

        yield from ordered_map(one, entries, workers=workers)

    def _local_scan(
        self,
        entries: list[FileEntry],
        columns: list[str],
        needed: list[str],
        expr: pc.Expression | None,
        workers: int,
        bar: Progress,
        schema: pa.Schema,
    ) -> Iterator[pa.Table]:
        """Whole reads on local disk: one pyarrow.dataset scan over the opened fragments
        (the same engine as ``pyarrow.parquet.read_table``), batches in file order."""
        pf = self._parquet
        assert pf is not None
        plans = list(
            ordered_map(lambda e: pf.open(e, self.partition_expr(e)), entries, workers=workers)
        )
        if not plans:
            return
        dset = pads.FileSystemDataset(
            [p.fragment for p in plans], schema, pf.format, pf.pa_fs
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
                    entries, columns, needed, expr, workers, DEFAULT_BUDGET, None, bar, schema
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
        schema: pa.Schema,
    ) -> Iterator[pa.Table]:
        pf = self._parquet
        assert pf is not None
        unit_bytes = max(1 << 20, min(64 << 20, budget // max(2, 2 * workers)))

        def plan(entry: FileEntry) -> list[ReadUnit]:
            with delta_file_errors(self.location, entry, enabled=self.is_delta,
                                   version=self._version):
                p = pf.open(entry, self.partition_expr(entry))
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
        schema: pa.Schema,
    ) -> Iterator[pa.Table]:
        parallel = workers > 1 and len(entries) > 1 and n_rows is None
        # Each file in flight holds a few blocks of text plus what it parsed.
        block_size = max(64 << 10, min(16 << 20, budget // (4 * (workers if parallel else 1))))
        order = {e.path: i for i, e in enumerate(entries)}
        file_cols = [c for c in needed if c not in self._partition_fields.names]
        file_schema = pa.schema([schema.field(c) for c in file_cols])
        tally = self._spec.new_tally()
        read_batches = self._spec.read_batches
        assert read_batches is not None

        def batches(entry: FileEntry) -> Iterator[pa.Table]:
            url = self._location.url_of(entry.path)
            for batch in read_batches(
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
                yield self.finish(pa.Table.from_batches([batch]), entry, needed, columns, expr)

        def whole(entry: FileEntry) -> pa.Table:
            parts = list(batches(entry))
            bar.advance(entry.size or 0, files=1)
            return concat(parts, schema.empty_table().select(columns).schema)

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

    def finish(
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

    def infer_schema(self) -> pa.Schema:
        """The unified schema of all files, hive partition columns last."""
        return self._with_partitions(unify(self._file_schemas(self._entries)))

    def _file_schemas(self, entries: list[FileEntry]) -> list[tuple[str, pa.Schema]]:
        """``(url, schema)`` of each file, read in parallel (parquet: the footer, kept for
        the read when few files are opened; text: the first block)."""
        workers = self.workers(None)
        if self._parquet is not None:
            pf = self._parquet

            def one(e: FileEntry) -> tuple[str, pa.Schema]:
                plan = pf.open(e, self.partition_expr(e), keep_tail=len(entries) <= 64)
                return self._location.url_of(e.path), plan.fragment.physical_schema

            return list(ordered_map(one, entries, workers=workers))
        infer = self._spec.infer_schema
        assert infer is not None

        def text(e: FileEntry) -> tuple[str, pa.Schema]:
            url = self._location.url_of(e.path)
            return url, infer(self._location.fs, e.path, url=url)

        return list(ordered_map(text, entries, workers=workers))


def concat(tables: Sequence[pa.Table], schema: pa.Schema) -> pa.Table:
    """``pa.concat_tables``, keeping the row count of tables without columns (which
    ``pa.concat_tables`` drops: ``columns=[]`` still counts rows)."""
    if not tables:
        return schema.empty_table()
    if schema.names:
        return pa.concat_tables(tables)
    return pa.table({"rows": pa.nulls(sum(t.num_rows for t in tables))}).select([])


def validate_filter(expr: pc.Expression, schema: pa.Schema) -> None:
    """Raise :class:`ConfigError` naming the columns when ``expr`` does not apply to ``schema``."""
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

