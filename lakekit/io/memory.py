"""Giving the memory of a finished read back to the OS.

Allocators keep every freed page for reuse: after reading a piece of several hundred MB
in a worker, pyarrow's pool and glibc's heap hold on to it, the process's RSS ratchets up
to the sum of each allocator's own peak, and an engine that watches RSS (Dask pauses a
worker at 80% of its memory limit) stops giving it work. :func:`return_free_memory` is
called after each piece a worker reads, and by the sink after each batch.
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa

__all__ = ["return_free_memory"]


def return_free_memory() -> None:
    """Give memory freed by a batch back to the OS: glibc's heap (``malloc_trim``, where
    available) and arrow's pool. Allocators otherwise keep every freed page for reuse, and
    the process's RSS ratchets up to the sum of each allocator's own peak."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None
