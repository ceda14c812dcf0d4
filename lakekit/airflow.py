"""Airflow operators for lakekit quality checks (install with ``pip install 'lakekit[airflow]'``).

- :class:`QualityCheckOperator` runs :func:`lakekit.check`: a "fail" verdict fails the task
  without retries (``AirflowFailException``), "warn" logs and succeeds, and the report's
  dict is pushed to XCom (key ``report``, and as the return value).
- :class:`FreshnessSensor` waits, in reschedule mode by default and never longer than its
  ``timeout``, until a table's freshness check no longer fails.

``source``, ``schema``, ``freshness``, ``volume``, ``checks`` and ``results_table`` are
templated; pass ``freshness`` / ``volume`` as dicts (``{"column": "event_time", "max_age":
"{{ var.value.max_age }}"}``) to template the thresholds, and ``checks`` as check objects or
dicts naming the check (``{"check": "completeness", "columns": ["email"], "min_ratio":
"{{ var.value.min_ratio }}"}``).

Examples
--------
>>> from lakekit.airflow import QualityCheckOperator              # doctest: +SKIP
>>> QualityCheckOperator(task_id="check_events", source="s3://lake/events",
...                      schema="events",
...                      freshness={"column": "event_time", "max_age": "1h"})  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from lakekit import lineage
from lakekit._deps import import_if_available, import_optional
from lakekit.errors import ConfigError, LakekitError, NotFoundError
from lakekit.quality.anomaly import VolumeAnomaly
from lakekit.quality.completeness import Completeness
from lakekit.quality.drift import SchemaDrift
from lakekit.quality.freshness import Freshness
from lakekit.quality.pii import Pii
from lakekit.quality.protocol import Check
from lakekit.quality.volume import Volume

import_optional("airflow.sdk", purpose="lakekit.airflow")  # the install hint, before:
from airflow.sdk import BaseOperator, BaseSensorOperator  # noqa: E402

# Airflow 3.0 keeps AirflowFailException in airflow.exceptions; later 3.x also in airflow.sdk.
AirflowFailException: type[Exception] = getattr(
    import_if_available("airflow.sdk.exceptions"), "AirflowFailException", None
) or import_optional("airflow.exceptions").AirflowFailException


__all__ = ["FreshnessSensor", "QualityCheckOperator"]

XCOM_FAILURE_CASES = 100


def _freshness(value: Any) -> Freshness | None:
    if value is None or isinstance(value, Freshness):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"column", "max_age", "warn_age"}
        if unknown:
            raise ConfigError(f"freshness: unknown keys {sorted(unknown)}; "
                              "expected column, max_age, warn_age")
        fields: dict[str, Any] = {k: (v if v != "" else None) for k, v in value.items()}
        return Freshness(**fields)
    raise ConfigError(
        f"freshness must be a lakekit.Freshness or a dict; got {type(value).__name__}")


def _volume(value: Any) -> Volume | None:
    if value is None or isinstance(value, Volume):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"min_rows", "max_rows"}
        if unknown:
            raise ConfigError(
                f"volume: unknown keys {sorted(unknown)}; expected min_rows, max_rows")
        return Volume(**{k: (int(v) if v not in (None, "") else None) for k, v in value.items()})
    raise ConfigError(f"volume must be a lakekit.Volume or a dict; got {type(value).__name__}")


# checks= given as dicts: {"check": NAME, field: value, ...}; templated numbers are strings
_CHECKS: dict[str, type[Any]] = {
    "completeness": Completeness, "schema_drift": SchemaDrift,
    "volume_anomaly": VolumeAnomaly, "freshness": Freshness, "volume": Volume, "pii": Pii,
}
_NUMBERS: dict[str, type[Any]] = {
    "min_ratio": float, "warn_ratio": float, "sensitivity": float, "warn_sensitivity": float,
    "lookback": int, "min_rows": int, "max_rows": int, "max_ratio": float,
}


def _check(value: Any) -> Check:
    if isinstance(value, Check):
        return value
    if not isinstance(value, Mapping) or value.get("check") not in _CHECKS:
        raise ConfigError(f"checks: each must be a lakekit check or a dict with 'check' one of "
                          f"{', '.join(_CHECKS)}; got {value!r}"[:300])
    cls = _CHECKS[value["check"]]
    known = set(cls.__dataclass_fields__) - {"name"}
    fields = {k: v for k, v in value.items() if k != "check" and v not in ("", None)}
    unknown = set(fields) - known
    if unknown:
        raise ConfigError(f"checks: {value['check']}: unknown keys {sorted(unknown)}; "
                          f"expected {', '.join(sorted(known))}")
    for k, v in fields.items():
        if k in _NUMBERS and isinstance(v, str):
            try:
                fields[k] = _NUMBERS[k](v)
            except ValueError:
                raise ConfigError(f"checks: {value['check']}: {k} must be a number; "
                                  f"got {v!r}") from None
        elif k == "columns" and isinstance(v, str):
            fields[k] = [c.strip() for c in v.split(",") if c.strip()]
        elif k == "seasonal" and isinstance(v, str):
            fields[k] = v.strip().lower() not in ("false", "0", "no")
    check: Check = cls(**fields)
    return check
def _pii(value: Any) -> Pii | None:
    if value is None or isinstance(value, Pii):
        return value
    if isinstance(value, Mapping):
        keys = {"columns", "kinds", "max_ratio", "warn_ratio", "sample"}
        unknown = set(value) - keys
        if unknown:
            raise ConfigError(f"pii: unknown keys {sorted(unknown)}; expected "
                              f"{', '.join(sorted(keys))}")
        fields: dict[str, Any] = {k: v for k, v in value.items() if v != ""}
        try:  # templated numbers arrive as text
            for key in ("max_ratio", "warn_ratio"):
                if isinstance(fields.get(key), str):
                    fields[key] = float(fields[key])
            if isinstance(fields.get("sample"), str):
                fields["sample"] = None if fields["sample"].lower() == "none" else int(
                    fields["sample"])
        except ValueError as exc:
            raise ConfigError(f"pii: {exc}; max_ratio / warn_ratio take a number between 0 "
                              "and 1, sample a number of rows or None") from None
        return Pii(**fields)
    raise ConfigError(f"pii must be a lakekit.Pii or a dict; got {type(value).__name__}")


class QualityCheckOperator(BaseOperator):
    """Run :func:`lakekit.check` as a task.

    Parameters
    ----------
    source
        What to check: a Delta table or dataset URI (templated).
    schema
        A schema name, a path to a pandera YAML file, or a pandera schema (templated).
    freshness
        A :class:`lakekit.Freshness` or a dict of its fields (templated).
    volume
        A :class:`lakekit.Volume` or a dict of its fields (templated).
    checks
        More checks (templated): objects such as :class:`lakekit.Completeness`,
        :class:`lakekit.SchemaDrift`, :class:`lakekit.VolumeAnomaly`, or dicts of their
        fields with ``"check"`` naming one (``"completeness"``, ``"schema_drift"``,
        ``"volume_anomaly"``, ``"freshness"``, ``"volume"``).
    pii
        A :class:`lakekit.Pii` or a dict of its fields (templated): the report in XCom
        and the task's log hold counts and masked examples only.
    storage_options
        Storage options for ``source`` (not templated, so not rendered in the UI).
    schemas_dir
        Where schema names are looked up first.
    sample
        Validate a deterministic sample of this many rows.
    results_table
        A Delta table URI to append the report's summary to (templated).
    fail_on_warn
        Treat "warn" as "fail".
    engine
        ``"dask"`` or ``"ray"``: validate piece by piece on that engine's cluster (see
        docs/scale.md); the report is the one a local run gives.
    scheduler
        With ``engine="dask"``, the scheduler's address (``tcp://host:8786``; templated);
        with ``engine="ray"``, the cluster's address. Default: the engine's default
        (Dask's local scheduler, a local Ray).

    Examples
    --------
    >>> QualityCheckOperator(task_id="check", source="s3://lake/events",   # doctest: +SKIP
    ...                      schema="events", volume={"min_rows": 1000})
    """

    template_fields: Sequence[str] = (
        "source", "schema", "freshness", "volume", "results_table", "scheduler", "checks",
        "pii",
    )
    ui_color = "#d6ecf3"

    def __init__(
        self,
        *,
        source: str,
        schema: Any = None,
        freshness: Freshness | Mapping[str, Any] | None = None,
        volume: Volume | Mapping[str, Any] | None = None,
        pii: Pii | Mapping[str, Any] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        schemas_dir: str | None = None,
        sample: int | None = None,
        results_table: str | None = None,
        fail_on_warn: bool = False,
        engine: str | None = None,
        scheduler: str | None = None,
        checks: Sequence[Check | Mapping[str, Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (schema is None and freshness is None and volume is None and not checks
                and pii is None):
            raise ConfigError(f"{self.task_id}: nothing to check: pass schema, freshness, "
                              "volume, pii or checks")
        self.checks = list(checks)
        self.source = source
        self.schema = schema
        self.freshness = freshness
        self.volume = volume
        self.pii = pii
        self.storage_options = dict(storage_options or {})
        self.schemas_dir = schemas_dir
        self.sample = sample
        self.results_table = results_table
        self.fail_on_warn = fail_on_warn
        self.engine = engine
        self.scheduler = scheduler

    def execute(self, context: Any) -> dict[str, Any]:
        """Check, push the report to XCom, and fail the task (no retries) on "fail"."""
        import lakekit as lk
        from lakekit.scale.engines import connect

        client = None
        self._lineage_inputs: list[lineage.LineageDataset] = []
        try:
            client = connect(self.engine, self.scheduler or None,
                             purpose=f"{self.task_id}: engine={self.engine!r}")
            checks: list[Any] = [_check(c) for c in self.checks]
            if self.pii is not None:
                checks.append(_pii(self.pii))
            report = lineage.capturing(lk.check, self._lineage_inputs)(
                self.source, self.schema, freshness=_freshness(self.freshness),
                volume=_volume(self.volume), storage_options=self.storage_options or None,
                schemas_dir=self.schemas_dir, sample=self.sample,
                results_table=self.results_table, engine=self.engine, client=client,
                checks=checks,
            )
        except ConfigError as exc:  # a wrong DAG does not get better by retrying
            raise AirflowFailException(f"lakekit check is misconfigured: {exc}") from None
        finally:
            if client is not None:
                client.close(timeout=30)
        data = report.to_dict()
        data["failure_cases"] = data.get("failure_cases", [])[:XCOM_FAILURE_CASES]
        context["ti"].xcom_push(key="report", value=data)
        summary = report.summary()
        if report.status == "fail" or (self.fail_on_warn and report.status == "warn"):
            self.log.error("%s", summary)
            raise AirflowFailException(f"quality check {report.status}: " + "; ".join(
                f"{r.name}: {r.message}" for r in report.results if r.status != "pass"))
        if report.status == "warn":
            self.log.warning("%s", summary)
        else:
            self.log.info("%s", summary)
        return data

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """What the Airflow OpenLineage provider reports with this task: the checked dataset
        as input, with its schema, ``dataQualityAssertions`` and ``dataQualityMetrics``."""
        return lineage.operator_lineage(getattr(self, "_lineage_inputs", []), source=self.source,
                                        storage_options=self.storage_options)


class FreshnessSensor(BaseSensorOperator):
    """Wait until ``source`` is fresh (its freshness check no longer fails).

    Runs in reschedule mode by default (the worker slot is freed between pokes) and
    always has a finite ``timeout``. A source that does not exist yet counts as not fresh;
    a configuration error fails the task at once.

    Parameters
    ----------
    source
        A Delta table or dataset URI (templated).
    freshness
        A :class:`lakekit.Freshness` or a dict of its fields (templated).
    storage_options
        Storage options for ``source``.
    poke_interval
        Seconds (or a timedelta) between checks; default 5 minutes.
    timeout
        Give up after this many seconds (or a timedelta); default 6 hours; must be finite.
    mode
        ``"reschedule"`` (default) or ``"poke"``.

    Examples
    --------
    >>> FreshnessSensor(task_id="wait", source="s3://lake/events",        # doctest: +SKIP
    ...                 freshness={"column": "event_time", "max_age": "1h"},
    ...                 poke_interval=300, timeout=3 * 3600)
    """

    template_fields: Sequence[str] = ("source", "freshness")
    ui_color = "#e8f0d8"

    def __init__(
        self,
        *,
        source: str,
        freshness: Freshness | Mapping[str, Any],
        storage_options: Mapping[str, Any] | None = None,
        poke_interval: timedelta | float = 300,
        timeout: timedelta | float = 6 * 3600,
        mode: str = "reschedule",
        **kwargs: Any,
    ) -> None:
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if seconds is None or not math.isfinite(float(seconds)) or float(seconds) <= 0:
            raise ConfigError(f"FreshnessSensor timeout must be a finite, positive duration; "
                              f"got {timeout!r}")
        super().__init__(poke_interval=poke_interval, timeout=timeout, mode=mode, **kwargs)
        self.source = source
        self.freshness = freshness
        self.storage_options = dict(storage_options or {})

    def poke(self, context: Any) -> bool:
        """One freshness check: True when it does not fail."""
        import lakekit as lk

        try:
            # no lineage run per poke: the Airflow provider reports the sensor's task
            report = lineage.capturing(lk.check, [])(
                self.source, freshness=_freshness(self.freshness),
                storage_options=self.storage_options or None)
        except ConfigError as exc:
            raise AirflowFailException(f"FreshnessSensor is misconfigured: {exc}") from None
        except NotFoundError as exc:
            self.log.info("not there yet: %s", exc)
            return False
        except LakekitError as exc:
            self.log.warning("freshness could not be checked (will retry): %s", exc)
            return False
        result = report.result("freshness")
        self.log.info("[%s] %s", result.status, result.message)
        return result.status != "fail"
