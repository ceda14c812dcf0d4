"""Byte ranges of remote files: the sparse cache pyarrow reads from, merged range requests.

A :class:`SparseFile` is a read-only file over a remote object that serves reads from
byte ranges fetched ahead (the footer, then the needed column chunks); :func:`merge_ranges`
turns many small ranges into few large requests; :func:`fetch_ranges` fetches them
concurrently, with lakekit's retries. :class:`ResumableFile` streams a remote file front to
back (JSONL, CSV) and resumes a failed read with a ranged request from the first byte it
has not delivered yet.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from lakekit.errors import FormatError, LakekitError, StorageError
from lakekit.io.pipeline import shared_pool
from lakekit.storage import retry_call

__all__ = ["HOLE_MIN", "HOLE_RATIO", "IO_THREADS", "MAX_REQUEST", "ResumableFile", "SparseFile",
           "fetch_ranges", "merge_ranges"]

HOLE_MIN = 16 << 10  # always merge ranges closer than this
HOLE_RATIO = 0.1  # ... or when the gap is under 10% of the merged bytes
MAX_REQUEST = 64 << 20  # largest single merged request
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
        self._footer_at: int | None = None  # see known_footer
        self._tail_from = size

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

    def read_at(self, start: int, end: int) -> bytes:
        """Bytes ``start``-``end`` (from the cache where they are there)."""
        return self._read_range(start, end)

    # -- the cache -------------------------------------------------------------------------
    def known_footer(self, footer: bytes, *, tail: int) -> None:
        """Serve the file's footer (its last bytes) from ``footer``, read elsewhere.

        A parquet reader opens a file by reading its last ``tail`` bytes at once (pyarrow:
        64 KiB) and uses only the footer at their end. That one read is answered with
        the footer behind zeros, so no request is made for bytes nobody uses; the zeros
        are never cached, and any other read of those bytes fetches them for real.
        """
        start = self._size - len(footer)
        self.add([(start, self._size)], [footer])
        self._footer_at = start
        self._tail_from = max(0, self._size - tail)

    def _read_range(self, start: int, end: int) -> bytes:
        footer_at = self._footer_at
        if (footer_at is not None and end == self._size
                and self._tail_from <= start < footer_at):
            return bytes(footer_at - start) + self._read_range(footer_at, end)
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


class ResumableFile:
    """A remote file read front to back, whose reads survive transient storage errors.

    A read that fails mid-stream (a reset connection, a body cut short, a 5xx once the
    client's own retries are spent) is retried with lakekit's bounded retries
    (:func:`~lakekit.storage.retry_call`): the file is opened again and read from the first
    byte not yet delivered, so the caller sees every byte once, in order, whatever failed
    in between. A read that returns nothing before the file's known size is a truncated
    stream, retried the same way; once the retries are spent the read raises
    :class:`~lakekit.errors.StorageError` naming the file and the byte offset. A file that
    changed in between (another size or ETag) is never resumed: that is a
    :class:`~lakekit.errors.StorageError` too, not a mix of two versions.

    Because the resumption is at the byte, not at a line or a compressed block, it serves
    compressed files too: the decompressor above it never sees the failure.
    """

    def __init__(self, fs: Any, path: str, *, url: str) -> None:
        self._fs = fs
        self._path = path
        self._url = url
        self._pos = 0
        self._file: Any = retry_call(self._open, what=url)
        size = getattr(self._file, "size", None)
        self._size: int | None = size if isinstance(size, int) else None
        self._identity = _identity(self._file)
        self.resumed = 0          # how many times a read was resumed
        self.closed = False

    def _open(self) -> Any:
        return self._fs.open(self._path, "rb", cache_type="none")

    # -- the file protocol pyarrow's PythonFile needs --------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = (self._size - self._pos) if self._size is not None else 1 << 30
        if n == 0:
            return b""
        what = f"{self._url}: reading at byte {self._pos:,}"

        def once() -> bytes:
            try:
                return self._read_once(n)
            except OSError as exc:
                if type(exc).__name__ == "FileExpired":  # s3fs: the ETag it pinned is gone
                    raise StorageError(
                        f"{self._url}: the file changed while it was read (at byte "
                        f"{self._pos:,}); read it again"
                    ) from None
                raise

        try:
            data = retry_call(once, what=what)
        except LakekitError:
            raise
        except OSError as exc:
            raise StorageError(f"{what}: {type(exc).__name__}: {exc}") from None
        self._pos += len(data)
        return data

    def _read_once(self, n: int) -> bytes:
        if self._file is None:                       # a failed read closed it: resume
            with contextlib.suppress(Exception):   # the file's size and ETag afresh
                self._fs.invalidate_cache(self._path)
            file = self._open()
            if _identity(file) != self._identity:   # never the bytes of two versions
                file.close()
                raise StorageError(
                    f"{self._url}: the file changed while it was read (resuming at byte "
                    f"{self._pos:,}); read it again"
                )
            if self._pos:
                file.seek(self._pos)
            self._file = file
            self.resumed += 1
        try:
            data: bytes = self._file.read(n)
            if not data and self._size is not None and self._pos < self._size:
                raise ConnectionResetError(
                    f"the stream ended at byte {self._pos} of {self._size}"
                )
        except BaseException:
            file, self._file = self._file, None
            with contextlib.suppress(Exception):
                file.close()
            raise
        return data

    def close(self) -> None:
        self.closed = True
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None


def _identity(file: Any) -> tuple[Any, ...]:
    """What tells two versions of a file apart: size and, where known, ETag / mtime."""
    details = getattr(file, "details", None) or {}
    tag = details.get("ETag") or details.get("etag") or details.get("mtime") or details.get(
        "LastModified")
    return (getattr(file, "size", None), tag)
