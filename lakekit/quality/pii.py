"""Pii: which string columns hold personal data (emails, phones, cards, IBANs, IPs, SSNs).

The detectors of :mod:`lakekit.quality.pii_detect` run vectorised on a seeded, bounded
sample of the rows (``sample=None``: every row, streamed batch by batch), read through
lakekit's loaders with only the string columns asked for. The result per column gives,
per kind, the rows holding one and their ratio; a ratio above ``max_ratio`` fails the
column (above ``warn_ratio``, warns). **No detected value leaves the check**: messages,
details, the report's JSON and HTML, logs and errors hold counts and masked examples
(``j***@e***.com``, ``**** 4242``) only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from lakekit.errors import ConfigError
from lakekit.quality.pii_detect import KINDS, detect_all
from lakekit.quality.report import CheckResult, Status
from lakekit.quality.sources import Source, guard
from lakekit.quality.validation import SAMPLE_SEED, _reservoir

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

__all__ = ["Pii"]

log = logging.getLogger(__name__)

_EXAMPLES = 3
_BATCH_ROWS = 262_144  # sample=None: rows per batch (4x the loaders' default: less re-cutting)


@dataclass(frozen=True)
class Pii:
    """A PII check: fail a string column where the share of rows holding a kind of
    personal data is above ``max_ratio``.

    Parameters
    ----------
    columns
        The string columns to scan; ``None``: every string column.
    kinds
        What to look for, any of ``"email"``, ``"phone"``, ``"credit_card"`` (Luhn and
        issuer checked), ``"iban"`` (mod-97 checked), ``"ipv4"``, ``"ssn"``.
    max_ratio
        Fail a column when the rows holding a kind, over the non-null rows scanned, are
        more than this (0 to 1; default 0: any finding fails).
    warn_ratio
        Warn (rather than pass) above this ratio; ``None``: no warning step.
    sample
        Scan a seeded uniform sample of this many rows (deterministic: the same data gives
        the same sample); ``None`` scans every row.

    Examples
    --------
    >>> import lakekit as lk, polars as pl
    >>> df = pl.DataFrame({"note": ["call me", "mail jane.doe@example.com"]})
    >>> report = lk.check(df, checks=[lk.Pii(kinds=("email",))])
    >>> report.status, report.result("pii").message
    ('fail', "column 'note': email in 1 of 2 rows (50.00%, e.g. j***@e***.com)")
    """

    columns: Sequence[str] | None = None
    kinds: Sequence[str] = ("email", "phone", "credit_card", "iban", "ipv4", "ssn")
    max_ratio: float = 0.0
    warn_ratio: float | None = None
    sample: int | None = 100_000
    name: ClassVar[str] = "pii"

    def __post_init__(self) -> None:
        kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ConfigError(f"Pii kinds: unknown {', '.join(map(repr, unknown)) or 'none given'}"
                              f"; choose from {', '.join(KINDS)}")
        object.__setattr__(self, "kinds", tuple(dict.fromkeys(kinds)))
        if self.columns is not None:
            columns = (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)
            if not columns or not all(isinstance(c, str) and c for c in columns):
                raise ConfigError("Pii columns must be a list of column names, or None for "
                                  f"every string column; got {self.columns!r}")
            object.__setattr__(self, "columns", tuple(dict.fromkeys(columns)))
        for name in ("max_ratio", "warn_ratio"):
            value = getattr(self, name)
            if value is None and name == "warn_ratio":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and 0 <= value <= 1):
                raise ConfigError(f"Pii {name} must be a ratio between 0 and 1 (0.01 = 1%); "
                                  f"got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.warn_ratio is not None and self.warn_ratio >= self.max_ratio:
            raise ConfigError(f"Pii warn_ratio ({self.warn_ratio}) must be below max_ratio "
                              f"({self.max_ratio}); drop warn_ratio or raise max_ratio")
        if self.sample is not None and (isinstance(self.sample, bool) or not isinstance(
                self.sample, int) or self.sample <= 0):
            raise ConfigError(f"Pii sample must be a positive number of rows or None (every "
                              f"row); got {self.sample!r}")

    def evaluate(self, source: Source, *, now: datetime) -> list[CheckResult]:
        """Scan ``source`` (the :class:`~lakekit.quality.protocol.Check` protocol): one
        result per column."""
        columns = self._string_columns(source)
        if not columns:
            return [CheckResult("pii", "warn", None, self.max_ratio,
                                "no string column to scan for PII", {"columns": []})]
        tally = _Tally(columns, tuple(self.kinds))
        for frame in _frames(source, columns, self.sample):
            tally.add(frame)
        method = ("every row" if self.sample is None
                  else f"a seeded sample of at most {self.sample:,} rows")
        results = [self._result(tally, c, method) for c in columns]
        log.info("pii: %s: scanned %s rows (%s) of %d column(s): %s", source.label,
                 f"{tally.rows:,}", method, len(columns),
                 ", ".join(f"{r.details['column']}={r.status}" for r in results))
        return results

    def _string_columns(self, source: Source) -> list[str]:
        schema = source.arrow_schema()
        strings = [f.name for f in schema if _is_string(f.type)]
        if self.columns is None:
            return strings
        names = set(schema.names)
        for c in self.columns:
            if c not in names:
                raise ConfigError(f"Pii: {source.label} has no column {c!r}; its string "
                                  f"columns: {', '.join(strings) or 'none'}")
            if c not in strings:
                raise ConfigError(
                    f"Pii: column {c!r} of {source.label} is {schema.field(c).type}, not a "
                    f"string column; scan string columns only ({', '.join(strings) or 'none'})")
        return list(self.columns)

    def _result(self, tally: _Tally, column: str, method: str) -> CheckResult:
        scanned = tally.non_null[column]
        kinds: dict[str, Any] = {}
        found: list[str] = []
        worst_ratio = 0.0
        for kind in self.kinds:
            count = tally.counts[column][kind]
            ratio = count / scanned if scanned else 0.0
            worst_ratio = max(worst_ratio, ratio)
            kinds[kind] = {"rows": count, "ratio": ratio,
                           "examples": list(tally.examples[column][kind])}
            if count:
                example = tally.examples[column][kind][:1]
                found.append(f"{kind} in {count:,}" + (f" of {scanned:,} rows" if not found
                                                       else "")
                             + f" ({ratio:.2%}" + (f", e.g. {example[0]}" if example else "")
                             + ")")
        status: Status = "pass"
        if worst_ratio > self.max_ratio:
            status = "fail"
        elif self.warn_ratio is not None and worst_ratio > self.warn_ratio:
            status = "warn"
        message = (f"column {column!r}: " + "; ".join(found) if found
                   else f"column {column!r}: no {', '.join(self.kinds)} in {scanned:,} rows")
        details = {"column": column, "rows_scanned": tally.rows, "non_null": scanned,
                   "method": method, "sample": self.sample, "seed": SAMPLE_SEED,
                   "warn_ratio": self.warn_ratio, "kinds": kinds}
        return CheckResult("pii", status, worst_ratio, self.max_ratio, message, details)


def _is_string(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
                or pa.types.is_string_view(dtype))


@dataclass
class _Tally:
    """Counts and masked examples, added up batch by batch."""

    columns: list[str]
    kinds: tuple[str, ...]
    rows: int = 0
    non_null: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in self.columns:
            self.non_null[c] = 0
            self.counts[c] = dict.fromkeys(self.kinds, 0)
            self.examples[c] = {k: [] for k in self.kinds}

    def add(self, frame: pl.DataFrame) -> None:
        import polars as pl

        self.rows += frame.height
        for c in self.columns:
            series = frame.get_column(c).cast(pl.String)
            self.non_null[c] += series.len() - series.null_count()
            for kind, found in detect_all(series, self.kinds).items():
                self.counts[c][kind] += found.count
                kept = self.examples[c][kind]
                kept.extend(e for e in found.examples if e not in kept)
                del kept[_EXAMPLES:]


def _frames(source: Source, columns: list[str], sample: int | None) -> Iterator[pl.DataFrame]:
    """The rows to scan: the sample (one frame) or, for ``sample=None``, batch by batch."""
    import numpy as np
    import polars as pl

    if source.frame is not None:
        df = source.frame.select(columns)
        if sample is not None and sample < df.height:
            rng = np.random.default_rng(SAMPLE_SEED)
            df = df[np.sort(rng.choice(df.height, size=sample, replace=False))]
        yield df
        return
    ds = source.dataset()
    if sample is not None:
        sampled, _ = guard(lambda: _reservoir(ds, columns, sample), what=source.label,
                           redact=source.redact)
        yield sampled
        return
    batches = guard(lambda: iter(ds.iter_batches(columns=columns, batch_size=_BATCH_ROWS)),
                    what=source.label, redact=source.redact)
    while True:
        batch = guard(lambda: next(batches, None), what=source.label, redact=source.redact)
        if batch is None:
            return
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame
