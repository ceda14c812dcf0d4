"""Kafka record batches mutated byte by byte, fed to the sink's bulk record decoder.

The sink parses the v2 record batch format itself (:mod:`lakekit.sink.fetch`), so every
malformed fetch must end in kafka-python's ``CorruptRecordError`` naming the topic, the
partition and an offset (the sink's consume loop turns it into a ``BrokerError``), never
another exception, a hang, or records that kafka-python's own decoder would not give for
the same bytes. kafka-python's ``PartitionRecords`` (the path the bulk decoder replaces,
with the same ``check_crcs``) is the reference: the bulk path may reject a fetch
kafka-python accepts (its checks are stricter), but whatever it yields before an error is
exactly what kafka-python yields, in order.

Batches are built by kafka-python's own ``MemoryRecordsBuilder`` (its
``DefaultRecordBatchBuilder``) with every codec; hypothesis replaces, inserts, deletes
bytes and truncates, deterministically (``derandomize``) and in bounded numbers.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(120)

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TOPIC, PARTITION = "events", 3
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)


@cache
def fetch(codec: int) -> bytes:
    """Three v2 batches (offsets 100-104, 105-111, 112-113): keys, null keys, null and
    empty values, headers, one timestamp out of order."""
    from kafka.record.memory_records import MemoryRecordsBuilder

    out = b""
    offset = 100
    for n in (5, 7, 2):
        builder = MemoryRecordsBuilder(2, codec, 1 << 20)
        for i in range(offset, offset + n):
            key = None if i % 3 else b"k%d" % i
            value = None if i == 106 else (b"" if i == 108 else b'{"id": %d, "t": "x\\n"}' % i)
            headers = [("h", b"v%d" % i)] if i % 4 == 0 else []
            builder.append(1_700_000_000_000 + (i * 7919) % 101, key, value, headers)
        builder.close()
        batch = bytearray(builder.buffer())
        batch[:8] = offset.to_bytes(8, "big")  # the base offset, as a broker sets it
        out += batch
        offset += n
    return out


def partition_records(buffer: bytes, *, bulk: bool, check_crcs: bool,
                      fetch_offset: int = 0) -> Any:
    from kafka import TopicPartition
    from kafka.consumer.fetcher import Fetcher
    from kafka.record.memory_records import MemoryRecords

    from lakekit.sink.fetch import _bulk_class

    cls = _bulk_class(Fetcher.PartitionRecords) if bulk else Fetcher.PartitionRecords
    return cls(fetch_offset, TopicPartition(TOPIC, PARTITION), MemoryRecords(buffer),
               check_crcs=check_crcs)


def rows_of(item: Any) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(offset, timestamp, key, value) of a ConsumerRecord or of each record of a run."""
    from lakekit.sink.fetch import RecordRun

    if not isinstance(item, RecordRun):  # no timestamp (format v0): -1 in a run
        return [(item.offset, -1 if item.timestamp is None else item.timestamp, item.key,
                 item.value)]
    data = bytes(item.data)
    values = [None if n < 0 else data[s:s + n]
              for s, n in zip(item.value_starts.tolist(), item.value_lengths.tolist(),
                              strict=True)]
    return list(zip(item.offsets.tolist(), item.timestamps.tolist(), item.keys(), values,
                    strict=True))


def drain(part: Any, sizes: tuple[int | None, ...] = (None,)) -> tuple[list[Any],
                                                                      BaseException | None]:
    """Every row ``take`` gives (at most 20 calls), and the exception that ended it."""
    rows: list[Any] = []
    for i in range(20):
        if part.record_iterator is None and part._next_inline_exception is None:
            return rows, None  # drained (kafka-python's take() fails after that)
        try:
            got = part.take(sizes[i % len(sizes)])
        except Exception as exc:  # the property is about which exceptions
            return rows, exc
        if not got:
            return rows, None
        for item in got:
            rows += rows_of(item)
    raise AssertionError("take() kept returning records")


OFFSET_NAMED = re.compile(r"offset -?\d+")


def check(buffer: bytes, *, check_crcs: bool, fetch_offset: int = 0,
          sizes: tuple[int | None, ...] = (None,)) -> None:
    from kafka.errors import CorruptRecordError

    stock_rows, stock_error = drain(partition_records(buffer, bulk=False, check_crcs=check_crcs,
                                                      fetch_offset=fetch_offset))
    bulk_rows, bulk_error = drain(partition_records(buffer, bulk=True, check_crcs=check_crcs,
                                                    fetch_offset=fetch_offset), sizes)
    if bulk_error is None:
        assert stock_error is None, f"kafka-python rejects what lakekit accepts: {stock_error!r}"
        assert bulk_rows == stock_rows
        return
    assert isinstance(bulk_error, CorruptRecordError), repr(bulk_error)
    message = str(bulk_error)
    assert f"topic='{TOPIC}'" in message and f"partition={PARTITION}" in message, message
    assert OFFSET_NAMED.search(message), message
    # what came before the error is what kafka-python gives, in order
    assert bulk_rows == stock_rows[:len(bulk_rows)]


def test_the_unmutated_fetches_decode_like_kafka_python() -> None:
    for codec in CODECS.values():
        for check_crcs in (True, False):
            for start in (0, 103, 110, 114):
                check(fetch(codec), check_crcs=check_crcs, fetch_offset=start, sizes=(3, None))
        stock, error = drain(partition_records(fetch(codec), bulk=False, check_crcs=True))
        assert error is None and [r[0] for r in stock] == list(range(100, 114))
        bulk, error = drain(partition_records(fetch(codec), bulk=True, check_crcs=True), (3,))
        assert error is None and bulk == stock


mutations = st.lists(st.tuples(st.sampled_from(["replace", "insert", "delete"]),
                               st.integers(0, 10_000), st.integers(0, 255)),
                     min_size=1, max_size=4)


def mutate(buffer: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(buffer)
    for kind, at, byte in edits:
        at %= len(out) + 1
        if kind == "insert":
            out[at:at] = bytes([byte])
        elif at < len(out):
            if kind == "replace":
                out[at] = byte
            else:
                del out[at]
    return bytes(out)


@pytest.mark.parametrize("codec", list(CODECS.values()), ids=list(CODECS))
@pytest.mark.parametrize("check_crcs", [True, False], ids=["crc", "no-crc"])
@FUZZ
# found by this test (they apply to every codec and CRC setting):
# the error named no offset (a batch header cut short)
@example(edits=[("insert", 0, 0)], cut=None, fetch_offset=0)
# a record whose headers and length disagree was accepted (no CRC check)
@example(edits=[("replace", 9331, 0)], cut=None, fetch_offset=0)
# gzip: zlib.error escaped raw; a batch claiming 0 records was skipped, not rejected
@example(edits=[("replace", 71, 0)], cut=None, fetch_offset=0)
@example(edits=[("replace", 60, 0)], cut=None, fetch_offset=0)
# a header key that is not UTF-8 (kafka-python rejects it; no CRC check)
@example(edits=[("replace", 92, 0xFF)], cut=None, fetch_offset=0)
# batch offsets going backwards: batches were silently skipped
@example(edits=[("replace", 0, 1)], cut=None, fetch_offset=112)
@given(edits=mutations, cut=st.none() | st.integers(0, 10_000),
       fetch_offset=st.sampled_from([0, 104, 112]))
def test_mutated_batches_are_rejected_or_decoded_like_kafka_python(
        codec: int, check_crcs: bool, edits: list[tuple[str, int, int]], cut: int | None,
        fetch_offset: int) -> None:
    buffer = mutate(fetch(codec), edits)
    if cut is not None:
        buffer = buffer[:cut % (len(buffer) + 1)]
    check(buffer, check_crcs=check_crcs, fetch_offset=fetch_offset, sizes=(2, None))


@cache
def legacy_fetch(magic: int, codec: int) -> bytes:
    """Message sets of the formats before Kafka 0.11 (v0, v1): offsets 0-4 and 5-9 (one
    wrapper message each when compressed)."""
    from kafka.record.memory_records import MemoryRecordsBuilder

    out = b""
    for base in (0, 5):
        builder = MemoryRecordsBuilder(magic, codec, 1 << 20, offset=base)
        for i in range(base, base + 5):
            key = None if i % 2 else b"k%d" % i
            builder.append(1_700_000_000_000 + i, key, None if i == 7 else b'{"id": %d}' % i,
                           None)
        builder.close()
        out += bytes(builder.buffer())
    return out


@pytest.mark.parametrize("codec", [0, 1, 2, 3], ids=["none", "gzip", "snappy", "lz4"])
@pytest.mark.parametrize("magic", [0, 1])
@settings(FUZZ, max_examples=60)
# found by this test: a damaged compressed message set raised the codec library's own
# error (zlib.error, snappy's UncompressError, lz4's RuntimeError, BadGzipFile)
@example(edits=[("replace", 44, 0)], cut=None)
# the wrapper message's CRC was not checked (kafka-python rejects the set, lakekit read it)
@example(edits=[("replace", 12, 0)], cut=None)
@given(edits=mutations, cut=st.none() | st.integers(0, 10_000))
def test_mutated_legacy_message_sets_are_rejected_or_decoded_like_kafka_python(
        magic: int, codec: int, edits: list[tuple[str, int, int]], cut: int | None) -> None:
    buffer = mutate(legacy_fetch(magic, codec), edits)
    if cut is not None:
        buffer = buffer[:cut % (len(buffer) + 1)]
    check(buffer, check_crcs=True, sizes=(3, None))
