"""lakekit.storage: resolving URLs into filesystems, keeping secrets out of text, and bounded
retries of transient storage errors (exercised through a user-written fsspec filesystem
that fails on purpose, not through mocks)."""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from _support.testfs import BlobFS
from hypothesis import given, settings
from hypothesis import strategies as st

import lakekit as lk
from lakekit.errors import ConfigError, FormatError, NotFoundError, StorageError
from lakekit.storage import default_workers, is_transient, redact, resolve, retry_call

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY"


# -- resolve --------------------------------------------------------------------------------

def test_resolve_local_path_and_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loc = resolve("data/x.parquet")
    assert loc.is_local and loc.protocol == "file"
    assert loc.path == str(tmp_path / "data" / "x.parquet")
    assert loc.url == loc.path
    assert isinstance(loc.pyarrow_filesystem(), pafs.LocalFileSystem)
    assert loc.delta_uri() == loc.path and loc.delta_storage_options() == {}
    assert resolve((tmp_path / "data").as_uri()).path == str(tmp_path / "data")
    assert resolve(Path("data")).path == str(tmp_path / "data")


def test_resolve_memory_url() -> None:
    loc = resolve("memory://bucket/data")
    assert loc.protocol == "memory" and not loc.is_local
    assert loc.path == "/bucket/data"
    assert isinstance(loc.pyarrow_filesystem(), pafs.PyFileSystem)
    with pytest.raises(ConfigError, match="memory"):
        loc.delta_uri()


def test_resolve_s3_with_fsspec_style_options() -> None:
    opts = {"key": "AKIAEXAMPLE", "secret": SECRET,
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}}
    loc = resolve("s3://bucket/events/", storage_options=opts)
    assert loc.protocol == "s3" and loc.path == "bucket/events"
    assert loc.url == "s3://bucket/events" and not loc.is_local
    assert loc.delta_uri() == "s3://bucket/events"
    assert loc.delta_storage_options() == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "eu-west-1",
    }
    assert SECRET not in repr(loc)


def test_resolve_s3_with_deltalake_style_options() -> None:
    opts = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "eu-west-1"}
    loc = resolve("s3://bucket/events", storage_options=opts)
    fs = loc.fs
    assert (fs.key, fs.secret) == ("AKIAEXAMPLE", SECRET)
    assert fs.client_kwargs["endpoint_url"] == "http://127.0.0.1:9"
    assert fs.client_kwargs["region_name"] == "eu-west-1"
    assert loc.delta_storage_options()["AWS_SECRET_ACCESS_KEY"] == SECRET


def test_a_filesystem_instance_wins_over_storage_options() -> None:
    fs = BlobFS()
    loc = resolve("blobfs://lake/x.parquet", filesystem=fs,
                  storage_options={"anon": True})
    assert loc.fs is fs and loc.protocol == "blobfs" and loc.path == "lake/x.parquet"
    assert resolve("lake/x.parquet", filesystem=fs).path == "lake/x.parquet"
    assert loc.url_of("lake/y.parquet") == "blobfs://lake/y.parquet"


def test_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchproto"):
        resolve("nosuchproto://bucket/x")


def test_credentials_in_an_s3_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        resolve(f"s3://AKIAEXAMPLE:{SECRET}@bucket/x.parquet")
    assert SECRET not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)
    assert "storage_options" in str(info.value)


def test_default_workers_depend_on_the_filesystem(tmp_path: Path) -> None:
    local = default_workers(resolve(tmp_path))
    assert local == max(1, min(os.cpu_count() or 2, 16))
    assert default_workers(resolve("memory://x")) >= max(local, 8)


# -- redaction ------------------------------------------------------------------------------

def test_redact_url_userinfo_and_secret_values() -> None:
    opts = {"key": "AKIAEXAMPLE", "secret": SECRET, "region_name": "eu-west-1",
            "client_kwargs": {"aws_session_token": "tok-123456"},
            "AWS_SECRET_ACCESS_KEY": "other-secret-value", "password": "hunter22"}
    text = (f"s3://AKIAEXAMPLE:{SECRET}@bucket failed with key=AKIAEXAMPLE secret={SECRET} "
            "token tok-123456, other-secret-value, hunter22 in eu-west-1")
    out = redact(text, opts)
    for value in ("AKIAEXAMPLE", SECRET, "tok-123456", "other-secret-value", "hunter22"):
        assert value not in out
    assert "eu-west-1" in out and "s3://***@bucket" in out
    loc = resolve("memory://x", storage_options={})
    assert loc.redact("ftp://user:pw@host/x") == "ftp://***@host/x"


@settings(max_examples=60, deadline=None)
@given(
    secret=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_",
                   min_size=4, max_size=40),
    before=st.text(max_size=20), after=st.text(max_size=20),
)
def test_redact_never_leaves_a_secret_value(secret: str, before: str, after: str) -> None:
    text = f"{before}{secret}{after} and again {secret}"
    out = redact(text, {"client_kwargs": {"secret": secret}})
    assert secret not in out


# -- transient errors and retries -----------------------------------------------------------

@pytest.mark.parametrize(("exc", "transient"), [
    (ConnectionResetError("reset by peer"), True),
    (TimeoutError("read timed out"), True),
    (OSError(errno.ECONNRESET, "reset"), True),
    (OSError("Service Unavailable (HTTP 503)"), True),
    (OSError("An error occurred (SlowDown): Please reduce your request rate"), True),
    (RuntimeError("Throttling: rate exceeded"), True),
    (OSError("An error occurred (InternalError) HTTP 500"), True),
    (OSError("Generic DeltaTable error: Error interacting with object store: Generic S3 "
             "error: Error getting list response body: HTTP error: request or response "
             "body error"), True),  # deltalake, a LIST reply cut short
    (FileNotFoundError("no such key"), False),
    (PermissionError("403 Forbidden"), False),
    (IsADirectoryError("dir"), False),
    (ValueError("bad value"), False),
    (OSError("Forbidden 403"), False),
])
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


class Flaky:
    """A callable failing ``n`` times with ``exc`` and then returning ``value``."""

    def __init__(self, n: int, exc: BaseException, value: object = "ok") -> None:
        self.n, self.exc, self.value, self.calls = n, exc, value, 0

    def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.n:
            raise self.exc
        return self.value


def test_retry_call_retries_transient_errors_then_succeeds() -> None:
    f = Flaky(3, ConnectionResetError("reset"))
    assert retry_call(f, what="s3://b/k", attempts=5, base_delay=0.001) == "ok"
    assert f.calls == 4


def test_retry_call_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the backoff, measured without a clock
    f = Flaky(100, OSError("503 Service Unavailable"))
    with pytest.raises(StorageError) as info:
        retry_call(f, what="s3://b/k", attempts=5, base_delay=0.01, max_delay=0.02)
    assert f.calls == 5
    assert "s3://b/k" in str(info.value) and "5 attempts" in str(info.value)
    # four waits between five attempts, following base_delay / max_delay, not whole seconds
    assert len(slept) == 4 and all(0 < s <= 0.02 + 0.01 for s in slept)  # + jitter


@pytest.mark.parametrize(("exc", "kind", "text"), [
    (FileNotFoundError("gone"), NotFoundError, "not found"),
    (PermissionError("403"), StorageError, "access denied"),
])
def test_403_and_404_fail_at_once(exc: BaseException, kind: type, text: str) -> None:
    f = Flaky(100, exc)
    with pytest.raises(kind, match=text) as info:
        retry_call(f, what="s3://b/k", base_delay=0.001)
    assert f.calls == 1
    assert "s3://b/k" in str(info.value)
    if kind is NotFoundError:
        assert isinstance(info.value, FileNotFoundError)


def test_other_errors_pass_through_unchanged() -> None:
    f = Flaky(100, ValueError("a bug, not the network"))
    with pytest.raises(ValueError, match="a bug"):
        retry_call(f, what="x", base_delay=0.001)
    assert f.calls == 1


# -- retries through the loaders, on a filesystem that fails on purpose ---------------------

@pytest.fixture
def flaky_fs() -> BlobFS:
    fs = BlobFS()
    fs.put_table("lake/a.parquet", pa.table({"x": np.arange(1_000)}))
    return fs


def test_transient_failures_are_retried_by_the_loader(flaky_fs: BlobFS) -> None:
    flaky_fs.fail(2, ConnectionResetError)
    t = lk.load("lake/a.parquet", filesystem=flaky_fs)
    assert t.column("x").to_pylist() == list(range(1_000))
    assert flaky_fs.read_calls >= 3  # two failures, then the successful read
    flaky_fs.reset()
    flaky_fs.fail(1, lambda: OSError("503 Service Unavailable"), after=0)
    assert lk.load("lake/a.parquet", filesystem=flaky_fs).num_rows == 1_000


def test_persistent_transient_failures_give_up_after_a_bounded_number_of_attempts(
    flaky_fs: BlobFS,
) -> None:
    flaky_fs.fail(1_000, ConnectionResetError)
    with pytest.raises(StorageError) as info:
        lk.load("lake/a.parquet", filesystem=flaky_fs)
    assert flaky_fs.read_calls == 5
    assert "blobfs://lake/a.parquet" in str(info.value)
    assert "attempts" in str(info.value)


def test_access_denied_fails_at_once(flaky_fs: BlobFS) -> None:
    flaky_fs.fail(1_000, PermissionError("403 Forbidden"))
    with pytest.raises(StorageError, match="access denied") as info:
        lk.load("lake/a.parquet", filesystem=flaky_fs)
    assert not isinstance(info.value, FormatError)
    assert flaky_fs.read_calls == 1


def test_a_file_vanishing_after_listing_fails_at_once(flaky_fs: BlobFS) -> None:
    flaky_fs.fail(1_000, FileNotFoundError)
    with pytest.raises(NotFoundError, match=re.escape("blobfs://lake/a.parquet")):
        lk.load("lake/a.parquet", filesystem=flaky_fs)
    assert flaky_fs.read_calls == 1


def test_a_storage_error_while_reading_a_large_footer_is_not_a_format_error() -> None:
    """A footer larger than the first tail request needs a second read; when that read is
    refused the error says so, instead of calling the file corrupt."""
    fs = BlobFS()
    fs.put_table("lake/wide.parquet", pa.table({f"column_{i}": [i] for i in range(2_000)}))
    assert lk.load("lake/wide.parquet", filesystem=fs).num_columns == 2_000
    fs.reset()
    fs.fail(1_000, PermissionError("403 Forbidden"), after=1)
    with pytest.raises(StorageError, match="access denied") as info:
        lk.load("lake/wide.parquet", filesystem=fs)
    assert not isinstance(info.value, FormatError)


def test_storage_errors_do_not_leak_filesystem_secrets() -> None:
    fs = BlobFS(secret=SECRET)  # fsspec keeps constructor options in fs.storage_options
    fs.put_table("lake/a.parquet", pa.table({"x": [1]}))
    fs.fail(1_000, PermissionError(f"denied for secret {SECRET}"))
    with pytest.raises(StorageError) as info:
        lk.load("lake/a.parquet", filesystem=fs)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(lk.dataset("lake/a.parquet", filesystem=fs))


def test_fsspec_memory_filesystem_instance() -> None:
    mem = fsspec.filesystem("memory")
    with mem.open("/lk-storage-test/a.parquet", "wb") as f:
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"x": [1, 2]}), f)
    try:
        assert lk.load("/lk-storage-test", filesystem=mem).column("x").to_pylist() == [1, 2]
    finally:
        mem.rm("/lk-storage-test", recursive=True)


@pytest.mark.s3
def test_the_local_s3_server_decides_racing_conditional_puts_atomically(
    s3_bucket: str, s3_options: dict[str, object]
) -> None:
    # Delta commits and tags on S3 rely on If-None-Match: exactly one creator wins
    import threading

    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)
    for round_ in range(10):
        path = f"{s3_bucket}/race/{round_}.json"
        start = threading.Barrier(8, timeout=60)
        won: list[int] = []

        def put(i: int, path: str = path, start: threading.Barrier = start,
                won: list[int] = won) -> None:
            start.wait()
            try:
                fs.pipe_file(path, f"writer {i}".encode(), mode="create")
                won.append(i)
            except FileExistsError:
                pass

        threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert len(won) == 1, f"round {round_}: writers {won} all created {path}"
        assert fs.cat_file(path) == f"writer {won[0]}".encode()
