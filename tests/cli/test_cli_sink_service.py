"""``lakekit sink`` run as a service: every flag from ``LAKEKIT_SINK_<FLAG>`` variables (the
command line wins), credentials from ``KEY=VALUE`` files, ``--log-format json`` lines."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _support.cli import Cli
from _support.kafka import event, produce

import lakekit as lk
import lakekit.cli.sink as cli_sink
from lakekit.cli import build_parser, main
from lakekit.local_servers import KafkaBroker, S3Server

ROOT = Path(__file__).resolve().parents[2]
SECRET = f"s3cr3t-{uuid.uuid4().hex[:12]}"
JSON_KEYS = {"ts", "level", "event", "message"}


def sink_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sink: argparse.ArgumentParser = sub.choices["sink"]
    return sink


def flags() -> list[argparse.Action]:
    return [a for a in sink_parser()._actions
            if any(o.startswith("--") for o in a.option_strings) and a.dest != "help"]


def env_of(action: argparse.Action) -> str:
    flag = next(o for o in action.option_strings if o.startswith("--"))
    return "LAKEKIT_SINK_" + flag[2:].replace("-", "_").upper()


def sample(action: argparse.Action) -> str:
    """A value each flag accepts, different from its default."""
    if action.choices:
        return str(list(action.choices)[-1])
    if action.metavar == "KEY=VALUE":
        return "session_timeout_ms=6000"
    return "7" if action.type is not None else "x7"


@pytest.fixture
def no_sink_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("LAKEKIT_SINK_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def parsed(no_sink_env: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """What ``lakekit sink`` hands its command: runs of main() record it, nothing runs."""
    got: list[argparse.Namespace] = []

    def record(args: argparse.Namespace) -> int:
        got.append(args)
        return 0

    no_sink_env.setattr(cli_sink, "_cmd_sink", record)
    return got


def options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("handler", "command")}


def test_every_flag_reads_its_variable_as_the_command_line_would(
    parsed: list[argparse.Namespace], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = flags()
    assert len(actions) >= 18  # every flag, including those added after this test
    argv = ["sink"]
    for action in actions:
        argv += [action.option_strings[0]] + ([] if action.nargs == 0 else [sample(action)])
    assert main(argv) == 0
    for action in actions:
        monkeypatch.setenv(env_of(action), "true" if action.nargs == 0 else sample(action))
    assert main(["sink"]) == 0  # required flags satisfied by their variables
    from_cli, from_env = map(options, parsed)
    assert from_env == from_cli
    assert all(from_env[a.dest] != a.default for a in actions)

    # the command line wins, for a repeatable flag too (not added to the variable's list)
    monkeypatch.setenv("LAKEKIT_SINK_TOPIC", "env-a,env-b")
    assert main(["sink", "--topic", "cli-topic", "--max-batch-seconds", "2.5"]) == 0
    assert parsed[-1].topic == ["cli-topic"] and parsed[-1].max_batch_seconds == 2.5
    assert main(["sink"]) == 0
    assert parsed[-1].topic == ["env-a", "env-b"] and parsed[-1].max_batch_seconds == 7.0

    monkeypatch.setenv("LAKEKIT_SINK_MAX_BATCH_SECONDS", "")  # set empty: the default
    assert main(["sink"]) == 0
    assert parsed[-1].max_batch_seconds == 10.0


@pytest.mark.parametrize("name, value, expected", [
    ("LAKEKIT_SINK_MAX_BATCH_BYTES", f"lots-{SECRET}", "expected a size such as"),
    ("LAKEKIT_SINK_MAX_BATCH_ROWS", SECRET, "not a valid int"),
    ("LAKEKIT_SINK_LOG_FORMAT", SECRET, "expects one of text, json"),
    ("LAKEKIT_SINK_KAFKA_METADATA", SECRET, "expects true or false"),
])
def test_a_bad_variable_is_named_without_its_value(
    no_sink_env: pytest.MonkeyPatch, cli: Cli, name: str, value: str, expected: str
) -> None:
    for var, text in [("TOPIC", "t"), ("BOOTSTRAP_SERVERS", "127.0.0.1:1"),
                      ("GROUP_ID", "g"), ("TABLE", "lake/t"), (name[13:], value)]:
        no_sink_env.setenv(f"LAKEKIT_SINK_{var}", text)
    code, out, err = cli("sink")
    assert code == 2, err
    assert name in err and expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert SECRET not in err + out


@pytest.mark.parametrize("flag, text, expected", [
    ("--storage-options-file", f"# creds\nAWS_ACCESS_KEY_ID=a\n{SECRET}\n",
     "line 3: expected KEY=VALUE"),
    ("--consumer-options-file", f"\nsasl_plain_pasword={SECRET}\n",
     "line 2: 'sasl_plain_pasword' is not a kafka-python consumer setting"),
    ("--consumer-options-file", f"session_timeout_ms={SECRET}\n",
     "line 1 session_timeout_ms expects a number"),
])
def test_a_bad_options_file_line_is_named_without_its_value(
    no_sink_env: pytest.MonkeyPatch, cli: Cli, tmp_path: Path, flag: str, text: str,
    expected: str
) -> None:
    path = tmp_path / "creds.env"
    path.write_text(text)
    for fmt in ("text", "json"):
        code, out, err = cli("sink", "--topic", "t", "--bootstrap-servers", "127.0.0.1:1",
                             "--group-id", "g", "--table", str(tmp_path / "t"), flag, str(path),
                             "--log-format", fmt)
        assert code == 2, err
        assert f"{flag} {path} {expected}" in err, err
        assert len(err.strip().splitlines()) == 1
        assert SECRET not in err + out
    line = json.loads(err)
    assert line["event"] == "error" and line["level"] == "error" and set(line) >= JSON_KEYS


def test_a_missing_options_file_is_named(no_sink_env: pytest.MonkeyPatch, cli: Cli,
                                         tmp_path: Path) -> None:
    code, _, err = cli("sink", "--topic", "t", "--bootstrap-servers", "127.0.0.1:1",
                       "--group-id", "g", "--table", str(tmp_path / "t"),
                       "--storage-options-file", str(tmp_path / "nope.env"))
    assert code == 2
    assert f"--storage-options-file {tmp_path / 'nope.env'}: cannot read it" in err


# --- real runs: a subprocess, as a container runs it ---------------------------------------

def sink_process(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEKIT_SINK_")}
    return subprocess.run([sys.executable, "-m", "lakekit.cli", "sink", *argv],
                          env={**base, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    for line in lines:
        assert set(line) >= JSON_KEYS, line
        assert datetime.fromisoformat(line["ts"]).utcoffset().total_seconds() == 0
        assert line["level"] in ("debug", "info", "warning", "error", "critical")
    return lines


@pytest.mark.kafka
@pytest.mark.slow
def test_variables_drive_a_run_with_json_lines_and_the_command_line_wins(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = f"svc-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 2)
    placed = produce(kafka_broker, topic, [event(i) for i in range(200)], partitions=2)
    table, elsewhere = tmp_path / "events", tmp_path / "not-this-one"
    env = {
        "LAKEKIT_SINK_TOPIC": topic,
        "LAKEKIT_SINK_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "LAKEKIT_SINK_GROUP_ID": f"g-{uuid.uuid4().hex[:8]}",
        "LAKEKIT_SINK_TABLE": str(elsewhere),
        "LAKEKIT_SINK_KAFKA_METADATA": "true",
        "LAKEKIT_SINK_MAX_BATCH_ROWS": "100000",
        "LAKEKIT_SINK_LOG_FORMAT": "json",
        "LAKEKIT_SINK_CONSUMER_OPTION": "session_timeout_ms=6000\nclient_id=lakekit-svc",
        "LAKEKIT_SINK_STOP_AFTER_IDLE": "600",
    }
    done = sink_process(["--table", str(table), "--max-batch-rows", "50",
                         "--stop-after-idle", "2"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "200 records in, 200 rows written" in done.stdout
    assert not elsewhere.exists()
    data = lk.Table(str(table)).read(columns=["_kafka_partition", "_kafka_offset"])
    assert data.num_rows == 200  # --kafka-metadata came from the environment

    lines = json_lines(done.stderr)
    events = [line["event"] for line in lines]
    assert events[0] == "start" and events[-1] == "stop", events
    start = lines[0]
    assert start["topics"] == [topic] and start["table"] == str(table)
    assigned = [p for line in lines if line["event"] == "rebalance"
                for p in line.get("assigned", [])]
    assert sorted(assigned) == [f"{topic}[0]", f"{topic}[1]"]
    revoked = [p for line in lines if line["event"] == "rebalance"
               for p in line.get("revoked", [])]
    assert sorted(revoked) == [f"{topic}[0]", f"{topic}[1]"]  # leaving the group at the stop
    commits = [line for line in lines if line["event"] == "commit"]
    assert len(commits) >= 4  # --max-batch-rows 50 won over the variable's 100000
    assert all(c["records"] <= 50 for c in commits)
    assert sum(c["rows_written"] for c in commits) == 200
    assert [c["version"] for c in commits] == list(range(len(commits)))
    assert all(c["message"].startswith(f"commit v{c['version']} ") for c in commits)
    last: dict[str, int] = {}
    for c in commits:
        assert {"offsets", "lag", "decode_seconds", "commit_seconds", "attempts",
                "dead_lettered"} <= set(c)
        last.update(c["offsets"])
    assert last == {f"{topic}[{p}]": max(o for q, o in placed if q == p) for p in (0, 1)}
    assert lines[-1]["rows_written"] == 200 and lines[-1]["offsets"] == last


@pytest.mark.kafka
@pytest.mark.slow
def test_credentials_from_the_environment_or_files_never_show_even_on_errors(
    kafka_broker: KafkaBroker, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    aws = {"AWS_ACCESS_KEY_ID": f"AKIA-{SECRET}", "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_ENDPOINT_URL": s3_server.endpoint_url, "AWS_REGION": s3_server.region,
           "AWS_ALLOW_HTTP": "true"}
    storage = tmp_path / "storage.env"
    storage.write_text("# mounted from a Kubernetes secret\n"
                       + "".join(f"{k}={v}\n" for k, v in aws.items()))
    consumer = tmp_path / "consumer.env"
    # 2 s sessions: the three runs of one group join in about 1 s each, not 3
    consumer.write_text(f"session_timeout_ms=2000\nsasl_plain_password={SECRET}\n")
    topic = f"svc-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    uri = f"s3://{s3_bucket}/events"
    argv = ["--topic", topic, "--bootstrap-servers", kafka_broker.bootstrap_servers,
            "--group-id", f"g-{uuid.uuid4().hex[:8]}", "--table", uri,
            "--consumer-options-file", str(consumer), "--stop-after-idle", "2"]
    options = {**s3_server.storage_options, "key": f"AKIA-{SECRET}", "secret": SECRET}

    # the standard AWS_* variables, as a pod gets them from a secret (no storage option)
    produce(kafka_broker, topic, [event(i) for i in range(30)])
    done = sink_process(argv, aws)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "30 rows written" in done.stdout
    assert SECRET not in done.stdout + done.stderr

    # an options file named by a variable
    produce(kafka_broker, topic, [event(i) for i in range(30, 50)])
    env = {"LAKEKIT_SINK_STORAGE_OPTIONS_FILE": str(storage)}
    done = sink_process(argv, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "20 rows written" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert lk.Table(uri, storage_options=options).read().num_rows == 50

    produce(kafka_broker, topic, [b"{not json"])
    failed = sink_process([*argv, "--on-error", "fail", "--log-format", "json"], env)
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert SECRET not in failed.stdout + failed.stderr
    error = json_lines(failed.stderr)[-1]
    assert error["event"] == "error" and error["error_type"] == "BadRecordError"
    assert f"topic {topic!r} partition 0 offset 50" in error["message"]
    assert lk.Table(uri, storage_options=options).read().num_rows == 50
