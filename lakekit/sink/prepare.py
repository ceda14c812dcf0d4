"""The commit thread's job: decode, validate and stage one batch, then commit it.

:class:`~lakekit.sink.kafka.KafkaDeltaSink` runs :func:`commit_job` on its one commit
thread while its loop keeps consuming. The job is a plain function of what that thread
may touch, so that the boundary between the threads stays visible: the batch (handed
over in a list the job empties, so that its raw bytes can be freed once decoded), the
offsets the sink expects the table to hold, and a frozen :class:`JobContext` (decoder,
schema, targets, options). The only state it shares with the loop is the
:class:`HeldBytes` gauge, which it writes and the loop reads to bound memory. The
:class:`~lakekit.sink.commit.DeltaTarget` objects are the loop's too, but it uses them
only between jobs (on a rebalance, after waiting for the job in flight).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import pyarrow as pa

from lakekit import lineage
from lakekit.errors import BadRecordError
from lakekit.io.memory import return_free_memory
from lakekit.sink.buffer import RawBatch, TopicPartitionKey
from lakekit.sink.commit import (
    CommitOutcome,
    CommitRequest,
    DeltaTarget,
    PartitionPlan,
    commit_batch,
)
from lakekit.sink.deadletter import dead_letter_rows
from lakekit.sink.decode import Decoder, RowError
from lakekit.sink.stats import CommitSummary, tp_name
from lakekit.sink.validate import SinkSchema, validate_rows

__all__ = [
    "HeldBytes",
    "JobContext",
    "JobResult",
    "app_id",
    "commit_job",
    "prepare",
]

_METADATA_FIELDS = [
    pa.field("_kafka_topic", pa.string()),
    pa.field("_kafka_partition", pa.int32()),
    pa.field("_kafka_offset", pa.int64()),
    pa.field("_kafka_timestamp", pa.timestamp("us", tz="UTC")),
]
"""The columns ``kafka_metadata=True`` adds."""

_DECODE_SLICE_BYTES = 4 << 20  # decode this much text at a time (bounds parser memory)


def app_id(group_id: str, tp: TopicPartitionKey) -> str:
    """The ``txn`` app id that records the progress of ``group_id`` on ``tp`` in a table.

    Examples
    --------
    >>> app_id("events-to-delta", ("events", 3))
    'lakekit-sink/events-to-delta/events/3'
    """
    return f"lakekit-sink/{group_id}/{tp[0]}/{tp[1]}"


class HeldBytes:
    """How many bytes of decoded rows the commit thread holds: it writes, the loop reads
    (a plain int attribute, so reads and writes are atomic)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


@dataclass(frozen=True)
class JobContext:
    """Everything a job reads besides its batch: fixed for the life of a sink."""

    main: DeltaTarget
    dead: DeltaTarget | None
    decoder: Decoder
    schema: SinkSchema
    group_id: str
    kafka_metadata: bool
    on_error: Literal["dead_letter", "fail"]
    trim_memory: bool
    """Return freed memory to the OS after each job."""
    held: HeldBytes
    """Where the job reports the decoded bytes it holds (0 once it ends)."""
    kafka: str = "kafka"
    """The topics' OpenLineage namespace (``kafka://HOST:PORT``)."""


@dataclass
class JobResult:
    """What a job did, for the loop to apply."""

    records: int
    bytes: int
    outcome: CommitOutcome
    decode_seconds: float
    commit_seconds: float
    reason: str
    partitions: list[TopicPartitionKey]
    counts: dict[TopicPartitionKey, int]

    def summary(self, lag: dict[str, int]) -> CommitSummary:
        """The commit's summary, with the ``lag`` the loop measured after it."""
        out = self.outcome
        return CommitSummary(
            version=out.version, dead_letter_version=out.dead_letter_version,
            records=self.records, rows_written=out.rows_written,
            dead_lettered=out.dead_lettered, dead_letter_skipped=out.dead_letter_skipped,
            offsets={tp_name(*tp): v for tp, v in out.committed.items()}, lag=lag,
            lost={tp_name(*tp): v for tp, v in out.lost.items()},
            decode_seconds=self.decode_seconds, commit_seconds=self.commit_seconds,
            attempts=out.attempts, reason=self.reason,
        )


def commit_job(box: list[RawBatch], expected: dict[TopicPartitionKey, int | None],
               reason: str, ctx: JobContext) -> JobResult:
    """Decode, validate, stage and commit the batch in ``box`` (taken out of it).

    ``expected`` is the ``txn`` version the sink expects the table to hold for each of the
    batch's partitions; ``reason`` why the batch was flushed (it goes into the result).
    """
    start = time.monotonic()
    batch = box.pop()
    nrecords, nbytes = len(batch), batch.nbytes
    counts = dict(zip(batch.partitions, np.bincount(
        batch.part_index, minlength=len(batch.partitions)).tolist(), strict=True))
    request = prepare(batch, expected, ctx)
    partitions = [p.tp for p in request.plans]
    del batch  # the raw bytes are no longer needed
    prepared = time.monotonic()
    try:
        outcome = lineage.sink_run(ctx.main, ctx.dead, [tp[0] for tp in partitions], ctx.kafka,
                                   partial(commit_batch, ctx.main, ctx.dead, request))
    finally:
        request.close()
        del request
        ctx.held.value = 0
        if ctx.trim_memory:
            return_free_memory()
    done = time.monotonic()
    return JobResult(nrecords, nbytes, outcome, prepared - start, done - prepared, reason,
                     partitions, counts)


def prepare(batch: RawBatch, expected: dict[TopicPartitionKey, int | None],
            ctx: JobContext) -> CommitRequest:
    """Decode, validate and stage a batch (rows and dead letters), part by part: each
    part's raw bytes are released, and its rows written to a data file, before the
    next part is decoded."""
    schema = _decode_schema(ctx)
    plans = []
    last = batch.last_offsets()
    for tp in batch.partitions:
        plans.append(PartitionPlan(tp, app_id(ctx.group_id, tp), expected[tp], last[tp]))
    request = CommitRequest(plans, ctx.main.stage(), create_schema=_create_schema(ctx))
    dead_part: list[np.ndarray] = []
    dead_offsets: list[np.ndarray] = []
    try:
        for _, part in batch.slices(_DECODE_SLICE_BYTES):
            table, rows, errors = _decode_part(part, schema, ctx)
            if errors and ctx.on_error == "fail":
                raise _bad_record(part, errors)
            if errors and ctx.dead is not None:
                if request.dead is None:
                    request.dead = ctx.dead.stage()
                rows_dead, idx = dead_letter_rows(part, errors)
                request.dead.add(rows_dead, part.part_index[idx])
                dead_part.append(part.part_index[idx])
                dead_offsets.append(part.offsets[idx])
            if table.num_columns:
                if ctx.schema.extra == "infer":
                    schema = _fix_types(schema, table.schema)
                if ctx.kafka_metadata:
                    table = _with_metadata(table, part, rows)
                request.rows.add(table, part.part_index[rows])
            ctx.held.value = request.held_bytes
        request.rows.finish()
        if request.dead is not None:
            request.dead.finish()
        ctx.held.value = request.held_bytes
    except BaseException:
        ctx.held.value = 0
        request.close()
        raise
    if dead_part:
        request.dead_part = np.concatenate(dead_part)
        request.dead_offsets = np.concatenate(dead_offsets)
    return request


def _decode_schema(ctx: JobContext) -> pa.Schema | None:
    """The schema decoding starts from: the user's fields, then the table's."""
    user = ctx.schema.arrow
    if ctx.schema.extra == "ignore":
        return user
    ctx.main.refresh()
    table = ctx.main.arrow_schema()
    if table is None:
        return user
    fields = [f.with_nullable(True) for f in table if not f.name.startswith("_kafka_")]
    names = {f.name for f in fields}
    fields += [f for f in (user or []) if f.name not in names]
    return pa.schema(fields)


def _bad_record(part: RawBatch, errors: list[RowError]) -> BadRecordError:
    first = errors[0]
    topic, partition = part.partitions[int(part.part_index[first.index])]
    return BadRecordError(
        f"bad record in topic {topic!r} partition {partition} offset "
        f"{int(part.offsets[first.index])}: {first.stage} failed: {first.error}"
        + (f" ({len(errors)} bad records nearby)" if len(errors) > 1 else "")
        + "; on_error='fail' stopped the sink and nothing of this batch was committed"
    )


def _decode_part(part: RawBatch, schema: pa.Schema | None, ctx: JobContext
                 ) -> tuple[pa.Table, np.ndarray, list[RowError]]:
    decoded = ctx.decoder.decode(part, schema, ctx.schema.extra)
    table, rows, errors = decoded.table, decoded.rows, decoded.errors
    if ctx.schema.pandera is not None and table.num_rows:
        failures = validate_rows(table, ctx.schema.pandera)
        if failures:
            bad = np.zeros(table.num_rows, dtype=bool)
            bad[list(failures)] = True
            errors = errors + [RowError(int(rows[i]), "validate", msg)
                               for i, msg in failures.items()]
            errors.sort(key=lambda e: e.index)
            table = table.filter(pa.array(~bad))
            rows = rows[~bad]
    return table, rows, errors


def _create_schema(ctx: JobContext) -> pa.Schema | None:
    user = ctx.schema.arrow
    if user is None:
        return None
    return pa.schema(list(user) + (_METADATA_FIELDS if ctx.kafka_metadata else []))


def _with_metadata(table: pa.Table, batch: RawBatch, rows: np.ndarray) -> pa.Table:
    part = batch.part_index[rows]
    topics = pa.DictionaryArray.from_arrays(
        pa.array(part, pa.int32()), pa.array([t for t, _ in batch.partitions])
    ).cast(pa.string())
    partitions = np.array([p for _, p in batch.partitions], dtype=np.int32)[part]
    ts = batch.timestamps[rows]
    stamps = pa.array(ts * 1000, pa.int64(), mask=ts < 0).cast(pa.timestamp("us", tz="UTC"))
    columns = [topics, pa.array(partitions, pa.int32()),
               pa.array(batch.offsets[rows], pa.int64()), stamps]
    for field, column in zip(_METADATA_FIELDS, columns, strict=True):
        if field.name in table.column_names:
            table = table.drop_columns([field.name])
        table = table.append_column(field, column)
    return table


def _fix_types(schema: pa.Schema | None, seen: pa.Schema) -> pa.Schema:
    """``schema`` plus the fields first seen in ``seen`` (their types fixed from now on)."""
    fields = list(schema) if schema is not None else []
    names = {f.name for f in fields}
    fields += [f.with_nullable(True) for f in seen
               if f.name not in names and not f.name.startswith("_kafka_")
               and not pa.types.is_null(f.type)]
    return pa.schema(fields)
