"""``lakekit sink`` options: consumer settings, sizes, error handling, secrets."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from _support.cli import Cli
from _support.kafka import produce

import lakekit as lk
from lakekit.cli import main
from lakekit.local_servers import KafkaBroker

SECRET = "s3cr3t-consumer-password"
BASE = ["sink", "--topic", "t", "--bootstrap-servers", "127.0.0.1:1", "--group-id", "g"]


def test_unknown_consumer_option_is_named(tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli(*BASE, "--table", str(tmp_path / "t"),
                       "--consumer-option", "sesion_timeout_ms=6000")
    assert code == 2
    assert "'sesion_timeout_ms' is not a kafka-python consumer setting" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option, expected", [
    ("session_timeout_ms=soon", "session_timeout_ms expects a number"),
    ("check_crcs=maybe", "check_crcs expects true or false"),
    (f"sasl_plain_password{SECRET}", "expects KEY=VALUE"),
])
def test_malformed_consumer_options_are_usage_errors_without_their_values(
    tmp_path: Path, cli: Cli, option: str, expected: str
) -> None:
    code, _, err = cli(*BASE, "--table", str(tmp_path / "t"), "--consumer-option", option)
    assert code == 2
    assert expected in err
    assert SECRET not in err and "soon" not in err and "maybe" not in err


def test_batch_size_accepts_units_and_rejects_nonsense(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*BASE, "--table", str(tmp_path / "t"), "--max-batch-bytes", "lots"])
    assert exc.value.code == 2
    assert "expected a size such as" in capsys.readouterr().err


@pytest.mark.kafka
def test_cli_on_error_fail_names_the_record_and_commits_nothing(
    kafka_broker: KafkaBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"cli-fail-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    values = [json.dumps({"id": i}).encode() for i in range(5)]
    values[3] = b"{not json"
    produce(kafka_broker, topic, values)
    table = str(tmp_path / "events")
    code = main(["sink", "--topic", topic, "--bootstrap-servers",
                 kafka_broker.bootstrap_servers, "--group-id", f"g-{uuid.uuid4().hex[:8]}",
                 "--table", table, "--on-error", "fail", "--max-batch-bytes", "1MiB",
                 "--stop-after-idle", "2",
                 "--consumer-option", "session_timeout_ms=6000",
                 "--consumer-option", f"client_id=lakekit-{SECRET}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"topic {topic!r} partition 0 offset 3" in err
    assert not lk.Table(table).exists
