"""Instrumented fsspec filesystems for benchmarks: count requests and bytes, add latency.

``InstrumentedFS`` wraps the local filesystem but is *not* a LocalFileSystem, so every
reader treats it as a remote store: each ranged read is one request.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem


class InstrumentedFS(AbstractFileSystem):
    """A local-disk-backed filesystem that counts requests / bytes and sleeps per request."""

    protocol = "bench"
    cachable = False

    def __init__(self, latency: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latency = latency
        self._local = LocalFileSystem()
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.listings = 0

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.bytes = 0
            self.listings = 0

    def _count(self, nbytes: int, listing: bool = False) -> None:
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            self.requests += 1
            self.bytes += nbytes
            self.listings += listing

    @classmethod
    def _strip_protocol(cls, path: str) -> str:  # type: ignore[override]
        path = str(path)
        if path.startswith("bench://"):
            path = path[len("bench://"):]
        return path.rstrip("/") or "/"

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        self._count(0, listing=True)
        return self._local.ls(path, detail=detail)

    def info(self, path: str, **kwargs: Any) -> Any:
        self._count(0)
        return self._local.info(path)

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        """A recursive listing as an object store answers it: one request per 1,000 keys
        (S3's ListObjectsV2 page), not one per directory."""
        found = self._local.find(self._strip_protocol(path), maxdepth=maxdepth,
                                 withdirs=withdirs, detail=detail, **kwargs)
        for _ in range(max(1, -(-len(found) // 1000))):
            self._count(0, listing=True)
        return found

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        with open(self._strip_protocol(path), "rb") as f:
            size = f.seek(0, 2)
            start = 0 if start is None else (start if start >= 0 else max(0, size + start))
            end = size if end is None else (end if end >= 0 else size + end)
            f.seek(start)
            data = f.read(max(0, end - start))
        self._count(len(data))
        return data

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:
        return _File(self, path, mode, block_size or 5 * 2**20, cache_options=cache_options,
                     **kwargs)


class _File(AbstractBufferedFile):
    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.cat_file(self.path, start, end)
