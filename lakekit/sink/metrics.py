"""The sink's Prometheus metrics, read from its :class:`~lakekit.SinkStats` at scrape time.

:class:`SinkCollector` is a ``prometheus_client`` collector: every scrape takes one
snapshot of the running sink's stats (the numbers ``sink.stats`` returns, under the
sink's lock) and turns it into metric families, so the metrics and the stats cannot
disagree and nothing is counted twice. Names carry the ``lakekit_sink_`` prefix and base
units (seconds, bytes). Labels are topic names, partition numbers, the group id and the
version: never an option value, so no credential can reach a label.

``prometheus_client`` (the ``[metrics]`` extra) is imported only when a sink is given a
``metrics_port``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lakekit.sink.stats import Histogram, SinkStats, split_tp_name

if TYPE_CHECKING:
    from lakekit.sink.prepare import JobResult

__all__ = ["PREFIX", "SinkCollector", "metric_names", "stats_after_commit"]

PREFIX = "lakekit_sink_"

_COUNTERS = (
    ("records_in", "records_in", "Kafka messages consumed."),
    ("bytes_in", "bytes_in", "Bytes of Kafka message values consumed."),
    ("rows_written", "rows_written", "Rows appended to the main Delta table."),
    ("dead_lettered", "dead_lettered", "Rows appended to the dead-letter table."),
    ("commits", "commits", "Batches flushed and committed."),
    ("commit_retries", "commit_retries",
     "Commit attempts beyond the first (conflicts, transient storage errors)."),
    ("commit_failures", "commit_failures", "Commits that failed after their retries."),
    ("rebalances", "rebalances", "Partition assignments received."),
    ("dropped_on_rebalance", "dropped_on_rebalance",
     "Messages not written because another writer committed their partition first "
     "(re-read by the partition's new owner)."),
    ("compactions", "compactions",
     "Compaction commits written (compact_every), main and dead-letter table."),
    ("compaction_failures", "compaction_failures",
     "Compactions skipped after their retries failed (the appends went on)."),
)
"""(metric name without prefix and ``_total``, SinkStats field, help)."""

_HISTOGRAMS = (
    ("commit_duration_seconds", "commit_duration",
     "Seconds a commit took once its batch was decoded (retries included)."),
    ("decode_duration_seconds", "decode_duration",
     "Seconds a batch took to decode, validate and write its files."),
    ("batch_records", "batch_records", "Records per flushed batch."),
)


def stats_after_commit(s: SinkStats, result: JobResult) -> dict[str, Any]:
    """The :class:`SinkStats` fields a finished commit job updates for the metrics (retries,
    the duration and size histograms, the commit time), to apply with the rest."""
    return {"commit_retries": s.commit_retries + max(0, result.outcome.attempts - 1),
            "commit_duration": s.commit_duration.observe(result.commit_seconds),
            "decode_duration": s.decode_duration.observe(result.decode_seconds),
            "batch_records": s.batch_records.observe(result.records),
            "last_commit_at": time.time()}


def metric_names() -> list[str]:
    """The sink's own metric names, as exposed (without the ``_bucket`` / ``_sum`` /
    ``_count`` series of histograms).

    Examples
    --------
    >>> [n for n in metric_names() if "commit" in n][:3]
    ['lakekit_sink_commits_total', 'lakekit_sink_commit_retries_total', \
'lakekit_sink_commit_failures_total']
    """
    return ([f"{PREFIX}{name}_total" for name, _, _ in _COUNTERS]
            + [f"{PREFIX}{name}" for name, _, _ in _HISTOGRAMS]
            + [f"{PREFIX}{name}" for name in (
                "table_version", "dead_letter_table_version", "committed_offset",
                "consumer_lag", "assigned_partitions", "buffered_bytes",
                "last_commit_timestamp_seconds", "info")])


class SinkCollector:
    """A ``prometheus_client`` collector of a sink's numbers.

    Parameters
    ----------
    stats
        Returns the sink's current stats (``lambda: sink.stats``); called once a scrape.
    info
        The labels of ``lakekit_sink_info`` (version, group, topics).

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> registry.register(SinkCollector(lambda: SinkStats(records_in=7, offsets={"events[0]": 6}),
    ...                                 {"version": "0.1.0", "group": "g", "topics": "events"}))
    >>> text = generate_latest(registry).decode()
    >>> print("\\n".join(line for line in text.splitlines()
    ...                 if line.startswith(("lakekit_sink_records_in_total",
    ...                                      "lakekit_sink_committed_offset"))))
    lakekit_sink_records_in_total 7.0
    lakekit_sink_committed_offset{partition="0",topic="events"} 6.0
    """

    def __init__(self, stats: Callable[[], SinkStats], info: dict[str, str]) -> None:
        self._stats = stats
        self._info = dict(info)

    def collect(self) -> Iterator[Any]:
        """The metric families of one snapshot of the stats."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
        )

        s = self._stats()
        yield InfoMetricFamily("lakekit_sink", "The sink: lakekit version, group and topics.",
                               value=self._info)
        for name, attr, doc in _COUNTERS:
            yield CounterMetricFamily(f"{PREFIX}{name}", doc, value=getattr(s, attr))
        for name, attr, doc in _HISTOGRAMS:
            hist: Histogram = getattr(s, attr)
            yield HistogramMetricFamily(f"{PREFIX}{name}", doc, buckets=_buckets(hist),
                                        sum_value=hist.sum)
        for name, value, doc in (
            ("table_version", s.table_version,
             "The main table's version after the sink's last commit."),
            ("dead_letter_table_version", s.dead_letter_version,
             "The dead-letter table's version after the sink's last commit to it."),
            ("last_commit_timestamp_seconds", s.last_commit_at,
             "Unix time of the last commit."),
        ):
            gauge = GaugeMetricFamily(f"{PREFIX}{name}", doc)
            if value is not None:  # no sample until there is a value
                gauge.add_metric([], value)
            yield gauge
        yield GaugeMetricFamily(f"{PREFIX}assigned_partitions",
                                "Partitions this process holds.", value=s.assigned_partitions)
        yield GaugeMetricFamily(f"{PREFIX}buffered_bytes",
                                "Bytes of consumed messages not committed yet.",
                                value=s.buffered_bytes)
        yield _per_partition(GaugeMetricFamily, "committed_offset",
                             "The last offset committed to the table, per partition.",
                             s.offsets.items())
        yield _per_partition(GaugeMetricFamily, "consumer_lag",
                             "Messages behind the partition's high watermark at the last "
                             "commit.", s.lag.items())


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    bounds = [_le(b) for b in hist.bounds] + ["+Inf"]
    return list(zip(bounds, [float(c) for c in hist.cumulative()], strict=True))


def _le(bound: float) -> str:
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(bound))


def _per_partition(family: Any, name: str, doc: str,
                   items: Sequence[tuple[str, int]] | Any) -> Any:
    metric = family(f"{PREFIX}{name}", doc, labels=["topic", "partition"])
    for key, value in sorted(items):
        topic, partition = split_tp_name(key)
        metric.add_metric([topic, str(partition)], value)
    return metric
