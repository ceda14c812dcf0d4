"""Checks under a faulty S3: freshness, volume and schema give the fault-free verdict or
an error (a ``StorageError`` / ``NotFoundError``, exit 2 in the CLI) — never a different
pass or fail.

Freshness and volume are answered from metadata (file listings, parquet footers, the
Delta log): a listing cut short, a footer read that failed or a log read short would give
a smaller count or an older timestamp, so the sources here are built so that any missing
file changes a verdict. The faults come from ``tests/_support/s3proxy.py`` in front of the
session's moto server; the clients are "lean" (botocore's retries off, deltalake's cut to
one) so that the faults reach lakekit instead of being absorbed below it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandera.polars as pa_polars
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from _support.cli import Cli
from _support.proxy_process import ProxyProcess, proxy_process
from _support.stores import delta_options
from deltalake import DeltaTable, write_deltalake

import lakekit as lk
from lakekit.errors import LakekitError, NotFoundError, StorageError
from lakekit.local_servers import S3Server

pytestmark = pytest.mark.s3

UTC = timezone.utc
LEAN = {"config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
        "max_retries": "1", "retry_timeout": "10s"}
SEEDS = (1, 2, 3)
# every read kind, about one request in four faulted (at most 10 faults a run)
MIXED = {kind: {"slowdown": 0.06, "internal": 0.06, "reset": 0.06, "truncate": 0.06}
         for kind in ("get_range", "get", "head", "list")}
ROWS = 500          # per file


def events(n: int, *, start: int, newest: datetime, negative: int = 0) -> pa.Table:
    """``n`` rows, ids from ``start``, event_time up to ``newest``; ``negative`` amounts < 0."""
    rng = np.random.default_rng(start)
    times = [newest - timedelta(seconds=int(s)) for s in rng.integers(1, 600, n)]
    times[n // 2] = newest
    amount = rng.random(n) * 100
    amount[:negative] = -1.0
    return pa.table({
        "event_id": pa.array(np.arange(start, start + n), pa.int64()),
        "amount": pa.array(amount, pa.float64()),
        "event_time": pa.array(times, pa.timestamp("us", "UTC")),
    })


@pytest.fixture(scope="module")
def lake(s3_server: S3Server) -> dict[str, Any]:
    """A hive-partitioned parquet dataset and a Delta table (several commits, one of which
    removes a file), each with its newest rows in one file only and its negative amounts
    in another: a check that misses either file gets a different verdict."""
    bucket = f"checks-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    fresh, old = now - timedelta(minutes=30), now - timedelta(days=2)
    n = 0
    for day in (1, 2, 3):
        for part in range(2):
            newest = fresh if (day, part) == (3, 1) else old - timedelta(days=3 - day)
            t = events(ROWS, start=n, newest=newest, negative=7 if (day, part) == (2, 0) else 0)
            with fs.open(f"{bucket}/pq/day=2026-01-0{day}/part-{part}.parquet", "wb") as f:
                pq.write_table(t, f, row_group_size=200)
            n += ROWS
    delta = delta_options(s3_server)
    uri = f"s3://{bucket}/delta"
    write_deltalake(uri, events(ROWS, start=0, newest=old), storage_options=delta)
    write_deltalake(uri, events(ROWS, start=ROWS, newest=old, negative=7),
                    storage_options=delta, mode="append")
    write_deltalake(uri, events(ROWS, start=2 * ROWS, newest=fresh),
                    storage_options=delta, mode="append")
    # rewrites the first file: storage holds 1,750 rows in 4 files, the table 1,250
    DeltaTable(uri, storage_options=delta).delete("event_id < 250")
    return {"parquet": f"s3://{bucket}/pq", "delta": uri, "rows": {"parquet": 6 * ROWS,
                                                                  "delta": 3 * ROWS - 250}}


OK_SCHEMA = pa_polars.DataFrameSchema({
    "event_id": pa_polars.Column(int, pa_polars.Check.ge(0), nullable=False),
    "event_time": pa_polars.Column(nullable=False),
})
BAD_SCHEMA = pa_polars.DataFrameSchema({"amount": pa_polars.Column(float, pa_polars.Check.ge(0))})


def calls(rows: int) -> list[dict[str, Any]]:
    """Three checks of a source: each passes or fails on every file being seen."""
    return [
        {"schema": OK_SCHEMA, "freshness": lk.Freshness("event_time", "1h", "45m"),
         "volume": lk.Volume(min_rows=rows, max_rows=rows)},               # all pass
        {"schema": BAD_SCHEMA, "freshness": lk.Freshness("event_time", "20m"),
         "volume": lk.Volume(max_rows=rows - 1)},                           # all fail
        {"freshness": lk.Freshness(max_age="1h"), "volume": lk.Volume(min_rows=rows + 1)},
    ]


def verdict(report: lk.QualityReport) -> list[tuple[str, str, Any]]:
    """What must not change under faults: each check's status and what it measured."""
    out = []
    for r in report.results:
        seen = r.details.get("newest") if r.name == "freshness" else r.observed
        out.append((r.name, r.status, seen))
    return out


def run_all(url: str, checks: list[dict[str, Any]], options: dict[str, Any]) -> list[Any]:
    """Each check's verdict, or the LakekitError it raised."""
    out: list[Any] = []
    for kwargs in checks:
        schema = kwargs.pop("schema", None)
        try:
            out.append(verdict(lk.check(url, schema, storage_options=options, **kwargs)))
        except LakekitError as exc:
            out.append(exc)
    return out


def lean(p: ProxyProcess, s3_server: S3Server) -> dict[str, Any]:
    return p.options({**s3_server.storage_options, **LEAN})


@contextmanager
def faulty(s3_server: S3Server, *, seed: int, schedule: dict[str, dict[str, float]],
           **kwargs: Any) -> Iterator[ProxyProcess]:
    """The fault proxy in its own process: deltalake holds the GIL while it reads the log
    (``history``), so a proxy thread of this process could not answer it."""
    with proxy_process(s3_server.endpoint_url, seed=seed, schedule=schedule, **kwargs) as p:
        yield p


@pytest.fixture(scope="module")
def expected(lake: dict[str, Any], s3_server: S3Server) -> dict[str, list[Any]]:
    out = {fmt: run_all(lake[fmt], calls(lake["rows"][fmt]), s3_server.storage_options)
           for fmt in ("parquet", "delta")}
    for fmt, verdicts in out.items():      # the sources are what the docstring says
        assert [[s for _, s, _ in v] for v in verdicts] == [
            ["pass", "pass", "pass"], ["fail", "fail", "fail"], ["pass", "fail"]], (fmt, verdicts)
        assert verdicts[0][2][2] == lake["rows"][fmt]
    return out


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_checks_under_mixed_faults_give_the_fault_free_verdict_or_an_error(
    fmt: str, lake: dict[str, Any], expected: dict[str, list[Any]], s3_server: S3Server,
) -> None:
    """Several seeds of a mixed schedule over every read kind: each check's verdict (and
    what it measured) is the fault-free one, or the check raises a StorageError."""
    def run(seed: int) -> tuple[list[Any], list[tuple[str, str, str]]]:
        with faulty(s3_server, seed=seed, schedule=MIXED, max_faults=10) as p:
            got = run_all(lake[fmt], calls(lake["rows"][fmt]), lean(p, s3_server))
            return got, p.faults()

    with ThreadPoolExecutor(len(SEEDS)) as pool:
        outcomes = dict(zip(SEEDS, pool.map(run, SEEDS), strict=True))
    errors = 0
    for seed, (got, faults) in outcomes.items():
        for want, have in zip(expected[fmt], got, strict=True):
            if isinstance(have, LakekitError):
                assert isinstance(have, StorageError), (seed, have)
                errors += 1
                continue
            assert have == want, (fmt, seed, faults)
    injected = {fault for _, faults in outcomes.values() for _, fault, _ in faults}
    assert len(injected) >= 3, injected
    # most checks outlast the faults (an error for every call would prove nothing)
    assert errors <= len(SEEDS) * len(expected[fmt]) // 2, outcomes


def test_a_failed_log_probe_never_reads_a_delta_table_as_plain_files(
    lake: dict[str, Any], expected: dict[str, list[Any]], s3_server: S3Server,
) -> None:
    """The first LISTs fail: the probe for ``_delta_log`` is retried. (It used to answer
    "not a Delta table" at the first failure, and the checks read every parquet file under
    the table, the removed ones included: 1,750 rows instead of 1,250, a wrong verdict.)"""
    with faulty(s3_server, seed=1, schedule={"list": {"internal": 1.0}}, max_faults=4) as p:
        got = run_all(lake["delta"], calls(lake["rows"]["delta"]), lean(p, s3_server))
        assert len(p.faults()) == 4
    assert got == expected["delta"]


_LIST = {"list": {"internal": 1.0}}
_FOOTERS = {"get_range": {"reset": 0.5, "internal": 0.5}, "get": {"reset": 0.5, "internal": 0.5}}
_LOG = {"get_range": {"truncate": 0.5, "internal": 0.5}, "get": {"truncate": 0.5, "internal": 0.5}}
_FRESH = {"freshness": lk.Freshness("event_time", "1h")}
_COUNT = {"volume": lk.Volume(min_rows=1)}
PERSISTENT: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # a LIST that fails or is cut short every time: no listing, never a partial one
    "parquet-list-volume": ("parquet", {"schedule": _LIST}, _COUNT),
    "parquet-list-truncated-freshness": ("parquet", {"schedule": {
        "list": {"truncate": 0.5, "internal": 0.5}}}, _FRESH),
    "delta-list-freshness": ("delta", {"schedule": _LIST}, {"freshness": lk.Freshness()}),
    # every footer read fails: no count, no newest value from the others
    "parquet-footers-volume": ("parquet", {"schedule": _FOOTERS, "match": r"\.parquet$"}, _COUNT),
    "parquet-footers-freshness": ("parquet", {"schedule": _FOOTERS, "match": r"\.parquet$"},
                                  _FRESH),
    # every read of the Delta log fails or is cut short: never an older version's answer
    "delta-log-volume": ("delta", {"schedule": _LOG, "match": "_delta_log/"}, _COUNT),
    "delta-log-freshness": ("delta", {"schedule": _LOG, "match": "_delta_log/"}, _FRESH),
    "delta-data-schema": ("delta", {"schedule": _FOOTERS, "match": r"\.parquet$"},
                          {"schema": OK_SCHEMA}),
}


def test_persistent_faults_are_an_error_in_bounded_time(
    lake: dict[str, Any], s3_server: S3Server,
) -> None:
    """Each check under a fault that never ends: a StorageError naming the source and the
    storage problem, in one line, without secrets, after bounded retries."""
    def run(case: str) -> tuple[Any, float, list[tuple[str, str, str]]]:
        fmt, proxy, check = PERSISTENT[case]
        with faulty(s3_server, seed=7, **proxy) as p:
            started = time.monotonic()
            got = run_all(lake[fmt], [dict(check)], lean(p, s3_server))[0]
            return got, time.monotonic() - started, p.faults()

    with ThreadPoolExecutor(4) as pool:
        outcomes = dict(zip(PERSISTENT, pool.map(run, PERSISTENT), strict=True))
    secret = str(s3_server.storage_options["secret"])
    bucket = lake["parquet"].split("/")[2]
    for case, (got, took, faults) in outcomes.items():
        assert isinstance(got, StorageError) and not isinstance(got, NotFoundError), (case, got)
        text = str(got)
        assert bucket in text and "storage" in text, (case, text)
        assert "\n" not in text and secret not in text and "Traceback" not in text, text
        assert took < 45, (case, took)    # lakekit's 5 attempts of s3fs's own retries
        assert faults, case


def test_cli_under_persistent_faults_exits_2_with_one_line(
    lake: dict[str, Any], s3_server: S3Server, cli: Cli, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")      # botocore's retries off, as above
    for fmt in ("parquet", "delta"):
        with faulty(s3_server, seed=3, schedule=_LIST) as p:
            options = lean(p, s3_server)
            code, out, err = cli(
                "check", lake[fmt], "--min-rows", "1", "--freshness-column", "event_time",
                "--storage-option", f"key={options['key']}",
                "--storage-option", f"secret={options['secret']}",
                "--storage-option", f"endpoint_url={p.endpoint}",
                "--storage-option", "max_retries=1",
            )
            assert p.faults()
        assert code == 2, (fmt, code, out, err)
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("lakekit check: "), err
        assert lake[fmt].split("/")[2] in err and "storage error" in err, err
        assert str(options["secret"]) not in err and "Traceback" not in err
