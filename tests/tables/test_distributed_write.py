"""Distributed writes: ``Table.write`` of a Dask DataFrame or a Ray Dataset.

Workers write the data files, the driver makes one commit. Checked on local disk and on
the moto S3 server, on a real ``distributed.LocalCluster`` (``dask_client``) and a local
Ray instance (``ray_session``): one version however many partitions, the rows and their
types, statistics in the log, ``txn`` idempotence (also against a racing writer),
overwrite, partitioned tables, schema errors before any task runs, and workers killed
mid-write (no commit; the orphan files are vacuum's).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
import dask.dataframe as dd
import deltalake
import pandas as pd
import pyarrow as pa
import pytest

import lakekit as lk
from lakekit.errors import ConfigError, LakekitError, SchemaMismatchError

# The partition functions below run on the cluster's worker processes, which cannot
# import this test module: ship them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 40  # rows
PARTS = 4

TYPES = {"id": pa.int64(), "kind": pa.string(), "amount": pa.float64(),
         "at": pa.timestamp("us")}


def frame(start: int = 0, n: int = N) -> pd.DataFrame:
    ids = range(start, start + n)
    return pd.DataFrame({
        "id": pd.Series(ids, dtype="int64"),
        "kind": [("view", "click", "buy")[i % 3] for i in ids],
        "amount": [None if i % 7 == 0 else i * 1.5 for i in ids],
        "at": pd.Timestamp("2026-03-01") + pd.to_timedelta(list(ids), unit="min"),
    })


def part_of(i: int, *, n: int = N // PARTS, die: int | None = None, fail: int | None = None,
            marker: str | None = None, block: str | None = None) -> pd.DataFrame:
    """Partition ``i`` of ``frame()``. ``die``: that partition kills its worker process
    (every attempt, or only the first one when ``marker`` names a file to leave behind);
    ``fail``: that partition raises. ``block``: wait (bounded) for that file to exist,
    after touching ``block + ".started<i>"``."""
    if i == fail:
        raise ValueError(f"bad partition {i}")
    if block is not None:
        Path(block + f".started{i}").touch()
        deadline = time.monotonic() + 30
        while not os.path.exists(block) and time.monotonic() < deadline:
            time.sleep(0.05)
    if i == die:
        if marker is None:
            os._exit(1)
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)
    return frame(i * n, n)


def from_parts(**kwargs: Any) -> Any:
    return dd.from_map(functools.partial(part_of, **kwargs), range(PARTS),
                       meta=frame(1, 1).iloc[:0], enforce_metadata=False)


def as_rows(table: pa.Table) -> dict[str, list[Any]]:
    return table.sort_by("id").select(list(TYPES)).to_pydict()


def expected(df: pd.DataFrame) -> dict[str, list[Any]]:
    table = pa.Table.from_pandas(df, preserve_index=False)
    return as_rows(table.cast(pa.schema(TYPES)))


def check_rows(t: lk.Table, df: pd.DataFrame) -> None:
    got = t.read()
    assert {f.name: f.type for f in got.schema} == TYPES
    assert as_rows(got) == expected(df)


def add_actions(t: lk.Table, options: dict[str, Any] | None) -> list[dict[str, Any]]:
    dt = deltalake.DeltaTable(t.location.delta_uri(),
                              storage_options=t.location.delta_storage_options() or None)
    return pa.table(dt.get_add_actions(flatten=True)).to_pylist()


def data_files(t: lk.Table) -> set[str]:
    """Every parquet file under the table, relative to its root (log or not)."""
    fs, root = t.location.fs, t.location.path.rstrip("/")
    fs.invalidate_cache()
    return {p[len(root) + 1:] for p in fs.find(root)
            if p.endswith(".parquet") and "/_delta_log/" not in p}


@pytest.fixture(params=["local", "s3"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[lk.Table, dict | None]:
    """An empty location: local disk or a fresh bucket on the moto server."""
    if request.param == "local":
        return lk.Table(tmp_path / "t"), None
    request.applymarker(pytest.mark.s3)
    bucket = request.getfixturevalue("s3_bucket")
    options = request.getfixturevalue("s3_options")
    return lk.Table(f"s3://{bucket}/t", storage_options=options), options


def test_dask_partitions_make_one_version_with_stats(table: Any, dask_client: Any) -> None:
    t, options = table
    first = frame(1000, 5)
    assert t.write(pa.Table.from_pandas(first, preserve_index=False)) == 0
    df = frame()
    ddf = dd.from_pandas(df, npartitions=PARTS)
    assert t.write(ddf, client=dask_client, metadata={"job": "backfill"}) == 1
    assert t.version == 1 and [c.version for c in t.history()] == [1, 0]
    assert t.history(limit=1)[0].metadata == {"job": "backfill"}
    check_rows(t, pd.concat([first, df]))
    adds = [a for a in add_actions(t, options) if a["min.id"] < 1000]
    assert len(adds) == PARTS  # one file per partition
    assert sum(a["num_records"] for a in adds) == N
    for a in adds:  # statistics of every file: rows, min / max, null counts
        n = a["num_records"]
        assert a["max.id"] - a["min.id"] == n - 1
        assert a["min.kind"] == "buy" and a["max.kind"] == "view"
        assert a["null_count.amount"] == sum(1 for i in range(a["min.id"], a["max.id"] + 1)
                                             if i % 7 == 0)
        assert a["min.at"] is not None and a["null_count.id"] == 0


def test_ray_dataset_makes_one_version_with_stats(table: Any, ray_session: Any) -> None:
    t, options = table
    df = frame()
    ds = ray_session.data.from_pandas([df.iloc[i * 10:(i + 1) * 10] for i in range(PARTS)])
    assert t.write(ds) == 0  # creates the table
    assert t.version == 0
    check_rows(t, df)
    adds = add_actions(t, options)
    assert len(adds) >= PARTS and sum(a["num_records"] for a in adds) == N
    assert all(a["max.id"] - a["min.id"] == a["num_records"] - 1 for a in adds)
    assert t.write(ds, mode="overwrite", txn=("ray-load", 1)) == 1
    assert t.write(ds, mode="overwrite", txn=("ray-load", 1)) == 1  # done: nothing
    check_rows(t, df)


def test_repeated_txn_adds_no_version_and_no_file(table: Any, dask_client: Any) -> None:
    t, _ = table
    ddf = dd.from_pandas(frame(), npartitions=PARTS)
    assert t.write(ddf, txn=("nightly", 7), client=dask_client) == 0
    files = data_files(t)
    assert len(files) == PARTS
    assert t.write(ddf, txn=("nightly", 7), client=dask_client) == 0
    assert t.write(ddf, txn=("nightly", 3), client=dask_client) == 0  # older: done too
    assert t.version == 0 and data_files(t) == files
    assert t.write(ddf, txn=("nightly", 8), client=dask_client) == 1  # the next run writes
    assert t.write(ddf, txn=("other-app", 7), client=dask_client) == 2
    assert t.read().num_rows == 3 * N


def test_txn_of_single_machine_writes(tmp_path: Path) -> None:
    t = lk.Table(tmp_path / "t")
    rows = pa.table({"id": [1, 2]})
    assert t.write(rows, txn=("app", 0)) == 0  # the creating commit records it
    assert t.write(rows, txn=("app", 0)) == 0
    assert t.write(iter(rows.to_batches()), txn=("app", 0)) == 0  # a stream: not read
    assert t.write(rows, mode="overwrite", txn=("app", 1)) == 1
    assert t.write(rows, mode="overwrite", txn=("app", 1)) == 1
    assert t.read().num_rows == 2 and t.version == 1
    for bad in (("", 1), ("app", -1), ("app", True), ("app",), "app"):
        with pytest.raises(ConfigError, match="txn"):
            t.write(rows, txn=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="client="):
        t.write(rows, client=object())
    assert t.version == 1


def test_overwrite_replaces_every_file_in_one_commit(tmp_path: Path, dask_client: Any) -> None:
    t = lk.Table(tmp_path / "t")
    t.write(dd.from_pandas(frame(), npartitions=PARTS), client=dask_client)
    t.write(pa.Table.from_pandas(frame(500, 3), preserve_index=False))
    df = frame(2000, 12)
    assert t.write(dd.from_pandas(df, npartitions=3), mode="overwrite", client=dask_client) == 2
    check_rows(t, df)
    assert len(add_actions(t, None)) == 3
    assert t.read(1).num_rows == N + 3  # history kept


def test_partitioned_table(tmp_path: Path, dask_client: Any) -> None:
    t = lk.Table(tmp_path / "t")
    df = frame()
    ddf = dd.from_pandas(df, npartitions=PARTS)
    assert t.write(ddf, partition_by="kind", client=dask_client) == 0
    assert t.partition_by == ["kind"]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "_delta_log", "kind=buy", "kind=click", "kind=view"]
    adds = add_actions(t, None)
    assert {a["partition.kind"] for a in adds} == {"buy", "click", "view"}
    assert all(a["path"].startswith(f"kind={a['partition.kind']}/") for a in adds)
    assert all("kind" not in a or a.get("min.kind") is None for a in adds)
    assert t.read(filter=[("kind", "=", "buy")]).num_rows == sum(
        1 for i in range(N) if i % 3 == 2)
    check_rows(t, df)
    # an append into the partitioned table, then a plain write reads it all back
    more = frame(N, 8)
    assert t.write(dd.from_pandas(more, npartitions=2), client=dask_client) == 1
    t.write(pa.Table.from_pandas(frame(100, 2), preserve_index=False))
    check_rows(t, pd.concat([df, more, frame(100, 2)]))
    with pytest.raises(ConfigError, match="partitioned by"):
        t.write(ddf, partition_by="id", client=dask_client)


def test_schema_is_checked_before_any_task_runs(tmp_path: Path, dask_client: Any) -> None:
    t = lk.Table(tmp_path / "t")
    t.write(pa.Table.from_pandas(frame(0, 3), preserve_index=False))
    files = data_files(t)
    ran = tmp_path / "ran"
    wrong = dd.from_map(functools.partial(part_of, block=str(ran)), range(PARTS),
                        meta=frame(1, 1).iloc[:0].astype({"id": "float64"}), enforce_metadata=False)
    with pytest.raises(SchemaMismatchError, match="column 'id': the table has int64, the "
                                                   "data has double"):
        t.write(wrong, client=dask_client)
    extra = dd.from_pandas(frame().assign(extra=1), npartitions=PARTS)
    with pytest.raises(SchemaMismatchError, match="'extra' is not in the table"):
        t.write(extra, client=dask_client)
    with pytest.raises(ConfigError, match="schema_mode"):
        t.write(extra, schema_mode="merge", client=dask_client)
    assert not list(tmp_path.glob("ran.started*"))  # no partition was even computed
    assert t.version == 0 and data_files(t) == files
    # a nullable column the data lacks is written as nulls
    fewer = dd.from_pandas(frame(100, 4).drop(columns="amount"), npartitions=2)
    assert t.write(fewer, client=dask_client) == 1
    assert t.read(filter=[("id", ">=", 100)]).column("amount").null_count == 4


def test_killed_worker_leaves_no_commit_and_vacuum_removes_its_files(
    table: Any, dask_client: Any
) -> None:
    t, options = table
    t.write(pa.Table.from_pandas(frame(1000, 3), preserve_index=False))
    committed = data_files(t)
    try:
        with pytest.raises(LakekitError) as info:
            t.write(from_parts(die=3), client=dask_client)
    finally:
        dask_client.wait_for_workers(2, timeout=60)
    message = str(info.value)
    # Dask may give up on a partition that shared the dying worker too (KilledWorker
    # counts every task the worker was processing): the message lists every failed one
    failed = re.search(r"partitions? ([\d, ]+) of 4 failed", message)
    assert failed and "3" in failed.group(1).split(", "), message
    assert "KilledWorker" in message, message
    assert "Nothing was committed" in message and "vacuum" in message
    if options is not None:
        assert str(options["secret"]) not in message
    assert t.version == 0
    orphans = data_files(t) - committed
    # the partitions that did not die wrote their files; the log has none of them
    assert orphans and all(not name.startswith("part-00003-") for name in orphans)
    assert {a["path"] for a in add_actions(t, options)} == committed
    assert set(t.vacuum(retention_hours=0).files) == orphans  # a dry run lists them
    assert set(t.vacuum(retention_hours=0, dry_run=False).files) == orphans
    assert data_files(t) == committed
    assert t.read().num_rows == 3


def test_failed_first_write_of_a_partitioned_table_leaves_only_vacuum_work(
    tmp_path: Path, dask_client: Any
) -> None:
    t = lk.Table(tmp_path / "t")
    with pytest.raises(LakekitError, match=re.escape(
            "partition 1 of 4 failed: ValueError: bad partition 1. Nothing was committed")):
        t.write(from_parts(fail=1), partition_by="kind", client=dask_client)
    assert not t.exists
    left = data_files(t)  # hive directories of the other partitions, and no log
    assert left and all(name.startswith("kind=") for name in left)
    # they do not make the location "foreign": the next write creates the table
    assert t.write(from_parts(), partition_by="kind", client=dask_client) == 0
    check_rows(t, frame())
    assert set(t.vacuum(retention_hours=0).files) == left


def test_worker_killed_once_then_retried_commits_every_row_once(
    tmp_path: Path, dask_client: Any
) -> None:
    t = lk.Table(tmp_path / "t")
    marker = tmp_path / "died-once"
    try:
        version = t.write(from_parts(die=2, marker=str(marker)), client=dask_client)
    finally:
        dask_client.wait_for_workers(2, timeout=60)
    assert marker.exists()  # the first attempt did die
    assert version == 0 and t.version == 0
    check_rows(t, frame())


def test_racing_writers_with_one_txn_commit_once(tmp_path: Path, dask_client: Any) -> None:
    """A distributed write passes its txn check, then, while its tasks run, another
    writer commits the same txn: the distributed write commits nothing."""
    t = lk.Table(tmp_path / "t")
    t.write(pa.Table.from_pandas(frame(1000, 1), preserve_index=False))
    go = tmp_path / "go"
    result: list[Any] = []
    slow = threading.Thread(target=lambda: result.append(
        t.write(from_parts(block=str(go)), txn=("race", 1), client=dask_client)))
    slow.start()
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("go.started*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.glob("go.started*")), "the distributed write never started"
        other = lk.Table(tmp_path / "t")
        assert other.write(pa.Table.from_pandas(frame(0, 5), preserve_index=False),
                           txn=("race", 1)) == 1
    finally:
        go.touch()
        slow.join(timeout=60)
    assert result == [1]  # the txn was committed meanwhile: nothing added
    assert t.version == 1 and t.read().num_rows == 6


def test_deltalake_refuses_a_commit_whose_txn_a_concurrent_commit_wrote(
    tmp_path: Path,
) -> None:
    """What the race above relies on when it is closer still (between lakekit's last
    look at the log and its commit): delta-rs 1.6 rejects the second commit."""
    from deltalake import CommitProperties, Transaction

    lk.Table(tmp_path / "t").write(pa.table({"id": [1]}))
    uri = str(tmp_path / "t")
    first, second = deltalake.DeltaTable(uri), deltalake.DeltaTable(uri)  # same snapshot
    props = CommitProperties(app_transactions=[Transaction("app", 1)])
    first.create_write_transaction([], "append", first.schema(), commit_properties=props)
    with pytest.raises(deltalake.exceptions.CommitFailedError, match="Concurrent transaction"):
        second.create_write_transaction([], "append", second.schema(), commit_properties=props)
    assert deltalake.DeltaTable(uri).version() == 1
