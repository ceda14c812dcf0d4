"""Errors a newcomer meets print one line saying what to do: no traceback, exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from _support.cli import Cli
from _support.deny import denying_proxy
from _support.kafka import produce

import lakekit as lk
from lakekit.cli import main
from lakekit.errors import AccessDeniedError, ConfigError, NotFoundError, StorageError
from lakekit.local_servers import KafkaBroker, S3Server, free_port


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
                "--group-id", "g", "--table", str(tmp_path / "t"),
                "--consumer-option", "bootstrap_timeout_ms=3000")  # kafka-python's: 30 s
    line = _one_line(proc, "sink")
    assert f"127.0.0.1:{port}" in line and "check bootstrap_servers" in line


def test_storage_endpoint_not_reachable() -> None:
    port = free_port()  # nothing listens there
    options = ["--storage-option", f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}",
               "--storage-option", "AWS_ACCESS_KEY_ID=someone",
               "--storage-option", "AWS_SECRET_ACCESS_KEY=not-shown-anywhere"]
    # botocore's own retries off (its AWS_MAX_ATTEMPTS): lakekit's 5 attempts and its
    # message stay; each refused connection is not retried 5 times more with backoff
    proc = _cli("head", "s3://lake/events/", *options,
                env={**os.environ, "AWS_MAX_ATTEMPTS": "1"})
    line = _one_line(proc, "head")
    assert "cannot reach the storage" in line and "endpoint URL" in line
    assert "not-shown-anywhere" not in proc.stderr + proc.stdout


# -- storage errors a user can cause: a missing bucket, a refusal (403) -----------------------

MISSING = "s3://no-such-bucket-13/t"


def _s3_flags(options: dict[str, object]) -> list[str]:
    client = options["client_kwargs"]
    assert isinstance(client, dict)
    return ["--storage-option", f"AWS_ENDPOINT_URL={client['endpoint_url']}",
            "--storage-option", f"AWS_ACCESS_KEY_ID={options['key']}",
            "--storage-option", f"AWS_SECRET_ACCESS_KEY={options['secret']}",
            "--storage-option", f"AWS_REGION={client['region_name']}"]


@pytest.mark.parametrize("call", [
    lambda so: lk.dataset(MISSING, storage_options=so),
    lambda so: lk.load(MISSING, storage_options=so),
    lambda so: lk.Table(MISSING, storage_options=so).write(pa.table({"a": [1]})),
    lambda so: lk.Table(MISSING, storage_options=so).read(),
    lambda so: lk.Table(MISSING, storage_options=so).version,
    lambda so: lk.Table(MISSING, storage_options=so).history(),
    lambda so: lk.Table(MISSING, storage_options=so).tags(),
    lambda so: lk.Table(MISSING, storage_options=so).tag("x"),
    lambda so: lk.check(MISSING, volume=lk.Volume(min_rows=1), storage_options=so),
], ids=["dataset", "load", "write", "read", "version", "history", "tags", "tag", "check"])
def test_missing_bucket_is_not_found_naming_the_url(
    s3_options: dict[str, object], call: Callable[[dict[str, object]], object]
) -> None:
    with pytest.raises(NotFoundError) as info:
        call(s3_options)
    text = str(info.value)
    assert "s3://no-such-bucket-13" in text and "bucket" in text and "does not exist" in text
    assert "testing" not in text  # the moto server's key and secret


@pytest.mark.parametrize("argv", [
    ("head", MISSING), ("schema", MISSING), ("history", MISSING), ("tag", MISSING),
    ("check", MISSING, "--min-rows", "1"),
])
def test_missing_bucket_in_the_cli_is_one_line(
    s3_options: dict[str, object], cli: Cli, argv: tuple[str, ...]
) -> None:
    code, _, err = cli(*argv, *_s3_flags(s3_options))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lakekit {argv[0]}: "), lines
    assert "s3://no-such-bucket-13" in lines[0] and "does not exist" in lines[0]


@pytest.fixture
def denied(s3_server: S3Server, s3_bucket: str) -> Iterator[tuple[str, dict[str, object]]]:
    """A table URL with one committed version whose prefix then answers 403, and options."""
    url = f"s3://{s3_bucket}/secret/t"
    lk.Table(url, storage_options=s3_server.storage_options).write(pa.table({"a": [1, 2]}))
    with denying_proxy(s3_server.endpoint_url, f"{s3_bucket}/secret") as endpoint:
        options = {**s3_server.storage_options,
                   "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        yield url, options


@pytest.mark.parametrize("call", [
    lambda url, so: lk.dataset(url + "/", format="parquet", storage_options=so).to_arrow(),
    lambda url, so: lk.load(url, storage_options=so),
    lambda url, so: lk.Table(url, storage_options=so).write(pa.table({"a": [3]})),
    lambda url, so: lk.Table(url, storage_options=so).read(),
    lambda url, so: lk.Table(url, storage_options=so).tags(),
    lambda url, so: lk.check(url, volume=lk.Volume(min_rows=1), storage_options=so),
], ids=["dataset", "load", "write", "read", "tags", "check"])
def test_access_denied_is_a_permission_error_naming_the_url(
    denied: tuple[str, dict[str, object]], call: Callable[[str, dict[str, object]], object]
) -> None:
    url, options = denied
    with pytest.raises(AccessDeniedError) as info:
        call(url, options)
    assert isinstance(info.value, PermissionError) and isinstance(info.value, StorageError)
    text = str(info.value)
    assert url in text and "access denied" in text and "credentials" in text
    assert "testing" not in text


def test_access_denied_in_the_cli_is_one_line(
    denied: tuple[str, dict[str, object]], cli: Cli
) -> None:
    url, options = denied
    code, _, err = cli("history", url, *_s3_flags(options))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lakekit history: "), lines
    assert url in lines[0] and "access denied" in lines[0]


@pytest.mark.kafka
@pytest.mark.slow  # the consumer joins its group first (about 20 s)
def test_sink_to_a_missing_bucket_exits_2_with_one_line(
    kafka_broker: KafkaBroker, s3_options: dict[str, object]
) -> None:
    proc = _cli("sink", "--topic", "t13", "--bootstrap-servers", kafka_broker.bootstrap_servers,
                "--group-id", f"g-{uuid.uuid4().hex[:8]}", "--table", MISSING,
                "--stop-after-idle", "1", "--consumer-option", "session_timeout_ms=6000",
                *_s3_flags(s3_options))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "no-such-bucket-13" in ln
              and "sink started" not in ln]  # the one log line before the failure
    assert len(errors) == 1 and errors[0].startswith("lakekit sink: "), proc.stderr
    assert "does not exist" in errors[0] and "testing" not in proc.stderr


# -- deltalake-only storage options ------------------------------------------------------------

@pytest.mark.parametrize("extra", [
    {"conditional_put": "etag"},
    {"AWS_CONDITIONAL_PUT": "etag", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"},
    {"aws_conditional_put": "etag", "allow_http": "true", "aws_s3_locking_provider": "none"},
])
def test_deltalake_only_options_go_to_deltalake_only(
    s3_options: dict[str, object], s3_bucket: str, extra: dict[str, str]
) -> None:
    options = {**s3_options, **extra}
    table = lk.Table(f"s3://{s3_bucket}/t", storage_options=options)
    assert table.write(pa.table({"a": [1, 2]})) == 0
    assert table.write(pa.table({"a": [3]})) == 1
    assert sorted(table.read()["a"].to_pylist()) == [1, 2, 3]
    assert lk.load(f"s3://{s3_bucket}/t", storage_options=options).num_rows == 3
    for key, value in extra.items():  # deltalake gets them, as given
        assert table.location.delta_storage_options()[key] == value


@pytest.mark.kafka
@pytest.mark.slow  # the consumer joins its group first (about 20 s)
def test_sink_takes_deltalake_only_options(
    kafka_broker: KafkaBroker, s3_options: dict[str, object], s3_bucket: str
) -> None:
    topic = f"newcomer-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    produce(kafka_broker, topic, [json.dumps({"id": i}).encode() for i in range(5)])
    table = f"s3://{s3_bucket}/sink"
    options = {**s3_options, "conditional_put": "etag"}
    sink = lk.KafkaDeltaSink(topic, table, bootstrap_servers=kafka_broker.bootstrap_servers,
                             group_id=f"g-{uuid.uuid4().hex[:8]}", storage_options=options,
                             consumer_config={"session_timeout_ms": 6000})
    assert sink.run(max_messages=5).rows_written == 5
    assert sorted(lk.Table(table, storage_options=s3_options).read()["id"].to_pylist()) == [
        0, 1, 2, 3, 4]


def test_unknown_storage_option_is_named_without_its_value(
    s3_options: dict[str, object], s3_bucket: str, cli: Cli
) -> None:
    options = {**s3_options, "conditionl_put": "hunter2-value"}
    with pytest.raises(ConfigError, match="unknown S3 storage option 'conditionl_put'") as info:
        lk.Table(f"s3://{s3_bucket}/t", storage_options=options).write(pa.table({"a": [1]}))
    assert "hunter2-value" not in str(info.value)
    code, _, err = cli("head", f"s3://{s3_bucket}/t", *_s3_flags(s3_options),
                       "--storage-option", "AWS_SECRET_ACESS_KEY=hunter2-value")
    assert code == 2 and "'AWS_SECRET_ACESS_KEY'" in err and "hunter2-value" not in err


# -- KEY=VALUE flags: one pair per flag; usage errors never echo a value -----------------------

@pytest.mark.parametrize("argv", [
    ("sink", "--topic", "t", "--bootstrap-servers", "127.0.0.1:1", "--group-id", "g",
     "--table", "TABLE", "--storage-option", "AWS_REGION=eu",
     "AWS_SECRET_ACCESS_KEY=s3cr3t-v4lue"),
    ("sink", "--topic", "t", "--bootstrap-servers", "127.0.0.1:1", "--group-id", "g",
     "--table", "TABLE", "--consumer-option", "sasl_mechanism=PLAIN", "sasl_plain_password",
     "s3cr3t-v4lue"),
    ("head", "TABLE", "--storage-option", "A=1", "B=s3cr3t-v4lue"),
    ("schema", "infer", "TABLE", "--storage-option", "A=1", "B=s3cr3t-v4lue"),
    ("check", "TABLE", "--storage-option", "A=1", "token=s3cr3t-v4lue"),
    ("history", "TABLE", "--storage-option", "A=1", "s3cr3t-v4lue"),
    ("tag", "TABLE", "v1", "--storage-option", "A=1", "s3cr3t-v4lue"),
])
def test_usage_errors_never_echo_an_option_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    argv = tuple(str(tmp_path / "t") if a == "TABLE" else a for a in argv)
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert "s3cr3t-v4lue" not in out + err
    assert "unrecognized arguments" in err and "repeat the flag" in err


def test_one_pair_per_flag_as_the_usage_line_says(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sink", "--help"])
    usage = capsys.readouterr().out
    assert "[--storage-option KEY=VALUE]" in usage and "repeat the flag" in usage
    assert "[--consumer-option KEY=VALUE]" in usage


# -- tags of a missing table -------------------------------------------------------------------

def test_tags_of_a_missing_table_raise_like_version(tmp_path: Path) -> None:
    table = lk.Table(str(tmp_path / "nothing"))
    for call in (lambda: table.version, table.history, table.tags, lambda: table.tag("v"),
                 lambda: table.untag("v")):
        with pytest.raises(NotFoundError, match="no Delta table here"):
            call()
    assert not (tmp_path / "nothing").exists()  # nothing was created
