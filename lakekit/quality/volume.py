"""Volume: the row count of a source, from metadata where it has one.

Delta tables count from the log (``numRecords`` of each file, less rows removed by
deletion vectors); parquet from footers; JSONL / CSV are counted by a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from lakekit.errors import ConfigError
from lakekit.io.formats import FORMATS
from lakekit.quality.report import CheckResult, Status
from lakekit.quality.sources import Source, guard

__all__ = ["Volume", "check_volume", "row_count"]


@dataclass(frozen=True)
class Volume:
    """A volume check: fail when the row count is outside ``[min_rows, max_rows]``.

    Examples
    --------
    >>> import lakekit as lk
    >>> lk.Volume(min_rows=1_000)
    Volume(min_rows=1000, max_rows=None)
    """

    min_rows: int | None = None
    max_rows: int | None = None
    name: ClassVar[str] = "volume"

    def evaluate(self, source: Source, *, now: datetime) -> CheckResult:
        """Run this check on ``source`` (the :class:`~lakekit.quality.protocol.Check` protocol)."""
        return check_volume(source, self)

    def __post_init__(self) -> None:
        for name in ("min_rows", "max_rows"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ConfigError(f"Volume {name} must be a non-negative integer; got {value!r}")
        if self.min_rows is None and self.max_rows is None:
            raise ConfigError("Volume needs min_rows, max_rows or both")
        if (self.min_rows is not None and self.max_rows is not None
                and self.min_rows > self.max_rows):
            raise ConfigError(
                f"Volume min_rows ({self.min_rows}) is greater than max_rows ({self.max_rows})"
            )


def check_volume(source: Source, volume: Volume) -> CheckResult:
    """Run ``volume`` on ``source``; ``observed`` is the row count."""
    rows, method = row_count(source)
    status: Status = "pass"
    expected = []
    if volume.min_rows is not None:
        expected.append(f">= {volume.min_rows:,}")
        if rows < volume.min_rows:
            status = "fail"
    if volume.max_rows is not None:
        expected.append(f"<= {volume.max_rows:,}")
        if rows > volume.max_rows:
            status = "fail"
    message = f"{rows:,} rows (expected {' and '.join(expected)}) ({method})"
    threshold = {"min_rows": volume.min_rows, "max_rows": volume.max_rows}
    return CheckResult("volume", status, rows, threshold, message, {"method": method})


def row_count(source: Source) -> tuple[int, str]:
    """The number of rows of ``source`` and how it was counted."""
    if source.frame is not None:
        return source.frame.height, "in-memory data"
    if source.kind == "delta":
        counted = guard(lambda: _delta_rows(source), what=source.label, redact=source.redact)
        if counted is not None:
            return counted, "from the Delta log, no data file read"
    ds = source.dataset()
    rows = guard(ds.count_rows, what=source.label, redact=source.redact)
    how = "from parquet footers" if FORMATS[ds.format].parquet_files else "by a scan"
    return int(rows), how


def _delta_rows(source: Source) -> int | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    actions = pa.table(source.delta_table().get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    records = actions.column("num_records")
    if records.null_count:
        return None
    total: Any = pc.sum(records).as_py() or 0
    for name in ("deletionVector.cardinality", "deletion_vector.cardinality"):
        if name in actions.column_names:
            total -= pc.sum(actions.column(name)).as_py() or 0
    return int(total)
