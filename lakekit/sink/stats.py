"""What the sink reports: :class:`SinkStats` (cumulative), :class:`CommitSummary` (per commit)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate

from lakekit.sink._html import sink_stats_html, sink_stats_repr

__all__ = ["BATCH_RECORDS_BUCKETS", "DURATION_BUCKETS", "CommitSummary", "Histogram",
           "SinkStats"]

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Upper bounds (seconds) of the decode and commit duration histograms."""
BATCH_RECORDS_BUCKETS = (10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0, 100_000.0,
                         500_000.0, 1_000_000.0)
"""Upper bounds of the records-per-batch histogram."""


def tp_name(topic: str, partition: int) -> str:
    """``topic[partition]``, the key used in stats mappings."""
    return f"{topic}[{partition}]"


def split_tp_name(name: str) -> tuple[str, int]:
    """The inverse of :func:`tp_name` (Kafka topic names cannot contain brackets).

    Examples
    --------
    >>> split_tp_name(tp_name("events.v2", 3))
    ('events.v2', 3)
    """
    topic, _, rest = name.rpartition("[")
    return topic, int(rest.rstrip("]"))


@dataclass(frozen=True)
class Histogram:
    """Counts of observed values per bucket (``counts[i]``: values <= ``bounds[i]`` and
    above the bound before; the last count is above every bound), and their sum.

    Examples
    --------
    >>> h = Histogram((1.0, 10.0)).observe(0.5).observe(3.0).observe(30.0)
    >>> h.counts, h.cumulative(), h.count, h.sum
    ((1, 1, 1), [1, 2, 3], 3, 33.5)
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...] = ()
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            object.__setattr__(self, "counts", (0,) * (len(self.bounds) + 1))

    @property
    def count(self) -> int:
        """How many values were observed."""
        return sum(self.counts)

    def observe(self, value: float) -> Histogram:
        """A new histogram with ``value`` counted."""
        i = bisect_left(self.bounds, value)
        counts = list(self.counts)
        counts[i] += 1
        return Histogram(self.bounds, tuple(counts), self.sum + value)

    def cumulative(self) -> list[int]:
        """Values <= each bound, then all of them (Prometheus' ``le`` buckets)."""
        return list(accumulate(self.counts))


@dataclass(frozen=True)
class CommitSummary:
    """One flushed batch: what came in, where it went, and how long the commit took.

    ``offsets`` maps ``topic[partition]`` to the last offset committed; ``lag`` to the
    messages behind the partition's high watermark as last seen by the consumer.
    """

    version: int | None
    dead_letter_version: int | None
    records: int
    rows_written: int
    dead_lettered: int
    dead_letter_skipped: int
    offsets: dict[str, int]
    lag: dict[str, int]
    lost: dict[str, int | None]
    decode_seconds: float
    commit_seconds: float
    attempts: int
    reason: str

    def __str__(self) -> str:
        where = f"v{self.version}" if self.version is not None else "no data commit"
        dl = (f", {self.dead_lettered} dead-lettered (v{self.dead_letter_version})"
              if self.dead_lettered else "")
        skipped = (f", {self.dead_letter_skipped} already dead-lettered"
                   if self.dead_letter_skipped else "")
        parts = ", ".join(
            f"{k}@{v}" + (f" lag {self.lag[k]}" if k in self.lag else "")
            for k, v in sorted(self.offsets.items())
        )
        lost = f"; lost to another writer: {sorted(self.lost)}" if self.lost else ""
        return (f"commit {where} ({self.reason}): {self.records} records in, "
                f"{self.rows_written} rows written{dl}{skipped}; decode "
                f"{self.decode_seconds * 1000:.0f} ms, commit {self.commit_seconds * 1000:.0f} ms"
                f"{'' if self.attempts == 1 else f' after {self.attempts} attempts'}; "
                f"offsets {parts or '-'}{lost}")


@dataclass(frozen=True, repr=False)
class SinkStats:
    """Cumulative numbers of a :class:`~lakekit.KafkaDeltaSink` run.

    Examples
    --------
    >>> SinkStats().records_in
    0
    """

    records_in: int = 0
    """Messages consumed."""
    bytes_in: int = 0
    """Bytes of message values consumed."""
    rows_written: int = 0
    """Rows appended to the main table."""
    dead_lettered: int = 0
    """Rows appended to the dead-letter table."""
    dropped_on_rebalance: int = 0
    """Consumed messages not written because another writer had committed their partition
    first (its current owner reads them again: they are not lost)."""
    commits: int = 0
    """Batches flushed."""
    table_version: int | None = None
    """The main table's version after the last commit."""
    dead_letter_version: int | None = None
    """The dead-letter table's version after its last commit."""
    offsets: dict[str, int] = field(default_factory=dict)
    """Last committed offset per ``topic[partition]``."""
    lag: dict[str, int] = field(default_factory=dict)
    """Messages behind the high watermark per ``topic[partition]`` at the last commit."""
    rebalances: int = 0
    """Partition assignments received."""
    elapsed_seconds: float = 0.0
    """Wall time of the run so far."""
    commit_seconds: float = 0.0
    """Total time spent committing (decode, validate, write), in the commit thread."""
    wait_seconds: float = 0.0
    """Time the consume loop waited for the previous commit to finish (backpressure)."""
    last_commit: CommitSummary | None = None
    """The most recent commit."""
    commit_retries: int = 0
    """Commit attempts beyond the first (conflicts and transient storage errors)."""
    commit_failures: int = 0
    """Commits that failed after their retries (the sink then stops)."""
    commit_duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    """Seconds each commit took once its batch was decoded (the Delta commits, retries
    included)."""
    decode_duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    """Seconds each batch took to decode, validate and write its files."""
    batch_records: Histogram = field(
        default_factory=lambda: Histogram(BATCH_RECORDS_BUCKETS))
    """Records per flushed batch."""
    last_commit_at: float | None = None
    """Wall-clock time (Unix seconds) of the last commit."""
    assigned_partitions: int = 0
    """Partitions this process holds now."""
    buffered_bytes: int = 0
    """Bytes of consumed messages not committed yet: buffered, or held by the commit in
    flight (as of the last poll)."""
    compactions: int = 0
    """Compaction commits written (``compact_every``), main and dead-letter table."""
    compaction_failures: int = 0
    """Compactions skipped after their retries failed (the sink's appends went on)."""

    @property
    def records_per_second(self) -> float:
        """Messages consumed per second of the run."""
        return self.records_in / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: records, rows, dead letters, commits, versions, rate."""
        version = "-" if self.table_version is None else f"v{self.table_version}"
        return (f"{self.records_in:,} records in, {self.rows_written:,} rows written, "
                f"{self.dead_lettered:,} dead-lettered, {self.commits} commits (table "
                f"{version}) in {self.elapsed_seconds:.1f}s, "
                f"{self.records_per_second:,.0f} records/s")

    def __repr__(self) -> str:
        return sink_stats_repr(self)

    def _repr_html_(self) -> str:
        return sink_stats_html(self)
