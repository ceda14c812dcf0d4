"""The sink's memory hygiene: glibc arenas, and a pyarrow pool that gives freed pages back
at once, so that RSS follows the batches held, not allocators' peaks (trimming after each
batch is :func:`lakekit.io.memory.return_free_memory`)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator

import pyarrow as pa

__all__ = ["prompt_arrow_pool", "tune_malloc"]



@functools.cache
def tune_malloc() -> None:
    """Keep glibc from hoarding the memory of freed batches.

    Batches are megabyte-sized chunks that live for a second and are freed by another
    thread; with glibc's defaults every thread gets its own arena, free memory in one is
    not reused by the others, and RSS climbs to several times the batch size. The sink
    caps the arenas at two (process-wide, once) and trims the heap after every batch.
    ``LAKEKIT_SINK_MALLOC=mmap`` also mmaps blocks of 1 MiB and more (lowest memory,
    about a fifth slower); ``LAKEKIT_SINK_MALLOC=default`` changes nothing. No effect
    off glibc.
    """
    mode = os.environ.get("LAKEKIT_SINK_MALLOC", "")
    if mode == "default":
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    if mode == "mmap":
        mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    mallopt(-8, 2)  # M_ARENA_MAX


_POOL_LOCK = threading.Lock()
_POOL_USERS: list[pa.MemoryPool] = []  # the pool to restore, once per running sink


@contextlib.contextmanager
def prompt_arrow_pool() -> Iterator[None]:
    """Make pyarrow allocate from jemalloc, set to give freed pages back at once, while
    any sink runs in this process (the first one in switches, the last one out restores).

    pyarrow's default pool on Linux, mimalloc, keeps the pages of a freed batch for a
    while, and holds 30-40 MB more at the sink's peak. The switch is process-wide; where
    pyarrow was built without jemalloc (macOS, Windows) nothing changes.
    """
    with _POOL_LOCK:
        if _POOL_USERS:
            _POOL_USERS.append(_POOL_USERS[0])
        else:
            try:
                pool = pa.jemalloc_memory_pool()
                pa.jemalloc_set_decay_ms(0)
            except (NotImplementedError, pa.ArrowNotImplementedError):
                pool = None
            if pool is not None:
                _POOL_USERS.append(pa.default_memory_pool())
                pa.set_memory_pool(pool)
        switched = bool(_POOL_USERS)
    try:
        yield
    finally:
        if switched:
            with _POOL_LOCK:
                previous = _POOL_USERS.pop()
                if not _POOL_USERS:
                    pa.set_memory_pool(previous)
