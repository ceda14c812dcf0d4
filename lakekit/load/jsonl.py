"""JSONL / NDJSON (plain, .gz, .zst): block-parsed with pyarrow.json, with a bad-line policy.

A file is read ``block_size`` bytes at a time by a background thread (which also
decompresses), cut at newlines into blocks of about 2 MiB of whole lines, and those are
parsed by ``pyarrow.json.read_json`` a few at a time on a shared thread pool, in order.
Memory stays at a few blocks whatever the size of the file. Only a block that pyarrow
rejects is looked at more closely: it is split in halves until the bad lines are isolated,
which are then named (``on_bad_lines="error"``) or dropped and counted in a
:class:`BadLineTally` (``"skip"``).
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from lakekit.errors import (
    BadRecordError,
    BadRecordsWarning,
    ConfigError,
    FormatError,
    SchemaMismatchError,
    StorageError,
)
from lakekit.storage import retry_call

__all__ = ["BadLineTally", "compression_of", "infer_jsonl_schema", "read_jsonl_batches"]

T = TypeVar("T")

DEFAULT_BLOCK_SIZE = 16 << 20
DEFAULT_MAX_LINE_BYTES = 256 << 20
# pyarrow.json needs ~5x the text it parses at once (outside its memory pool): parse at most
# this much per call, whatever the read size, so memory stays low (blocks of 1-8 MiB parse
# equally fast)
PARSE_SIZE = 2 << 20
_LEAF_LINES = 32          # a failing range this small is checked line by line
_SNIPPET = 80             # characters of a bad line quoted in messages
_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
_CODEC_MARKERS = ("truncated", "inflate", "zlib", "zstd", "decompress", "header check", "gzip")
_WHITESPACE = b" \t\r"    # what pyarrow's JSON parser skips within a line
# first bytes of lines that need a closer look: "n" (JSON null, which crashes pyarrow 26 when
# it starts a parse chunk: apache/arrow#47409) and whitespace (blank, or null after spaces)
_ODD_FIRST = np.zeros(256, dtype=bool)
_ODD_FIRST[[ord("n"), ord(" "), ord("\t"), ord("\r")]] = True
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- bad-line bookkeeping ----------------------------------------------------------------------
@dataclass
class BadLineTally:
    """Counts the lines skipped by one read (``on_bad_lines="skip"``), across files and threads.

    ``first`` is the ``(url, line, reason)`` of the first bad line: the earliest line of the
    file with the lowest ``order`` (see :func:`read_jsonl_batches`); without an order, the
    earliest line of the file that reported first.

    Examples
    --------
    >>> tally = BadLineTally()
    >>> tally.add("events.jsonl", 3, "expected a JSON object, got a JSON array: '[1, 2]'")
    >>> tally.count, tally.first
    (1, ('events.jsonl', 3, "expected a JSON object, got a JSON array: '[1, 2]'"))
    """

    count: int = 0
    first: tuple[str, int, str] | None = None
    _first_key: tuple[float, int] = field(default=(math.inf, 0), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self, url: str, line: int, reason: str, *, n: int = 1, order: int | None = None
    ) -> None:
        """Record ``n`` bad lines of ``url``, the first of them at ``line``."""
        key = (math.inf if order is None else float(order), line)
        with self._lock:
            self.count += n
            comparable = order is not None or (self.first is not None and self.first[0] == url)
            if self.first is None or (comparable and key < self._first_key):
                self.first = (url, line, reason)
                self._first_key = key

    def message(self) -> str:
        """The summary the warning carries."""
        if self.first is None:
            return f"skipped {self.count} bad line(s)"
        url, line, reason = self.first
        return f"skipped {self.count} bad line(s); first at {url}:{line}: {reason}"

    def warn(self, stacklevel: int | None = None) -> None:
        """Warn with :class:`~lakekit.errors.BadRecordsWarning` if any line was skipped.

        The warning points at the first caller outside lakekit unless ``stacklevel`` is given.
        """
        with self._lock:
            count = self.count
        if count:
            warnings.warn(
                BadRecordsWarning(self.message()),
                stacklevel=stacklevel if stacklevel is not None else _user_stacklevel(),
            )


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the innermost frame outside the lakekit package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PKG_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def compression_of(path: str) -> str | None:
    """The compression implied by a file name: ``"gzip"``, ``"zstd"`` or ``None``.

    Examples
    --------
    >>> compression_of("s3://lake/events/part-0.jsonl.gz"), compression_of("a.ndjson.zst")
    ('gzip', 'zstd')
    >>> compression_of("events.jsonl") is None
    True
    """
    name = path.lower()
    if name.endswith(".gz") or name.endswith(".gzip"):
        return "gzip"
    if name.endswith(".zst") or name.endswith(".zstd"):
        return "zstd"
    return None


# -- the byte stream ---------------------------------------------------------------------------
class _Stream(Protocol):
    def readinto(self, buffer: Any, /) -> int: ...
    def close(self) -> None: ...


def _open(
    fs: Any, path: str, url: str, compression: str | None, block_size: int, *,
    fast_gzip: bool = True,
) -> _Stream:
    """The decompressed byte stream of a file: pyarrow's C++ decompressors, or ISA-L for
    gzip when the ``isal`` package is installed (about 3x faster than zlib)."""
    from fsspec.implementations.local import LocalFileSystem

    if compression not in (None, "gzip", "zstd"):
        raise ConfigError(f"{url}: unsupported compression {compression!r} (use gzip or zstd)")
    if isinstance(fs, LocalFileSystem):
        raw: pa.NativeFile = retry_call(lambda: pa.OSFile(path, "rb"), what=url)
    else:
        file = retry_call(lambda: fs.open(path, "rb", cache_type="none"), what=url)
        raw = pa.PythonFile(file, mode="r")
        if compression:
            # decompressors pull small chunks; turn them into few large requests
            raw = pa.BufferedInputStream(raw, buffer_size=max(1 << 20, block_size // 4))
    if compression == "gzip" and fast_gzip:
        try:
            from isal import isal_zlib
        except ImportError:
            pass
        else:
            return _IsalGzipStream(raw, isal_zlib)
    if compression:
        return pa.CompressedInputStream(raw, compression)
    return raw


class _IsalGzipStream:
    """A gzip stream (one or more members) decompressed by ISA-L; a stream that ends
    inside a member raises ``OSError("Truncated compressed stream")`` like pyarrow."""

    def __init__(self, raw: pa.NativeFile, isal_zlib: Any, chunk: int = 1 << 20) -> None:
        self._raw = raw
        self._zlib = isal_zlib
        self._chunk = chunk
        self._inflate = isal_zlib.decompressobj(31)
        self._pending = b""          # compressed bytes not yet fed to the decompressor
        self._started = False
        self._done = False

    def readinto(self, buffer: Any, /) -> int:
        view = memoryview(buffer).cast("B")
        size, filled = len(view), 0
        try:
            while filled < size and not self._done:
                if self._inflate.eof:                 # a member ended: another may follow
                    rest = self._inflate.unused_data or self._raw.read(self._chunk)
                    if not rest:
                        self._done = True
                        break
                    self._inflate = self._zlib.decompressobj(31)
                    self._pending = rest
                if not self._pending:
                    self._pending = self._raw.read(self._chunk)
                    if not self._pending:
                        if not self._started:         # an empty file: no data, no error
                            self._done = True
                            break
                        raise OSError("Truncated compressed stream (gzip)")
                    self._started = True
                out = self._inflate.decompress(self._pending, min(size - filled, self._chunk))
                self._pending = self._inflate.unconsumed_tail
                view[filled : filled + len(out)] = out
                filled += len(out)
        except self._zlib.error as exc:
            raise OSError(f"gzip decompression failed: {exc}") from None
        return filled

    def close(self) -> None:
        self._raw.close()


def _read_error(exc: BaseException, url: str, compression: str | None) -> Exception:
    text = str(exc)
    if compression and any(m in text.lower() for m in _CODEC_MARKERS):
        return FormatError(
            f"{url}: not a complete {compression} stream ({text}); the file is truncated or corrupt"
        )
    return StorageError(f"{url}: read failed ({type(exc).__name__}: {text})")


class _Block:
    """Whole lines of a file: ``data`` starts at line ``first_line`` (1-based) and holds
    ``rows`` lines that are not blank.

    ``unsafe`` is set when a line starts with ``n`` after optional whitespace: such a line
    is never valid (at best ``null``, not an object) and must not reach pyarrow, which
    crashes on a parse chunk that starts with ``null`` (apache/arrow#47409).
    """

    __slots__ = ("buffer", "data", "first_line", "newlines", "rows", "unsafe")

    def __init__(self, buffer: pa.Buffer, first_line: int, newlines: np.ndarray, *,
                 rows: int, unsafe: bool) -> None:
        self.buffer = buffer
        self.data = memoryview(buffer).cast("B")
        self.first_line = first_line
        self.newlines = newlines
        self.rows = rows
        self.unsafe = unsafe

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (exclusive, without the newline) of every line."""
        return _bounds(self.newlines, len(self.data))


def _bounds(newlines: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    ends = newlines
    if size and (len(ends) == 0 or ends[-1] != size - 1):
        ends = np.append(ends, size)
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


@dataclass
class _Scan:
    """Where the lines of a read buffer start, and which are blank or start with ``n``."""

    newlines: np.ndarray
    starts: np.ndarray
    blank: np.ndarray     # starts of blank lines (empty or spaces, tabs, CRs only)
    unsafe: np.ndarray    # starts of lines whose first non-blank byte is "n"


def _scan(buf: pa.Buffer, size: int, scratch: np.ndarray) -> _Scan:
    data = np.frombuffer(buf, dtype=np.uint8, count=size)
    step = len(scratch)
    parts = [
        np.flatnonzero(np.equal(data[at : at + step], 10, out=scratch[: min(step, size - at)]))
        + at
        for at in range(0, size, step)
    ]
    newlines = np.concatenate(parts) if len(parts) != 1 else parts[0]
    starts, ends = _bounds(newlines, size)
    empty = ends == starts
    odd = np.flatnonzero(_ODD_FIRST[data[np.minimum(starts, size - 1)]] & ~empty)
    blank, unsafe = [], []
    for i in odd:
        text = bytes(data[int(starts[i]) : int(ends[i])]).lstrip(_WHITESPACE)
        if not text:
            blank.append(int(starts[i]))
        elif text[:1] == b"n":
            unsafe.append(int(starts[i]))
    blank_starts = np.union1d(starts[empty], np.asarray(blank, dtype=np.int64))
    return _Scan(newlines, starts, blank_starts, np.asarray(unsafe, dtype=np.int64))


def _count_in(sorted_offsets: np.ndarray, start: int, end: int) -> int:
    return int(np.searchsorted(sorted_offsets, end) - np.searchsorted(sorted_offsets, start))


def _split(buf: pa.Buffer, size: int, first_line: int, scan: _Scan,
           parse_size: int) -> Iterator[_Block]:
    """Cut ``buf[:size]`` (whole lines) at newlines into blocks of about ``parse_size``."""
    newlines = scan.newlines
    start = 0
    line_index = 0                                   # newlines before ``start``
    while start < size:
        end = size
        if size - start > parse_size:
            i = int(np.searchsorted(newlines, start + parse_size))
            if i < len(newlines) and newlines[i] + 1 < size:
                end = int(newlines[i]) + 1
        stop = int(np.searchsorted(newlines, end))   # newlines before ``end``
        yield _Block(
            buf.slice(start, end - start),
            first_line + line_index,
            newlines[line_index:stop] - start,
            rows=_count_in(scan.starts, start, end) - _count_in(scan.blank, start, end),
            unsafe=_count_in(scan.unsafe, start, end) > 0,
        )
        start, line_index = end, stop


def _last_newline(view: memoryview, end: int) -> int:
    """One past the last newline in ``view[:end]``, or 0 if there is none."""
    pos, step = end, 1 << 16
    while pos > 0:
        lo = max(0, pos - step)
        found = bytes(view[lo:pos]).rfind(b"\n")
        if found >= 0:
            return lo + found + 1
        pos, step = lo, step * 4
    return 0


def _iter_blocks(
    stream: _Stream, *, url: str, compression: str | None, block_size: int,
    max_line_bytes: int, parse_size: int = PARSE_SIZE,
) -> Generator[_Block, None, None]:
    """Blocks of whole lines, ``block_size`` bytes read at a time and cut into blocks of
    about ``parse_size`` bytes for parsing; closes ``stream`` when done.

    Buffers come from pyarrow's memory pool, which reuses memory from read to read.
    """
    line = 1
    carry = b""
    scratch = np.empty(1 << 20, dtype=bool)
    try:
        eof = False
        while not eof:
            size = len(carry) + block_size
            buf = pa.allocate_buffer(size)
            view = memoryview(buf).cast("B")
            view[: len(carry)] = carry
            filled = len(carry)
            try:
                while filled < size:
                    got = stream.readinto(view[filled:])
                    if not got:
                        eof = True
                        break
                    filled += got
            except OSError as exc:
                raise _read_error(exc, url, compression) from None
            if eof:
                cut = filled
            else:
                cut = _last_newline(view, filled)
                if cut == 0:  # one line longer than the block: read on
                    if filled > max_line_bytes:
                        raise FormatError(
                            f"{url}:{line}: a line longer than {max_line_bytes:,} bytes; is "
                            "this JSON Lines (one JSON object per line)? If so, raise "
                            "max_line_bytes"
                        )
                    carry = bytes(view[:filled])
                    continue
            if cut == 0:
                break
            carry = bytes(view[cut:filled])
            view.release()
            scan = _scan(buf, cut, scratch)
            blocks = _split(buf, cut, line, scan, parse_size)
            line += len(scan.newlines)
            del buf, scan          # only the blocks hold this read's memory now
            yield from blocks
    finally:
        stream.close()


def _prefetch(items: Iterator[T], *, depth: int = 1, name: str = "lakekit-jsonl") -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead."""
    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((0, item)):
                    return
            put((1, None))
        except BaseException as exc:
            put((2, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, item = q.get(timeout=1.0)
            except queue.Empty:
                if not thread.is_alive() and q.empty():
                    raise RuntimeError("the JSONL reader thread stopped unexpectedly") from None
                continue
            if kind == 0:
                yield item
            elif kind == 1:
                return
            else:
                raise item
    finally:
        stop.set()
        while not q.empty():
            try:
                q.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=60)


# -- parsing -----------------------------------------------------------------------------------
def _parse_type(t: pa.DataType) -> pa.DataType:
    """A type pyarrow.json can parse into, from which ``t`` is reached by a cast."""
    if pa.types.is_dictionary(t):
        return _parse_type(t.value_type)
    if pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_duration(t):
        return pa.int64()
    if pa.types.is_float16(t):
        return pa.float64()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(_parse_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_parse_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_parse_type(f.type)) for f in t])
    return t


class _Parser:
    """Parses bytes of whole lines into a table of ``target`` (or inferred, if None)."""

    def __init__(self, target: pa.Schema | None, *, url: str) -> None:
        self.target = target
        self.url = url
        self._infer_options = pj.ParseOptions()
        self._explicit_options: pj.ParseOptions | None = None
        if target is not None:
            parse_schema = pa.schema(
                [pa.field(f.name, _parse_type(f.type), nullable=True) for f in target]
            )
            self._explicit_options = pj.ParseOptions(
                explicit_schema=parse_schema, unexpected_field_behavior="ignore"
            )
            try:
                self._read(b"{}\n", self._explicit_options)
            except pa.ArrowNotImplementedError as exc:
                raise ConfigError(f"{url}: the schema cannot be read from JSON: {exc}") from None

    def _read(self, data: Any, options: pj.ParseOptions) -> pa.Table:
        # one block per call, on the calling thread: blocks are parsed in parallel by the
        # parse pool, which scales better than pyarrow's threads within one small call
        return pj.read_json(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pj.ReadOptions(use_threads=False,
                                        block_size=min(max(len(data) + 1, 1 << 16), 2**31 - 1)),
            parse_options=options,
        )

    def parse(self, data: Any, *, rows: int) -> pa.Table:
        """Parse ``data``, ``rows`` non-blank lines; raise one of ``_PARSE_ERRORS`` if a
        line does not fit."""
        _check_utf8(data)      # pyarrow.json passes invalid UTF-8 through into strings
        if self._explicit_options is None:
            table = self._read(data, self._infer_options)
            if _has_list(table.schema):
                # inferred lists with leading nulls come out corrupt (apache/arrow#51305);
                # the same types given explicitly parse correctly
                table = self._read(data, pj.ParseOptions(explicit_schema=table.schema))
        else:
            table = self._read(data, self._explicit_options)
        if table.num_rows != rows:
            # pyarrow reads '{"a": 1}{"a": 2}' on one line as two rows
            raise pa.ArrowInvalid("more than one JSON value on a line")
        return table if self._explicit_options is None else self._conform(table)

    def _conform(self, table: pa.Table) -> pa.Table:
        target = self.target
        assert target is not None
        if not len(target):
            return table.select([])               # no columns, but the row count
        rows = table.num_rows
        columns = [
            table.column(f.name) if f.name in table.column_names else pa.nulls(rows, f.type)
            for f in target
        ]
        for f, col in zip(target, columns, strict=True):
            if not f.nullable and col.null_count:
                raise pa.ArrowInvalid(f"column {f.name!r} is required but missing or null")
        if not rows:
            return target.empty_table()
        out = pa.Table.from_arrays(columns, names=target.names)
        return out if out.schema.equals(target, check_metadata=True) else out.cast(target)

    def single_column(self, name: str) -> _Parser:
        assert self.target is not None
        return _Parser(pa.schema([self.target.field(name)]), url=self.url)


def _check_utf8(data: Any) -> None:
    """Raise ``ArrowInvalid`` unless ``data`` is valid UTF-8 (vectorised, ~10 GB/s)."""
    buf = pa.py_buffer(data)
    offsets = pa.py_buffer(np.array([0, buf.size], dtype=np.int64))
    pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, buf]).validate(full=True)


def _has_list(t: pa.Schema | pa.DataType) -> bool:
    if isinstance(t, pa.Schema):
        return any(_has_list(f.type) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_list(f.type) for f in t)
    return False


def _cast_table(table: pa.Table, target: pa.Schema) -> pa.Table:
    """Conform an inferred table to ``target`` (table fields are a subset or narrower)."""
    columns = []
    for f in target:
        if f.name in table.column_names:
            col = table.column(f.name)
            if not col.type.equals(f.type):
                col = pa.concat_tables(
                    [pa.schema([f]).empty_table(), table.select([f.name])],
                    promote_options="permissive",
                ).column(0)
            columns.append(col)
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=target)


# -- salvage: find the lines pyarrow rejects ---------------------------------------------------
@dataclass
class _Piece:
    """A parsed table; ``lines`` are the (1-based) line numbers of its rows, None = every
    non-blank line of ``block``."""

    table: pa.Table
    block: _Block
    lines: np.ndarray | None = None


@dataclass
class _Bad:
    line: int           # 1-based
    data: bytes         # the raw line
    obj: Any = None     # the decoded JSON value, when it decoded
    reason: str = ""    # filled in when known
    error: str = ""     # what pyarrow said, when it rejected the line alone


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, (int, float)):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return type(value).__name__


def _snippet(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "...")


def _decode(data: bytes) -> tuple[Any, str | None]:
    """The JSON value of a line, or why it is not a JSON object."""
    try:
        obj = json.loads(data)       # like pyarrow, accepts NaN and Infinity
    except UnicodeDecodeError:
        return None, "expected a JSON object, got invalid UTF-8"
    except ValueError as exc:
        detail = (
            f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        )
        return None, f"expected a JSON object, got invalid JSON ({detail})"
    if not isinstance(obj, dict):
        return obj, f"expected a JSON object, got {_json_kind(obj)}"
    return obj, None


_INT_RANGE = {
    pa.int8(): (-(2**7), 2**7), pa.int16(): (-(2**15), 2**15), pa.int32(): (-(2**31), 2**31),
    pa.int64(): (-(2**63), 2**63), pa.uint8(): (0, 2**8), pa.uint16(): (0, 2**16),
    pa.uint32(): (0, 2**32), pa.uint64(): (0, 2**64),
}


def _surely_fits(value: Any, t: pa.DataType) -> bool:
    """True when ``value`` certainly parses as ``t`` (False means: ask pyarrow)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return pa.types.is_boolean(t)
    if isinstance(value, int):
        bounds = _INT_RANGE.get(t)
        if bounds is not None:
            return bounds[0] <= value < bounds[1]
        return pa.types.is_float32(t) or pa.types.is_float64(t)
    if isinstance(value, float):
        return pa.types.is_float32(t) or pa.types.is_float64(t)
    if isinstance(value, str):
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    return False


class _Salvage:
    """Isolates the bad lines of a block pyarrow rejected, parsing the good ranges."""

    def __init__(self, parser: _Parser, block: _Block, *, stop_at_first: bool) -> None:
        self.parser = parser
        self.block = block
        self.stop_at_first = stop_at_first
        self.starts, self.ends = block.bounds()
        self.pieces: list[_Piece] = []
        self.bad: list[_Bad] = []

    def run(self, *, whole_failed: bool) -> None:
        data = np.frombuffer(self.block.buffer, dtype=np.uint8)
        keep = np.ones(len(self.starts), dtype=bool)
        early: list[_Bad] = []
        # blank lines, and lines starting with "n" (never an object; must not reach pyarrow)
        first = data[np.minimum(self.starts, len(data) - 1)]
        odd = np.flatnonzero((self.ends == self.starts) | _ODD_FIRST[first])
        for i in odd:
            raw = self._line(int(i))
            text = raw.lstrip(_WHITESPACE)
            if not text.strip():
                keep[i] = False
            elif text[:1] == b"n":
                keep[i] = False
                obj, why = _decode(raw)
                early.append(_Bad(self.block.first_line + int(i), raw, obj, why or ""))
        idx = np.flatnonzero(keep)
        if early and self.stop_at_first:
            # only lines before the first of those can come first
            idx = idx[idx < early[0].line - self.block.first_line]
        if len(idx):
            self._solve(idx, known_bad=whole_failed and not early)
        self.bad.extend(early)
        self.bad.sort(key=lambda b: b.line)

    def _line(self, i: int) -> bytes:
        return bytes(self.block.data[int(self.starts[i]) : int(self.ends[i])])

    def _bytes(self, idx: np.ndarray) -> Any:
        first, last = int(idx[0]), int(idx[-1])
        if last - first == len(idx) - 1:
            return self.block.data[int(self.starts[first]) : int(self.ends[last])]
        return b"\n".join(self._line(int(i)) for i in idx)

    def _done(self) -> bool:
        return self.stop_at_first and bool(self.bad)

    def _solve(self, idx: np.ndarray, *, known_bad: bool = False) -> None:
        if self._done():
            return
        if not known_bad:
            try:
                table = self.parser.parse(self._bytes(idx), rows=len(idx))
            except _PARSE_ERRORS:
                pass
            else:
                self._keep(table, idx)
                return
        if len(idx) <= _LEAF_LINES:
            self._leaf(idx)
            return
        mid = len(idx) // 2
        self._solve(idx[:mid])
        self._solve(idx[mid:])

    def _keep(self, table: pa.Table, idx: np.ndarray) -> None:
        lines = idx + self.block.first_line
        self.pieces.append(_Piece(table, self.block, lines))

    def _leaf(self, idx: np.ndarray) -> None:
        """Check a small failing range line by line (json first, pyarrow when unsure)."""
        good: list[int] = []
        target = self.parser.target
        for i in idx:
            i = int(i)
            raw = self._line(i)
            obj, why = _decode(raw)
            if why is not None:
                self.bad.append(_Bad(self.block.first_line + i, raw, obj, why))
                if self.stop_at_first:
                    break
                continue
            if target is None or all(_surely_fits(obj.get(f.name), f.type) and (
                    f.nullable or obj.get(f.name) is not None) for f in target):
                good.append(i)
                continue
            try:
                self.parser.parse(raw + b"\n", rows=1)
            except _PARSE_ERRORS as exc:
                self.bad.append(_Bad(self.block.first_line + i, raw, obj, error=str(exc)))
                if self.stop_at_first:
                    break
            else:
                good.append(i)
        if not good:
            return
        kept = np.asarray(good, dtype=np.int64)
        try:
            self._keep(self.parser.parse(self._bytes(kept), rows=len(kept)), kept)
            return
        except _PARSE_ERRORS:
            pass
        # one by one: json.loads accepted a line pyarrow rejects (a duplicate key, a lone
        # surrogate, 1e400), or lines that fit alone but not together (inferred types)
        for i in good:
            one = np.asarray([i], dtype=np.int64)
            try:
                self._keep(self.parser.parse(self._bytes(one), rows=1), one)
            except _PARSE_ERRORS as exc:
                raw = self._line(i)
                self.bad.append(_Bad(self.block.first_line + i, raw, _decode(raw)[0],
                                     error=str(exc)))
        self.bad.sort(key=lambda b: b.line)


def _explain(bad: _Bad, parser: _Parser) -> str:
    """Why ``bad`` does not fit the target schema (which column, what was expected)."""
    if bad.reason:
        return f"{bad.reason}: {_snippet(bad.data)}"
    target = parser.target
    obj = bad.obj if isinstance(bad.obj, dict) else {}
    if target is not None:
        for f in target:
            value = obj.get(f.name)
            if value is None and not f.nullable:
                return f"column {f.name!r} is required but missing or null: {_snippet(bad.data)}"
            if _surely_fits(value, f.type):
                continue
            try:
                parser.single_column(f.name).parse(bad.data + b"\n", rows=1)
            except _PARSE_ERRORS:
                shown = json.dumps(value)
                shown = shown if len(shown) <= _SNIPPET else shown[: _SNIPPET - 3] + "..."
                return f"column {f.name!r}: expected {f.type}, got {_json_kind(value)} {shown}"
    detail = re.sub(r"\.? in row \d+$", "", bad.error.removeprefix("JSON parse error: "))
    detail = detail or "it does not fit the schema"
    return f"expected a JSON object that fits the schema, got one that does not ({detail}): " \
        f"{_snippet(bad.data)}"


# -- unification across blocks (schema=None) ---------------------------------------------------
class _Unifier:
    """Widens a running schema block after block (int -> float, null -> any)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema: pa.Schema | None = None

    def add(self, piece: _Piece) -> pa.Table:
        table = piece.table
        if self.schema is None:
            self.schema = table.schema
            return table
        if not table.schema.equals(self.schema):
            try:
                self.schema = pa.unify_schemas(
                    [self.schema, table.schema], promote_options="permissive"
                )
            except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise self._mismatch(piece) from None
        return _cast_table(table, self.schema)

    def _mismatch(self, piece: _Piece) -> SchemaMismatchError:
        assert self.schema is not None
        for f in piece.table.schema:
            if f.name not in self.schema.names:
                continue
            old = self.schema.field(f.name)
            try:
                pa.unify_schemas([pa.schema([old]), pa.schema([f])], promote_options="permissive")
            except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                valid = piece.table.column(f.name).is_valid()
                row = next((i for i, v in enumerate(valid.to_pylist()) if v), 0)
                line = _row_line(piece, row)
                where = f"{self.url}:{line}" if line else self.url
                return SchemaMismatchError(
                    f"{where}: column {f.name!r} is {f.type} here but {old.type} in earlier "
                    "lines; these types cannot be reconciled (pass an explicit schema)"
                )
        return SchemaMismatchError(
            f"{self.url}: the types inferred for its blocks cannot be reconciled"
        )


def _row_line(piece: _Piece, row: int) -> int | None:
    if piece.lines is not None:
        return int(piece.lines[row]) if row < len(piece.lines) else None
    block = piece.block
    starts, ends = block.bounds()
    seen = 0
    for i in range(len(starts)):
        if bytes(block.data[int(starts[i]) : int(ends[i])]).strip(_WHITESPACE):
            if seen == row:
                return block.first_line + i
            seen += 1
    return None


# -- the public readers ------------------------------------------------------------------------
def _pieces(
    block: _Block, parser: _Parser, *, url: str, on_bad_lines: str, tally: BadLineTally | None,
    order: int | None,
) -> list[_Piece]:
    """Parse one block; isolate and handle bad lines if pyarrow rejects it."""
    whole_failed = False
    if not block.unsafe:
        try:
            return [_Piece(parser.parse(block.buffer, rows=block.rows), block)]
        except _PARSE_ERRORS:
            whole_failed = True
    salvage = _Salvage(parser, block, stop_at_first=on_bad_lines == "error")
    salvage.run(whole_failed=whole_failed)
    if salvage.bad:
        first = salvage.bad[0]
        if on_bad_lines == "error":
            raise BadRecordError(
                f"{url}:{first.line}: {_explain(first, parser)} "
                "(pass on_bad_lines='skip' to skip bad lines)"
            )
        if tally is not None:
            tally.add(url, first.line, _explain(first, parser), n=len(salvage.bad), order=order)
    return salvage.pieces


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _parse_pool() -> ThreadPoolExecutor:
    """Threads that parse blocks, shared by every read (as many as pyarrow's CPU pool)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, pa.cpu_count()),
                                       thread_name_prefix="lakekit-jsonl-parse")
        return _POOL


def _ordered_map(fn: Callable[[_Block], T], blocks: Iterator[_Block]) -> Iterator[T]:
    """``map(fn, blocks)`` on the parse pool, a few blocks in flight, results in order."""
    pool = _parse_pool()
    window = max(2, pa.cpu_count())
    pending: deque[Future[T]] = deque()
    try:
        for block in blocks:
            if len(pending) >= window:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, block))
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        wait(pending)


def _check_options(block_size: int, on_bad_lines: str, max_line_bytes: int) -> None:
    if block_size < 1024:
        raise ConfigError(f"block_size must be at least 1024 bytes, got {block_size}")
    if on_bad_lines not in ("error", "skip"):
        raise ConfigError(f"on_bad_lines must be 'error' or 'skip'; got {on_bad_lines!r}")
    if max_line_bytes < 1:
        raise ConfigError(f"max_line_bytes must be positive, got {max_line_bytes}")


def read_jsonl_batches(
    fs: Any,
    path: str,
    *,
    url: str,
    compression: str | None,
    schema: pa.Schema | None,
    columns: Sequence[str] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    on_bad_lines: Literal["error", "skip"] = "error",
    tally: BadLineTally | None = None,
    order: int | None = None,
    use_threads: bool = True,
    prefetch: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[pa.RecordBatch]:
    """Stream a JSONL file (plain, gzip or zstd) as record batches, one block at a time.

    Parameters
    ----------
    fs, path
        An fsspec filesystem and the path on it.
    url
        A credential-free name of the file for messages.
    compression
        ``"gzip"``, ``"zstd"`` or ``None`` (see :func:`compression_of`).
    schema
        The target schema: every batch has exactly this schema (restricted to ``columns``);
        fields missing from a line are null and other fields are ignored. A value must be
        of its column's JSON type (a number for numeric columns, a string for string,
        date and timestamp columns, ...); one that is not makes its line bad. ``None``
        infers types block by block and widens them as the file goes on (int to float,
        null to anything); later batches may then be wider than earlier ones, and types
        that cannot be reconciled raise :class:`~lakekit.errors.SchemaMismatchError`.
    columns
        Only these columns are returned, in this order; other fields are not converted.
    block_size
        Bytes of (decompressed) text parsed at a time; about three blocks are in memory.
    on_bad_lines
        ``"error"`` raises :class:`~lakekit.errors.BadRecordError` naming the file, the
        1-based line and what was expected; ``"skip"`` drops bad lines and counts them in
        ``tally``. A bad line is one that is not a JSON object, or (with a schema) one with a
        value that does not fit its column's type. Blank lines are not bad.
    tally
        Collects skipped lines across the files of one read (call ``tally.warn()`` at the end).
    order
        The file's position in the read, so that ``tally.first`` is deterministic when
        files are read concurrently.
    use_threads
        Parse several blocks at once on a pool shared by all reads (as many threads as
        ``pyarrow.cpu_count()``); ``False`` parses on the calling thread.
    prefetch
        Read and decompress the next block in a background thread while parsing.
    max_line_bytes
        Longest line accepted; a longer one raises :class:`~lakekit.errors.FormatError`.

    Raises
    ------
    BadRecordError
        A bad line, with ``on_bad_lines="error"``.
    FormatError
        A truncated or corrupt ``.gz`` / ``.zst`` stream, or an over-long line.

    Examples
    --------
    >>> import fsspec, pyarrow as pa
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe("/doc/events.jsonl", b'{"id": 1, "kind": "view"}\\n{"id": 2}\\n')
    >>> batches = read_jsonl_batches(fs, "/doc/events.jsonl", url="memory://doc/events.jsonl",
    ...                              compression=None, schema=pa.schema([("id", pa.int64())]))
    >>> pa.Table.from_batches(list(batches)).to_pydict()
    {'id': [1, 2]}
    """
    _check_options(block_size, on_bad_lines, max_line_bytes)
    target: pa.Schema | None = None
    names = list(columns) if columns is not None else None
    if isinstance(columns, str):
        raise ConfigError("columns must be a list of names, not a string")
    if schema is not None:
        if names is not None:
            unknown = [c for c in names if c not in schema.names]
            if unknown:
                raise ConfigError(f"{url}: column(s) {unknown} are not in the schema")
            target = pa.schema([schema.field(c) for c in names], metadata=schema.metadata)
        else:
            target = schema
    parser = _Parser(target, url=url)
    unifier = _Unifier(url) if target is None else None
    stream = _open(fs, path, url, compression, block_size)
    blocks: Iterator[_Block] = _iter_blocks(
        stream, url=url, compression=compression, block_size=block_size,
        max_line_bytes=max_line_bytes,
    )
    if prefetch:
        blocks = _prefetch(blocks)

    def parse(block: _Block) -> list[_Piece]:
        return _pieces(block, parser, url=url, on_bad_lines=on_bad_lines, tally=tally,
                       order=order)

    parsed = _ordered_map(parse, blocks) if use_threads else map(parse, blocks)
    try:
        for pieces in parsed:
            for piece in pieces:
                table = piece.table if unifier is None else unifier.add(piece)
                if names is not None and unifier is not None:
                    table = _select(table, names)
                yield from table.to_batches()
    finally:
        for it in (parsed, blocks):
            close = getattr(it, "close", None)
            if close is not None:
                close()


def _select(table: pa.Table, names: list[str]) -> pa.Table:
    if not names:
        return table.select([])
    return pa.Table.from_arrays(
        [table.column(n) if n in table.column_names else pa.nulls(table.num_rows) for n in names],
        names=names,
    )


def infer_jsonl_schema(
    fs: Any,
    path: str,
    *,
    url: str,
    compression: str | None,
    sample_bytes: int = 1 << 20,
    max_sample_bytes: int = 16 << 20,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> pa.Schema:
    """Infer the schema of a JSONL file from its first ``sample_bytes`` (whole lines).

    Lines that are not JSON objects are left out of the inference (reading the file
    reports them as its ``on_bad_lines`` says); types that conflict within the sample raise
    :class:`~lakekit.errors.SchemaMismatchError` naming the line and column. Columns that
    are null throughout the sample (sparse fields) take their type from the next lines
    that have a value, looking up to ``max_sample_bytes`` into the file; past that they
    stay of type null. A file with no rows in the sample has an empty schema.

    Examples
    --------
    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe("/doc/s.jsonl", b'{"id": 1, "price": null}\\n{"id": 2, "price": 9.5}\\n')
    >>> infer_jsonl_schema(fs, "/doc/s.jsonl", url="memory://doc/s.jsonl", compression=None)
    id: int64
    price: double
    """
    if sample_bytes < 1024:
        raise ConfigError(f"sample_bytes must be at least 1024, got {sample_bytes}")
    stream = _open(fs, path, url, compression, sample_bytes)
    blocks = _iter_blocks(stream, url=url, compression=compression, block_size=sample_bytes,
                          max_line_bytes=max_line_bytes, parse_size=sample_bytes)
    parser = _Parser(None, url=url)
    try:
        block = next(blocks, None)
        if block is None:
            return pa.schema([])
        unifier = _Unifier(url)
        for piece in _pieces(block, parser, url=url, on_bad_lines="skip", tally=None,
                             order=None):
            unifier.add(piece)
        schema = unifier.schema if unifier.schema is not None else pa.schema([])
        seen = len(block.data)
        while seen < max_sample_bytes and any(pa.types.is_null(f.type) for f in schema):
            block = next(blocks, None)
            if block is None:
                break
            seen += len(block.data)
            schema = _resolve_nulls(schema, block, parser)
        return schema
    finally:
        blocks.close()


def _resolve_nulls(schema: pa.Schema, block: _Block, parser: _Parser) -> pa.Schema:
    """Type the null columns of ``schema`` from a later block (other columns stay)."""
    if block.unsafe:
        return schema
    try:
        later = parser.parse(block.buffer, rows=block.rows).schema
    except _PARSE_ERRORS:
        return schema                     # bad lines are reported when the file is read
    fields = []
    for f in schema:
        i = later.get_field_index(f.name)
        if pa.types.is_null(f.type) and i >= 0 and not pa.types.is_null(later.field(i).type):
            f = f.with_type(later.field(i).type)
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)
