"""The loaders' contract: what ``lk.dataset(...)`` must do for every format on every backend.

One base class of tests (:class:`LoaderContract`), written against the public API only, and
two kinds of mixins that a test class combines (the pattern of fsspec's
``fsspec/tests/abstract/``), defined in tests/_support/stores.py (the distributed reads of
tests/scale use them too):

- a *format* (:class:`Parquet`, :class:`Jsonl`, :class:`Csv`, :class:`Delta`) says how a
  table is written as that format: ``write(store, path, parts)``;
- a *backend* (:class:`LocalDisk`, :class:`Memory`, :class:`S3`) provides the ``store``
  fixture: where bytes go and which options reach them.

tests/io/test_loader_contract.py lists the combinations. A behaviour belongs here when it must hold
for all of them; what only one format or backend does stays in that format's or backend's
own tests (test_loaders.py, test_loaders_remote.py, test_jsonl.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from _support.stores import (
    S3,
    Csv,
    Delta,
    Jsonl,
    LocalDisk,
    Memory,
    Parquet,
    Part,
    Store,
    by_id,
    rows,
)

import lakekit as lk
from lakekit.errors import FormatError, NotFoundError

__all__ = [
    "S3",
    "Csv",
    "Delta",
    "Jsonl",
    "LoaderContract",
    "LocalDisk",
    "Memory",
    "Parquet",
    "Store",
    "rows",
]

# -- the contract ---------------------------------------------------------------------------

class LoaderContract:
    """Tests every format and backend must pass. A subclass mixes in one format (``write``,
    ``format``, ``corrupt``) and one backend (the ``store`` fixture)."""

    format: ClassVar[str]
    corrupt: ClassVar[bytes]

    def write(self, store: Store, path: str, parts: Sequence[Part]) -> list[str]:
        raise NotImplementedError

    @pytest.fixture
    def written(self, store: Store) -> tuple[Store, str, list[str], pa.Table]:
        """Three parts (3, 2 and 4 rows): the store, the dataset's URL, the files, all rows."""
        parts = [rows(3, 0), rows(2, 10), rows(4, 20)]
        files = self.write(store, "events", [({}, t) for t in parts])
        return store, store.url("events"), files, pa.concat_tables(parts)

    def open(self, store: Store, url: str) -> lk.Dataset:
        return lk.dataset(url, storage_options=store.storage_options)

    def test_format_files_and_schema(self, written: tuple[Store, str, list[str], pa.Table]
                                     ) -> None:
        store, url, files, _ = written
        ds = self.open(store, url)
        assert ds.format == self.format
        assert len(ds.files) == len(files) == 3
        assert all("_delta_log" not in f for f in ds.files)
        assert ds.schema.names == ["id", "user", "value"]
        assert ds.schema.field("id").type == pa.int64()
        assert ds.schema.field("user").type in (pa.string(), pa.large_string())
        assert ds.schema.field("value").type == pa.float64()

    def test_count_rows(self, written: tuple[Store, str, list[str], pa.Table]) -> None:
        store, url, _, table = written
        ds = self.open(store, url)
        assert ds.count_rows() == table.num_rows == 9
        assert ds.count_rows(filter=[("id", ">=", 10)]) == 6

    def test_outputs_equal_the_rows_written(self, written: tuple[Store, str, list[str], pa.Table]
                                            ) -> None:
        store, url, _, table = written
        ds = self.open(store, url)
        expected = by_id(table)
        assert by_id(ds.to_arrow()) == expected
        df = ds.to_polars()
        assert isinstance(df, pl.DataFrame)
        assert sorted(df.to_dicts(), key=lambda r: r["id"]) == expected
        pdf = ds.to_pandas()
        assert isinstance(pdf, pd.DataFrame)
        assert sorted(pdf.to_dict("records"), key=lambda r: r["id"]) == expected

    def test_column_pruning_returns_only_the_columns_asked(
            self, written: tuple[Store, str, list[str], pa.Table]) -> None:
        store, url, _, table = written
        got = self.open(store, url).to_arrow(columns=["value", "id"])
        assert got.column_names == ["value", "id"]
        assert by_id(got) == by_id(table.select(["value", "id"]))

    def test_dnf_filters(self, written: tuple[Store, str, list[str], pa.Table]) -> None:
        store, url, _, table = written
        ds = self.open(store, url)
        got = ds.to_arrow(filter=[("id", ">=", 1), ("user", "!=", "u1")])
        assert by_id(got) == [r for r in by_id(table) if r["id"] >= 1 and r["user"] != "u1"]
        either = ds.to_arrow(filter=[[("id", "<", 1)], [("id", "in", [11, 23])]],
                             columns=["id"])
        assert sorted(either.column("id").to_pylist()) == [0, 11, 23]

    def test_n_rows(self, written: tuple[Store, str, list[str], pa.Table]) -> None:
        store, url, _, table = written
        ds = self.open(store, url)
        first = ds.to_arrow(n_rows=4)
        assert first.num_rows == 4 and first.schema == ds.schema
        assert all(r in by_id(table) for r in first.to_pylist())
        assert ds.to_arrow(n_rows=100).num_rows == table.num_rows

    def test_iter_batches_covers_every_row_once(
            self, written: tuple[Store, str, list[str], pa.Table]) -> None:
        store, url, _, table = written
        batches = list(self.open(store, url).iter_batches(batch_size=2))
        assert batches and all(0 < b.num_rows <= 2 for b in batches)
        assert by_id(pa.Table.from_batches(batches)) == by_id(table)

    def test_hive_partition_columns(self, store: Store) -> None:
        self.write(store, "hive", [({"region": "eu"}, rows(3, 0)), ({"region": "us"}, rows(2, 50))])
        ds = self.open(store, store.url("hive"))
        assert ds.schema.names == ["id", "user", "value", "region"]
        got = ds.to_arrow(columns=["id", "region"])
        assert sorted(got.to_pylist(), key=lambda r: r["id"]) == [
            {"id": i, "region": "eu"} for i in range(3)] + [
            {"id": i, "region": "us"} for i in (50, 51)]
        us = ds.to_arrow(filter=[("region", "=", "us")], columns=["id"])
        assert sorted(us.column("id").to_pylist()) == [50, 51]
        assert ds.count_rows(filter=[("region", "=", "eu")]) == 3

    def test_missing_path_raises_not_found_naming_it(self, store: Store) -> None:
        url = store.url("nothing/here")
        with pytest.raises(NotFoundError) as info:
            lk.dataset(url, format=self.format,  # type: ignore[arg-type]
                       storage_options=store.storage_options).to_arrow()
        assert "nothing/here" in str(info.value)
        with pytest.raises(NotFoundError) as info:  # no format=: table detection, then files
            lk.dataset(url, storage_options=store.storage_options).to_arrow()
        assert "nothing/here" in str(info.value)

    def test_corrupt_file_raises_format_error_naming_it(
            self, written: tuple[Store, str, list[str], pa.Table]) -> None:
        store, url, _, _ = written
        schema = self.open(store, url).schema
        ds = lk.dataset(url, storage_options=store.storage_options, schema=schema)
        bad = ds.files[-1]
        store.put(bad, self.corrupt)
        with pytest.raises(FormatError) as info:
            lk.dataset(url, storage_options=store.storage_options, schema=schema).to_arrow()
        assert bad.rsplit("/", 1)[-1] in str(info.value)
