"""The tables' contract: what ``lk.Table`` must do on every backend it supports.

One base class of tests (:class:`TableContract`), written against the public API only, and
*backend* mixins (:class:`LocalDisk`, :class:`S3`) that provide the ``location`` fixture: a
table URI, the storage_options that reach it, and a filesystem to look at its files with
(the pattern of fsspec's ``fsspec/tests/abstract/``, as tests/io/loader_contract.py does
for the loaders). tests/tables/test_table_contract.py lists the combinations.

``memory://`` is not among the backends: a table is a Delta table, and deltalake cannot see
fsspec's in-process memory filesystem.

A behaviour belongs here when it must hold on every backend; what only one backend does
stays in its own tests (test_tables.py: the CLI, checkpoints every ten commits, local tag
atomicity, a crashed creator's empty log directory; test_tables_s3.py: deltalake-style
options, tag races and concurrent appends through conditional puts, secrets).

Each contract module has its own name (``loader_contract.py``, ``table_contract.py``): pytest
imports test modules by bare name from their folders, so two ``contract.py`` would clash.

Longer than 500 lines because it is one list of behaviours, the contract's tests moved as
they were; split, a backend could be given half of them.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit as lk
from lakekit.errors import (
    ConfigError,
    NotFoundError,
    SchemaMismatchError,
    TableError,
    VersionNotFoundError,
)

__all__ = ["S3", "LocalDisk", "Location", "TableContract", "ids", "rows"]


def rows(start: int, n: int, kind: str = "a") -> pa.Table:
    return pa.table({
        "id": pa.array(range(start, start + n), pa.int64()),
        "kind": [kind] * n,
        "amount": [float(i) for i in range(start, start + n)],
    })


def ids(table: pa.Table) -> list[int]:
    return sorted(table.column("id").to_pylist())


# -- backends -------------------------------------------------------------------------------

@dataclass
class Location:
    """Where a test's table lives: ``uri`` and the ``storage_options`` that reach it, and
    ``fs``, a filesystem (without caches) to put and list files next to the table with."""

    uri: str
    storage_options: dict[str, Any] | None
    fs: fsspec.AbstractFileSystem

    def table(self) -> lk.Table:
        """A new ``lk.Table`` object for the table (a second one sees what the first wrote
        only through storage)."""
        return lk.Table(self.uri, storage_options=self.storage_options)

    def sibling(self, name: str) -> str:
        """The URI of ``name`` next to the table."""
        return f"{self.uri.rsplit('/', 1)[0]}/{name}"

    def path(self, url: str) -> str:
        return str(self.fs._strip_protocol(url))

    def put_parquet(self, url: str, table: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        path = self.path(url)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # local disk needs the folder
        self.fs.pipe_file(path, buf.getvalue())

    def names(self, url: str) -> list[str]:
        """The names of the entries in the directory ``url``, sorted."""
        return sorted(p.rstrip("/").rsplit("/", 1)[-1]
                      for p in self.fs.ls(self.path(url), detail=False))

    def data_files(self) -> set[str]:
        """The table's data files (names of the parquet files at its top level)."""
        return {p.rsplit("/", 1)[-1] for p in self.fs.glob(f"{self.path(self.uri)}/*.parquet")}

    def exists(self, url: str) -> bool:
        return bool(self.fs.exists(self.path(url)))


class LocalDisk:
    """A table in a temporary directory, named by a plain path."""

    backend: ClassVar[str] = "local"

    @pytest.fixture
    def location(self, tmp_path: Path) -> Location:
        return Location(str(tmp_path / "t"), None, fsspec.filesystem("file"))


class S3:
    """A table in a fresh bucket on the session's moto S3 server (fsspec-style options)."""

    backend: ClassVar[str] = "s3"
    pytestmark = pytest.mark.s3

    @pytest.fixture
    def location(self, s3_bucket: str, s3_options: dict[str, Any]) -> Location:
        fs = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False,
                               **s3_options)
        return Location(f"s3://{s3_bucket}/t", s3_options, fs)


# -- the contract ---------------------------------------------------------------------------

class TableContract:
    """Tests every backend must pass. A subclass mixes in one backend (``location``)."""

    @pytest.fixture
    def table(self, location: Location) -> lk.Table:
        return location.table()

    # -- writing ---------------------------------------------------------------------------

    def test_first_write_creates_the_table_and_every_input_kind_appends(
            self, location: Location) -> None:
        t = location.table()
        assert not t.exists
        assert t.write(rows(0, 3)) == 0
        assert t.exists and t.version == 0
        assert t.write(pl.DataFrame({"id": [3], "kind": ["b"], "amount": [3.0]})) == 1
        assert t.write(pd.DataFrame({"id": [4], "kind": ["b"], "amount": [4.0]})) == 2
        batches = iter([rows(5, 2).to_batches()[0], rows(7, 1).to_batches()[0]])
        assert t.write(batches) == 3
        reader = pa.RecordBatchReader.from_batches(rows(8, 1).schema, rows(8, 1).to_batches())
        assert t.write(reader) == 4
        assert t.write(rows(9, 1).to_batches()[0]) == 5
        src = location.sibling("src")
        location.put_parquet(f"{src}/part-0.parquet", rows(10, 5))
        location.put_parquet(f"{src}/part-1.parquet", rows(15, 5))
        assert t.write(lk.dataset(src, storage_options=location.storage_options)) == 6
        assert ids(t.read()) == list(range(20))
        assert t.read().schema.field("id").type == pa.int64()

    def test_overwrite_replaces_rows_and_keeps_the_old_version(self, table: lk.Table) -> None:
        table.write(rows(0, 5))
        assert table.write(rows(100, 2), mode="overwrite") == 1
        assert ids(table.read()) == [100, 101]
        assert ids(table.read(0)) == list(range(5))

    def test_history_has_utc_timestamps_operations_metrics_and_metadata(
            self, table: lk.Table) -> None:
        before = datetime.now(timezone.utc) - timedelta(seconds=5)
        table.write(rows(0, 3), metadata={"source": "backfill", "run": 7})
        table.write(rows(3, 2))
        table.delete("id = 0")
        history = table.history()
        assert [c.version for c in history] == [2, 1, 0]
        assert [c.operation for c in history] == ["DELETE", "WRITE", "WRITE"]
        first = history[-1]
        assert first.metadata == {"source": "backfill", "run": 7}
        assert first.metrics["num_added_rows"] == 3
        assert history[1].parameters["mode"] == "Append"
        assert history[0].parameters["predicate"] == "id = 0"
        for c in history:
            assert c.timestamp.tzinfo is not None and c.timestamp.utcoffset() == timedelta(0)
            assert before <= c.timestamp <= datetime.now(timezone.utc) + timedelta(seconds=5)
        assert [c.version for c in table.history(limit=1)] == [2]
        with pytest.raises(ConfigError):
            table.write(rows(9, 1), metadata={"operation": "spoofed"})

    def test_history_labels_each_commit_with_its_own_version(self, location: Location) -> None:
        reader = location.table()
        writer = location.table()
        writer.write(rows(0, 1), metadata={"n": 0})
        assert [c.version for c in reader.history()] == [0]
        for n in range(1, 5):  # commits the reader's cached log has not seen
            writer.write(rows(n, 1), metadata={"n": n})
        history = reader.history()
        assert [(c.version, c.metadata["n"]) for c in history] == [
            (n, n) for n in range(4, -1, -1)]
        assert [(c.version, c.metadata["n"]) for c in reader.history(limit=2)] == [
            (4, 4), (3, 3)]

    def test_schema_conflict_names_the_columns_and_writes_nothing(
            self, location: Location) -> None:
        t = location.table()
        t.write(rows(0, 3))
        files = location.data_files()
        bad = pa.table({"id": ["x"], "kind": ["a"], "extra": [1.5]})
        with pytest.raises(SchemaMismatchError) as err:
            t.write(bad)
        message = str(err.value)
        assert "'id'" in message and "int64" in message and "string" in message
        assert "'extra'" in message and "schema_mode='merge'" in message
        assert "'kind'" not in message and "'amount'" not in message
        assert t.version == 0
        assert location.data_files() == files
        assert ids(t.read()) == [0, 1, 2]

    def test_schema_merge_adds_columns_and_widening_types_is_accepted(
            self, table: lk.Table) -> None:
        table.write(rows(0, 2))
        narrow = pa.table({"id": pa.array([2], pa.int32()),
                           "amount": pa.array([2.0], pa.float32())})
        assert table.write(narrow) == 1
        assert table.write(pa.table({"id": [3], "score": [0.5]}), schema_mode="merge") == 2
        out = table.read()
        assert out.schema.names == ["id", "kind", "amount", "score"]
        assert out.num_rows == 4
        assert sorted(out.column("score").to_pylist(), key=lambda v: (v is None, v)) == [
            0.5, None, None, None]
        with pytest.raises(SchemaMismatchError, match="'score'"):
            table.write(pa.table({"id": [4], "score": ["high"]}), schema_mode="merge")

    def test_batches_with_different_schemas_fail_without_a_new_version(
            self, table: lk.Table) -> None:
        table.write(rows(0, 1))
        mixed = iter([rows(1, 1).to_batches()[0], pa.record_batch({"id": [2]})])
        with pytest.raises(SchemaMismatchError, match="record batch 1"):
            table.write(mixed)
        assert table.version == 0
        assert ids(table.read()) == [0]

    def test_a_directory_of_plain_files_is_not_turned_into_a_table(
            self, location: Location) -> None:
        location.put_parquet(f"{location.uri}/old.parquet", rows(0, 3))
        t = location.table()
        with pytest.raises(TableError,
                           match=r"no Delta log.*old\.parquet|old\.parquet.*no Delta log"):
            t.write(rows(3, 1))
        assert not location.exists(f"{location.uri}/_delta_log")
        assert location.names(location.uri) == ["old.parquet"]
        with pytest.raises(NotFoundError):
            _ = t.version

    def test_a_missing_table_raises_not_found_naming_it(self, table: lk.Table) -> None:
        assert not table.exists
        for attempt in (table.history, table.read, lambda: table.version, table.dataset):
            with pytest.raises(NotFoundError) as err:
                attempt()
            assert table.uri in str(err.value)

    def test_bad_arguments_are_config_errors(self, table: lk.Table) -> None:
        with pytest.raises(ConfigError, match="mode"):
            table.write(rows(0, 1), mode="upsert")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="cannot write a dict"):
            table.write({"id": [1]})
        with pytest.raises(ConfigError, match="empty"):
            table.write(iter([]))
        table.write(rows(0, 1))
        with pytest.raises(ConfigError, match="at most one"):
            table.read(0, tag="x")
        with pytest.raises(ConfigError, match="partitioned by"):
            table.write(rows(1, 1), partition_by="kind")

    def test_partitioned_table_reads_with_filters(self, table: lk.Table) -> None:
        table.write(pa.concat_tables([rows(0, 3, "a"), rows(3, 2, "b")]), partition_by="kind")
        assert table.partition_by == ["kind"]
        out = table.read(columns=["id"], filter=[("kind", "=", "b")])
        assert ids(out) == [3, 4]
        assert out.schema.names == ["id"]

    # -- upsert and delete -----------------------------------------------------------------

    def test_upsert_updates_matches_and_inserts_the_rest(self, table: lk.Table) -> None:
        table.write(rows(0, 3))
        v = table.upsert(pa.table({"id": [1, 7], "kind": ["new", "ins"],
                                   "amount": [10.0, 70.0]}),
                         on="id", metadata={"job": "daily"})
        assert v == 1
        got = {r["id"]: (r["kind"], r["amount"]) for r in table.read().to_pylist()}
        assert got == {0: ("a", 0.0), 1: ("new", 10.0), 2: ("a", 2.0), 7: ("ins", 70.0)}
        assert table.history(limit=1)[0].operation == "MERGE"
        assert table.history(limit=1)[0].metadata == {"job": "daily"}

    def test_upsert_of_some_columns_keeps_the_others(self, table: lk.Table) -> None:
        table.write(rows(0, 2))
        table.upsert(pa.table({"id": [1, 5], "amount": [10.0, 50.0]}), on="id")
        got = {r["id"]: (r["kind"], r["amount"]) for r in table.read().to_pylist()}
        assert got == {0: ("a", 0.0), 1: ("a", 10.0), 5: (None, 50.0)}
        table.write(pa.table({"id": [6]}))  # an append of some columns: the rest are null
        assert table.read(filter=[("id", "=", 6)]).to_pylist() == [
            {"id": 6, "kind": None, "amount": None}]

    def test_upsert_with_duplicate_keys_is_refused(self, table: lk.Table) -> None:
        table.write(rows(0, 3))
        dup = pa.table({"id": [5, 5], "kind": ["x", "y"], "amount": [1.0, 2.0]})
        with pytest.raises(TableError, match=r"more than once.*'id': 5"):
            table.upsert(dup, on=["id"])
        assert table.version == 0
        with pytest.raises(SchemaMismatchError, match="key column"):
            table.upsert(pa.table({"kind": ["x"]}), on="id")

    def test_upsert_creates_a_missing_table(self, table: lk.Table) -> None:
        assert table.upsert(rows(0, 2), on="id") == 0
        assert ids(table.read()) == [0, 1]

    def test_delete_with_sql_and_dnf_and_no_match(self, table: lk.Table) -> None:
        table.write(pa.concat_tables([rows(0, 3, "a"), rows(3, 3, "it's")]))
        assert table.delete("id < 1") == 1
        assert table.delete([("kind", "=", "it's"), ("id", ">=", 4)]) == 2
        assert ids(table.read()) == [1, 2, 3]
        assert table.delete([[("id", "in", [1])], [("id", "=", 3)]]) == 3
        assert ids(table.read()) == [2]
        assert table.delete("id > 1000") == 3  # nothing matched: no new version
        with pytest.raises(TableError, match="nope"):
            table.delete("nope > 1")

    # -- time travel -----------------------------------------------------------------------

    def test_read_any_version_by_number_time_and_iso_string(self, table: lk.Table) -> None:
        table.write(rows(0, 1))
        time.sleep(0.05)
        table.write(rows(1, 1))
        time.sleep(0.05)
        table.write(rows(2, 1))
        history = {c.version: c.timestamp for c in table.history()}
        assert ids(table.read(1)) == [0, 1]
        assert ids(table.read(as_of=history[1])) == [0, 1]
        assert ids(table.read(as_of=history[1] + timedelta(milliseconds=1))) == [0, 1]
        assert ids(table.read(as_of=history[2].isoformat())) == [0, 1, 2]
        iso_z = history[0].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert ids(table.read(as_of=iso_z)) == [0]
        naive_utc = history[1].replace(tzinfo=None)
        assert ids(table.read(as_of=naive_utc)) == [0, 1]
        with pytest.raises(VersionNotFoundError, match="first readable commit"):
            table.read(as_of=history[0] - timedelta(seconds=1))
        with pytest.raises(VersionNotFoundError, match="does not exist"):
            table.read(99)
        with pytest.raises(ConfigError, match="ISO"):
            table.read(as_of="last tuesday")

    def test_as_of_picks_the_last_version_at_or_before_each_commit_time(
            self, table: lk.Table) -> None:
        for i in range(9):
            table.write(rows(i, 1))
            time.sleep(0.01)
        times = {c.version: c.timestamp for c in table.history()}
        for v, at in times.items():
            assert table.dataset(as_of=at).version == v
            assert table.dataset(as_of=at + timedelta(microseconds=500)).version == v
        assert table.dataset(as_of=times[8] + timedelta(days=1)).version == 8

    def test_dataset_of_an_old_version_works_with_the_loaders(self, table: lk.Table) -> None:
        table.write(rows(0, 4))
        table.write(rows(4, 4), mode="overwrite")
        ds = table.dataset(0)
        assert isinstance(ds, lk.Dataset)
        assert ds.version == 0
        assert ds.count_rows() == 4
        assert sorted(ds.to_polars(columns=["id"])["id"].to_list()) == [0, 1, 2, 3]
        assert sum(b.num_rows for b in ds.iter_batches(batch_size=2)) == 4
        assert table.dataset().version == 1

    # -- tags ------------------------------------------------------------------------------

    def test_tags_are_stored_with_the_table_and_seen_by_other_processes(
            self, location: Location) -> None:
        t = location.table()
        t.write(rows(0, 2))
        t.write(rows(2, 2))
        assert t.tag("first", 0) == 0
        assert t.tag("latest") == 1
        assert location.table().tags() == {"first": 0, "latest": 1}
        code = (
            "import json, sys, lakekit as lk; "
            "t = lk.Table(sys.argv[1], storage_options=json.loads(sys.argv[2])); "
            "print(json.dumps([t.tags(), t.read(tag='first').num_rows]))"
        )
        argv = [location.uri, json.dumps(location.storage_options)]
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                             text=True, check=True, timeout=120)
        assert json.loads(out.stdout) == [{"first": 0, "latest": 1}, 2]
        assert ids(t.read(tag="first")) == [0, 1]

    def test_tag_errors_force_and_untag(self, table: lk.Table) -> None:
        table.write(rows(0, 1))
        table.write(rows(1, 1))
        table.tag("good", 0)
        with pytest.raises(TableError, match="already exists"):
            table.tag("good", 1)
        assert table.tags() == {"good": 0}
        with pytest.raises(VersionNotFoundError, match="does not exist"):
            table.tag("future", 5)
        with pytest.raises(ConfigError, match="invalid tag name"):
            table.tag("../escape")
        assert table.tag("good", 1, force=True) == 1
        assert table.tags() == {"good": 1}
        assert table.untag("good") == 1
        assert table.tags() == {}
        with pytest.raises(VersionNotFoundError, match="no tag named 'good'"):
            table.read(tag="good")

    # -- restore and diff ------------------------------------------------------------------

    def test_restore_by_version_tag_and_time_makes_a_new_version(self, table: lk.Table) -> None:
        table.write(rows(0, 3))
        table.tag("good")
        good_time = table.history(limit=1)[0].timestamp
        table.write(rows(100, 1, "bad"), mode="overwrite")
        assert ids(table.read()) == [100]
        v = table.restore(tag="good")
        assert v == 2
        assert ids(table.read()) == [0, 1, 2]
        assert [c.operation for c in table.history()][:1] == ["RESTORE"]
        assert table.history(limit=1)[0].metadata["lakekit.restored_from"] == "tag good"
        assert ids(table.read(1)) == [100]  # history kept
        assert table.restore(1) == 3 and ids(table.read()) == [100]
        assert table.restore(as_of=good_time) == 4 and ids(table.read()) == [0, 1, 2]
        assert table.restore(4) == 4  # already there: nothing committed
        with pytest.raises(ConfigError):
            table.restore()

    def test_diff_reports_rows_files_schema_and_operations(self, table: lk.Table) -> None:
        table.write(rows(0, 3))
        table.tag("base")
        table.write(rows(3, 2))
        table.write(pa.table({"id": [5], "note": ["x"]}), schema_mode="merge")
        table.delete("id = 0")
        d = table.diff("base", table.version)
        assert (d.from_version, d.to_version) == (0, 3)
        assert (d.num_rows_from, d.num_rows_to, d.net_rows) == (3, 5, 2)
        assert d.columns_added == ("note",) and d.columns_removed == ()
        assert d.columns_retyped == ()
        assert [c.operation for c in d.operations] == ["WRITE", "WRITE", "DELETE"]
        assert [c.version for c in d.operations] == [1, 2, 3]
        assert len(d.files_removed) == 1 and d.rows_removed == 3
        assert d.rows_added - d.rows_removed == d.net_rows
        assert "+note" in d.summary()
        back = table.diff(3, 0)
        assert back.net_rows == -2 and back.columns_removed == ("note",)
        assert set(back.files_added) == set(d.files_removed)
        same = table.diff(2, 2)
        assert same.files_added == () and same.operations == () and not same.schema_changed

    def test_diff_reports_retyped_columns(self, table: lk.Table) -> None:
        table.write(pa.table({"id": pa.array([1], pa.int32())}))
        table.write(pa.table({"id": ["a"]}), mode="overwrite", schema_mode="overwrite")
        d = table.diff(0, 1)
        assert [(c.name, c.from_type, c.to_type) for c in d.columns_retyped] == [
            ("id", "int32", "string")]

    def test_another_table_object_sees_tags_restores_and_vacuum(
            self, location: Location) -> None:
        t = location.table()
        assert repr(t) == f"Table('{location.uri}')"
        assert t.write(rows(0, 3), metadata={"load": "initial"}) == 0
        assert t.tag("good") == 0
        assert t.write(rows(100, 2), mode="overwrite", metadata={"load": "bad"}) == 1
        other = location.table()
        assert other.tags() == {"good": 0}
        assert ids(other.read(tag="good")) == [0, 1, 2]
        assert other.restore(tag="good") == 2
        assert ids(t.read()) == [0, 1, 2]
        assert [c.metadata.get("load") for c in t.history()] == [None, "bad", "initial"]
        d = t.diff(1, 2)
        assert (d.num_rows_from, d.num_rows_to) == (2, 3)
        dry = t.vacuum(retention_hours=0)
        assert dry.protected_versions == (0,) and len(dry.files) == 1
        t.vacuum(retention_hours=0, dry_run=False)
        with pytest.raises(VersionNotFoundError, match="vacuum"):
            t.read(1)
        assert ids(t.read(0)) == [0, 1, 2]
        assert location.exists(f"{location.uri}/_lakekit/tags/good.json")  # kept by vacuum

    # -- maintenance -----------------------------------------------------------------------

    def test_compact_merges_small_files_and_checkpoint_is_written(
            self, location: Location) -> None:
        t = location.table()
        for i in range(6):
            t.write(rows(i * 10, 10))
        result = t.compact()
        assert result.files_removed == 6 and result.files_added == 1
        assert result.version == 6 == t.version
        assert ids(t.read()) == list(range(60))
        assert ids(t.read(5)) == list(range(60))
        assert t.checkpoint() == 6
        assert location.exists(
            f"{location.uri}/_delta_log/00000000000000000006.checkpoint.parquet")
        assert ids(location.table().read(2)) == list(range(30))

    def test_vacuum_keeps_tagged_versions_and_old_versions_fail_clearly(
            self, location: Location) -> None:
        t = location.table()
        t.write(rows(0, 2))           # v0, tagged
        t.write(rows(10, 2), mode="overwrite")  # v1, untagged
        t.write(rows(20, 2), mode="overwrite")  # v2, latest
        t.tag("keep", 0)
        files = location.data_files()
        dry = t.vacuum(retention_hours=0)
        assert dry.dry_run and dry.protected_versions == (0,)
        assert len(dry.files) == 1
        assert location.data_files() == files  # a dry run deletes nothing
        assert t.vacuum().files == ()  # within the default week: nothing to remove
        done = t.vacuum(retention_hours=0, dry_run=False)
        assert done.files == dry.files
        assert location.data_files() == files - set(done.files)
        assert ids(t.read(tag="keep")) == [0, 1]
        assert ids(t.read()) == [20, 21]
        with pytest.raises(VersionNotFoundError,
                           match=r"version 1 can no longer be read.*vacuum"):
            t.read(1)
        with pytest.raises(VersionNotFoundError, match="vacuum"):
            t.dataset(1)
        with pytest.raises(VersionNotFoundError, match="vacuum"):
            t.restore(1)
        with pytest.raises(VersionNotFoundError, match="vacuum"):
            t.tag("late", 1)
        assert t.restore(tag="keep") > 2 and ids(t.read()) == [0, 1]

    def test_a_version_partly_vacuumed_fails_the_read_naming_the_version(
            self, location: Location) -> None:
        t = location.table()
        t.write(rows(0, 2))                     # v0: file A
        t.write(rows(10, 2))                    # v1: + file B
        t.delete([("id", "=", 10)])             # v2: B rewritten, A kept
        t.vacuum(retention_hours=0, dry_run=False)  # B is gone; v1 still has A and B
        ds = t.dataset(1)  # opens (its first file, A, is there): no up-front check of B
        want = r"version 1 can no longer be read: its data file .* is missing.*vacuum"
        with pytest.raises(VersionNotFoundError, match=want):
            ds.to_arrow()
        with pytest.raises(VersionNotFoundError, match=want):
            t.read(1)
        with pytest.raises(VersionNotFoundError, match=want):
            lk.load(location.uri, version=1, storage_options=location.storage_options)
        assert ids(t.read(0)) == [0, 1]         # only A: still readable
        assert ids(lk.load(location.uri, storage_options=location.storage_options)) == [
            0, 1, 11]
