"""The chaos run (issue 13): everything lakekit does, at once, through failing storage.

For ``--seconds`` (300 by default), on a moto S3 server behind the fault proxy
(``tests/_support/s3proxy.py``, in its own process, seeded by ``--seed``):

- a Kafka-to-Delta sink (a child process) drains a topic of three partitions into
  ``s3://chaos/events``, dead-lettering the records that are not JSON into
  ``s3://chaos/events_dead_letter``; it is killed with SIGKILL at random moments and
  started again, and the Tansu broker (its log in the same moto server, not behind the
  proxy) is killed and started again at random moments;
- two writers append batches to ``s3://chaos/writes`` with ``Table.write``; a write that
  raises is written again (lakekit says a failed write did not land unless it says it
  cannot tell), as a user would;
- a reader loads a static parquet and a JSONL dataset, reads the newest version of the
  written table and of the sink's table, and compares every answer with the truth;
- a maintainer tags the written table's newest version, untags the previous one and
  compacts the table now and then (the sink compacts its table too, every 20 commits);
- a checker runs volume checks (one that must pass, one that must fail) and a freshness
  check, each of which must give the right verdict or ``error``.

Every S3 request of all of these goes through the proxy, which injects 503 SlowDown, 500,
connection resets before and after the server applied the request, cut-short bodies and
stalls, by request kind. At the end the sink drains the topic (still through the faults),
and everything is checked against the truth: the topic read back from the broker (record
by record: each names its number), the batches whose writes returned. One table is
printed: operations, faults injected by kind, errors surfaced, rows expected / present /
lost / duplicated, wrong answers.

The broker is a test broker: around each restart the partitions' end offsets are noted
(just before the kill, with the producer's acks, and right after the restart). Should one
go down, the broker dropped the offsets in between; a sink row at such an offset is counted
"broker dropped" or "broker re-used" (the offset now holds another record), not wrong. Any
other mismatch is wrong. The producer's acks are set against the topic too.

Run: ``python benchmarks/chaos.py [--seconds 300] [--seed 1] [--json]``; exit status 1
when anything was lost, duplicated or wrong. ``tests/test_chaos.py`` runs a short one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fault proxy lives with the tests

import pyarrow as pa  # noqa: E402

import lakekit as lk  # noqa: E402
from lakekit.errors import LakekitError  # noqa: E402
from lakekit.local_servers import (  # noqa: E402
    RestartableBroker,
    S3Server,
    moto_s3_server,
    restartable_tansu_broker,
)

BUCKET = "chaos"
TOPIC = "events"
PARTITIONS = 3
BAD_EVERY = 25  # every 25th record is not JSON: a dead letter
STATIC_ROWS = 4000

_READ = {"slowdown": 0.01, "internal": 0.01, "reset": 0.01, "truncate": 0.01, "stall": 0.002}
_WRITE = {"slowdown": 0.02, "internal": 0.02, "reset": 0.02, "reset_after": 0.02,
          "stall": 0.005}
# HEAD, DELETE and POST (multi-object delete) requests are rare (tags, lease pruning):
# they are faulted more often
_RARE = {"slowdown": 0.04, "internal": 0.04, "reset": 0.04, "reset_after": 0.04, "stall": 0.01}
SCHEDULE: dict[str, dict[str, float]] = {
    "get_range": _READ, "get": _READ, "list": _READ,
    "head": {k: v for k, v in _RARE.items() if k != "reset_after"},
    "put": _WRITE, "post": _RARE, "delete": _RARE,
    "cput": {"slowdown": 0.03, "internal": 0.03, "reset": 0.03, "reset_after": 0.05,
             "stall": 0.01},
}
STALL_S = 1.0

# A sink process: storage options (JSON) through the proxy; prints its stats at the end.
SINK = r"""
import json, logging, sys
import lakekit as lk
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
logging.getLogger("kafka").setLevel(logging.CRITICAL)
bootstrap, topic, table, options, idle, session = sys.argv[1:7]
sink = lk.KafkaDeltaSink(
    topic, table, bootstrap_servers=bootstrap, group_id="chaos",
    storage_options=json.loads(options), kafka_metadata=True,
    consumer_config={"session_timeout_ms": int(session), "reconnect_backoff_max_ms": 1000},
    max_batch_rows=500, max_batch_seconds=1.0, compact_every=20,
)
stats = sink.run(stop_after_idle=float(idle) if idle != "-" else None)
print(json.dumps({"rows_written": stats.rows_written, "dead_lettered": stats.dead_lettered}))
"""


@dataclass
class Tally:
    """What happened: operations, errors surfaced, wrong answers (thread-safe)."""

    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)  # the first error of each kind
    lock: threading.Lock = field(default_factory=threading.Lock)

    def op(self, name: str) -> None:
        with self.lock:
            self.ops[name] += 1

    def error(self, name: str, exc: BaseException | None = None) -> None:
        with self.lock:
            self.errors[name] += 1
            if exc is not None:
                self.samples.setdefault(name, f"{type(exc).__name__}: {exc}"[:400])

    def bad(self, what: str) -> None:
        with self.lock:
            self.wrong.append(what)


@dataclass
class Restart:
    """A broker restart: the partitions' end offsets just before the kill (the higher of
    what the broker said and one past the highest offset it had acked) and right after the
    restart, before the producer carries on (``None``: the broker did not answer in time).
    An end offset that went down means the broker dropped the offsets in between: records
    it had acked, and records a sink may have read, are no longer in the topic, and the
    next records produced get those offsets again."""

    before: dict[int, int] | None
    acked: dict[int, int]
    after: dict[int, int] | None

    @property
    def dropped(self) -> list[tuple[int, int, int]]:
        """The (partition, first, end) ranges of offsets the restart dropped."""
        if self.after is None:
            return []
        out = []
        for p, after in sorted(self.after.items()):
            before = max((self.before or {}).get(p, 0), self.acked.get(p, 0))
            if after < before:
                out.append((p, after, before))
        return out


@dataclass
class Chaos:
    """A chaos run's moving parts; :func:`run` drives it."""

    seconds: float
    seed: int
    s3: S3Server
    broker: RestartableBroker
    options: dict[str, Any]  # through the proxy
    clean: dict[str, Any]  # straight to moto, for set-up and the final checks
    session_timeout_ms: int = 6000  # the sink's consumer sessions
    tally: Tally = field(default_factory=Tally)
    stop: threading.Event = field(default_factory=threading.Event)
    broker_up: threading.Event = field(default_factory=threading.Event)
    outcomes: dict[tuple[int, int], tuple[str, int | None]] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)  # tagged and not yet untagged
    sink: subprocess.Popen[str] | None = None
    sink_kills: int = 0
    sink_exits: int = 0
    broker_restarts: int = 0
    produced: int = 0
    # what the producer was told: (partition, offset) -> the ids of the records acked
    # there (two ids: the broker handed the offset out twice)
    acked: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    # per partition, one past the highest offset acked since the last broker restart
    acked_since: dict[int, int] = field(default_factory=dict)
    # the broker's end offsets around each restart (see :func:`restart_broker`)
    restarts: list[Restart] = field(default_factory=list)
    broker_figures: dict[str, int] = field(default_factory=dict)  # see _broker_figures

    def uri(self, name: str) -> str:
        return f"s3://{BUCKET}/{name}"

    def ack(self, record: int, metadata: Any) -> None:
        """The producer's callback: record ``record`` is at ``metadata``'s offset."""
        p, o = metadata.partition, metadata.offset
        with self.tally.lock:
            self.acked.setdefault((p, o), []).append(record)
            self.acked_since[p] = max(self.acked_since.get(p, 0), o + 1)

    def acked_ends(self) -> dict[int, int]:
        """Per partition, one past the highest offset the broker acked since the last
        call (since the last restart: an offset acked before a restart that dropped it
        says nothing of the broker after it)."""
        with self.tally.lock:
            out, self.acked_since = self.acked_since, {}
            return out

    def dropped(self) -> list[tuple[int, int, int]]:
        """The (partition, first, end) offset ranges a broker restart dropped."""
        return [d for r in self.restarts for d in r.dropped]


def pairs(table: pa.Table) -> list[tuple[Any, Any]]:
    """The rows of a two-column table as tuples."""
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


# --- the workers ---------------------------------------------------------------------------

def _loop(chaos: Chaos, pause: float, body: Callable[[], None]) -> None:
    while not chaos.stop.is_set():
        body()
        chaos.stop.wait(pause)


def produce(chaos: Chaos, rate: int) -> None:
    """``rate`` records a second, round robin over the partitions; every ``BAD_EVERY``-th
    is not JSON; every record names its number (``id``, or ``not json <n>``). Pauses while
    the broker is down; each ack is kept (:meth:`Chaos.ack`); the truth is read back from
    the topic."""
    from kafka import KafkaProducer

    producer = None
    i = 0
    while not chaos.stop.is_set():
        if not chaos.broker_up.wait(timeout=1):
            continue
        try:
            if producer is None:
                producer = KafkaProducer(bootstrap_servers=chaos.broker.bootstrap_servers,
                                         acks="all", retries=3, linger_ms=5,
                                         request_timeout_ms=5000, max_block_ms=5000)
            for _ in range(rate // 10):
                value = (b"not json %d" % i if i % BAD_EVERY == BAD_EVERY - 1
                         else json.dumps({"id": i, "kind": "view"}).encode())
                producer.send(TOPIC, value, partition=i % PARTITIONS).add_callback(
                    chaos.ack, i)
                i += 1
            producer.flush(timeout=5)
            chaos.produced = i
            chaos.tally.op("produce")
        except Exception:  # the broker went away: a new producer once it is back
            chaos.tally.error("produce")
            _close(producer, 1)
            producer = None
            time.sleep(0.5)
        time.sleep(0.1)
    _close(producer, 5)


def _close(producer: Any, timeout: float) -> None:
    """Close a producer; kafka-python's close flushes first and raises when the flush
    times out (the broker is down): the producer thread must not die of it."""
    if producer is None:
        return
    try:
        producer.close(timeout=timeout)
    except Exception:
        return


def write(chaos: Chaos, writer: int, rows: int = 50) -> None:
    """Append batch after batch; a write that raises is written again (up to 5 times),
    unless lakekit says it cannot tell whether it landed."""
    table = lk.Table(chaos.uri("writes"), storage_options=chaos.options)
    n = 0
    while not chaos.stop.is_set():
        batch = _batch(writer, n, rows)
        outcome: tuple[str, int | None] = ("failed", None)
        for _ in range(5):
            chaos.tally.op("write")
            try:
                outcome = ("ok", table.write(batch))
                break
            except LakekitError as exc:
                chaos.tally.error("write", exc)
                if "could not read the Delta log afterwards" in str(exc):
                    outcome = ("unknown", None)
                    break
        with chaos.tally.lock:
            chaos.outcomes[writer, n] = outcome
        n += 1
        chaos.stop.wait(0.2)


def _batch(writer: int, n: int, rows: int) -> pa.Table:
    first = (writer * 1_000_000) + n * rows
    return pa.table({"id": pa.array(range(first, first + rows), pa.int64()),
                     "writer": pa.array([writer] * rows, pa.int32()),
                     "batch": pa.array([n] * rows, pa.int32())})


def read(chaos: Chaos, static: dict[str, pa.Table]) -> None:
    """Loads of the static datasets, the newest version of both tables: right or an error."""
    t = chaos.tally
    for name, expected in static.items():
        t.op(f"load {name}")
        try:
            got = lk.load(chaos.uri(f"static/{name}"), storage_options=chaos.options)
        except LakekitError as exc:
            t.error(f"load {name}", exc)
            continue
        if got.num_rows != expected.num_rows or got.sort_by("id").column("id") != \
                expected.column("id"):
            t.bad(f"load {name}: {got.num_rows} rows, not the {expected.num_rows} written")
    t.op("read writes")
    try:
        with t.lock:
            known = dict(chaos.outcomes)
        table = lk.Table(chaos.uri("writes"), storage_options=chaos.options)
        version = table.version
        data = table.read(version=version, columns=["id", "writer", "batch"])
    except LakekitError as exc:
        t.error("read writes", exc)
    else:
        _check_snapshot(t, data, known, version)
    t.op("read events")
    try:
        events = lk.Table(chaos.uri("events"), storage_options=chaos.options)
        got = events.read(columns=["_kafka_partition", "_kafka_offset"]) if events.exists \
            else None
    except LakekitError as exc:
        t.error("read events", exc)
    else:
        if got is not None:
            places = Counter(pairs(got))
            if any(c > 1 for c in places.values()):
                t.bad("read events: a record is in the sink's table twice")


def _check_snapshot(t: Tally, data: pa.Table, known: dict[tuple[int, int], tuple[str, int | None]],
                    version: int) -> None:
    ids = Counter(data.column("id").to_pylist())
    if any(c > 1 for c in ids.values()):
        t.bad(f"read writes v{version}: duplicated rows")
    batches = Counter(pairs(data.select(["writer", "batch"])))
    for (w, n), count in batches.items():
        if count != 50:
            t.bad(f"read writes v{version}: batch {w}/{n} has {count} rows, not 50")
        if known.get((w, n), ("?", None))[0] == "failed":
            t.bad(f"read writes v{version}: batch {w}/{n} is there, its write said failed")
    for (w, n), (state, v) in known.items():
        if state == "ok" and v is not None and v <= version and (w, n) not in batches:
            t.bad(f"read writes v{version}: batch {w}/{n} (written as v{v}) is missing")


def maintain(chaos: Chaos) -> None:
    """Tag the newest version of the written table and untag the previous tag (a PUT, a
    conditional PUT, a DELETE); every fifth round, compact it (under its lease)."""
    table = lk.Table(chaos.uri("writes"), storage_options=chaos.options)
    n = 0
    while not chaos.stop.wait(2.0):
        n += 1
        chaos.tally.op("tag")
        try:
            version = table.tag(f"t{n}")
            chaos.tags[f"t{n}"] = version
            if table.tags().get(f"t{n}") != version:
                chaos.tally.bad(f"tag t{n}: tags() does not name version {version}")
        except LakekitError as exc:
            chaos.tally.error("tag", exc)
        if f"t{n - 1}" in chaos.tags:
            chaos.tally.op("untag")
            try:
                table.untag(f"t{n - 1}")
                del chaos.tags[f"t{n - 1}"]
            except LakekitError as exc:
                chaos.tally.error("untag", exc)
        if n % 5 == 0:
            chaos.tally.op("compact")
            try:
                table.compact()
            except LakekitError as exc:
                chaos.tally.error("compact", exc)


def check(chaos: Chaos) -> None:
    """Volume and freshness checks whose right verdicts are known: right or ``error``."""
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("volume pass", chaos.uri("static/parquet"), {"volume": lk.Volume(min_rows=STATIC_ROWS,
                                                                          max_rows=STATIC_ROWS)},
         "pass"),
        ("volume fail", chaos.uri("static/parquet"), {"volume": lk.Volume(min_rows=STATIC_ROWS
                                                                          + 1)}, "fail"),
        ("freshness pass", chaos.uri("writes"), {"freshness": lk.Freshness(max_age="1h")},
         "pass"),
        ("volume fail delta", chaos.uri("writes"), {"volume": lk.Volume(max_rows=0)}, "fail"),
    ]
    for name, uri, kwargs, right in cases:
        chaos.tally.op(f"check {name}")
        status: str
        try:
            report = lk.check(uri, storage_options=chaos.options, **kwargs)
            status, why = report.status, report.summary() if report.status == "error" else ""
        except LakekitError as exc:
            status, why = "error", f"{type(exc).__name__}: {exc}"
        if status == "error":
            chaos.tally.error(f"check {name}")
            chaos.tally.samples.setdefault(f"check {name}", why[:400])
        elif status != right:
            chaos.tally.bad(f"check {name}: {status}, the right verdict is {right}")


# --- the sink and the broker under attack ---------------------------------------------------

def start_sink(chaos: Chaos, idle: str = "-") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SINK, chaos.broker.bootstrap_servers, TOPIC, chaos.uri("events"),
         json.dumps(chaos.options), idle, str(chaos.session_timeout_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )


def monkey(chaos: Chaos, rng: random.Random, kill_every: tuple[float, float],
           restart_every: tuple[float, float]) -> None:
    """SIGKILL the sink and restart it; kill the broker and start it again; at random."""
    now = time.monotonic()
    next_kill = now + rng.uniform(*kill_every)
    next_restart = now + rng.uniform(*restart_every)
    while not chaos.stop.wait(0.1):
        sink = chaos.sink
        if sink is not None and sink.poll() is not None:  # it stopped by itself: restart
            chaos.sink_exits += 1
            chaos.sink = start_sink(chaos)
        now = time.monotonic()
        if now >= next_kill and chaos.sink is not None:
            chaos.sink.send_signal(signal.SIGKILL)
            chaos.sink.wait(timeout=10)
            chaos.sink_kills += 1
            chaos.sink = start_sink(chaos)
            next_kill = now + rng.uniform(*kill_every)
        if now >= next_restart:
            restart_broker(chaos, rng.uniform(1, 3))
            next_restart = time.monotonic() + rng.uniform(*restart_every)


def restart_broker(chaos: Chaos, down: float) -> None:
    """Kill the broker with SIGKILL and start it again ``down`` seconds later, noting the
    partitions' end offsets just before the kill and right after the restart (before the
    producer carries on), and how far the broker had acked (once it is dead: every ack it
    sent has arrived) since the last restart. Each wait is bounded; a broker that does
    not answer is noted ``None`` (no offsets are then taken as dropped)."""
    before = high_watermarks(chaos.broker)
    chaos.broker_up.clear()
    chaos.broker.kill()
    chaos.stop.wait(down)
    acked = chaos.acked_ends()
    chaos.broker.start()
    after = high_watermarks(chaos.broker)
    chaos.broker_up.set()
    chaos.restarts.append(Restart(before, acked, after))
    chaos.broker_restarts += 1


# --- the truth at the end -------------------------------------------------------------------

def high_watermarks(broker: RestartableBroker, timeout: float = 5.0) -> dict[int, int] | None:
    """The topic's end offsets by partition, as the broker's fetch responses give them (its
    high-water marks); ``None`` when it did not answer within about ``timeout`` seconds.

    Not ``KafkaConsumer.end_offsets``: Tansu answers ListOffsets(latest) with one past the
    *first* offset of the batch it stored last (by the S3 object's modification time, in
    whole seconds), short of the end by up to a second's records. That answer only says
    where to start fetching: the fetch responses carry the true high-water mark."""
    from kafka import KafkaConsumer, TopicPartition

    ms = int(timeout * 1000)
    deadline = time.monotonic() + timeout
    try:
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers,
                                 bootstrap_timeout_ms=ms, request_timeout_ms=ms,
                                 enable_auto_commit=False)
    except Exception:  # kafka-python's NoBrokersAvailable and the like: not answering
        return None
    try:
        parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        for tp, offset in consumer.end_offsets(parts).items():
            consumer.seek(tp, max(0, offset - 1))  # a batch to fetch: its response has the mark
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
            marks = {tp.partition: consumer.highwater(tp) for tp in parts}
            if all(m is not None for m in marks.values()):
                return {p: int(m) for p, m in marks.items() if m is not None}
        return None
    except Exception:  # a timeout: not answering
        return None
    finally:
        consumer.close()


def record_id(value: bytes) -> tuple[bool, int]:
    """A produced record's (is it JSON, its number): its ``id``, or the ``n`` of
    ``not json <n>``."""
    try:
        return True, int(json.loads(value)["id"])
    except ValueError:
        return False, int(value.rsplit(b" ", 1)[1])


def topic_records(broker: RestartableBroker, timeout: float = 120
                  ) -> dict[tuple[int, int], tuple[bool, int]]:
    """Every record of the topic: (partition, offset) -> (is it valid JSON (not a dead
    letter), its number); read from the beginning up to the high-water marks of the fetch
    responses (see :func:`high_watermarks`: Tansu's ``end_offsets`` fall short of the end,
    and a read that stopped there missed the last records a sink had rightly written)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers,
                             enable_auto_commit=False, max_poll_records=5000)
    parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out: dict[tuple[int, int], tuple[bool, int]] = {}
    deadline = time.monotonic() + timeout

    def behind() -> bool:
        marks = [consumer.highwater(tp) for tp in parts]
        return any(m is None or consumer.position(tp) < m for tp, m in zip(parts, marks,
                                                                            strict=True))

    empty = 0  # polls in a row that brought nothing
    try:
        # 10 empty polls in a row (5 s) with every mark known: the offsets left below a
        # mark hold no record (a broker killed after it moved its mark, before it stored
        # the batch)
        while behind() and not (empty >= 10 and all(consumer.highwater(tp) is not None
                                                    for tp in parts)):
            if time.monotonic() > deadline:
                raise RuntimeError("reading the topic back did not finish")
            polled = consumer.poll(timeout_ms=500)
            empty = 0 if polled else empty + 1
            for tp, records in polled.items():
                for r in records:
                    out[tp.partition, r.offset] = record_id(r.value)
    finally:
        consumer.close()
    return out


Key = tuple[int, int]  # (partition, offset)


def sink_records(chaos: Chaos) -> tuple[list[tuple[Key, int]], list[tuple[Key, int]]]:
    """The sink's rows (clean reads): where each event and each dead letter came from, and
    which record it is (its number)."""
    events = lk.Table(chaos.uri("events"), storage_options=chaos.clean)
    dead = lk.Table(chaos.uri("events_dead_letter"), storage_options=chaos.clean)
    got: list[list[tuple[Key, int]]] = []
    for table, columns, number in (
            (events, ["_kafka_partition", "_kafka_offset", "id"], lambda v: int(v)),
            (dead, ["partition", "offset", "value"], lambda v: record_id(v)[1])):
        if not table.exists:
            got.append([])
            continue
        data = table.read(columns=columns)
        got.append([((p, o), number(v)) for p, o, v in zip(
            *(data.column(c).to_pylist() for c in columns), strict=True)])
    return got[0], got[1]


def _in(ranges: list[tuple[int, int, int]], key: Key) -> bool:
    return any(key[0] == p and first <= key[1] < end for p, first, end in ranges)


def _passed(truth: dict[Key, tuple[bool, int]], events: list[tuple[Key, int]],
            dead: list[tuple[Key, int]], dropped: list[tuple[int, int, int]]) -> dict[int, int]:
    """Per partition, one past the highest offset of a dropped range at which the sink
    holds a record the topic no longer holds there: the sink had read that far in the log
    the broker then dropped, so it never reads the records that took those offsets."""
    out: dict[int, int] = {}
    for kind, rows in ((True, events), (False, dead)):
        for key, number in rows:
            if _in(dropped, key) and truth.get(key) != (kind, number):
                out[key[0]] = max(out.get(key[0], 0), key[1] + 1)
    return out


def compare(kind: bool, truth: dict[Key, tuple[bool, int]], present: list[tuple[Key, int]],
            dropped: list[tuple[int, int, int]], passed: dict[int, int]) -> dict[str, int]:
    """One sink table against the topic: the records of ``kind`` (JSON or not) expected,
    the rows present, lost, duplicated, unexpected, and those the broker accounts for.

    A row is right when the topic holds the same record (its number) at its offset. A row
    at an offset of a range a broker restart dropped (:class:`Restart`) that the topic no
    longer has is "broker dropped"; one at such an offset that now holds another record is
    "broker re-used", and so is the record now there when the sink had read past it
    (:func:`_passed`). Any other mismatch is lost or unexpected."""
    expected = {k: n for k, (ok, n) in truth.items() if ok == kind}
    counts = Counter(k for k, _ in present)
    held = dict(present)
    reused: set[Key] = set()
    broker_dropped = unexpected = lost = 0
    for key, number in held.items():
        if expected.get(key) == number:
            continue
        if not _in(dropped, key):
            unexpected += 1
        elif key in truth:
            reused.add(key)
        else:
            broker_dropped += 1
    for key, number in expected.items():
        if held.get(key) == number:
            continue
        if _in(dropped, key) and key[1] < passed.get(key[0], 0):
            reused.add(key)
        else:
            lost += 1
    return {"expected": len(expected), "present": len(present), "lost": lost,
            "duplicated": sum(c - 1 for c in counts.values() if c > 1),
            "unexpected": unexpected, "broker dropped": broker_dropped,
            "broker re-used": len(reused)}


def verify(chaos: Chaos) -> dict[str, dict[str, int]]:
    """Rows expected / present / lost / duplicated / unexpected / broker dropped / broker
    re-used, per table (clean reads); the sink's tables are compared with the topic read
    back, record by record (:func:`compare`)."""
    truth = topic_records(chaos.broker)
    dropped = chaos.dropped()
    events, dead = sink_records(chaos)
    passed = _passed(truth, events, dead, dropped)
    rows: dict[str, dict[str, int]] = {
        "sink: events": compare(True, truth, events, dropped, passed),
        "sink: dead letters": compare(False, truth, dead, dropped, passed),
    }
    chaos.broker_figures = _broker_figures(chaos, truth, events + dead, dropped)

    writes = lk.Table(chaos.uri("writes"), storage_options=chaos.clean)
    data = writes.read(columns=["writer", "batch", "id"])
    got = Counter(pairs(data))
    must = {k for k, (state, _) in chaos.outcomes.items() if state == "ok"}
    may = {k for k, (state, _) in chaos.outcomes.items() if state == "unknown"}
    ids = data.column("id").to_pylist()
    rows["writers: rows"] = {
        "expected": 50 * len(must), "present": len(ids),
        "lost": sum(50 - min(50, got.get(k, 0)) for k in must),
        "duplicated": len(ids) - len(set(ids)),
        "unexpected": sum(c for k, c in got.items() if k not in must and k not in may),
    }
    _versions_right(chaos, writes)
    return rows


def _broker_figures(chaos: Chaos, truth: dict[Key, tuple[bool, int]],
                    sink: list[tuple[Key, int]], dropped: list[tuple[int, int, int]]
                    ) -> dict[str, int]:
    """What the producer was told against what the topic holds at the end: records acked,
    acked ones the topic no longer holds at their offset (in a dropped range or not),
    offsets acked twice, and the sink's rows the topic does not hold that the producer had
    acked at exactly that offset (evidence that they are right, not proof)."""
    with chaos.tally.lock:
        acked = {k: list(v) for k, v in chaos.acked.items()}
    gone = [k for k, numbers in acked.items()
            if truth.get(k, (None, None))[1] not in numbers]
    return {
        "restarts measured": sum(r.after is not None for r in chaos.restarts),
        "dropped offsets": sum(end - first for _, first, end in dropped),
        "acked": sum(len(v) for v in acked.values()),
        "acked, not in the topic": sum(not _in(dropped, k) for k in gone),
        "acked, dropped": sum(_in(dropped, k) for k in gone),
        "offsets acked twice": sum(len(v) > 1 for v in acked.values()),
        "sink rows not in the topic, acked there": sum(
            1 for k, n in sink if truth.get(k, (None, None))[1] != n and n in acked.get(k, [])),
    }


def _versions_right(chaos: Chaos, writes: lk.Table) -> None:
    """Each returned version holds exactly its batch; the versions are consecutive."""
    history = [c.version for c in writes.history()]
    if history != list(range(history[0], -1, -1)):
        chaos.tally.bad("writes: the table's versions are not consecutive")
    tags = writes.tags()
    for name, version in chaos.tags.items():
        if tags.get(name) != version:
            chaos.tally.bad(f"writes: tag {name} names {tags.get(name)}, not {version}")
    versions = [v for state, v in chaos.outcomes.values() if state == "ok"]
    if len(versions) != len(set(versions)):
        chaos.tally.bad("writes: two writes returned the same version")


# --- the run --------------------------------------------------------------------------------

@contextmanager
def _servers(seed: int) -> Iterator[tuple[S3Server, RestartableBroker, Any]]:
    from _support.proxy_process import proxy_process

    with moto_s3_server() as s3, \
            restartable_tansu_broker(s3, bucket=f"tansu-{seed}") as broker, \
            proxy_process(s3.endpoint_url, seed=seed, schedule=SCHEDULE,
                          stall_s=STALL_S) as proxy:
        yield s3, broker, proxy


def _static(s3: S3Server) -> dict[str, pa.Table]:
    import fsspec
    import pyarrow.parquet as pq

    table = pa.table({"id": pa.array(range(STATIC_ROWS), pa.int64()),
                      "v": pa.array([float(i) for i in range(STATIC_ROWS)])})
    fs = fsspec.filesystem("s3", **s3.storage_options)
    quarter = STATIC_ROWS // 4
    for i in range(4):
        part = table.slice(i * quarter, quarter)
        with fs.open(f"{BUCKET}/static/parquet/part-{i}.parquet", "wb") as f:
            pq.write_table(part, f, row_group_size=250)
        with fs.open(f"{BUCKET}/static/jsonl/part-{i}.jsonl", "wb") as f:
            f.write("".join(json.dumps(r) + "\n" for r in part.to_pylist()).encode())
    return {"parquet": table, "jsonl": table}


def run(seconds: float = 300, seed: int = 1, *, kill_every: tuple[float, float] = (10, 30),
        restart_every: tuple[float, float] = (45, 90), rate: int = 200,
        drain_timeout: float = 300, session_timeout_ms: int = 6000) -> dict[str, Any]:
    """One chaos run; returns the figures (see the module docstring). The sink's
    consumer sessions last ``session_timeout_ms``: a restarted sink waits out the killed
    one's session, then joins in about half of one."""
    started = time.monotonic()
    with _servers(seed) as (s3, broker, proxy):
        s3.create_bucket(BUCKET)
        broker.create_topic(TOPIC, PARTITIONS)
        clean = dict(s3.storage_options)
        chaos = Chaos(seconds, seed, s3, broker, proxy.options(clean), clean,
                      session_timeout_ms=session_timeout_ms)
        chaos.broker_up.set()
        static = _static(s3)
        lk.Table(chaos.uri("writes"), storage_options=clean).write(_batch(9, 0, 50).slice(0, 0))
        rng = random.Random(seed)
        try:
            chaos.sink = start_sink(chaos)
            threads = [
                threading.Thread(target=produce, args=(chaos, rate), name="producer"),
                threading.Thread(target=write, args=(chaos, 0), name="writer-0"),
                threading.Thread(target=write, args=(chaos, 1), name="writer-1"),
                threading.Thread(target=_loop, args=(chaos, 0.5, lambda: read(chaos, static)),
                                 name="reader"),
                threading.Thread(target=_loop, args=(chaos, 1.0, lambda: check(chaos)),
                                 name="checker"),
                threading.Thread(target=maintain, args=(chaos,), name="maintainer"),
                threading.Thread(target=monkey, args=(chaos, rng, kill_every, restart_every),
                                 name="monkey"),
            ]
            for th in threads:
                th.start()
            chaos.stop.wait(seconds)
            chaos.stop.set()
            for th in threads:
                th.join(timeout=120)
            hung = [th.name for th in threads if th.is_alive()]
            if hung:
                chaos.tally.bad(f"threads did not stop: {hung}")
            if not chaos.broker_up.is_set():
                broker.start()
            drained = _drain(chaos, drain_timeout)
        finally:  # nothing outlives the run, whatever happened
            chaos.stop.set()
            if chaos.sink is not None and chaos.sink.poll() is None:
                chaos.sink.kill()
        faults = proxy.faults()
        rows = verify(chaos)
    return {
        "seed": seed, "seconds": seconds, "elapsed": time.monotonic() - started,
        "ops": dict(chaos.tally.ops), "errors": dict(chaos.tally.errors),
        "error_samples": dict(chaos.tally.samples),
        "faults": dict(Counter(f"{kind} {fault}" for kind, fault, _ in faults)),
        "faults_total": len(faults), "sink_kills": chaos.sink_kills,
        "sink_exits": chaos.sink_exits, "broker_restarts": chaos.broker_restarts,
        "produced": chaos.produced, "drained": drained, "rows": rows,
        "broker": chaos.broker_figures,
        "restarts": [{"before": r.before, "acked": r.acked, "after": r.after,
                      "dropped": r.dropped} for r in chaos.restarts],
        "wrong": list(chaos.tally.wrong),
    }


def _drain(chaos: Chaos, timeout: float) -> bool:
    """Stop the running sink; a last one (still through the faults) drains the topic,
    started again if it stops by itself, until every record of the topic is in one of the
    two tables (checked every 2 s: a sink stopping on idle could stop early while the
    broker is slow). True when it caught up in time."""
    if chaos.sink is not None and chaos.sink.poll() is None:
        chaos.sink.send_signal(signal.SIGKILL)
        chaos.sink.wait(timeout=10)
    deadline = time.monotonic() + timeout
    sink = chaos.sink = start_sink(chaos)
    while time.monotonic() < deadline:
        time.sleep(2)
        if _caught_up(chaos):
            sink.kill()  # every record is committed: nothing is left to flush
            sink.wait(timeout=10)
            return True
        if sink.poll() is not None:  # it gave up on the storage: as a supervisor would
            chaos.sink_exits += 1
            sink = chaos.sink = start_sink(chaos)
    return False


def _caught_up(chaos: Chaos) -> bool:
    """True when every record of the topic is in the sink's table or its dead letters (or
    the broker accounts for it: :func:`compare`)."""
    truth = topic_records(chaos.broker)
    dropped = chaos.dropped()
    events, dead = sink_records(chaos)
    passed = _passed(truth, events, dead, dropped)
    return all(compare(kind, truth, rows, dropped, passed)["lost"] == 0
               for kind, rows in ((True, events), (False, dead)))


# --- the report -----------------------------------------------------------------------------

def lost_duplicated_wrong(result: dict[str, Any]) -> tuple[int, int, int]:
    rows = result["rows"].values()
    lost = sum(r["lost"] for r in rows)
    dup = sum(r["duplicated"] for r in rows)
    wrong = len(result["wrong"]) + sum(r["unexpected"] for r in rows) + (not result["drained"])
    return lost, dup, wrong


def markdown(results: list[dict[str, Any]]) -> str:
    out = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
           f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}", ""]
    out.append("| seed | seconds | operations (errors surfaced) | faults injected | sink kill -9 "
               "| broker restarts | lost | duplicated | wrong |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        n_ops = sum(r["ops"].values())
        errs = sum(r["errors"].values())
        lost, dup, wrong = lost_duplicated_wrong(r)
        out.append(f"| {r['seed']} | {r['seconds']:.0f} | {n_ops} ({errs}) | {r['faults_total']} | "
                   f"{r['sink_kills']} | {r['broker_restarts']} | {lost} | {dup} | {wrong} |")
    out += ["", "Faults injected, by request kind and fault (all seeds):", ""]
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r["faults"])
    kinds = sorted({k.split()[0] for k in faults})
    names = sorted({k.split()[1] for k in faults})
    out.append("| kind | " + " | ".join(names) + " |")
    out.append("|---|" + "---|" * len(names))
    for kind in kinds:
        out.append(f"| {kind} | " + " | ".join(str(faults[f'{kind} {n}']) for n in names) + " |")
    out += ["", "Rows (all seeds): expected / present / lost / duplicated / unexpected / "
            "broker dropped / broker re-used (offsets a broker restart dropped: not wrong)",
            ""]
    out.append("| seed | table | expected | present | lost | duplicated | unexpected "
               "| broker dropped | broker re-used |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for name, row in r["rows"].items():
            out.append(f"| {r['seed']} | {name} | {row['expected']} | {row['present']} | "
                       f"{row['lost']} | {row['duplicated']} | {row['unexpected']} | "
                       f"{row.get('broker dropped', '-')} | {row.get('broker re-used', '-')} |")
    out += ["", "The broker (the producer's acks against the topic at the end):", ""]
    names = sorted({k for r in results for k in r.get("broker", {})})
    out.append("| seed | " + " | ".join(names) + " |")
    out.append("|---|" + "---|" * len(names))
    for r in results:
        out.append(f"| {r['seed']} | " + " | ".join(str(r.get("broker", {}).get(n, "-"))
                                                     for n in names) + " |")
    for r in results:
        for restart in r.get("restarts", []):
            if restart["dropped"]:
                out.append(f"- seed {r['seed']}: a broker restart dropped offsets "
                           f"{restart['dropped']} (partition, first, end)")
    out += ["", "Operations (errors surfaced after bounded retries), all seeds:", ""]
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in results:
        ops.update(r["ops"])
        errors.update(r["errors"])
    out.append("| operation | count | errors |")
    out.append("|---|---|---|")
    for name in sorted(ops):
        out.append(f"| {name} | {ops[name]} | {errors.get(name, 0)} |")
    for r in results:
        for w in r["wrong"][:10]:
            out.append(f"- seed {r['seed']}: WRONG: {w}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, action="append", help="repeat for several")
    parser.add_argument("--json", action="store_true", help="print the raw figures too")
    args = parser.parse_args(argv)
    # a SIGTERM unwinds the servers' context managers (the broker, moto, the proxy)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    for seed in args.seed or [1]:
        result = run(args.seconds, seed)
        results.append(result)
        if args.json:
            print(json.dumps(result, sort_keys=True), flush=True)
    print(markdown(results))
    bad = [lost_duplicated_wrong(r) for r in results]
    return 1 if any(any(b) for b in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
