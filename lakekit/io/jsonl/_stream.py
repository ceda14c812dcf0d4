"""JSONL byte streams: open (and decompress) a file, cut it at newlines into blocks of
whole lines with their line numbers, and read ahead in a background thread.

Failures in the middle of a remote file: the compressed (or plain) bytes are read through
:class:`~lakekit.io.ranges.ResumableFile`, which retries a failed read with a ranged
request from the first byte it has not delivered yet. The blocks above it are cut at the
last whole line of what was delivered, so a resumed read goes on with the same lines and
line numbers as an unbroken one, never a partial or repeated line. The same holds for
``.gz`` and ``.zst``: the resumption is below the decompressor, at the compressed byte,
so neither restarts from the file's start. Local files are read without retries.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from lakekit._deps import import_if_available
from lakekit.errors import ConfigError, FormatError, LakekitError, StorageError
from lakekit.io.ranges import ResumableFile
from lakekit.storage import retry_call

T = TypeVar("T")
# pyarrow.json needs ~5x the text it parses at once (outside its memory pool): parse at most
# this much per call, whatever the read size, so memory stays low (blocks of 1-8 MiB parse
# equally fast)
PARSE_SIZE = 2 << 20
_CODEC_MARKERS = ("truncated", "inflate", "zlib", "zstd", "decompress", "header check", "gzip")
WHITESPACE = b" \t\r"    # what pyarrow's JSON parser skips within a line
# first bytes of lines that need a closer look: "n" (JSON null, which crashes pyarrow 26 when
# it starts a parse chunk: apache/arrow#47409) and whitespace (blank, or null after spaces)
ODD_FIRST = np.zeros(256, dtype=bool)
ODD_FIRST[[ord("n"), ord(" "), ord("\t"), ord("\r")]] = True


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


def open_stream(
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
        # a failed read resumes at the first byte not yet delivered (see ResumableFile)
        raw = pa.PythonFile(ResumableFile(fs, path, url=url), mode="r")
        if compression:
            # decompressors pull small chunks; turn them into few large requests
            raw = pa.BufferedInputStream(raw, buffer_size=max(1 << 20, block_size // 4))
    if compression == "gzip" and fast_gzip:
        isal_zlib = import_if_available("isal.isal_zlib")
        if isal_zlib is not None:
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
    if isinstance(exc, LakekitError):      # a storage error after retries: already named
        return exc
    text = str(exc)
    if compression and any(m in text.lower() for m in _CODEC_MARKERS):
        return FormatError(
            f"{url}: not a complete {compression} stream ({text}); the file is truncated or corrupt"
        )
    return StorageError(f"{url}: read failed ({type(exc).__name__}: {text})")


class Block:
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
    odd = np.flatnonzero(ODD_FIRST[data[np.minimum(starts, size - 1)]] & ~empty)
    blank, unsafe = [], []
    for i in odd:
        text = bytes(data[int(starts[i]) : int(ends[i])]).lstrip(WHITESPACE)
        if not text:
            blank.append(int(starts[i]))
        elif text[:1] == b"n":
            unsafe.append(int(starts[i]))
    blank_starts = np.union1d(starts[empty], np.asarray(blank, dtype=np.int64))
    return _Scan(newlines, starts, blank_starts, np.asarray(unsafe, dtype=np.int64))


def _count_in(sorted_offsets: np.ndarray, start: int, end: int) -> int:
    return int(np.searchsorted(sorted_offsets, end) - np.searchsorted(sorted_offsets, start))


def _split(buf: pa.Buffer, size: int, first_line: int, scan: _Scan,
           parse_size: int) -> Iterator[Block]:
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
        yield Block(
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


def iter_blocks(
    stream: _Stream, *, url: str, compression: str | None, block_size: int,
    max_line_bytes: int, parse_size: int = PARSE_SIZE,
) -> Generator[Block, None, None]:
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
