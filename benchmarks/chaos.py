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
and everything is checked against the truth: the topic read back from the broker, the
batches whose writes returned. One table is printed: operations, faults injected by kind,
errors surfaced, rows expected / present / lost / duplicated, wrong answers.

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

    def uri(self, name: str) -> str:
        return f"s3://{BUCKET}/{name}"


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
    is not JSON. Pauses while the broker is down; the truth is read back from the topic."""
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
                producer.send(TOPIC, value, partition=i % PARTITIONS)
                i += 1
            producer.flush(timeout=5)
            chaos.produced = i
            chaos.tally.op("produce")
        except Exception:  # the broker went away: a new producer once it is back
            chaos.tally.error("produce")
            if producer is not None:
                producer.close(timeout=1)
            producer = None
            time.sleep(0.5)
        time.sleep(0.1)
    if producer is not None:
        producer.close(timeout=5)


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
    cases = [
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
            chaos.broker_up.clear()
            chaos.broker.kill()
            chaos.stop.wait(rng.uniform(1, 3))
            chaos.broker.start()
            chaos.broker_up.set()
            chaos.broker_restarts += 1
            next_restart = time.monotonic() + rng.uniform(*restart_every)


# --- the truth at the end -------------------------------------------------------------------

def topic_records(broker: RestartableBroker, timeout: float = 120) -> dict[tuple[int, int], bool]:
    """Every record of the topic: (partition, offset) -> is it valid JSON (not a dead
    letter)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers,
                             enable_auto_commit=False, max_poll_records=5000)
    parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    out: dict[tuple[int, int], bool] = {}
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < ends[tp] for tp in parts):
        if time.monotonic() > deadline:
            raise RuntimeError("reading the topic back did not finish")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                try:
                    json.loads(r.value)
                    out[tp.partition, r.offset] = True
                except ValueError:
                    out[tp.partition, r.offset] = False
    consumer.close()
    return out


def verify(chaos: Chaos) -> dict[str, dict[str, int]]:
    """Rows expected / present / lost / duplicated / unexpected, per table (clean reads)."""
    truth = topic_records(chaos.broker)
    rows: dict[str, dict[str, int]] = {}

    def compare(name: str, expected: set[tuple[int, int]], present: list[tuple[int, int]]) -> None:
        counts = Counter(present)
        rows[name] = {
            "expected": len(expected), "present": len(present),
            "lost": len(expected - set(counts)),
            "duplicated": sum(c - 1 for c in counts.values() if c > 1),
            "unexpected": len(set(counts) - expected),
        }

    events = lk.Table(chaos.uri("events"), storage_options=chaos.clean).read(
        columns=["_kafka_partition", "_kafka_offset"])
    compare("sink: events", {k for k, ok in truth.items() if ok},
            pairs(events))
    dead = lk.Table(chaos.uri("events_dead_letter"), storage_options=chaos.clean)
    dead_rows = dead.read(columns=["partition", "offset"]) if dead.exists else None
    compare("sink: dead letters", {k for k, ok in truth.items() if not ok},
            [] if dead_rows is None else
            pairs(dead_rows))

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
    """True when every record of the topic is in the sink's table or its dead letters."""
    have: set[tuple[int, int]] = set()
    for name, columns in (("events", ["_kafka_partition", "_kafka_offset"]),
                          ("events_dead_letter", ["partition", "offset"])):
        table = lk.Table(chaos.uri(name), storage_options=chaos.clean)
        if table.exists:
            have.update(pairs(table.read(columns=columns)))
    return set(topic_records(chaos.broker)) <= have


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
        ops = sum(r["ops"].values())
        errs = sum(r["errors"].values())
        lost, dup, wrong = lost_duplicated_wrong(r)
        out.append(f"| {r['seed']} | {r['seconds']:.0f} | {ops} ({errs}) | {r['faults_total']} | "
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
    out += ["", "Rows (all seeds): expected / present / lost / duplicated / unexpected", ""]
    out.append("| seed | table | expected | present | lost | duplicated | unexpected |")
    out.append("|---|---|---|---|---|---|---|")
    for r in results:
        for name, row in r["rows"].items():
            out.append(f"| {r['seed']} | {name} | {row['expected']} | {row['present']} | "
                       f"{row['lost']} | {row['duplicated']} | {row['unexpected']} |")
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
