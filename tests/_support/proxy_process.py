"""The fault proxy (s3proxy.fault_proxy) in a process of its own.

deltalake's ``DeltaTable.is_deltatable`` holds the GIL while it waits for S3, so a proxy
thread in the test process cannot answer a Delta write: the write would hang until
deltalake's timeouts. In its own process the proxy answers whatever the test process does.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ProxyProcess", "proxy_process"]


def _serve(upstream: str, kwargs: dict[str, Any], out: Any, stop: Any) -> None:
    from _support.s3proxy import fault_proxy

    with fault_proxy(upstream, **kwargs) as p:
        out.put(p.options({})["client_kwargs"]["endpoint_url"])
        stop.wait(600)
        out.put([(f.kind, f.fault, f.key) for f in p.faults])


class ProxyProcess:
    """A running proxy process: ``options(storage_options)``; ``faults()`` once, at the end."""

    def __init__(self, endpoint: str, out: Any, stop: Any) -> None:
        self.endpoint = endpoint
        self._out = out
        self._stop = stop

    def options(self, storage_options: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(storage_options.get("client_kwargs") or {})
        return {**storage_options, "client_kwargs": {**kwargs, "endpoint_url": self.endpoint}}

    def faults(self) -> list[tuple[str, str, str]]:
        """The faults injected (kind, fault, bucket/key); stops the proxy."""
        self._stop.set()
        return list(self._out.get(timeout=60))


@contextmanager
def proxy_process(upstream: str, **kwargs: Any) -> Iterator[ProxyProcess]:
    """``fault_proxy(upstream, **kwargs)`` in a spawned process, for the block's duration."""
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(upstream, kwargs, out, stop), daemon=True)
    proc.start()
    try:
        yield ProxyProcess(out.get(timeout=60), out, stop)
    finally:
        stop.set()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
