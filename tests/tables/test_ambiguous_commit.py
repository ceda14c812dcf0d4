"""A commit whose response is lost: the server applied the conditional PUT of the commit
file, the client saw a reset. Every kind of commit must return the version it made
(proved from the log by its ``lakekit.write_id``), not fail, and its effect must be there
exactly once. A commit that did not land (the connection reset before the server saw it)
is made again. The faults are injected by the fault proxy (in its own process) in front of
the moto server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from _support.proxy_process import proxy_process

import lakekit as lk
from lakekit.errors import TableError

pytestmark = pytest.mark.s3

COMMIT_1 = r"_delta_log/0+1\.json$"

# each operation, run on a table holding ids [0, 1] at version 0; the ids after it
OPERATIONS: dict[str, tuple[Callable[[lk.Table], int], list[int]]] = {
    "append": (lambda t: t.write(pa.table({"id": [2]})), [0, 1, 2]),
    "overwrite": (lambda t: t.write(pa.table({"id": [5]}), mode="overwrite"), [5]),
    "upsert": (lambda t: t.upsert(pa.table({"id": [1, 3]}), on="id"), [0, 1, 3]),
    "delete": (lambda t: t.delete("id = 0"), [1]),
}


def start(uri: str, options: dict[str, Any]) -> None:
    lk.Table(uri, storage_options=options).write(pa.table({"id": [0, 1]}))


@pytest.mark.parametrize("op", list(OPERATIONS))
@pytest.mark.parametrize("fault", ["reset_after", "reset"])
def test_a_commit_whose_reply_is_lost_is_made_once(
        fault: str, op: str, s3_server: Any, s3_bucket: str,
        s3_options: dict[str, Any]) -> None:
    """``reset_after``: the commit landed, its reply did not; the write returns the version
    it made (without the write id: an error, or a second commit). ``reset``: the commit
    never reached the server; it is made again (before: a StorageError for a write that
    was safe to retry)."""
    uri = f"s3://{s3_bucket}/t"
    start(uri, s3_options)
    run, ids = OPERATIONS[op]
    with proxy_process(s3_server.endpoint_url, schedule={"cput": {fault: 1.0}},
                       max_faults=1, match=COMMIT_1) as proxy:
        version = run(lk.Table(uri, storage_options=proxy.options(s3_options)))
        faults = proxy.faults()
    assert faults == [("cput", fault, f"{s3_bucket}/t/_delta_log/00000000000000000001.json")]
    assert version == 1
    clean = lk.Table(uri, storage_options=s3_options)
    assert [c.version for c in clean.history()] == [1, 0]  # one commit, not two
    assert sorted(clean.read().column("id").to_pylist()) == ids  # its rows once


def test_a_lost_response_to_the_creating_commit_returns_version_0(
        s3_server: Any, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    uri = f"s3://{s3_bucket}/new"
    with proxy_process(s3_server.endpoint_url, schedule={"cput": {"reset_after": 1.0}},
                       max_faults=1, match=r"_delta_log/0+\.json$") as proxy:
        version = lk.Table(uri, storage_options=proxy.options(s3_options)).write(
            pa.table({"id": [7, 8]}))
        assert [f[1] for f in proxy.faults()] == ["reset_after"]
    assert version == 0
    clean = lk.Table(uri, storage_options=s3_options)
    assert clean.version == 0
    assert sorted(clean.read().column("id").to_pylist()) == [7, 8]


def test_a_lost_reply_to_a_compaction_restore_or_tag_is_not_an_error(
        s3_server: Any, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    uri = f"s3://{s3_bucket}/t"
    clean = lk.Table(uri, storage_options=s3_options)
    for i in range(3):
        clean.write(pa.table({"id": [i]}))  # versions 0, 1, 2: three small files
    lost_reply = {"cput": {"reset_after": 1.0}}
    with proxy_process(s3_server.endpoint_url, schedule=lost_reply, max_faults=1,
                       match=r"_delta_log/0+3\.json$") as proxy:
        result = lk.Table(uri, storage_options=proxy.options(s3_options)).compact()
        assert [f[1] for f in proxy.faults()] == ["reset_after"]
    assert (result.version, result.files_removed, result.files_added) == (3, 3, 1)
    with proxy_process(s3_server.endpoint_url, schedule=lost_reply, max_faults=1,
                       match=r"_delta_log/0+4\.json$") as proxy:
        assert lk.Table(uri, storage_options=proxy.options(s3_options)).restore(1) == 4
        assert [f[1] for f in proxy.faults()] == ["reset_after"]
    with proxy_process(s3_server.endpoint_url, schedule=lost_reply, max_faults=1,
                       match=r"_lakekit/tags/best\.json$") as proxy:
        # the tag file was created, its answer lost: the retry finds its own bytes
        assert lk.Table(uri, storage_options=proxy.options(s3_options)).tag("best", 2) == 2
        assert [f[1] for f in proxy.faults()] == ["reset_after"]
    assert clean.version == 4 and clean.tags() == {"best": 2}
    assert [c.operation for c in clean.history()][:2] == ["RESTORE", "OPTIMIZE"]
    assert sorted(clean.read().column("id").to_pylist()) == [0, 1]
    with pytest.raises(TableError, match="already exists"):  # another claim still loses
        clean.tag("best", 3)
