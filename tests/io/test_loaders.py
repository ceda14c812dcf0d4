"""The loaders on local disk, through the public API: sources, formats, shard order, hive
partitions, pruning, filters, parallel reads, n_rows, streaming, schema unification, Delta,
outputs and bad input.

What every format must do on every backend (schema, count_rows, outputs, pruning, DNF
filters, n_rows, iter_batches, hive columns, missing and corrupt files) is in the contract
suite, tests/io/loader_contract.py; this file keeps what is particular to local disk and parquet."""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakekit as lk
from lakekit.errors import (
    ConfigError,
    FormatError,
    LakekitError,
    NotFoundError,
    SchemaMismatchError,
    VersionNotFoundError,
)


def events(n: int, start: int = 0) -> pa.Table:
    """A small events table: ids start..start+n, a string, a float and a bool column."""
    ids = np.arange(start, start + n, dtype=np.int64)
    return pa.table({
        "id": ids,
        "user": [f"u{i % 7}" for i in ids],
        "value": ids.astype(np.float64) / 2,
        "flag": ids % 2 == 0,
    })


def write(path: Path, table: pa.Table, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **kwargs)  # type: ignore[arg-type]
    return path


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """shard_1, shard_2, shard_10 (natural order differs from lexical) and a nested shard."""
    root = tmp_path / "events"
    write(root / "shard_1.parquet", events(3, 0))
    write(root / "shard_10.parquet", events(3, 100))
    write(root / "shard_2.parquet", events(3, 10))
    write(root / "nested" / "shard_0.parquet", events(2, 1000))
    return root


def ids(table: pa.Table) -> list[int]:
    return table.column("id").to_pylist()


# -- sources --------------------------------------------------------------------------------

def test_directory_is_read_recursively_in_natural_order(shards: Path) -> None:
    ds = lk.dataset(shards)
    assert ds.format == "parquet"
    assert ds.files == [
        str(shards / "nested" / "shard_0.parquet"),
        str(shards / "shard_1.parquet"),
        str(shards / "shard_2.parquet"),
        str(shards / "shard_10.parquet"),
    ]
    assert ids(ds.to_arrow()) == [1000, 1001, 0, 1, 2, 10, 11, 12, 100, 101, 102]
    assert ds.total_bytes == sum(os.path.getsize(f) for f in ds.files)


def test_file_glob_list_and_file_url_sources(shards: Path) -> None:
    one = lk.load(str(shards / "shard_2.parquet"))
    assert one.equals(events(3, 10))
    globbed = lk.load(str(shards / "*.parquet"))  # not recursive: nested/ is not matched
    assert ids(globbed) == [0, 1, 2, 10, 11, 12, 100, 101, 102]
    listed = lk.load([shards / "shard_10.parquet", str(shards / "shard_1.parquet")])
    assert ids(listed) == [100, 101, 102, 0, 1, 2]  # a list keeps the order it was given in
    from_url = lk.load(shards.as_uri())
    assert from_url.equals(lk.load(shards))
    assert lk.load(Path(shards / "shard_1.parquet")).equals(events(3, 0))


def test_overlapping_sources_do_not_duplicate_files(shards: Path) -> None:
    ds = lk.dataset([str(shards / "shard_1.parquet"), str(shards / "*.parquet")])
    assert len(ds.files) == 3
    assert ids(ds.to_arrow())[:3] == [0, 1, 2]


def test_recursive_glob_and_invalid_glob(shards: Path) -> None:
    ds = lk.dataset(str(shards / "**" / "*.parquet"))
    assert len(ds.files) == 4 and str(shards / "nested" / "shard_0.parquet") in ds.files
    with pytest.raises(ConfigError, match="glob"):
        lk.dataset(str(shards / "**.parquet"))


def test_hidden_underscore_crc_and_tmp_files_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "out"
    write(root / "part-0.parquet", events(2, 0))
    write(root / "_temporary" / "part-9.parquet", events(2, 900))
    write(root / ".hidden" / "part-8.parquet", events(2, 800))
    write(root / "_part-7.parquet", events(2, 700))
    (root / "_SUCCESS").write_bytes(b"")
    (root / ".part-0.parquet.crc").write_bytes(b"\x00crc")
    (root / "part-0.parquet.crc").write_bytes(b"\x00crc")
    (root / "part-1.tmp").write_bytes(b"partial")
    ds = lk.dataset(root)
    assert ds.files == [str(root / "part-0.parquet")]
    assert ids(ds.to_arrow()) == [0, 1]


def test_directory_with_only_hidden_files_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_bytes(b"")
    with pytest.raises(NotFoundError, match="no data files"):
        lk.dataset(tmp_path / "empty")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(numbers=st.sets(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12))
def test_shards_are_read_in_natural_numeric_order(numbers: set[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for n in numbers:
            pq.write_table(pa.table({"n": [n]}), os.path.join(tmp, f"shard_{n}.parquet"))
        ds = lk.dataset(tmp)
        expected = sorted(numbers)
        assert ds.files == [os.path.join(tmp, f"shard_{n}.parquet") for n in expected]
        assert ds.to_arrow().column("n").to_pylist() == expected


# -- formats --------------------------------------------------------------------------------

def test_parquet_extensions_are_recognised(tmp_path: Path) -> None:
    for i, ext in enumerate([".parquet", ".pq", ".parq"]):
        write(tmp_path / f"f{i}{ext}", events(1, i))
    ds = lk.dataset(tmp_path)
    assert ds.format == "parquet"
    assert ids(ds.to_arrow()) == [0, 1, 2]


def test_unknown_extension_is_an_error_and_format_overrides_it(tmp_path: Path) -> None:
    write(tmp_path / "data.bin", events(4))
    with pytest.raises(ConfigError) as info:
        lk.dataset(tmp_path / "data.bin")
    assert str(tmp_path / "data.bin") in str(info.value)
    assert "format=" in str(info.value)
    assert lk.load(tmp_path / "data.bin", format="parquet").equals(events(4))


def test_mixed_formats_and_invalid_format_are_config_errors(tmp_path: Path) -> None:
    write(tmp_path / "a.parquet", events(1))
    (tmp_path / "b.csv").write_text("id\n1\n")
    with pytest.raises(ConfigError, match="several formats"):
        lk.dataset(tmp_path)
    with pytest.raises(ConfigError, match="format must be one of"):
        lk.dataset(tmp_path / "a.parquet", format="orc")  # type: ignore[arg-type]


def test_a_text_file_named_parquet_is_a_format_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "events.parquet"
    bad.write_text("id,user\n1,a\n2,b\n")
    with pytest.raises(FormatError) as info:
        lk.load(bad)
    assert str(bad) in str(info.value)
    assert "parquet" in str(info.value)


# -- hive partitions ------------------------------------------------------------------------

@pytest.fixture
def hive(tmp_path: Path) -> Path:
    root = tmp_path / "hive"
    for year in (2020, 2021):
        for region in ("eu", "us%20east"):
            start = (year - 2020) * 100 + (0 if region == "eu" else 50)
            write(root / f"year={year}" / f"region={region}" / "part-0.parquet", events(3, start))
    write(root / "year=__HIVE_DEFAULT_PARTITION__" / "region=eu" / "part-0.parquet",
          events(1, 999))
    return root


def test_hive_directories_become_typed_columns(hive: Path) -> None:
    ds = lk.dataset(hive)
    assert ds.schema.names == ["id", "user", "value", "flag", "year", "region"]
    assert ds.schema.field("year").type == pa.int64()
    assert ds.schema.field("region").type == pa.string()
    t = ds.to_arrow(columns=["id", "year", "region"])
    rows = {(r["id"], r["year"], r["region"]) for r in t.to_pylist()}
    assert (0, 2020, "eu") in rows
    assert (52, 2020, "us east") in rows  # URL-decoded
    assert (150, 2021, "us east") in rows
    assert (999, None, "eu") in rows      # the hive default partition is null
    assert t.num_rows == 13


def test_partitioning_none_ignores_hive_directories(hive: Path) -> None:
    ds = lk.dataset(hive, partitioning=None)
    assert ds.schema.names == ["id", "user", "value", "flag"]
    assert ds.to_arrow().num_rows == 13


def test_partition_filters_select_rows_by_partition(hive: Path) -> None:
    ds = lk.dataset(hive)
    t = ds.to_arrow(filter=[("year", "=", 2021), ("region", "=", "us east")])
    assert ids(t) == [150, 151, 152]
    assert set(t.column("year").to_pylist()) == {2021}
    nulls = ds.to_arrow(filter=pc.field("year").is_null(), columns=["id"])
    assert nulls.to_pydict() == {"id": [999]}
    assert ds.count_rows(filter=[("year", "in", [2020, 2021])]) == 12


def test_filters_mixing_partition_and_data_columns(hive: Path) -> None:
    t = lk.load(hive, filter=(pc.field("year") == 2020) | (pc.field("id") == 151),
                columns=["id", "year"])
    assert sorted(ids(t)) == [0, 1, 2, 50, 51, 52, 151]


def test_partition_filter_skips_whole_files_without_opening_them(hive: Path) -> None:
    """A corrupt file in a partition the filter excludes is never opened."""
    schema = lk.dataset(hive).schema
    corrupt = hive / "year=2019" / "region=eu" / "part-0.parquet"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PAR1 this is not a parquet file PAR1")
    ds = lk.dataset(hive, schema=schema)
    t = ds.to_arrow(filter=pc.field("year") >= 2020, columns=["id"])
    assert t.num_rows == 12
    with pytest.raises(FormatError, match="year=2019"):
        ds.to_arrow()  # reading everything does hit it


# -- column pruning and filters -------------------------------------------------------------

def test_columns_are_returned_in_the_requested_order(shards: Path) -> None:
    t = lk.load(shards, columns=["value", "id"])
    assert t.column_names == ["value", "id"]
    assert t.column("value").to_pylist()[:2] == [500.0, 500.5]


def test_no_columns_still_counts_rows(shards: Path) -> None:
    t = lk.load(shards, columns=[])
    assert (t.num_columns, t.num_rows) == (0, 11)
    assert lk.load(shards, columns=[], n_rows=4).num_rows == 4
    assert lk.load(shards, columns=[], filter=[("id", ">=", 100)]).num_rows == 5


def test_expression_and_dnf_filters_agree(shards: Path) -> None:
    ds = lk.dataset(shards)
    dnf = ds.to_arrow(filter=[("id", ">=", 10), ("user", "!=", "u3")])
    expr = ds.to_arrow(filter=(pc.field("id") >= 10) & (pc.field("user") != "u3"))
    assert dnf.equals(expr)
    full = ds.to_arrow().to_pylist()
    assert dnf.to_pylist() == [r for r in full if r["id"] >= 10 and r["user"] != "u3"]


def test_dnf_or_of_ands_and_in(shards: Path) -> None:
    t = lk.load(shards, filter=[[("id", "<", 1)], [("id", "in", [11, 101, 1001])]])
    assert ids(t) == [1001, 0, 11, 101]


def test_filter_on_a_column_not_selected(shards: Path) -> None:
    t = lk.load(shards, columns=["user"], filter=[("id", "=", 12)])
    assert t.to_pydict() == {"user": ["u5"]}


def test_row_group_statistics_filter_returns_exact_rows(tmp_path: Path) -> None:
    write(tmp_path / "big.parquet", events(10_000), row_group_size=1_000)
    t = lk.load(tmp_path / "big.parquet", filter=pc.field("id").isin([5, 5_005, 9_999]))
    assert ids(t) == [5, 5_005, 9_999]
    assert lk.dataset(tmp_path / "big.parquet").count_rows(filter=[("id", ">=", 9_990)]) == 10


def test_invalid_filters_are_config_errors(shards: Path) -> None:
    ds = lk.dataset(shards)
    with pytest.raises(ConfigError) as info:
        ds.to_arrow(filter=[("nope", "=", 1)])
    assert "id, user, value, flag" in str(info.value)
    with pytest.raises(ConfigError):
        ds.to_arrow(filter=[("id", "~", 1)])
    with pytest.raises(ConfigError):
        ds.to_arrow(filter="id > 1")  # type: ignore[arg-type]


def test_unknown_column_lists_the_available_ones(shards: Path) -> None:
    with pytest.raises(ConfigError) as info:
        lk.load(shards, columns=["id", "nope"])
    assert "'nope'" in str(info.value)
    assert "available: id, user, value, flag" in str(info.value)
    with pytest.raises(ConfigError, match="list of names"):
        lk.load(shards, columns="id")  # type: ignore[arg-type]


# -- parallel reads, n_rows -----------------------------------------------------------------

@pytest.fixture
def many(tmp_path: Path) -> Path:
    """40 shards of uneven sizes, several row groups each."""
    root = tmp_path / "many"
    start = 0
    rng = np.random.default_rng(7)
    for i in range(40):
        n = int(rng.integers(1, 3_000))
        write(root / f"part-{i}.parquet", events(n, start), row_group_size=500)
        start += n
    return root


def test_row_order_is_the_same_for_any_number_of_workers(many: Path) -> None:
    ds = lk.dataset(many)
    one = ds.to_arrow(workers=1)
    assert ids(one) == list(range(one.num_rows))
    assert ds.to_arrow(workers=8).equals(one)
    filtered = ds.to_arrow(filter=pc.field("flag"), columns=["id"], workers=8)
    assert ids(filtered) == list(range(0, one.num_rows, 2))
    streamed = [b for b in ds.iter_batches(workers=8, batch_size=777)]
    assert pa.Table.from_batches(streamed).equals(one.combine_chunks())


def test_workers_must_be_positive(shards: Path) -> None:
    with pytest.raises(ConfigError, match="workers"):
        lk.load(shards, workers=0)


def test_n_rows_returns_the_first_rows(many: Path) -> None:
    ds = lk.dataset(many)
    assert ids(ds.to_arrow(n_rows=1_234)) == list(range(1_234))
    assert ds.to_arrow(n_rows=0).schema == ds.schema
    assert ds.to_arrow(n_rows=0).num_rows == 0
    total = ds.count_rows()
    assert ds.to_arrow(n_rows=total + 10).num_rows == total
    assert ids(ds.to_arrow(n_rows=5, filter=pc.field("id") >= 2_000)) == list(range(2_000, 2_005))
    with pytest.raises(ConfigError, match="n_rows"):
        ds.to_arrow(n_rows=-1)


def test_n_rows_stops_before_reaching_later_shards(many: Path) -> None:
    """The last shard is corrupt: a small n_rows never opens it, a full read does."""
    schema = lk.dataset(many).schema
    (many / "part-39.parquet").write_bytes(b"garbage, not parquet")
    ds = lk.dataset(many, schema=schema)
    assert ids(ds.to_arrow(n_rows=10)) == list(range(10))
    with pytest.raises(FormatError, match=re.escape("part-39.parquet")):
        ds.to_arrow()


# -- streaming ------------------------------------------------------------------------------

def test_iter_batches_sizes_and_contents(many: Path) -> None:
    ds = lk.dataset(many)
    batches = list(ds.iter_batches(columns=["id", "user"], batch_size=1_000))
    assert batches and all(0 < b.num_rows <= 1_000 for b in batches)
    assert all(b.schema.names == ["id", "user"] for b in batches)
    whole = ds.to_arrow(columns=["id", "user"])
    assert pa.Table.from_batches(batches).equals(whole.combine_chunks())
    reader = ds.to_batch_reader(columns=["id"], filter=[("id", "<", 10)], batch_size=4)
    assert reader.schema.names == ["id"]
    assert ids(reader.read_all()) == list(range(10))
    with pytest.raises(ConfigError, match="batch_size"):
        next(ds.iter_batches(batch_size=0))


def test_iter_batches_holds_about_the_budget_in_memory(tmp_path: Path) -> None:
    """A ~32 MB file streams with a 4 MiB budget without holding the file in memory."""
    n = 2_000_000
    rng = np.random.default_rng(3)
    path = write(tmp_path / "big.parquet",
                 pa.table({"id": np.arange(n), "x": rng.random(n)}), row_group_size=50_000)
    ds = lk.dataset(path)
    decoded = n * 16
    budget = 4 << 20
    base = pa.total_allocated_bytes()
    peak = rows = 0
    for batch in ds.iter_batches(batch_size=10_000, memory_budget=budget):
        peak = max(peak, pa.total_allocated_bytes() - base)
        rows += batch.num_rows
    assert rows == n
    assert peak < 3 * budget < decoded / 2


# -- schema unification ---------------------------------------------------------------------

def test_compatible_schemas_widen_and_missing_columns_are_null(tmp_path: Path) -> None:
    write(tmp_path / "a_1.parquet", pa.table({
        "i": pa.array([1, 2], pa.int32()),
        "f": pa.array([0.5, 1.5], pa.float32()),
        "n": pa.nulls(2),
    }))
    write(tmp_path / "a_2.parquet", pa.table({
        "i": pa.array([3], pa.int64()),
        "f": pa.array([2.5], pa.float64()),
        "n": pa.array(["x"]),
        "extra": pa.array([True]),
    }))
    ds = lk.dataset(tmp_path)
    assert ds.schema == pa.schema([
        ("i", pa.int64()), ("f", pa.float64()), ("n", pa.string()), ("extra", pa.bool_()),
    ])
    t = ds.to_arrow()
    assert t.schema == ds.schema
    assert t.to_pydict() == {
        "i": [1, 2, 3], "f": [0.5, 1.5, 2.5], "n": [None, None, "x"], "extra": [None, None, True],
    }
    assert ds.to_arrow(filter=[("extra", "=", True)], columns=["i"]).to_pydict() == {"i": [3]}


def test_column_order_and_empty_files_across_shards(tmp_path: Path) -> None:
    write(tmp_path / "a.parquet", pa.table({"x": [1], "y": ["a"]}))
    write(tmp_path / "b.parquet", pa.table({"y": ["b"], "x": [2]}))
    write(tmp_path / "c.parquet", pa.table({"x": pa.array([], pa.int64()),
                                            "y": pa.array([], pa.string())}))
    ds = lk.dataset(tmp_path)
    assert ds.to_arrow().to_pydict() == {"x": [1, 2], "y": ["a", "b"]}
    assert ds.count_rows() == 2
    none = ds.to_arrow(filter=[("x", ">", 100)])
    assert none.num_rows == 0 and none.schema == ds.schema
    assert list(ds.to_pandas(filter=[("x", ">", 100)]).columns) == ["x", "y"]


def test_incompatible_schemas_name_both_files_and_the_column(tmp_path: Path) -> None:
    a = write(tmp_path / "p_1.parquet", pa.table({"id": [1], "score": [1.5]}))
    b = write(tmp_path / "p_2.parquet", pa.table({"id": [2], "score": ["high"]}))
    with pytest.raises(SchemaMismatchError) as info:
        lk.load(tmp_path)
    msg = str(info.value)
    assert str(a) in msg and str(b) in msg and "'score'" in msg
    assert isinstance(info.value, LakekitError)


def test_explicit_schema_casts_files(tmp_path: Path) -> None:
    write(tmp_path / "a.parquet", pa.table({"x": pa.array([1, 2], pa.int16())}))
    schema = pa.schema([("x", pa.int64())])
    t = lk.load(tmp_path, schema=schema)
    assert t.schema == schema and t.column("x").to_pylist() == [1, 2]


def test_explicit_schema_that_does_not_fit_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.parquet", pa.table({"x": [1, 2], "s": ["a", "b"]}))
    as_list = pa.schema([("x", pa.list_(pa.int64())), ("s", pa.string())])
    with pytest.raises(SchemaMismatchError, match=re.escape(str(path))):
        lk.load(path, schema=as_list)
    as_int = pa.schema([("x", pa.int64()), ("s", pa.int64())])
    with pytest.raises(LakekitError, match=re.escape(str(path))):
        lk.load(path, schema=as_int)


# -- Delta tables ---------------------------------------------------------------------------

@pytest.fixture
def delta(tmp_path: Path) -> Path:
    uri = tmp_path / "table"
    write_deltalake(uri, events(4, 0), partition_by=["flag"])                   # version 0
    write_deltalake(uri, events(2, 100), mode="append", partition_by=["flag"])  # version 1
    write_deltalake(uri, events(3, 200), mode="overwrite", partition_by=["flag"])  # 2
    return uri


def test_delta_table_is_detected_and_reads_the_latest_version(delta: Path) -> None:
    ds = lk.dataset(delta)
    assert ds.format == "delta" and ds.version == 2
    assert sorted(ids(ds.to_arrow())) == [200, 201, 202]
    assert ds.count_rows() == 3
    assert all("_delta_log" not in f for f in ds.files)
    assert "version=2" in repr(ds)


def test_delta_time_travel_with_version(delta: Path) -> None:
    v0 = lk.dataset(delta, version=0)
    assert v0.version == 0 and sorted(ids(v0.to_arrow())) == [0, 1, 2, 3]
    v1 = lk.load(delta, version=1, columns=["id", "flag"], output="polars")
    assert sorted(v1["id"].to_list()) == [0, 1, 2, 3, 100, 101]
    assert lk.dataset(delta, version=1).count_rows(filter=[("flag", "=", True)]) == 3
    with pytest.raises(VersionNotFoundError) as info:
        lk.dataset(delta, version=99)
    assert str(delta) in str(info.value)


def test_delta_partition_columns_and_filters(delta: Path) -> None:
    ds = lk.dataset(delta, version=1)
    t = ds.to_arrow(filter=pc.field("flag") == pc.scalar(False), columns=["id", "flag"])
    assert sorted(ids(t)) == [1, 3, 101]
    assert set(t.column("flag").to_pylist()) == {False}


def test_version_is_only_for_delta_and_format_delta_needs_a_log(shards: Path) -> None:
    with pytest.raises(ConfigError, match="Delta"):
        lk.dataset(shards, version=0)
    with pytest.raises(NotFoundError):
        lk.dataset(shards, format="delta")


# -- outputs --------------------------------------------------------------------------------

def test_outputs_arrow_polars_pandas_agree(shards: Path) -> None:
    arrow = lk.load(shards, columns=["id", "user"])
    df = lk.load(shards, columns=["id", "user"], output="polars")
    assert isinstance(df, pl.DataFrame)
    assert df.to_arrow().cast(arrow.schema).equals(arrow.combine_chunks())
    pdf = lk.load(shards, columns=["id", "user"], output="pandas")
    assert isinstance(pdf, pd.DataFrame)
    assert pdf["id"].tolist() == ids(arrow)
    ds = lk.dataset(shards)
    assert ds.to_polars(n_rows=2)["id"].to_list() == [1000, 1001]
    assert ds.to_pandas(filter=[("id", "=", 11)])["user"].tolist() == ["u4"]
    with pytest.raises(ConfigError, match="output"):
        lk.load(shards, output="numpy")  # type: ignore[arg-type]


def test_repr_and_html(shards: Path) -> None:
    ds = lk.dataset(shards)
    text = repr(ds)
    assert str(shards) in text and "files=4" in text and "parquet" in text
    html = ds._repr_html_()
    assert "<table>" in html and "<code>user</code>" in html


# -- bad input ------------------------------------------------------------------------------

def test_missing_path_is_a_file_not_found_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "events.parquet"
    with pytest.raises(FileNotFoundError) as info:
        lk.load(missing)
    assert isinstance(info.value, NotFoundError)
    assert str(missing) in str(info.value)
    with pytest.raises(NotFoundError, match="no files match"):
        lk.load(str(tmp_path / "*.parquet"))


@pytest.mark.parametrize("source", [42, [], [1, 2]])
def test_bad_source_types_are_config_errors(source: object) -> None:
    with pytest.raises(ConfigError, match="source"):
        lk.dataset(source)  # type: ignore[arg-type]


def test_corrupt_and_truncated_parquet_are_format_errors_naming_the_file(tmp_path: Path) -> None:
    good = write(tmp_path / "ok" / "good.parquet", events(100))
    data = good.read_bytes()
    truncated = tmp_path / "t" / "truncated.parquet"
    truncated.parent.mkdir()
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "g" / "garbage.parquet"
    garbage.parent.mkdir()
    garbage.write_bytes(os.urandom(4096))
    for bad in (truncated, garbage):
        with pytest.raises(FormatError) as info:
            lk.load(bad)
        assert str(bad) in str(info.value)
    # the same bad file among good shards: no silent partial result
    (tmp_path / "ok" / "z_truncated.parquet").write_bytes(data[:-100])
    with pytest.raises(FormatError, match=re.escape("z_truncated.parquet")):
        lk.load(tmp_path / "ok")


def test_damaged_page_header_is_a_format_error_naming_the_file(tmp_path: Path) -> None:
    """The footer is intact but the first page header is garbage."""
    good = write(tmp_path / "good.parquet", events(1_000))
    data = bytearray(good.read_bytes())
    data[4:68] = b"\xff" * 64
    bad = tmp_path / "damaged.parquet"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError) as info:
        lk.load(bad)
    assert str(bad) in str(info.value)


# -- progress -------------------------------------------------------------------------------

def test_progress_bar_goes_to_stderr_only_when_asked(
    shards: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # not a notebook here
    lk.load(shards, progress=True)
    out, err = capsys.readouterr()
    assert "lakekit parquet" in err and out == ""
    lk.load(shards)  # stderr is not a terminal here: no bar by default
    lk.load(shards, progress=False)
    assert capsys.readouterr() == ("", "")


# -- CSV and TSV ----------------------------------------------------------------------------

def test_csv_and_tsv_shards(tmp_path: Path) -> None:
    root = tmp_path / "csv"
    (root / "day=1").mkdir(parents=True)
    (root / "day=2").mkdir(parents=True)
    (root / "day=1" / "part_1.csv").write_text("id,name,score\n1,a,1\n2,b,2\n")
    (root / "day=1" / "part_10.csv").write_text("id,name,score\n10,j,10.5\n")
    (root / "day=2" / "part_2.csv").write_text("id,name,score\n20,t,20\n")
    ds = lk.dataset(root)
    assert ds.format == "csv"
    assert ds.schema.field("score").type == pa.float64()  # int in one file, float in another
    t = ds.to_arrow()
    assert t.to_pydict() == {
        "id": [1, 2, 10, 20], "name": ["a", "b", "j", "t"], "score": [1.0, 2.0, 10.5, 20.0],
        "day": [1, 1, 1, 2],
    }
    assert ds.to_arrow(workers=4).equals(ds.to_arrow(workers=1))
    assert lk.load(root, columns=["name"], filter=[("day", "=", 2)]).to_pydict() == {"name": ["t"]}
    assert lk.load(root, columns=["id"], n_rows=3).to_pydict() == {"id": [1, 2, 10]}
    (tmp_path / "t.tsv").write_text("a\tb\n1\tx\n")
    assert lk.load(tmp_path / "t.tsv").to_pydict() == {"a": [1], "b": ["x"]}
    (tmp_path / "t.txt").write_text("a,b\n1,x\n")
    assert lk.load(tmp_path / "t.txt", format="csv").to_pydict() == {"a": [1], "b": ["x"]}


# -- round trip -----------------------------------------------------------------------------

_rows = st.lists(
    st.tuples(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.one_of(st.none(), st.text(max_size=8)),
        st.one_of(st.none(), st.floats(allow_nan=False)),
    ),
    min_size=0, max_size=60,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows, cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=4),
       workers=st.sampled_from([1, 3]))
def test_round_trip_of_random_tables(rows: list[tuple[int, str | None, float | None]],
                                     cuts: list[int], workers: int) -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())])
    table = pa.Table.from_pylist([dict(zip("abc", r, strict=True)) for r in rows], schema=schema)
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    with tempfile.TemporaryDirectory() as tmp:
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            pq.write_table(table.slice(lo, hi - lo), os.path.join(tmp, f"s_{i}.parquet"),
                           row_group_size=7)
        if len(bounds) == 1:
            pq.write_table(table, os.path.join(tmp, "s_0.parquet"))
        got = lk.load(tmp, workers=workers)
        assert got.equals(table)
        assert lk.dataset(tmp).count_rows() == len(rows)
