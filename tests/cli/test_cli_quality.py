"""`lakekit check` and `lakekit schema infer`: exit statuses, JSON output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from _support.cli import Cli
from _support.data import SCHEMAS, events
from deltalake import write_deltalake

import lakekit as lk

UTC = timezone.utc


@pytest.fixture
def table(tmp_path: Path) -> str:
    uri = str(tmp_path / "events")
    write_deltalake(uri, events(500, newest=datetime.now(UTC) - timedelta(minutes=40)))
    return uri


def test_check_pass_warn_fail_exit_statuses(table: str, cli: Cli) -> None:
    common = ["check", table, "--schema", "events", "--schemas-dir", str(SCHEMAS),
              "--freshness-column", "event_time"]
    code, out, _ = cli(*common, "--max-age", "1h", "--min-rows", "500")
    assert code == 0 and out.startswith("PASS")
    code, out, _ = cli(*common, "--max-age", "1h", "--warn-age", "30m")
    assert code == 0 and out.startswith("WARN") and "[warn] freshness" in out
    code, out, _ = cli(*common, "--max-age", "30m")
    assert code == 1 and out.startswith("FAIL") and "[fail] freshness" in out
    code, out, _ = cli("check", table, "--min-rows", "501")
    assert code == 1 and "500 rows" in out


def test_check_json_and_failure_cases(tmp_path: Path, cli: Cli) -> None:
    uri = str(tmp_path / "bad")
    data = events(50, newest=datetime.now(UTC))
    write_deltalake(uri, data.set_column(2, "kind", pa.array(["oops"] * 50)))
    code, out, _ = cli("check", uri, "--schema", str(SCHEMAS / "events.yaml"), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["status"] == "fail"
    assert report["failure_count"] == 50
    assert report["failure_cases"][0]["column"] == "kind"
    code, out, _ = cli("check", uri, "--schema", str(SCHEMAS / "events.yaml"))
    assert "failure cases (first 20 of 50)" in out and "oops" in out


@pytest.mark.parametrize(("args", "expected"), [
    (["--max-age", "1h"], "not found"),
    (["--max-age", "1h", "--storage-option", "no-equals-sign"], "expects KEY=VALUE"),
    (["--schema", "no_such_schema"], "available: events"),
    (["--max-age", "soon"], "duration like"),
    ([], "nothing to check"),
])
def test_check_usage_config_and_access_errors_exit_2_with_one_line(
        tmp_path: Path, cli: Cli, args: list[str], expected: str
) -> None:
    code, out, err = cli("check", str(tmp_path / "missing"), "--schemas-dir",
                         str(SCHEMAS), *args)
    assert code == 2
    assert out == ""
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_invalid_schema_file_exit_2_names_the_file(table: str, tmp_path: Path,
                                                   cli: Cli) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("columns:\n  a: [unclosed\n")
    code, _, err = cli("check", table, "--schema", str(broken))
    assert code == 2
    assert str(broken) in err and "invalid YAML" in err and "line 3" in err


def test_console_script_runs_as_a_process(table: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lakekit.cli", "check", table, "--freshness-column",
         "event_time", "--max-age", "30m",
         "--storage-option", "AWS_SECRET_ACCESS_KEY=hunter2-secret"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "FAIL" in proc.stdout
    assert "hunter2-secret" not in proc.stdout + proc.stderr


def test_schema_infer_writes_a_schema_the_data_passes(
        table: str, tmp_path: Path, cli: Cli) -> None:
    code, out, _ = cli("schema", "infer", table)
    assert code == 0
    assert out.startswith("# pandera schema inferred by `lakekit schema infer`")
    path = tmp_path / "schemas" / "inferred.yaml"
    path.parent.mkdir()
    path.write_text(out)
    assert lk.check(table, "inferred", schemas_dir=path.parent).status == "pass"
    bad = events(5, newest=datetime.now(UTC)).set_column(2, "kind", pa.array(["x"] * 5))
    assert lk.check(bad, str(path)).status == "fail"  # kind lengths were learnt (4-5)

    code, out, _ = cli("schema", table)  # the arrow schema, as before
    assert code == 0 and out.startswith("delta dataset") and "event_time: timestamp" in out
