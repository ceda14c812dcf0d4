"""Issue 14: hive partition filters open only the matching files (no schema= needed), and
``iter_batches`` yields batches of exactly ``batch_size`` rows, for every format.

Requests are counted on a user-written filesystem that counts every read (BlobFS) and on
S3 (moto) through the counting proxy."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from _support.s3proxy import CountingProxy, counting_proxy
from _support.testfs import BlobFS
from deltalake import write_deltalake

import lakekit as lk
from lakekit.errors import ConfigError

PARTS = 50
ROWS = 20
PICK = [("part", "in", [7, 31])]
PICKED = {7, 31}


def part_table(p: int, rows: int = ROWS) -> pa.Table:
    ids = list(range(p * 1_000, p * 1_000 + rows))
    return pa.table({"id": pa.array(ids, pa.int64()), "v": [i / 4 for i in ids]})


def encode(table: pa.Table, fmt: str) -> bytes:
    if fmt == "parquet":
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in table.to_pylist()).encode()
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def hive_blobs(fmt: str) -> dict[str, bytes]:
    """50 partitions ``part=0`` .. ``part=49``, one file each."""
    return {f"ev/part={p}/data-0.{fmt}": encode(part_table(p), fmt) for p in range(PARTS)}


def expected(parts: set[int]) -> list[int]:
    return [i for p in sorted(parts) for i in part_table(p).column("id").to_pylist()]


# every way of reading with a filter: (name, read(dataset) -> ids), on a fresh dataset
READS: list[tuple[str, Callable[[lk.Dataset], list[int]]]] = [
    ("to_arrow", lambda ds: ds.to_arrow(filter=PICK).column("id").to_pylist()),
    ("to_polars", lambda ds: ds.to_polars(filter=PICK)["id"].to_list()),
    ("iter_batches", lambda ds: [i for b in ds.iter_batches(filter=PICK, batch_size=7)
                                 for i in b.column("id").to_pylist()]),
    ("count_rows", lambda ds: list(range(ds.count_rows(filter=PICK)))),
    ("head", lambda ds: ds.to_arrow(filter=PICK, n_rows=5).column("id").to_pylist()),
    ("expression", lambda ds: ds.to_arrow(
        filter=pc.field("part").isin([7, 31])).column("id").to_pylist()),
]


def check_read(name: str, got: list[int]) -> None:
    want = expected(PICKED)
    if name == "count_rows":
        assert len(got) == len(want)
    elif name == "head":
        assert got == want[:5]
    else:
        assert got == want


# -- pruning on a counting filesystem -------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_hive_filter_reads_only_the_matching_files(fmt: str) -> None:
    fs = BlobFS()
    for path, data in hive_blobs(fmt).items():
        fs.put(f"lake/{path}", data)
    picked = {f"lake/ev/part={p}/data-0.{fmt}" for p in PICKED}
    for name, read in READS:
        ds = lk.dataset("lake/ev", filesystem=fs)
        fs.reset()
        check_read(name, read(ds))
        if name == "head":  # stops after the rows it needs: the first matching file
            assert set(fs.per_path) <= picked and f"lake/ev/part=7/data-0.{fmt}" in fs.per_path
        else:
            assert set(fs.per_path) == picked, name
        if fmt == "parquet":  # one request for the (small) file's tail, footer and data
            assert fs.read_calls == len(set(fs.per_path)), (name, fs.requests)
    fs.reset()
    t = lk.load("lake/ev", filesystem=fs, filter=PICK, columns=["id", "part"], output="polars")
    assert t["id"].to_list() == expected(PICKED) and set(t["part"].to_list()) == PICKED
    assert set(fs.per_path) == picked


def test_no_matching_partition_reads_the_first_file_once() -> None:
    fs = BlobFS()
    for path, data in hive_blobs("parquet").items():
        fs.put(f"lake/{path}", data)
    ds = lk.dataset("lake/ev", filesystem=fs)
    fs.reset()
    t = ds.to_arrow(filter=[("part", "=", 99)])
    assert t.num_rows == 0 and t.schema == pa.schema(
        [("id", pa.int64()), ("v", pa.float64()), ("part", pa.int64())])
    assert fs.requests == [(p, s, e) for p, s, e in fs.requests
                           if p == "lake/ev/part=0/data-0.parquet"] and fs.read_calls == 1
    assert list(ds.iter_batches(filter=[("part", "=", 99)])) == []
    assert ds.count_rows(filter=[("part", ">", 100)]) == 0 and fs.read_calls == 1


def test_filters_naming_data_columns_too() -> None:
    fs = BlobFS()
    for path, data in hive_blobs("parquet").items():
        fs.put(f"lake/{path}", data)
    want = [i for i in expected(PICKED) if i % 2 == 0]
    # DNF: each AND group's partition terms prune; the rest filters rows
    ds = lk.dataset("lake/ev", filesystem=fs)
    fs.reset()
    dnf = [[("part", "=", 7), ("id", "<", 7_020)], [("part", "=", 31), ("v", ">=", 0)]]
    t = ds.to_arrow(filter=dnf)
    assert t.column("id").to_pylist() == expected(PICKED)
    assert set(fs.per_path) == {f"lake/ev/part={p}/data-0.parquet" for p in PICKED}
    # an expression mixing data and partition columns: the first file types the data columns
    ds = lk.dataset("lake/ev", filesystem=fs)
    fs.reset()
    expr = pc.field("part").isin([7, 31]) & (pc.bit_wise_and(pc.field("id"), 1) == 0)
    assert ds.to_arrow(filter=expr).column("id").to_pylist() == want
    assert set(fs.per_path) == {"lake/ev/part=0/data-0.parquet"} | {
        f"lake/ev/part={p}/data-0.parquet" for p in PICKED}
    # an OR group without a partition term may match any file: all are read
    ds = lk.dataset("lake/ev", filesystem=fs)
    fs.reset()
    assert ds.count_rows(filter=[[("part", "=", 7)], [("id", "=", 3)]]) == ROWS + 1
    assert len(fs.per_path) == PARTS


def test_pruned_schema_rules_and_errors_are_kept() -> None:
    fs = BlobFS()
    # types widen across the matching files only; a column only other files have is
    # still readable (the whole schema is inferred then, as before)
    fs.put_table("lake/ev/part=1/a.parquet", pa.table({"id": pa.array([1], pa.int32())}))
    fs.put_table("lake/ev/part=2/a.parquet", pa.table({"id": pa.array([2], pa.int64())}))
    fs.put_table("lake/ev/part=3/a.parquet",
                 pa.table({"id": pa.array([3], pa.int64()), "extra": ["x"]}))
    ds = lk.dataset("lake/ev", filesystem=fs)
    fs.reset()
    t = ds.to_arrow(filter=[("part", "<=", 2)])
    assert t.schema.field("id").type == pa.int64() and t.column("id").to_pylist() == [1, 2]
    assert t.column_names == ["id", "part"] and "lake/ev/part=3/a.parquet" not in fs.per_path
    t = ds.to_arrow(["id", "extra"], filter=[("part", "=", 1)])
    assert t.to_pydict() == {"id": [1], "extra": [None]}
    # a filter that does not fit the partition types is reported as before
    with pytest.raises(ConfigError, match="invalid filter"):
        lk.dataset("lake/ev", filesystem=fs).to_arrow(filter=pc.field("part") == pc.scalar(b"\x00"))
    with pytest.raises(ConfigError, match="unknown column"):
        lk.dataset("lake/ev", filesystem=fs).to_arrow(["nope"], filter=[("part", "=", 1)])
    # an explicit schema is kept: files are cast to it, nothing else is read
    schema = pa.schema([("id", pa.float64()), ("part", pa.int64())])
    fs.reset()
    t = lk.dataset("lake/ev", filesystem=fs, schema=schema).to_arrow(filter=[("part", "=", 2)])
    assert t.schema == schema and set(fs.per_path) == {"lake/ev/part=2/a.parquet"}


def test_pruning_by_paths_matches_the_read_with_the_whole_schema() -> None:
    fs = BlobFS()
    for region, day in [("eu", 1), ("us", 2), ("__HIVE_DEFAULT_PARTITION__", 3), ("a%2Fb", 4)]:
        fs.put_table(f"lake/ev/region={region}/day={day}/p.parquet",
                     pa.table({"id": [day * 10, day * 10 + 1]}))
    fs.put_table("lake/ev/region=eu/loose.parquet", pa.table({"id": [99]}))  # no day=
    schema = lk.dataset("lake/ev", filesystem=fs).schema
    filters: list[Any] = [
        [("region", "=", "eu")], [("region", "!=", "eu")], [("day", ">=", 2)],
        pc.field("region").is_null(), [("region", "=", "a/b")],
        [[("day", "=", 1)], [("region", "in", ["us"])]], pc.field("day").is_valid(),
    ]
    for f in filters:
        fs.reset()
        got = lk.dataset("lake/ev", filesystem=fs).to_arrow(filter=f)
        opened = set(fs.per_path)
        want = lk.dataset("lake/ev", filesystem=fs, schema=schema).to_arrow(filter=f)
        assert got.sort_by("id").equals(want.sort_by("id")), f
        assert (opened and len(opened) < 5) or f is filters[-1], (f, opened)
    fs.reset()
    t = lk.dataset("lake/ev", filesystem=fs).to_arrow(filter=[("region", "in", ["us"])])
    assert t.column("id").to_pylist() == [20, 21]
    assert set(fs.per_path) == {"lake/ev/region=us/day=2/p.parquet"}


# -- pruning on S3 --------------------------------------------------------------------------

@pytest.fixture
def proxy(s3_server: Any) -> Iterator[CountingProxy]:
    with counting_proxy(s3_server.endpoint_url) as p:
        yield p


def objects(proxy: CountingProxy, fmt: str) -> set[str]:
    """The data objects (``bucket/key``) requests were made for."""
    return {unquote(r.key) for r in proxy.requests if r.key.endswith(f".{fmt}")}


@pytest.mark.s3
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_s3_hive_filter_fetches_only_the_matching_objects(
    fmt: str, s3_bucket: str, s3_options: dict[str, Any], proxy: CountingProxy
) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)
    fs.pipe({f"{s3_bucket}/{k}": v for k, v in hive_blobs(fmt).items()})
    opts = proxy.options(s3_options)
    picked = {f"{s3_bucket}/ev/part={p}/data-0.{fmt}" for p in PICKED}
    for name, read in READS:
        ds = lk.dataset(f"s3://{s3_bucket}/ev", storage_options=opts)
        proxy.reset()
        check_read(name, read(ds))
        fetched = objects(proxy, fmt)
        if name == "head":
            assert fetched and fetched <= picked, name
        else:
            assert fetched == picked, (name, sorted(fetched))
        if fmt == "parquet":  # the tail (footer and the small file's data), once per file
            gets = [r for r in proxy.requests if r.key.endswith(".parquet")]
            assert len(gets) == len(fetched), (name, gets)
    proxy.reset()
    t = lk.load(f"s3://{s3_bucket}/ev", storage_options=opts, filter=PICK, columns=["id"])
    assert t.column("id").to_pylist() == expected(PICKED)
    assert objects(proxy, fmt) == picked
    others = [r for r in proxy.requests if not r.key.endswith(f".{fmt}")]
    assert others and all(r.method in ("GET", "HEAD") for r in others)  # the listing


# -- exact batch sizes ----------------------------------------------------------------------

def write_shards(root: Path, fmt: str) -> None:
    """Three files of 1,000 / 2,500 / 700 rows (parquet row groups of 300; JSONL and CSV
    files larger than one 64 KiB block)."""
    start = 0
    for i, n in enumerate((1_000, 2_500, 700)):
        t = pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                      "name": [f"row-{j:08d}-padding-padding" for j in range(start, start + n)]})
        start += n
        path = root / f"shard_{i}.{fmt}"
        if fmt == "parquet":
            pq.write_table(t, path, row_group_size=300)
        else:
            path.write_bytes(encode(t, fmt))


def check_batches(batches: list[pa.RecordBatch], batch_size: int, whole: pa.Table) -> None:
    sizes = [b.num_rows for b in batches]
    assert all(s == batch_size for s in sizes[:-1]), sizes[:10]
    assert 0 < sizes[-1] <= batch_size
    assert pa.Table.from_batches(batches).equals(whole)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_iter_batches_has_exact_batch_sizes(fmt: str, tmp_path: Path) -> None:
    write_shards(tmp_path, fmt)
    ds = lk.dataset(str(tmp_path))
    whole = ds.to_arrow()
    assert whole.num_rows == 4_200
    for batch_size in (1, 7, 1_000, 65_536, 1 << 20):
        # a small budget: JSONL / CSV in 64 KiB blocks (~1,400 rows), not aligned to batches
        batches = list(ds.iter_batches(batch_size=batch_size, memory_budget=1 << 18))
        check_batches(batches, batch_size, whole)
    reader = ds.to_batch_reader(["id"], filter=pc.field("id") >= 10, batch_size=999)
    sizes = [b.num_rows for b in reader]
    assert sizes == [999] * 4 + [4_190 - 4 * 999]
    columnless = list(ds.iter_batches(columns=[], batch_size=1_000))
    assert [b.num_rows for b in columnless] == [1_000] * 4 + [200]


@pytest.mark.s3
@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_s3_iter_batches_has_exact_batch_sizes(
    fmt: str, tmp_path: Path, s3_bucket: str, s3_options: dict[str, Any]
) -> None:
    import s3fs

    write_shards(tmp_path, fmt)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)
    fs.put(str(tmp_path), f"{s3_bucket}/shards", recursive=True)
    ds = lk.dataset(f"s3://{s3_bucket}/shards", storage_options=s3_options)
    whole = ds.to_arrow()
    assert whole.column("id").to_pylist() == list(range(4_200))
    for batch_size in (7, 1_000, 65_536):
        check_batches(list(ds.iter_batches(batch_size=batch_size, memory_budget=1 << 18)),
                      batch_size, whole)


def test_delta_iter_batches_has_exact_batch_sizes(tmp_path: Path) -> None:
    uri = str(tmp_path / f"t-{uuid.uuid4().hex[:6]}")
    for start, n in ((0, 1_000), (1_000, 2_500), (3_500, 700)):
        write_deltalake(uri, pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                                       "g": [i % 3 for i in range(start, start + n)]}),
                        mode="append", partition_by=["g"])
    table = lk.Table(uri)
    ds = table.dataset()
    whole = ds.to_arrow()
    assert whole.num_rows == 4_200
    for batch_size in (1, 7, 65_536):
        check_batches(list(ds.iter_batches(batch_size=batch_size)), batch_size, whole)
    old = table.dataset(version=1)
    check_batches(list(old.iter_batches(batch_size=333)), 333, old.to_arrow())
