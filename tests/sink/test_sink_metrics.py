"""The sink's /metrics, /livez and /readyz, scraped over HTTP from running sinks on a real
Tansu broker: the metrics agree with the tables, readiness follows start, assignment and
SIGTERM, liveness survives slow storage and catches a hung loop, a port in use fails
before consuming, and no secret reaches the endpoints."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandera.polars as pap
import polars as pl
import pytest
from _support.kafka import SESSION, event, new_topic, produce, sink_for
from prometheus_client.parser import text_string_to_metric_families

import lakekit as lk
from lakekit.errors import ConfigError
from lakekit.local_servers import KafkaBroker

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-metrics-value"
KEY_ID = "AKIA-METRICS-TEST"

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def get(url: str, timeout: float = 5.0) -> tuple[int, str] | None:
    """(status, body) of a GET, or ``None`` when nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:  # nothing listens (any more), or the connection was cut
        return None


def scrape(url: str) -> tuple[Samples, str]:
    got = get(url + "/metrics")
    assert got is not None and got[0] == 200, got
    out: Samples = {}
    for family in text_string_to_metric_families(got[1]):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out, got[1]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def started(sink: lk.KafkaDeltaSink, run: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """``run`` in a thread, once the sink's server listens; returns the thread and a list
    that receives the result (or the error)."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(run())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    wait_until(lambda: bool(result) or not str(sink.metrics_url).endswith(":0"),
               "the metrics server", timeout=10)
    assert not result, result
    return thread, result


COUNTERS = ["records_in", "bytes_in", "rows_written", "dead_lettered", "commits",
            "commit_retries", "commit_failures", "rebalances"]

SCHEMA = pap.DataFrameSchema({"id": pap.Column(pl.Int64, pap.Check.ge(0)),
                              "user": pap.Column(pl.Utf8), "amount": pap.Column(pl.Float64)})


@pytest.mark.s3
@pytest.mark.slow
def test_metrics_scraped_during_a_run_agree_with_the_tables(
    kafka_broker: KafkaBroker, s3_bucket: str, s3_options: dict[str, Any]
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    options = {**s3_options, "key": KEY_ID, "secret": SECRET}
    table = f"s3://{s3_bucket}/lake/events"
    sink = sink_for(kafka_broker, topic, table, storage_options=options, schema=SCHEMA,
                    max_batch_seconds=0.3, metrics_port=0, metrics_host="127.0.0.1")
    thread, result = started(sink, sink.run)
    url = str(sink.metrics_url)
    scrapes: list[Samples] = []
    texts: list[str] = []
    sent = 0
    for chunk in range(3):  # three rounds of good, invalid (id < 0) and non-JSON records
        values = [event(sent + i) for i in range(60)] + [event(-1), b"{not json"]
        placed = produce(kafka_broker, topic, values, partitions=2)
        sent += len(values)
        last = {p: max(o for q, o in placed if q == p) for p in (0, 1)}

        def caught_up(last: dict[int, int] = last) -> bool:
            samples, text = scrape(url)
            offsets = samples.get("lakekit_sink_committed_offset", {})
            done = all(offsets.get((("partition", str(p)), ("topic", topic))) == o
                       for p, o in last.items())
            scrapes.append(samples)
            texts.append(text)
            return done

        wait_until(caught_up, f"chunk {chunk} to be committed")
    final = scrapes[-1]
    sink.stop()
    thread.join(timeout=60)
    assert isinstance(result[0], lk.SinkStats), result
    stats = result[0]

    assert len(scrapes) >= 3
    for name in [f"lakekit_sink_{c}_total" for c in COUNTERS] + [
            "lakekit_sink_commit_duration_seconds_count", "lakekit_sink_batch_records_sum"]:
        seen = [value(s, name) for s in scrapes]
        assert seen == sorted(seen), f"{name} went down: {seen}"

    data = lk.Table(table, storage_options=options)
    dead = lk.Table(str(sink.dead_letter_url), storage_options=options)
    assert value(final, "lakekit_sink_records_in_total") == sent == stats.records_in
    assert value(final, "lakekit_sink_rows_written_total") == data.read().num_rows == 180
    assert value(final, "lakekit_sink_dead_lettered_total") == dead.read().num_rows == 6
    assert value(final, "lakekit_sink_table_version") == data.version
    assert value(final, "lakekit_sink_dead_letter_table_version") == dead.version
    for p in (0, 1):
        assert (value(final, "lakekit_sink_committed_offset", topic=topic, partition=str(p))
                == sink.committed_offset(topic, p))
        assert value(final, "lakekit_sink_consumer_lag", topic=topic, partition=str(p)) >= 0
    commits = value(final, "lakekit_sink_commits_total")
    assert commits == stats.commits >= 3
    assert value(final, "lakekit_sink_batch_records_count") == commits
    assert value(final, "lakekit_sink_batch_records_sum") == sent
    assert value(final, "lakekit_sink_batch_records_bucket", le="+Inf") == commits
    assert value(final, "lakekit_sink_commit_duration_seconds_count") == commits
    assert value(final, "lakekit_sink_decode_duration_seconds_sum") > 0
    assert value(final, "lakekit_sink_assigned_partitions") == 2
    assert value(final, "lakekit_sink_buffered_bytes") == 0
    assert value(final, "lakekit_sink_commit_failures_total") == 0
    assert abs(value(final, "lakekit_sink_last_commit_timestamp_seconds") - time.time()) < 60
    info = dict(next(iter(final["lakekit_sink_info"])))
    assert info == {"version": lk.__version__, "group": sink.group_id, "topics": topic}
    assert "process_resident_memory_bytes" in final
    assert not any(SECRET in t or KEY_ID in t for t in texts)
    assert get(url + "/metrics", timeout=1) is None  # the server stopped with run()


@pytest.mark.slow
def test_livez_survives_slow_storage_and_fails_while_the_loop_hangs(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    def slow_non_negative(data: Any) -> Any:
        time.sleep(1.5)  # every batch's commit outlasts the liveness timeout
        return data.lazyframe.select(pl.col(data.key) >= 0)

    from kafka.serializer import Deserializer

    release = threading.Event()

    class HangOnDemand(Deserializer):  # runs inside poll, on the consume loop's thread
        def deserialize(self, topic: str, headers: Any, raw: bytes) -> bytes:
            if b'"hang"' in raw:
                release.wait(30)
            return raw

    topic = new_topic(kafka_broker)
    table = str(tmp_path / "events")
    schema = pap.DataFrameSchema({"id": pap.Column(pl.Int64, pap.Check(slow_non_negative))})
    sink = sink_for(kafka_broker, topic, table, schema=schema, max_batch_rows=40,
                    max_batch_seconds=0.5,
                    consumer_config={**SESSION, "max_poll_records": 40,
                                     "value_deserializer": HangOnDemand()},
                    metrics_port=0, metrics_host="127.0.0.1", liveness_timeout=1.0)
    produce(kafka_broker, topic, [event(i) for i in range(80)])
    thread, result = started(sink, lambda: sink.run(stop_after_idle=30))
    url = str(sink.metrics_url)
    # slow storage: the loop waits for commits far longer than the timeout, and stays live
    live: list[int] = []
    while sink.stats.rows_written < 80 and not result:
        got = get(url + "/livez")
        assert got is not None
        live.append(got[0])
        time.sleep(0.1)
    assert not result, result
    assert sink.stats.wait_seconds > 1.0  # the loop did wait for slow commits
    assert len(live) > 15 and set(live) == {200}, live

    # a hung loop (a deserializer that blocks inside poll) fails liveness, then recovers
    produce(kafka_broker, topic, [json.dumps({"id": 80, "hang": True}).encode()])
    wait_until(lambda: (get(url + "/livez") or (0, ""))[0] == 503, "/livez to fail", 20)
    status, body = get(url + "/livez") or (0, "")
    assert status == 503 and "has not turned for" in body, body
    assert (get(url + "/readyz") or (0, ""))[0] == 200  # still assigned: only liveness fails
    release.set()
    wait_until(lambda: (get(url + "/livez") or (0, ""))[0] == 200, "/livez to recover")
    wait_until(lambda: sink.stats.rows_written == 81, "the last record")
    sink.stop()
    thread.join(timeout=60)
    assert isinstance(result[0], lk.SinkStats), result
    assert sorted(lk.Table(table).read().column("id").to_pylist()) == list(range(81))


def test_a_metrics_port_in_use_fails_before_consuming(tmp_path: Path, cli: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # no broker listens at 127.0.0.1:1: the port check comes first, at once
        sink = lk.KafkaDeltaSink("events", str(tmp_path / "events"),
                                 bootstrap_servers="127.0.0.1:1", group_id="g",
                                 metrics_port=port, metrics_host="127.0.0.1")
        start = time.monotonic()
        with pytest.raises(ConfigError, match=f"metrics_port {port} on 127.0.0.1 is already "
                                              "in use"):
            sink.run()
        assert time.monotonic() - start < 5

        code, _, err = cli("sink", "--topic", "events", "--bootstrap-servers",
                             "127.0.0.1:1", "--group-id", "g", "--table",
                             str(tmp_path / "events"), "--metrics-port", str(port),
                             "--metrics-host", "127.0.0.1")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "already in use" in err, err
    assert "Traceback" not in err
    assert not lk.Table(str(tmp_path / "events")).exists
    with pytest.raises(ConfigError, match="metrics_port must be a port number"):
        lk.KafkaDeltaSink("events", "t", bootstrap_servers="127.0.0.1:1", group_id="g",
                          metrics_port=70000)
    with pytest.raises(ConfigError, match="liveness_timeout must be positive"):
        lk.KafkaDeltaSink("events", "t", bootstrap_servers="127.0.0.1:1", group_id="g",
                          metrics_port=0, liveness_timeout=0)


@pytest.fixture
def child_procs() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:  # a failed test must not leave sinks running
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_readyz_follows_start_assignment_and_sigterm(
    kafka_broker: KafkaBroker, tmp_path: Path, child_procs: list[subprocess.Popen[str]]
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    produce(kafka_broker, topic, [event(i) for i in range(200)], partitions=2)
    table = str(tmp_path / "events")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakekit.cli", "sink", "--topic", topic,
         "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--group-id", f"g-{uuid.uuid4().hex[:8]}", "--table", table,
         "--consumer-option", "session_timeout_ms=3000", "--max-batch-seconds", "600",
         "--metrics-port", "0", "--metrics-host", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    child_procs.append(proc)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()

    def seen(pattern: str) -> re.Match[str] | None:
        return next((m for line in list(lines) if (m := re.search(pattern, line))), None)

    wait_until(lambda: seen(r"metrics and health on (http://\S+)") is not None
               or proc.poll() is not None, "the metrics server", timeout=20)
    match = seen(r"metrics and health on (http://\S+)")
    assert match, "".join(lines)
    url = match[1]
    statuses = [(get(url + "/readyz") or (0, ""))[0]]
    while statuses[-1] != 200:  # before the group assigns partitions: 503
        assert proc.poll() is None and len(statuses) < 600, "".join(lines[-20:])
        time.sleep(0.05)
        statuses.append((get(url + "/readyz") or (0, ""))[0])
    assert statuses[0] == 503 and seen("partitions assigned"), statuses
    assert (get(url + "/livez") or (0, ""))[0] == 200
    samples, _ = scrape(url)
    assert value(samples, "lakekit_sink_assigned_partitions") == 2
    wait_until(lambda: scrape(url)[0]["lakekit_sink_records_in_total"][()] == 200,
               "the records to be read")

    proc.send_signal(signal.SIGTERM)  # flush (a batch of 200), commit, leave the group
    after: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = get(url + "/readyz", timeout=1)
        if got is None:
            break  # the server stopped with run()
        after.append(got[0])
        time.sleep(0.01)
    # a scrape in the instant before the signal handler ran may still say 200; from the
    # first 503 on it is never ready again
    assert 503 in after and set(after[after.index(503):]) == {503}, after
    assert proc.wait(timeout=60) == 0, "".join(lines[-20:])
    assert lk.Table(table).read().num_rows == 200
