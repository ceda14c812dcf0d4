"""Compaction while the sink runs (``compact_every``): the live file count stays bounded
while every record lands exactly once; compaction racing the sink under SIGKILL; a
compaction that keeps failing is skipped with a warning while the appends go on."""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support.cli import Cli
from _support.kafka import SESSION, where
from deltalake import DeltaTable
from test_sink_processes import Child, _no_child_outlives_its_test  # noqa: F401 (fixture)

import lakekit as lk
from lakekit.errors import ConfigError
from lakekit.local_servers import KafkaBroker

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]


def value(i: int) -> bytes:
    if i % 29 == 7:
        return b'{"id": %d, "kind": "vi' % i  # not JSON: dead-lettered
    return json.dumps({"id": i, "kind": "view", "n": i % 5}).encode()


class Producer:
    """Sends ``per_tick`` messages every ``tick`` seconds, round-robin over the
    partitions, until stopped; remembers where each landed."""

    def __init__(self, broker: KafkaBroker, topic: str, partitions: int, *,
                 per_tick: int = 20, tick: float = 0.05, start: int = 0) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
        self.topic, self.partitions = topic, partitions
        self.per_tick, self.tick = per_tick, tick
        self.next = start
        self.good: set[tuple[int, int]] = set()
        self.bad: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, n: int) -> None:
        futures = []
        for _ in range(n):
            i = self.next
            self.next += 1
            futures.append((i, self.producer.send(self.topic, value(i),
                                                  partition=i % self.partitions)))
        self.producer.flush(timeout=30)
        for i, f in futures:
            meta = f.get(timeout=10)
            (self.bad if i % 29 == 7 else self.good).add((meta.partition, meta.offset))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.send(self.per_tick)
            time.sleep(self.tick)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def close(self) -> None:
        self.stop()
        self.producer.close(timeout=5)


@pytest.fixture
def producer_factory() -> Iterator[list[Producer]]:
    made: list[Producer] = []
    yield made
    for p in made:
        p.close()


def live_files(uri: str) -> int:
    return len(DeltaTable(uri).file_uris())


def wait_until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def check_exactly_once(table: str, producer: Producer) -> None:
    data = lk.Table(table).read(columns=["_kafka_partition", "_kafka_offset"])
    got = where(data)
    assert len(got) == len(set(got)), "a record was written twice"
    assert set(got) == producer.good, (f"missing {len(producer.good - set(got))}, "
                                       f"extra {len(set(got) - producer.good)}")
    dead = where(lk.Table(table + "_dead_letter").read(columns=["partition", "offset"]),
                 prefix="")
    assert len(dead) == len(set(dead)), "a record was dead-lettered twice"
    assert set(dead) == producer.bad


def run_in_thread(sink: lk.KafkaDeltaSink) -> threading.Thread:
    runner = threading.Thread(target=sink.run, daemon=True)
    runner.start()
    return runner


def stop(sink: lk.KafkaDeltaSink, runner: threading.Thread) -> lk.SinkStats:
    sink.stop()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the sink did not stop"
    return sink.stats


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="compact_every"):
        lk.KafkaDeltaSink("t", "x", bootstrap_servers="127.0.0.1:1", group_id="g",
                          compact_every=0)
    with pytest.raises(ConfigError, match="needs compact_every"):
        lk.KafkaDeltaSink("t", "x", bootstrap_servers="127.0.0.1:1", group_id="g",
                          compact_target_file_size=1 << 20)


def test_cli_checks_the_compaction_flags(cli: Cli) -> None:
    base = ("sink", "--topic", "t", "--bootstrap-servers", "127.0.0.1:1", "--group-id", "g",
            "--table", "x")
    code, _, err = cli(*base, "--compact-target-size", "64MiB")
    assert code == 2 and "compact_every" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli(*base, "--compact-every", "0")
    assert code == 2 and "compact_every must be a positive number" in err


@pytest.mark.slow
def test_steady_stream_keeps_files_bounded_and_every_record_once(
    kafka_broker: KafkaBroker, tmp_path: Path, producer_factory: list[Producer]
) -> None:
    topic = f"compact-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 2)
    table = str(tmp_path / "events")
    every = 3
    sink = lk.KafkaDeltaSink(
        topic, table, bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=f"g-{uuid.uuid4().hex[:8]}", consumer_config=SESSION, kafka_metadata=True,
        max_batch_seconds=0.2, compact_every=every)
    producer = Producer(kafka_broker, topic, 2)
    producer_factory.append(producer)
    producer.start()
    runner = run_in_thread(sink)
    most = 0
    try:
        wait_until(lambda: sink.stats.commits >= 1, 60, "the first commit")
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            most = max(most, live_files(table))
            time.sleep(0.1)
        producer.stop()
        wait_until(lambda: sink.stats.rows_written + sink.stats.dead_lettered
                   >= len(producer.good) + len(producer.bad), 30, "the sink to catch up")
    finally:
        stats = stop(sink, runner)
    # without compaction there would be one file per commit
    assert stats.commits >= 4 * every, stats
    assert stats.compactions >= 3 and stats.compaction_failures == 0, stats
    assert most <= 3 * every, f"{most} live files with compact_every={every}"
    assert live_files(table) < stats.commits
    check_exactly_once(table, producer)
    ops = {h["operation"] for h in DeltaTable(table).history()}
    assert "OPTIMIZE" in ops
    dead_ops = [h["operation"] for h in DeltaTable(table + "_dead_letter").history()]
    assert "OPTIMIZE" in dead_ops  # the dead-letter table is compacted the same way
    commits = [f.read_text() for f in (Path(table) / "_delta_log").glob("*.json")]
    changes = [json.loads(line) for text in commits if '"OPTIMIZE"' in text
               for line in text.splitlines()]
    files = [a[k] for a in changes for k in ("add", "remove") if k in a]
    assert files and all(f["dataChange"] is False for f in files)


CHILD = r"""
import json, logging, sys
import lakekit as lk
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
logging.getLogger("kafka").setLevel(logging.ERROR)
bootstrap, topic, table, group, rows, idle = sys.argv[1:7]
sink = lk.KafkaDeltaSink(
    topic, table, bootstrap_servers=bootstrap, group_id=group,
    # 3 s sessions (not 6): a join takes half of it, and each start after a SIGKILL
    # waits out the killed member's session first
    consumer_config={"session_timeout_ms": 3000}, kafka_metadata=True,
    max_batch_rows=int(rows), max_batch_seconds=0.2, compact_every=2,
)
stats = sink.run(stop_after_idle=float(idle) if idle != "-" else None)
print(json.dumps({"rows_written": stats.rows_written, "compactions": stats.compactions}))
"""


@pytest.mark.slow
def test_compaction_racing_the_sink_under_sigkill_keeps_every_record_once(
    kafka_broker: KafkaBroker, tmp_path: Path, producer_factory: list[Producer]
) -> None:
    rng = random.Random(11)
    topic = f"kill-compact-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 2)
    table = str(tmp_path / "events")
    group = f"g-{uuid.uuid4().hex[:8]}"
    producer = Producer(kafka_broker, topic, 2, per_tick=10, tick=0.05)
    producer_factory.append(producer)

    def child(rows: int, idle: str) -> Child:
        return Child([sys.executable, "-c", CHILD, kafka_broker.bootstrap_servers, topic,
                      table, group, str(rows), idle])

    for _ in range(2):
        producer.send(600)  # a backlog: many small commits, a compaction every two
        producer.start()  # and a steady stream on top
        sink = child(60, "-")
        sink.wait_for("compaction v", timeout=60)  # compacting every two commits by now
        time.sleep(rng.uniform(0.0, 0.4))
        sink.kill()
        producer.stop()
    producer.send(300)
    last = child(5000, "2")
    code, out = last.finish(timeout=120)
    assert code == 0, "\n".join(last.lines[-30:])
    assert json.loads(out.strip().splitlines()[-1])["rows_written"] > 0
    check_exactly_once(table, producer)
    assert any(h["operation"] == "OPTIMIZE" for h in DeltaTable(table).history())


@pytest.mark.slow
def test_failing_compaction_is_retried_then_skipped_and_appends_go_on(
    kafka_broker: KafkaBroker, tmp_path: Path, producer_factory: list[Producer],
    caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"compact-fail-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    table = str(tmp_path / "events")
    sink = lk.KafkaDeltaSink(
        topic, table, bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=f"g-{uuid.uuid4().hex[:8]}", consumer_config=SESSION, kafka_metadata=True,
        max_batch_seconds=0.2, compact_every=2)
    producer = Producer(kafka_broker, topic, 1)
    producer_factory.append(producer)
    producer.send(50)
    caplog.set_level(logging.INFO, logger="lakekit.sink")
    runner = run_in_thread(sink)
    try:
        wait_until(lambda: sink.stats.commits >= 1, 60, "the first commit")
        # a data file of the table goes missing from storage for a while: compaction reads
        # it and fails; the sink's appends never read old files
        # (a live file: the dead-letter table may have been compacted already; the main
        # table's own compaction can only start at its second commit, after producer.start)
        first = Path(DeltaTable(table).file_uris()[0])
        hidden = first.with_name(first.name + ".away")
        first.rename(hidden)
        producer.start()
        wait_until(lambda: sink.stats.compaction_failures >= 1, 30, "a failed compaction")
        at_failure = sink.stats.commits
        wait_until(lambda: sink.stats.commits >= at_failure + 3, 30, "appends after it")
        fixed_at = lk.Table(table).version
        hidden.rename(first)

        def compacted_after_the_fix() -> bool:
            return any(c.operation == "OPTIMIZE" and c.version > fixed_at
                       for c in lk.Table(table).history(limit=50))

        wait_until(compacted_after_the_fix, 30, "a compaction of the table after the fix")
        producer.stop()
        wait_until(lambda: sink.stats.rows_written + sink.stats.dead_lettered
                   >= len(producer.good) + len(producer.bad), 30, "the sink to catch up")
    finally:
        stats = stop(sink, runner)
    messages = [r.getMessage() for r in caplog.records]
    retries = [m for m in messages if m.startswith("compaction of") and "attempt 1/3" in m]
    assert retries, "the failed compaction was not retried"
    skipped = [r for r in caplog.records
               if r.levelno == logging.WARNING and "skipped after 3 failed attempts" in
               r.getMessage()]
    assert skipped and table in skipped[0].getMessage()
    assert stats.compaction_failures >= 1 and stats.compactions >= 1
    check_exactly_once(table, producer)
