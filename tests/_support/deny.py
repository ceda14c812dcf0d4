"""An HTTP proxy in front of the moto S3 server that answers ``403 AccessDenied`` for one
key prefix, as S3 does for credentials without permission there (moto's server does not
check credentials); every other request is forwarded unchanged.

A request is denied when its object key (``bucket/key``) or, for a listing, its bucket
plus ``prefix`` parameter, starts with the denied prefix.

The proxy runs in a child process: some deltalake calls (``DeltaTable.is_deltatable``)
hold the GIL while they wait for the response, so a proxy thread in the test process
could not answer them.
"""

from __future__ import annotations

import http.client
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["denying_proxy"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
           b"<Message>Access Denied</Message></Error>")


def _target(raw_path: str) -> str:
    parts = urlsplit(raw_path)
    key = unquote(parts.path).lstrip("/")
    prefix = parse_qs(parts.query).get("prefix", [""])[0]
    return key.rstrip("/") + "/" + prefix if prefix else key


@contextmanager
def denying_proxy(upstream: str, prefix: str) -> Iterator[str]:
    """A proxy to ``upstream`` denying ``prefix`` (``bucket/path``); yields its endpoint URL."""
    proc = subprocess.Popen([sys.executable, __file__, upstream, prefix],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        endpoint = proc.stdout.readline().strip() if ready else ""
        if not endpoint.startswith("http://"):
            raise RuntimeError("the denying proxy did not start within 30 s")
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _serve(upstream: str, prefix: str) -> None:
    host, port = urlsplit(upstream).hostname or "127.0.0.1", urlsplit(upstream).port or 80

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, reason: str, headers: list[tuple[str, str]],
                   body: bytes) -> None:
            self.send_response(status, reason)
            for k, v in headers:
                if k.lower() not in _HOP_BY_HOP:
                    self.send_header(k, v)
            given = [v for k, v in headers if k.lower() == "content-length"]
            head = self.command == "HEAD" and given  # a HEAD's length is the object's
            self.send_header("Content-Length", given[0] if head else str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if _target(self.path).startswith(prefix):
                self._reply(403, "Forbidden", [("Content-Type", "application/xml")], _DENIED)
                return
            conn = http.client.HTTPConnection(host, port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            self._reply(resp.status, resp.reason, resp.getheaders(), data)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    address = server.server_address
    print(f"http://{address[0]!s}:{address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
