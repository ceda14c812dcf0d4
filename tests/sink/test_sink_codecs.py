"""Every compression codec Kafka defines, on both record paths, and a codec library missing.

Topics are written by a real librdkafka producer (confluent-kafka) in each
``compression.type`` and by kafka-python's producer in each ``compression_type``, mixed
in one topic of several partitions; the sink (its bulk path, and kafka-python's own with
``LAKEKIT_SINK_BULK_FETCH=0``) lands every record once. Tansu stores batches as they
were produced, so the sink really decompresses each codec (checked). Tansu accepts
only message format v2, so the old formats (v0/v1) are checked on fetch buffers built by
kafka-python. With a codec's library blocked, the API raises MissingDependencyError
naming the codec, where it was met and the extra, and the CLI says so in one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _support.kafka import SESSION, produce, sink_for

import lakekit as lk
from lakekit.errors import MissingDependencyError
from lakekit.local_servers import KafkaBroker
from lakekit.sink.buffer import BatchBuffer

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
PARTITIONS = 3
PER_PRODUCER = 60


def rdkafka_produce(broker: KafkaBroker, topic: str, codec: str, values: list[bytes],
                    start: int = 0) -> list[tuple[int, int]]:
    """Send with librdkafka in ``codec``; the (partition, offset) of each value."""
    from confluent_kafka import Producer

    placed: dict[int, tuple[int, int]] = {}
    errors: list[Any] = []

    def delivered(i: int) -> Any:
        def report(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                placed[i] = (msg.partition(), msg.offset())
        return report

    producer = Producer({"bootstrap.servers": broker.bootstrap_servers,
                         "compression.type": codec, "linger.ms": 20})
    for i, value in enumerate(values):
        producer.produce(topic, value, partition=(start + i) % PARTITIONS,
                         on_delivery=delivered(i))
    assert producer.flush(30) == 0, "librdkafka did not deliver everything"
    del producer  # destroyed now, not when the broker has gone
    assert not errors, errors
    return [placed[i] for i in range(len(values))]


@pytest.fixture(scope="module")
def mixed_topic(kafka_broker: KafkaBroker) -> tuple[str, dict[int, tuple[int, int]]]:
    """One topic written in every codec by both producers: id -> (partition, offset)."""
    topic = f"codecs-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, PARTITIONS)
    where: dict[int, tuple[int, int]] = {}
    n = 0
    for client in ("librdkafka", "kafka-python"):
        for codec in CODECS:
            ids = list(range(n, n + PER_PRODUCER))
            values = [json.dumps({"id": i, "by": f"{client}/{codec}"}).encode() for i in ids]
            if client == "librdkafka":
                placed = rdkafka_produce(kafka_broker, topic, codec, values, start=n)
            else:
                placed = produce(kafka_broker, topic, values, partitions=PARTITIONS, start=n,
                                 compression_type=None if codec == "none" else codec,
                                 linger_ms=20)
            where.update(zip(ids, placed, strict=True))
            n += PER_PRODUCER
    return topic, where


@pytest.fixture
def codecs_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[int]]:
    """The compression codec of every record batch kafka-python decompresses (a spy)."""
    from kafka.record.default_records import DefaultRecordBatch

    seen: set[int] = set()
    real = DefaultRecordBatch._maybe_uncompress

    def spy(self: Any) -> None:
        if not self._decompressed and self.compression_type:
            seen.add(self.compression_type)
        real(self)

    monkeypatch.setattr(DefaultRecordBatch, "_maybe_uncompress", spy)
    yield seen


@pytest.mark.slow
@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "kafka-python"])
def test_every_codec_from_both_producers_lands_exactly_once(
    kafka_broker: KafkaBroker, mixed_topic: tuple[str, dict[int, tuple[int, int]]],
    codecs_seen: set[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool,
) -> None:
    topic, where = mixed_topic
    monkeypatch.setenv("LAKEKIT_SINK_BULK_FETCH", "1" if bulk else "0")
    sink = sink_for(kafka_broker, topic, str(tmp_path / "t"), kafka_metadata=True)
    stats = sink.run(stop_after_idle=1.0)
    assert (stats.records_in, stats.rows_written, stats.dead_lettered) == (len(where),) * 2 + (0,)
    assert not lk.Table(str(sink.dead_letter_url)).exists
    rows = lk.Table(str(tmp_path / "t")).read(
        columns=["id", "by", "_kafka_partition", "_kafka_offset"]).to_pylist()
    got = {r["id"]: (r["_kafka_partition"], r["_kafka_offset"]) for r in rows}
    assert len(rows) == len(got) == len(where)  # no id twice
    assert got == where  # each where it was produced
    assert {r["by"] for r in rows} == {f"{c}/{k}" for c in ("librdkafka", "kafka-python")
                                       for k in CODECS}
    assert codecs_seen == {1, 2, 3, 4}  # gzip, snappy, lz4, zstd batches were decompressed


# --- message formats v0 / v1 / v2 on raw fetch buffers ------------------------------------

def fetch_buffer(magic: int, codec: int) -> tuple[bytes, list[tuple[int, bytes | None]]]:
    """Two compressed batches (offsets 0-4, 5-9) in message format ``magic``."""
    from kafka.record.memory_records import MemoryRecordsBuilder

    out, records = b"", []
    for base in (0, 5):
        builder = MemoryRecordsBuilder(magic, codec, 1 << 20, offset=base)
        for i in range(base, base + 5):
            value = None if i == 7 else b'{"id": %d, "pad": "%s"}' % (i, b"x" * 50 * i)
            builder.append(1_700_000_000_000 + i, b"k%d" % i, value,
                           [] if magic == 2 else None)
            records.append((i, value))
        builder.close()
        out += bytes(builder.buffer())
    return out, records


def read_fetch(buffer: bytes, *, bulk: bool, fetch_offset: int = 0) -> list[tuple[int, Any]]:
    """The (offset, value) of every record, read as the sink's consumer reads a fetch."""
    from kafka import TopicPartition
    from kafka.consumer.fetcher import Fetcher
    from kafka.record.memory_records import MemoryRecords

    from lakekit.sink.codecs import guard_codecs
    from lakekit.sink.fetch import _bulk_class

    # what guard_codecs wraps: the PartitionRecords of a consumer's fetcher
    stock = Fetcher.PartitionRecords
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(
        PartitionRecords=_bulk_class(stock) if bulk else stock))
    assert guard_codecs(consumer)
    part = consumer._fetcher.PartitionRecords(fetch_offset, TopicPartition("legacy", 4),
                                              MemoryRecords(buffer))
    buffer_ = BatchBuffer()
    buffer_.add(("legacy", 4), part.take(None))
    batch = buffer_.take()
    return [(int(batch.offsets[i]), batch.value(i)) for i in range(len(batch))]


FORMATS = [(magic, codec) for magic in (0, 1, 2) for codec in (1, 2, 3, 4)
           if not (magic < 2 and codec == 4)]  # zstd exists only in format v2


@pytest.mark.parametrize("magic, codec", FORMATS)
def test_every_codec_of_every_message_format_on_both_paths(magic: int, codec: int) -> None:
    buffer, records = fetch_buffer(magic, codec)
    assert read_fetch(buffer, bulk=True) == read_fetch(buffer, bulk=False) == records
    assert read_fetch(buffer, bulk=True, fetch_offset=3) == records[3:]


@pytest.mark.parametrize("magic, codec, module, named", [
    (2, 2, "snappy", "snappy"), (2, 3, "lz4", "lz4"), (2, 4, "zstd", "zstd"),
    (1, 2, "snappy", "snappy"), (0, 3, "xxhash", "lz4 (message format v0)"),
])
@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "kafka-python"])
def test_a_missing_codec_library_names_codec_partition_offset_and_extra(
    monkeypatch: pytest.MonkeyPatch, magic: int, codec: int, module: str, named: str,
    bulk: bool,
) -> None:
    import kafka.codec

    buffer, _ = fetch_buffer(magic, codec)
    monkeypatch.setattr(kafka.codec, module, None)  # as kafka.codec binds a missing one
    with pytest.raises(MissingDependencyError) as info:
        read_fetch(buffer, bulk=bulk)
    assert str(info.value).startswith(f"records of legacy[4] at offset 0 are {named}-compressed")
    assert "pip install 'lakekit[kafka]'" in str(info.value)


# --- a codec library missing at run time, through the API and the CLI ---------------------

@pytest.mark.slow
@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "kafka-python"])
def test_a_missing_codec_stops_the_sink_before_any_commit(
    kafka_broker: KafkaBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool,
) -> None:
    import kafka.codec

    topic = f"nosnappy-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 2)
    gzip_at = rdkafka_produce_to(kafka_broker, topic, "gzip", 0, range(0, 20))
    before = rdkafka_produce_to(kafka_broker, topic, "gzip", 1, range(20, 30))
    snappy_at = rdkafka_produce_to(kafka_broker, topic, "snappy", 1, range(30, 40))
    monkeypatch.setenv("LAKEKIT_SINK_BULK_FETCH", "1" if bulk else "0")
    table = str(tmp_path / "t")
    group = f"g-{uuid.uuid4().hex[:8]}"

    def run() -> lk.SinkStats:
        sink = lk.KafkaDeltaSink(topic, table, bootstrap_servers=kafka_broker.bootstrap_servers,
                                 group_id=group, consumer_config=SESSION, kafka_metadata=True)
        return sink.run(stop_after_idle=1.0)

    with monkeypatch.context() as blocked:
        blocked.setattr(kafka.codec, "snappy", None)
        with pytest.raises(MissingDependencyError) as info:
            run()
    assert str(info.value) == (
        f"records of {topic}[1] at offset {snappy_at[0]} are snappy-compressed, and the "
        "python-snappy package that decompresses them is not installed; install it with: "
        "pip install 'lakekit[kafka]' (nothing of this batch was committed)")
    assert not lk.Table(table).exists and not lk.Table(f"{table}_dead_letter").exists
    stats = run()  # with the library back, the next run lands everything once
    assert (stats.rows_written, stats.dead_lettered) == (40, 0)
    got = lk.Table(table).read(columns=["_kafka_partition", "_kafka_offset"])
    assert sorted(zip(*got.to_pydict().values(), strict=True)) == sorted(
        [(0, o) for o in gzip_at] + [(1, o) for o in before + snappy_at])


def rdkafka_produce_to(broker: KafkaBroker, topic: str, codec: str, partition: int,
                       ids: range) -> list[int]:
    """Send ``{"id": i}`` for ``ids`` to one partition with librdkafka; their offsets."""
    from confluent_kafka import Producer

    offsets: list[int] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers,
                         "compression.type": codec, "linger.ms": 20})
    for i in ids:
        producer.produce(topic, json.dumps({"id": i}).encode(), partition=partition,
                         on_delivery=lambda err, msg: offsets.append(
                             -1 if err is not None else msg.offset()))
    assert producer.flush(30) == 0
    del producer
    assert len(offsets) == len(ids) and min(offsets) >= 0
    return sorted(offsets)


BLOCKED_CLI = ("import sys; sys.modules['snappy'] = None; "  # before kafka.codec binds it
               "from lakekit.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.slow
def test_the_cli_exits_2_with_one_line_when_a_codec_library_is_missing(
    kafka_broker: KafkaBroker, tmp_path: Path,
) -> None:
    topic = f"nosnappy-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 2)
    rdkafka_produce_to(kafka_broker, topic, "gzip", 0, range(0, 10))
    rdkafka_produce_to(kafka_broker, topic, "gzip", 1, range(10, 20))  # read, then the error
    snappy_at = rdkafka_produce_to(kafka_broker, topic, "snappy", 1, range(20, 30))
    table = str(tmp_path / "t")
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, "sink", "--topic", topic,
         "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--group-id", f"g-{uuid.uuid4().hex[:8]}", "--table", table,
         "--consumer-option", "session_timeout_ms=3000", "--stop-after-idle", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    # nothing else went wrong on the way out (closing must not try to flush the batch)
    assert not [line for line in proc.stderr.splitlines()
                if "fail" in line.lower() or "error" in line.lower()], proc.stderr
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith("lakekit sink: records of")]
    assert errors == [proc.stderr.splitlines()[-1]] == [
        f"lakekit sink: records of {topic}[1] at offset {snappy_at[0]} are snappy-compressed, "
        "and the python-snappy package that decompresses them is not installed; install it "
        "with: pip install 'lakekit[kafka]' (nothing of this batch was committed)"]
    assert not lk.Table(table).exists


def test_an_unsupported_codec_error_reaching_the_loop_still_names_codec_and_extra() -> None:
    """Where the guard could not be installed (another kafka-python layout)."""
    from kafka.errors import UnsupportedCodecError

    from lakekit.sink.codecs import raise_if_codec_missing

    with pytest.raises(MissingDependencyError, match=r"^records of a,b are lz4-compressed, and "
                       r"the lz4 package .* pip install 'lakekit\[kafka\]'"):
        raise_if_codec_missing(UnsupportedCodecError(
            "Libraries for lz4 compression codec not found"), ["a", "b"])
    raise_if_codec_missing(UnsupportedCodecError("Unrecognized compression type: 7"), ["a"])
