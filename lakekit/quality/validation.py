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

__all__ = [
    "SAMPLE_SEED",
    "Outcome",
    "Validation",
    "check_sample",
    "empty_failure_cases",
    "load_for_validation",
    "needed_columns",
    "run_schema",
    "schema_result",
    "validate",
]

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

    check_sample(sample)
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


def check_sample(sample: int | None) -> None:
    """Raise ConfigError unless ``sample`` is ``None`` or a positive number of rows."""
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample <= 0):
        raise ConfigError(f"sample must be a positive number of rows; got {sample!r}")


@dataclass(frozen=True)
class Outcome:
    """What pandera said about one frame, before index mapping and capping.

    ``cases`` holds the report's failure-case columns plus ``schema_context`` and
    ``check_number`` (which pandera check each row comes from), in pandera's order.
    ``parsed`` is the frame pandera checked (after its parsers: coercion, defaults), or
    ``None`` when a schema-level error stopped it early (``stopped``). ``coerced_column``
    names the column whose coercion failed, if one did.
    """

    cases: pl.DataFrame
    parsed: pl.DataFrame | None
    stopped: bool = False
    coerced_column: str | None = None


def run_schema(df: pl.DataFrame, schema: DataFrameSchema) -> Outcome:
    """Validate ``df`` lazily with pandera: every failure case, in pandera's order."""
    import polars as pl
    from pandera.errors import (
        BackendNotFoundError,
        SchemaDefinitionError,
        SchemaError,
        SchemaErrors,
        SchemaInitError,
    )

    try:
        parsed = schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        coerced = None
        for err in exc.schema_errors:
            fc = err.failure_cases
            if str(err.check or "").startswith("coerce_dtype") and isinstance(fc, pl.DataFrame):
                coerced = fc.columns[0] if fc.columns else None
                break
        data = exc.data if isinstance(exc.data, pl.DataFrame) else None
        return Outcome(_normalise(exc.failure_cases), data, coerced_column=coerced)
    except SchemaError as exc:  # raised by some schema-level checks even when lazy
        cases = pl.DataFrame({
            "column": [getattr(exc, "column_name", None)],
            "check": [str(getattr(exc, "check", None) or getattr(exc, "reason_code", "schema"))],
            "failure_case": [" ".join(str(exc).split())[:300]],
            "index": pl.Series([None], dtype=pl.Int64),
            "schema_context": pl.Series([None], dtype=pl.String),
            "check_number": pl.Series([None], dtype=pl.Int64),
        }, schema=_raw_schema())
        return Outcome(cases, None, stopped=True)
    except (SchemaDefinitionError, SchemaInitError, BackendNotFoundError) as exc:
        raise ConfigError(f"the schema cannot be applied: {' '.join(str(exc).split())}") from None
    return Outcome(_empty_raw(), parsed if isinstance(parsed, pl.DataFrame) else None)


def validate(
    df: pl.DataFrame,
    schema: DataFrameSchema,
    *,
    max_failure_cases: int,
    index_map: Any = None,
) -> Validation:
    """Validate ``df`` lazily; map failure-case indices through ``index_map`` when sampled."""
    cases = run_schema(df, schema).cases.select(FAILURE_CASE_COLUMNS)
    total = cases.height
    if index_map is not None and total:
        cases = _map_index(cases, index_map)
    kept = cases.head(max_failure_cases)
    return Validation(_result(cases, total, df.height), kept, total, df.height)


def _raw_schema() -> dict[str, Any]:
    import polars as pl

    return {"column": pl.String, "check": pl.String, "failure_case": pl.String,
            "index": pl.Int64, "schema_context": pl.String, "check_number": pl.Int64}


def _empty_raw() -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema=_raw_schema())


def _normalise(frame: Any) -> pl.DataFrame:
    import polars as pl

    if not isinstance(frame, pl.DataFrame):  # pandera may hand back pandas for some errors
        frame = pl.from_pandas(frame) if hasattr(frame, "to_numpy") else pl.DataFrame(frame)
    cols = frame.columns
    column = (pl.col("column").cast(pl.String) if "column" in cols else pl.lit(None, pl.String))
    failure = (pl.col("failure_case").cast(pl.String) if "failure_case" in cols
               else pl.lit(None, pl.String))

    def optional(name: str, dtype: Any) -> pl.Expr:
        return (pl.col(name).cast(dtype) if name in cols else pl.lit(None, dtype)).alias(name)

    out = frame.select(
        # a missing / unexpected column: pandera names the schema there, we name the column
        pl.when(pl.col("check").cast(pl.String).str.starts_with("column_in_"))
        .then(failure).otherwise(column).alias("column"),
        pl.col("check").cast(pl.String).alias("check"),
        failure.alias("failure_case"),
        optional("index", pl.Int64),
        optional("schema_context", pl.String),
        optional("check_number", pl.Int64),
    )
    return out


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

    groups = (
        cases.group_by(["column", "check"], maintain_order=True).len().iter_rows()
        if total else iter(())
    )
    rows_failing = (cases.filter(pl.col("index").is_not_null()).get_column("index").n_unique()
                    if total else 0)
    return schema_result([(c, k, int(n)) for c, k, n in groups], total, rows, rows_failing)


def schema_result(
    groups: list[tuple[str | None, str, int]], total: int, rows: int, rows_failing: int
) -> CheckResult:
    """The schema check's result from its failure counts per (column, check), in the order
    each pair first appears among the failure cases."""
    if total == 0:
        return CheckResult("schema", "pass", 0, 0, f"{rows:,} rows valid", {"rows": rows})
    ranked = sorted(groups, key=lambda g: -g[2])  # stable: ties keep their first appearance
    by_check: list[dict[str, Any]] = [
        {"column": column, "check": check, "failures": n} for column, check, n in ranked[:50]
    ]
    parts = [
        f"{(column + ' ') if column else ''}{check}: {n:,}" for column, check, n in ranked[:5]
    ]
    more = f"; and {len(groups) - 5} more" if len(groups) > 5 else ""
    message = (
        f"{total:,} failure case{'s' if total != 1 else ''} in {len(groups)} "
        f"check{'s' if len(groups) != 1 else ''} ({rows_failing:,} of {rows:,} rows): "
        + "; ".join(parts) + more
    )
    return CheckResult("schema", "fail", total, 0, message,
                       {"rows": rows, "rows_failing": rows_failing, "by_check": by_check})
