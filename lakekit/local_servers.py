"""Local servers for the demo, the tests and the benchmarks: a moto S3 server (and, later, a
Kafka-protocol broker). Each runs as a child process on 127.0.0.1 on a free port and is
stopped, with a timeout, when its context exits.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from lakekit.errors import MissingDependencyError, StorageError

__all__ = ["S3Server", "free_port", "moto_s3_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        try:
            import s3fs
        except ImportError:
            raise MissingDependencyError(
                "s3fs is required; install it with: pip install 'lakekit[s3]'"
            ) from None
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)  # type: ignore[arg-type]
        if not fs.exists(name):
            fs.mkdir(name)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StorageError(f"the local S3 server exited at start (code {proc.returncode})")
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
    >>> with moto_s3_server() as s3:  # doctest: +SKIP
    ...     s3.create_bucket("lake")
    """
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "moto[server] is required for the local S3 server; install it with: "
            "pip install 'lakekit[demo]'"
        ) from None
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(endpoint + "/moto-api/", proc, start_timeout)
        yield S3Server(endpoint)
    finally:
        _stop(proc)
