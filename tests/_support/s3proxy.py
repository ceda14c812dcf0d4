"""A forwarding HTTP proxy in front of the moto S3 server: it counts what every process
fetched and, on request, injects S3's failures from a seeded schedule.

Every request is forwarded unchanged to the S3 server (moto does not check signatures,
so the ``Host`` header signed for the proxy is fine); each response's body bytes are
counted per object key. Point ``storage_options`` at :attr:`CountingProxy.endpoint_url`
(or use :meth:`CountingProxy.options`) and every request of every process goes through it.

Faults (:func:`fault_proxy`)
----------------------------
Requests are sorted into kinds (:data:`KINDS`): ``get_range`` (GET with a ``Range``),
``get`` (a whole object), ``head``, ``list`` (GET of a bucket), ``put``, ``cput`` (a
conditional PUT, ``If-None-Match``), ``delete`` and ``post`` (multi-object delete,
multipart uploads). A :class:`FaultSchedule` gives, per kind, the probability of each
fault (:data:`FAULTS`):

``slowdown``
    503 with S3's ``SlowDown`` XML error body; nothing reaches the server.
``internal``
    500 with S3's ``InternalError`` XML error body; nothing reaches the server.
``reset``
    the connection is reset (TCP RST) before anything is forwarded.
``reset_after``
    the request is forwarded and applied by the server, then the connection is reset
    instead of answering: the ambiguous case of a write whose response was lost.
``truncate``
    the response announces its full ``Content-Length`` but only part of the body is sent
    before the connection is closed (requests with a response body only: GET, LIST).
``stall``
    the request is held ``stall_s`` seconds (bounded: at most :data:`MAX_STALL_S`), then
    forwarded and answered normally.

Replay: whether the ``n``-th request of a kind gets a fault, and which, is drawn from a
RNG seeded with ``(seed, kind, n)`` alone, and ``max_faults`` caps the faults of the whole
run. So the same seed and the same sequence of requests (per kind) replay the same faults.
With one client issuing requests one after another, the sequence — and so every fault —
is the same from run to run. With concurrent clients (thread pools, several processes),
the ``n``-th request of a kind still gets the same decision, but *which* request is the
``n``-th depends on arrival order, which the scheduler decides: the same faults are
injected (by kind and position), not necessarily into the same objects. The record
(:attr:`CountingProxy.faults`) says what was hit in this run.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FAULTS", "KINDS", "MAX_STALL_S", "CountingProxy", "Fault", "FaultSchedule",
           "Request", "counting_proxy", "fault_proxy", "kind_of"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}

KINDS = ("get_range", "get", "head", "list", "put", "cput", "delete", "post")
FAULTS = ("slowdown", "internal", "reset", "reset_after", "truncate", "stall")
MAX_STALL_S = 10.0
_BODY_KINDS = {"get_range", "get", "list"}   # responses with a body worth truncating


@dataclass(frozen=True)
class Request:
    """One forwarded request: method, object key (``bucket/key``), Range header, bytes."""

    method: str
    key: str
    range: str | None
    nbytes: int


@dataclass(frozen=True)
class Fault:
    """One injected fault: the request's kind and its position ``seq`` among that kind's
    requests (0-based), the request (method, ``bucket/key``, Range), and the fault."""

    kind: str
    seq: int
    method: str
    key: str
    range: str | None
    fault: str


@dataclass(frozen=True)
class FaultSchedule:
    """Per kind, the probability of each fault; ``max_faults`` caps the faults of a run.

    ``rates={"get_range": {"slowdown": 0.1, "truncate": 0.05}, "list": {"internal": 0.2}}``;
    ``"*"`` as a kind applies to every kind without its own entry. A request gets at most
    one fault; the probabilities of one kind must add up to at most 1. The first ``first``
    requests of each kind are never faulted (to hit the middle of a stream, say). With
    ``match`` (a regular expression), only requests whose ``bucket/key`` it matches are
    faulted, and only they count in the sequence of their kind.
    """

    rates: Mapping[str, Mapping[str, float]]
    max_faults: int | None = None
    stall_s: float = 2.0
    first: int = 0
    match: str | None = None


    def __post_init__(self) -> None:
        for kind, faults in self.rates.items():
            if kind != "*" and kind not in KINDS:
                raise ValueError(f"unknown request kind {kind!r}; one of {KINDS}")
            unknown = set(faults) - set(FAULTS)
            if unknown:
                raise ValueError(f"unknown fault(s) {sorted(unknown)}; one of {FAULTS}")
            if sum(faults.values()) > 1 + 1e-9:
                raise ValueError(f"the fault probabilities of {kind!r} add up to more than 1")
        if not 0 <= self.stall_s <= MAX_STALL_S:
            raise ValueError(f"stall_s must be within 0-{MAX_STALL_S} seconds")

    def draw(self, seed: int, kind: str, seq: int) -> str | None:
        """The fault of the ``seq``-th request of ``kind`` (or None): a function of
        ``(seed, kind, seq)`` only."""
        rates = self.rates.get(kind, self.rates.get("*", {}))
        if not rates or seq < self.first:
            return None
        u = random.Random(f"{seed}:{kind}:{seq}").random()
        acc = 0.0
        for fault in FAULTS:                     # a fixed order: the draw is reproducible
            p = rates.get(fault, 0.0)
            if fault == "truncate" and kind not in _BODY_KINDS:
                continue
            acc += p
            if u < acc:
                return fault
        return None


def kind_of(method: str, path: str, headers: Mapping[str, str]) -> str:
    """The kind of an S3 request (see :data:`KINDS`)."""
    parts = urlsplit(path)
    key = parts.path.lstrip("/")
    query = parse_qs(parts.query, keep_blank_values=True)
    if method == "GET":
        if "/" not in key.rstrip("/") or "list-type" in query:
            return "list"
        return "get_range" if headers.get("Range") else "get"
    if method == "HEAD":
        return "head"
    if method == "PUT":
        return "cput" if headers.get("If-None-Match") or headers.get("If-Match") else "put"
    if method == "DELETE":
        return "delete"
    return "post"


def _error_body(code: str, message: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>"
        "</Error>"
    ).encode()


_ERRORS = {
    "slowdown": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal": (500, "Internal Server Error", "InternalError",
                 "We encountered an internal error. Please try again."),
}


class CountingProxy:
    """The running proxy: its endpoint, the requests it forwarded (since :meth:`reset`)
    and, with a schedule, the faults it injected (:attr:`faults`)."""

    def __init__(self, upstream: str, *, seed: int = 0,
                 schedule: FaultSchedule | None = None) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._faults: list[Fault] = []
        self._seen: Counter[str] = Counter()
        self.seed = seed
        self.schedule = schedule
        self.enabled = True           # False: forward everything, draw nothing
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def finish(self) -> None:
                with contextlib.suppress(OSError):   # the connection was reset on purpose
                    super().finish()

            def _reset(self) -> None:
                """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                key = urlsplit(self.path).path.lstrip("/")
                kind = kind_of(self.command, self.path, self.headers)
                fault = proxy._draw(kind, self.command, key, self.headers.get("Range"))
                if fault in _ERRORS:
                    status, reason, code, message = _ERRORS[fault]  # type: ignore[index]
                    error = _error_body(code, message, "/" + key)
                    self.send_response(status, reason)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(error)
                    return
                if fault == "reset":
                    self._reset()
                    return
                if fault == "stall":
                    assert proxy.schedule is not None
                    time.sleep(proxy.schedule.stall_s)
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "keep-alive")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                if fault == "reset_after":          # applied upstream; the answer is lost
                    self._reset()
                    return
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                length_out = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length_out or str(len(data)))
                if fault == "truncate" and len(data) > 1:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                proxy._record(Request(self.command, key, self.headers.get("Range"), len(data)))

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)   # shutdown() within 50 ms

    def _draw(self, kind: str, method: str, key: str, range_: str | None) -> str | None:
        with self._lock:
            schedule = self.schedule
            if schedule is not None and schedule.match and not re.search(schedule.match, key):
                return None
            seq = self._seen[kind]
            self._seen[kind] += 1
            if schedule is None or not self.enabled:
                return None
            if schedule.max_faults is not None and len(self._faults) >= schedule.max_faults:
                return None
            fault = schedule.draw(self.seed, kind, seq)
            if fault is not None:
                self._faults.append(Fault(kind, seq, method, key, range_, fault))
            return fault

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[Request]:
        """The requests answered in full (faulted ones are in :attr:`faults`)."""
        with self._lock:
            return list(self._requests)

    @property
    def faults(self) -> list[Fault]:
        """Every fault injected so far, in the order they were drawn."""
        with self._lock:
            return list(self._faults)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"requests": {kind: n}, "faults": {fault: n}, "kind/fault": ...}``: requests
        seen per kind (those the schedule's ``match`` selects), faults per fault, and
        faults per ``"kind/fault"`` pair."""
        with self._lock:
            faults = list(self._faults)
            seen = dict(self._seen)
        return {
            "requests": seen,
            "faults": dict(Counter(f.fault for f in faults)),
            "kind/fault": dict(Counter(f"{f.kind}/{f.fault}" for f in faults)),
        }

    def reset(self) -> None:
        """Forget the requests counted so far (the faults and the sequence stay)."""
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
    with fault_proxy(upstream, schedule=None) as proxy:
        yield proxy


@contextmanager
def fault_proxy(
    upstream: str, *, seed: int = 0,
    schedule: FaultSchedule | Mapping[str, Mapping[str, float]] | None = None,
    max_faults: int | None = None, stall_s: float = 2.0, first: int = 0,
    match: str | None = None,
) -> Iterator[CountingProxy]:
    """A proxy in front of ``upstream`` injecting ``schedule``'s faults, replayable by ``seed``.

    ``schedule`` is a :class:`FaultSchedule` or just its ``rates`` (then ``max_faults``,
    ``stall_s``, ``first`` and ``match`` complete it).
    """
    if schedule is not None and not isinstance(schedule, FaultSchedule):
        schedule = FaultSchedule(schedule, max_faults=max_faults, stall_s=stall_s,
                                 first=first, match=match)
    proxy = CountingProxy(upstream, seed=seed, schedule=schedule)
    proxy._thread.start()
    try:
        yield proxy
    finally:
        proxy._server.shutdown()
        proxy._server.server_close()
        proxy._thread.join(timeout=10)

