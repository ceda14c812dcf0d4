"""Schema validation with pandera's polars backend, lazily (every failure is collected).

Only the columns the schema names are read from a source (all of them for strict
schemas or regex columns). ``sample=N`` validates N rows chosen deterministically
(seeded): in-memory data is sampled directly; sources are streamed batch by batch into
a bounded reservoir, so memory stays at about N rows whatever the source size. Failure
case row indices always refer to positions in the full data (the read order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakekit.errors import ConfigError
from lakekit.quality.report import FAILURE_CASE_COLUMNS, CheckResult
from lakekit.quality.sources import Source, guard

if TYPE_CHECKING:
    import polars as pl
    from pandera.api.polars.container import DataFrameSchema

__all__ = ["SAMPLE_SEED", "Validation", "empty_failure_cases", "load_for_validation", "validate"]

SAMPLE_SEED = 20240501
_INDEX = "__lakekit_row__"
_KEY = "__lakekit_key__"


@dataclass(frozen=True)
class Validation:
    """The schema check's result, its (capped) failure cases and their total count."""

    result: CheckResult
    failure_cases: pl.DataFrame
    failure_count: int
    rows: int


def empty_failure_cases() -> pl.DataFrame:
    """An empty failure-case frame with the report's columns."""
    import polars as pl

    return pl.DataFrame(schema={"column": pl.String, "check": pl.String,
                                "failure_case": pl.String, "index": pl.Int64})


def needed_columns(schema: DataFrameSchema, available: list[str]) -> list[str]:
    """The source columns validation needs (missing ones are left for pandera to report)."""
    columns = getattr(schema, "columns", {}) or {}
    if getattr(schema, "strict", False) or not columns or any(
        getattr(c, "regex", False) for c in columns.values()
    ) or getattr(schema, "checks", None):
        return list(available)
    wanted = [c for c in available if c in columns]
    return wanted or list(available[:1])


def load_for_validation(
    source: Source, schema: DataFrameSchema, *, sample: int | None
) -> tuple[pl.DataFrame, Any]:
    """The frame to validate and, when sampled, the original row index of each row."""
    import numpy as np

    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample <= 0):
        raise ConfigError(f"sample must be a positive number of rows; got {sample!r}")
    columns = needed_columns(schema, source.column_names())
    if source.frame is not None:
        df = source.frame
        if columns != df.columns:
            df = df.select(columns)
        if sample is None or sample >= df.height:
            return df, None
        rng = np.random.default_rng(SAMPLE_SEED)
        idx = np.sort(rng.choice(df.height, size=sample, replace=False))
        return df[idx], idx
    ds = source.dataset()
    if sample is None:
        df = guard(lambda: ds.to_polars(columns=columns, progress=False), what=source.label,
                   redact=source.redact)
        return df, None
    return guard(lambda: _reservoir(ds, columns, sample), what=source.label,
                 redact=source.redact)


def _reservoir(ds: Any, columns: list[str], n: int) -> tuple[pl.DataFrame, Any]:
    """A seeded uniform sample of ``n`` rows, streamed: memory stays at about ``n`` rows."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(SAMPLE_SEED)
    kept: pl.DataFrame | None = None
    offset = 0
    for batch in ds.iter_batches(columns=columns):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        size = frame.height
        keys = rng.random(size)
        frame = frame.with_columns(
            pl.Series(_KEY, keys),
            pl.Series(_INDEX, np.arange(offset, offset + size, dtype=np.int64)),
        )
        offset += size
        if kept is not None and kept.height >= n:
            limit = kept.get_column(_KEY).max()
            frame = frame.filter(pl.col(_KEY) < limit)
            if frame.height == 0:
                continue
        both = frame if kept is None else pl.concat([kept, frame], how="vertical_relaxed")
        kept = both.sort(_KEY).head(n) if both.height > n else both
    if kept is None:
        empty = ds.to_polars(columns=columns, n_rows=0, progress=False)
        return empty, np.zeros(0, dtype=np.int64)
    kept = kept.sort(_INDEX)
    index = kept.get_column(_INDEX).to_numpy()
    return kept.drop(_KEY, _INDEX), index


def validate(
    df: pl.DataFrame,
    schema: DataFrameSchema,
    *,
    max_failure_cases: int,
    index_map: Any = None,
) -> Validation:
    """Validate ``df`` lazily; map failure-case indices through ``index_map`` when sampled."""
    import polars as pl
    from pandera.errors import (
        BackendNotFoundError,
        SchemaDefinitionError,
        SchemaError,
        SchemaErrors,
        SchemaInitError,
    )

    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        cases = _normalise(exc.failure_cases)
    except SchemaError as exc:  # raised by some schema-level checks even when lazy
        cases = pl.DataFrame({
            "column": [getattr(exc, "column_name", None)],
            "check": [str(getattr(exc, "check", None) or getattr(exc, "reason_code", "schema"))],
            "failure_case": [" ".join(str(exc).split())[:300]],
            "index": pl.Series([None], dtype=pl.Int64),
        })
    except (SchemaDefinitionError, SchemaInitError, BackendNotFoundError) as exc:
        raise ConfigError(f"the schema cannot be applied: {' '.join(str(exc).split())}") from None
    else:
        cases = empty_failure_cases()
    total = cases.height
    if index_map is not None and total:
        cases = _map_index(cases, index_map)
    kept = cases.head(max_failure_cases)
    return Validation(_result(cases, total, df.height), kept, total, df.height)


def _normalise(frame: Any) -> pl.DataFrame:
    import polars as pl

    if not isinstance(frame, pl.DataFrame):  # pandera may hand back pandas for some errors
        frame = pl.from_pandas(frame) if hasattr(frame, "to_numpy") else pl.DataFrame(frame)
    cols = frame.columns
    column = (pl.col("column").cast(pl.String) if "column" in cols else pl.lit(None, pl.String))
    failure = (pl.col("failure_case").cast(pl.String) if "failure_case" in cols
               else pl.lit(None, pl.String))
    out = frame.select(
        # a missing / unexpected column: pandera names the schema there, we name the column
        pl.when(pl.col("check").cast(pl.String).str.starts_with("column_in_"))
        .then(failure).otherwise(column).alias("column"),
        pl.col("check").cast(pl.String).alias("check"),
        failure.alias("failure_case"),
        (pl.col("index").cast(pl.Int64) if "index" in cols else pl.lit(None, pl.Int64))
        .alias("index"),
    )
    return out.select(FAILURE_CASE_COLUMNS)


def _map_index(cases: pl.DataFrame, index_map: Any) -> pl.DataFrame:
    import polars as pl

    lookup = pl.Series("orig", index_map, dtype=pl.Int64)
    idx = cases.get_column("index")
    gathered = lookup.gather(idx.fill_null(0).cast(pl.Int64))
    mapped = pl.select(
        pl.when(idx.is_not_null()).then(gathered).otherwise(None).alias("index")
    ).to_series()
    return cases.with_columns(mapped)


def _result(cases: pl.DataFrame, total: int, rows: int) -> CheckResult:
    import polars as pl

    if total == 0:
        return CheckResult("schema", "pass", 0, 0, f"{rows:,} rows valid", {"rows": rows})
    groups = (
        cases.group_by(["column", "check"], maintain_order=True).len()
        .sort("len", descending=True, maintain_order=True)
    )
    by_check = [
        {"column": r["column"], "check": r["check"], "failures": int(r["len"])}
        for r in groups.head(50).to_dicts()
    ]
    parts = [
        f"{(r['column'] + ' ') if r['column'] else ''}{r['check']}: {r['failures']:,}"
        for r in by_check[:5]
    ]
    more = f"; and {groups.height - 5} more" if groups.height > 5 else ""
    rows_failing = cases.filter(pl.col("index").is_not_null()).get_column("index").n_unique()
    message = (
        f"{total:,} failure case{'s' if total != 1 else ''} in {groups.height} "
        f"check{'s' if groups.height != 1 else ''} ({rows_failing:,} of {rows:,} rows): "
        + "; ".join(parts) + more
    )
    return CheckResult("schema", "fail", total, 0, message,
                       {"rows": rows, "rows_failing": rows_failing, "by_check": by_check})
