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


# --- raw fetch buffers, no broker ---------------------------------------------------------

def fetch_buffer(magic: int, compression: int) -> tuple[bytes, list[tuple[Any, ...]]]:
    """Two record batches (offsets 0-4 and 5-9) and the records they hold."""
    from kafka.record.memory_records import MemoryRecordsBuilder

    out, records = b"", []
    for base in (0, 5):
        builder = MemoryRecordsBuilder(magic, compression, 1 << 20, offset=base)
        for i in range(base, base + 5):
            key = None if i % 2 else b"k%d" % i
            value = None if i == 7 else (b"" if i == 8 else b'{"id": %d}' % i)
            builder.append(1_700_000_000_000 + i, key, value, [] if magic == 2 else None)
            records.append((i, 1_700_000_000_000 + i, key, value))
        builder.close()
        out += bytes(builder.buffer())
    return out, records


def partition_records(buffer: bytes, fetch_offset: int, bulk: bool, **options: Any) -> Any:
    from kafka import TopicPartition
    from kafka.consumer.fetcher import Fetcher
    from kafka.record.memory_records import MemoryRecords

    from lakekit.sink.fetch import _bulk_class

    cls = _bulk_class(Fetcher.PartitionRecords) if bulk else Fetcher.PartitionRecords
    return cls(fetch_offset, TopicPartition("t", 0), MemoryRecords(buffer), **options)


def taken(part: Any, sizes: list[int | None]) -> list[tuple[Any, ...]]:
    buffer = BatchBuffer()
    for n in sizes:
        buffer.add(("t", 0), part.take(n))
    batch = buffer.take()
    return [(int(batch.offsets[i]), int(batch.timestamps[i]), batch.keys[i], batch.value(i))
            for i in range(len(batch))]


@pytest.mark.parametrize("magic, compression", [(2, 0), (2, 1), (1, 0), (1, 1), (0, 0)])
def test_bulk_runs_match_kafka_python_on_every_message_format(magic: int,
                                                              compression: int) -> None:
    buffer, records = fetch_buffer(magic, compression)
    if magic == 0:  # no timestamps in format v0
        records = [(o, -1, k, v) for o, _, k, v in records]
    stock = partition_records(buffer, 3, bulk=False)
    bulk = partition_records(buffer, 3, bulk=True)
    assert taken(bulk, [4, 1, None]) == taken(stock, [None]) == records[3:]
    assert bulk.next_fetch_offset == stock.next_fetch_offset == 10


def test_a_fetch_past_a_batchs_records_moves_past_its_compacted_tail() -> None:
    """Offsets 5-9 written, the batch's last offset says 14 (compaction removed 10-14):
    a fetch from 12 returns nothing and must move on to 15, not fetch 12 again."""
    import struct

    from kafka.record.util import calc_crc32c

    buffer, _ = fetch_buffer(2, 0)
    second = bytearray(buffer[12 + struct.unpack_from(">i", buffer, 8)[0]:])
    base = struct.unpack_from(">q", second, 0)[0]
    struct.pack_into(">i", second, 23, 14 - base)  # last offset delta
    struct.pack_into(">I", second, 17, calc_crc32c(bytes(second[21:])))
    for bulk in (False, True):
        part = partition_records(bytes(second), 12, bulk=bulk)
        assert taken(part, [None]) == []
        assert part.next_fetch_offset == 15, bulk


@pytest.mark.parametrize("check_crcs", [True, False])
def test_corrupt_batches_raise_kafka_pythons_corrupt_record_error(check_crcs: bool) -> None:
    from kafka.errors import CorruptRecordError

    buffer, _ = fetch_buffer(2, 0)
    broken = bytearray(buffer)
    broken[61] = 0xFE  # the first record's length varint: now far longer than the batch
    broken[62] = 0x7F
    part = partition_records(bytes(broken), 0, bulk=True, check_crcs=check_crcs)
    with pytest.raises(CorruptRecordError):
        part.take(None)


def test_transaction_markers_are_skipped_like_kafka_python_does(kafka_broker: KafkaBroker
                                                                 ) -> None:
    """A transactional producer leaves control batches (commit / abort markers) in the log."""
    from kafka import KafkaProducer

    topic = f"fetch-txn-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers,
                             transactional_id=f"tx-{topic}")
    producer.init_transactions()
    for commit in (False, True, True):
        producer.begin_transaction()
        for i in range(5):
            producer.send(topic, b'{"id": %d}' % i, partition=0)
        producer.flush()
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()
    plain, _ = consume(kafka_broker, topic, 15, bulk=False, max_records=4)
    bulk, _ = consume(kafka_broker, topic, 15, bulk=True, max_records=4)
    assert bulk == plain
    offsets = [o for o, *_ in bulk]
    assert len(offsets) == 15 and offsets != list(range(15))  # markers take offsets
