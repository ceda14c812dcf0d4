"""check(): schema validation, freshness and volume in one call, returning a QualityReport."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from lakekit import lineage
from lakekit.errors import ConfigError
from lakekit.quality.freshness import Freshness, check_freshness
from lakekit.quality.protocol import Check
from lakekit.quality.report import CheckResult, QualityReport
from lakekit.quality.sources import open_source
from lakekit.quality.volume import Volume, check_volume

__all__ = ["check"]

DEFAULT_MAX_FAILURE_CASES = 1000


@lineage.traced_check
def check(
    data_or_source: Any,
    schema: Any = None,
    *,
    freshness: Freshness | None = None,
    volume: Volume | None = None,
    storage_options: Mapping[str, Any] | None = None,
    schemas_dir: str | os.PathLike[str] | None = None,
    sample: int | None = None,
    results_table: Any = None,
    max_failure_cases: int = DEFAULT_MAX_FAILURE_CASES,
    engine: str | None = None,
    client: Any = None,
    checks: Sequence[Check] = (),
) -> QualityReport:
    """Check data against a pandera schema, a freshness limit and a row-count range.

    Freshness and volume are answered from metadata (the Delta log, parquet footers)
    without reading data where the metadata has the answer; validation reads only the
    columns the schema names.

    Parameters
    ----------
    data_or_source
        A pyarrow / polars / pandas frame, a lakekit ``Dataset`` or ``Table``, or a path
        or URI (a Delta table, a parquet / JSONL / CSV dataset).
    schema
        A ``pandera.polars.DataFrameSchema``, a path to a pandera YAML file, or a name
        looked up as ``NAME.yaml`` in ``schemas_dir``, ``$LAKEKIT_SCHEMAS_DIR``,
        ``./schemas``.
    freshness
        A :class:`lakekit.Freshness` check.
    volume
        A :class:`lakekit.Volume` check.
    storage_options
        Storage options for a URI source (fsspec or deltalake conventions).
    schemas_dir
        The first directory searched for schema names.
    sample
        Validate a deterministic sample of this many rows instead of every row.
    results_table
        A Delta table URI (or lakekit ``Table``) to which the report's summary is appended.
    max_failure_cases
        The most failure cases kept in the report (the total is always counted).
    engine
        ``"dask"`` or ``"ray"``: validate a source (not an in-memory frame) partition by
        partition on that engine; the report equals a local one. Freshness and volume stay
        metadata reads here. Checks no partition can decide alone are refused with a
        ``ConfigError`` (uniqueness gets a global step). See docs/quality.md.
    checks
        More checks, each an object with ``evaluate(source, *, now)`` (see
        :class:`lakekit.quality.protocol.Check`): ``lk.Freshness``, ``lk.Volume`` and the
        metadata checks; their results follow the others in the report, in order.
    client
        The ``distributed.Client`` for ``engine="dask"`` (default: the default client, else
        Dask's local scheduler). Ray uses the running Ray, else ``ray.init()``.

    Returns
    -------
    QualityReport
        ``status`` is ``"pass"``, ``"warn"`` or ``"fail"``; nothing is raised for a
        failing check (call ``raise_for_status()`` for that).

    Raises
    ------
    ConfigError
        Nothing to check, an unknown schema name, an invalid schema file or option; with
        ``engine=``: an in-memory frame, or a check no partition can decide alone.
    MissingDependencyError
        ``engine=`` names an engine that is not installed.
    NotFoundError, StorageError
        The source cannot be reached or read (never reported as a failed check).

    Examples
    --------
    >>> import lakekit as lk
    >>> report = lk.check("lake/events", "events",                          # doctest: +SKIP
    ...                   freshness=lk.Freshness(column="event_time", max_age="1h"))
    >>> report.status                                                       # doctest: +SKIP
    'pass'
    """
    started = time.perf_counter()
    checked_at = datetime.now(timezone.utc)
    checks = _check_list(checks)
    if schema is None and freshness is None and volume is None and not checks:
        raise ConfigError("nothing to check: pass a schema, freshness=Freshness(...), "
                          "volume=Volume(...) or checks=[...]")
    if freshness is not None and not isinstance(freshness, Freshness):
        raise ConfigError(f"freshness must be a lakekit.Freshness; got {type(freshness).__name__}")
    if volume is not None and not isinstance(volume, Volume):
        raise ConfigError(f"volume must be a lakekit.Volume; got {type(volume).__name__}")
    if isinstance(max_failure_cases, bool) or not isinstance(max_failure_cases, int) or (
            max_failure_cases < 0):
        raise ConfigError(f"max_failure_cases must be a non-negative integer; "
                          f"got {max_failure_cases!r}")
    if engine is not None:
        from lakekit.scale.engines import check_engine

        check_engine(engine)
    resolved = None
    if schema is not None:
        from lakekit.quality.schemas import load_schema

        resolved = load_schema(schema, schemas_dir=schemas_dir)
    source = open_source(data_or_source, storage_options=storage_options)
    lineage.check_source(source)
    distributed = engine is not None and resolved is not None
    if distributed and source.frame is not None:
        raise ConfigError(
            f"engine={engine!r} distributes the reading of a source, and {source.label} is "
            "already in memory: drop engine=, or pass the Dataset, Table or URI it came from"
        )

    results: list[CheckResult] = []
    validation = None
    partitions = None
    if resolved is not None and engine is not None:
        from lakekit.quality.distributed import validate_distributed
        from lakekit.quality.validation import check_sample

        check_sample(sample)
        _require(engine)
        ran = validate_distributed(source, resolved.schema, engine=engine, client=client,
                                   max_failure_cases=max_failure_cases, sample=sample)
        validation, partitions = ran.validation, ran.partitions
        results.append(validation.result)
    elif resolved is not None:
        from lakekit.quality.validation import load_for_validation, validate

        frame, index_map = load_for_validation(source, resolved.schema, sample=sample)
        validation = validate(frame, resolved.schema, max_failure_cases=max_failure_cases,
                              index_map=index_map)
        results.append(validation.result)
    if freshness is not None:
        results.append(check_freshness(source, freshness, now=checked_at))
    if volume is not None:
        results.append(check_volume(source, volume))
    for extra in checks:
        got = extra.evaluate(source, now=checked_at)
        results.extend([got] if isinstance(got, CheckResult) else got)

    if validation is not None:
        failure_cases, failure_count = validation.failure_cases, validation.failure_count
    else:
        from lakekit.quality.validation import empty_failure_cases

        failure_cases, failure_count = empty_failure_cases(), 0
    report = QualityReport(
        source=source.label,
        results=tuple(results),
        failure_cases=failure_cases,
        failure_count=failure_count,
        rows_checked=validation.rows if validation is not None else None,
        schema_name=resolved.name if resolved is not None else None,
        sample=sample if validation is not None else None,
        checked_at=checked_at,
        duration_s=time.perf_counter() - started,
        engine=engine if partitions is not None else None,
        partitions=partitions,
    )
    if results_table is not None:
        from lakekit.quality.history import append_summary

        append_summary(report, results_table, storage_options=storage_options)
    return report


def _check_list(checks: Sequence[Check]) -> list[Check]:
    if isinstance(checks, (str, bytes)) or not isinstance(checks, Sequence):
        raise ConfigError("checks must be a list of checks, e.g. [lk.Volume(min_rows=1)]")
    for c in checks:
        if not isinstance(c, Check):
            raise ConfigError(f"checks[...] must be lakekit checks (with evaluate()); got "
                              f"{type(c).__name__}")
    return list(checks)


def _require(engine: str) -> None:
    """Fail at once, in one line, when the engine's extra is not installed."""
    from lakekit._deps import import_optional

    purpose = f"lk.check(engine={engine!r})"
    if engine == "dask":
        import_optional("dask", purpose=purpose)
    else:
        import_optional("ray", purpose=purpose)
