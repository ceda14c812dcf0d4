"""The sink's bulk record decoding gives exactly what kafka-python's own path gives.

Messages cover what record batches can hold: keys and null keys, null values
(tombstones), empty values, headers, raw newlines inside values, gzip-compressed and
plain batches, batches of one record and of hundreds; consumption starts in the middle
of a compressed batch and polls take fewer records than a batch holds.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from lakekit.local_servers import KafkaBroker
from lakekit.sink.buffer import BatchBuffer
from lakekit.sink.fetch import install_bulk_records

pytestmark = pytest.mark.kafka


def tricky_messages(n: int) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    out: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    for i in range(n):
        key = None if i % 3 and i % 17 != 5 else f"key-{i}".encode()
        value: bytes | None = json.dumps({"id": i, "text": "é" * (i % 300)}).encode()
        if i % 17 == 5:
            value = None
        elif i % 23 == 7:
            value = b""
        elif i % 29 == 11:
            value = b'{"id": %d,\n "multi": "line"}' % i
        headers = [("h", b"\n\x00" * (i % 4))] if i % 5 == 0 else []
        out.append((key, value, headers))
    return out


def produce(broker: KafkaBroker, topic: str, messages: list[Any]) -> None:
    from kafka import KafkaProducer

    for compression, batch_size, part in (("gzip", 16384, messages[: len(messages) // 2]),
                                          (None, 1, messages[len(messages) // 2:][:40]),
                                          (None, 1 << 20, messages[len(messages) // 2:][40:])):
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=50,
                                 compression_type=compression, batch_size=batch_size)
        for key, value, headers in part:
            producer.send(topic, key=key, value=value, headers=headers, partition=0)
        producer.flush()
        producer.close()


def consume(broker: KafkaBroker, topic: str, total: int, *, bulk: bool, start: int = 0,
            max_records: int = 37) -> tuple[list[tuple[Any, ...]], bool]:
    """(offset, timestamp, key, value) of every message from ``start``, via a BatchBuffer."""
    from kafka import KafkaConsumer, TopicPartition

    config = {"bootstrap_servers": broker.bootstrap_servers, "enable_auto_commit": False,
              "group_id": None, "auto_offset_reset": "earliest"}
    consumer = KafkaConsumer(**config)
    installed = install_bulk_records(consumer, config) if bulk else False
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, start)
    end = start + total  # (Tansu's end_offsets are approximate)
    buffer = BatchBuffer()
    got = 0
    for _ in range(2000):
        if got >= total:
            break
        for recs in consumer.poll(timeout_ms=500, max_records=max_records).values():
            added = buffer.add((topic, 0), recs)
            assert added <= max_records
            got += added
    consumer.close()
    batch = buffer.take()
    assert len(batch) == got == end - start
    rows = [(int(batch.offsets[i]), int(batch.timestamps[i]), batch.keys[i], batch.value(i))
            for i in range(len(batch))]
    return rows, installed


def test_bulk_records_match_kafka_pythons_own(kafka_broker: KafkaBroker) -> None:
    topic = f"fetch-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    messages = tricky_messages(600)
    produce(kafka_broker, topic, messages)
    plain, _ = consume(kafka_broker, topic, 600, bulk=False)
    bulk, installed = consume(kafka_broker, topic, 600, bulk=True)
    assert installed
    assert bulk == plain
    assert [(k, v) for _, _, k, v in bulk] == [(k, v) for k, v, _ in messages]
    # start inside a gzip batch, and take one record at a time across batch boundaries
    mid_plain, _ = consume(kafka_broker, topic, 477, bulk=False, start=123, max_records=1000)
    mid_bulk, _ = consume(kafka_broker, topic, 477, bulk=True, start=123, max_records=1000)
    assert mid_bulk == mid_plain == plain[123:]
    ones, _ = consume(kafka_broker, topic, 310, bulk=True, start=290, max_records=1)
    assert ones == plain[290:]


def test_bulk_records_can_be_turned_off(kafka_broker: KafkaBroker,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEKIT_SINK_BULK_FETCH", "0")
    topic = f"fetch-off-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    produce(kafka_broker, topic, tricky_messages(60))
    rows, installed = consume(kafka_broker, topic, 60, bulk=True)
    assert not installed and len(rows) == 60
    assert os.environ["LAKEKIT_SINK_BULK_FETCH"] == "0"
