"""Dataset.to_dask on a real distributed.LocalCluster (2 worker processes): every format on
local disk and moto S3 reads the same rows and types as the local read; projection and
filters reach lakekit's reader on the workers; planning errors surface on the driver; a
worker killed mid-read changes nothing."""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import cloudpickle
import dask
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _support.stores import S3, Csv, Delta, Jsonl, LocalDisk, Parquet, Part, Store, rows

import lakekit as lk
from lakekit.errors import ConfigError, SchemaMismatchError
from lakekit.scale.dask import READ_EVENT

pytestmark = pytest.mark.dask


def read_events(client: Any, since: int) -> list[dict[str, Any]]:
    """The ``lakekit-read`` events the workers logged after the first ``since``."""
    return [msg for _, msg in client.get_events(READ_EVENT)[since:]]


def events_so_far(client: Any) -> int:
    return len(client.get_events(READ_EVENT))


def sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("id", kind="stable").reset_index(drop=True)


class DistributedReadContract:
    """to_dask() for one format on one backend equals the local read."""

    format: ClassVar[str]

    def write(self, store: Store, path: str, parts: Sequence[Part]) -> list[str]:
        raise NotImplementedError

    @pytest.fixture
    def dataset(self, store: Store) -> lk.Dataset:
        parts = [({"region": r}, rows(n, start)) for r, n, start in
                 (("eu", 3, 0), ("eu", 2, 10), ("us", 4, 20), ("us", 1, 30))]
        self.write(store, "events", parts)
        return lk.dataset(store.url("events"), storage_options=store.storage_options)

    def test_equals_the_local_read_row_for_row_and_type_for_type(
            self, dataset: lk.Dataset, dask_client: Any) -> None:
        with dask.config.set({"dataframe.convert-string": False}):
            ddf = dataset.to_dask()
            local = dataset.to_pandas()
            got = dask_client.compute(ddf).result(timeout=60)
        assert ddf.npartitions == 4
        assert list(got.columns) == list(local.columns) == ["id", "user", "value", "region"]
        assert dict(got.dtypes) == dict(local.dtypes)
        if self.format == "delta":  # files in commit order: compare by id
            got, local = sorted_frame(got), sorted_frame(local)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), local.reset_index(drop=True))

    def test_dasks_string_conversion_applies_like_any_dask_reader(
            self, dataset: lk.Dataset, dask_client: Any) -> None:
        got = dask_client.compute(dataset.to_dask(columns=["id", "user"])).result(timeout=60)
        assert str(got["user"].dtype) == "string"  # dataframe.convert-string (Dask's default)
        local = dataset.to_pandas(columns=["id", "user"])
        assert sorted(zip(got["id"], got["user"], strict=True)) == sorted(
            zip(local["id"], local["user"], strict=True))

    def test_projection_and_filters_reach_the_reader(
            self, dataset: lk.Dataset, dask_client: Any) -> None:
        flt = [[("id", ">=", 1), ("region", "=", "eu")], [("id", "=", 30)]]
        ddf = dataset.to_dask(filter=flt)
        # parquet statistics rule out the "us" file holding ids 20..23; text has none
        pieces = 3 if self.format in ("parquet", "delta") else 4
        assert ddf.npartitions == pieces
        since = events_so_far(dask_client)
        total = dask_client.compute(ddf[["value"]].sum()).result(timeout=60)
        expected = dataset.to_pandas(filter=flt)
        assert float(total["value"]) == pytest.approx(float(expected["value"].sum()))
        assert sorted(expected["id"]) == [1, 2, 10, 11, 30]
        events = read_events(dask_client, since)
        assert len(events) == pieces
        # the reader received the projected column (the filter's columns are read, then dropped)
        assert [list(e["columns"]) for e in events] == [["value"]] * pieces, events
        assert sum(e["rows"] for e in events) == 5


class TestParquetLocal(Parquet, LocalDisk, DistributedReadContract):
    pass


class TestJsonlLocal(Jsonl, LocalDisk, DistributedReadContract):
    pass


class TestCsvLocal(Csv, LocalDisk, DistributedReadContract):
    pass


class TestDeltaLocal(Delta, LocalDisk, DistributedReadContract):
    pass


class TestParquetS3(Parquet, S3, DistributedReadContract):
    pass


class TestJsonlS3(Jsonl, S3, DistributedReadContract):
    pass


class TestCsvS3(Csv, S3, DistributedReadContract):
    pass


class TestDeltaS3(Delta, S3, DistributedReadContract):
    pass


# -- parquet specifics ---------------------------------------------------------------------

def write_row_groups(path: Path, n_files: int, rows_per_file: int, row_group: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        pq.write_table(rows(rows_per_file, i * rows_per_file), path / f"part-{i}.parquet",
                       row_group_size=row_group)


def test_split_by_row_group_prunes_groups_before_tasks_exist(
        tmp_path: Path, dask_client: Any) -> None:
    write_row_groups(tmp_path / "ds", n_files=2, rows_per_file=1000, row_group=100)
    ds = lk.dataset(tmp_path / "ds")
    assert ds.to_dask().npartitions == 2
    small = ds.to_dask(split="row_group", piece_bytes=1)  # one row group per partition
    assert small.npartitions == 20
    flt = [("id", ">=", 1450), ("id", "<", 1720)]
    pruned = ds.to_dask(filter=flt, split="row_group", piece_bytes=1)
    assert pruned.npartitions == 4  # ids 1400-1499, ..., 1700-1799 of the second file
    pieces = ds.pieces(filter=flt, split="row_group", piece_bytes=1)
    assert [(Path(p.entry.path).name, p.row_groups) for p in pieces] == [
        ("part-1.parquet", (g,)) for g in (4, 5, 6, 7)]
    got = dask_client.compute(pruned).result(timeout=60)
    assert got["id"].tolist() == list(range(1450, 1720))


def test_shards_with_evolving_schemas(tmp_path: Path, dask_client: Any) -> None:
    root = tmp_path / "evolving"
    root.mkdir()
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32())}), root / "a.parquet")
    pq.write_table(pa.table({"id": pa.array([3], pa.int64()), "note": ["new"]}),
                   root / "b.parquet")
    ds = lk.dataset(root)
    assert ds.schema == pa.schema([("id", pa.int64()), ("note", pa.string())])
    with dask.config.set({"dataframe.convert-string": False}):
        got = dask_client.compute(ds.to_dask()).result(timeout=60)
        local = ds.to_pandas()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), local)
    assert got["note"].isna().tolist() == [True, True, False]


def test_a_schema_conflict_is_raised_on_the_driver_naming_both_files(tmp_path: Path) -> None:
    root = tmp_path / "conflict"
    root.mkdir()
    pq.write_table(pa.table({"id": [1], "amount": ["12.5"]}), root / "old.parquet")
    pq.write_table(pa.table({"id": [2], "amount": [7.25]}), root / "new.parquet")
    with pytest.raises(SchemaMismatchError) as info:
        lk.dataset(root).to_dask()  # before any task exists: no client is involved
    text = str(info.value)
    assert "old.parquet" in text and "new.parquet" in text and "'amount'" in text


def test_an_empty_plan_gives_an_empty_frame_with_the_schema(tmp_path: Path) -> None:
    write_row_groups(tmp_path / "ds", n_files=2, rows_per_file=10, row_group=5)
    ddf = lk.dataset(tmp_path / "ds").to_dask(columns=["id"], filter=[("id", ">", 10**6)])
    got = ddf.compute(scheduler="sync")
    assert list(got.columns) == ["id"] and len(got) == 0 and str(got["id"].dtype) == "int64"


def test_unknown_columns_and_bad_split_are_refused(tmp_path: Path) -> None:
    write_row_groups(tmp_path / "ds", n_files=1, rows_per_file=10, row_group=5)
    ds = lk.dataset(tmp_path / "ds")
    with pytest.raises(ConfigError, match="unknown column"):
        ds.to_dask(columns=["nope"])
    with pytest.raises(ConfigError, match="split"):
        ds.to_dask(split="rows")  # type: ignore[arg-type]


@pytest.mark.s3
def test_the_dataset_travels_as_a_small_spec_without_credentials(
        s3_bucket: str, s3_options: dict[str, Any], s3_server: Any) -> None:
    store = Store(f"s3://{s3_bucket}", storage_options=s3_options)
    Parquet().write(store, "ds", [({}, rows(50, i * 50)) for i in range(4)])
    secret = "sEcReT-" + s3_bucket
    options = {**s3_options, "secret": secret}  # moto accepts any secret
    ds = lk.dataset(f"s3://{s3_bucket}/ds", storage_options=options)
    blob = cloudpickle.dumps(ds)
    assert len(blob) < 8_000
    again = pickle.loads(blob)
    assert secret not in repr(again) and secret not in repr(ds)
    ddf = again.to_dask()
    assert secret not in repr(ddf) and all(secret not in str(k) for k in ddf.dask)
    # rebuilt without listing or footer reads: files and schema are in the spec
    assert again.files == ds.files and again.schema == ds.schema
    pieces = ds.pieces()
    assert all(p.footer for p in pieces)  # the footers read at planning travel with them
    got = pa.concat_tables(again.read_piece(p) for p in pieces)
    assert got.equals(ds.to_arrow())
    table = lk.Table(f"s3://{s3_bucket}/t", storage_options=options)
    assert secret not in repr(pickle.loads(cloudpickle.dumps(table)))


def test_a_worker_killed_mid_read_is_retried_with_identical_results(
        s3_bucket: str, s3_options: dict[str, Any], dask_client: Any) -> None:
    store = Store(f"s3://{s3_bucket}", storage_options=s3_options)
    Parquet().write(store, "many", [({}, rows(2000, i * 2000)) for i in range(60)])
    ds = lk.dataset(f"s3://{s3_bucket}/many", storage_options=s3_options)
    expected = ds.to_pandas()
    dask_client.wait_for_workers(2, timeout=60)
    before = set(dask_client.scheduler_info()["workers"])
    since = events_so_far(dask_client)
    future = dask_client.compute(ds.to_dask())
    deadline = time.monotonic() + 60
    while len(read_events(dask_client, since)) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = sorted(before)[0]
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    got = future.result(timeout=120)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_dtype=False)  # strings: string[pyarrow] vs object
    assert (got.dtypes.astype(str) != "object").all()
    dask_client.wait_for_workers(2, timeout=60)
    after = set(dask_client.scheduler_info()["workers"])
    assert victim not in after  # the worker really died and a new one took its place
    reads = read_events(dask_client, since)
    # every piece read, and the pieces whose results died with the victim read again
    assert len(reads) > 60, len(reads)
