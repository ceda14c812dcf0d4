"""A commit whose response is lost: the server applied the conditional PUT of the commit
file, the client saw a reset. The write must return the version it made (proved from the
log by its ``lakekit.write_id``), not fail, and the rows must be there exactly once; the
fault is injected by the fault proxy (in its own process) in front of the moto server."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from _support.proxy_process import proxy_process

import lakekit as lk

pytestmark = pytest.mark.s3


def test_a_lost_commit_response_returns_the_version_it_made(
        s3_server: Any, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    uri = f"s3://{s3_bucket}/t"
    lk.Table(uri, storage_options=s3_options).write(pa.table({"id": [0]}))
    with proxy_process(s3_server.endpoint_url,
                       schedule={"cput": {"reset_after": 1.0}}, max_faults=1,
                       match=r"_delta_log/0+1\.json$") as proxy:
        table = lk.Table(uri, storage_options=proxy.options(s3_options))
        version = table.write(pa.table({"id": [1]}))
        faults = proxy.faults()
    commit = f"{s3_bucket}/t/_delta_log/00000000000000000001.json"
    assert faults == [("cput", "reset_after", commit)]  # the commit landed, its reply did not
    assert version == 1  # without the write id, a StorageError (and a retry would duplicate)
    clean = lk.Table(uri, storage_options=s3_options)
    assert clean.version == 1
    assert sorted(clean.read().column("id").to_pylist()) == [0, 1]  # once, not twice
