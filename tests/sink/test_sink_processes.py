"""The sink as separate processes on a real Tansu broker: a two-process consumer group with
rebalances, and a graceful SIGTERM of the CLI. (SIGKILL at random instants, with broker
restarts and storage faults on top, is tests/sink/test_sink_storage_faults.py; the chaos
run, tests/test_chaos.py, does it alongside writers, readers and checks.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pandera.polars as pap
import polars as pl
import pyarrow as pa
import pytest
from _support.kafka import produce

import lakekit as lk
from lakekit.local_servers import KafkaBroker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

# A sink process using the public API; the CLI is run by the SIGTERM test below.
CHILD = r"""
import json, logging, sys
import lakekit as lk
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
logging.getLogger("kafka").setLevel(logging.ERROR)
bootstrap, topic, table, group, schema, rows, idle = sys.argv[1:8]
sink = lk.KafkaDeltaSink(
    topic, table, bootstrap_servers=bootstrap, group_id=group,
    # 3 s sessions (not 6): each join and rebalance of the group takes half of it
    consumer_config={"session_timeout_ms": 3000}, schema=schema or None,
    kafka_metadata=True, max_batch_rows=int(rows), max_batch_seconds=0.5,
)
stats = sink.run(stop_after_idle=float(idle) if idle != "-" else None)
print(json.dumps({"records_in": stats.records_in, "rows_written": stats.rows_written,
                  "dead_lettered": stats.dead_lettered, "rebalances": stats.rebalances}))
"""

SCHEMA = pap.DataFrameSchema({
    "id": pap.Column(pl.Int64, pap.Check.ge(0)),
    "kind": pap.Column(pl.Utf8, pap.Check.isin(["view", "click", "buy"])),
})


_children: list[Child] = []


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test() -> Iterator[None]:
    """A failed test must not leave sinks running against the session's broker."""
    yield
    while _children:
        child = _children.pop()
        if child.proc.poll() is None:
            child.kill()


class Child:
    """A sink subprocess whose stderr lines are collected by a thread."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        _children.append(self)
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,),
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.lines.append(line.rstrip())

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_for(self, text: str, n: int = 1, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(text) < n:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.lines[-30:])
                raise AssertionError(f"{text!r} x{n} not seen (exit {self.proc.poll()}):\n{tail}")
            time.sleep(0.05)

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()  # stderr stays with the reader thread
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return self.proc.returncode, out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def sink_child(broker: KafkaBroker, topic: str, table: str, group: str, *,
               schema: str = "", rows: int = 40, idle: str = "-") -> Child:
    return Child([sys.executable, "-c", CHILD, broker.bootstrap_servers, topic, table, group,
                  schema, str(rows), idle])


def located(table: pa.Table, partition: str, offset: str) -> list[tuple[int, int]]:
    return list(zip(table.column(partition).to_pylist(), table.column(offset).to_pylist(),
                    strict=True))


def table_rows(uri: str) -> int:
    t = lk.Table(uri)
    return t.read(columns=["_kafka_offset"]).num_rows if t.exists else 0


def test_two_processes_share_partitions_through_rebalances(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = f"group-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 4)
    table = str(tmp_path / "events")
    group = f"g-{uuid.uuid4().hex[:8]}"
    placed: list[tuple[int, int]] = []
    stop_producing = threading.Event()

    def keep_producing() -> None:
        i = 0
        while not stop_producing.is_set():
            values = [json.dumps({"id": i + k, "kind": "view"}).encode() for k in range(40)]
            placed.extend(produce(kafka_broker, topic, values, partitions=4, start=i))
            i += 40
            time.sleep(0.05)

    producer = threading.Thread(target=keep_producing)
    producer.start()
    try:
        a = sink_child(kafka_broker, topic, table, group, rows=100)
        a.wait_for("partitions assigned")
        a.wait_for("commit v", n=2)
        b = sink_child(kafka_broker, topic, table, group, rows=100)
        b.wait_for("partitions assigned")  # joining made A give up half of its partitions
        b.wait_for("commit v", n=2)
        a.wait_for("partitions assigned", n=2)
        a_commits = a.count("commit v")
        a.wait_for("commit v", n=a_commits + 1)  # both commit side by side
        b_assigned = b.count("partitions assigned")
        a.proc.send_signal(signal.SIGTERM)
        code_a, out_a = a.finish()
        assert code_a == 0, "\n".join(a.lines[-30:])
        b.wait_for("partitions assigned", n=b_assigned + 1)  # B takes over all four
        deadline = time.monotonic() + 40
        while (time.monotonic() < deadline
               and [ln for ln in b.lines if "assigned" in ln][-1].count(f"{topic}[") != 4):
            time.sleep(0.05)
        assert [ln for ln in b.lines if "assigned" in ln][-1].count(f"{topic}[") == 4, \
            "B did not take over all four partitions:\n" + "\n".join(b.lines[-30:])
        b.wait_for("commit v", n=b.count("commit v") + 2)
    finally:
        stop_producing.set()
        producer.join(timeout=30)
    b.proc.send_signal(signal.SIGTERM)
    code_b, out_b = b.finish()
    assert code_b == 0, "\n".join(b.lines[-30:])
    stats_a = json.loads(out_a.strip().splitlines()[-1])
    stats_b = json.loads(out_b.strip().splitlines()[-1])
    assert stats_a["rows_written"] > 0 and stats_b["rows_written"] > 0
    assert stats_a["rebalances"] >= 2 and stats_b["rebalances"] >= 2
    assert [line for line in b.lines if "assigned" in line][-1].count(f"{topic}[") == 4

    # B stopped after the producer did, but may not have read the last messages before
    # SIGTERM: a last run drains the topic; then every record is there exactly once
    last = sink_child(kafka_broker, topic, table, group, rows=1000, idle="2")
    code, _ = last.finish(timeout=90)
    assert code == 0, "\n".join(last.lines[-30:])
    got = located(lk.Table(table).read(columns=["_kafka_partition", "_kafka_offset"]),
                  "_kafka_partition", "_kafka_offset")
    assert len(got) == len(set(got)), "a record was written twice"
    assert set(got) == set(placed)


def test_cli_sigterm_flushes_commits_and_exits_zero(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 2)
    table = str(tmp_path / "events")
    produce(kafka_broker, topic, [json.dumps({"id": i}).encode() for i in range(300)],
            partitions=2)
    args = [sys.executable, "-m", "lakekit.cli", "sink", "--topic", topic,
            "--bootstrap-servers", kafka_broker.bootstrap_servers,
            "--group-id", f"g-{uuid.uuid4().hex[:8]}", "--table", table,
            "--kafka-metadata", "--max-batch-rows", "100000",
            "--consumer-option", "session_timeout_ms=3000"]  # joins in 1.5 s, not 3
    cli = Child([*args, "--max-batch-seconds", "600"])
    cli.wait_for("partitions assigned")
    time.sleep(1.5)  # let it read the messages; nothing is flushed for 600 s
    assert not lk.Table(table).exists
    cli.proc.send_signal(signal.SIGTERM)
    code, out = cli.finish()
    assert code == 0, "\n".join(cli.lines[-20:])
    assert "received SIGTERM" in "\n".join(cli.lines)
    summary = re.search(r"(\d+) records in, (\d+) rows written", out)
    assert summary and summary[1] == summary[2] and int(summary[1]) > 0, out
    data = lk.Table(table).read(columns=["id"])
    assert data.num_rows == int(summary[1])  # what was read before SIGTERM was committed

    # a second run resumes where the first stopped: nothing lost, nothing twice
    rest = Child([*args, "--stop-after-idle", "2"])
    code, out = rest.finish(timeout=90)
    assert code == 0, "\n".join(rest.lines[-20:])
    data = lk.Table(table).read(columns=["id"])
    assert sorted(data.column("id").to_pylist()) == list(range(300))

