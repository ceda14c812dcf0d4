"""Byte-range aware parquet reads: footer first, then only the needed column chunks.

On remote filesystems each file is a :class:`SparseFile`: the footer is fetched with one
request, then the byte ranges of the needed column chunks of the needed row groups are
merged into few large requests and fetched concurrently; pyarrow then decodes from those
cached ranges. On local disk pyarrow reads the file itself. In both cases pyarrow.dataset
does the planning work (row-group statistics, partition values, schema evolution).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lakekit.errors import FormatError, LakekitError, SchemaMismatchError
from lakekit.io.discover import FileEntry
from lakekit.io.ranges import (
    HOLE_MIN,
    HOLE_RATIO,
    MAX_REQUEST,
    SparseFile,
    fetch_ranges,
    merge_ranges,
)
from lakekit.storage import Location, retry_call

__all__ = [
    "HOLE_MIN", "HOLE_RATIO", "MAX_REQUEST", "FilePlan", "ParquetFiles", "ReadUnit", "SparseFile",
    "filter_columns", "merge_ranges",
]

FOOTER_GUESS = 64 << 10
UNIT_BYTES = 64 << 20  # decoded bytes per read unit (a group of row groups)


class _SparseHandler(pafs.FSSpecHandler):
    """A pyarrow filesystem handler that serves registered paths from their SparseFile."""

    def __init__(self, fs: Any) -> None:
        super().__init__(fs)
        self.files: dict[str, SparseFile] = {}

    def open_input_file(self, path: str) -> pa.NativeFile:
        sparse = self.files.get(path)
        if sparse is None:
            return super().open_input_file(path)
        return pa.PythonFile(sparse, mode="r")


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def filter_columns(expr: pc.Expression | None, names: Iterable[str]) -> set[str]:
    """Names of ``names`` that ``expr`` refers to (an over-approximation is harmless)."""
    if expr is None:
        return set()
    text = _QUOTED.sub('""', str(expr))
    return {n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", text)}


@dataclass
class FilePlan:
    """One file, opened: its fragment (metadata loaded) and, when remote, its SparseFile."""

    entry: FileEntry
    fragment: pads.ParquetFileFragment
    sparse: SparseFile | None
    remaining: int = 0  # read units not yet done; the file's cache is dropped at zero

    @property
    def metadata(self) -> pq.FileMetaData:
        return self.fragment.metadata


@dataclass
class ReadUnit:
    """A group of row groups of one file, read as one task."""

    plan: FilePlan
    row_groups: list[int]
    ranges: list[tuple[int, int]]
    cost: int  # estimated decoded bytes
    rows: int
    last: bool  # last unit of its file


class ParquetFiles:
    """Parquet reading for one dataset: opening files, planning units, reading units."""

    def __init__(self, location: Location, schema_hint: pa.Schema | None = None) -> None:
        self.location = location
        # pages that carry a CRC (write_page_checksum) are checked: a damaged page is an
        # error, not other values (pages without one cannot be checked)
        self.format = pads.ParquetFileFormat(
            default_fragment_scan_options=pads.ParquetFragmentScanOptions(
                page_checksum_verification=True))
        self._handler: _SparseHandler | None = None
        if location.is_local:
            self.pa_fs: pafs.FileSystem = pafs.LocalFileSystem()
        else:
            self._handler = _SparseHandler(location.fs)
            self.pa_fs = pafs.PyFileSystem(self._handler)
        self._plans: dict[str, FilePlan] = {}
        self._lock = threading.Lock()

    def open(
        self,
        entry: FileEntry,
        partition_expression: pc.Expression | None,
        *,
        keep_tail: bool = True,
        footer: bytes | None = None,
    ) -> FilePlan:
        """Read the footer of ``entry`` (one request when remote) and make its fragment.

        ``keep_tail=False`` drops the fetched tail once the footer is parsed (when many
        files are opened only for their schema). ``footer``: the file's tail as
        :meth:`footer_bytes` gave it elsewhere (a planning process), so that no request
        is made for it here.
        """
        with self._lock:
            cached = self._plans.get(entry.path)
        if cached is not None:
            return cached
        url = self.location.url_of(entry.path)
        sparse = None
        size = entry.size
        if self._handler is not None:
            if size is None:
                size = int(retry_call(lambda: self.location.fs.size(entry.path), what=url))
            sparse = SparseFile(self.location.fs, entry.path, size, url)
            tail = min(size, FOOTER_GUESS)
            if footer is not None and 8 <= len(footer) <= size:
                sparse.known_footer(footer, tail=FOOTER_GUESS)
            elif tail:
                sparse.add(
                    [(size - tail, size)],
                    fetch_ranges(self.location.fs, entry.path, [(size - tail, size)], url=url),
                )
                sparse.requests += 1
            self._handler.files[entry.path] = sparse
        try:
            fragment = self.format.make_fragment(
                entry.path,
                filesystem=self.pa_fs,
                partition_expression=partition_expression,
                file_size=size,
            )
            fragment.ensure_complete_metadata()
            _check_names(fragment)
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
            if isinstance(exc, (FileNotFoundError, LakekitError)):
                raise  # a missing file or a storage error (after retries) is not a format error
            raise FormatError(
                f"{url}: not a readable parquet file ({_first_line(exc)}); "
                "expected a complete parquet file (is it truncated or of another format?)"
            ) from None
        if sparse is not None and not keep_tail:
            sparse.evict([(sparse.size() - min(sparse.size(), FOOTER_GUESS), sparse.size())])
        plan = FilePlan(entry, fragment, sparse)
        with self._lock:
            self._plans[entry.path] = plan
        return plan

    def cached(self, path: str) -> FilePlan | None:
        """The file's plan if it is open already (its footer read), else None."""
        with self._lock:
            return self._plans.get(path)

    def footer_bytes(self, plan: FilePlan) -> bytes | None:
        """The file's footer with its length and magic (the tail pyarrow reads first),
        from the cache: no request. ``None`` on local disk, where footers cost no request."""
        sparse = plan.sparse
        if sparse is None:
            return None
        size = sparse.size()
        need = int(plan.metadata.serialized_size) + 8
        if need > size or sparse.missing([(size - need, size)]):
            return None
        return sparse.read_at(size - need, size)

    def unit(
        self, plan: FilePlan, row_groups: Sequence[int], *, columns: Sequence[str]
    ) -> ReadUnit:
        """One read unit over the given row groups of an opened file."""
        md = plan.metadata
        wanted = set(columns)
        leaf_idx = [
            j
            for j in range(md.num_columns)
            if _top_name(md.schema.column(j).path, wanted) is not None
        ]
        ranges: list[tuple[int, int]] = []
        cost = rows = 0
        for rg in row_groups:
            meta = md.row_group(rg)
            rg_cost = 0
            for j in leaf_idx:
                ranges.append(_chunk_range(meta.column(j)))
                rg_cost += meta.column(j).total_uncompressed_size
            cost += max(rg_cost, 1)
            rows += meta.num_rows
        plan.remaining += 1
        return ReadUnit(plan, list(row_groups), merge_ranges(ranges), cost, rows, True)

    def units(
        self,
        plan: FilePlan,
        *,
        columns: Sequence[str],
        filter: pc.Expression | None,
        schema: pa.Schema,
        unit_bytes: int = UNIT_BYTES,
    ) -> list[ReadUnit]:
        """Split a file into read units over the row groups the filter may match."""
        fragment = plan.fragment
        if filter is not None:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                fragment = fragment.subset(filter=filter, schema=schema)
        row_groups = [rg.id for rg in fragment.row_groups]
        md = plan.metadata
        wanted = set(columns)
        leaf_idx = [
            j
            for j in range(md.num_columns)
            if _top_name(md.schema.column(j).path, wanted) is not None
        ]
        units: list[ReadUnit] = []
        group: list[int] = []
        ranges: list[tuple[int, int]] = []
        cost = rows = 0
        for rg in row_groups:
            meta = md.row_group(rg)
            rg_cost = 0
            for j in leaf_idx:
                col = meta.column(j)
                ranges.append(_chunk_range(col))
                rg_cost += col.total_uncompressed_size
            group.append(rg)
            cost += max(rg_cost, 1)
            rows += meta.num_rows
            if cost >= unit_bytes:
                units.append(ReadUnit(plan, group, merge_ranges(ranges), cost, rows, False))
                group, ranges, cost, rows = [], [], 0, 0
        if group or not units:
            units.append(ReadUnit(plan, group, merge_ranges(ranges), cost, rows, False))
        units[-1].last = True
        plan.remaining = len(units)
        return units

    def read(
        self,
        unit: ReadUnit,
        *,
        columns: Sequence[str],
        filter: pc.Expression | None,
        schema: pa.Schema,
        use_threads: bool = True,
    ) -> pa.Table:
        """Fetch a unit's column chunks (remote) and decode them into a table."""
        plan = unit.plan
        url = self.location.url_of(plan.entry.path)
        sparse = plan.sparse
        fetched: list[tuple[int, int]] = []
        try:
            if not unit.row_groups:
                return schema.empty_table().select(list(columns))
            if sparse is not None:
                fetched = sparse.missing(unit.ranges)
                if fetched:
                    data = fetch_ranges(self.location.fs, plan.entry.path, fetched, url=url)
                    sparse.add(fetched, data)
                    sparse.requests += len(fetched)
            fragment = plan.fragment.subset(row_group_ids=unit.row_groups)
            try:
                try:
                    return fragment.to_table(
                        schema=schema, columns=list(columns), filter=filter,
                        use_threads=use_threads,
                    )
                except pa.ArrowNotImplementedError:
                    if filter is None:
                        raise
                    # The file's physical types differ from the dataset's (string_view in
                    # files written by delta-rs): filter after the cast to the dataset schema.
                    table = fragment.to_table(
                        schema=schema, columns=list(columns), use_threads=use_threads
                    )
                    return table.filter(filter)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
                # pyarrow reports damaged pages (bad thrift headers, ...) as OSError
                if isinstance(exc, (FileNotFoundError, LakekitError)):
                    raise
                if isinstance(exc, pa.ArrowNotImplementedError) and "cast" in str(exc):
                    raise SchemaMismatchError(
                        f"{url}: cannot convert to the dataset schema ({_first_line(exc)})"
                    ) from None
                raise FormatError(f"{url}: cannot decode ({_first_line(exc)})") from None
        finally:
            if sparse is not None:
                sparse.evict(fetched)
            with self._lock:
                plan.remaining -= 1
                done = plan.remaining <= 0
            if done:
                self.release(plan.entry.path)

    def release(self, path: str) -> None:
        """Forget an opened file (its cache and plan)."""
        with self._lock:
            self._plans.pop(path, None)
            if self._handler is not None:
                self._handler.files.pop(path, None)


def _chunk_range(col: Any) -> tuple[int, int]:
    """The byte range of one column chunk (its dictionary page included)."""
    start = col.data_page_offset
    dict_at = col.dictionary_page_offset if col.has_dictionary_page else None
    if dict_at and dict_at < start:
        start = dict_at
    return (start, start + col.total_compressed_size)


def _top_name(path: str, wanted: set[str]) -> str | None:
    if path in wanted:
        return path
    for name in wanted:
        if path.startswith(name + "."):
            return name
    return None


def _check_names(fragment: pads.ParquetFileFragment) -> None:
    """Decode the column names and paths: a damaged footer can hold names that are not
    UTF-8, which pyarrow rejects (``UnicodeDecodeError``) wherever it first decodes them."""
    _ = fragment.physical_schema.names
    schema = fragment.metadata.schema
    for j in range(len(schema)):
        _ = schema.column(j).path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def arrow_schema(plan: FilePlan) -> pa.Schema:
    """The file's arrow schema."""
    return plan.fragment.physical_schema


ReadFn = Callable[[ReadUnit], pa.Table]
