"""``Dataset.to_ray()``: a Ray dataset read by lakekit, equal to ``to_arrow()``.

Every format (parquet shards with row groups and an evolving schema, hive partitions,
JSONL, CSV, a Delta table written by ``lk.Table``, a Delta table with column mapping), on
local disk and on the moto S3 server, with DNF filters and column selections: the rows and
types of the Ray dataset are ``to_arrow()``'s. Row for row where Ray preserves the order
(``execution_options.preserve_order``, set on the Ray dataset's own context), as sorted
rows under Ray's default. What the readers received is asserted: the columns each read
task was given after Ray's projection pushdown, and, on S3, the bytes the Ray workers
fetched (through a counting proxy in front of moto).

Delta tables with deletion vectors are not here yet: their builders are on another branch.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import deltalake
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from _support.delta_features import dv_table
from _support.s3proxy import CountingProxy, counting_proxy

import lakekit as lk
from lakekit.errors import MissingDependencyError
from lakekit.scale.ray import NAME, STUB_COLUMN

pytestmark = pytest.mark.timeout(180)

KEY, SECRET = "AKIALAKEKITRAYTESTKEY", "ray-test-secret-never-shown-0f3c9a"
TIMEOUT = 60  # seconds, for each ray.get


# -- data ------------------------------------------------------------------------------------

def build(root: Path) -> None:
    """Every dataset the tests read, under ``root``."""
    # parquet shards with row groups; a later shard widens id int32 -> int64, another adds
    # a column
    (root / "parquet").mkdir()
    for i, (id_type, extra) in enumerate([(pa.int32(), False), (pa.int64(), False),
                                          (pa.int32(), True)]):
        n = 10
        cols: dict[str, Any] = {
            "id": pa.array(range(i * n, i * n + n), id_type),
            "s": pa.array([f"s{j % 4}" for j in range(n)]),
            "when": pa.array(np.arange(n) * 1_000_000 + i, pa.timestamp("us", tz="UTC")),
            "tags": pa.array([[j, j + 1] for j in range(n)], pa.list_(pa.int16())),
        }
        if extra:
            cols["extra"] = pa.array(np.arange(n) / 4)
        pq.write_table(pa.table(cols), root / "parquet" / f"part-{i}.parquet", row_group_size=4)
    # hive partitions
    for year, start in [(2023, 0), (2024, 6)]:
        d = root / "hive" / f"year={year}"
        d.mkdir(parents=True)
        pq.write_table(pa.table({"id": pa.array(range(start, start + 6), pa.int64()),
                                 "v": np.arange(6) * 1.5}), d / "data.parquet")
    # JSONL: the second file adds a field
    (root / "jsonl").mkdir()
    for name, ids, more in [("a", range(4), False), ("b", range(4, 9), True)]:
        with open(root / "jsonl" / f"{name}.jsonl", "w") as f:
            for i in ids:
                f.write(json.dumps({"id": i, "s": f"s{i}", **({"f": i / 2} if more else {})})
                        + "\n")
    # CSV
    (root / "csv").mkdir()
    pcsv.write_csv(pa.table({"id": [1, 2, 3], "s": ["a", "b", "c"]}), root / "csv" / "a.csv")
    pcsv.write_csv(pa.table({"id": [4, 5], "s": ["d", "e"]}), root / "csv" / "b.csv")
    # Delta, written by lakekit: partitioned, two versions
    table = lk.Table(str(root / "delta"))
    table.write(pa.table({"id": pa.array(range(5), pa.int64()), "p": list("abaab"),
                          "x": np.arange(5) * 1.5}), partition_by=["p"])
    table.write(pa.table({"id": pa.array(range(5, 9), pa.int64()), "p": list("abcc"),
                          "x": np.arange(4) * 2.5}))
    # Delta with column mapping: physical names in the files are not the columns' names
    data = pa.table({"id": pa.array(range(6), pa.int64()),
                     "name with space": [f"n{i}" for i in range(6)], "v": np.arange(6) / 3})
    deltalake.write_deltalake(str(root / "delta_cm"), data,
                              configuration={"delta.columnMapping.mode": "name"})
    deltalake.write_deltalake(str(root / "delta_cm"), data, mode="append")
    # Delta with deletion vectors (inline and in a DV file), partitioned
    dv_table(str(root / "delta_dv"), partitioned=True)
    dv_table(str(root / "delta_dv_file"), storage="file", column_mapping=True)


@pytest.fixture(scope="module")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-data")
    build(root)
    return root


@pytest.fixture(scope="module")
def s3_root(s3_server: Any, local_root: Path) -> tuple[str, dict[str, Any]]:
    """The same datasets in a bucket; storage options with distinctive credentials."""
    import s3fs

    bucket = f"ray-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    options = dict(s3_server.storage_options, key=KEY, secret=SECRET)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    fs.put(str(local_root), f"{bucket}/lake", recursive=True)
    return f"s3://{bucket}/lake", options


@pytest.fixture
def proxy(s3_server: Any) -> Iterator[CountingProxy]:
    with counting_proxy(s3_server.endpoint_url) as p:
        yield p


def open_dataset(where: str, name: str, local_root: Path, request: pytest.FixtureRequest
                 ) -> lk.Dataset:
    if where == "local":
        return lk.dataset(str(local_root / name))
    base, options = request.getfixturevalue("s3_root")
    return lk.dataset(f"{base}/{name}", storage_options=options)


# -- helpers ---------------------------------------------------------------------------------

def ray_arrow(rd: Any) -> pa.Table:
    """The Ray dataset's blocks, in Ray's block order, as one table."""
    import ray

    tables = ray.get(rd.to_arrow_refs(), timeout=TIMEOUT)
    if not tables:  # Ray drops empty blocks: an empty dataset has its schema only
        return rd.schema(fetch_if_missing=False).base_schema.empty_table()
    return pa.concat_tables(tables)


def ordered(rd: Any) -> Any:
    """``rd`` with Ray keeping the blocks in read-task order (on its own context only)."""
    rd.context.execution_options.preserve_order = True
    return rd


def read_op(rd: Any) -> Any:
    """The Read operator of ``rd``'s plan after Ray's logical optimizer (projection pushdown
    applied), as Ray's own tests inspect it."""
    from ray.data._internal.logical.optimizers import LogicalOptimizer

    op = LogicalOptimizer().optimize(rd._logical_plan).dag
    while op.input_dependencies:
        op = op.input_dependencies[0]
    assert op.name == f"Read{NAME}"
    return op


def read_tasks(rd: Any) -> list[Any]:
    return read_op(rd).datasource.get_read_tasks(1)


def assert_same(got: pa.Table, expected: pa.Table) -> None:
    assert got.schema == expected.schema, f"{got.schema}\n!=\n{expected.schema}"
    assert got.equals(expected), f"{got.to_pydict()}\n!=\n{expected.to_pydict()}"


# -- equal to to_arrow ------------------------------------------------------------------------

CASES = {
    # case: (dataset, arguments of a selective read (to_ray and to_arrow), how to split)
    "parquet": ("parquet", {"columns": ["extra", "id", "tags"], "filter": [("id", ">=", 7)]},
                {"split": "row_group", "piece_bytes": 1}),
    "hive": ("hive", {"filter": [[("year", "=", 2024), ("v", ">", 3.0)], [("id", "<", 2)]]},
             {}),
    "jsonl": ("jsonl", {"columns": ["f", "id"], "filter": [("id", ">", 2)]}, {}),
    "csv": ("csv", {"filter": [("s", "in", ["b", "d"])]}, {}),
    "delta": ("delta", {"columns": ["x", "p"], "filter": [("p", "=", "a")]}, {}),
    "delta_column_mapping": ("delta_cm", {"columns": ["name with space", "id"],
                                          "filter": [("v", ">", 0.5)]}, {}),
    "delta_deletion_vectors": ("delta_dv", {"columns": ["id"], "filter": [("id", ">", 50)]},
                               {}),
    "delta_dv_file_column_mapping": ("delta_dv_file", {"filter": [("id", "<", 90)]}, {}),
}


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
@pytest.mark.parametrize("case", list(CASES))
def test_to_ray_equals_to_arrow_row_for_row_and_type_for_type(
    ray_session: Any, local_root: Path, request: pytest.FixtureRequest, where: str, case: str
) -> None:
    name, selective, split = CASES[case]
    ds = open_dataset(where, name, local_root, request)
    for args in ({}, selective):
        expected = ds.to_arrow(**args)
        assert expected.num_rows > 0
        rd = ordered(ds.to_ray(**args, **split))  # type: ignore[arg-type]
        # the schema is known before anything runs: the read tasks carry it
        schema = rd.schema(fetch_if_missing=False)
        assert schema is not None and list(schema.types) == list(expected.schema.types)
        assert_same(ray_arrow(rd), expected)
        # each reader was given exactly the columns asked for, and the filter
        for task in read_tasks(rd):
            assert task.read_fn.columns == expected.column_names
            assert task.read_fn.filter == args.get("filter")


def test_without_preserve_order_the_same_rows_come_in_ray_s_order(
    ray_session: Any, local_root: Path
) -> None:
    """Ray's default (preserve_order off) yields blocks as tasks finish: the same rows."""
    ds = lk.dataset(str(local_root / "parquet"))
    rd = ds.to_ray(split="row_group", piece_bytes=1)
    assert not rd.context.execution_options.preserve_order
    assert_same(ray_arrow(rd).sort_by("id"), ds.to_arrow().sort_by("id"))


def test_arrow_types_come_out_as_to_arrow_types(ray_session: Any, tmp_path: Path) -> None:
    """Types Ray could convert (large strings, dictionaries, fixed-size lists as tensors,
    maps, decimals) stay as read, also where Ray concatenates blocks into a batch."""
    n = 4
    for i, words in enumerate([["a", "b"], ["c", "d"]]):  # different dictionaries
        pq.write_table(pa.table({
            "id": pa.array(range(i * n, i * n + n), pa.int64()),
            "large": pa.array([f"x{j}" for j in range(n)], pa.large_string()),
            "word": pa.array(words * (n // 2)).dictionary_encode(),
            "vec": pa.array([[1.0, float(j)] for j in range(n)], pa.list_(pa.float32(), 2)),
            "map": pa.array([[("k", j)] for j in range(n)], pa.map_(pa.string(), pa.int64())),
            "dec": pa.array([Decimal(f"{j}.25") for j in range(n)], pa.decimal128(12, 2)),
            "st": pa.array([{"a": j, "b": None} for j in range(n)],
                           pa.struct([("a", pa.int64()), ("b", pa.string())])),
            "none": pa.nulls(n),
        }), tmp_path / f"{i}.parquet")
    ds = lk.dataset(str(tmp_path))
    expected = ds.to_arrow()
    rd = ordered(ds.to_ray())
    assert_same(ray_arrow(rd), expected)
    batches = list(rd.iter_batches(batch_format="pyarrow", batch_size=1000))
    assert len(batches) == 1  # both blocks, concatenated by Ray
    assert_same(pa.Table.from_batches(batches[0].to_batches()), expected)


# -- projection pushdown ----------------------------------------------------------------------

def test_select_columns_reaches_the_reader(ray_session: Any, local_root: Path) -> None:
    ds = lk.dataset(str(local_root / "parquet"))
    rd = ordered(ds.to_ray(filter=[("extra", ">", 1.0)]))
    sel = rd.select_columns(["s", "id"])  # Ray's order, without the filter's column
    op = read_op(sel)
    assert op.datasource.columns() == ["s", "id"]
    tasks = op.datasource.get_read_tasks(1)
    assert [t.read_fn.columns for t in tasks] == [["s", "id"]] * len(tasks)
    assert op.datasource.estimate_inmemory_data_size() < read_op(rd).datasource \
        .estimate_inmemory_data_size()
    assert_same(ray_arrow(sel), ds.to_arrow(["s", "id"], filter=[("extra", ">", 1.0)]))
    # a projection Ray keeps above the read (a rename) still narrows the read
    renamed = rd.rename_columns({"s": "label"}).select_columns(["label"])
    assert read_op(renamed).datasource.columns() == ["s"]
    assert ray_arrow(renamed).column("label").to_pylist() == \
        ds.to_arrow(["s"], filter=[("extra", ">", 1.0)]).column("s").to_pylist()


@pytest.mark.s3
def test_on_s3_the_workers_fetch_only_the_projected_column_chunks(
    ray_session: Any, s3_server: Any, s3_bucket: str, proxy: CountingProxy
) -> None:
    import s3fs

    options = dict(s3_server.storage_options, key=KEY, secret=SECRET)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    rng = np.random.default_rng(7)
    n = 60_000
    chunks: dict[str, list[tuple[int, int]]] = {}
    sizes = {}
    for i in range(2):
        table = pa.table({"a": np.arange(n, dtype=np.int64) + i * n,
                          **{c: rng.random(n) for c in "bcd"}})
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=20_000, compression="none")
        key = f"{s3_bucket}/wide/part-{i}.parquet"
        fs.pipe(key, buf.getvalue())
        md = pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata
        chunks[key] = []
        for g in range(md.num_row_groups):
            col = md.row_group(g).column(0)
            start = col.dictionary_page_offset or col.data_page_offset
            chunks[key].append((start, start + col.total_compressed_size))
        sizes[key] = len(buf.getvalue())

    ds = lk.dataset(f"s3://{s3_bucket}/wide/", storage_options=proxy.options(options))
    rd = ds.to_ray()  # plans on the driver: listing and footers, through the proxy
    assert proxy.requests, "the proxy saw no request: the reads did not go through it"
    proxy.reset()
    sel = rd.select_columns(["a"])
    got = ray_arrow(sel)
    assert got.schema.names == ["a"] and got.num_rows == 2 * n
    assert sorted(got.column("a").to_pylist()) == list(range(2 * n))

    served = proxy.requests
    assert served and {r.method for r in served} == {"GET"}
    needed = sum(e - s for spans in chunks.values() for s, e in spans)
    fetched = sum(r.nbytes for r in served)
    # the footers read while planning travel with the pieces: the workers fetch column a
    # and nothing else (no footer, not the 64 KiB tail pyarrow opens a file with)
    assert fetched == needed
    assert fetched < sum(sizes.values()) / 2
    for r in served:
        assert r.range is not None
        start, end = (int(x) for x in r.range.removeprefix("bytes=").split("-"))
        assert any(s <= start and end < e for s, e in chunks[r.key]), (r, chunks[r.key])


# -- sizes, schema, pruning, limits ------------------------------------------------------------

def test_read_tasks_carry_rows_sizes_and_files_from_the_plan(
    ray_session: Any, local_root: Path
) -> None:
    ds = lk.dataset(str(local_root / "parquet"))
    pieces = ds.pieces(split="row_group", piece_bytes=1)
    rd = ds.to_ray(split="row_group", piece_bytes=1)
    tasks = read_tasks(rd)
    assert len(tasks) == len(pieces) == 9  # one task per row group (3 files x 3 groups)
    assert [t.metadata.num_rows for t in tasks] == [p.rows for p in pieces]
    assert [t.metadata.size_bytes for t in tasks] == [p.nbytes for p in pieces]
    assert [list(t.metadata.input_files) for t in tasks] == \
        [[ds.location.url_of(p.entry.path)] for p in pieces]
    source = read_op(rd).datasource
    assert source.estimate_inmemory_data_size() == sum(p.nbytes for p in pieces) > 0
    assert rd.count() == ds.count_rows() == 30
    assert sorted(rd.input_files()) == sorted(ds.files)
    # rows after a filter are unknown until read
    filtered = ds.to_ray(filter=[("id", ">=", 7)])
    assert {t.metadata.num_rows for t in read_tasks(filtered)} == {None}
    # Ray's limit reaches the read tasks
    first = ordered(ds.to_ray()).limit(3)
    assert_same(ray_arrow(first), ds.to_arrow(n_rows=3))


def test_count_comes_from_the_footers_without_reading(
    ray_session: Any, local_root: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "parquet"
    shutil.copytree(local_root / "parquet", copy)
    rd = lk.dataset(str(copy)).to_ray()
    shutil.rmtree(copy)  # nothing left to read: only the planned footers can answer
    assert rd.count() == 30


def test_filters_prune_before_the_tasks_exist(ray_session: Any, local_root: Path) -> None:
    hive = lk.dataset(str(local_root / "hive"))
    rd = hive.to_ray(filter=[("year", "=", 2024)])
    assert rd.input_files() == [f for f in hive.files if "year=2024" in f]
    parquet = lk.dataset(str(local_root / "parquet"))
    rd = parquet.to_ray(filter=[("id", ">=", 25)], split="row_group", piece_bytes=1)
    tasks = read_tasks(rd)  # row-group statistics: only part-2's last two row groups
    assert [(t.read_fn.piece.entry.path.rsplit("/", 1)[1], t.read_fn.piece.row_groups)
            for t in tasks] == [("part-2.parquet", (1,)), ("part-2.parquet", (2,))]
    assert_same(ray_arrow(ordered(rd)), parquet.to_arrow(filter=[("id", ">=", 25)]))


def test_a_plan_of_no_pieces_is_an_empty_dataset_with_the_schema(
    ray_session: Any, local_root: Path
) -> None:
    ds = lk.dataset(str(local_root / "hive"))
    nothing = [("year", "=", 1999)]
    assert ds.pieces(filter=nothing) == []
    expected = ds.to_arrow(["v", "year"], filter=nothing)
    rd = ds.to_ray(["v", "year"], filter=nothing)
    schema = rd.schema(fetch_if_missing=False)
    assert schema is not None and list(schema.names) == ["v", "year"]
    assert list(schema.types) == list(expected.schema.types)
    assert rd.count() == 0
    assert rd.take_all() == []
    assert_same(ray_arrow(rd), expected)


def test_count_with_a_filter_reads_rows_without_columns(
    ray_session: Any, local_root: Path
) -> None:
    """Ray's count() pushes down a projection of no columns; the blocks still count."""
    from ray.data._internal import arrow_block

    assert arrow_block._BATCH_SIZE_PRESERVING_STUB_COL_NAME == STUB_COLUMN
    ds = lk.dataset(str(local_root / "jsonl"))
    assert ds.to_ray(filter=[("id", ">", 2)]).count() == ds.count_rows(filter=[("id", ">", 2)])
    assert ds.to_ray(columns=[]).count() == 9


# -- what travels, and what is shown ---------------------------------------------------------

def test_read_tasks_stay_small_whatever_the_number_of_files(
    ray_session: Any, tmp_path: Path
) -> None:
    import ray

    for i in range(60):
        pq.write_table(pa.table({"id": [i]}), tmp_path / f"a-rather-long-file-name-{i:04d}.parquet")
    ds = lk.dataset(str(tmp_path))
    tasks = read_tasks(ds.to_ray())
    assert len(tasks) == 60
    spec = len(ray.cloudpickle.dumps(ds))
    sizes = [len(ray.cloudpickle.dumps(t)) for t in tasks]
    assert max(sizes) < 2048 < spec  # a reference to the dataset, not the dataset
    assert ray_arrow(ds.to_ray()).num_rows == 60


def test_the_ray_dataset_runs_where_it_is_sent(ray_session: Any, local_root: Path) -> None:
    """Pickled into a Ray task (as Ray Train sends datasets to its workers) and run there."""
    ray = ray_session
    ds = lk.dataset(str(local_root / "delta"))
    rd = ds.to_ray(["id", "x"], filter=[("p", "!=", "c")])

    @ray.remote
    def total(rd: Any) -> tuple[int, float]:
        tables = [b for b in rd.iter_batches(batch_format="pyarrow", batch_size=None)]
        return sum(t.num_rows for t in tables), sum(pc.sum(t["x"]).as_py() for t in tables)

    expected = ds.to_arrow(["id", "x"], filter=[("p", "!=", "c")])
    rows, x = ray.get(total.remote(rd), timeout=TIMEOUT)
    assert rows == expected.num_rows and x == pytest.approx(pc.sum(expected["x"]).as_py())


@pytest.mark.s3
def test_credentials_stay_out_of_ray_s_names_reprs_and_stats(
    ray_session: Any, local_root: Path, request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str]
) -> None:
    ds = open_dataset("s3", "parquet", local_root, request)
    rd = ds.to_ray(["id", "s"], filter=[("id", ">", 3)])
    ray_arrow(rd)
    op = read_op(rd)
    rd.explain()  # the logical and physical plans, with the operators' (tasks') names
    explained = capsys.readouterr().out
    assert op.name == "ReadLakekit" and "TaskPoolMapOperator[ReadLakekit]" in explained
    shown = [repr(rd), str(rd), rd.stats(), op.name, repr(op.datasource),
             op.datasource.get_name(), *(repr(t.read_fn) for t in read_tasks(rd)),
             *rd.input_files(), explained]
    for text in shown:
        assert KEY not in text and SECRET not in text, text


def test_without_ray_the_error_names_the_extra(
    local_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = lk.dataset(str(local_root / "csv"))
    monkeypatch.setitem(sys.modules, "ray", None)  # what ``import ray`` sees when it is absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'lakekit\[ray\]'"):
        ds.to_ray()
