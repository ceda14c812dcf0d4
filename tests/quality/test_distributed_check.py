"""``lk.check(..., engine="dask" | "ray")``: partition by partition, the report a local run gives.

Every dataset here has failures in at least 4 of its partitions; each distributed report is
compared with the local one field by field (``to_dict()`` apart from timings and the engine),
and the failure cases' global row indexes with the rows the failures were planted in.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl
import pyarrow as pa_
import pyarrow.parquet as pq
import pytest
from _support.cli import Cli
from _support.data import SCHEMAS, events

import lakekit as lk
from lakekit.errors import ConfigError, MissingDependencyError

ROWS = 40  # rows per shard
SHARDS = 5
NEWEST = datetime.now(timezone.utc) - timedelta(minutes=5)
# (column, global row) of every failure planted in the shards below
PLANTED = {
    ("user_id", 3), ("user_id", 41), ("user_id", 95), ("user_id", 130), ("user_id", 199),
    ("kind", 44), ("kind", 121), ("kind", 167),
    ("amount", 12), ("amount", 170),
    # event_id 10 appears again at row 120, 47 at row 162: duplicates across partitions
    ("event_id", 10), ("event_id", 120), ("event_id", 47), ("event_id", 162),
}


def shard_tables() -> list[pa_.Table]:
    """Valid events rows, with failures planted in every shard (global rows in PLANTED)."""
    out = []
    for i in range(SHARDS):
        t = events(ROWS, newest=NEWEST, start=i * ROWS, seed=i).to_pydict()
        for column, row in PLANTED:
            if row // ROWS != i:
                continue
            r = row % ROWS
            if column == "user_id":
                t["user_id"][r] = -1
            elif column == "kind":
                t["kind"][r] = "oops"
            elif column == "amount":
                t["amount"][r] = -5.0
        if i == 3:
            t["event_id"][0] = 10
        if i == 4:
            t["event_id"][2] = 47
        out.append(pa_.table(t, schema=events(0, newest=NEWEST).schema))
    return out


def strip(report: lk.QualityReport) -> dict[str, Any]:
    """The report as a dict, less what may differ between runs: timings and the engine."""
    data = report.to_dict()
    for key in ("checked_at", "duration_s", "engine", "partitions"):
        data.pop(key)
    return data


def planted(report: lk.QualityReport) -> set[tuple[str, int]]:
    return {(c, i) for c, i in report.failure_cases.select("column", "index").iter_rows()}


@pytest.fixture
def shards(tmp_path: Path) -> str:
    root = tmp_path / "events"
    root.mkdir()
    for i, t in enumerate(shard_tables()):
        pq.write_table(t, root / f"part-{i}.parquet", row_group_size=15)
    return str(root)


def test_parquet_shards_on_dask_and_ray_equal_the_local_check(
    shards: str, dask_client: Any, ray_session: Any
) -> None:
    from distributed import get_task_stream

    local = lk.check(shards, "events", schemas_dir=SCHEMAS)
    assert local.status == "fail" and planted(local) == PLANTED
    assert len({i // ROWS for _, i in PLANTED}) >= 4
    with get_task_stream(client=dask_client) as stream:
        on_dask = lk.check(shards, "events", schemas_dir=SCHEMAS, engine="dask",
                           client=dask_client)
    checks = [t for t in stream.data if str(t["key"]).startswith("lakekit-check-")]
    assert len(checks) == SHARDS  # one task per file, on the cluster's workers
    on_ray = lk.check(shards, "events", schemas_dir=SCHEMAS, engine="ray")
    assert strip(on_dask) == strip(local)
    assert strip(on_ray) == strip(local)
    assert (on_dask.engine, on_dask.partitions) == ("dask", SHARDS)
    assert (on_ray.engine, on_ray.partitions) == ("ray", SHARDS)
    assert (local.engine, local.partitions) == (None, None)
    assert "validated on dask, 5 partitions" in on_dask.summary().splitlines()[0]
    assert json.loads(on_ray.to_json())["engine"] == "ray"

    # the cap keeps the same first cases, in the same order
    for cap in (0, 3, 9):
        capped = lk.check(shards, "events", schemas_dir=SCHEMAS, max_failure_cases=cap)
        on_dask = lk.check(shards, "events", schemas_dir=SCHEMAS, max_failure_cases=cap,
                           engine="dask", client=dask_client)
        assert strip(on_dask) == strip(capped)
        assert on_dask.failure_cases.height == cap and on_dask.failure_count == len(PLANTED)


def test_delta_table_equals_the_local_check(
    tmp_path: Path, dask_client: Any
) -> None:
    table = lk.Table(str(tmp_path / "events"))
    for t in shard_tables():
        table.write(t)
    table.delete("event_id = 5")  # a file rewritten: the read order is the table's
    local = lk.check(table, "events", schemas_dir=SCHEMAS,
                     volume=lk.Volume(min_rows=10), freshness=lk.Freshness(max_age="1h"))
    on_dask = lk.check(table, "events", schemas_dir=SCHEMAS, engine="dask", client=dask_client,
                       volume=lk.Volume(min_rows=10), freshness=lk.Freshness(max_age="1h"))
    assert local.status == "fail" and local.failure_count == len(PLANTED)
    local_dict, dask_dict = strip(local), strip(on_dask)
    for data in (local_dict, dask_dict):  # freshness is measured against "now" each time
        data["results"][1].pop("observed")
        data["results"][1].pop("message")
        data["results"][1]["details"].pop("now")
    assert dask_dict == local_dict
    assert on_dask.partitions == SHARDS
    assert [r.name for r in on_dask.results] == ["schema", "freshness", "volume"]
    assert on_dask.result("volume").details == local.result("volume").details


def test_jsonl_and_sampling_equal_the_local_check(tmp_path: Path, dask_client: Any) -> None:
    root = tmp_path / "jsonl"
    root.mkdir()
    for i, t in enumerate(shard_tables()[:4]):
        rows = t.drop_columns(["event_time"]).to_pylist()
        (root / f"part-{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    schema = pa.DataFrameSchema({
        "event_id": pa.Column(pl.Int64, unique=True),
        "user_id": pa.Column(pl.Int64, pa.Check.ge(0)),
        "kind": pa.Column(pl.String, pa.Check.isin(["view", "click", "buy"])),
        "amount": pa.Column(pl.Float64, pa.Check.ge(0)),
    }, name="events")
    local = lk.check(str(root), schema)
    on_dask = lk.check(str(root), schema, engine="dask", client=dask_client)
    assert strip(on_dask) == strip(local)
    # without the fifth shard, event_id 47 has no duplicate
    assert planted(local) == {(c, i) for c, i in PLANTED if i < 4 * ROWS} - {("event_id", 47)}
    # sampling: the same rows as a local run (row counts come from a first pass here)
    for n in (25, 1000):
        sampled = lk.check(str(root), schema, sample=n)
        on_dask = lk.check(str(root), schema, sample=n, engine="dask", client=dask_client)
        assert strip(on_dask) == strip(sampled)
        assert on_dask.rows_checked == min(n, 4 * ROWS)


def test_uniqueness_across_partitions_is_decided_globally(shards: str, dask_client: Any) -> None:
    schema = pa.DataFrameSchema({
        "event_id": pa.Column(pl.Int64, unique=True),
        "kind": pa.Column(pl.String, pa.Check.isin(["view", "click", "buy"])),
        "user_id": pa.Column(pl.Int64, unique=True),  # random ids in 0..999: collisions
    }, unique=[["event_id", "user_id"], ["kind"]], name="events")  # the second list fails
    local = lk.check(shards, schema, max_failure_cases=10_000)
    on_dask = lk.check(shards, schema, max_failure_cases=10_000, engine="dask",
                       client=dask_client)
    assert strip(on_dask) == strip(local)
    cases = local.failure_cases
    by_check = dict(cases.group_by("check").len().iter_rows())
    # pandera reports the first list with duplicates (kind): every row, as JSON
    assert by_check["multiple_fields_uniqueness"] == SHARDS * ROWS
    ids = cases.filter(pl.col("column") == "event_id").get_column("index").to_list()
    assert ids == [10, 47, 120, 162]
    users = cases.filter(pl.col("column") == "user_id", pl.col("check") == "field_uniqueness")
    assert users.get_column("index").max() // ROWS > users.get_column("index").min() // ROWS
    # a local sample of the same data, distributed, still decides uniqueness on the sample
    sampled = lk.check(shards, schema, sample=60)
    assert strip(lk.check(shards, schema, sample=60, engine="dask", client=dask_client)) == \
        strip(sampled)


def test_coercion_element_wise_checks_and_check_limits(tmp_path: Path, dask_client: Any) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    for i in range(4):
        pq.write_table(pa_.table({
            "id": [str(i * 10 + r) for r in range(10)],
            "score": ["1.5", "x" if i == 2 else "2", "-3", "4", "5"] * 2,  # fails to coerce
            "n": ["1", "q" if i == 3 else "7"] * 5,  # fails too, but after score
            "tag": [f"t{r % 3}" for r in range(10)],
        }), root / f"p{i}.parquet")
    coercing = pa.DataFrameSchema({
        "id": pa.Column(pl.Int64, coerce=True, unique=True),
        "score": pa.Column(pl.Float64, pa.Check.ge(0), coerce=True),
        "n": pa.Column(pl.Int64, coerce=True),
    }, name="raw")
    row_wise = pa.DataFrameSchema({
        "id": pa.Column(pl.String, pa.Check.str_length(1, 1, n_failure_cases=5)),
        "tag": pa.Column(pl.String, pa.Check(lambda v: v != "t1", element_wise=True,
                                             name="not_t1")),
        "missing": pa.Column(pl.Int64),
    }, checks=[pa.Check(lambda v: v != "2", element_wise=True, name="no_2")], name="raw")
    for schema in (coercing, row_wise):
        local = lk.check(str(root), schema)
        on_dask = lk.check(str(root), schema, engine="dask", client=dask_client)
        assert strip(on_dask) == strip(local), schema
        assert local.status == "fail"
    limited = lk.check(str(root), row_wise)
    assert {"column": "id", "check": "str_length(1, 1)", "failures": 5} in \
        limited.result("schema").details["by_check"]


def test_checks_no_partition_can_decide_are_refused(shards: str, dask_client: Any) -> None:
    mean = pa.Check(lambda d: d.lazyframe.select(pl.col(d.key).mean() > 0), name="mean_positive")
    whole = pa.Check(lambda d: d.lazyframe.select(pl.len() > 10), name="enough_rows")
    schema = pa.DataFrameSchema({"amount": pa.Column(pl.Float64, mean)}, checks=[whole])
    with pytest.raises(ConfigError) as info:
        lk.check(shards, schema, engine="dask", client=dask_client)
    message = str(info.value)
    assert "'mean_positive'" in message and "'enough_rows'" in message
    assert "without engine=" in message and "\n" not in message
    with pytest.raises(ConfigError, match="unique_values_eq"):
        lk.check(shards, pa.DataFrameSchema({"kind": pa.Column(
            pl.String, pa.Check.unique_values_eq(["view", "click", "buy"]))}), engine="ray")
    with pytest.raises(ConfigError, match="drop_invalid_rows"):
        lk.check(shards, pa.DataFrameSchema({"kind": pa.Column(pl.String)},
                                            drop_invalid_rows=True), engine="dask")
    # a sample is validated in one piece, on the driver: every check can run there
    sampled = lk.check(shards, schema, sample=50)
    assert strip(lk.check(shards, schema, sample=50, engine="dask", client=dask_client)) == \
        strip(sampled)
    with pytest.raises(ConfigError, match="already in memory"):
        lk.check(pl.read_parquet(shards), "events", schemas_dir=SCHEMAS, engine="dask")
    with pytest.raises(ConfigError, match="'dask' or 'ray'"):
        lk.check(shards, "events", schemas_dir=SCHEMAS, engine="spark")


@pytest.mark.parametrize(("engine", "module"), [("dask", "dask"), ("ray", "ray")])
def test_a_missing_engine_names_its_extra(shards: str, engine: str, module: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a blocked import
    with pytest.raises(MissingDependencyError) as info:
        lk.check(shards, "events", schemas_dir=SCHEMAS, engine=engine)
    assert f"pip install 'lakekit[{engine}]'" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.s3
def test_on_moto_s3_dask_and_ray_equal_the_local_check(
    s3_bucket: str, s3_options: dict[str, object], dask_client: Any, ray_session: Any
) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)  # type: ignore[arg-type]
    for i, t in enumerate(shard_tables()):
        with fs.open(f"{s3_bucket}/events/part-{i}.parquet", "wb") as f:
            pq.write_table(t, f, row_group_size=15)
    uri = f"s3://{s3_bucket}/events"
    kw: dict[str, Any] = {"schemas_dir": SCHEMAS, "storage_options": s3_options}
    local = lk.check(uri, "events", **kw)
    on_dask = lk.check(uri, "events", engine="dask", client=dask_client, **kw)
    on_ray = lk.check(uri, "events", engine="ray", **kw)
    assert planted(local) == PLANTED
    assert strip(on_dask) == strip(local) == strip(on_ray)
    assert on_dask.partitions == SHARDS
    secret = str(s3_options["secret"])
    assert secret not in on_dask.to_json() + on_dask.summary()


def test_cli_engine_dask_with_a_scheduler_address(shards: str, cli: Cli, dask_client: Any) -> None:
    common = ["check", shards, "--schema", "events", "--schemas-dir", str(SCHEMAS), "--json"]
    code, out, _ = cli(*common)
    assert code == 1
    local = json.loads(out)
    address = dask_client.scheduler.address
    code, out, err = cli(*common, "--engine", "dask", "--scheduler", address)
    assert code == 1, err
    on_dask = json.loads(out)
    assert (on_dask.pop("engine"), on_dask.pop("partitions")) == ("dask", SHARDS)
    for data in (local, on_dask):
        for key in ("checked_at", "duration_s", "engine", "partitions"):
            data.pop(key, None)
    assert on_dask == local
    code, _, err = cli("check", shards, "--schema", "events", "--schemas-dir", str(SCHEMAS),
                       "--scheduler", address)
    assert code == 2 and "--scheduler needs --engine" in err
