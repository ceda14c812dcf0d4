"""A user-written fsspec filesystem for the loader tests: objects live in a dict, every byte
served is counted (per path and in total), and latency or failures can be injected.

It is deliberately written from scratch on ``fsspec.AbstractFileSystem`` (no s3fs, no
mocks) so the tests exercise lakekit the way a user's own filesystem would.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

__all__ = ["BlobFS", "parquet_bytes"]


def parquet_bytes(table: pa.Table, **write_kwargs: Any) -> bytes:
    """``table`` serialised as a parquet file."""
    buf = io.BytesIO()
    pq.write_table(table, buf, **write_kwargs)
    return buf.getvalue()


class BlobFS(AbstractFileSystem):
    """Objects in a dict; counts bytes served; optional latency and injected failures.

    ``fail(n, exc)`` makes the next ``n`` reads (``cat_file`` / ranged reads) raise ``exc``
    (a zero-argument factory or an exception instance); ``delay`` is a function of the path
    giving seconds to sleep before each read.
    """

    protocol = "blobfs"
    root_marker = ""
    cachable = False  # a fresh instance (fresh counters) every time

    def __init__(self, delay: Callable[[str], float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.blobs: dict[str, bytes] = {}
        self.delay = delay
        self._lock = threading.Lock()
        self._fail_left = 0
        self._fail_after = 0
        self._fail_exc: Callable[[], BaseException] | None = None
        self.reset()

    # -- arranging ---------------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> str:
        path = self._strip_protocol(path)
        self.blobs[path] = bytes(data)
        return path

    def put_table(self, path: str, table: pa.Table, **write_kwargs: Any) -> str:
        return self.put(path, parquet_bytes(table, **write_kwargs))

    def fail(self, n: int, exc: BaseException | Callable[[], BaseException], *,
             after: int = 0) -> None:
        """The next ``n`` reads, after ``after`` more successful ones, raise ``exc``."""
        with self._lock:
            self._fail_left = n
            self._fail_after = after
            self._fail_exc = exc if callable(exc) and not isinstance(exc, BaseException) else (
                lambda: exc  # type: ignore[return-value]
            )

    def reset(self) -> None:
        """Zero the counters."""
        with self._lock:
            self.bytes_read = 0
            self.read_calls = 0
            self.per_path: Counter[str] = Counter()
            self.requests: list[tuple[str, int, int]] = []

    def bytes_under(self, prefix: str) -> int:
        """Bytes served from paths starting with ``prefix``."""
        prefix = self._strip_protocol(prefix)
        return sum(n for p, n in self.per_path.items() if p.startswith(prefix))

    # -- the filesystem ----------------------------------------------------------------------
    def _entry(self, path: str) -> dict[str, Any] | None:
        if path in self.blobs:
            return {"name": path, "size": len(self.blobs[path]), "type": "file"}
        prefix = path.rstrip("/") + "/" if path else ""
        if any(k.startswith(prefix) for k in self.blobs):
            return {"name": path, "size": 0, "type": "directory"}
        return None

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        entry = self._entry(path)
        if entry is None:
            raise FileNotFoundError(path)
        return entry

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        if path in self.blobs:
            out = [self._entry(path)]
        else:
            prefix = path + "/" if path else ""
            names = {prefix + k[len(prefix):].split("/", 1)[0]
                     for k in self.blobs if k.startswith(prefix)}
            if not names:
                raise FileNotFoundError(path)
            out = [self._entry(n) for n in sorted(names)]
        return out if detail else [o["name"] for o in out]  # type: ignore[index]

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        with self._lock:
            self.read_calls += 1
            skip = self._fail_after > 0
            if skip:
                self._fail_after -= 1
            failing = self._fail_left > 0 and not skip
            if failing:
                self._fail_left -= 1
                exc = self._fail_exc() if self._fail_exc else OSError("injected")
        if failing:
            raise exc
        if self.delay is not None:
            time.sleep(self.delay(path))
        if path not in self.blobs:
            raise FileNotFoundError(path)
        blob = self.blobs[path]
        size = len(blob)
        s = 0 if start is None else (start if start >= 0 else max(0, size + start))
        e = size if end is None else (end if end >= 0 else size + end)
        data = blob[s:e]
        with self._lock:
            self.bytes_read += len(data)
            self.per_path[path] += len(data)
            self.requests.append((path, s, s + len(data)))
        return data

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> AbstractBufferedFile:
        if mode != "rb":
            raise NotImplementedError("BlobFS is read-only through open(); use put()")
        path = self._strip_protocol(path)
        if path not in self.blobs:
            raise FileNotFoundError(path)
        return AbstractBufferedFile(
            self, path, mode, block_size=block_size or 1 << 20,
            cache_type=kwargs.get("cache_type", "readahead"), cache_options=cache_options,
            size=len(self.blobs[path]),
        )
