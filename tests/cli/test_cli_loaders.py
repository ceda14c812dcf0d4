"""``lakekit head`` and ``lakekit schema``: output on real data, exit codes and one-line
errors (no tracebacks, no secrets)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _support.cli import Cli
from deltalake import write_deltalake

from lakekit.cli import main

SECRET = "cli-Secret-Value-3c2b1a0f"


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    root = tmp_path / "events"
    root.mkdir()
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("user", pa.string()),
                        ("score", pa.float64())])
    for i, start in ((1, 0), (2, 10), (10, 100)):
        ids = list(range(start, start + 5))
        table = pa.table({"id": ids, "user": [f"user-{j}" for j in ids],
                          "score": [j / 4 for j in ids]}, schema=schema)
        pq.write_table(table, root / f"shard_{i}.parquet")
    (root / "_SUCCESS").write_bytes(b"")
    return root


def test_head_prints_the_first_rows(shards: Path, cli: Cli) -> None:
    code, out, err = cli("head", str(shards), "-n", "3")
    assert code == 0 and err == ""
    assert "shape: (3, 3)" in out
    for value in ("user-0", "user-1", "user-2"):
        assert value in out
    assert "user-3" not in out and "user-10" not in out


def test_head_default_rows_and_columns(shards: Path, cli: Cli) -> None:
    code, out, _ = cli("head", str(shards), "--columns", "score, id")
    assert code == 0
    assert "shape: (10, 2)" in out  # 10 rows by default, in natural shard order
    assert "user" not in out
    assert out.index("score") < out.index("id")
    lines = [line for line in out.splitlines() if "│" in line]
    assert any("14" in line for line in lines)      # shard_2's last row is the 10th
    assert not any("100" in line for line in lines)  # shard_10 is not reached


def test_schema_prints_format_files_and_types(shards: Path, cli: Cli) -> None:
    code, out, err = cli("schema", str(shards))
    assert code == 0 and err == ""
    assert out.splitlines() == [
        "parquet dataset, 3 file(s)",
        "  id: int64 not null",
        "  user: string",
        "  score: double",
    ]


def test_head_and_schema_of_a_delta_table_and_a_format_override(
    tmp_path: Path, cli: Cli
) -> None:
    write_deltalake(tmp_path / "t", pa.table({"k": [1, 2], "v": ["a", "b"]}))
    code, out, _ = cli("schema", str(tmp_path / "t"))
    assert code == 0 and out.splitlines()[0] == "delta dataset, 1 file(s)"
    code, out, _ = cli("head", str(tmp_path / "t"), "-n", "1", "--columns", "v")
    assert code == 0 and "shape: (1, 1)" in out
    (tmp_path / "data.txt").write_text("a,b\n1,x\n2,y\n")
    code, out, _ = cli("schema", str(tmp_path / "data.txt"), "--format", "csv")
    assert code == 0 and out.splitlines() == ["csv dataset, 1 file(s)", "  a: int64",
                                              "  b: string"]


@pytest.mark.parametrize("command", ["head", "schema"])
def test_missing_source_is_one_line_exit_2(tmp_path: Path, command: str, cli: Cli) -> None:
    missing = tmp_path / "nope"
    code, out, err = cli(command, str(missing))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"lakekit {command}: {missing}: not found"]


def test_bad_input_errors_name_what_is_wrong(shards: Path, tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("head", str(shards), "--columns", "id,nope")
    assert code == 2 and "'nope'" in err and "available: id, user, score" in err
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"definitely not parquet")
    code, _, err = cli("head", str(bad))
    assert code == 2 and str(bad) in err and "Traceback" not in err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pq.write_table(pa.table({"x": [1]}), mixed / "a.parquet")
    pq.write_table(pa.table({"x": ["one"]}), mixed / "b.parquet")
    code, _, err = cli("schema", str(mixed))
    assert code == 2
    assert str(mixed / "a.parquet") in err and str(mixed / "b.parquet") in err and "'x'" in err


def test_malformed_storage_option_is_a_usage_error(
    shards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["head", str(shards), "--storage-option", f"AWS_SECRET_ACCESS_KEY{SECRET}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "KEY=VALUE" in err and len(err.strip().splitlines()) == 1
    assert SECRET not in err


@pytest.mark.s3
def test_s3_head_with_storage_options_never_prints_the_secret(
    s3_bucket: str, s3_options: dict[str, object], cli: Cli
) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)  # type: ignore[arg-type]
    with fs.open(f"{s3_bucket}/cli/part-0.parquet", "wb") as f:
        pq.write_table(pa.table({"id": [1, 2, 3]}), f)
    endpoint = s3_options["client_kwargs"]["endpoint_url"]  # type: ignore[index]
    opts = ["--storage-option", "AWS_ACCESS_KEY_ID=AKIACLITEST",
            "--storage-option", f"AWS_SECRET_ACCESS_KEY={SECRET}",
            "--storage-option", f"AWS_ENDPOINT_URL={endpoint}",
            "--storage-option", "AWS_REGION=us-east-1"]
    code, out, err = cli("head", f"s3://{s3_bucket}/cli", *opts)
    assert code == 0 and "shape: (3, 1)" in out
    code, out, err = cli("schema", f"s3://{s3_bucket}/cli/", *opts)
    assert code == 0 and out.splitlines() == ["parquet dataset, 1 file(s)", "  id: int64"]
    code, out, err = cli("head", f"s3://{s3_bucket}/missing", *opts)
    assert code == 2 and f"s3://{s3_bucket}/missing" in err
    code, out2, err2 = cli("head", f"s3://AKIACLITEST:{SECRET}@{s3_bucket}/cli", *opts)
    assert code == 2
    for text in (out, err, out2, err2):
        assert SECRET not in text and "AKIACLITEST" not in text
