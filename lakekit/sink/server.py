"""The sink's HTTP endpoints: ``/metrics``, ``/livez`` and ``/readyz`` on one port.

A :class:`SinkServer` is a stdlib ``ThreadingHTTPServer`` in a daemon thread, started by
:meth:`~lakekit.KafkaDeltaSink.run` before it connects to Kafka and stopped when
``run()`` returns. It binds at start, so a port already in use is a
:class:`~lakekit.errors.ConfigError` before anything is consumed.

- ``/metrics``: Prometheus text format, from a :class:`~lakekit.sink.metrics.SinkCollector`
  (plus ``prometheus_client``'s process and GC metrics) in a registry of its own.
- ``/livez``: 503 only when the consume loop has not turned for longer than the liveness
  timeout (default ``max(60 s, 3 x max_batch_seconds)``). Time the loop spends waiting for
  its commit does not count: a commit retries a bounded number of times and then stops
  the sink with an error, and a storage call that hangs is ended by the storage client's
  own timeouts. A broker that is down does not stop the loop either (kafka-python
  reconnects while ``poll`` keeps returning), so it never fails liveness.
- ``/readyz``: 200 once the consumer is connected and the group has given this process
  its partitions (an empty assignment counts: a spare replica in a group with more
  members than partitions is healthy); 503 before, and from ``stop()`` / SIGTERM on.

The loop side is a :class:`LoopClock`: two plain attributes the loop writes and the
server thread reads, so the loop pays one ``time.monotonic()`` call per turn.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lakekit._deps import import_optional
from lakekit.errors import ConfigError
from lakekit.sink.metrics import SinkCollector
from lakekit.sink.stats import SinkStats

__all__ = ["LIVENESS_FLOOR", "LoopClock", "SinkServer", "liveness_timeout", "make_server"]

log = logging.getLogger("lakekit.sink")

LIVENESS_FLOOR = 60.0
"""The least time (seconds) the loop may go without turning before ``/livez`` fails."""


def liveness_timeout(max_batch_seconds: float, given: float | None = None) -> float:
    """``given``, or ``max(LIVENESS_FLOOR, 3 x max_batch_seconds)``.

    Examples
    --------
    >>> liveness_timeout(10.0), liveness_timeout(30.0), liveness_timeout(10.0, 5)
    (60.0, 90.0, 5.0)
    """
    return _liveness_timeout(max_batch_seconds, given)


def _liveness_timeout(max_batch_seconds: float, given: float | None) -> float:
    if given is not None:
        if not given > 0:
            raise ConfigError(f"liveness_timeout must be positive seconds, got {given!r}")
        return float(given)
    return max(LIVENESS_FLOOR, 3.0 * max_batch_seconds)


def make_server(port: int | None, host: str, *, liveness_timeout: float | None,
                max_batch_seconds: float, stats: Callable[[], SinkStats],
                info: dict[str, str], clock: LoopClock,
                not_ready: Callable[[], str | None]) -> SinkServer | None:
    """A sink's server (not started yet), or ``None`` without a ``port``; the options are
    checked (and ``prometheus_client`` imported) here, when the sink is built.

    ``info`` gets the lakekit ``version`` added; the other arguments are
    :class:`SinkServer`'s and :class:`~lakekit.sink.metrics.SinkCollector`'s.
    """
    timeout = _liveness_timeout(max_batch_seconds, liveness_timeout)
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"metrics_port must be a port number 0..65535, got {port!r}")
    if not isinstance(host, str) or not host:
        raise ConfigError("metrics_host must be an address such as '0.0.0.0' or '127.0.0.1'")
    from lakekit import __version__

    collector = SinkCollector(stats, {"version": __version__, **info})
    return SinkServer(host, port, collector=collector, clock=clock, timeout=timeout,
                      not_ready=not_ready)


class LoopClock:
    """When the consume loop last turned, and whether it is waiting for its commit.

    Examples
    --------
    >>> clock = LoopClock()
    >>> clock.turn()
    >>> clock.stalled_for() < 1.0
    True
    >>> with clock.waiting():  # waiting for a commit is not a stall
    ...     clock.stalled_for()
    0.0
    """

    __slots__ = ("_depth", "turned_at")

    def __init__(self) -> None:
        self.turned_at = time.monotonic()
        self._depth = 0

    def turn(self) -> None:
        """The loop went round once."""
        self.turned_at = time.monotonic()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """The loop waits for its commit thread (nests)."""
        self._depth += 1
        try:
            yield
        finally:
            self.turned_at = time.monotonic()  # before the depth drops: no false stall
            self._depth -= 1

    def stalled_for(self) -> float:
        """Seconds since the loop last turned; 0 while it waits for its commit."""
        if self._depth > 0:
            return 0.0
        return max(0.0, time.monotonic() - self.turned_at)


class SinkServer:
    """``/metrics``, ``/livez`` and ``/readyz`` of one sink, on ``host:port``.

    Parameters
    ----------
    host, port
        Where to listen (``port=0``: a free port, see :attr:`url`).
    collector
        The sink's Prometheus collector.
    clock
        The loop's :class:`LoopClock`.
    timeout
        Seconds the loop may go without turning before ``/livez`` fails.
    not_ready
        Returns why the sink is not ready, or ``None`` when it is.

    Examples
    --------
    >>> import urllib.request
    >>> from lakekit.sink.metrics import SinkCollector
    >>> from lakekit.sink.stats import SinkStats
    >>> server = SinkServer("127.0.0.1", 0, collector=SinkCollector(SinkStats, {}),
    ...                     clock=LoopClock(), timeout=60, not_ready=lambda: None)
    >>> server.start()
    >>> urllib.request.urlopen(server.url + "/readyz").read()
    b'ready\\n'
    >>> server.stop()
    """

    def __init__(self, host: str, port: int, *, collector: Any, clock: LoopClock,
                 timeout: float, not_ready: Callable[[], str | None]) -> None:
        prometheus = import_optional("prometheus_client", purpose="the sink's metrics_port")
        self.host = host
        self.port = self._requested = int(port)
        self.clock = clock
        self.timeout = float(timeout)
        self.not_ready = not_ready
        self.registry = prometheus.CollectorRegistry()
        self.registry.register(collector)
        prometheus.ProcessCollector(registry=self.registry)
        prometheus.GCCollector(registry=self.registry)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` as bound (the real port when started with 0)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        Raises
        ------
        ConfigError
            The port is in use, or the host cannot be bound.
        """
        cls = _Server6 if ":" in self.host else _Server
        try:
            httpd = cls((self.host, self._requested), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"metrics_port {self._requested} on {self.host} is already in use (another "
                    "sink or service?); stop it or choose another metrics_port "
                    "(--metrics-port)") from None
            raise ConfigError(f"cannot serve metrics on {self.host}:{self._requested}: "
                              f"{exc.strerror or exc}; check metrics_host and metrics_port"
                              ) from None
        httpd.sink_server = self
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="lakekit-sink-metrics", daemon=True)
        self._thread.start()
        log.info("metrics and health on %s (/metrics, /livez, /readyz)", self.url)

    def stop(self) -> None:
        """Stop serving and release the port (bounded)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        text = "text/plain; charset=utf-8"
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == "/livez":
            stalled = self.clock.stalled_for()
            if stalled > self.timeout:
                return 503, text, (f"stuck: the consume loop has not turned for "
                                   f"{stalled:.0f}s (limit {self.timeout:.0f}s)\n").encode()
            return 200, text, b"ok\n"
        if path == "/readyz":
            reason = self.not_ready()
            if reason is not None:
                return 503, text, f"not ready: {reason}\n".encode()
            return 200, text, b"ready\n"
        return 404, text, b"not found: try /metrics, /livez or /readyz\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sink_server: SinkServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        try:
            status, ctype, body = self.server.sink_server.respond(self.path.split("?", 1)[0])
        except Exception as exc:  # a scrape must never take the sink down
            log.warning("serving %s failed: %s: %s", self.path, type(exc).__name__, exc)
            status, ctype, body = 500, "text/plain", b"internal error\n"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics server: " + format, *args)
