"""Versioned tables on local disk: what only this backend does. A creator's crash that leaves
an empty log directory, tags claimed at once (atomic by hard links, readable by the table's
other users), checkpoints every ten commits, and the CLI. What every backend must do is in
the contract (table_contract.py, run by test_table_contract.py)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _support.tables_race import claim_tag_concurrently
from table_contract import ids, rows

import lakekit as lk
from lakekit.cli import main as cli


@pytest.fixture
def table(tmp_path: Path) -> lk.Table:
    return lk.Table(tmp_path / "t")


def test_a_data_file_left_by_a_crashed_creator_does_not_block_creating_the_table(
    tmp_path: Path
) -> None:
    where = tmp_path / "t"
    where.mkdir()
    pq.write_table(rows(100, 2), where / f"part-00001-{uuid.uuid4()}-c000.snappy.parquet")
    (where / "_delta_log").mkdir()  # the creator died before its first commit
    t = lk.Table(where)
    assert t.write(rows(0, 3)) == 0
    assert ids(t.read()) == [0, 1, 2]  # the orphan is not part of the table


def test_concurrent_tag_creation_has_exactly_one_winner(table: lk.Table) -> None:
    for i in range(4):
        table.write(rows(i, 1))
    expected = {}
    for round_ in range(8):  # a lost race is rare in one round; several make it likely
        name = f"release-{round_}"
        results = claim_tag_concurrently(lambda: lk.Table(table.uri), name, range(4))
        winners = [r for r in results if isinstance(r, int)]
        assert len(results) == 4 and len(winners) == 1, results
        assert all("already exists" in str(r) for r in results if not isinstance(r, int))
        expected[name] = winners[0]
    assert table.tags() == expected
    tags_dir = f"{table.uri}/_lakekit/tags"
    assert not [p for p in os.listdir(tags_dir) if p.endswith(".tmp")]
    umask = os.umask(0)
    os.umask(umask)
    modes = {os.stat(f"{tags_dir}/{p}").st_mode & 0o777 for p in os.listdir(tags_dir)}
    assert modes == {0o666 & ~umask}  # readable by the table's other users, as any file


def test_tables_lakekit_creates_checkpoint_every_ten_commits(tmp_path: Path) -> None:
    t = lk.Table(tmp_path / "t")
    for i in range(12):
        t.write(rows(i, 1))
    log = tmp_path / "t" / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        "00000000000000000009.checkpoint.parquet"]
    assert ids(lk.Table(tmp_path / "t").read(10)) == list(range(11))


# -- CLI -----------------------------------------------------------------------------------

def test_cli_history_tag_restore_diff(table: lk.Table, capsys: pytest.CaptureFixture[str]) -> None:
    table.write(rows(0, 3), metadata={"source": "cli-test"})
    table.write(rows(50, 1), mode="overwrite")
    assert cli(["tag", table.uri, "good", "--version", "0"]) == 0
    assert "tagged version 0" in capsys.readouterr().out
    assert cli(["tag", table.uri, "good"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli(["history", table.uri]) == 0
    out = capsys.readouterr().out
    assert "tags: good" in out and "source=cli-test" in out and "WRITE" in out
    assert cli(["history", table.uri, "--json", "--limit", "1"]) == 0
    assert [c["version"] for c in json.loads(capsys.readouterr().out)] == [1]
    assert cli(["diff", table.uri, "good", "1"]) == 0
    assert "3 -> 1 rows (-2)" in capsys.readouterr().out
    assert cli(["restore", table.uri, "--tag", "good"]) == 0
    assert "new version 2" in capsys.readouterr().out
    assert ids(table.read()) == [0, 1, 2]
    assert cli(["restore", table.uri, "--as-of", "2001-01-01T00:00:00Z"]) == 2
    assert "first readable commit" in capsys.readouterr().err
    assert cli(["tag", table.uri]) == 0
    assert capsys.readouterr().out.split() == ["good", "0"]
