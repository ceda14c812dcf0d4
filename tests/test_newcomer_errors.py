"""Errors a newcomer meets print one line saying what to do: no traceback, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakekit.local_servers import free_port


def _cli(*args: str, block: str | None = None, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `lakekit` CLI; ``block`` makes one package unimportable (an extra not installed)."""
    pre = f"import sys; sys.modules[{block!r}] = None; " if block else "import sys; "
    code = pre + ("from lakekit.cli import main; sys.argv = ['lakekit', *sys.argv[1:]]; "
                  "sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def _one_line(proc: subprocess.CompletedProcess[str], command: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    mine = [line for line in lines if line.startswith(f"lakekit {command}: ")]
    assert len(mine) == 1, lines
    return mine[0]


def test_no_s3_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(
        tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    line = _one_line(_cli("head", "s3://lake/events/", env=env), "head")
    assert "no S3 credentials found" in line
    assert "AWS_ACCESS_KEY_ID" in line and "storage_options" in line


def test_wrong_url_scheme() -> None:
    line = _one_line(_cli("head", "s4://lake/events/"), "head")
    assert "Protocol not known: s4" in line and "s3://" in line


@pytest.mark.parametrize(
    ("block", "args", "extra"),
    [
        ("s3fs", ("head", "s3://lake/events/"), "lakekit[s3]"),
        ("kafka", ("sink", "--topic", "t", "--bootstrap-servers", "127.0.0.1:9",
                   "--group-id", "g", "--table", "TABLE"), "lakekit[kafka]"),
    ],
)
def test_missing_extra(tmp_path: Path, block: str, args: tuple[str, ...], extra: str) -> None:
    args = tuple(str(tmp_path / "t") if a == "TABLE" else a for a in args)
    line = _one_line(_cli(*args, block=block), args[0])
    assert f"pip install '{extra}'" in line


def test_missing_extra_for_the_demo(tmp_path: Path) -> None:
    line = _one_line(_cli("demo", "--dir", str(tmp_path / "lake"), block="moto"), "demo")
    assert "pip install 'lakekit[demo]'" in line


@pytest.mark.kafka
@pytest.mark.slow  # kafka-python gives up bootstrapping after about 30 s
def test_broker_not_reachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    proc = _cli("sink", "--topic", "t", "--bootstrap-servers", f"127.0.0.1:{port}",
                "--group-id", "g", "--table", str(tmp_path / "t"))
    line = _one_line(proc, "sink")
    assert f"127.0.0.1:{port}" in line and "check bootstrap_servers" in line


def test_storage_endpoint_not_reachable() -> None:
    port = free_port()  # nothing listens there
    options = ["--storage-option", f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}",
               "--storage-option", "AWS_ACCESS_KEY_ID=someone",
               "--storage-option", "AWS_SECRET_ACCESS_KEY=not-shown-anywhere"]
    proc = _cli("head", "s3://lake/events/", *options)
    line = _one_line(proc, "head")
    assert "cannot reach the storage" in line and "endpoint URL" in line
    assert "not-shown-anywhere" not in proc.stderr + proc.stdout
