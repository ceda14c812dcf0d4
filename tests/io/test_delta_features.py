"""Delta tables with deletion vectors and column mapping, read exactly: locally
(``to_arrow``, ``count_rows``, ``columns=``, ``filter=``), piece by piece as Dask and Ray
tasks read them (``pieces`` + ``read_piece``), after a pickle round trip, and at an older
version. On local disk and on S3 (the moto server).

The tables come from tests/_support/delta_features.py: deltalake writes the data, the
deletion vectors are hand-written commits (deltalake's ``delete`` rewrites files instead).
Each builder's expected rows are computed from what was written and deleted, and checked
here against deltalake's own engine (``DeltaTable.scan``, ``deletion_vectors``) before
lakekit is asked anything.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _support.delta_features import (
    REGIONS,
    column_mapping_table,
    commit,
    deltalake_rows,
    dv_bytes,
    dv_table,
    sort_rows,
    source_rows,
    z85_decode,
    z85_encode,
)
from deltalake import DeltaTable

import lakekit as lk
from lakekit.errors import FormatError
from lakekit.storage import resolve

Options = dict[str, Any] | None

# name -> (builder(uri, storage_options), partition column or None, has deletion vectors)
TABLES: dict[str, tuple[Callable[..., pa.Table], str | None, bool]] = {
    "dv-inline": (lambda u, o: dv_table(u, storage_options=o), None, True),
    "dv-file-partitioned": (
        lambda u, o: dv_table(u, storage_options=o, partitioned=True, storage="file"),
        "region", True),
    "dv-inline-partitioned-mapped": (
        lambda u, o: dv_table(u, storage_options=o, partitioned=True, column_mapping=True),
        "region", True),
    "mapped": (lambda u, o: column_mapping_table(u, storage_options=o), None, False),
    "mapped-partitioned": (
        lambda u, o: column_mapping_table(u, storage_options=o, partitioned=True),
        "region", False),
    "mapped-id-mode": (lambda u, o: column_mapping_table(u, storage_options=o, mode="id"),
                       None, False),
    "mapped-renamed-partitioned": (
        lambda u, o: column_mapping_table(
            u, storage_options=o, partitioned=True,
            renamed={"region": "area", "amount": "amount eur", "info.code": "kind",
                     "info.items": "lines"}),
        "area", False),
}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Options]:
    """A root for tables: a local directory, or a fresh S3 bucket on the moto server."""
    if request.param == "local":
        return str(tmp_path), None
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}", request.getfixturevalue("s3_options")


def plain(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema])


def where(table: pa.Table, expr: pc.Expression) -> pa.Table:
    return table.filter(expr)


def read_pieces(ds: lk.Dataset, columns: list[str] | None = None, filter: Any = None,
                reader: lk.Dataset | None = None) -> tuple[pa.Table, list[Any]]:
    """All pieces of a read, planned on ``ds``, pickled as a task would carry them, read by
    ``reader`` (``ds`` itself by default), concatenated."""
    pieces = ds.pieces(columns, filter=filter)
    reader = reader or ds
    parts = [reader.read_piece(pickle.loads(pickle.dumps(p)), columns, filter=filter)
             for p in pieces]
    schema = ds.schema.empty_table().select(columns or ds.schema.names).schema
    return (pa.concat_tables(parts) if parts else schema.empty_table()), pieces


def check_reads(uri: str, options: Options, expected: pa.Table, *, partition: str | None,
                with_dvs: bool) -> None:
    """Every way of reading ``uri`` gives ``expected`` (values and types)."""
    ds = lk.dataset(uri, storage_options=options)
    region = partition or "region"
    amount = next(c for c in expected.column_names if c.startswith("amount"))
    assert ds.format == "delta"
    if partition:
        assert ds.partition_schema.names == [partition]

    got = ds.to_arrow()
    assert plain(got.schema) == expected.schema, (got.schema, expected.schema)
    assert sort_rows(got).equals(expected)
    assert ds.count_rows() == expected.num_rows
    assert ds.to_arrow(n_rows=7).num_rows == 7
    batches = list(ds.iter_batches(["id"], batch_size=10))
    assert all(b.num_rows == 10 for b in batches[:-1])  # exact sizes, whatever the files
    assert sorted(i for b in batches for i in b.column(0).to_pylist()) == expected.column(
        "id").to_pylist()

    cols = ["id", amount, region]
    assert sort_rows(ds.to_arrow(columns=cols)).equals(expected.select(cols))
    assert ds.to_arrow(columns=[region]).num_rows == expected.num_rows

    filters: list[tuple[list[tuple[str, str, Any]], pc.Expression]] = [
        ([("id", ">=", 50)], pc.field("id") >= 50),
        ([(region, "=", REGIONS[1])], pc.field(region) == REGIONS[1]),
        ([(region, "in", [REGIONS[0], REGIONS[2]]), ("id", "<", 90)],
         pc.field(region).isin([REGIONS[0], REGIONS[2]]) & (pc.field("id") < 90)),
        ([(amount, ">", 20.0)], pc.field(amount) > 20.0),
    ]
    for dnf, expr in filters:
        want = where(expected, expr)
        assert want.num_rows > 0, dnf
        assert sort_rows(ds.to_arrow(filter=dnf)).equals(want), dnf
        assert ds.count_rows(filter=dnf) == want.num_rows, dnf
        assert sort_rows(ds.to_arrow(["id", region], filter=dnf)).equals(
            want.select(["id", region])), dnf

    # pieces, as to_dask / to_ray read them
    whole, pieces = read_pieces(ds)
    assert plain(whole.schema) == expected.schema
    assert sort_rows(whole).equals(expected)
    assert len({p.entry.path for p in pieces}) == len(ds.files)
    deleted = sum(p.keep_rows - int(np.unpackbits(np.frombuffer(p.keep, np.uint8))
                                    [: p.keep_rows].sum())
                  for p in pieces if p.keep is not None)
    if with_dvs:
        assert any(p.keep is not None for p in pieces)
        in_files = pa.table(delta_table(uri, options).get_add_actions()).column("num_records")
        assert deleted == pc.sum(in_files).as_py() - expected.num_rows
    else:
        assert all(p.keep is None for p in pieces)
    for dnf, expr in filters:
        part, _ = read_pieces(ds, ["id", region], dnf)
        assert sort_rows(part).equals(where(expected, expr).select(["id", region])), dnf
    only_partition, _ = read_pieces(ds, [region])
    assert only_partition.num_rows == expected.num_rows

    # the dataset as a task receives it: pickled to a small spec, the log re-read there
    rebuilt = pickle.loads(cloudpickle.dumps(ds))
    assert sort_rows(rebuilt.to_arrow()).equals(expected)
    assert rebuilt.count_rows() == expected.num_rows
    again, _ = read_pieces(ds, reader=pickle.loads(cloudpickle.dumps(ds)))
    assert sort_rows(again).equals(expected)


def delta_table(uri: str, options: Options) -> DeltaTable:
    loc = resolve(uri, storage_options=options)
    return DeltaTable(loc.delta_uri(), storage_options=loc.delta_storage_options() or None)


@pytest.mark.parametrize("name", list(TABLES))
def test_delta_features_read_exactly(name: str, place: tuple[str, Options]) -> None:
    root, options = place
    uri = f"{root}/{name}"
    build, partition, with_dvs = TABLES[name]
    expected = build(uri, options)
    # the builder is right by deltalake's own engine, before lakekit is asked
    assert deltalake_rows(uri, storage_options=options).equals(expected)
    check_reads(uri, options, expected, partition=partition, with_dvs=with_dvs)


@pytest.mark.parametrize("storage", ["inline", "file"])
def test_deletion_vectors_match_deltalake(storage: str, place: tuple[str, Options]) -> None:
    """deltalake decodes the hand-written DVs to exactly the rows the builder deleted; the
    version before the DV commit still has every row."""
    root, options = place
    uri = f"{root}/dv-{storage}"
    expected = dv_table(uri, storage_options=options, partitioned=True, storage=storage)
    written = source_rows(0, 120)
    gone = set(written.column("id").to_pylist()) - set(expected.column("id").to_pylist())
    assert gone == {i for i in range(40, 120) if i % 4 == 1} | {119}

    dt = delta_table(uri, options)
    assert dt.protocol().reader_features == ["deletionVectors"]
    dvs = pa.table(dt.deletion_vectors())
    masks = dvs.column("selection_vector").to_pylist()
    assert len(masks) == 6  # the second and third writes' files, one per region
    assert sum(m.count(False) for m in masks) == len(gone)

    before = lk.dataset(uri, storage_options=options, version=dt.version() - 1)
    assert before.version == 2
    assert sort_rows(before.to_arrow()).equals(sort_rows(written))
    assert before.count_rows() == 120
    whole, _ = read_pieces(before)
    assert sort_rows(whole).equals(sort_rows(written))
    assert lk.dataset(uri, storage_options=options).count_rows() == len(written) - len(gone)


def test_renamed_columns_time_travel(place: tuple[str, Options]) -> None:
    """Before the rename the table has its old names; after it, the new ones over the same
    physical columns, files written before and after the rename alike."""
    root, options = place
    uri = f"{root}/renamed"
    expected = column_mapping_table(uri, storage_options=options,
                                    renamed={"label": "name", "info.code": "kind"})
    assert expected.num_rows == 90
    v0 = lk.dataset(uri, storage_options=options, version=0)
    assert v0.schema.names == ["id", "label", "region", "amount", "ts", "info", "attrs"]
    assert sort_rows(v0.to_arrow()).equals(sort_rows(source_rows(0, 60)))
    whole, _ = read_pieces(v0)
    assert sort_rows(whole).equals(sort_rows(source_rows(0, 60)))
    latest = lk.dataset(uri, storage_options=options)
    assert latest.schema.names == ["id", "name", "region", "amount", "ts", "info", "attrs"]
    for one in (latest.to_arrow(["name", "info"], filter=[("id", "=", 76)]),
                read_pieces(latest, ["name", "info"], [("id", "=", 76)])[0]):
        assert one.to_pylist() == [{"name": "row-76", "info": {
            "kind": 1, "items": [{"sku": "s76", "qty": 0}]}}]
    check_reads(uri, options, expected, partition=None, with_dvs=False)


def test_large_deletion_vectors_with_bitmap_containers(tmp_path: Path) -> None:
    """DVs over 4096 rows of one 64 Ki-row block (a roaring bitmap container), and rows past
    65536 (a second container), inline and in a DV file."""
    for storage in ("inline", "file"):
        uri = str(tmp_path / storage)
        expected = dv_table(uri, storage=storage, writes=2, rows_per_write=70_000,
                            row_group_rows=20_000)
        assert expected.num_rows == 140_000 - 17_501
        assert deltalake_rows(uri).equals(expected)
        ds = lk.dataset(uri)
        assert sort_rows(ds.to_arrow()).equals(expected)
        assert ds.count_rows() == expected.num_rows
        whole, _ = read_pieces(ds)
        assert sort_rows(whole).equals(expected)
        assert ds.count_rows(filter=[("id", ">", 135_000)]) == where(
            expected, pc.field("id") > 135_000).num_rows


def test_deletion_vectors_through_a_symlinked_root(tmp_path: Path) -> None:
    """deltalake resolves symlinks in a local table's path; the deletion vectors must still
    find lakekit's files, which keep the path the user gave."""
    real = tmp_path / "real"
    expected = dv_table(str(real), partitioned=True)
    link = tmp_path / "link"
    os.symlink(real, link)
    ds = lk.dataset(str(link))
    assert all(f.startswith(str(link)) for f in ds.files)
    whole, pieces = read_pieces(ds)
    assert sum(p.keep is not None for p in pieces) == 6
    assert sort_rows(whole).equals(expected)


def test_to_dask_applies_deletion_vectors(tmp_path: Path) -> None:
    """Dask partitions are pieces: the deleted rows are gone there too (synchronous
    scheduler; the pieces' pickling is covered above)."""
    uri = str(tmp_path / "t")
    expected = dv_table(uri, partitioned=True, column_mapping=True)
    ddf = lk.dataset(uri).to_dask(columns=["id", "region"], filter=[("id", ">=", 30)])
    got = pa.Table.from_pandas(ddf.compute(scheduler="sync"), preserve_index=False)
    want = where(expected, pc.field("id") >= 30).select(["id", "region"])
    assert sorted(got.column("id").to_pylist()) == want.column("id").to_pylist()


def test_count_rows_reads_no_data_file(tmp_path: Path) -> None:
    """count_rows() counts from the log (numRecords, less the rows deletion vectors remove):
    it gives the count with every data file gone."""
    tables = {
        "dv": dv_table(str(tmp_path / "dv"), partitioned=True, storage="file"),
        "mapped": column_mapping_table(str(tmp_path / "mapped"), partitioned=True),
    }
    for name, expected in tables.items():
        for parquet in (tmp_path / name).rglob("*.parquet"):
            parquet.unlink()
        assert lk.dataset(str(tmp_path / name)).count_rows() == expected.num_rows, name


def test_a_reader_feature_deltalake_cannot_read_is_a_clear_error(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    column_mapping_table(uri, rows=3)
    commit(uri, [{"protocol": {
        "minReaderVersion": 3, "minWriterVersion": 7,
        "readerFeatures": ["columnMapping", "someFutureFeature"],
        "writerFeatures": ["columnMapping", "someFutureFeature"]}}])
    with pytest.raises(FormatError, match=r"reader feature 'someFutureFeature'.*upgrade"):
        lk.dataset(uri)
    assert lk.dataset(uri, version=0).count_rows() == 3


def test_dv_encoding_matches_the_protocol() -> None:
    """The encoder against a published payload: a one-row DV (row 1) as Databricks writes
    it, and Z85's reference vector."""
    assert dv_bytes([1]).hex() == (
        "d1d33964" "0100000000000000" "00000000"  # magic, one bucket, its key 0
        "3a300000" "01000000" "00000000" "10000000" "0100"  # 32-bit roaring: row 1
    )
    assert z85_encode(bytes.fromhex("864FD26FB559F75B")) == "HelloWorld"
    payload = dv_bytes([3, 4, 7, 11, 18, 29, 70_000])
    assert z85_decode(z85_encode(payload))[: len(payload)] == payload

