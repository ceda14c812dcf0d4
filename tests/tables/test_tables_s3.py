"""Versioned tables on the moto S3 server: what only this backend does. deltalake-style
options and a tag race settled by conditional puts (If-None-Match), secrets kept out of reprs
and errors, and several processes appending to one table at once. The API's behaviour on S3
(versions, tags shared through the bucket, restore, vacuum...) is the contract's
(table_contract.py, run by test_table_contract.py)."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pyarrow as pa
import pytest
from _support.tables_race import claim_tag_concurrently

import lakekit as lk
from lakekit.errors import NotFoundError, SchemaMismatchError, TableError

pytestmark = pytest.mark.s3


def rows(start: int, n: int, writer: int = -1) -> pa.Table:
    return pa.table({
        "id": pa.array(range(start, start + n), pa.int64()),
        "writer": pa.array([writer] * n, pa.int64()),
    })


def ids(table: pa.Table) -> list[int]:
    return sorted(table.column("id").to_pylist())


def test_deltalake_style_options_and_tag_race_on_s3(s3_server: Any, s3_bucket: str) -> None:
    options = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_REGION": s3_server.region,
    }
    uri = f"s3://{s3_bucket}/t"
    t = lk.Table(uri, storage_options=options)
    for i in range(4):
        t.write(rows(i, 1))
    results = claim_tag_concurrently(
        lambda: lk.Table(uri, storage_options=options), "release", range(4)
    )
    winners = [r for r in results if isinstance(r, int)]
    assert len(results) == 4 and len(winners) == 1  # If-None-Match: one creator wins
    assert t.tags() == {"release": winners[0]}
    errors = [str(r) for r in results if isinstance(r, TableError)]
    assert all("already exists" in e for e in errors)
    assert not any(s3_server.secret_key in e for e in errors if len(s3_server.secret_key) > 4)


def test_secrets_stay_out_of_reprs_and_errors(s3_server: Any, s3_bucket: str) -> None:
    secret = "sEcReT-value-0123456789"
    options = {"key": "AKIDEXAMPLE", "secret": secret,
               "client_kwargs": {"endpoint_url": s3_server.endpoint_url,
                                 "region_name": s3_server.region}}
    t = lk.Table(f"s3://{s3_bucket}/missing", storage_options=options)
    assert secret not in repr(t)
    with pytest.raises(NotFoundError) as err:
        t.history()
    assert secret not in str(err.value) and s3_bucket in str(err.value)
    t.write(rows(0, 1))
    with pytest.raises(SchemaMismatchError) as err2:
        t.write(pa.table({"id": ["x"]}))
    assert secret not in str(err2.value)


def _append_worker(uri: str, options: dict[str, Any], writer: int, n: int, queue: Any) -> None:
    try:
        t = lk.Table(uri, storage_options=options)
        versions = [t.write(rows(writer * 1000 + i, 3, writer), metadata={"writer": writer})
                    for i in range(n)]
        queue.put((writer, versions))
    except BaseException as exc:  # report, so that the test fails now, not at a timeout
        queue.put((writer, f"{type(exc).__name__}: {exc}"))
        raise


@pytest.mark.slow
def test_concurrent_appends_from_four_processes_all_land(
    s3_bucket: str, s3_options: dict[str, Any]
) -> None:
    uri = f"s3://{s3_bucket}/concurrent"  # no table yet: the writers also race to create it
    writers, appends = 4, 5
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_append_worker, args=(uri, s3_options, w, appends, queue))
             for w in range(writers)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert not [r for r in results.values() if isinstance(r, str)], results
    assert [p.exitcode for p in procs] == [0] * writers
    t = lk.Table(uri, storage_options=s3_options)
    versions = sorted(v for vs in results.values() for v in vs)
    assert versions == list(range(writers * appends))  # distinct and consecutive
    for vs in results.values():
        assert vs == sorted(vs)
    assert t.version == writers * appends - 1
    expected = [w * 1000 + i + k for w in range(writers) for i in range(appends)
                for k in range(3)]
    assert ids(t.read()) == sorted(expected)  # every row, once
    history = t.history()
    assert [c.version for c in history] == list(range(writers * appends - 1, -1, -1))
    by_version = {c.version: c.metadata.get("writer") for c in history}
    for writer, vs in results.items():
        assert all(by_version[v] == writer for v in vs)
