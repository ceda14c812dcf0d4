"""Delta tables lakekit cannot read correctly are refused with a ``LakekitError`` naming the
table and the cause, never a raw ``FileNotFoundError`` / ``DeltaError`` / ``ArrowInvalid``
and never rows that might be wrong:

* a data file the log references but storage lacks (local disk and the moto S3 server;
  plain, partitioned and column-mapped tables), through ``lk.dataset``, ``Table.read``,
  ``Table.dataset(version=)``, pieces, ``to_dask`` and ``lk.check``;
* a hand-written commit with an invalid ``protocol`` / ``metaData`` / ``add`` action;
* a reader feature that lakekit's file-by-file reader does not implement, whether or not
  deltalake accepts it; the features it does read give deltalake's own rows.

The tables are written by deltalake; the damage is done by hand (tests/_support/
delta_features.py's ``commit`` writes the next JSON commit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandera.polars as pa_schema
import pyarrow as pa
import pytest
from _support.cli import Cli
from _support.delta_features import column_mapping_table, commit, deltalake_rows, sort_rows
from deltalake import DeltaTable, write_deltalake

import lakekit as lk
from lakekit.errors import FormatError, LakekitError, NotFoundError, VersionNotFoundError
from lakekit.io.delta import READABLE_FEATURES
from lakekit.storage import resolve

Options = dict[str, Any] | None
ID_SCHEMA = pa_schema.DataFrameSchema({"id": pa_schema.Column(int)})


def rows(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "p": pa.array([i % 2 for i in range(start, start + n)], pa.int64())})


def two_versions(uri: str, options: Options = None, *, partitioned: bool = True) -> None:
    """Version 0: ids 0..3; version 1: ids 4..7 appended."""
    by = ["p"] if partitioned else None
    so = resolve(uri, storage_options=options).delta_storage_options() or None
    write_deltalake(uri, rows(0, 4), partition_by=by, storage_options=so)
    write_deltalake(uri, rows(4, 4), partition_by=by, mode="append", storage_options=so)


def log(uri: str, version: int, options: Options = None) -> list[dict[str, Any]]:
    loc = resolve(uri, storage_options=options)
    text = bytes(loc.fs.cat_file(f"{loc.path}/_delta_log/{version:020d}.json")).decode()
    return [json.loads(line) for line in text.splitlines() if line]


def reads(uri: str, options: Options = None) -> dict[str, Callable[[], object]]:
    """Every public way of reading the latest version."""
    def pieces() -> object:
        ds = lk.dataset(uri, storage_options=options)
        return [ds.read_piece(p) for p in ds.pieces(split="row_group", filter=[("id", ">=", 0)])]

    def whole_pieces() -> object:
        ds = lk.dataset(uri, storage_options=options)
        return [ds.read_piece(p) for p in ds.pieces()]

    return {
        "dataset": lambda: lk.dataset(uri, storage_options=options).to_arrow(),
        "batches": lambda: list(lk.dataset(uri, storage_options=options).iter_batches()),
        "load": lambda: lk.load(uri, storage_options=options),
        "Table.read": lambda: lk.Table(uri, storage_options=options).read(),
        "pieces": pieces,
        "whole pieces": whole_pieces,
        "to_dask": lambda: lk.dataset(uri, storage_options=options).to_dask()
        .compute(scheduler="sync"),
        "check": lambda: lk.check(uri, ID_SCHEMA, storage_options=options),
    }


def assert_refused(uri: str, options: Options, kind: type[LakekitError], pattern: str) -> None:
    for name, read in reads(uri, options).items():
        with pytest.raises(LakekitError) as info:
            read()
        want: tuple[type[LakekitError], ...] = (kind,)
        if name == "Table.read" and kind is NotFoundError:  # Table.read names the version
            want = (NotFoundError, VersionNotFoundError)
        assert isinstance(info.value, want), (name, info.value)
        message = str(info.value)
        assert uri.rstrip("/") in message, (name, message)
        assert message.count("a data file of this Delta table") <= 1, (name, message)
        assert message.count(uri.rstrip("/") + ":") == 1, (name, message)
        assert_matches(pattern, message, name)


def assert_matches(pattern: str, message: str, name: str) -> None:
    import re

    assert re.search(pattern, message), (name, message)


# -- a data file the log references but storage lacks -------------------------------------

@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Options]:
    if request.param == "local":
        return str(tmp_path), None
    return f"s3://{request.getfixturevalue('s3_bucket')}", request.getfixturevalue("s3_options")


@pytest.mark.parametrize("partitioned", [True, False])
def test_a_missing_data_file_is_a_not_found_error(place: tuple[str, Options],
                                                   partitioned: bool) -> None:
    root, options = place
    uri = f"{root}/t"
    two_versions(uri, options, partitioned=partitioned)
    loc = resolve(uri, storage_options=options)
    lost = next(a["add"]["path"] for a in log(uri, 1, options) if "add" in a)
    loc.fs.rm_file(f"{loc.path}/{lost}")
    name = lost.rsplit("/", 1)[-1]
    assert_refused(uri, options, NotFoundError, rf"missing from storage.*{name}.*restore")
    # version 0 does not use the lost file: still read exactly
    t = lk.Table(uri, storage_options=options)
    assert sorted(t.read(version=0).column("id").to_pylist()) == [0, 1, 2, 3]
    assert sorted(t.dataset(version=0).to_arrow().column("id").to_pylist()) == [0, 1, 2, 3]
    # the log still counts its rows (metadata only; no data file is read)
    assert lk.dataset(uri, storage_options=options).count_rows() == 8


@pytest.mark.s3
@pytest.mark.parametrize("wrong", [+1000, +(4 << 20), -10])
def test_a_data_file_of_another_size_than_the_log_says_is_refused_on_s3(
        s3_bucket: str, s3_options: dict[str, Any], wrong: int) -> None:
    """On S3 lakekit reads a file's footer at the size the log records: an object longer
    or shorter than that (replaced outside Delta) is a FormatError, never a raw 416."""
    uri = f"s3://{s3_bucket}/t"
    two_versions(uri, s3_options, partitioned=False)
    loc = resolve(uri, storage_options=s3_options)
    add = dict(next(a["add"] for a in log(uri, 1, s3_options) if "add" in a))
    new = add["path"].replace("part-", "copy-")
    loc.fs.copy(f"{loc.path}/{add['path']}", f"{loc.path}/{new}")
    commit(uri, [{"add": {**add, "path": new, "size": add["size"] + wrong}}],
           storage_options=s3_options)
    for name, read in reads(uri, s3_options).items():
        with pytest.raises(FormatError) as info:
            read()
        assert uri in str(info.value) and "copy-" in str(info.value), (name, info.value)


def test_a_missing_file_of_an_older_version_and_of_a_mapped_table(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    two_versions(uri)
    first = next(a["add"]["path"] for a in log(uri, 0) if "add" in a)
    (tmp_path / "t" / first).unlink()
    with pytest.raises(LakekitError, match=r"t: .*(missing from storage|removed)"):
        lk.Table(uri).dataset(version=0).to_arrow()
    with pytest.raises(NotFoundError, match="missing from storage"):
        lk.Table(uri).dataset(version=1).to_arrow()
    mapped = str(tmp_path / "mapped")
    column_mapping_table(mapped, rows=20, partitioned=True)
    next((tmp_path / "mapped").rglob("*.parquet")).unlink()
    assert_refused(mapped, None, NotFoundError, r"missing from storage")


# -- invalid protocol actions --------------------------------------------------------------

def _add(uri: str) -> dict[str, Any]:
    """A copy of version 1's first data file under a new name, and its add action."""
    add = dict(next(a["add"] for a in log(uri, 1) if "add" in a))
    new = add["path"].replace("part-", "copy-")
    root = Path(uri)
    (root / new).write_bytes((root / add["path"]).read_bytes())
    add["path"] = new
    return add


def _meta(uri: str) -> dict[str, Any]:
    return dict(next(a["metaData"] for a in log(uri, 0) if "metaData" in a))


INVALID: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "add without size": lambda u: [{"add": {k: v for k, v in _add(u).items() if k != "size"}}],
    "add without path": lambda u: [{"add": {k: v for k, v in _add(u).items() if k != "path"}}],
    "negative size": lambda u: [{"add": {**_add(u), "size": -5}}],
    "negative numRecords": lambda u: [{"add": {**_add(u),
                                                "stats": json.dumps({"numRecords": -3})}}],
    "partition value of the wrong type": lambda u: [
        {"add": {**_add(u), "partitionValues": {"p": "abc"}}}],
    "schemaString not JSON": lambda u: [{"metaData": {**_meta(u), "schemaString": "{oops"}}],
    "schemaString with an unknown type": lambda u: [{"metaData": {**_meta(u), "schemaString":
        json.dumps({"type": "struct", "fields": [
            {"name": "id", "type": "int128", "nullable": True, "metadata": {}}]})}}],
    "metaData without id": lambda u: [
        {"metaData": {k: v for k, v in _meta(u).items() if k != "id"}}],
    "protocol without minReaderVersion": lambda u: [{"protocol": {"minWriterVersion": 2}}],
    "protocol with a negative reader version": lambda u: [
        {"protocol": {"minReaderVersion": -1, "minWriterVersion": 2}}],
    "writer-only feature among reader features": lambda u: [{"protocol": {
        "minReaderVersion": 3, "minWriterVersion": 7,
        "readerFeatures": ["rowTracking"], "writerFeatures": ["rowTracking"]}}],
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_action_is_a_format_error(tmp_path: Path, case: str) -> None:
    uri = str(tmp_path / "t")
    two_versions(uri)
    commit(uri, INVALID[case](uri))
    for name, read in reads(uri).items():
        with pytest.raises(LakekitError) as info:
            read()
        message = str(info.value)
        assert uri in message, (case, name, message)
        if name != "check":  # the check's source names the table and deltalake's cause
            assert isinstance(info.value, FormatError), (case, name, info.value)
            assert_matches(r"(Delta log.*cannot be read|add action .* is invalid)", message,
                           name)
        assert "<unknown>" not in message, (case, name, message)
    # the versions before the bad commit are still read exactly
    assert sorted(lk.dataset(uri, version=1).to_arrow().column("id").to_pylist()) == list(
        range(8))


# -- reader features -----------------------------------------------------------------------

REFUSED = ["typeWidening", "typeWidening-preview", "variantType", "variantType-preview",
           "variantShredding-preview"]


def _with_features(uri: str, features: list[str]) -> None:
    two_versions(uri, partitioned=False)
    commit(uri, [{"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                               "readerFeatures": features, "writerFeatures": features}}])


@pytest.mark.parametrize("feature", REFUSED)
def test_a_reader_feature_lakekit_cannot_read_is_refused(tmp_path: Path, feature: str) -> None:
    """deltalake opens these tables; lakekit's per-file reader would not read them right."""
    uri = str(tmp_path / "t")
    _with_features(uri, [feature])
    DeltaTable(uri)  # deltalake accepts the protocol: the refusal is lakekit's own
    assert_refused(uri, None, FormatError, rf"reader feature '{feature}'.*deltalake")
    assert lk.dataset(uri, version=1).count_rows() == 8  # older versions stay readable


def test_a_feature_deltalake_rejects_is_named_too(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _with_features(uri, ["columnMapping", "collations-preview"])
    assert_refused(uri, None, FormatError, r"reader feature 'collations-preview'")


@pytest.mark.parametrize("feature", ["v2Checkpoint", "vacuumProtocolCheck"])
def test_reader_features_that_change_no_data_file_are_read(tmp_path: Path,
                                                           feature: str) -> None:
    """v2Checkpoint changes only the log (deltalake replays it); vacuumProtocolCheck binds
    only vacuum (deltalake's own scan refuses it, its reader does not need to)."""
    assert feature in READABLE_FEATURES
    uri = str(tmp_path / "t")
    _with_features(uri, [feature])
    got = sort_rows(lk.dataset(uri).to_arrow())
    assert got.equals(rows(0, 8))
    assert lk.check(uri, ID_SCHEMA).status == "pass"


def test_timestamp_ntz_is_read_as_deltalake_reads_it(tmp_path: Path) -> None:
    """deltalake writes naive timestamps with the timestampNtz reader feature."""
    from datetime import datetime

    uri = str(tmp_path / "t")
    times = [datetime(2024, 3, 1, 12, 0, 0, 123456), None, datetime(1999, 12, 31, 23, 59)]
    write_deltalake(uri, pa.table({"id": pa.array([0, 1, 2], pa.int64()),
                                   "at": pa.array(times, pa.timestamp("us"))}))
    assert "timestampNtz" in (DeltaTable(uri).protocol().reader_features or [])
    got = sort_rows(lk.dataset(uri).to_arrow())
    assert got.column("at").type == pa.timestamp("us")
    assert got.column("at").to_pylist() == times
    assert got.equals(deltalake_rows(uri).select(got.column_names))


def test_the_cli_refuses_with_one_line(tmp_path: Path, cli: Cli) -> None:
    """``lakekit head`` / ``schema`` / ``check``: exit 2 and one line naming the table."""
    missing, invalid, feature = (str(tmp_path / n) for n in ("missing", "invalid", "feature"))
    two_versions(missing)
    lost = next(a["add"]["path"] for a in log(missing, 1) if "add" in a)
    (Path(missing) / lost).unlink()
    two_versions(invalid)
    commit(invalid, INVALID["add without size"](invalid))
    _with_features(feature, ["variantType"])
    for uri, argv in [(missing, ["head", missing]), (invalid, ["head", invalid]),
                      (invalid, ["schema", invalid]),
                      (invalid, ["check", invalid, "--min-rows", "1"]),
                      (feature, ["head", feature]), (feature, ["schema", feature])]:
        code, out, err = cli(*argv)
        assert code == 2, (argv, code, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and uri in lines[0] and "Traceback" not in err, (argv, err)
