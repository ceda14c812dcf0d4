"""Results of :class:`lakekit.Table` operations: frozen dataclasses, no dict-of-dicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["ColumnChange", "Commit", "CompactResult", "TableDiff", "VacuumResult"]

# commitInfo keys Delta writers set themselves; everything else is the caller's metadata.
STANDARD_KEYS = frozenset({
    "timestamp", "operation", "operationParameters", "operationMetrics", "engineInfo",
    "clientVersion", "version", "readVersion", "isolationLevel", "isBlindAppend",
    "userId", "userName", "txnId", "inCommitTimestamp", "lakekit.write_id",
})


@dataclass(frozen=True)
class Commit:
    """One version of a table, as ``history()`` reports it.

    Attributes
    ----------
    version
        The table version this commit created.
    timestamp
        When it was committed (timezone-aware, UTC).
    operation
        ``"WRITE"``, ``"MERGE"``, ``"DELETE"``, ``"RESTORE"``, ``"OPTIMIZE"``, ...
    parameters
        The operation's parameters (``mode``, ``predicate``, ...).
    metrics
        The operation's metrics (``num_added_rows``, ``num_retries``, ...).
    metadata
        The metadata the writer attached (``write(..., metadata=...)``).
    """

    version: int
    timestamp: datetime
    operation: str
    parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)
    metrics: Mapping[str, Any] = field(default_factory=dict, hash=False)
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    write_id: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_delta(cls, info: Mapping[str, Any]) -> Commit:
        """Build from one entry of ``deltalake.DeltaTable.history()``."""
        millis = int(info.get("timestamp") or 0)
        return cls(
            version=int(info["version"]),
            timestamp=datetime.fromtimestamp(millis / 1000, tz=timezone.utc),
            operation=str(info.get("operation", "UNKNOWN")),
            parameters=dict(info.get("operationParameters") or {}),
            metrics=dict(info.get("operationMetrics") or {}),
            metadata={k: v for k, v in info.items() if k not in STANDARD_KEYS},
            write_id=info.get("lakekit.write_id"),
        )

    def __str__(self) -> str:
        meta = f" {dict(self.metadata)}" if self.metadata else ""
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        return (
            f"v{self.version} {self.timestamp.isoformat(timespec='seconds')} "
            f"{self.operation}({params}){meta}"
        )


@dataclass(frozen=True)
class ColumnChange:
    """A column whose type differs between two versions."""

    name: str
    from_type: str
    to_type: str


@dataclass(frozen=True)
class TableDiff:
    """What changed between two versions of a table.

    Rows are counted per data file (from the Delta log's file statistics): an upsert that
    rewrites a 1,000-row file to change one row counts 1,000 rows removed and 1,000 added.
    ``net_rows`` is the exact change in the row count.
    """

    from_version: int
    to_version: int
    files_added: tuple[str, ...]
    files_removed: tuple[str, ...]
    rows_added: int
    rows_removed: int
    num_rows_from: int
    num_rows_to: int
    columns_added: tuple[str, ...]
    columns_removed: tuple[str, ...]
    columns_retyped: tuple[ColumnChange, ...]
    operations: tuple[Commit, ...]

    @property
    def net_rows(self) -> int:
        """The change in the number of rows, ``num_rows_to - num_rows_from``."""
        return self.num_rows_to - self.num_rows_from

    @property
    def schema_changed(self) -> bool:
        """True when columns were added, removed or retyped."""
        return bool(self.columns_added or self.columns_removed or self.columns_retyped)

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"v{self.from_version} -> v{self.to_version}: "
            f"{self.num_rows_from:,} -> {self.num_rows_to:,} rows ({self.net_rows:+,})",
            f"files: +{len(self.files_added)} -{len(self.files_removed)}; "
            f"rows in those files: +{self.rows_added:,} -{self.rows_removed:,}",
        ]
        if self.schema_changed:
            parts = [f"+{c}" for c in self.columns_added]
            parts += [f"-{c}" for c in self.columns_removed]
            parts += [f"{c.name}: {c.from_type} -> {c.to_type}" for c in self.columns_retyped]
            lines.append("schema: " + ", ".join(parts))
        else:
            lines.append("schema: unchanged")
        ops = ", ".join(f"v{c.version} {c.operation}" for c in self.operations)
        lines.append(f"operations: {ops or 'none'}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CompactResult:
    """What ``compact()`` did."""

    version: int
    files_added: int
    files_removed: int


@dataclass(frozen=True)
class VacuumResult:
    """What ``vacuum()`` removed, or would remove when ``dry_run``."""

    files: tuple[str, ...]
    dry_run: bool
    protected_versions: tuple[int, ...]
