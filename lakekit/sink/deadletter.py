"""The dead-letter table: records that could not be decoded, cast or validated.

One row per message: where it came from (topic, partition, offset, timestamp), what it
was (key and raw value, byte for byte) and why it was rejected (stage and error). It is a
Delta table like the main one and is committed in step with it (see ``docs/sink.md``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from lakekit.sink.buffer import RawBatch
from lakekit.sink.decode import RowError

__all__ = ["DEAD_LETTER_SCHEMA", "dead_letter_rows", "default_dead_letter_uri"]

DEAD_LETTER_SCHEMA = pa.schema([
    pa.field("topic", pa.string(), nullable=False),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),
    pa.field("timestamp", pa.timestamp("us", tz="UTC")),
    pa.field("key", pa.binary()),
    pa.field("value", pa.binary()),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("error", pa.string(), nullable=False),
    pa.field("dead_lettered_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def default_dead_letter_uri(table: str) -> str:
    """The dead-letter table next to ``table``: the same URI with ``_dead_letter`` appended.

    Examples
    --------
    >>> default_dead_letter_uri("s3://lake/events/")
    's3://lake/events_dead_letter'
    """
    return table.rstrip("/") + "_dead_letter"


def dead_letter_rows(batch: RawBatch, errors: Sequence[RowError]) -> tuple[pa.Table, np.ndarray]:
    """The dead-letter rows for ``errors`` and, for each, the index of its message."""
    idx = np.fromiter((e.index for e in errors), dtype=np.int64, count=len(errors))
    parts = batch.part_index[idx]
    now = int(time.time() * 1_000_000)
    ts = batch.timestamps[idx]
    table = pa.Table.from_arrays(
        [
            pa.array([batch.partitions[p][0] for p in parts], pa.string()),
            pa.array([batch.partitions[p][1] for p in parts], pa.int32()),
            pa.array(batch.offsets[idx], pa.int64()),
            pa.array(np.where(ts >= 0, ts * 1000, 0), pa.int64(), mask=ts < 0).cast(
                pa.timestamp("us", tz="UTC")),
            pa.array([batch.keys[i] for i in idx], pa.binary()),
            pa.array([batch.value(int(i)) for i in idx], pa.binary()),
            pa.array([e.stage for e in errors], pa.string()),
            pa.array([e.error for e in errors], pa.string()),
            pa.array(np.full(len(idx), now, dtype=np.int64), pa.int64()).cast(
                pa.timestamp("us", tz="UTC")),
        ],
        schema=DEAD_LETTER_SCHEMA,
    )
    return table, idx
