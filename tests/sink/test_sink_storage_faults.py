"""The sink under S3 failures (the fault proxy in its own process in front of moto): an
ambiguous commit (the commit file's conditional PUT applied, its reply lost) of the main
and of the dead-letter table, and a sink killed with SIGKILL at random instants through a
mixed fault schedule and a broker restart. Every valid record lands exactly once in the
main table, every bad one exactly once in the dead-letter table."""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pandera.polars as pap
import polars as pl
import pytest
from _support.kafka import event, new_topic, produce, sink_for, where
from _support.proxy_process import proxy_process
from pandera.io import polars_io

import lakekit as lk
from lakekit.local_servers import KafkaBroker, S3Server, restartable_tansu_broker

pytestmark = [pytest.mark.kafka, pytest.mark.s3]

BAD = b'{"id": 1, "user": "u'  # cannot be decoded: dead-lettered


def _values(n: int) -> tuple[list[bytes], list[bool]]:
    values, bad = [], []
    for i in range(n):
        is_bad = i % 9 == 4
        values.append(BAD if is_bad else event(i))
        bad.append(is_bad)
    return values, bad


@pytest.mark.parametrize("commit", [
    "events/_delta_log/0+\\.json$",               # the main table's creation
    "events/_delta_log/0+2\\.json$",              # a later append to it
    "events_dead_letter/_delta_log/0+\\.json$",   # the dead-letter table's creation
    "events_dead_letter/_delta_log/0+1\\.json$",  # a later dead-letter append
], ids=["main-create", "main-append", "dead-create", "dead-append"])
def test_an_ambiguous_commit_of_the_sink_writes_rows_and_dead_letters_once(
    kafka_broker: KafkaBroker, s3_server: S3Server, s3_bucket: str,
    s3_options: dict[str, Any], commit: str, caplog: pytest.LogCaptureFixture,
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    values, bad = _values(60)
    placed = produce(kafka_broker, topic, values, partitions=2)
    valid = {loc for loc, b in zip(placed, bad, strict=True) if not b}
    invalid = {loc for loc, b in zip(placed, bad, strict=True) if b}
    table = f"s3://{s3_bucket}/events"
    caplog.set_level(logging.INFO, logger="lakekit.sink")
    with proxy_process(s3_server.endpoint_url, schedule={"cput": {"reset_after": 1.0}},
                       max_faults=1, match=commit) as proxy:
        sink = sink_for(kafka_broker, topic, table, storage_options=proxy.options(s3_options),
                        kafka_metadata=True, max_batch_rows=20, max_batch_seconds=0.3)
        stats = sink.run(stop_after_idle=1.5)
        faults = proxy.faults()
    assert [(kind, fault) for kind, fault, _ in faults] == [("cput", "reset_after")], faults
    data = lk.Table(table, storage_options=s3_options).read(
        columns=["_kafka_partition", "_kafka_offset"])
    got = where(data)
    assert len(got) == len(set(got)), "a record was written twice"
    assert set(got) == valid
    dead = lk.Table(f"{table}_dead_letter", storage_options=s3_options).read(
        columns=["partition", "offset"])
    dead_at = where(dead, prefix="")
    assert len(dead_at) == len(set(dead_at)), "a record was dead-lettered twice"
    assert set(dead_at) == invalid
    assert stats.rows_written == len(valid) and stats.dead_lettered == len(invalid)


# A sink process; its storage options (through the fault proxy) come as JSON.
CHILD = r"""
import json, logging, sys
import lakekit as lk
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
logging.getLogger("kafka").setLevel(logging.ERROR)
bootstrap, topic, table, group, schema, rows, idle, options = sys.argv[1:9]
sink = lk.KafkaDeltaSink(
    topic, table, bootstrap_servers=bootstrap, group_id=group,
    storage_options=json.loads(options), schema=schema, kafka_metadata=True,
    # 3 s sessions (not 6): a join takes half of it, and each start after a SIGKILL
    # waits out the killed member's session first
    consumer_config={"session_timeout_ms": 3000, "reconnect_backoff_max_ms": 500},
    max_batch_rows=int(rows), max_batch_seconds=0.5,
)
stats = sink.run(stop_after_idle=float(idle) if idle != "-" else None)
print(json.dumps({"rows_written": stats.rows_written, "dead_lettered": stats.dead_lettered}))
"""

SCHEMA = pap.DataFrameSchema({
    "id": pap.Column(pl.Int64, pap.Check.ge(0)),
    "user": pap.Column(pl.Utf8),
    "amount": pap.Column(pl.Float64),
})


class _Sink:
    """A sink subprocess; a thread collects its stderr lines."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=Path(__file__).resolve().parents[2])
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def tail(self) -> str:
        return f"exit {self.proc.poll()}:\n" + "\n".join(self.lines[-40:])

    def commits(self) -> int:
        return sum("commit v" in line for line in list(self.lines))

    def wait_for_commits(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.commits() < n:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.tail()
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def table_rows(uri: str, options: dict[str, Any]) -> int:
    t = lk.Table(uri, storage_options=options)
    return t.read(columns=["_kafka_offset"]).num_rows if t.exists else 0


MIXED = {"*": {"slowdown": 0.03, "internal": 0.03, "reset": 0.03, "reset_after": 0.02,
               "truncate": 0.03, "stall": 0.02},
         "cput": {"slowdown": 0.05, "internal": 0.05, "reset": 0.05, "reset_after": 0.2,
                  "stall": 0.05}}


@pytest.mark.slow
def test_sigkill_broker_restart_and_storage_faults_keep_exactly_once(
    s3_server: S3Server, s3_bucket: str, s3_options: dict[str, Any], tmp_path: Path,
) -> None:
    rng = random.Random(13)
    schema = tmp_path / "events.yaml"
    schema.write_text(polars_io.to_yaml(SCHEMA))
    table = f"s3://{s3_bucket}/events"
    group = f"g-{uuid.uuid4().hex[:8]}"
    valid: set[tuple[int, int]] = set()
    invalid: set[tuple[int, int]] = set()
    counter = 0
    sinks: list[_Sink] = []
    kills_mid_stream = 0

    def produce_chunk(broker: KafkaBroker, n: int) -> None:
        nonlocal counter
        values, bad = [], []
        for i in range(counter, counter + n):
            if i % 23 == 5:
                values.append(BAD)  # cannot be decoded
            elif i % 29 == 7:
                values.append(event(i, id=-i))  # fails the schema's check
            else:
                values.append(event(i))
            bad.append(i % 23 == 5 or i % 29 == 7)
        for loc, is_bad in zip(produce(broker, "events", values, partitions=3, start=counter),
                               bad, strict=True):
            (invalid if is_bad else valid).add(loc)
        counter += n

    with restartable_tansu_broker(s3_server, bucket=f"tansu-{uuid.uuid4().hex[:8]}") as broker, \
            proxy_process(s3_server.endpoint_url, seed=13, schedule=MIXED, max_faults=80,
                          stall_s=0.3) as proxy:
        broker.create_topic("events", 3)
        options = json.dumps(proxy.options(s3_options))

        def start(rows: int, idle: str = "-") -> _Sink:
            sink = _Sink(broker.bootstrap_servers, "events", table, group, str(schema),
                         str(rows), idle, options)
            sinks.append(sink)
            return sink

        try:
            for round_ in range(2):
                produce_chunk(broker, 400)
                sink = start(rows=60)
                sink.wait_for_commits(1)
                if round_ == 1:  # the broker crashes under a running sink
                    broker.kill()
                    time.sleep(1.0)
                    broker.start()
                    done = sink.commits()
                    sink.wait_for_commits(done + 1)
                time.sleep(rng.uniform(0.05, 1.0))
                assert sink.proc.poll() is None, sink.tail()  # alive until killed
                sink.kill()
                kills_mid_stream += table_rows(table, s3_options) < len(valid)
            assert kills_mid_stream >= 1  # the kills hit a sink with work left to do
            produce_chunk(broker, 100)
            last = start(rows=400, idle="3")
            assert last.proc.stdout is not None
            out = last.proc.stdout.read()
            assert last.proc.wait(timeout=60) == 0, last.tail()
        finally:
            for sink in sinks:
                sink.kill()
        faults = proxy.faults()

    assert json.loads(out.strip().splitlines()[-1])["rows_written"] > 0
    data = lk.Table(table, storage_options=s3_options).read(
        columns=["_kafka_partition", "_kafka_offset"])
    got = where(data)
    assert len(got) == len(set(got)), "a record was written twice"
    assert set(got) == valid, f"missing {len(valid - set(got))}, extra {len(set(got) - valid)}"
    dead = lk.Table(f"{table}_dead_letter", storage_options=s3_options).read(
        columns=["partition", "offset", "stage"])
    dead_at = where(dead, prefix="")
    assert len(dead_at) == len(set(dead_at)), "a record was dead-lettered twice"
    assert set(dead_at) == invalid
    assert set(dead.column("stage").to_pylist()) == {"decode", "validate"}
    kinds = {fault for _, fault, _ in faults}
    assert len(kinds) >= 4, faults
    assert ("cput", "reset_after") in {(kind, fault) for kind, fault, _ in faults}, faults
