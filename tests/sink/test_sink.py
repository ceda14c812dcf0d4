"""Kafka -> Delta sink through the public API, on a real Tansu broker and real Delta
tables (local disk and the moto S3 server): exactly-once offsets, dead letters,
validation, schema handling, decoders, stop and restart, errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandera.polars as pap
import polars as pl
import pyarrow as pa
import pytest
from _support.kafka import SESSION, event, new_topic, produce, sink_for, where

import lakekit as lk
from lakekit.errors import BadRecordError, ConfigError
from lakekit.local_servers import KafkaBroker

pytestmark = pytest.mark.kafka

# --- exactly once, dead letters, stats --------------------------------------------------------

@pytest.mark.parametrize("record_path", ["bulk", "kafka-python"])
def test_valid_records_land_once_and_bad_ones_are_dead_lettered(
    kafka_broker: KafkaBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    record_path: str
) -> None:
    # the sink's bulk record decoding, and kafka-python's own record path it falls back to
    monkeypatch.setenv("LAKEKIT_SINK_BULK_FETCH", "1" if record_path == "bulk" else "0")
    topic = new_topic(kafka_broker, partitions=3)
    values: list[bytes | None] = []
    bad_kinds: dict[int, str] = {}
    for i in range(300):
        if i % 50 == 7:
            values.append(b'{"id": 7, "user": ')  # truncated JSON
            bad_kinds[i] = "decode"
        elif i % 50 == 21:
            values.append(b'{"id": "twenty-one", "user": "x", "amount": 1}')  # wrong type
            bad_kinds[i] = "cast"
        elif i == 120:
            values.append(None)  # a tombstone
            bad_kinds[i] = "decode"
        elif i == 150:
            values.append(b'[1, 2, 3]')  # JSON, but not an object
            bad_kinds[i] = "decode"
        elif i == 200:
            values.append(b'{\n  "id": 200,\n  "user": "pretty",\n  "amount": 2.0\n}')
        else:
            values.append(event(i))
    keys = [f"k{i}".encode() for i in range(len(values))]
    placed = produce(kafka_broker, topic, values, partitions=3, keys=keys)

    table = str(tmp_path / "events")
    sink = sink_for(kafka_broker, topic, table, kafka_metadata=True, max_batch_rows=50)
    stats = sink.run(stop_after_idle=1.5)

    data = lk.Table(table).read()
    good = {placed[i] for i in range(len(values)) if i not in bad_kinds}
    assert len(where(data)) == len(good) == 300 - len(bad_kinds)
    assert set(where(data)) == good
    by_offset = {(p, o): i for i, (p, o) in enumerate(placed)}
    for row in data.select(["id", "user", "_kafka_partition", "_kafka_offset"]).to_pylist():
        i = by_offset[(row["_kafka_partition"], row["_kafka_offset"])]
        assert row["id"] == i  # each row carries its own message's offset
        assert row["user"] == ("pretty" if i == 200 else f"u{i % 7}")
    assert set(data.column("_kafka_topic").to_pylist()) == {topic}
    assert data.schema.field("_kafka_timestamp").type == pa.timestamp("us", tz="UTC")

    dead = lk.Table(table + "_dead_letter").read()
    assert sorted(where(dead, prefix="")) == sorted(placed[i] for i in bad_kinds)
    for row in dead.to_pylist():
        i = by_offset[(row["partition"], row["offset"])]
        assert row["topic"] == topic
        assert row["value"] == values[i]  # the raw bytes, untouched
        assert row["key"] == keys[i]
        assert row["stage"] == bad_kinds[i], row
    errors = {by_offset[(r["partition"], r["offset"])]: r["error"] for r in dead.to_pylist()}
    assert "expected id: int64" in errors[21]
    assert "tombstone" in errors[120]
    assert "not a JSON object" in errors[150]

    assert stats.records_in == 300
    assert stats.rows_written == len(good)
    assert stats.dead_lettered == len(bad_kinds)
    assert stats.commits >= 6  # 300 messages in batches of at most 50
    last = {p: max(o for q, o in placed if q == p) for p in range(3)}
    assert stats.offsets == {f"{topic}[{p}]": o for p, o in last.items()}
    assert all(sink.committed_offset(topic, p) == o for p, o in last.items())


def test_restart_resumes_from_the_table_not_from_kafka(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = new_topic(kafka_broker, partitions=2)
    placed = produce(kafka_broker, topic, [event(i) for i in range(120)], partitions=2)
    table = str(tmp_path / "events")
    group = f"g-{uuid.uuid4().hex[:8]}"

    def run(**kw: Any) -> lk.SinkStats:
        sink = lk.KafkaDeltaSink(topic, table, bootstrap_servers=kafka_broker.bootstrap_servers,
                                 group_id=group, consumer_config=SESSION, kafka_metadata=True,
                                 max_batch_rows=25)
        return sink.run(**kw)

    first = run(max_messages=70)
    assert first.rows_written == 70
    # rewind the group's Kafka offsets: the sink must not care, the table decides
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap_servers, group_id=group,
                             enable_auto_commit=False)
    consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(0, "", -1) for p in (0, 1)})
    consumer.close()
    placed += produce(kafka_broker, topic, [event(i) for i in range(120, 160)], partitions=2)

    second = run(stop_after_idle=1.5)
    assert second.records_in == 160 - 70
    got = where(lk.Table(table).read())
    assert len(got) == len(set(got)) == 160
    assert set(got) == set(placed)


# --- validation, schemas, decoders ------------------------------------------------------------

def test_pandera_schema_routes_failing_rows_and_keeps_the_rest(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    schema = pap.DataFrameSchema({
        "id": pap.Column(pl.Int64, pap.Check.ge(0)),
        "kind": pap.Column(pl.Utf8, pap.Check.isin(["view", "buy"])),
        "amount": pap.Column(pl.Float64, pap.Check.le(1000), nullable=True),
    })
    topic = new_topic(kafka_broker)
    values = []
    for i in range(60):
        kind = "view" if i % 2 else "buy"
        if i == 10:
            values.append(json.dumps({"id": -10, "kind": "view", "amount": 1.0}).encode())
        elif i == 20:
            values.append(json.dumps({"id": 20, "kind": "refund", "amount": 1.0}).encode())
        elif i == 30:
            values.append(json.dumps({"id": 30, "kind": "buy", "amount": 5000}).encode())
        else:
            values.append(json.dumps({"id": i, "kind": kind, "amount": i, "note": "x"}).encode())
    produce(kafka_broker, topic, values)
    table = str(tmp_path / "events")
    stats = sink_for(kafka_broker, topic, table, schema=schema).run(max_messages=60)

    data = lk.Table(table).read()
    assert sorted(data.column("id").to_pylist()) == [i for i in range(60) if i not in (10, 20, 30)]
    assert data.schema.field("amount").type == pa.float64()  # from the schema, not inferred
    assert "note" in data.column_names  # non-strict schema: extra fields are kept
    dead = lk.Table(table + "_dead_letter").read().to_pylist()
    errors = {r["offset"]: r["error"] for r in dead}
    assert set(errors) == {10, 20, 30} and {r["stage"] for r in dead} == {"validate"}
    assert "'id'" in errors[10] and "greater_than_or_equal_to(0)" in errors[10]
    assert "'kind'" in errors[20] and "refund" in errors[20]
    assert "'amount'" in errors[30] and "less_than_or_equal_to(1000)" in errors[30]
    assert (stats.rows_written, stats.dead_lettered) == (57, 3)


def test_schema_is_inferred_and_merged_and_then_holds(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = new_topic(kafka_broker)
    values = [event(i) for i in range(10)]
    values += [event(i, vip=i % 2 == 0) for i in range(10, 20)]  # a new field appears
    values += [json.dumps({"id": "x", "user": "u", "amount": 1.0}).encode()]  # id: int64 now
    values += [event(i) for i in range(21, 30)]
    produce(kafka_broker, topic, values)
    table = str(tmp_path / "events")
    sink_for(kafka_broker, topic, table, max_batch_rows=10).run(max_messages=30)

    t = lk.Table(table)
    data = t.read()
    assert t.schema.field("id").type == pa.int64()
    assert t.schema.field("vip").type == pa.bool_()
    assert data.num_rows == 29
    vip = dict(zip(data.column("id").to_pylist(), data.column("vip").to_pylist(), strict=True))
    assert vip[3] is None and vip[12] is True and vip[13] is False
    dead = lk.Table(table + "_dead_letter").read().to_pylist()
    assert [(r["offset"], r["stage"]) for r in dead] == [(20, "cast")]
    assert "expected id: int64" in dead[0]["error"]


def test_pyarrow_schema_casts_and_drops_unknown_fields(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    schema = pa.schema([
        pa.field("id", pa.int32(), nullable=False),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("name", pa.string()),
    ])
    topic = new_topic(kafka_broker)
    values = [json.dumps({"id": i, "at": f"2026-01-0{1 + i % 9}T10:00:00Z", "name": f"n{i}",
                          "ignored": [1, 2]}).encode() for i in range(8)]
    values.append(json.dumps({"at": "2026-01-01T00:00:00Z", "name": "no id"}).encode())
    values.append(json.dumps({"id": 9, "at": "yesterday", "name": "bad time"}).encode())
    produce(kafka_broker, topic, values)
    table = str(tmp_path / "typed")
    sink_for(kafka_broker, topic, table, schema=schema).run(max_messages=10)

    data = lk.Table(table).read()
    assert data.schema.names == ["id", "at", "name"]
    assert data.schema.field("id").type == pa.int32()
    assert data.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert sorted(data.column("id").to_pylist()) == list(range(8))
    # the file statistics the sink writes let filters skip files, and must not lose rows
    since = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
    late = lk.Table(table).read(filter=[("at", ">=", since), ("id", "<", 7)])
    assert sorted(late.column("id").to_pylist()) == [4, 5, 6]
    dead = lk.Table(table + "_dead_letter").read().to_pylist()
    assert sorted(r["offset"] for r in dead) == [8, 9]
    assert all(r["stage"] == "cast" for r in dead)


def test_raw_and_callable_decoders(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    topic = new_topic(kafka_broker)
    values: list[bytes | None] = [b"\x00\x01binary", None, b"a,b,c", b"1,2,3", b"oops"]
    produce(kafka_broker, topic, values, keys=[b"k0", b"k1", None, b"k3", b"k4"])

    raw = str(tmp_path / "raw")
    sink_for(kafka_broker, topic, raw, decoder="raw").run(max_messages=5)
    rows = lk.Table(raw).read().to_pylist()
    assert [(r["key"], r["value"]) for r in rows] == [
        (b"k0", b"\x00\x01binary"), (b"k1", None), (None, b"a,b,c"), (b"k3", b"1,2,3"),
        (b"k4", b"oops"),
    ]

    def csv_line(value: bytes) -> dict[str, int]:
        a, b, c = value.split(b",")
        return {"a": int(a), "b": int(b), "c": int(c)}

    decoded = str(tmp_path / "decoded")
    sink_for(kafka_broker, topic, decoded, decoder=csv_line).run(max_messages=5)
    assert lk.Table(decoded).read().to_pylist() == [{"a": 1, "b": 2, "c": 3}]
    dead = {r["offset"]: r["error"] for r in lk.Table(decoded + "_dead_letter").read().to_pylist()}
    assert set(dead) == {0, 1, 2, 4}
    assert dead[2].startswith("ValueError") and dead[4].startswith("ValueError")
    assert "tombstone" in dead[1]


def test_partitioned_table(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    values = [json.dumps({"id": i, "kind": ["view", "buy"][i % 2]}).encode() for i in range(40)]
    placed = produce(kafka_broker, topic, values, partitions=2)
    table = str(tmp_path / "by_kind")
    sink_for(kafka_broker, topic, table, partition_by="kind", kafka_metadata=True,
             max_batch_rows=15).run(max_messages=40)
    t = lk.Table(table)
    assert t.partition_by == ["kind"]
    assert sorted(where(t.read())) == sorted(placed)
    assert sorted(t.read(filter=[("kind", "=", "buy")]).column("id").to_pylist()) == \
        list(range(1, 40, 2))


def test_a_partition_committed_by_another_writer_is_not_written_twice(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """A zombie: the sink buffers a partition whose offsets another writer commits first
    (what a second sink process does after a rebalance the first one missed)."""
    from deltalake import CommitProperties, Transaction, write_deltalake

    topic = new_topic(kafka_broker)
    produce(kafka_broker, topic, [event(i) for i in range(100)])
    table = str(tmp_path / "events")
    group = f"g-{uuid.uuid4().hex[:8]}"

    def make() -> lk.KafkaDeltaSink:
        return lk.KafkaDeltaSink(topic, table, bootstrap_servers=kafka_broker.bootstrap_servers,
                                 group_id=group, consumer_config=SESSION, kafka_metadata=True,
                                 max_batch_seconds=300)

    sink = make()
    runner = threading.Thread(target=sink.run)
    runner.start()
    deadline = time.monotonic() + 30
    while sink.stats.records_in < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    # the other writer lands offsets 0..49 of partition 0, with its txn, in one commit
    other = pa.table({"id": pa.array(range(50), pa.int64()), "user": ["other"] * 50,
                      "amount": [0.0] * 50, "_kafka_topic": [topic] * 50,
                      "_kafka_partition": pa.array([0] * 50, pa.int32()),
                      "_kafka_offset": pa.array(range(50), pa.int64()),
                      "_kafka_timestamp": pa.array([None] * 50, pa.timestamp("us", tz="UTC"))})
    write_deltalake(table, other, mode="append", commit_properties=CommitProperties(
        app_transactions=[Transaction(f"lakekit-sink/{group}/{topic}/0", 49)]))
    sink.stop()
    runner.join(timeout=30)
    assert sink.stats.dropped_on_rebalance == 100  # fenced out: nothing of it was written
    assert sink.stats.rows_written == 0

    second = make().run(stop_after_idle=1.5)
    assert second.records_in == 50  # resumed after the other writer's offset 49
    data = lk.Table(table).read()
    offsets = data.column("_kafka_offset").to_pylist()
    assert sorted(offsets) == list(range(100))
    writers = dict(zip(offsets, data.column("user").to_pylist(), strict=True))
    assert all(writers[o] == "other" for o in range(50))
    assert all(writers[o] == f"u{o % 7}" for o in range(50, 100))


# --- errors -----------------------------------------------------------------------------------

def test_on_error_fail_names_the_record_and_commits_nothing_of_its_batch(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = new_topic(kafka_broker)
    produce(kafka_broker, topic, [event(i) for i in range(20)])
    produce(kafka_broker, topic, [event(20), event(21), b"{broken", event(23)])
    table = str(tmp_path / "events")
    sink = sink_for(kafka_broker, topic, table, on_error="fail", max_batch_rows=20,
                    max_batch_seconds=0.5)
    with pytest.raises(BadRecordError) as info:
        sink.run(stop_after_idle=10)
    message = str(info.value)
    assert f"topic {topic!r} partition 0 offset 22" in message
    assert "decode failed" in message
    assert lk.Table(table).read().num_rows == 20  # the first batch only: a clean version
    assert sink.committed_offset(topic, 0) == 19
    assert sink.dead_letter_url is None
    assert not Path(table + "_dead_letter").exists()


def test_invalid_configuration_is_rejected_before_connecting(tmp_path: Path) -> None:
    table = str(tmp_path / "t")
    with pytest.raises(ConfigError, match="enable_auto_commit"):
        lk.KafkaDeltaSink("t", table, bootstrap_servers="127.0.0.1:1", group_id="g",
                          consumer_config={"enable_auto_commit": True})
    with pytest.raises(ConfigError, match="on_error"):
        lk.KafkaDeltaSink("t", table, bootstrap_servers="127.0.0.1:1", group_id="g",
                          on_error="skip")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="decoder"):
        lk.KafkaDeltaSink("t", table, bootstrap_servers="127.0.0.1:1", group_id="g",
                          decoder="avro")
    with pytest.raises(ConfigError, match="group_id"):
        lk.KafkaDeltaSink("t", table, bootstrap_servers="127.0.0.1:1", group_id="")


def test_importing_lakekit_does_not_import_kafka() -> None:
    code = "import sys, lakekit; print(lakekit.KafkaDeltaSink.__name__, 'kafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["KafkaDeltaSink", "False"]


# --- stop, S3 ---------------------------------------------------------------------------------

def test_stop_from_another_thread_flushes_what_was_consumed(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    produce(kafka_broker, topic, [event(i) for i in range(90)], partitions=2)
    table = str(tmp_path / "events")
    sink = sink_for(kafka_broker, topic, table, max_batch_seconds=300)
    result: list[lk.SinkStats] = []
    runner = threading.Thread(target=lambda: result.append(sink.run()))
    runner.start()
    deadline = time.monotonic() + 30
    while sink.stats.records_in < 90 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.stats.rows_written == 0  # nothing flushed yet: 300 s batches
    sink.stop()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert result[0].rows_written == 90 and result[0].last_commit is not None
    assert result[0].last_commit.reason == "stop"
    assert sorted(lk.Table(table).read().column("id").to_pylist()) == list(range(90))


@pytest.mark.s3
def test_sink_to_s3_keeps_secrets_out_of_reprs_and_logs(
    kafka_broker: KafkaBroker, s3_bucket: str, s3_options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    values = [event(i) for i in range(40)] + [b"not json"]
    placed = produce(kafka_broker, topic, values, partitions=2)
    options = {**s3_options, "key": "AKIA-SINK-TEST", "secret": "s3cr3t-sink-value"}
    table = f"s3://{s3_bucket}/lake/events"
    caplog.set_level(logging.INFO, logger="lakekit.sink")
    sink = sink_for(kafka_broker, topic, table, storage_options=options, kafka_metadata=True,
                    max_batch_rows=15)
    stats = sink.run(stop_after_idle=1.5)

    data = lk.Table(table, storage_options=options).read()
    assert sorted(where(data)) == sorted(placed[:40])
    dead = lk.Table(f"{table}_dead_letter", storage_options=options).read()
    assert where(dead, prefix="") == [placed[40]]
    assert stats.rows_written == 40 and stats.dead_lettered == 1
    text = repr(sink) + str(stats) + caplog.text
    assert "commit v" in caplog.text
    assert "s3cr3t-sink-value" not in text and "AKIA-SINK-TEST" not in text


def test_sinks_share_one_prompt_arrow_pool_and_the_last_restores_it() -> None:
    from lakekit.sink.memory import prompt_arrow_pool

    before = pa.default_memory_pool().backend_name
    first, second = prompt_arrow_pool(), prompt_arrow_pool()
    first.__enter__()
    second.__enter__()
    inside = pa.default_memory_pool().backend_name
    first.__exit__(None, None, None)  # the first sink stops while the second runs
    assert pa.default_memory_pool().backend_name == inside
    second.__exit__(None, None, None)
    assert pa.default_memory_pool().backend_name == before
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        assert inside == before  # no jemalloc in this pyarrow: nothing changes
    else:
        assert inside == "jemalloc"


def test_time_spent_waiting_for_a_slow_commit_is_not_idle_time(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    def slow_non_negative(data: Any) -> Any:
        time.sleep(2.5)  # each batch's commit outlasts stop_after_idle
        return data.lazyframe.select(pl.col(data.key) >= 0)

    schema = pap.DataFrameSchema({"id": pap.Column(pl.Int64, pap.Check(slow_non_negative))})
    topic = new_topic(kafka_broker)
    produce(kafka_broker, topic, [event(i) for i in range(150)])
    table = str(tmp_path / "events")
    sink = sink_for(kafka_broker, topic, table, schema=schema, max_batch_rows=50,
                    consumer_config={**SESSION, "max_poll_records": 50})
    # the second batch waits for the first one's commit; counted as idle time, that wait
    # stopped the sink with the third batch unread
    stats = sink.run(stop_after_idle=1.5)
    assert sorted(lk.Table(table).read().column("id").to_pylist()) == list(range(150))
    assert stats.rows_written == 150 and stats.commits >= 2


def test_the_settings_that_name_progress_records_are_read_only(tmp_path: Path) -> None:
    sink = lk.KafkaDeltaSink("t", str(tmp_path / "t"), bootstrap_servers="127.0.0.1:1",
                             group_id="g1", kafka_metadata=True, on_error="fail")
    assert (sink.group_id, sink.kafka_metadata, sink.on_error) == ("g1", True, "fail")
    # the loop seeks by the group's app ids and the commit thread writes them: one source
    with pytest.raises(AttributeError):
        sink.group_id = "g2"  # type: ignore[misc]
    assert sink.group_id == "g1"
