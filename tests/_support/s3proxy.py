"""A counting HTTP proxy in front of the moto S3 server: what readers in other processes
(Ray and Dask workers) fetched, observed from the test process.

Every request is forwarded unchanged to the S3 server (moto does not check signatures,
so the ``Host`` header signed for the proxy is fine); each response's body bytes are
counted per object key. Point ``storage_options`` at :attr:`CountingProxy.endpoint_url`
and every request of every process goes through it.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CountingProxy", "Request", "counting_proxy"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class Request:
    """One forwarded request: method, object key (``bucket/key``), Range header, bytes."""

    method: str
    key: str
    range: str | None
    nbytes: int


class CountingProxy:
    """The running proxy: its endpoint, and the requests it forwarded (since :meth:`reset`)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "keep-alive")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                length_out = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length_out or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                proxy._record(Request(self.command, urlsplit(self.path).path.lstrip("/"),
                                      self.headers.get("Range"), len(data)))

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    def bytes_under(self, prefix: str) -> int:
        """Body bytes served for object keys starting with ``prefix`` (``bucket/path``)."""
        return sum(r.nbytes for r in self.requests if r.key.startswith(prefix))

    def options(self, storage_options: dict[str, Any]) -> dict[str, Any]:
        """``storage_options`` pointed at the proxy."""
        client = dict(storage_options.get("client_kwargs") or {})  # type: ignore[call-overload]
        client["endpoint_url"] = self.endpoint_url
        return {**storage_options, "client_kwargs": client}


@contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    """A :class:`CountingProxy` forwarding to ``upstream``, for the duration of the block."""
    proxy = CountingProxy(upstream)
    proxy._thread.start()
    try:
        yield proxy
    finally:
        proxy._server.shutdown()
        proxy._server.server_close()
        proxy._thread.join(timeout=10)
