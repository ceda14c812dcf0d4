"""The loader contract (tests/io/loader_contract.py) for each format on each backend.

Delta on ``memory://`` is left out: deltalake cannot see fsspec's in-process memory
filesystem, and lakekit says so (test_loaders_remote.py checks that error).
"""

from __future__ import annotations

from loader_contract import S3, Csv, Delta, Jsonl, LoaderContract, LocalDisk, Memory, Parquet


class TestParquetLocal(Parquet, LocalDisk, LoaderContract):
    pass


class TestJsonlLocal(Jsonl, LocalDisk, LoaderContract):
    pass


class TestCsvLocal(Csv, LocalDisk, LoaderContract):
    pass


class TestDeltaLocal(Delta, LocalDisk, LoaderContract):
    pass


class TestParquetMemory(Parquet, Memory, LoaderContract):
    pass


class TestJsonlMemory(Jsonl, Memory, LoaderContract):
    pass


class TestCsvMemory(Csv, Memory, LoaderContract):
    pass


class TestParquetS3(Parquet, S3, LoaderContract):
    pass


class TestJsonlS3(Jsonl, S3, LoaderContract):
    pass


class TestCsvS3(Csv, S3, LoaderContract):
    pass


class TestDeltaS3(Delta, S3, LoaderContract):
    pass
