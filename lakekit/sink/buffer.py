"""The sink's batch buffer: consumed messages packed for bulk decoding.

Each poll's values of one partition are joined, newline-separated, into one ``bytes``
chunk (one C-level copy, no per-message Python work beyond collecting the values);
offsets, timestamps, lengths and keys go into compact arrays. A flushed buffer becomes a
:class:`RawBatch`, which the decoders read as one newline-delimited stream
(:meth:`RawBatch.reader`) without concatenating the chunks.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa

from lakekit.sink.fetch import RecordRun

__all__ = ["BatchBuffer", "RawBatch", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]
"""A (topic, partition) pair; the sink's own name for kafka-python's ``TopicPartition``."""

_PER_MESSAGE_OVERHEAD = 40  # bytes of bookkeeping per message (arrays + key reference)
_VALUE = attrgetter("value")
_OFFSET = attrgetter("offset")
_TIMESTAMP = attrgetter("timestamp")
_KEY = attrgetter("key")


@dataclass
class RawBatch:
    """A batch of consumed messages, ready to decode.

    The values, each followed by ``b"\\n"``, are stored in ``chunks``; message ``i`` starts
    at byte ``starts[i]`` of their concatenation and is ``lengths[i]`` bytes long. Values
    with a raw newline (allowed as whitespace in JSON) are stored with the newline
    replaced by a space; their original bytes are in ``originals``. ``tombstones`` marks
    messages whose value was ``None``.
    """

    chunks: list[Any]
    """``bytes`` or ``pyarrow.Buffer`` s."""
    chunk_starts: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    part_index: np.ndarray
    offsets: np.ndarray
    timestamps: np.ndarray
    keys: list[bytes | None]
    partitions: list[TopicPartitionKey]
    tombstones: np.ndarray
    originals: dict[int, bytes] = field(default_factory=dict)
    held: int = -1
    """Bytes of message data still held (decoding part by part releases them)."""

    def __post_init__(self) -> None:
        if self.held < 0:
            self.held = sum(map(len, self.chunks))

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes of message data still held."""
        return self.held

    def _chunk_of(self, pos: int) -> int:
        return int(np.searchsorted(self.chunk_starts, pos, side="right")) - 1

    def stored(self, i: int) -> bytes:
        """Message ``i`` as stored (newlines replaced; ``b""`` for a tombstone)."""
        start = int(self.starts[i])
        c = self._chunk_of(start)
        local = start - int(self.chunk_starts[c])
        return bytes(memoryview(self.chunks[c])[local : local + int(self.lengths[i])])

    def value(self, i: int) -> bytes | None:
        """The original value of message ``i`` (``None`` for a tombstone)."""
        if self.tombstones[i]:
            return None
        if i in self.originals:
            return self.originals[i]
        return self.stored(i)

    def reader(self, i: int, j: int) -> pa.NativeFile:
        """Messages ``i`` to ``j - 1`` as one newline-delimited stream (zero-copy within a
        chunk; one copy of the range when it spans chunks)."""
        begin = int(self.starts[i])
        end = int(self.starts[j - 1] + self.lengths[j - 1]) + 1
        c0, c1 = self._chunk_of(begin), self._chunk_of(end - 1)
        if c0 == c1:
            base = int(self.chunk_starts[c0])
            view = memoryview(self.chunks[c0])[begin - base : end - base]
            return pa.BufferReader(pa.py_buffer(view))
        # one copy, in arrow's pool (returned to the OS when freed, unlike glibc's heap)
        joined = pa.allocate_buffer(end - begin, resizable=False)
        out = np.frombuffer(joined, dtype=np.uint8)
        at = 0
        for c in range(c0, c1 + 1):
            base = int(self.chunk_starts[c])
            chunk = memoryview(self.chunks[c])
            piece = chunk[max(0, begin - base) : min(len(chunk), end - base)]
            out[at : at + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            at += len(piece)
        return pa.BufferReader(joined)

    def slices(self, max_bytes: int) -> Iterator[tuple[int, RawBatch]]:
        """Consecutive parts of about ``max_bytes`` (whole chunks), each with the index of
        its first message. The chunks of a part are released from this batch once the
        next part is asked for, so decoding part by part holds the raw bytes of at most
        two parts plus what is left to decode."""
        begin = 0
        while begin < len(self.chunks):
            end, size = begin, 0
            while end < len(self.chunks) and (end == begin or size < max_bytes):
                size += len(self.chunks[end])
                end += 1
            part = self._part_of(begin, end)
            first = int(np.searchsorted(self.starts, self.chunk_starts[begin]))
            yield first, part
            del part
            for c in range(begin, end):
                self.held -= len(self.chunks[c])
                self.chunks[c] = b""
            begin = end
        self.held = 0

    def _part_of(self, c0: int, c1: int) -> RawBatch:
        lo = int(self.chunk_starts[c0])
        hi = int(self.chunk_starts[c1]) if c1 < len(self.chunk_starts) else None
        i = int(np.searchsorted(self.starts, lo))
        j = int(np.searchsorted(self.starts, hi)) if hi is not None else len(self.starts)
        return RawBatch(
            chunks=self.chunks[c0:c1],
            chunk_starts=self.chunk_starts[c0:c1] - lo,
            starts=self.starts[i:j] - lo,
            lengths=self.lengths[i:j],
            part_index=self.part_index[i:j],
            offsets=self.offsets[i:j],
            timestamps=self.timestamps[i:j],
            keys=self.keys[i:j],
            partitions=self.partitions,
            tombstones=self.tombstones[i:j],
            originals={k - i: v for k, v in self.originals.items() if i <= k < j},
        )

    def last_offsets(self) -> dict[TopicPartitionKey, int]:
        """The last offset of each topic-partition in the batch."""
        maxes = np.full(len(self.partitions), -1, dtype=np.int64)
        np.maximum.at(maxes, self.part_index, self.offsets)
        return {tp: int(m) for tp, m in zip(self.partitions, maxes, strict=True) if m >= 0}


class BatchBuffer:
    """Accumulates consumed messages until a flush threshold is reached.

    Not thread-safe: it is filled and taken from the consume loop only.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[Any] = []
        self._chunk_starts = array("q")
        self._size = 0
        self._starts = array("q")
        self._lengths = array("q")
        self._part = array("i")
        self._offsets = array("q")
        self._timestamps = array("q")
        self._keys: list[bytes | None] = []
        self._tombstones = array("b")
        self._originals: dict[int, bytes] = {}
        self._partitions: list[TopicPartitionKey] = []
        self._part_ids: dict[TopicPartitionKey, int] = {}
        self._key_bytes = 0
        self.first_at: float | None = None

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def nbytes(self) -> int:
        """Approximate memory held: values, keys and per-message bookkeeping."""
        return self._size + self._key_bytes + _PER_MESSAGE_OVERHEAD * len(self._offsets)

    def partitions(self) -> list[TopicPartitionKey]:
        """The topic-partitions with messages in the buffer."""
        return list(self._partitions)

    def add(self, tp: TopicPartitionKey, records: Sequence[Any]) -> int:
        """Append kafka-python ``ConsumerRecord`` s (or :class:`RecordRun` s) of one
        topic-partition; returns how many messages that was."""
        if records and isinstance(records[0], RecordRun):
            return sum(self._add_run(tp, run) for run in records)
        n = len(records)
        if not n:
            return 0
        values: list[Any] = list(map(_VALUE, records))
        tomb = None
        if None in values:
            tomb = [v is None for v in values]
            values = [b"" if v is None else v for v in values]
        stamps = list(map(_TIMESTAMP, records))
        if None in stamps:
            stamps = [-1 if t is None else t for t in stamps]
        self._append(tp, values, None, array("q", map(_OFFSET, records)), array("q", stamps),
                     list(map(_KEY, records)), tomb)
        return n

    def _add_run(self, tp: TopicPartitionKey, run: RecordRun) -> int:
        n = len(run)
        if not n:
            return 0
        lengths = np.maximum(run.value_lengths, 0)
        lo = int(run.value_starts[0])
        ends = run.value_starts + lengths
        hi = int(ends[-1]) + 1  # every value is followed by at least its record's header count
        # the chunk is the run's bytes from the first value on, in arrow's pool (which gives
        # freed memory back at once), with everything between values blanked to spaces and
        # a newline after each value: JSON lines, at the cost of one vectorised copy
        buffer = pa.allocate_buffer(hi - lo, resizable=False)
        chunk = np.frombuffer(buffer, dtype=np.uint8)
        chunk[:] = np.frombuffer(run.data, dtype=np.uint8, count=hi - lo, offset=lo)
        starts = run.value_starts - lo
        local_ends = ends - lo
        # the gaps between values (record headers: a few bytes each) become spaces
        gap_starts = local_ends[:-1]
        gap_lengths = starts[1:] - gap_starts
        total = int(gap_lengths.sum())
        if total:
            before = np.cumsum(gap_lengths) - gap_lengths
            chunk[np.arange(total) + np.repeat(gap_starts - before, gap_lengths)] = 32
        chunk[local_ends] = 32
        # min() first: one cheap pass, and JSON text rarely has bytes below 14 at all
        if int(chunk.min()) <= 13 and (np.count_nonzero(chunk == 10)
                                       or np.count_nonzero(chunk == 13)):
            data = memoryview(run.data)  # a value holds a raw newline: the general path
            tomb = (run.value_lengths < 0).tolist() if int(run.value_lengths.min()) < 0 else None
            listed = [data[s:e] for s, e in zip(run.value_starts.tolist(), ends.tolist(),
                                                 strict=True)]
            self._append(tp, listed, lengths, run.offsets, run.timestamps, run.keys(), tomb)
            return n
        chunk[local_ends] = 10
        tombstones = run.value_lengths < 0
        self._push(tp, buffer, starts, lengths, run.offsets, run.timestamps, run.keys(),
                   tombstones if tombstones.any() else None)
        return n

    def _append(self, tp: TopicPartitionKey, values: list[Any], lengths: np.ndarray | None,
                offsets: Any, timestamps: Any, keys: list[bytes | None],
                tomb: list[bool] | None) -> None:
        n = len(values)
        if not n:
            return
        base = len(self._offsets)
        values.append(b"")  # the join then ends with a newline too
        chunk = b"\n".join(values)
        values.pop()
        # one line per message unless a value holds a raw newline (JSON whitespace)
        if (np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) != n
                or b"\r" in chunk):
            values = self._replace_newlines(values, base)
            values.append(b"")
            chunk = b"\n".join(values)
            values.pop()
            lengths = None
        if lengths is None:
            lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
        starts = np.empty(n, dtype=np.int64)
        starts[0] = 0
        np.cumsum(lengths[:-1] + 1, out=starts[1:])
        self._push(tp, chunk, starts, lengths, offsets, timestamps, keys,
                   None if tomb is None else np.array(tomb, dtype=bool))

    def _push(self, tp: TopicPartitionKey, chunk: bytes | pa.Buffer, starts: np.ndarray,
              lengths: np.ndarray, offsets: Any, timestamps: Any, keys: list[bytes | None],
              tombstones: np.ndarray | None) -> None:
        """Append one chunk of newline-separated values (``starts``: within the chunk)."""
        n = len(starts)
        if self.first_at is None:
            self.first_at = time.monotonic()
        pid = self._part_ids.get(tp)
        if pid is None:
            pid = self._part_ids[tp] = len(self._partitions)
            self._partitions.append(tp)
        self._chunk_starts.append(self._size)
        self._chunks.append(chunk)
        self._starts.frombytes((np.asarray(starts, dtype=np.int64) + self._size).tobytes())
        self._size += len(chunk)
        self._lengths.frombytes(np.asarray(lengths, dtype=np.int64).tobytes())
        self._part.extend([pid] * n)
        self._offsets.frombytes(np.asarray(offsets, dtype=np.int64).tobytes())
        self._timestamps.frombytes(np.asarray(timestamps, dtype=np.int64).tobytes())
        self._keys.extend(keys)
        self._key_bytes += sum(map(len, filter(None, keys)))
        if tombstones is None:
            self._tombstones.frombytes(bytes(n))
        else:
            self._tombstones.frombytes(tombstones.astype(np.int8).tobytes())

    def _replace_newlines(self, values: list[Any], base: int) -> list[bytes]:
        out = []
        for i, v in enumerate(values):
            v = bytes(v)
            if b"\n" in v or b"\r" in v:
                self._originals[base + i] = v
                v = v.replace(b"\n", b" ").replace(b"\r", b" ")
            out.append(v)
        return out

    def drop(self, tps: Iterable[TopicPartitionKey]) -> int:
        """Forget the buffered messages of ``tps`` (their partition was lost); returns how many."""
        drop_ids = {self._part_ids[tp] for tp in tps if tp in self._part_ids}
        if not drop_ids:
            return 0
        batch = self.take()
        keep = ~np.isin(batch.part_index, list(drop_ids))
        for pid, tp in enumerate(batch.partitions):
            rows = np.flatnonzero(keep & (batch.part_index == pid))
            if len(rows):
                self.add(tp, [_Kept(batch, int(i)) for i in rows])
        return int((~keep).sum())

    def take(self) -> RawBatch:
        """Hand the buffered messages over as a :class:`RawBatch` and start empty."""
        batch = RawBatch(
            chunks=self._chunks,
            chunk_starts=np.frombuffer(self._chunk_starts, dtype=np.int64).copy(),
            starts=np.frombuffer(self._starts, dtype=np.int64).copy(),
            lengths=np.frombuffer(self._lengths, dtype=np.int64).copy(),
            part_index=np.frombuffer(self._part, dtype=np.int32).copy(),
            offsets=np.frombuffer(self._offsets, dtype=np.int64).copy(),
            timestamps=np.frombuffer(self._timestamps, dtype=np.int64).copy(),
            keys=self._keys,
            partitions=self._partitions,
            tombstones=np.frombuffer(self._tombstones, dtype=np.int8).astype(bool),
            originals=self._originals,
        )
        self._reset()
        return batch


class _Kept:
    """A buffered message re-added after :meth:`BatchBuffer.drop` (quacks like a record)."""

    __slots__ = ("key", "offset", "timestamp", "value")

    def __init__(self, batch: RawBatch, i: int) -> None:
        self.value = batch.value(i)
        self.offset = int(batch.offsets[i])
        ts = int(batch.timestamps[i])
        self.timestamp = ts if ts >= 0 else None
        self.key = batch.keys[i]
