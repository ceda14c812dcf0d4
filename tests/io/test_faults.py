"""The loaders under a faulty S3: every read returns exactly the rows of a fault-free read,
or raises :class:`~lakekit.errors.StorageError` once lakekit's bounded retries are spent —
never partial, truncated or mixed data.

The faults come from ``tests/_support/s3proxy.py`` (a seeded schedule of 503 SlowDown,
500, resets before and after forwarding, truncated bodies and stalls, by request kind) in
front of the session's moto server. The clients here are "lean": botocore's own retries
are off (``max_attempts: 1``), so that the faults reach s3fs and lakekit instead of being
absorbed below them; s3fs still retries what it retries (truncated bodies, SlowDown).
"""

from __future__ import annotations

import gzip
import io
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import s3fs
from _support.s3proxy import FAULTS, CountingProxy, Fault, FaultSchedule, fault_proxy, kind_of
from _support.stores import delta_options
from deltalake import write_deltalake

import lakekit as lk
from lakekit.errors import BadRecordError, StorageError
from lakekit.local_servers import S3Server

LEAN = {"config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}}
SEEDS = (1, 2, 3)
# every fault on every kind of request, about one request in two faulted
MIXED = FaultSchedule(
    {"*": {"slowdown": 0.1, "internal": 0.1, "reset": 0.1, "reset_after": 0.1,
           "truncate": 0.1, "stall": 0.05}},
    max_faults=12, stall_s=1.0,
)
FORMATS = ("parquet", "jsonl", "jsonl.gz", "csv", "delta")


def table(n: int, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + n, dtype=np.int64)
    noise = np.random.default_rng(start).bytes(16 * n).hex()      # keeps .gz files large
    return pa.table({"id": ids, "user": [f"u{i % 7}" for i in ids], "value": ids / 4,
                     "tag": [noise[32 * i : 32 * i + 32] for i in range(n)]})


def jsonl(t: pa.Table) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in t.to_pylist()).encode()


def parquet(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=5_000)
    return buf.getvalue()


def csv(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(t, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lake(s3_server: S3Server) -> dict[str, str]:
    """One source per format in a fresh bucket: format -> URL."""
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)  # type: ignore[arg-type]
    for i in range(3):
        fs.pipe(f"{bucket}/pq/part-{i}.parquet", parquet(table(20_000, i * 20_000)))
    big = jsonl(table(70_000))      # 7 MiB, 2.3 MiB gzipped: several 1 MiB range requests
    fs.pipe(f"{bucket}/js/events.jsonl", big)
    fs.pipe(f"{bucket}/gz/events.jsonl.gz", gzip.compress(big))
    fs.pipe(f"{bucket}/csv/events.csv", csv(table(60_000)))
    delta = delta_options(s3_server)
    uri = f"s3://{bucket}/delta/events"
    for i in range(3):
        write_deltalake(uri, table(10_000, i * 10_000), storage_options=delta, mode="append")
    return {"parquet": f"s3://{bucket}/pq", "jsonl": f"s3://{bucket}/js/events.jsonl",
            "jsonl.gz": f"s3://{bucket}/gz/events.jsonl.gz",
            "csv": f"s3://{bucket}/csv/events.csv", "delta": uri}


def lean(p: CountingProxy, s3_server: S3Server) -> dict[str, Any]:
    return p.options({**s3_server.storage_options, **LEAN})


def faulty(url: str, schedule: FaultSchedule) -> FaultSchedule:
    """``schedule`` for a read of ``url``: every request, the Delta log's included (deltalake
    reads the log with its own client and retries; what they give up on, lakekit retries)."""
    return schedule


def canonical(t: pa.Table) -> pa.Table:
    """Rows in id order, columns by name, types of the fault-free read."""
    t = t.select(sorted(t.column_names))
    return t.sort_by("id")


@pytest.fixture(scope="module")
def expected(lake: dict[str, str], s3_server: S3Server) -> dict[str, pa.Table]:
    return {fmt: lk.dataset(url, storage_options=s3_server.storage_options).to_arrow()
            for fmt, url in lake.items()}


# -- the proxy itself ---------------------------------------------------------------------------

def test_schedule_replays_by_seed_and_kind() -> None:
    s = FaultSchedule({"get_range": {"slowdown": 0.3, "truncate": 0.3}, "put": {"reset": 0.5}})
    draws = [s.draw(7, "get_range", n) for n in range(200)]
    assert draws == [s.draw(7, "get_range", n) for n in range(200)]
    assert draws != [s.draw(8, "get_range", n) for n in range(200)]
    assert {"slowdown", "truncate", None} == set(draws)
    assert {s.draw(7, "put", n) for n in range(50)} == {"reset", None}
    assert {s.draw(7, "head", n) for n in range(50)} == {None}          # no rates: no faults
    # a HEAD has no body to truncate
    assert "truncate" not in {FaultSchedule({"*": {"truncate": 1.0}}).draw(1, "head", n)
                              for n in range(20)}
    assert kind_of("GET", "/b/k", {"Range": "bytes=0-9"}) == "get_range"
    assert kind_of("GET", "/b?list-type=2&prefix=x", {}) == "list"
    assert kind_of("PUT", "/b/_delta_log/1.json", {"If-None-Match": "*"}) == "cput"
    with pytest.raises(ValueError, match="stall_s"):
        FaultSchedule({}, stall_s=60)


def test_proxy_injects_each_fault_as_s3_would(s3_server: S3Server) -> None:
    """Every fault, one after another on GETs of one object, seen by a raw HTTP client."""
    import http.client
    import urllib.request

    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    body = bytes(range(256)) * 400
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)  # type: ignore[arg-type]
    fs.pipe(f"{bucket}/obj", body, ACL="public-read")  # readable without signing
    outcomes: list[str] = []
    for fault in FAULTS:
        with fault_proxy(s3_server.endpoint_url, schedule={"get": {fault: 1.0}},
                         max_faults=1, stall_s=0.5) as p:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(f"{p.endpoint_url}/{bucket}/obj", timeout=10) as r:
                    got = r.read()
                outcomes.append("ok" if got == body else "wrong")
            except urllib.error.HTTPError as exc:
                text = exc.read().decode()
                code = "SlowDown" if "<Code>SlowDown</Code>" in text else (
                    "InternalError" if "<Code>InternalError</Code>" in text else "?")
                outcomes.append(f"{exc.code} {code}")
            except http.client.IncompleteRead:
                outcomes.append("incomplete")
            except (ConnectionError, urllib.error.URLError, http.client.RemoteDisconnected):
                outcomes.append("reset")
            elapsed = time.monotonic() - started
            assert [(f.kind, f.seq, f.fault, f.key) for f in p.faults] == [
                ("get", 0, fault, f"{bucket}/obj")]
            # the fault is spent (max_faults=1): the next request goes through whole
            with urllib.request.urlopen(f"{p.endpoint_url}/{bucket}/obj", timeout=10) as r:
                assert r.read() == body
            if fault == "stall":
                assert elapsed >= 0.5
    assert outcomes == ["503 SlowDown", "500 InternalError", "reset", "reset", "incomplete", "ok"]


# -- every format, several seeds ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_under_mixed_faults_equal_the_fault_free_read(
    fmt: str, lake: dict[str, str], expected: dict[str, pa.Table], s3_server: S3Server,
) -> None:
    """Three seeds, each read through its own proxy (concurrently, to keep the test short)."""
    want = canonical(expected[fmt])

    def read(seed: int) -> list[Fault]:
        with fault_proxy(s3_server.endpoint_url, seed=seed,
                         schedule=faulty(lake[fmt], MIXED)) as p:
            got = lk.dataset(lake[fmt], storage_options=lean(p, s3_server)).to_arrow()
            assert canonical(got).equals(want), (fmt, seed, p.faults)
            return p.faults

    with ThreadPoolExecutor(len(SEEDS)) as pool:
        faults = dict(zip(SEEDS, pool.map(read, SEEDS), strict=True))
    assert all(faults.values()), faults
    # across the seeds, the schedule really hit these reads with most kinds of fault
    injected = {f.fault for fs in faults.values() for f in fs}
    assert len(injected) >= 4, injected


@pytest.mark.parametrize("fmt", FORMATS)
def test_batches_counts_and_heads_under_faults(
    fmt: str, lake: dict[str, str], expected: dict[str, pa.Table], s3_server: S3Server,
) -> None:
    want = canonical(expected[fmt])
    schedule = FaultSchedule({"get_range": {"reset": 0.1, "truncate": 0.1, "slowdown": 0.1,
                                            "internal": 0.15},
                              "get": {"internal": 0.2, "reset_after": 0.1},
                              "list": {"slowdown": 0.2}, "head": {"internal": 0.2}},
                             max_faults=16)
    with fault_proxy(s3_server.endpoint_url, seed=11,
                     schedule=faulty(lake[fmt], schedule)) as p:
        ds = lk.dataset(lake[fmt], storage_options=lean(p, s3_server))
        batches = list(ds.iter_batches(batch_size=7_000, memory_budget=4 << 20))
        assert canonical(pa.Table.from_batches(batches)).equals(want)
        assert ds.count_rows() == want.num_rows
        head = ds.to_arrow(n_rows=1_234)
        assert head.num_rows == 1_234
        assert canonical(head).equals(canonical(expected[fmt].slice(0, 1_234)))
        assert p.faults


def test_persistent_faults_raise_storage_error_after_bounded_retries(
    lake: dict[str, str], s3_server: S3Server,
) -> None:
    """Every data request fails (every format, concurrently): a StorageError naming the
    source, in bounded time."""
    kinds = FaultSchedule({"get_range": {"reset": 0.4, "internal": 0.4, "truncate": 0.2},
                           "get": {"reset": 0.4, "internal": 0.4, "truncate": 0.2}})

    def read(fmt: str) -> tuple[BaseException | None, set[str]]:
        with fault_proxy(s3_server.endpoint_url, seed=5, schedule=faulty(lake[fmt], kinds)) as p:
            try:
                lk.dataset(lake[fmt], storage_options=lean(p, s3_server)).to_arrow()
            except Exception as exc:
                return exc, {f.fault for f in p.faults}
            return None, {f.fault for f in p.faults}

    started = time.monotonic()
    with ThreadPoolExecutor(len(FORMATS)) as pool:
        outcomes = dict(zip(FORMATS, pool.map(read, FORMATS), strict=True))
    assert time.monotonic() - started < 60
    for fmt, (exc, injected) in outcomes.items():
        assert isinstance(exc, StorageError), (fmt, exc)
        assert lake[fmt].split("://", 1)[1].split("/", 1)[0] in str(exc)    # names the bucket
        assert {"reset", "internal"} <= injected, (fmt, injected)
    assert {"truncate"} <= set().union(*(i for _, i in outcomes.values()))


# -- JSONL: resuming in the middle of a file -----------------------------------------------------

# Failures in a row that outlast the clients' own retries but not lakekit's: s3fs retries
# a body cut short five times by itself (so 7 make it give up once), nothing else
# (botocore's retries are off); lakekit makes 5 attempts.
IN_A_ROW = {"truncate": 7}


def mid_stream(first: int, fault: str) -> FaultSchedule:
    """``IN_A_ROW`` failures of the ``first``-th (0-based) range request and its retries."""
    return FaultSchedule({"get_range": {fault: 1.0}}, max_faults=IN_A_ROW.get(fault, 4),
                         first=first)


@pytest.mark.parametrize(("fmt", "fault"), [
    ("jsonl", "reset"), ("jsonl", "truncate"), ("jsonl", "internal"),
    ("jsonl.gz", "truncate"), ("jsonl.gz", "reset_after"),
])
def test_jsonl_resumes_in_the_middle_of_a_file(
    fmt: str, fault: str, lake: dict[str, str], expected: dict[str, pa.Table],
    s3_server: S3Server,
) -> None:
    """Failures in a row on the second range request of the stream (1 MiB blocks), more
    than the client retries by itself: the read resumes where it was and returns every row
    once, in order."""
    with fault_proxy(s3_server.endpoint_url, schedule=mid_stream(1, fault)) as p:
        ds = lk.dataset(lake[fmt], storage_options=lean(p, s3_server),
                        schema=expected[fmt].schema)
        got = pa.Table.from_batches(list(ds.iter_batches(memory_budget=4 << 20, workers=1)))
        faults = p.faults
        ranges = [r.range for r in p.requests if r.range]
    assert got.equals(expected[fmt])
    assert [f.fault for f in faults] == [fault] * IN_A_ROW.get(fault, 4), ranges
    hit = {f.range for f in faults}
    assert len(hit) == 1                                 # the same request every time
    start = int(next(iter(hit)).split("=")[1].split("-")[0])  # type: ignore[union-attr]
    if fmt == "jsonl":
        assert start > 0                                 # the middle of the file
        # resumed where the failed request started: no byte fetched twice or skipped
        assert any(r.startswith(f"bytes={start}-") for r in ranges)


def test_jsonl_line_numbers_survive_a_resume(s3_server: S3Server) -> None:
    """A bad line after the resumed request is named by its true line number."""
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    rows = table(40_000).to_pylist()                # 4 MiB; the third 1 MiB request fails
    lines = [json.dumps(r) for r in rows]
    lines[35_000] = '{"id": 35000, "user": "u0", "value": '        # cut off: line 35001
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)  # type: ignore[arg-type]
    fs.pipe(f"{bucket}/bad.jsonl", ("\n".join(lines) + "\n").encode())
    schema = table(1).schema
    with fault_proxy(s3_server.endpoint_url, schedule=mid_stream(2, "truncate")) as p:
        ds = lk.dataset(f"s3://{bucket}/bad.jsonl", storage_options=lean(p, s3_server),
                        schema=schema)
        with pytest.raises(BadRecordError, match=r"bad\.jsonl:35001\b"):
            for _ in ds.iter_batches(memory_budget=4 << 20, workers=1):
                pass
        assert len(p.faults) == IN_A_ROW["truncate"]
        assert int(p.faults[0].range.split("=")[1].split("-")[0]) == 2 << 20  # type: ignore[union-attr]
        ds = lk.dataset(f"s3://{bucket}/bad.jsonl", storage_options=lean(p, s3_server),
                        schema=schema, on_bad_lines="skip")
        with pytest.warns(lk.errors.BadRecordsWarning, match=r"bad\.jsonl:35001\b"):
            got = ds.to_arrow()
    assert got.column("id").to_pylist() == [i for i in range(40_000) if i != 35_000]


# -- truncated bodies ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "delta", "csv"])
def test_truncated_ranges_are_detected_not_decoded(
    fmt: str, lake: dict[str, str], expected: dict[str, pa.Table], s3_server: S3Server,
) -> None:
    """Half of a data request's body arrives, then the connection closes: detected (and
    retried) every time, never decoded; the rows are exact. (Truncation that outlasts the
    retries is a StorageError: test_persistent_faults_raise_storage_error_...)"""
    truncating = FaultSchedule({"get_range": {"truncate": 0.5}, "get": {"truncate": 0.5}},
                               max_faults=8)
    with fault_proxy(s3_server.endpoint_url, seed=3,
                     schedule=faulty(lake[fmt], truncating)) as p:
        got = lk.dataset(lake[fmt], storage_options=lean(p, s3_server)).to_arrow()
        assert canonical(got).equals(canonical(expected[fmt]))
        assert {f.fault for f in p.faults} == {"truncate"}
        assert len(p.faults) >= 2



def test_a_file_replaced_during_a_resumed_read_is_an_error_not_a_mix(
    s3_server: S3Server,
) -> None:
    """The object is overwritten while a read is under way and the read's next request
    fails: the resumed read refuses the new version (StorageError), never mixes the two."""
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)  # type: ignore[arg-type]
    old, new = table(100_000), table(100_000)
    new = new.set_column(0, "id", pa.array(np.arange(100_000, 200_000, dtype=np.int64)))
    fs.pipe(f"{bucket}/e.jsonl", jsonl(old))
    with fault_proxy(s3_server.endpoint_url, schedule={"get_range": {"reset": 1.0}},
                     max_faults=1) as p:
        p.enabled = False                   # the first request after the overwrite fails
        ds = lk.dataset(f"s3://{bucket}/e.jsonl", storage_options=lean(p, s3_server),
                        schema=old.schema)
        seen: list[int] = []
        # small batches: the first comes after the first block, long before the file's end
        batches = ds.iter_batches(memory_budget=4 << 20, workers=1, batch_size=1_000)
        # s3fs pins the ETag of its requests (a 412 then), lakekit the file's identity when
        # it resumes: which of them notices first depends on the read-ahead's timing
        with pytest.raises(StorageError, match=r"e\.jsonl: the file changed while it was read"):
            for batch in batches:
                if not seen:
                    fs.pipe(f"{bucket}/e.jsonl", jsonl(new))
                    p.enabled = True
                seen.extend(batch.column("id").to_pylist())
        assert p.faults
    assert seen == list(range(len(seen)))          # only rows of the old version


def test_resumable_file_resumes_at_the_byte_and_refuses_another_version(
    s3_server: S3Server,
) -> None:
    """``ResumableFile`` (what JSONL and CSV streams read through), one read at a time."""
    from lakekit.io.ranges import ResumableFile

    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    body = np.random.default_rng(0).bytes(3 << 20)
    direct = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)  # type: ignore[arg-type]
    direct.pipe(f"{bucket}/blob", body)
    with fault_proxy(s3_server.endpoint_url, schedule=mid_stream(1, "reset")) as p:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **lean(p, s3_server))
        f = ResumableFile(fs, f"{bucket}/blob", url=f"s3://{bucket}/blob")
        got = b"".join(iter(lambda: f.read(1 << 20), b""))
        assert got == body
        assert [f.range for f in p.faults] == ["bytes=1048576-2097151"] * 4
        assert f.resumed >= 1
        assert "bytes=1048576-2097151" in {r.range for r in p.requests}

        p.enabled = False
        f = ResumableFile(fs, f"{bucket}/blob", url=f"s3://{bucket}/blob")
        assert f.read(1 << 20) == body[: 1 << 20]
        direct.pipe(f"{bucket}/blob", body[::-1])
        p.schedule = FaultSchedule({"get_range": {"reset": 1.0}}, max_faults=8)
        p.enabled = True
        with pytest.raises(StorageError, match=r"blob: the file changed while it was read "
                                               r"\(resuming at byte 1,048,576\)"):
            f.read(1 << 20)
        # without a failure in between, s3fs's pinned ETag notices: the same error
        f = ResumableFile(fs, f"{bucket}/blob", url=f"s3://{bucket}/blob")
        p.enabled = False
        assert f.read(10) == body[::-1][:10]
        direct.pipe(f"{bucket}/blob", body)
        with pytest.raises(StorageError, match=r"blob: the file changed while it was read "
                                               r"\(at byte 10\)"):
            f.read(1 << 20)


def test_reset_after_a_conditional_put_is_the_ambiguous_case(s3_server: S3Server) -> None:
    """A conditional PUT whose response is lost was applied: its retry finds the object
    there (what a Delta commit's writer must tell apart from a conflict)."""
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    direct = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)  # type: ignore[arg-type]
    with fault_proxy(s3_server.endpoint_url, schedule={"cput": {"reset_after": 1.0}},
                     max_faults=1) as p:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **lean(p, s3_server))
        with pytest.raises(FileExistsError):   # the lost answer, then "already exists"
            fs.pipe_file(f"{bucket}/_delta_log/00000000000000000001.json", b"commit",
                         mode="create")
        assert [(f.kind, f.fault) for f in p.faults] == [("cput", "reset_after")]
    assert direct.cat_file(f"{bucket}/_delta_log/00000000000000000001.json") == b"commit"
