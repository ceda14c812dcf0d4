"""The sink's batch buffer: consumed messages packed for bulk decoding.

Message values are appended, newline-separated, to one ``bytearray`` (the layout
``pyarrow.json`` reads without a copy); offsets, timestamps, lengths and keys go into
compact arrays. A flushed buffer becomes a :class:`RawBatch`, which is what the decoders
and the commit protocol work on.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BatchBuffer", "RawBatch", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]
"""A (topic, partition) pair; the sink's own name for kafka-python's ``TopicPartition``."""

_PER_MESSAGE_OVERHEAD = 40  # bytes of bookkeeping per message (arrays + key reference)


@dataclass
class RawBatch:
    """A batch of consumed messages, ready to decode.

    ``data`` holds every value followed by ``b"\\n"``; message ``i`` is
    ``data[starts[i] : starts[i] + lengths[i]]``. Values with a raw newline (allowed as
    whitespace in JSON) are stored with the newline replaced by a space; their original
    bytes are in ``originals``. ``tombstones`` marks messages whose value was ``None``.
    """

    data: bytearray
    starts: np.ndarray
    lengths: np.ndarray
    part_index: np.ndarray
    offsets: np.ndarray
    timestamps: np.ndarray
    keys: list[bytes | None]
    partitions: list[TopicPartitionKey]
    tombstones: np.ndarray
    originals: dict[int, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes of buffered message data."""
        return len(self.data)

    def value(self, i: int) -> bytes | None:
        """The original value of message ``i`` (``None`` for a tombstone)."""
        if self.tombstones[i]:
            return None
        if i in self.originals:
            return self.originals[i]
        start = int(self.starts[i])
        return bytes(self.data[start : start + int(self.lengths[i])])

    def where(self, i: int) -> str:
        """``topic[partition]@offset`` of message ``i``, for error messages."""
        topic, partition = self.partitions[int(self.part_index[i])]
        return f"{topic}[{partition}]@{int(self.offsets[i])}"

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
        self._data = bytearray()
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
        return len(self._data) + self._key_bytes + _PER_MESSAGE_OVERHEAD * len(self._offsets)

    def partitions(self) -> list[TopicPartitionKey]:
        """The topic-partitions with messages in the buffer."""
        return list(self._partitions)

    def add(self, tp: TopicPartitionKey, records: Sequence[Any]) -> None:
        """Append kafka-python ``ConsumerRecord`` s of one topic-partition."""
        if not records:
            return
        if self.first_at is None:
            self.first_at = time.monotonic()
        pid = self._part_ids.get(tp)
        if pid is None:
            pid = self._part_ids[tp] = len(self._partitions)
            self._partitions.append(tp)
        base = len(self._offsets)
        values: list[bytes] = [r.value for r in records]
        tomb = [v is None for v in values]
        if any(tomb):
            values = [b"" if v is None else v for v in values]
        joined = b"\n".join(values)
        n = len(values)
        if joined.count(b"\n") != n - 1 or b"\r" in joined:
            values = self._replace_newlines(values, base)
            joined = b"\n".join(values)
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
        starts = np.empty(n, dtype=np.int64)
        starts[0] = len(self._data)
        np.cumsum(lengths[:-1] + 1, out=starts[1:])
        starts[1:] += starts[0]
        self._data += joined
        self._data += b"\n"
        self._starts.frombytes(starts.tobytes())
        self._lengths.frombytes(lengths.tobytes())
        self._part.extend([pid] * n)
        self._offsets.extend([r.offset for r in records])
        self._timestamps.extend([r.timestamp if r.timestamp is not None else -1 for r in records])
        keys = [r.key for r in records]
        self._keys.extend(keys)
        self._key_bytes += sum(len(k) for k in keys if k is not None)
        self._tombstones.extend(tomb)

    def _replace_newlines(self, values: list[bytes], base: int) -> list[bytes]:
        out = []
        for i, v in enumerate(values):
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
        dropped = int((~keep).sum())
        for i in np.flatnonzero(keep):
            tp = batch.partitions[int(batch.part_index[i])]
            pid = self._part_ids.get(tp)
            if pid is None:
                pid = self._part_ids[tp] = len(self._partitions)
                self._partitions.append(tp)
            if self.first_at is None:
                self.first_at = time.monotonic()
            value = batch.value(int(i))
            start = len(self._data)
            stored = b"" if value is None else value
            if int(i) in batch.originals:
                self._originals[len(self._offsets)] = stored
                stored = stored.replace(b"\n", b" ").replace(b"\r", b" ")
            self._data += stored
            self._data += b"\n"
            self._starts.append(start)
            self._lengths.append(len(stored))
            self._part.append(pid)
            self._offsets.append(int(batch.offsets[i]))
            self._timestamps.append(int(batch.timestamps[i]))
            key = batch.keys[int(i)]
            self._keys.append(key)
            self._key_bytes += len(key) if key is not None else 0
            self._tombstones.append(int(batch.tombstones[i]))
        return dropped

    def take(self) -> RawBatch:
        """Hand the buffered messages over as a :class:`RawBatch` and start empty."""
        batch = RawBatch(
            data=self._data,
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
