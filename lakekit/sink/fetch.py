"""Bulk record decoding for the sink's kafka-python consumer.

kafka-python turns every message into a ``ConsumerRecord`` in pure Python (about ten
microseconds each, most of a consumer's CPU). The sink only needs offsets, timestamps,
keys and values, so on its own consumer it swaps in a ``PartitionRecords`` subclass whose
iterator yields one :class:`RecordRun` per fetched partition: the record batches'
bytes and numpy arrays of offsets, timestamps and value positions, decoded a batch at a
time. kafka-python still does everything else: the group protocol, fetching, CRC checks
of each batch, decompression and position tracking.

A malformed fetch ends in ``CorruptRecordError`` naming topic, partition and batch offset
(the consume loop makes it a :class:`~lakekit.errors.BrokerError`); the checks are at least
kafka-python's own, so no record it would reject is given (tests/fuzz/ compares the two).

It is used only where it is known to fit (kafka-python 3, message format v2,
``isolation_level="read_uncommitted"``); otherwise, or with ``LAKEKIT_SINK_BULK_FETCH=0``,
the consumer is left as it is.
"""

from __future__ import annotations

import logging
import os
import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakekit._deps import import_if_available, import_optional
from lakekit.sink.codecs import codec_context, codec_missing_from

__all__ = ["RecordRun", "install_bulk_records"]

log = logging.getLogger("lakekit.sink")

_HEADER = struct.Struct(">qiibIhiqqqhii")  # a v2 record batch header (61 bytes)
_LOG_OVERHEAD = 12  # base offset and batch length
_CODEC = 0x07
_CONTROL = 0x20
_LOG_APPEND_TIME = 0x08
_RUN_RECORDS = 10_000  # records decoded at a time (a fetch is usually fewer)


@dataclass
class RecordRun:
    """Consecutive records of one partition.

    Record ``i`` has value ``data[value_starts[i]:][:value_lengths[i]]`` (length -1: a
    null value); keys likewise.
    """

    data: bytes
    offsets: np.ndarray
    timestamps: np.ndarray
    key_starts: np.ndarray
    key_lengths: np.ndarray
    value_starts: np.ndarray
    value_lengths: np.ndarray
    next_offset: int
    """The fetch position after this run (past compacted-away offsets at a batch's end)."""
    epochs: np.ndarray | None = None
    """The leader epoch of each record's batch."""

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def offset(self) -> int:
        return int(self.offsets[0])

    def keys(self) -> list[bytes | None]:
        if not len(self.key_lengths) or int(self.key_lengths.max()) < 0:
            return [None] * len(self)
        data = self.data
        return [data[s:s + n] if n >= 0 else None
                for s, n in zip(self.key_starts.tolist(), self.key_lengths.tolist(), strict=True)]

    def split(self, k: int) -> tuple[RecordRun, RecordRun]:
        """The first ``k`` records and the rest."""
        return (self._rows(slice(None, k), int(self.offsets[k - 1]) + 1),
                self._rows(slice(k, None), self.next_offset))

    def _rows(self, rows: slice, next_offset: int) -> RecordRun:
        return RecordRun(self.data, self.offsets[rows], self.timestamps[rows],
                         self.key_starts[rows], self.key_lengths[rows], self.value_starts[rows],
                         self.value_lengths[rows], next_offset,
                         None if self.epochs is None else self.epochs[rows])


class _Corrupt(ValueError):
    pass


def _record_starts(buf: bytes, pos: int, end: int, count: int, starts: array,
                   lengths: array) -> None:
    """Append the body start and length of each of ``count`` records in ``buf[pos:end]``."""
    for _ in range(count):
        if pos >= end:
            raise _Corrupt(f"{count} records expected, the batch ends after fewer")
        b = buf[pos]
        if b < 0x80:
            raw = b
            pos += 1
        elif pos + 1 < end and buf[pos + 1] < 0x80:
            raw = (b & 0x7F) | (buf[pos + 1] << 7)
            pos += 2
        else:
            raw, shift = 0, 0
            while True:
                if pos >= end:
                    raise _Corrupt("a record length runs past the end of its batch")
                b = buf[pos]
                raw |= (b & 0x7F) << shift
                pos += 1
                if b < 0x80:
                    break
                shift += 7
                if shift > 63:
                    raise _Corrupt("a record length is not a valid varint")
        length = (raw >> 1) ^ -(raw & 1)
        if length < 0:
            raise _Corrupt(f"negative record length {length}")
        starts.append(pos)
        lengths.append(length)
        pos += length
    if pos != end:
        raise _Corrupt(f"{end - pos} bytes left after the batch's {count} records")


def _varints(u8: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zigzag varints at ``pos`` (vectorised): their values and the positions after them."""
    raw = np.zeros(len(pos), dtype=np.uint64)
    width = np.zeros(len(pos), dtype=np.int64)
    active = np.ones(len(pos), dtype=bool)
    last = len(u8) - 1
    for k in range(10):
        byte = u8[np.minimum(pos + k, last)].astype(np.uint64)
        raw |= np.where(active, (byte & 0x7F) << np.uint64(7 * k), np.uint64(0))
        width += active
        active &= byte >= 0x80
        if not active.any():
            break
    else:
        raise _Corrupt("a varint longer than 10 bytes")
    value = (raw >> np.uint64(1)).astype(np.int64) ^ -(raw & np.uint64(1)).astype(np.int64)
    return value, pos + width


def _check_headers(data: Any, u8: np.ndarray, pos: np.ndarray, body_end: np.ndarray) -> None:
    """Check, as kafka-python does, that records' headers (at ``pos``) end where the records
    do and have UTF-8 keys; vectorised: a step per header index, over records that far."""
    count, pos = _varints(u8, pos)
    if bool(np.any((count < 0) | (2 * count > body_end - pos))):  # 2 bytes a header at least
        raise _Corrupt("a record's header count does not fit in the record")
    rows = np.flatnonzero(count)
    key_starts: list[np.ndarray] = []
    key_ends: list[np.ndarray] = []
    k = 0
    while len(rows):
        at, end = pos[rows], body_end[rows]
        key_len, at = _varints(u8, at)
        if bool(np.any((key_len < 0) | (key_len > end - at))):
            raise _Corrupt("a record header's key does not fit in its record")
        key_starts.append(at)
        key_ends.append(at + key_len)
        value_len, at = _varints(u8, at + key_len)
        at = at + np.maximum(value_len, 0)
        if bool(np.any((value_len < -1) | (at > end))):
            raise _Corrupt("a record header's value does not fit in its record")
        pos[rows] = at
        k += 1
        rows = rows[count[rows] > k]
    if bool(np.any(pos != body_end)):
        raise _Corrupt("a record's fields do not add up to its length")
    if key_starts:
        _check_utf8(data, u8, np.concatenate(key_starts), np.concatenate(key_ends))


def _check_utf8(data: Any, u8: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
    """Header keys are strings: ASCII ones pass at once, the others are decoded."""
    lengths = ends - starts
    starts, lengths = starts[lengths > 0], lengths[lengths > 0]
    if not len(starts):
        return
    firsts = np.cumsum(lengths) - lengths  # where each key's bytes start among all keys'
    index = np.arange(int(lengths.sum())) + np.repeat(starts - firsts, lengths)
    high = np.add.reduceat((u8[index] >= 0x80).astype(np.int32), firsts)
    for i in np.flatnonzero(high).tolist():
        try:
            bytes(data[int(starts[i]):int(starts[i] + lengths[i])]).decode("utf-8")
        except UnicodeDecodeError:
            raise _Corrupt("a record header's key is not UTF-8") from None


Segment = tuple[int, int, int, int, int, int, int, int, int]
"""A v2 record batch's records in a buffer: (start, end, count, base offset, first
timestamp, max timestamp, attributes, next offset, leader epoch)."""


def decode_batches(data: Any, batches: list[Segment]) -> RecordRun:
    """Decode the records of record batches (uncompressed) that lie in ``data``."""
    starts, lengths = array("q"), array("q")
    for start, end, count, *_ in batches:
        _record_starts(data, start, end, count, starts, lengths)
    pos = np.frombuffer(starts, dtype=np.int64)
    body_end = pos + np.frombuffer(lengths, dtype=np.int64)
    u8 = np.frombuffer(data, dtype=np.uint8)
    info = np.array([b[3:7] for b in batches], dtype=np.int64).reshape(-1, 4)
    counts = [b[2] for b in batches]
    base_offset, first_ts, max_ts, attrs = (np.repeat(info[:, i], counts) for i in range(4))
    _, p = _varints(u8, pos)  # record attributes (unused)
    ts_delta, p = _varints(u8, p)
    offset_delta, p = _varints(u8, p)
    key_len, key_start = _varints(u8, p)
    if bool(np.any((key_len < -1) | (key_len >= body_end - key_start))):
        raise _Corrupt("a key does not fit in its record")
    value_len, value_start = _varints(u8, key_start + np.maximum(key_len, 0))
    # ">=": a record ends with its header count, at least one byte after the value
    if bool(np.any((value_len < -1) | (value_len >= body_end - value_start))):
        raise _Corrupt("a value does not fit in its record")
    _check_headers(data, u8, value_start + np.maximum(value_len, 0), body_end)
    offsets = base_offset + offset_delta
    after = np.repeat(np.array([b[7] for b in batches], dtype=np.int64), counts)
    if bool(np.any((offset_delta < 0) | (offsets >= after))) or bool(
            np.any(np.diff(offsets) <= 0)):
        raise _Corrupt("record offsets are outside their batch or not increasing")
    timestamps = np.where((attrs & _LOG_APPEND_TIME) != 0, max_ts, first_ts + ts_delta)
    epochs = np.repeat(np.array([b[8] for b in batches], dtype=np.int64), counts)
    return RecordRun(data, offsets, timestamps, key_start, key_len,
                     value_start, value_len, int(batches[-1][7]), epochs)


class _Runs(list):  # type: ignore[type-arg,unused-ignore]
    """A poll's runs of one partition; ``len`` counts records, as kafka-python expects."""

    def __len__(self) -> int:
        return sum(RecordRun.__len__(r) for r in self)

    def __bool__(self) -> bool:
        return list.__len__(self) > 0


def _bulk_class(base: type) -> type:
    class BulkPartitionRecords(base):  # type: ignore[misc,valid-type,unused-ignore]
        """kafka-python's PartitionRecords, yielding :class:`RecordRun` s."""

        _carry: RecordRun | None = None
        _at = -1  # the base offset of the batch being read, for errors
        _walked_to = -1  # the offset after the last whole batch walked
        next_fetch_offset: int  # kafka-python's, set in its __init__

        def _maybe_skip_record(self, record: Any) -> bool:
            return False  # runs are trimmed to the fetch offset when built

        def drain(self) -> None:
            self._carry = None
            super().drain()

        def _unpack_records(self, tp: Any, records: Any, key_deserializer: Any,
                            value_deserializer: Any) -> Iterator[RecordRun]:
            from kafka.errors import CorruptRecordError

            self._walked_to = self.next_fetch_offset
            try:
                for whole in self._runs(records._buffer):
                    run = self._trimmed(whole)
                    if run is None:  # all before the fetch offset: step past it
                        self.next_fetch_offset = max(self.next_fetch_offset, whole.next_offset)
                        continue
                    self.records_read += len(run)
                    self.next_fetch_offset = run.next_offset
                    yield run
            except (_Corrupt, IndexError, ValueError, struct.error) as exc:
                raise CorruptRecordError(
                    f"Found invalid record structure in partition {self.topic_partition} "
                    f"in the record batch at offset {self._at}: {exc}") from None
            # everything yielded has been taken: move past trailing control batches too
            self.next_fetch_offset = max(self.next_fetch_offset, self._walked_to)
            self.drain()

        def _runs(self, buf: Any) -> Iterator[RecordRun]:
            """Walk the record batches of a fetch, as kafka-python's ``MemoryRecords`` does,
            without copying uncompressed ones."""
            from kafka.errors import CorruptRecordError
            from kafka.record.util import calc_crc32c

            view = memoryview(buf)
            pending: list[Segment] = []
            bodies: list[Any] = []  # decompressed batches, when there are any
            count = 0
            walked = -(1 << 63)  # the offset after the last batch walked
            pos, size = 0, len(buf)
            while size - pos >= _LOG_OVERHEAD:
                self._at = int.from_bytes(view[pos:pos + 8], "big", signed=True)
                length = int.from_bytes(view[pos + 8:pos + 12], "big", signed=True)
                end = pos + _LOG_OVERHEAD + length
                if end > size:
                    break  # a partial batch ends the fetch; it is fetched again whole
                if end - pos < 17:  # offset, length, epoch or CRC, magic
                    raise _Corrupt(f"a record batch of {end - pos} bytes")
                if buf[pos + 16] < 2:  # message format v0/v1 (before Kafka 0.11)
                    if pending:
                        yield self._decode(buf, pending, bodies)
                        pending, bodies, count = [], [], 0
                    with codec_context(self.topic_partition,
                                       int.from_bytes(view[pos:pos + 8], "big", signed=True)):
                        legacy = self._legacy_run(view[pos:end], buf[pos + 16])
                    pos = end
                    if legacy is not None:
                        if legacy.offset < walked:
                            raise _Corrupt(f"message offsets go backwards ({legacy.offset}, "
                                           f"after {walked - 1})")
                        self._walked_to = walked = legacy.next_offset
                        yield legacy
                    continue
                if end - pos < _HEADER.size:
                    raise _Corrupt(f"a record batch of {end - pos} bytes")
                (base, _, epoch, _, crc, attrs, last_delta, first_ts, max_ts, *_,
                 n) = _HEADER.unpack_from(buf, pos)
                if n < 0:
                    raise _Corrupt(f"a record batch claims {n} records")
                if last_delta < 0 or base + last_delta < walked:
                    raise _Corrupt(f"record batch offsets go backwards (base offset {base}, "
                                   f"last offset delta {last_delta}, after {walked - 1})")
                if self.check_crcs and calc_crc32c(view[pos + 21:end]) != crc:
                    raise CorruptRecordError(
                        f"Record batch for partition {self.topic_partition} at offset "
                        f"{base} failed crc check")
                after = base + last_delta + 1
                self.bytes_read += end - pos
                if not attrs & _CONTROL and not n:
                    # kafka-python reads such a batch and rejects any bytes in it
                    body_size = (len(self._uncompressed(view[pos:end], base)) if attrs & _CODEC
                                 else end - pos - _HEADER.size)
                    if body_size:
                        raise _Corrupt(f"a record batch of 0 records holds {body_size} bytes")
                if not attrs & _CONTROL and n:
                    if attrs & _CODEC:
                        body = self._uncompressed(view[pos:end], base)
                        bodies.append(body)
                        pending.append((0, len(body), n, base, first_ts, max_ts, attrs, after,
                                        epoch))
                    else:
                        bodies.append(view[pos + _HEADER.size:end])
                        pending.append((pos + _HEADER.size, end, n, base, first_ts, max_ts,
                                        attrs, after, epoch))
                    count += n
                pos = end
                self._walked_to = walked = after
                if count >= _RUN_RECORDS:
                    yield self._decode(buf, pending, bodies)
                    pending, bodies, count = [], [], 0
                elif not pending:
                    self.next_fetch_offset = max(self.next_fetch_offset, after)
                    self.leader_epoch = epoch
            if pending:
                yield self._decode(buf, pending, bodies)

        def _uncompressed(self, batch_bytes: memoryview, base: int) -> bytes:
            """The records of a compressed v2 batch, decompressed."""
            from kafka.record.default_records import DefaultRecordBatch

            batch = DefaultRecordBatch(batch_bytes)
            with codec_context(self.topic_partition, base):
                try:
                    batch._maybe_uncompress()
                except Exception as exc:  # each codec's library fails in its own way
                    if codec_missing_from(exc) is not None:
                        raise  # a missing library, named by codec_context
                    raise _Corrupt(f"the batch does not decompress: {type(exc).__name__}: "
                                   f"{exc}") from None
            return bytes(batch._buffer)

        def _legacy_run(self, view: memoryview, magic: int) -> RecordRun | None:
            """A message set of format v0/v1, through kafka-python's own reader."""
            from kafka.errors import CorruptRecordError
            from kafka.record.legacy_records import LegacyRecordBatch

            batch = LegacyRecordBatch(bytes(view), magic)
            if self.check_crcs and not batch.validate_crc():  # the wrapper's, when compressed
                raise CorruptRecordError(
                    f"Record batch for partition {self.topic_partition} at offset {self._at} "
                    "failed crc check")
            try:
                records = list(batch)  # decompressed here
            except Exception as exc:  # each codec's library fails in its own way
                if codec_missing_from(exc) is not None:
                    raise  # a missing library, named by codec_context
                raise _Corrupt(f"the message set does not decode: {type(exc).__name__}: "
                               f"{exc}") from None
            parts: list[bytes] = []
            fields: list[tuple[int, int, int, int, int, int]] = []
            at = 0
            for record in records:
                if self.check_crcs and not record.validate_crc():
                    raise CorruptRecordError(
                        f"Record for partition {self.topic_partition} at offset "
                        f"{record.offset} failed crc check")
                key, value = record.key, record.value
                key_len = -1 if key is None else len(key)
                value_len = -1 if value is None else len(value)
                parts += [key or b"", value or b"", b"\0"]  # a byte after each value
                fields.append((record.offset, -1 if record.timestamp is None
                               else record.timestamp, at, key_len, at + max(key_len, 0),
                               value_len))
                at += max(key_len, 0) + max(value_len, 0) + 1
            if not fields:
                return None
            columns = np.array(fields, dtype=np.int64).reshape(-1, 6)
            offsets = columns[:, 0]
            if bool(np.any(np.diff(offsets) <= 0)):
                raise _Corrupt("message offsets are not increasing")
            return RecordRun(b"".join(parts), offsets, columns[:, 1], columns[:, 2],
                             columns[:, 3], columns[:, 4], columns[:, 5],
                             int(offsets[-1]) + 1, None)

        def _decode(self, buf: Any, pending: list[Segment], bodies: list[Any]) -> RecordRun:
            try:
                return self._decode_all(buf, pending, bodies)
            except _Corrupt:
                # find the batch to name (only when one is corrupt: decoding is batched)
                for one, body in zip(pending, bodies, strict=True):
                    self._at = one[3]
                    self._decode_all(buf, [one], [body])
                raise

        @staticmethod
        def _decode_all(buf: Any, pending: list[Segment], bodies: list[Any]) -> RecordRun:
            if all(isinstance(b, memoryview) for b in bodies):
                return decode_batches(buf, pending)  # all in the fetch's own buffer
            data = b"".join(bodies)
            segments, at = [], 0
            for body, seg in zip(bodies, pending, strict=True):
                segments.append((at, at + len(body), *seg[2:]))
                at += len(body)
            return decode_batches(data, segments)

        def _trimmed(self, run: RecordRun) -> RecordRun | None:
            # a fetch from the middle of a batch returns the whole batch
            skip = int(np.searchsorted(run.offsets, self.fetch_offset))
            if skip >= len(run):
                return None
            return run.split(skip)[1] if skip else run

        def take(self, n: int | None = None) -> list[Any]:
            self._maybe_raise_next_inline_exception()
            out = _Runs()
            want = float("inf") if n is None else n
            try:
                while want > 0:
                    run = self._carry
                    self._carry = None
                    if run is None:
                        if self.record_iterator is None:
                            break
                        run = next(self.record_iterator, None)
                        if run is None:
                            break
                    if len(run) > want:
                        run, self._carry = run.split(int(want))
                    self.next_fetch_offset = run.next_offset
                    if run.epochs is not None and len(run.epochs):
                        self.leader_epoch = int(run.epochs[-1])
                    out.append(run)
                    want -= len(run)
            except Exception as exc:
                if not out:
                    raise
                self._next_inline_exception = exc
            return out

    return BulkPartitionRecords


def install_bulk_records(consumer: Any, config: dict[str, Any]) -> bool:
    """Make ``consumer`` yield :class:`RecordRun` s where that is known to be safe."""
    if os.environ.get("LAKEKIT_SINK_BULK_FETCH", "1") == "0":
        return False
    kafka = import_optional("kafka", purpose="the Kafka sink")
    records = import_if_available("kafka.record.default_records")  # kafka-python's layout
    try:
        major = int(str(kafka.__version__).split(".")[0])
        fetcher = consumer._fetcher
        base = type(fetcher).PartitionRecords
        batch = getattr(records, "DefaultRecordBatch", None)
        needed = ("take", "drain", "_unpack_records", "_maybe_raise_next_inline_exception")
        fits = (major == 3 and all(hasattr(base, name) for name in needed)
                and hasattr(batch, "_maybe_uncompress")
                and {"_buffer", "_pos"} <= set(getattr(batch, "__slots__", ())))
    except (AttributeError, ValueError):
        fits = False
    if (not fits or config.get("isolation_level", "read_uncommitted") != "read_uncommitted"
            or config.get("key_deserializer") or config.get("value_deserializer")):
        log.debug("bulk record decoding not used: kafka-python's own record path instead")
        return False
    fetcher.PartitionRecords = _bulk_class(base)
    return True
