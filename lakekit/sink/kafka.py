"""KafkaDeltaSink: stream Kafka topics into a Delta table, exactly once.

The consume loop (this module) fills a :class:`~lakekit.sink.buffer.BatchBuffer`; a full
buffer becomes a job for one commit thread, which decodes it in bulk, validates it and
commits it with :func:`~lakekit.sink.commit.commit_batch` while the loop keeps
consuming into the next buffer. At most one job runs at a time and the next one waits
for it, so commits are ordered and memory is bounded by about two batches. The job is
:func:`~lakekit.sink.prepare.commit_job`, a function of what that thread may touch; the
consumer's settings, connection, offsets for monitoring and signal handlers are in
:mod:`lakekit.sink.consumer`.

Offsets live in the table (Delta ``txn`` actions, one app id per topic-partition): on
every partition assignment the sink seeks to the offset after the table's. Offsets are
also committed to Kafka after each Delta commit, but only for lag monitoring.

Longer than 500 lines because it keeps the public class (with its long parameter
documentation), the loop with its batching policy, and the rebalance handlers together,
because they share one set of loop-thread state (the buffer, the partitions owned and
the offsets expected of them, the job in flight); splitting them would spread that
state's invariants over several modules.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Literal

from lakekit.errors import BrokerError, ConfigError, TableError
from lakekit.lineage import kafka_namespace
from lakekit.sink.buffer import BatchBuffer, RawBatch, TopicPartitionKey
from lakekit.sink.codecs import raise_if_codec_missing
from lakekit.sink.commit import DeltaTarget
from lakekit.sink.compaction import CompactionOutcome, SinkCompactor, check_compaction_options
from lakekit.sink.consumer import (
    commit_offsets,
    connect,
    install_signal_handlers,
    restore_signal_handlers,
    seek,
)
from lakekit.sink.consumer import consumer_config as consumer_config_of
from lakekit.sink.deadletter import default_dead_letter_uri
from lakekit.sink.decode import Decoder, make_decoder
from lakekit.sink.logs import commit_fields, event
from lakekit.sink.memory import prompt_arrow_pool, tune_malloc
from lakekit.sink.metrics import stats_after_commit
from lakekit.sink.prepare import HeldBytes, JobContext, JobResult, app_id, commit_job
from lakekit.sink.server import LoopClock, make_server
from lakekit.sink.stats import SinkStats, tp_name
from lakekit.sink.validate import resolve_sink_schema
from lakekit.storage import retry_call

__all__ = ["KafkaDeltaSink"]

log = logging.getLogger("lakekit.sink")

_MAX_POLL_FAILURES = 10
_FIRST_ASSIGNMENT_WAIT = 60.0
_CLOSE_TIMEOUT_MS = 5000


class KafkaDeltaSink:
    """Stream Kafka topics into a Delta table, exactly once.

    Parameters
    ----------
    topic
        A topic name or a list of names.
    table
        The Delta table URI (local path, ``s3://...``, ...).
    bootstrap_servers
        ``host:port`` (or a list of them) of the Kafka cluster.
    group_id
        The consumer group. Sink processes with the same group share the partitions. The
        group is part of the ``txn`` app ids that record progress in the table, so a new
        group id starts over (from ``auto_offset_reset``).
    storage_options
        Options for the table's storage (fsspec / deltalake conventions).
    consumer_config
        Extra kafka-python ``KafkaConsumer`` settings (``session_timeout_ms``,
        ``auto_offset_reset`` (default ``"earliest"``), ``security_protocol``, ...).
    decoder
        ``"json"`` (bulk, with pyarrow), ``"raw"`` (``key`` and ``value`` binary columns)
        or a callable ``(bytes) -> dict``.
    schema
        ``None`` (infer; new fields are merged into the table), a ``pyarrow.Schema``
        (decode and cast to exactly these fields), a pandera schema (its dtypes are the
        decode types; every row is validated), a path to a pandera YAML file, or a name in
        the ``schemas/`` registry.
    partition_by
        Partition columns, used when the sink creates the table.
    kafka_metadata
        Add ``_kafka_topic``, ``_kafka_partition``, ``_kafka_offset``, ``_kafka_timestamp``.
    max_batch_rows, max_batch_bytes, max_batch_seconds
        Flush a batch when any is reached (seconds count from the batch's first message).
    dead_letter_table
        Where records that cannot be decoded, cast or validated go; default: the table's
        URI with ``_dead_letter`` appended. Same ``storage_options``.
    on_error
        ``"dead_letter"`` (default) or ``"fail"``: stop at the first bad record with a
        :class:`~lakekit.errors.BadRecordError` naming its topic, partition and offset
        (nothing of its batch is committed).
    metrics_port
        Serve ``/metrics`` (Prometheus), ``/livez`` and ``/readyz`` on this port while
        :meth:`run` runs (``0``: a free port, see :attr:`metrics_url`). Needs
        ``pip install 'lakekit[metrics]'``. A port in use fails :meth:`run` with a
        :class:`~lakekit.errors.ConfigError` before anything is consumed.
    metrics_host
        The address to listen on: ``"0.0.0.0"`` (default, what container probes and
        scrapers reach) or e.g. ``"127.0.0.1"``.
    liveness_timeout
        Seconds the consume loop may go without turning (waiting for its own commit
        aside) before ``/livez`` fails; default ``max(60, 3 * max_batch_seconds)``.
    compact_every, compact_target_file_size
        Compact the table (and the dead-letter table) after every ``compact_every``
        commits to it, in a background thread: files below ``compact_target_file_size``
        bytes (default: the table's ``delta.targetFileSize``, else 100 MB) are rewritten
        into files of about that size, in ``dataChange=false`` commits that never block or
        conflict with the sink's appends (see :mod:`lakekit.sink.compaction`). ``None``
        (default): no compaction.

    Examples
    --------
    >>> from kafka import KafkaProducer
    >>> from lakekit.local_servers import tansu_broker
    >>> with tansu_broker() as broker:  # a local Kafka-protocol broker
    ...     broker.create_topic("events")
    ...     producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    ...     for i in range(3):
    ...         _ = producer.send("events", b'{"id": %d, "kind": "view"}' % i)
    ...     producer.close()
    ...     sink = KafkaDeltaSink("events", "lake/events",
    ...                           bootstrap_servers=broker.bootstrap_servers,
    ...                           group_id="events-to-delta",
    ...                           consumer_config={"session_timeout_ms": 6000})
    ...     stats = sink.run(stop_after_idle=1)
    >>> stats.rows_written
    3
    >>> lk.Table("lake/events").read().to_pydict()
    {'id': [0, 1, 2], 'kind': ['view', 'view', 'view']}
    """

    _consumer: Any
    _executor: ThreadPoolExecutor | None
    _started: float | None

    def __init__(
        self,
        topic: str | Sequence[str],
        table: str,
        *,
        bootstrap_servers: str | Sequence[str],
        group_id: str,
        storage_options: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        decoder: str | Callable[[bytes], Mapping[str, Any]] | Decoder = "json",
        schema: Any = None,
        partition_by: str | Sequence[str] | None = None,
        kafka_metadata: bool = False,
        max_batch_rows: int = 100_000,
        max_batch_bytes: int = 64 << 20,
        max_batch_seconds: float = 10.0,
        dead_letter_table: str | None = None,
        on_error: Literal["dead_letter", "fail"] = "dead_letter",
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",
        liveness_timeout: float | None = None,
        compact_every: int | None = None,
        compact_target_file_size: int | None = None,
    ) -> None:
        self.topics = [topic] if isinstance(topic, str) else [str(t) for t in topic]
        if not self.topics or not all(self.topics):
            raise ConfigError("topic must be a topic name or a non-empty list of names")
        if not group_id:
            raise ConfigError("group_id is required: it names the consumer group and the "
                              "progress records in the table")
        if max_batch_rows < 1 or max_batch_bytes < 1 or not max_batch_seconds > 0:
            raise ConfigError("max_batch_rows, max_batch_bytes and max_batch_seconds must be "
                              "positive")
        if on_error not in ("dead_letter", "fail"):
            raise ConfigError(f"on_error must be 'dead_letter' or 'fail', got {on_error!r}")
        self.bootstrap_servers = bootstrap_servers
        self.max_batch_rows = int(max_batch_rows)
        self.max_batch_bytes = int(max_batch_bytes)
        self.max_batch_seconds = float(max_batch_seconds)
        parts = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
        self._main = DeltaTarget(table, storage_options, partition_by=parts or None)
        self._dead: DeltaTarget | None = None
        if on_error == "dead_letter":
            self._dead = DeltaTarget(dead_letter_table or default_dead_letter_uri(table),
                                     storage_options)
        decode = make_decoder(decoder)
        sink_schema = resolve_sink_schema(schema)
        self._consumer_config = consumer_config_of(
            consumer_config, bootstrap_servers=bootstrap_servers, group_id=group_id,
            max_batch_bytes=self.max_batch_bytes)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._trim_memory = os.environ.get("LAKEKIT_SINK_MALLOC", "") != "default"
        # all the commit thread may touch, besides each job's batch and expected offsets
        self._job = JobContext(
            main=self._main, dead=self._dead, decoder=decode, schema=sink_schema,
            group_id=group_id, kafka_metadata=bool(kafka_metadata), on_error=on_error,
            trim_memory=self._trim_memory, held=HeldBytes(),
            kafka=kafka_namespace(bootstrap_servers))
        self._stats = SinkStats()
        self._clock = LoopClock()
        self._server = make_server(
            metrics_port, metrics_host, liveness_timeout=liveness_timeout,
            max_batch_seconds=self.max_batch_seconds, stats=lambda: self.stats,
            info={"group": group_id, "topics": ",".join(self.topics)}, clock=self._clock,
            not_ready=self._not_ready)
        check_compaction_options(compact_every, compact_target_file_size)
        self._compactor = None if compact_every is None else SinkCompactor(
            {"main": self._main.location,
             **({"dead_letter": self._dead.location} if self._dead else {})},
            every=int(compact_every), target_size=compact_target_file_size,
            on_done=self._compacted)
        self._reset_run_state()

    # --- public ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        dead = f", dead_letter_table={self._dead.url!r}" if self._dead else ""
        return (f"KafkaDeltaSink(topics={self.topics!r}, table={self._main.url!r}, "
                f"group_id={self.group_id!r}{dead})")

    @property
    def group_id(self) -> str:
        """The consumer group (read-only: it also names the progress records in the table)."""
        return self._job.group_id

    @property
    def kafka_metadata(self) -> bool:
        """Whether rows carry ``_kafka_topic`` / ``_partition`` / ``_offset`` / ``_timestamp``."""
        return self._job.kafka_metadata

    @property
    def on_error(self) -> Literal["dead_letter", "fail"]:
        """What happens to a bad record: ``"dead_letter"`` or ``"fail"``."""
        return self._job.on_error

    @property
    def table_url(self) -> str:
        """The main table's URL (without credentials)."""
        return self._main.url

    @property
    def dead_letter_url(self) -> str | None:
        """The dead-letter table's URL (without credentials), ``None`` with ``on_error="fail"``."""
        return self._dead.url if self._dead else None

    @property
    def stats(self) -> SinkStats:
        """The numbers so far (safe to read from another thread while :meth:`run` runs)."""
        with self._lock:
            stats = self._stats
        if self._started is not None and self._running:
            stats = replace(stats, elapsed_seconds=time.monotonic() - self._started)
        return stats

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port`` of ``/metrics``, ``/livez`` and ``/readyz`` (the real port
        once :meth:`run` has started with ``metrics_port=0``); ``None`` without a port."""
        return self._server.url if self._server is not None else None

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """The last offset of ``topic[partition]`` recorded in the table (``None``: none yet).

        This is where the sink resumes (the next offset), whatever Kafka's committed
        offsets say.

        Examples
        --------
        >>> sink.committed_offset("events", 0) is None  # nothing written yet
        True
        >>> sink.run(max_messages=3).rows_written
        3
        >>> sink.committed_offset("events", 0)  # the last offset written; a new run resumes at 3
        2
        """
        app = app_id(self.group_id, (topic, int(partition)))
        target = DeltaTarget(self._main.location.url, self._main.location.secrets())
        return retry_call(lambda: target.txn_versions([app])[app],
                          what=f"reading offsets from {self._main.url}")

    def stop(self) -> None:
        """Ask :meth:`run` to flush, commit, leave the group and return (thread-safe)."""
        self._stop.set()

    def run(self, *, stop_after_idle: float | None = None,
            max_messages: int | None = None) -> SinkStats:
        """Consume and commit until stopped; return the stats.

        Stops on :meth:`stop`, SIGINT or SIGTERM (when run in the main thread), after
        ``max_messages`` messages, or once no message has arrived for ``stop_after_idle``
        seconds (counted from the last message or partition assignment). Every stop
        flushes the buffer, commits it and leaves the consumer group.

        Raises
        ------
        BadRecordError
            With ``on_error="fail"``: a record could not be decoded, cast or validated.
        BrokerError, StorageError, TableError, CommitConflictError
            A failure that retries did not cure. The table is at a clean version; what
            was not committed is consumed again by the next run.

        Examples
        --------
        >>> sink.run(stop_after_idle=1)  # doctest: +ELLIPSIS
        SinkStats(records_in=3, rows_written=3, dead_lettered=0, commits=1, table=v0, ...)
        """
        if max_messages is not None and max_messages < 1:
            raise ConfigError("max_messages must be positive")
        self._reset_run_state()
        self._stop.clear()
        with self._lock:
            self._stats = SinkStats()  # the numbers of this run
        if not self._trim_memory:
            return self._run(stop_after_idle, max_messages)
        tune_malloc()
        with prompt_arrow_pool():
            return self._run(stop_after_idle, max_messages)

    def _run(self, stop_after_idle: float | None, max_messages: int | None) -> SinkStats:
        if self._server is None:
            return self._run_consumer(stop_after_idle, max_messages)
        self._server.start()  # before consuming: a port in use fails here
        try:
            return self._run_consumer(stop_after_idle, max_messages)
        finally:
            self._server.stop()

    def _not_ready(self) -> str | None:
        """Why ``/readyz`` fails, or ``None`` (read by the metrics server's thread)."""
        if self._stop.is_set():
            return "stopping"
        if not (self._running and self._assigned_once):
            return "connecting, waiting for the consumer group to assign partitions"
        return None

    def _run_consumer(self, stop_after_idle: float | None,
                      max_messages: int | None) -> SinkStats:
        consumer = connect(self._consumer_config)
        self._consumer = consumer
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakekit-sink-commit")
        self._executor = executor
        old_handlers = install_signal_handlers(self._stop)
        self._started = time.monotonic()
        self._running = True
        clean = False
        try:
            consumer.subscribe(self.topics, listener=_listener(self))
            log.info("sink started: topics %s -> %s (group %s)", ", ".join(self.topics),
                     self._main.url, self.group_id, extra=event(
                         "start", topics=self.topics, table=self._main.url,
                         dead_letter_table=self.dead_letter_url, group_id=self.group_id))
            self._loop(stop_after_idle, max_messages)
            self._collect(block=True)
            if len(self._buffer):
                self._submit("stop")
                self._collect(block=True)
            self._commit_kafka_offsets(sync=True)
            clean = True
        finally:
            self._running = False
            restore_signal_handlers(old_handlers)
            if not clean:
                self._drain_quietly()
                self._owned.clear()  # an error stop: closing must not flush the buffer
            executor.shutdown(wait=True)
            if self._compactor is not None:
                self._compactor.wait()
            try:
                # leaves the group; bounded (a join still in flight is not waited out)
                consumer.close(autocommit=False, timeout_ms=_CLOSE_TIMEOUT_MS)
            except Exception as exc:  # leaving the group is best effort
                log.warning("closing the Kafka consumer failed: %s", exc,
                            extra=event("error", error_type=type(exc).__name__))
            with self._lock:
                self._stats = replace(self._stats,
                                      elapsed_seconds=time.monotonic() - self._started)
        stats = self.stats
        log.info("sink stopped: %d records in, %d rows written, %d dead-lettered, "
                 "%d commits in %.1fs", stats.records_in, stats.rows_written,
                 stats.dead_lettered, stats.commits, stats.elapsed_seconds, extra=event(
                     "stop", records_in=stats.records_in, rows_written=stats.rows_written,
                     dead_lettered=stats.dead_lettered, commits=stats.commits,
                     table_version=stats.table_version, offsets=stats.offsets,
                     elapsed_seconds=round(stats.elapsed_seconds, 3)))
        return stats

    # --- setup ----------------------------------------------------------------------------

    def _reset_run_state(self) -> None:
        self._buffer = BatchBuffer()
        self._expected: dict[TopicPartitionKey, int | None] = {}
        self._owned: set[TopicPartitionKey] = set()
        self._kafka_tps: dict[TopicPartitionKey, Any] = {}
        self._kafka_pending: dict[TopicPartitionKey, int] = {}
        self._future: Future[JobResult] | None = None
        self._inflight: RawBatch | None = None
        self._job.held.value = 0  # decoded rows the commit thread holds (it writes, we read)
        self._pending_error: BaseException | None = None
        self._started = None
        self._running = False
        self._assigned_once = False
        self._last_activity = time.monotonic()
        self._consumer = None
        self._executor = None
        self._clock.turn()

    # --- the consume loop -----------------------------------------------------------------

    def _loop(self, stop_after_idle: float | None, max_messages: int | None) -> None:
        from kafka.errors import KafkaError

        consumed = 0
        failures = 0
        max_records = int(self._consumer_config["max_poll_records"])
        while not self._stop.is_set():
            self._clock.turn()
            self._raise_pending()
            self._wait_for_room()
            want = max_records
            if max_messages is not None:
                want = min(want, max_messages - consumed)
            want = max(1, min(want, self.max_batch_rows - len(self._buffer)))
            try:
                records = self._consumer.poll(timeout_ms=self._poll_timeout_ms(),
                                              max_records=want)
                failures = 0
            except KafkaError as exc:
                self._raise_pending()
                raise_if_codec_missing(exc, self.topics)
                failures += 1
                if not getattr(exc, "retriable", False) or failures > _MAX_POLL_FAILURES:
                    raise BrokerError(
                        f"Kafka consumer failed for topics {self.topics}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
                log.warning("Kafka poll failed (%d/%d), retrying: %s", failures,
                            _MAX_POLL_FAILURES, exc, extra=event(
                                "error", error_type=type(exc).__name__, retrying=True,
                                attempt=failures))
                time.sleep(min(5.0, 0.2 * 2 ** failures))
                continue
            self._raise_pending()
            n = 0
            nbytes = 0
            for tp, recs in records.items():
                key = (tp.topic, tp.partition)
                if key not in self._owned:
                    continue  # fetched before a revocation; the new owner reads it again
                self._kafka_tps[key] = tp
                before = self._buffer.nbytes
                n += self._buffer.add(key, recs)
                nbytes += self._buffer.nbytes - before
            buffered = self._buffered_bytes()
            if n or buffered != self._stats.buffered_bytes:
                consumed += n
                if n:
                    self._last_activity = time.monotonic()
                with self._lock:
                    self._stats = replace(self._stats, records_in=self._stats.records_in + n,
                                          bytes_in=self._stats.bytes_in + nbytes,
                                          buffered_bytes=buffered)
            self._collect(block=False)
            self._commit_kafka_offsets(sync=False)
            reason = self._flush_reason()
            if reason:
                self._submit(reason)
            if max_messages is not None and consumed >= max_messages:
                log.info("consumed max_messages=%d: stopping", max_messages)
                return
            if stop_after_idle is not None and self._idle_for(stop_after_idle):
                return

    def _wait_for_room(self) -> None:
        """Hold off polling while the buffer, the raw bytes the commit thread has not
        decoded yet and the decoded rows it holds reach ``max_batch_bytes`` (so that at
        most that much data, plus one fetch, is held; the commit thread releases it part
        by part)."""
        inflight, future, held = self._inflight, self._future, self._job.held
        start = time.monotonic()
        with self._clock.waiting():
            while (inflight is not None and future is not None and not future.done()
                   and inflight.held + held.value > 0
                   and self._buffer.nbytes + inflight.held + held.value
                   >= self.max_batch_bytes):
                time.sleep(0.005)
        waited = time.monotonic() - start
        if waited > 0.001:
            self._waited(waited)

    def _buffered_bytes(self) -> int:
        """Consumed bytes not committed yet: the buffer's and the job in flight's."""
        inflight = self._inflight
        held = inflight.held + self._job.held.value if inflight is not None else 0
        return self._buffer.nbytes + held

    def _waited(self, seconds: float) -> None:
        """Count time spent waiting for the commit thread; it is not idle time, so that
        ``stop_after_idle`` never stops a sink that was busy with its own commit."""
        self._last_activity = min(time.monotonic(), self._last_activity + seconds)
        with self._lock:
            self._stats = replace(self._stats, wait_seconds=self._stats.wait_seconds + seconds)

    def _idle_for(self, seconds: float) -> bool:
        idle = time.monotonic() - self._last_activity
        if not self._assigned_once:
            if idle >= max(seconds, _FIRST_ASSIGNMENT_WAIT):
                log.warning("no partition was assigned within %.0fs: stopping", idle)
                return True
            return False
        if idle >= seconds:
            log.info("no message for %.1fs: stopping", idle)
            return True
        return False

    def _poll_timeout_ms(self) -> int:
        timeout = 0.5
        first = self._buffer.first_at
        if first is not None:
            timeout = min(timeout, max(0.0, first + self.max_batch_seconds - time.monotonic()))
        return int(timeout * 1000)

    def _flush_reason(self) -> str | None:
        buf = self._buffer
        if not len(buf):
            return None
        if len(buf) >= self.max_batch_rows:
            return "rows"
        if buf.nbytes >= self.max_batch_bytes:
            return "bytes"
        if buf.first_at is not None and time.monotonic() - buf.first_at >= self.max_batch_seconds:
            return "seconds"
        if self._stop.is_set():
            return "stop"
        return None

    def _raise_pending(self) -> None:
        if self._pending_error is not None:
            exc, self._pending_error = self._pending_error, None
            raise exc

    # --- jobs -----------------------------------------------------------------------------

    def _submit(self, reason: str) -> None:
        """Hand the buffer to the commit thread (after the previous job is done)."""
        if self._future is not None and not self._future.done():
            start = time.monotonic()
            with self._clock.waiting():
                self._future.exception()  # wait; _collect re-raises
            self._waited(time.monotonic() - start)
        self._collect(block=True)
        if not len(self._buffer):
            return
        batch = self._buffer.take()
        self._inflight = batch
        expected = {tp: self._expected.get(tp) for tp in batch.partitions}
        assert self._executor is not None
        # the job takes the batch out of the list, so that the raw bytes can be freed as
        # soon as they are decoded (the executor keeps its arguments until the job ends)
        self._future = self._executor.submit(commit_job, [batch], expected, reason, self._job)

    def _collect(self, *, block: bool) -> None:
        """Apply the result of the finished job (waiting for it when ``block``)."""
        future = self._future
        if future is None or (not block and not future.done()):
            return
        self._future = None
        self._inflight = None
        try:
            with self._clock.waiting():
                result = future.result()  # re-raises the job's error
        except TableError:
            with self._lock:  # storage or conflicts that retries did not cure
                self._stats = replace(self._stats,
                                      commit_failures=self._stats.commit_failures + 1)
            raise
        self._apply(result)

    def _drain_quietly(self) -> None:
        future, self._future = self._future, None
        if future is not None:
            try:
                future.result()
            except BaseException as exc:
                log.debug("in-flight commit failed while stopping: %s", exc)

    # --- results --------------------------------------------------------------------------

    def _apply(self, result: JobResult) -> None:
        out = result.outcome
        for tp, last in out.committed.items():
            if tp in self._expected:
                self._expected[tp] = last
            if tp in self._owned:
                self._kafka_pending[tp] = last
        dropped = 0
        for tp, found in out.lost.items():
            dropped += result.counts.get(tp, 0) + self._handle_lost(tp, found)
        lag = {}
        for tp in result.partitions:
            kafka_tp = self._kafka_tps.get(tp)
            if kafka_tp is None or self._consumer is None or tp not in out.committed:
                continue
            high = self._consumer.highwater(kafka_tp)
            if high is not None:
                lag[tp_name(*tp)] = max(0, int(high) - out.committed[tp] - 1)
        summary = result.summary(lag)
        log.info("%s", summary, extra=event("commit", **commit_fields(summary)))
        with self._lock:
            s = self._stats
            self._stats = replace(
                s,
                rows_written=s.rows_written + out.rows_written,
                dead_lettered=s.dead_lettered + out.dead_lettered,
                dropped_on_rebalance=s.dropped_on_rebalance + dropped,
                commits=s.commits + 1,
                table_version=out.version if out.version is not None else s.table_version,
                dead_letter_version=(out.dead_letter_version
                                     if out.dead_letter_version is not None
                                     else s.dead_letter_version),
                offsets={**s.offsets, **summary.offsets},
                lag={**s.lag, **lag},
                commit_seconds=s.commit_seconds + result.decode_seconds + result.commit_seconds,
                last_commit=summary,
                **stats_after_commit(s, result),
                buffered_bytes=self._buffered_bytes(),
            )
        if self._compactor is not None:  # compacts where it owns the first topic's partition 0
            self._compactor.committed(main=out.version is not None,
                                      dead_letter=out.dead_letter_version is not None,
                                      allowed=(self.topics[0], 0) in self._owned)

    def _compacted(self, outcome: CompactionOutcome) -> None:
        """Count a compaction (called from the compaction thread)."""
        with self._lock:
            s = self._stats
            self._stats = replace(
                s, compactions=s.compactions + (outcome.version is not None),
                compaction_failures=s.compaction_failures + (not outcome.ok))

    def _handle_lost(self, tp: TopicPartitionKey, found: int | None) -> int:
        """Another writer committed ``tp``: forget our rows of it and re-read from the table's."""
        log.warning("%s was committed by another writer (table has offset %s); dropping the "
                    "buffered messages of it and re-reading from there", tp_name(*tp), found,
                    extra=event("rebalance", lost=[tp_name(*tp)], table_offset=found))
        dropped = self._buffer.drop([tp])
        self._kafka_pending.pop(tp, None)
        if tp in self._owned:
            self._expected[tp] = found
            self._seek(tp, found)
        return dropped

    def _seek(self, tp: TopicPartitionKey, version: int | None) -> None:
        kafka_tp = self._kafka_tps.get(tp)
        if kafka_tp is None:
            from kafka import TopicPartition

            kafka_tp = self._kafka_tps[tp] = TopicPartition(*tp)
        seek(self._consumer, kafka_tp, version,
             auto_offset_reset=self._consumer_config["auto_offset_reset"])

    def _commit_kafka_offsets(self, *, sync: bool) -> None:
        """Commit Delta-committed offsets to Kafka too, for lag monitoring only."""
        if not self._kafka_pending or self._consumer is None:
            return
        last = {self._kafka_tps[tp]: offset for tp, offset in self._kafka_pending.items()
                if tp in self._owned and tp in self._kafka_tps}
        self._kafka_pending = {}
        commit_offsets(self._consumer, last, sync=sync)

    # --- rebalances (called by kafka-python inside poll) ----------------------------------

    def _on_revoked(self, revoked: Sequence[Any]) -> None:
        if not self._owned:
            return
        self._collect(block=True)
        if len(self._buffer):
            self._submit("rebalance")
            self._collect(block=True)
        if self._compactor is not None:
            self._compactor.wait()  # the next owner of partition 0 may start compacting
        revoked_names = sorted(tp_name(*tp) for tp in self._owned)
        log.info("partitions revoked after flushing: %s", ", ".join(revoked_names),
                 extra=event("rebalance", revoked=revoked_names))
        self._owned.clear()
        self._expected.clear()
        self._kafka_pending.clear()
        self._set_assigned()

    def _set_assigned(self) -> None:
        with self._lock:
            self._stats = replace(self._stats, assigned_partitions=len(self._owned))

    def _on_lost(self, lost: Sequence[Any]) -> None:
        keys = [(tp.topic, tp.partition) for tp in lost]
        self._drain_quietly()
        if self._compactor is not None:
            self._compactor.wait()
        dropped = self._buffer.drop(keys)
        log.warning("lost partitions %s (group membership expired); dropped %d buffered "
                    "messages, which their new owner reads again",
                    ", ".join(sorted(tp_name(*k) for k in keys)), dropped,
                    extra=event("rebalance", lost=sorted(tp_name(*k) for k in keys),
                                dropped=dropped))
        self._owned.clear()
        self._expected.clear()
        self._kafka_pending.clear()
        self._set_assigned()

    def _on_assigned(self, assigned: Sequence[Any]) -> None:
        self._collect(block=True)
        keys = [(tp.topic, tp.partition) for tp in assigned]
        for tp in assigned:
            self._kafka_tps[(tp.topic, tp.partition)] = tp
        apps = {app_id(self.group_id, k): k for k in keys}
        versions = retry_call(lambda: self._main.txn_versions(apps),
                              what=f"reading offsets from {self._main.url}")
        self._buffer.drop(self._buffer.partitions())  # empty after a revocation; be sure
        self._owned = set(keys)
        self._expected = {}
        for app, key in apps.items():
            version = versions[app]
            self._expected[key] = version
            self._seek(key, version)
        self._assigned_once = True
        self._last_activity = time.monotonic()
        with self._lock:
            self._stats = replace(self._stats, rebalances=self._stats.rebalances + 1,
                                  assigned_partitions=len(self._owned))
        start = {tp_name(*k): (v + 1 if (v := self._expected[k]) is not None
                               else self._consumer_config["auto_offset_reset"])
                 for k in sorted(keys)}
        log.info("partitions assigned: %s", ", ".join(
            f"{name} from {offset}" for name, offset in start.items()) or "none",
            extra=event("rebalance", assigned=list(start), start_offsets=start))


def _listener(sink: KafkaDeltaSink) -> Any:
    """A kafka-python rebalance listener: flush before revocation, seek after assignment.

    Errors are kept on the sink and re-raised by its loop (kafka-python only logs them).
    """
    from kafka import ConsumerRebalanceListener

    def guard(fn: Callable[[Any], None], arg: Any) -> None:
        if sink._pending_error is not None:
            return
        try:
            fn(arg)
        except BaseException as exc:
            sink._pending_error = exc
            raise

    class _Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: Any) -> None:
            guard(sink._on_revoked, revoked)

        def on_partitions_assigned(self, assigned: Any) -> None:
            guard(sink._on_assigned, assigned)

        def on_partitions_lost(self, lost: Any) -> None:
            guard(sink._on_lost, lost)

    return _Listener()
