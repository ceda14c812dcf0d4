"""The tables' contract (tests/tables/table_contract.py) on each backend.

``memory://`` is left out: deltalake cannot see fsspec's in-process memory filesystem, so no
Delta table can live there.
"""

from __future__ import annotations

from table_contract import S3, LocalDisk, TableContract


class TestTablesLocal(LocalDisk, TableContract):
    pass


class TestTablesS3(S3, TableContract):
    pass
