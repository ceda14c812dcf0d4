"""Kafka-to-Delta sink benchmarks (issue 4), on a local Tansu broker and Delta on local disk.

1. throughput: 1 KB JSON messages in 4 partitions. Baseline: raw kafka-python consumption
   of the same topic in the same run (the ceiling for this client). Target: >= 75%.
2. files: average file size and commits per minute at the default settings, on a backlog
   and at a steady 1 MB/s; baselines: a naive loop that writes one Delta commit per poll
   (measured) and kafka-delta-ingest's defaults (computed from its documented settings:
   commit when the buffered file reaches 128 MB or 300 s have passed).
4. latency: a producer at a steady 1 MB/s and 10 MB/s for ``--latency-seconds`` (60 by
   default); the sink at ``max_batch_seconds=1`` with ``compact_every=10``, and the same run
   without compaction. Produce -> visible: a reader polls the table's version and reads the
   ``_kafka_timestamp`` (the producer's CreateTime) of each new commit's rows; p50 / p99.
   Goal: p99 <= 5 s. Then the table's shape (live files, mean size) and the time to read it
   whole, against the same rows written in one go and kafka-delta-ingest's defaults
   (computed as in 2.). Goal: read time within 1.2x of the table written in one go.
3. memory: peak RSS of a sink process draining a large topic at the default settings
   (max_batch_bytes = 64 MB); target: < 2 x max_batch_bytes + 200 MB. Baseline: the RSS
   of the same process after imports, before consuming.

Run: ``python benchmarks/bench_sink.py [throughput|files|memory|latency|all] [--messages N]
[--memory-mb MB] [--metrics] [--latency-seconds S] [--rates 1,10]``. Prints Markdown tables
for docs/benchmarks.md. With ``--metrics``, each throughput rep also runs the sink with
``metrics_port`` on and ``/metrics`` scraped once a second (issue 11's target: within 2% of
the sink without).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from lakekit.local_servers import KafkaBroker, tansu_broker

MSG_BYTES = 1024
PARTITIONS = 4
SESSION = {"session_timeout_ms": 6000}


# --- data ---------------------------------------------------------------------------------

_VOCABULARY = (
    "the a of to and in for on with by at from page view click buy cart item price "
    "user session search result home product detail checkout payment shipping order "
    "mobile desktop tablet android ios chrome firefox safari campaign email social "
    "organic paid referral banner video play pause stop share like comment follow "
    "red green blue small medium large new used sale discount coupon gift card "
    "error timeout retry success failed pending accepted rejected region europe asia "
    "america africa north south east west morning evening night weekday weekend"
)
_WORDS = np.array([w.encode() for w in _VOCABULARY.split(" ")], dtype=object)


def make_messages(start: int, n: int, rng: np.random.Generator) -> list[bytes]:
    """``n`` distinct JSON events of about 1 KB each (a text field of random words)."""
    kinds = [b"view", b"click", b"buy"]
    users = rng.integers(0, 10_000, n)
    amounts = rng.random(n) * 100
    words = rng.integers(0, len(_WORDS), size=(n, 200))
    out = []
    for i in range(n):
        head = (b'{"id":%d,"user":"user-%d","kind":"%s","amount":%.3f,"ts":"2024-05-01T12:%02d:'
                b'%02dZ","tags":["a","b"],"text":"'
                % (start + i, users[i], kinds[i % 3], amounts[i], (i // 60) % 60, i % 60))
        text = b" ".join(_WORDS[words[i]])[: MSG_BYTES - len(head) - 2]
        out.append(head + text + b'"}')
    return out


def produce(broker: KafkaBroker, topic: str, n: int, *, seed: int = 1,
            rate_mb_s: float | None = None) -> float:
    """Produce ``n`` messages round-robin over the partitions; returns MB produced."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20,
                             batch_size=1 << 20, max_request_size=16 << 20, acks=1,
                             )
    rng = np.random.default_rng(seed)
    chunk = 20_000 if rate_mb_s is None else 1000
    sent = 0
    nbytes = 0
    start = time.monotonic()
    while sent < n:
        msgs = make_messages(sent, min(chunk, n - sent), rng)
        for i, m in enumerate(msgs):
            producer.send(topic, value=m, partition=(sent + i) % PARTITIONS)
        sent += len(msgs)
        nbytes += sum(map(len, msgs))
        if rate_mb_s is not None:
            ahead = nbytes / (rate_mb_s * 1e6) - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    producer.close()
    return nbytes / 1e6


# --- 1. throughput ------------------------------------------------------------------------

def _raw_child(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """Raw kafka-python consumption, 5000 records a poll and kafka-python's default 50 MB
    fetches (as fast as its 4 MiB ones here), from the first record to the last."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"raw-{time.time_ns()}",
        auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5000,
        fetch_max_bytes=50 << 20, **SESSION,
    )
    count = nbytes = 0
    first = None
    deadline = time.monotonic() + 600
    while count < n and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            if first is None:
                first = time.monotonic()
            count += len(recs)
            nbytes += sum(len(r.value) for r in recs)
    elapsed = time.monotonic() - (first or time.monotonic())
    consumer.close()
    return {"msgs_s": count / elapsed, "mb_s": nbytes / elapsed / 1e6, "elapsed": elapsed}


def _sink_child(bootstrap: str, topic: str, n: int, table: str) -> dict[str, Any]:
    """The sink at its defaults, from its first record to the Delta commit of its last one
    (leaving the group afterwards is not counted)."""
    import lakekit as lk

    metrics = os.environ.get("LAKEKIT_BENCH_METRICS") == "1"
    compact = int(os.environ.get("LAKEKIT_BENCH_COMPACT_EVERY") or 0) or None
    sink = lk.KafkaDeltaSink(topic, table, bootstrap_servers=bootstrap,
                             group_id=f"sink-{time.time_ns()}", consumer_config=SESSION,
                             compact_every=compact,
                             **({"metrics_port": 0, "metrics_host": "127.0.0.1"}
                                if metrics else {}))
    marks: dict[str, float] = {}
    scrapes = [0]

    def scrape() -> None:  # what Prometheus does, once a second
        import urllib.request

        while "end" not in marks:
            time.sleep(1.0)
            url = sink.metrics_url
            if url and not url.endswith(":0"):
                with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
                    scrapes[0] += bool(resp.read())

    def watch() -> None:
        while "end" not in marks:
            s = sink.stats
            if s.records_in and "first" not in marks:
                marks["first"] = time.monotonic()
            if s.rows_written + s.dead_lettered >= n:
                marks["end"] = time.monotonic()
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    scraper = threading.Thread(target=scrape, daemon=True)
    if metrics:
        scraper.start()
    stats = sink.run(max_messages=n)
    watcher.join(timeout=1)
    elapsed = marks.get("end", time.monotonic()) - marks["first"]
    return {"msgs_s": stats.records_in / elapsed, "mb_s": stats.bytes_in / elapsed / 1e6,
            "elapsed": elapsed, "commits": stats.commits, "wait_s": stats.wait_seconds,
            "scrapes": scrapes[0]}


def _child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh process (allocator settings and caches of one run
    do not leak into the next); its result is the JSON on its last stdout line."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, timeout=1200, check=False,
                         env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {args[0]} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def raw_consume(broker: KafkaBroker, topic: str, n: int) -> dict[str, Any]:
    return _child("raw", broker.bootstrap_servers, topic, str(n))


def sink_consume(broker: KafkaBroker, topic: str, n: int, table: str,
                 env: dict[str, str] | None = None) -> dict[str, Any]:
    return _child("sink", broker.bootstrap_servers, topic, str(n), table, env=env)


def bench_throughput(broker: KafkaBroker, n: int, root: Path, reps: int,
                     metrics: bool = False, compact_every: int | None = None) -> dict[str, Any]:
    topic = "bench-throughput"
    broker.create_topic(topic, PARTITIONS)
    mb = produce(broker, topic, n)
    print(f"produced {n:,} messages ({mb:.0f} MB) to {PARTITIONS} partitions", flush=True)
    raws, sinks, with_metrics = [], [], []
    for rep in range(reps):
        raws.append(raw_consume(broker, topic, n))
        print(f"raw kafka-python: {raws[-1]['msgs_s']:,.0f} msg/s", flush=True)
        table = str(root / f"throughput-{rep}")
        sinks.append(sink_consume(broker, topic, n, table))
        print(f"sink: {sinks[-1]['msgs_s']:,.0f} msg/s, waited for commits "
              f"{sinks[-1]['wait_s']:.1f}s of {sinks[-1]['elapsed']:.1f}s", flush=True)
        if metrics:
            env = {"LAKEKIT_BENCH_METRICS": "1",
                   "LAKEKIT_BENCH_COMPACT_EVERY": str(compact_every or "")}
            with_metrics.append(sink_consume(broker, topic, n, str(root / f"metrics-{rep}"),
                                             env=env))
            print(f"sink with metrics on: {with_metrics[-1]['msgs_s']:,.0f} msg/s "
                  f"({with_metrics[-1]['scrapes']} scrapes)", flush=True)
    raws.append(raw_consume(broker, topic, n))
    print(f"raw kafka-python: {raws[-1]['msgs_s']:,.0f} msg/s", flush=True)
    # each sink run against the mean of the raw runs just before and after it
    ratios = [s["msgs_s"] / ((raws[i]["msgs_s"] + raws[i + 1]["msgs_s"]) / 2)
              for i, s in enumerate(sinks)]
    best = int(np.argsort(ratios)[len(ratios) // 2])
    # for reference: the sink with kafka-python's per-message record path
    plain = sink_consume(broker, topic, n, str(root / "throughput-plain"),
                         env={"LAKEKIT_SINK_BULK_FETCH": "0"})
    raws.append(raw_consume(broker, topic, n))
    plain["ratio"] = plain["msgs_s"] / ((raws[-2]["msgs_s"] + raws[-1]["msgs_s"]) / 2)
    print(f"sink with kafka-python's records: {plain['msgs_s']:,.0f} msg/s; "
          f"raw kafka-python: {raws[-1]['msgs_s']:,.0f} msg/s", flush=True)
    return {"n": n, "mb": mb, "raws": raws, "sinks": sinks, "ratios": ratios,
            "with_metrics": with_metrics,
            "ratio": float(np.median(ratios)), "sink": sinks[best],
            "table": str(root / f"throughput-{best}"), "plain": plain}


# --- 2. files -----------------------------------------------------------------------------

def table_shape(table: str) -> tuple[int, float, int]:
    """(files, average file MB, data commits) of a Delta table."""
    import pyarrow as pa
    from deltalake import DeltaTable

    dt = DeltaTable(table)
    sizes = pa.table(dt.get_add_actions(flatten=True)).column("size_bytes").to_pylist()
    commits = sum(1 for h in dt.history() if h.get("operation") in ("WRITE", "CREATE TABLE"))
    return len(sizes), (sum(sizes) / len(sizes) / 1e6 if sizes else 0.0), commits


def naive_per_poll(broker: KafkaBroker, topic: str, n: int, table: str) -> tuple[float, float]:
    """A hand-written loop: json.loads each message, one Delta commit per poll (500 msgs).

    Returns (commits per minute, elapsed seconds)."""
    import pyarrow as pa
    from deltalake import write_deltalake
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap_servers, group_id=f"naive-{time.time_ns()}",
        auto_offset_reset="earliest", enable_auto_commit=False, **SESSION,
    )
    count = commits = 0
    first = None
    while count < n:
        for recs in consumer.poll(timeout_ms=500, max_records=500).values():
            if first is None:
                first = time.monotonic()
            rows = [json.loads(r.value) for r in recs[: n - count]]
            write_deltalake(table, pa.Table.from_pylist(rows), mode="append")
            consumer.commit()
            count += len(rows)
            commits += 1
            if count >= n:
                break
    elapsed = time.monotonic() - (first or time.monotonic())
    consumer.close()
    return commits / (elapsed / 60), elapsed


def bench_files(broker: KafkaBroker, throughput: dict[str, Any], root: Path,
                steady_seconds: float) -> dict[str, Any]:
    files, avg_mb, commits = table_shape(throughput["table"])
    elapsed = throughput["sink"]["elapsed"]
    backlog = {"files": files, "avg_mb": avg_mb, "commits": commits,
               "per_min": commits / (elapsed / 60), "mb_s": throughput["sink"]["mb_s"]}
    # steady 1 MB/s for steady_seconds, sink at defaults running alongside
    topic = "bench-steady"
    broker.create_topic(topic, PARTITIONS)
    rate = 1.0
    n = int(rate * 1e6 * steady_seconds / MSG_BYTES)
    producer = threading.Thread(target=produce, args=(broker, topic, n),
                                kwargs={"rate_mb_s": rate, "seed": 2})
    producer.start()
    steady_table = str(root / "steady")
    sink = sink_consume(broker, topic, n, steady_table)
    producer.join()
    s_files, s_avg, s_commits = table_shape(steady_table)
    steady = {"files": s_files, "avg_mb": s_avg, "commits": s_commits,
              "per_min": s_commits / (sink["elapsed"] / 60), "mb_s": rate}
    naive_n = 20_000
    naive_table = str(root / "naive")
    naive_rate, _ = naive_per_poll(broker, "bench-throughput", naive_n, naive_table)
    n_files, n_avg, _ = table_shape(naive_table)
    naive = {"files": n_files, "avg_mb": n_avg, "per_min": naive_rate}
    # kafka-delta-ingest defaults: --allowed_latency 300 s, --min_bytes_per_file 128 MB
    # (measured in buffered parquet bytes); compression ratio taken from our own files.
    ratio = avg_mb * files / (throughput["mb"]) if throughput["mb"] else 1.0
    kdi = {}
    for name, mb_s in (("backlog", backlog["mb_s"]), ("steady", rate)):
        seconds_per_file = min(300.0, 128.0 / (mb_s * ratio))
        kdi[name] = {"avg_mb": min(128.0, mb_s * ratio * 300.0), "per_min": 60 / seconds_per_file}
    return {"backlog": backlog, "steady": steady, "naive": naive, "kdi": kdi,
            "compression": ratio}


# --- 3. memory ----------------------------------------------------------------------------

_MEMORY_CHILD = r"""
import json, sys, time
import lakekit as lk
import deltalake, kafka, pyarrow.json, pyarrow.parquet  # noqa: F401  (what a sink run loads)
bootstrap, topic, table, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
production = dict(metrics_port=0, metrics_host="127.0.0.1", compact_every=int(sys.argv[5]))
sink = lk.KafkaDeltaSink(topic, table, bootstrap_servers=bootstrap, group_id="memory",
                         consumer_config={"session_timeout_ms": 6000},
                         **(production if int(sys.argv[5]) else {}))
def status(key):  # VmHWM is this process's own peak (ru_maxrss carries the parent's over)
    line = [x for x in open("/proc/self/status") if x.startswith(key + ":")][0]
    return int(line.split()[1]) / 1024
idle = status("VmRSS")
start = time.monotonic()
stats = sink.run(max_messages=n)
peak = status("VmHWM")
print(json.dumps({"idle_mb": idle, "peak_mb": peak, "records": stats.records_in,
                  "rows": stats.rows_written, "mb_in": stats.bytes_in / 1e6,
                  "seconds": time.monotonic() - start, "commits": stats.commits}))
"""


def bench_memory(broker: KafkaBroker, topic_mb: int, root: Path,
                 compact_every: int | None = None) -> dict[str, Any]:
    topic = "bench-memory"
    broker.create_topic(topic, PARTITIONS)
    n = topic_mb * 1_000_000 // MSG_BYTES
    start = time.monotonic()
    mb = produce(broker, topic, n, seed=3)
    print(f"produced {n:,} messages ({mb:.0f} MB) in {time.monotonic() - start:.0f}s",
          flush=True)
    table = str(root / "memory")
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, broker.bootstrap_servers, topic, table, str(n),
         str(compact_every or 0)],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"memory child failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["topic_mb"] = mb
    result["limit_mb"] = 2 * 64 + 200
    return result


# --- 4. latency with compaction -------------------------------------------------------

_LATENCY_CHILD = r"""
import json, logging, sys
import lakekit as lk
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
logging.getLogger("kafka").setLevel(logging.ERROR)
bootstrap, topic, table, n, every = sys.argv[1:6]
n = int(n)
sink = lk.KafkaDeltaSink(topic, table, bootstrap_servers=bootstrap, group_id="latency",
                         consumer_config={"session_timeout_ms": 6000}, kafka_metadata=True,
                         max_batch_seconds=1, compact_every=None if every == "-" else int(every))
stats = sink.run(max_messages=n)
print(json.dumps({"commits": stats.commits, "compactions": stats.compactions,
                  "compaction_failures": stats.compaction_failures, "rows": stats.rows_written}))
"""


def _new_rows_latency(table: str, version: int, now: float) -> list[float]:
    """Seconds from produce (the records' CreateTime) to ``now`` for the rows that
    commit ``version`` added (compaction commits add none: ``dataChange=false``)."""
    import pyarrow.parquet as pq

    log = Path(table) / "_delta_log" / f"{version:020d}.json"
    out: list[float] = []
    for line in log.read_text().splitlines():
        action = json.loads(line)
        add = action.get("add")
        if add and add.get("dataChange", True):
            from urllib.parse import unquote

            ts = pq.read_table(Path(table) / unquote(add["path"]),
                               columns=["_kafka_timestamp"]).column(0)
            micros = np.asarray(ts.cast("int64").to_numpy(zero_copy_only=False))
            out.extend((now - micros / 1e6).tolist())
    return out


def read_seconds(table: str, reps: int = 7) -> float:
    """Best time of ``reps`` whole-table reads with ``lk.Table(...).read()``."""
    import lakekit as lk

    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        lk.Table(table).read()
        best = min(best, time.perf_counter() - start)
    return best


def latency_run(broker: KafkaBroker, root: Path, rate: float, seconds: float,
                every: int | None) -> dict[str, Any]:
    """One run: the sink in a child process, a steady producer, a polling reader."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    name = f"latency-{rate:g}-{'c' if every else 'n'}"
    broker.create_topic(name, PARTITIONS)
    table = str(root / name)
    n = int(rate * 1e6 * seconds / MSG_BYTES)
    child = subprocess.Popen(
        [sys.executable, "-c", _LATENCY_CHILD, broker.bootstrap_servers, name, table, str(n),
         str(every) if every else "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any("partitions assigned" in ln for ln in lines):  # produce once it listens
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("latency sink did not start:\n" + "".join(lines[-20:]))
        time.sleep(0.05)
    producer = threading.Thread(target=produce, args=(broker, name, n),
                                kwargs={"rate_mb_s": rate, "seed": 4})
    producer.start()
    latencies: list[float] = []
    dt = None
    seen = -1
    deadline = time.monotonic() + seconds * 3 + 60
    while len(latencies) < n and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            if dt is None:
                dt = DeltaTable(table)
            else:
                dt.update_incremental()
        except TableNotFoundError:
            continue
        now = time.time()
        version = int(dt.version())
        for v in range(seen + 1, version + 1):
            latencies.extend(_new_rows_latency(table, v, now))
        seen = version
    producer.join()
    out, _ = child.communicate(timeout=300)
    if child.returncode != 0:
        raise SystemExit("latency sink failed:\n" + "".join(lines[-20:]))
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    files, avg_mb, _ = table_shape(table)
    lat = np.array(latencies)
    result.update(table=table, rate=rate, every=every, n=n, seen=len(lat),
                  p50=float(np.percentile(lat, 50)), p99=float(np.percentile(lat, 99)),
                  max=float(lat.max()), files=files, avg_mb=avg_mb,
                  read_s=read_seconds(table))
    return result


def bench_latency(broker: KafkaBroker, root: Path, seconds: float, rates: list[float],
                  every: int = 10) -> list[dict[str, Any]]:
    import lakekit as lk

    runs = []
    for rate in rates:
        for ev in (every, None):
            r = latency_run(broker, root, rate, seconds, ev)
            print(f"{rate:g} MB/s, compact_every={ev}: p50 {r['p50']:.2f}s p99 {r['p99']:.2f}s, "
                  f"{r['files']} files, read {r['read_s'] * 1000:.0f} ms", flush=True)
            runs.append(r)
        # the same rows written in one go
        from deltalake import write_deltalake

        one = str(root / f"one-go-{rate:g}")
        write_deltalake(one, lk.Table(runs[-2]["table"]).read())
        files, avg_mb, _ = table_shape(one)
        parquet_mb = runs[-2]["files"] * runs[-2]["avg_mb"]
        ratio = parquet_mb / (runs[-2]["n"] * MSG_BYTES / 1e6)
        interval = min(300.0, 128.0 / (rate * ratio))
        runs.append({"rate": rate, "one_go": True, "files": files, "avg_mb": avg_mb,
                     "read_s": read_seconds(one),
                     "kdi": {"interval": interval, "avg_mb": min(128.0, rate * ratio * 300.0)}})
    return runs


# --- report -------------------------------------------------------------------------------

def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB RAM, "
            f"Python {platform.python_version()}, Linux {platform.release()}")


def print_latency(runs: list[dict[str, Any]], seconds: float) -> None:
    print(f"\n### 4. Latency with compaction (max_batch_seconds=1, {seconds:.0f} s per run, "
          f"1 KB JSON, {PARTITIONS} partitions)\n")
    print("| input | writer | p50 s | p99 s | max s | live files | mean file MB | "
          "read table s | read vs one go |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | "
          "---: | ---: |")
    for rate in dict.fromkeys(r["rate"] for r in runs):
        group = [r for r in runs if r["rate"] == rate]
        one = next(r for r in group if r.get("one_go"))
        for r in group:
            if r.get("one_go"):
                label, p50, p99, mx = "same rows written in one go", "-", "-", "-"
            else:
                label = (f"sink, compact_every={r['every']}, {r['commits']} commits, "
                         f"{r['compactions']} compactions" if r["every"]
                         else f"sink, no compaction, {r['commits']} commits")
                p50, p99, mx = f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['max']:.2f}"
            print(f"| {rate:g} MB/s | {label} | {p50} | {p99} | {mx} | {r['files']} | "
                  f"{r['avg_mb']:.2f} | {r['read_s']:.3f} | {r['read_s'] / one['read_s']:.2f}x |")
        kdi = one["kdi"]
        print(f"| {rate:g} MB/s | kafka-delta-ingest defaults (128 MB / 300 s), computed | "
              f"{kdi['interval'] / 2:.0f} | {kdi['interval']:.0f} | {kdi['interval']:.0f} | - | "
              f"{kdi['avg_mb']:.1f} | - | - |")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "raw":
            result = _raw_child(args[0], args[1], int(args[2]))
        else:
            result = _sink_child(args[0], args[1], int(args[2]), args[3])
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all",
                        choices=["throughput", "files", "memory", "latency", "all"])
    parser.add_argument("--messages", type=int, default=300_000,
                        help="messages per throughput run (default 300,000 = ~300 MB)")
    parser.add_argument("--memory-mb", type=int, default=2000,
                        help="topic size for the memory run (default 2000 MB)")
    parser.add_argument("--steady-seconds", type=float, default=40.0)
    parser.add_argument("--reps", type=int, default=3, help="sink runs, interleaved with raw")
    parser.add_argument("--compact-every", type=int, default=None, metavar="N",
                        help="with --metrics: the metrics run also compacts every N commits; "
                             "memory: run with metrics on and compaction every N commits")
    parser.add_argument("--metrics", action="store_true",
                        help="throughput: also run each rep with metrics on, scraped every 1 s")
    parser.add_argument("--latency-seconds", type=float, default=60.0,
                        help="producer duration of each latency run (default 60)")
    parser.add_argument("--rates", default="1,10",
                        help="producer rates in MB/s for the latency runs (default 1,10)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    print(f"machine: {machine()}\ndate: {datetime.date.today()}", flush=True)
    try:
        with tansu_broker() as broker:
            tp = None
            if args.which in ("throughput", "files", "all"):
                tp = bench_throughput(broker, args.messages, root, args.reps, args.metrics,
                                      args.compact_every)
                print("\n### 1. Throughput (1 KB JSON, 4 partitions, Delta on local disk)\n")
                print("| run | messages/s | MB/s | sink vs ceiling |\n"
                      "| --- | ---: | ---: | ---: |")
                for i, raw in enumerate(tp["raws"]):
                    print(f"| raw kafka-python consumer (ceiling) #{i + 1} | "
                          f"{raw['msgs_s']:,.0f} | {raw['mb_s']:.1f} | |")
                    if i < len(tp["sinks"]):
                        s = tp["sinks"][i]
                        print(f"| lakekit sink, end to end #{i + 1} | {s['msgs_s']:,.0f} | "
                              f"{s['mb_s']:.1f} | {tp['ratios'][i]:.0%} |")
                    elif i == len(tp["sinks"]):
                        pl = tp["plain"]
                        print("| lakekit sink, kafka-python's record path "
                              f"(LAKEKIT_SINK_BULK_FETCH=0) | {pl['msgs_s']:,.0f} | "
                              f"{pl['mb_s']:.1f} | {pl['ratio']:.0%} |")
                print(f"\nmedian sink / ceiling: **{tp['ratio']:.0%}** (each sink run against "
                      f"the mean of the raw runs before and after it); {tp['n']:,} messages "
                      f"({tp['mb']:.0f} MB) per run; target >= 75%.", flush=True)
                if tp["with_metrics"]:
                    off = [s["msgs_s"] for s in tp["sinks"]]
                    on = [s["msgs_s"] for s in tp["with_metrics"]]
                    extra = (f" and compact_every={args.compact_every}"
                             if args.compact_every else "")
                    print(f"\n| sink, metrics off / on (scraped every 1 s){extra} | "
                          "messages/s off | "
                          "messages/s on | on / off |\n| --- | ---: | ---: | ---: |")
                    for i, (a, b) in enumerate(zip(off, on, strict=True)):
                        print(f"| rep {i + 1} | {a:,.0f} | {b:,.0f} | {b / a:.1%} |")
                    print(f"\nmedian on / off: **{np.median(on) / np.median(off):.1%}** "
                          "(target >= 98%)", flush=True)
            if args.which in ("files", "all") and tp is not None:
                fl = bench_files(broker, tp, root, args.steady_seconds)
                print("\n### 2. Files and commits at the default settings\n")
                print("| writer | input | files | avg file MB | commits/min |\n"
                      "| --- | --- | ---: | ---: | ---: |")
                for name, label in (("backlog", f"backlog ({fl['backlog']['mb_s']:.0f} MB/s)"),
                                    ("steady", "steady 1 MB/s")):
                    r = fl[name]
                    print(f"| lakekit sink (defaults: 100k rows / 64 MB / 10 s) | {label} | "
                          f"{r['files']} | {r['avg_mb']:.1f} | {r['per_min']:.1f} |")
                for name, label in (("backlog", "backlog"), ("steady", "steady 1 MB/s")):
                    r = fl["kdi"][name]
                    print(f"| kafka-delta-ingest defaults (128 MB / 300 s), computed | {label} "
                          f"| - | {r['avg_mb']:.1f} | {r['per_min']:.1f} |")
                nv = fl["naive"]
                print(f"| naive loop, one commit per poll (500 msgs), measured | backlog | "
                      f"{nv['files']} | {nv['avg_mb']:.2f} | {nv['per_min']:.0f} |")
                print(f"\nparquet/JSON size ratio of these events: {fl['compression']:.2f}",
                      flush=True)
            if args.which in ("memory", "all"):
                mem = bench_memory(broker, args.memory_mb, root, args.compact_every)
                prod = (f"; metrics on, compact_every={args.compact_every}"
                        if args.compact_every else "")
                print("\n### 3. Peak memory draining a large topic (defaults, "
                      f"max_batch_bytes = 64 MB{prod})\n")
                print("| measurement | value |\n| --- | ---: |")
                print(f"| topic size | {mem['topic_mb']:,.0f} MB ({mem['records']:,} messages) |")
                print(f"| RSS after imports, before consuming (baseline) | "
                      f"{mem['idle_mb']:.0f} MB |")
                print(f"| peak RSS while sinking | **{mem['peak_mb']:.0f} MB** |")
                print(f"| peak RSS above the baseline | {mem['peak_mb'] - mem['idle_mb']:.0f} MB |")
                print(f"| limit: 2 x max_batch_bytes + 200 MB | {mem['limit_mb']} MB |")
                print(f"| rows written / commits / time | {mem['rows']:,} / {mem['commits']} / "
                      f"{mem['seconds']:.0f} s |")
            if args.which in ("latency", "all"):
                rates = [float(r) for r in args.rates.split(",")]
                lat = bench_latency(broker, root, args.latency_seconds, rates)
                print_latency(lat, args.latency_seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        pass


if __name__ == "__main__":
    main()
