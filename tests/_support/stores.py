"""Where and how test datasets are written: backends (local disk, memory://, moto S3) and
formats (parquet, JSONL, CSV, Delta), shared by the loader contract (tests/io) and the
distributed reads (tests/scale).

- a *format* (:class:`Parquet`, :class:`Jsonl`, :class:`Csv`, :class:`Delta`) says how a
  table is written as that format: ``write(store, path, parts)``;
- a *backend* (:class:`LocalDisk`, :class:`Memory`, :class:`S3`) provides the ``store``
  fixture: where bytes go and which options reach them.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit as lk

__all__ = [
    "S3",
    "SCHEMA",
    "Csv",
    "Delta",
    "FileFormat",
    "Jsonl",
    "LocalDisk",
    "Memory",
    "Parquet",
    "Part",
    "Store",
    "by_id",
    "rows",
]

SCHEMA = pa.schema([("id", pa.int64()), ("user", pa.string()), ("value", pa.float64())])

# A part of a dataset: hive partition values (empty when not partitioned) and its rows.
Part = tuple[dict[str, str], pa.Table]


def delta_options(s3: Any) -> dict[str, str]:
    """deltalake-style storage options reaching the moto server ``s3`` (an S3Server), for
    writing set-up tables with ``deltalake.write_deltalake`` directly."""
    opts = s3.storage_options
    client = opts["client_kwargs"]
    return {"AWS_ACCESS_KEY_ID": str(opts["key"]), "AWS_SECRET_ACCESS_KEY": str(opts["secret"]),
            "AWS_ENDPOINT_URL": str(client["endpoint_url"]), "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1"}


def rows(n: int, start: int = 0) -> pa.Table:
    """``n`` rows with ids ``start..``; ``value`` is never integral, so CSV and JSONL infer
    float64 for it in every file."""
    ids = np.arange(start, start + n, dtype=np.int64)
    return pa.table({"id": ids, "user": [f"u{i % 3}" for i in ids], "value": ids + 0.25},
                    schema=SCHEMA)


def by_id(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as dicts, ordered by id (Delta lists its files in commit order)."""
    return sorted(table.to_pylist(), key=lambda r: r["id"])


# -- backends -------------------------------------------------------------------------------

@dataclass
class Store:
    """A place to write a dataset: ``url(path)`` for the loader, ``put`` for raw bytes, and
    options for the loader (fsspec style) and for deltalake (object_store style)."""

    root: str
    storage_options: dict[str, Any] | None = None
    delta_options: dict[str, str] | None = None

    def url(self, path: str) -> str:
        return f"{self.root}/{path}"

    def put(self, url: str, data: bytes) -> None:
        """Write ``data`` at ``url`` (a URL from ``url()`` or from ``Dataset.files``)."""
        fs, p = fsspec.core.url_to_fs(url, **(self.storage_options or {}))
        if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
            Path(p).parent.mkdir(parents=True, exist_ok=True)
        fs.pipe_file(p, data)


class LocalDisk:
    """Datasets in a temporary directory, read by plain paths."""

    backend: ClassVar[str] = "local"

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return Store(str(tmp_path))


class Memory:
    """Datasets in fsspec's in-process ``memory://`` filesystem."""

    backend: ClassVar[str] = "memory"

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        root = f"memory://lk-contract-{uuid.uuid4().hex[:8]}"
        yield Store(root)
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)


class S3:
    """Datasets in a fresh bucket on the session's moto S3 server."""

    backend: ClassVar[str] = "s3"
    pytestmark = pytest.mark.s3

    @pytest.fixture
    def store(self, s3_bucket: str, s3_options: dict[str, Any]) -> Store:
        endpoint = s3_options["client_kwargs"]["endpoint_url"]
        delta = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_ENDPOINT_URL": str(endpoint), "AWS_ALLOW_HTTP": "true",
                 "AWS_REGION": "us-east-1"}
        return Store(f"s3://{s3_bucket}", storage_options=s3_options, delta_options=delta)


# -- formats --------------------------------------------------------------------------------

class FileFormat:
    """A format of plain data files: one file per part, under ``key=value/`` directories."""

    format: ClassVar[str]
    extension: ClassVar[str]
    corrupt: ClassVar[bytes]  # a file of this format that cannot be read

    def encode(self, table: pa.Table) -> bytes:
        raise NotImplementedError

    def write(self, store: Store, path: str, parts: Sequence[Part]) -> list[str]:
        """Write the parts under ``path``; return the URLs of the files written."""
        urls = []
        for i, (partition, table) in enumerate(parts):
            dirs = "".join(f"{k}={v}/" for k, v in partition.items())
            url = store.url(f"{path}/{dirs}part-{i}{self.extension}")
            store.put(url, self.encode(table))
            urls.append(url)
        return urls


class Parquet(FileFormat):
    format = "parquet"
    extension = ".parquet"
    corrupt = b"PAR1 this is not a parquet file PAR1"

    def encode(self, table: pa.Table) -> bytes:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()


class Jsonl(FileFormat):
    format = "jsonl"
    extension = ".jsonl"
    corrupt = b'{"id": 1, "user": "u1", "value": 1.25}\n{"id": 2, "user": \n'

    def encode(self, table: pa.Table) -> bytes:
        return "".join(json.dumps(r) + "\n" for r in table.to_pylist()).encode()


class Csv(FileFormat):
    format = "csv"
    extension = ".csv"
    corrupt = b"id,user,value\n1,u1,1.25\n2,u2\n"

    def encode(self, table: pa.Table) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([list(r.values()) for r in table.to_pylist()])
        return out.getvalue().encode()


class Delta:
    """A Delta table: each part one commit; partition columns from the parts' keys."""

    format: ClassVar[str] = "delta"
    corrupt: ClassVar[bytes] = b"PAR1 this is not a parquet file PAR1"

    def write(self, store: Store, path: str, parts: Sequence[Part]) -> list[str]:
        from deltalake import write_deltalake

        url = store.url(path)
        for partition, table in parts:
            for k, v in partition.items():
                table = table.append_column(k, pa.array([v] * table.num_rows, pa.string()))
            write_deltalake(url, table, mode="append", partition_by=list(partition) or None,
                            storage_options=store.delta_options)
        return lk.dataset(url, storage_options=store.storage_options).files
