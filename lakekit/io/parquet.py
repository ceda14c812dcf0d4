"""Byte-range aware parquet reads: footer first, then only the needed column chunks.

On remote filesystems each file is a :class:`SparseFile`: the footer is fetched with one
request, then the byte ranges of the needed column chunks of the needed row groups are
merged into few large requests and fetched concurrently; pyarrow then decodes from those
cached ranges. On local disk pyarrow reads the file itself. In both cases pyarrow.dataset
does the planning work (row-group statistics, partition values, schema evolution).
"""

from __future__ import annotations

import bisect
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
from lakekit.io.pipeline import shared_pool
from lakekit.storage import Location, retry_call

__all__ = ["FilePlan", "ParquetFiles", "ReadUnit", "SparseFile", "filter_columns"]

FOOTER_GUESS = 64 << 10
HOLE_MIN = 16 << 10  # always merge ranges closer than this
HOLE_RATIO = 0.1  # ... or when the gap is under 10% of the merged bytes
MAX_REQUEST = 64 << 20  # largest single merged request
UNIT_BYTES = 64 << 20  # decoded bytes per read unit (a group of row groups)
IO_THREADS = 64  # concurrent range requests on synchronous filesystems


class SparseFile:
    """A read-only file over a remote object that serves reads from prefetched byte ranges.

    Reads that miss the cache fetch the missing bytes with one ranged request each.
    """

    def __init__(self, fs: Any, path: str, size: int, url: str) -> None:
        self._fs = fs
        self._path = path
        self._size = size
        self._url = url
        self._pos = 0
        self._starts: list[int] = []
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self.closed = False
        self.requests = 0

    # -- the file protocol pyarrow's PythonFile needs -----------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        return self._size

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = offset
        elif whence == 1:
            self._pos += offset
        else:
            self._pos = self._size + offset
        return self._pos

    def read(self, n: int = -1) -> bytes:
        start = self._pos
        end = self._size if n is None or n < 0 else min(self._size, start + n)
        if end <= start:
            return b""
        data = self._read_range(start, end)
        self._pos = end
        return data

    def close(self) -> None:
        self.closed = True

    # -- the cache -------------------------------------------------------------------------
    def _read_range(self, start: int, end: int) -> bytes:
        with self._lock:
            i = bisect.bisect_right(self._starts, start) - 1
            if i >= 0:
                s, chunk = self._starts[i], self._chunks[i]
                if s + len(chunk) >= end:
                    return chunk[start - s : end - s]
        missing = self.missing([(start, end)])
        self.add(missing, fetch_ranges(self._fs, self._path, missing, url=self._url))
        self.requests += len(missing)
        pieces = []
        pos = start
        with self._lock:
            while pos < end:
                i = bisect.bisect_right(self._starts, pos) - 1
                s, chunk = self._starts[i], self._chunks[i]
                take = min(end, s + len(chunk))
                pieces.append(chunk[pos - s : take - s])
                pos = take
        return b"".join(pieces)

    def missing(self, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """The parts of ``ranges`` not in the cache."""
        out: list[tuple[int, int]] = []
        with self._lock:
            starts, chunks = self._starts, self._chunks
            for start, end in ranges:
                pos = start
                i = max(0, bisect.bisect_right(starts, pos) - 1)
                while pos < end:
                    while i < len(starts) and starts[i] + len(chunks[i]) <= pos:
                        i += 1
                    if i >= len(starts) or starts[i] >= end:
                        out.append((pos, end))
                        break
                    if starts[i] > pos:
                        out.append((pos, starts[i]))
                    pos = starts[i] + len(chunks[i])
                    i += 1
        return out

    def add(self, ranges: Sequence[tuple[int, int]], data: Sequence[bytes]) -> None:
        """Put fetched ranges into the cache."""
        with self._lock:
            for (start, end), blob in zip(ranges, data, strict=True):
                if len(blob) != end - start:
                    raise FormatError(
                        f"{self._url}: short read at bytes {start}-{end} "
                        f"({len(blob)} bytes); the file may be truncated or changing"
                    )
                i = bisect.bisect_left(self._starts, start)
                self._starts.insert(i, start)
                self._chunks.insert(i, blob)

    def evict(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Drop the cached ranges that start at one of ``ranges``' starts."""
        drop = {start for start, _ in ranges}
        with self._lock:
            keep = [
                (s, c) for s, c in zip(self._starts, self._chunks, strict=True) if s not in drop
            ]
            self._starts = [s for s, _ in keep]
            self._chunks = [c for _, c in keep]

    def cached_bytes(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._chunks)


def fetch_ranges(fs: Any, path: str, ranges: Sequence[tuple[int, int]], *, url: str) -> list[bytes]:
    """Fetch byte ranges of one object concurrently (async filesystems) or in a small pool."""
    if not ranges:
        return []
    if len(ranges) == 1:
        ((start, end),) = ranges
        return [retry_call(lambda: fs.cat_file(path, start=start, end=end), what=url)]
    if getattr(fs, "async_impl", False):

        def batch() -> list[bytes]:
            out = fs.cat_ranges(
                [path] * len(ranges),
                [r[0] for r in ranges],
                [r[1] for r in ranges],
                on_error="raise",
            )
            return list(out)

        return retry_call(batch, what=url)
    return list(
        # leaf range requests on synchronous filesystems (never nested)
        shared_pool("io", max_workers=IO_THREADS).map(
            lambda r: retry_call(lambda: fs.cat_file(path, start=r[0], end=r[1]), what=url),
            ranges,
        )
    )


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge sorted byte ranges whose gaps are small relative to what they hold.

    Examples
    --------
    >>> merge_ranges([(0, 100), (110, 200), (10_000_000, 10_000_100)])
    [(0, 200), (10000000, 10000100)]
    """
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out:
            ps, pe = out[-1]
            gap = start - pe
            if gap <= 0 or (
                (gap <= HOLE_MIN or gap <= HOLE_RATIO * (end - ps)) and end - ps <= MAX_REQUEST
            ):
                out[-1] = (ps, max(pe, end))
                continue
        out.append((start, end))
    return out


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
        self.format = pads.ParquetFileFormat()
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
    ) -> FilePlan:
        """Read the footer of ``entry`` (one request when remote) and make its fragment.

        ``keep_tail=False`` drops the fetched tail once the footer is parsed (when many
        files are opened only for their schema).
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
            if tail:
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
        except (pa.ArrowInvalid, OSError) as exc:
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
                start = col.data_page_offset
                dict_at = col.dictionary_page_offset if col.has_dictionary_page else None
                if dict_at and dict_at < start:
                    start = dict_at
                ranges.append((start, start + col.total_compressed_size))
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


def _top_name(path: str, wanted: set[str]) -> str | None:
    if path in wanted:
        return path
    for name in wanted:
        if path.startswith(name + "."):
            return name
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def arrow_schema(plan: FilePlan) -> pa.Schema:
    """The file's arrow schema."""
    return plan.fragment.physical_schema


ReadFn = Callable[[ReadUnit], pa.Table]
