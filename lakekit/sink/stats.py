"""What the sink reports: :class:`SinkStats` (cumulative), :class:`CommitSummary` (per commit)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lakekit.sink._html import sink_stats_html, sink_stats_repr

__all__ = ["CommitSummary", "SinkStats"]


def tp_name(topic: str, partition: int) -> str:
    """``topic[partition]``, the key used in stats mappings."""
    return f"{topic}[{partition}]"


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
