"""The loaders on remote filesystems: ``memory://``, a user-written fsspec filesystem that
counts every byte it serves (passed with ``filesystem=``), and S3 (a real moto server).

The behaviour common to all formats and backends is in the contract suite
(tests/io/loader_contract.py, run on memory:// and S3 by tests/io/test_loader_contract.py);
this file keeps what is particular to remote reads: byte ranges, request counts,
credentials."""

from __future__ import annotations

import itertools
import random
import re
import uuid
from collections.abc import Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _support.testfs import BlobFS, parquet_bytes
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakekit as lk
from lakekit.errors import FormatError, NotFoundError, VersionNotFoundError

FOOTER_TAIL = 64 << 10  # what the loader fetches first from the end of a remote file


SCHEMA = pa.schema([("id", pa.int64()), ("user", pa.string()), ("value", pa.float64())])


def events(n: int, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + n, dtype=np.int64)
    return pa.table({"id": ids, "user": [f"u{i % 7}" for i in ids], "value": ids / 2},
                    schema=SCHEMA)


def ids(table: pa.Table) -> list[int]:
    return table.column("id").to_pylist()


def data_files(fs: BlobFS) -> set[str]:
    """Files from which more than the footer tail was fetched."""
    return {p for p, start, end in fs.requests if end != len(fs.blobs[p])}


# -- memory:// ------------------------------------------------------------------------------

@pytest.fixture
def mem() -> Iterator[str]:
    root = f"memory://lk-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def put(url: str, table: pa.Table, **kwargs: object) -> None:
    fsspec.filesystem("memory").pipe(url, parquet_bytes(table, **kwargs))


def test_memory_directory_glob_and_list(mem: str) -> None:
    put(f"{mem}/ev/shard_10.parquet", events(2, 100))
    put(f"{mem}/ev/shard_2.parquet", events(2, 20))
    put(f"{mem}/ev/shard_1.parquet", events(2, 10))
    put(f"{mem}/ev/sub/shard_0.parquet", events(1, 0))
    fsspec.filesystem("memory").pipe(f"{mem}/ev/_SUCCESS", b"")
    ds = lk.dataset(f"{mem}/ev")
    assert ds.files == [f"{mem}/ev/{n}.parquet".replace("memory://", "memory:///")
                        for n in ("shard_1", "shard_2", "shard_10", "sub/shard_0")]
    assert ids(ds.to_arrow()) == [10, 11, 20, 21, 100, 101, 0]
    assert ids(lk.load(f"{mem}/ev/shard_*.parquet")) == [10, 11, 20, 21, 100, 101]
    assert ids(lk.load([f"{mem}/ev/shard_2.parquet", f"{mem}/ev/sub"])) == [20, 21, 0]
    assert lk.load(f"{mem}/ev", columns=["user"], filter=[("id", ">", 100)]).to_pydict() == {
        "user": ["u3"]
    }


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=0, max_value=3_000),
    row_group_size=st.integers(min_value=1, max_value=1_000),
    shards=st.integers(min_value=1, max_value=4),
    columns=st.lists(st.sampled_from(["id", "user", "value"]), min_size=1, max_size=3,
                     unique=True),
)
def test_round_trip_through_byte_ranges(n: int, row_group_size: int, shards: int,
                                        columns: list[str]) -> None:
    """Random row-group layouts read through the byte-range path equal the input."""
    fs = BlobFS()
    table = events(n)
    bounds = np.linspace(0, n, shards + 1).astype(int)
    for i in range(shards):
        fs.put_table(f"rt/part-{i}.parquet", table.slice(bounds[i], bounds[i + 1] - bounds[i]),
                     row_group_size=row_group_size)
    got = lk.load("rt", columns=columns, filesystem=fs, workers=4)
    assert got.equals(table.select(columns))


_range_lists = st.lists(
    st.tuples(st.one_of(st.integers(0, 1 << 17), st.integers(0, 1 << 28)),
              st.one_of(st.integers(1, 1 << 14), st.integers(1, 40 << 20))),
    max_size=40,
).map(lambda pairs: [(start, start + length) for start, length in pairs])


@settings(max_examples=200, deadline=None)
@given(ranges=_range_lists, seed=st.randoms())
def test_merge_ranges_invariants(ranges: list[tuple[int, int]], seed: random.Random) -> None:
    from lakekit.io.parquet import HOLE_MIN, HOLE_RATIO, merge_ranges

    out = merge_ranges(ranges)
    shuffled = list(ranges)
    seed.shuffle(shuffled)
    assert merge_ranges(shuffled) == out  # order of the requests does not matter
    # sorted, disjoint and separated by real gaps
    assert all(s < e for s, e in out)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(out))
    # every requested range is covered by exactly one request
    for s, e in ranges:
        assert sum(1 for os_, oe in out if os_ <= s and e <= oe) == 1
    starts, ends = {s for s, _ in ranges}, {e for _, e in ranges}
    for os_, oe in out:
        # requests begin and end on requested bytes: nothing is fetched past the edges
        assert os_ in starts and oe in ends
        # and a hole fetched inside a request is small next to what it holds
        inside = sorted((s, e) for s, e in ranges if os_ <= s and e <= oe)
        reach = inside[0][1]
        for s, e in inside[1:]:
            if s > reach:
                assert s - reach <= max(HOLE_MIN, HOLE_RATIO * (oe - os_))
            reach = max(reach, e)


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(min_value=1, max_value=1 << 20),
                                st.integers(min_value=1, max_value=40 << 20)), max_size=30))
def test_merge_ranges_caps_merged_requests(pairs: list[tuple[int, int]]) -> None:
    """Ranges separated by real gaps are never merged into a request above MAX_REQUEST."""
    from lakekit.io.parquet import MAX_REQUEST, merge_ranges

    ranges, pos = [], 0
    for gap, length in pairs:
        ranges.append((pos + gap, pos + gap + length))
        pos += gap + length
    for s, e in merge_ranges(ranges):
        assert e - s <= MAX_REQUEST or (s, e) in ranges


# -- a user-written filesystem that counts bytes --------------------------------------------

@pytest.fixture(scope="module")
def wide() -> bytes:
    """A ~20 MB parquet file: 20 random float columns, 4 row groups, uncompressed."""
    rng = np.random.default_rng(0)
    table = pa.table({f"c{i}": rng.random(100_000) for i in range(20)})
    return parquet_bytes(table, row_group_size=25_000, compression="none")


def test_column_pruning_fetches_only_the_needed_column_chunks(wide: bytes) -> None:
    fs = BlobFS()
    fs.put("lake/wide.parquet", wide)
    md = pq.read_metadata(pa.BufferReader(wide))
    chunks = sum(md.row_group(r).column(j).total_compressed_size
                 for r in range(md.num_row_groups) for j in (0, 19))
    ideal = chunks + md.serialized_size + 8
    t = lk.load("blobfs://lake/wide.parquet", columns=["c0", "c19"], filesystem=fs)
    assert t.column_names == ["c0", "c19"] and t.num_rows == 100_000
    assert fs.bytes_read <= 1.25 * ideal
    assert fs.bytes_read < len(wide) / 5
    # merged into few requests: at most one per needed chunk, plus the footer
    assert len(fs.requests) <= 2 * md.num_row_groups + 1


def test_adjacent_columns_are_merged_into_one_request_per_row_group(wide: bytes) -> None:
    fs = BlobFS()
    fs.put("lake/wide.parquet", wide)
    md = pq.read_metadata(pa.BufferReader(wide))
    lk.load("lake/wide.parquet", columns=["c3", "c4", "c5"], filesystem=fs)
    assert len(fs.requests) <= md.num_row_groups + 1
    needed = sum(md.row_group(r).column(j).total_compressed_size
                 for r in range(md.num_row_groups) for j in (3, 4, 5))
    assert fs.bytes_read <= 1.25 * (needed + FOOTER_TAIL)


def test_partition_filter_reads_no_byte_of_skipped_files() -> None:
    fs = BlobFS()
    for year in (2020, 2021, 2022):
        for month in (1, 2):
            fs.put_table(f"lake/ev/year={year}/month={month}/part-0.parquet",
                         events(1_000, year * 10_000 + month * 1_000))
    schema = lk.dataset("lake/ev", filesystem=fs).schema
    fs.reset()
    ds = lk.dataset("lake/ev", filesystem=fs, schema=schema)
    t = ds.to_arrow(filter=(pc.field("year") == 2021) & (pc.field("month") == 2))
    assert t.num_rows == 1_000 and set(t.column("year").to_pylist()) == {2021}
    assert set(fs.per_path) == {"lake/ev/year=2021/month=2/part-0.parquet"}
    assert fs.bytes_under("lake/ev/year=2020") == 0
    # with the schema inferred (every footer is read once for that), the read itself
    # still fetches nothing from the skipped partitions
    ds = lk.dataset("lake/ev", filesystem=fs)
    assert ds.schema.names  # infer the schema (reads every footer) first
    fs.reset()
    assert ds.count_rows(filter=[("year", "=", 2022)]) == 2_000
    assert fs.bytes_under("lake/ev/year=2020") == fs.bytes_under("lake/ev/year=2021") == 0


def test_row_group_statistics_skip_row_groups() -> None:
    fs = BlobFS()
    n = 100_000
    data = parquet_bytes(events(n), row_group_size=10_000, compression="none")
    fs.put("lake/big.parquet", data)
    md = pq.read_metadata(pa.BufferReader(data))
    last = md.row_group(md.num_row_groups - 1)
    last_start = min(last.column(j).data_page_offset if not last.column(j).has_dictionary_page
                     else last.column(j).dictionary_page_offset for j in range(md.num_columns))
    ds = lk.dataset("lake/big.parquet", filesystem=fs, schema=SCHEMA)
    t = ds.to_arrow(filter=pc.field("id") >= 95_000, columns=["id"])
    assert ids(t) == list(range(95_000, n))
    # only the last row group's bytes (and the footer) were fetched
    assert all(start >= last_start for _, start, _ in fs.requests)
    assert fs.bytes_read < len(data) / 5


def test_n_rows_reads_only_the_shards_it_needs() -> None:
    fs = BlobFS()
    for i in range(20):
        fs.put_table(f"lake/s/shard_{i}.parquet", events(20_000, i * 20_000),
                     compression="none")
    total = sum(len(b) for b in fs.blobs.values())
    schema = SCHEMA
    ds = lk.dataset("lake/s", filesystem=fs, schema=schema)
    t = ds.to_arrow(n_rows=25_000, workers=1)
    assert ids(t) == list(range(25_000))
    assert data_files(fs) == {"lake/s/shard_0.parquet", "lake/s/shard_1.parquet"}
    assert set(fs.per_path) <= {f"lake/s/shard_{i}.parquet" for i in range(3)}
    fs.reset()
    t = lk.dataset("lake/s", filesystem=fs, schema=schema).to_arrow(n_rows=25_000)
    assert ids(t) == list(range(25_000))
    assert data_files(fs) == {"lake/s/shard_0.parquet", "lake/s/shard_1.parquet"}
    assert fs.bytes_read < total / 2


def test_parallel_reads_keep_order_under_random_latency() -> None:
    rnd = random.Random(1)
    fs = BlobFS(delay=lambda path: rnd.uniform(0, 0.004))
    start = 0
    for i in range(30):
        n = 1 + (i * 7919) % 900
        fs.put_table(f"lake/p/part_{i}.parquet", events(n, start), row_group_size=128)
        start += n
    ds = lk.dataset("lake/p", filesystem=fs)
    one = ds.to_arrow(workers=1)
    assert ids(one) == list(range(start))
    for _ in range(2):
        assert ds.to_arrow(workers=8).equals(one)
    batches = list(ds.iter_batches(workers=8, batch_size=100))
    assert all(b.num_rows <= 100 for b in batches)
    assert ids(pa.Table.from_batches(batches)) == list(range(start))


def test_iter_batches_keeps_fetched_bytes_within_the_budget() -> None:
    n = 1_000_000
    rng = np.random.default_rng(2)
    data = parquet_bytes(pa.table({"id": np.arange(n), "x": rng.random(n)}),
                         row_group_size=25_000, compression="none", use_dictionary=False)
    fs = BlobFS()
    fs.put("lake/big.parquet", data)
    ds = lk.dataset("lake/big.parquet", filesystem=fs)
    assert ds.schema.names  # infer the schema (reads every footer) first
    budget = 2 << 20
    rows = 0
    ahead = 0.0  # bytes fetched beyond what the rows consumed so far account for
    for batch in ds.iter_batches(batch_size=10_000, workers=8, memory_budget=budget):
        ahead = max(ahead, fs.bytes_read - len(data) * rows / n)
        rows += batch.num_rows
    assert rows == n
    assert fs.bytes_read <= len(data)
    assert ahead <= 1.25 * budget < len(data) / 4


def test_csv_iter_batches_keeps_fetched_bytes_within_the_budget() -> None:
    import pyarrow.csv as pacsv

    n = 1_500_000
    table = pa.table({"id": np.arange(n), "x": np.arange(n) * 2})
    buf = pa.BufferOutputStream()
    pacsv.write_csv(table, buf)
    data = buf.getvalue().to_pybytes()
    fs = BlobFS()
    fs.put("lake/big.csv", data)
    ds = lk.dataset("lake/big.csv", filesystem=fs)
    assert ds.schema.names == ["id", "x"]
    budget = 4 << 20
    fs.reset()
    batches = ds.iter_batches(batch_size=10_000, memory_budget=budget)
    first = next(batches)
    assert first.num_rows == 10_000
    assert fs.bytes_read <= 2 * budget < len(data) / 2
    batches.close()


def test_progress_reports_bytes_and_files(capsys: pytest.CaptureFixture[str]) -> None:
    fs = BlobFS(delay=lambda path: 0.05)  # slow enough for the bar to refresh
    for i in range(12):
        fs.put_table(f"lake/p/part_{i}.parquet", events(100, i * 100))
    ds = lk.dataset("lake/p", filesystem=fs, schema=SCHEMA)
    assert ds.to_arrow(workers=1, progress=True).num_rows == 1_200
    err = capsys.readouterr().err
    assert "lakekit parquet" in err
    assert re.search(r"\d+/12 files", err), err


def test_count_rows_reads_footers_only() -> None:
    fs = BlobFS()
    for i in range(5):
        fs.put_table(f"lake/c/part-{i}.parquet",
                     pa.table({"x": np.arange(200_000)}), compression="none")
    ds = lk.dataset("lake/c", filesystem=fs)
    assert ds.count_rows() == 1_000_000
    assert data_files(fs) == set()
    assert fs.bytes_read <= 5 * FOOTER_TAIL


def test_nested_columns_are_pruned_and_filtered_remotely() -> None:
    fs = BlobFS()
    t = pa.table({
        "id": [1, 2, 3],
        "s": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, None],
        "l": [[1, 2], [], None],
        "m": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
    })
    fs.put_table("n/a.parquet", t)
    for columns in (["s"], ["l", "id"], ["m"]):
        assert lk.load("n/a.parquet", filesystem=fs, columns=columns).equals(t.select(columns))
    got = lk.load("n/a.parquet", filesystem=fs, columns=["id"], filter=pc.field("s", "a") == 2)
    assert got.to_pydict() == {"id": [2]}


def test_user_filesystem_missing_and_corrupt_files() -> None:
    fs = BlobFS()
    fs.put_table("lake/ok/a.parquet", events(3))
    good = parquet_bytes(events(500))
    fs.put("lake/bad/a.parquet", good[: len(good) // 2])
    with pytest.raises(NotFoundError, match="blobfs://lake/missing"):
        lk.load("lake/missing", filesystem=fs)
    with pytest.raises(FormatError, match=re.escape("blobfs://lake/bad/a.parquet")):
        lk.load("lake/bad", filesystem=fs)
    assert ids(lk.load("blobfs://lake/ok", filesystem=fs)) == [0, 1, 2]


def test_delta_on_a_user_filesystem_is_a_clear_error(tmp_path: object) -> None:
    import os

    local = os.path.join(str(tmp_path), "t")
    write_deltalake(local, events(2))
    fs = BlobFS()
    for root, _, files in os.walk(local):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                fs.put("lake/t/" + os.path.relpath(full, local), f.read())
    with pytest.raises(lk.errors.ConfigError, match="Delta tables are not supported"):
        lk.dataset("lake/t", filesystem=fs)


# -- S3 (moto) ------------------------------------------------------------------------------

SECRET = "Sup3rSecret-DoNotLeak-9f8e7d"
KEY_ID = "AKIALAKEKITLEAKCHECK"


@pytest.fixture
def s3(s3_bucket: str, s3_options: dict[str, object]) -> tuple[str, dict[str, object]]:
    """A bucket holding parquet shards, a hive dataset and a Delta table."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)  # type: ignore[arg-type]
    b = s3_bucket
    fs.pipe(f"{b}/ev/shard_10.parquet", parquet_bytes(events(2, 100)))
    fs.pipe(f"{b}/ev/shard_2.parquet", parquet_bytes(events(2, 20)))
    fs.pipe(f"{b}/ev/shard_1.parquet", parquet_bytes(events(2, 10)))
    fs.pipe(f"{b}/ev/_SUCCESS", b"")
    for region in ("eu", "us"):
        fs.pipe(f"{b}/hive/region={region}/part-0.parquet",
                parquet_bytes(events(3, 0 if region == "eu" else 50)))
    return b, s3_options


def _delta_options(opts: dict[str, object], key: str = "testing",
                   secret: str = "testing") -> dict[str, str]:
    endpoint = opts["client_kwargs"]["endpoint_url"]  # type: ignore[index]
    return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_ENDPOINT_URL": str(endpoint), "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1"}


@pytest.mark.s3
def test_s3_directory_glob_list_and_natural_order(s3: tuple[str, dict[str, object]]) -> None:
    b, opts = s3
    ds = lk.dataset(f"s3://{b}/ev/", storage_options=opts)
    assert ds.files == [f"s3://{b}/ev/shard_{i}.parquet" for i in (1, 2, 10)]
    assert ids(ds.to_arrow()) == [10, 11, 20, 21, 100, 101]
    assert ids(lk.load(f"s3://{b}/ev/shard_1*.parquet", storage_options=opts)) == [
        10, 11, 100, 101]
    listed = lk.load([f"s3://{b}/ev/shard_2.parquet", f"s3://{b}/ev/shard_1.parquet"],
                     storage_options=opts, columns=["user", "id"], output="polars")
    assert listed["id"].to_list() == [20, 21, 10, 11] and listed.columns == ["user", "id"]
    assert lk.load(f"s3://{b}/ev", storage_options=opts, n_rows=3, workers=8).num_rows == 3


@pytest.mark.s3
def test_s3_with_deltalake_style_options_and_a_filesystem_instance(
    s3: tuple[str, dict[str, object]]
) -> None:
    import s3fs

    b, opts = s3
    t = lk.load(f"s3://{b}/hive", storage_options=_delta_options(opts),
                filter=[("region", "=", "us")])
    assert ids(t) == [50, 51, 52] and set(t.column("region").to_pylist()) == {"us"}
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)  # type: ignore[arg-type]
    t = lk.load(f"{b}/hive", filesystem=fs, columns=["id"], filter=pc.field("id") < 2)
    assert t.to_pydict() == {"id": [0, 1]}


@pytest.mark.s3
def test_s3_delta_table_versions(s3: tuple[str, dict[str, object]]) -> None:
    b, opts = s3
    uri = f"s3://{b}/delta/events"
    dopts = _delta_options(opts)
    write_deltalake(uri, events(3), storage_options=dopts, partition_by=["user"])
    write_deltalake(uri, events(2, 10), storage_options=dopts, mode="append",
                    partition_by=["user"])
    ds = lk.dataset(uri, storage_options=opts)
    assert ds.format == "delta" and ds.version == 1
    assert sorted(ids(ds.to_arrow())) == [0, 1, 2, 10, 11]
    assert ds.count_rows() == 5
    v0 = lk.load(uri, storage_options=opts, version=0)
    assert sorted(ids(v0)) == [0, 1, 2]
    t = lk.load(uri, storage_options=opts, filter=[("user", "=", "u3")], columns=["id"])
    assert t.to_pydict() == {"id": [10]}
    with pytest.raises(VersionNotFoundError):
        lk.dataset(uri, storage_options=opts, version=5)


@pytest.mark.s3
def test_s3_missing_paths(s3: tuple[str, dict[str, object]]) -> None:
    b, opts = s3
    for url in (f"s3://{b}/nope/", f"s3://{b}/ev/shard_99.parquet", "s3://no-such-bucket-lk/x"):
        with pytest.raises(FileNotFoundError) as info:
            lk.load(url, storage_options=opts)
        assert url.rstrip("/") in str(info.value)


@pytest.mark.s3
def test_s3_credentials_never_appear(s3: tuple[str, dict[str, object]],
                                     s3_server: object) -> None:
    b, opts = s3
    endpoint = opts["client_kwargs"]["endpoint_url"]  # type: ignore[index]
    secret_opts = {"key": KEY_ID, "secret": SECRET,
                   "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    write_deltalake(f"s3://{b}/delta/t", events(2), storage_options=_delta_options(opts))
    seen: list[str] = []
    ds = lk.dataset(f"s3://{b}/ev", storage_options=secret_opts)
    seen += [repr(ds), str(ds.files), ds._repr_html_()]
    assert ds.to_arrow().num_rows == 6
    dds = lk.dataset(f"s3://{b}/delta/t", storage_options=_delta_options(opts, KEY_ID, SECRET))
    seen.append(repr(dds))
    failing = [
        lambda: lk.load(f"s3://{b}/missing/", storage_options=secret_opts),
        lambda: lk.load(f"s3://{b}/ev", storage_options=secret_opts, columns=["nope"]),
        lambda: lk.load(f"s3://{b}/delta/t", storage_options=secret_opts, version=9),
        lambda: lk.load(f"s3://{KEY_ID}:{SECRET}@{b}/ev/", storage_options=secret_opts),
    ]
    for call in failing:
        with pytest.raises(Exception) as info:
            call()
        assert isinstance(info.value, lk.errors.LakekitError), repr(info.value)
        seen += [str(info.value), repr(info.value)]
    for text in seen:
        assert SECRET not in text
        assert KEY_ID not in text
