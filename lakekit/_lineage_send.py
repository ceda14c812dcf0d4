"""What lakekit's OpenLineage events are made of, and how they are sent.

:class:`LineageDataset` (a dataset's name and the facts lakekit knows: schema, version,
check results, row and null counts from metadata), the openlineage-python objects built
from it, and the one background thread that sends them from a bounded queue. Used by
:mod:`lakekit.lineage` only; ``openlineage`` is imported (through ``import_optional``) when
the first event is built, never at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakekit._deps import import_optional
from lakekit.storage import redact

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "PRODUCER", "QUEUE_SIZE", "Emitter", "LineageDataset", "LineageWarning", "checked_dataset",
    "event", "input_dataset", "new_client", "new_run_id", "safe", "schema_fields", "warn",
]

log = logging.getLogger("lakekit.lineage")

PRODUCER = "https://github.com/lakekit/lakekit"
QUEUE_SIZE = 1000  # events waiting for the backend; beyond it new events are dropped (counted)


class LineageWarning(UserWarning):
    """Lineage events could not be sent (the write, commit or check itself went on)."""


@dataclass(frozen=True)
class LineageDataset:
    """A dataset as lineage sees it: its name and what lakekit knows about it.

    ``fields`` are (name, type) pairs; ``assertions`` (check name, success, column);
    ``null_counts`` per column; ``version`` the Delta version written; ``lifecycle`` an
    OpenLineage lifecycle state change (``CREATE``, ``OVERWRITE``).
    """

    namespace: str
    name: str
    fields: tuple[tuple[str, str], ...] | None = field(default=None, repr=False)
    assertions: tuple[tuple[str, bool, str | None], ...] = field(default=(), repr=False)
    row_count: int | None = field(default=None, repr=False)
    null_counts: Mapping[str, int] = field(default_factory=dict, repr=False)
    version: int | None = field(default=None, repr=False)
    lifecycle: str | None = field(default=None, repr=False)


def new_run_id() -> str:
    """A UUIDv7 (time ordered, as OpenLineage recommends for run ids)."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62) | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))



def schema_fields(schema: pa.Schema | None) -> tuple[tuple[str, str], ...] | None:
    return None if schema is None else tuple((f.name, str(f.type)) for f in schema)


def checked_dataset(ds: LineageDataset, source: Any, report: Any) -> LineageDataset:
    """``ds`` (the checked source's name) with its schema and data-quality facts."""
    assertions = tuple(
        (r.name, r.status == "pass", _column(r)) for r in report.results
    )
    rows, nulls = _delta_counts(source) if source.kind == "delta" else (None, {})
    if rows is None:
        rows = _report_rows(report)
    for r in report.results:  # checks that know null counts say so in their details
        counted = r.details.get("null_counts") if isinstance(r.details, Mapping) else None
        if isinstance(counted, Mapping):
            nulls = {**nulls, **{str(k): int(v) for k, v in counted.items()}}
    try:
        fields = schema_fields(source.arrow_schema())
    except Exception:
        fields = None
    return replace(ds, fields=fields, assertions=assertions, row_count=rows, null_counts=nulls,
                   version=getattr(source, "version", None))


def _column(result: Any) -> str | None:
    details = result.details if isinstance(result.details, Mapping) else {}
    column = details.get("column")
    return column if isinstance(column, str) else None


def _report_rows(report: Any) -> int | None:
    if report.rows_checked is not None and report.sample is None:
        return int(report.rows_checked)
    for r in report.results:
        if r.name == "volume" and isinstance(r.observed, int):
            return int(r.observed)
    return None


def _delta_counts(source: Any) -> tuple[int | None, dict[str, int]]:
    """Rows and per-column null counts of a Delta snapshot from its log's statistics
    (a column is left out when a file has no statistics for it)."""
    import pyarrow as pa

    actions = pa.table(source.delta_table().get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0, {}
    records = actions.column("num_records")
    rows = int(pa.compute.sum(records).as_py() or 0) if records.null_count == 0 else None
    nulls: dict[str, int] = {}
    for name in actions.column_names:
        if name.startswith("null_count."):
            column = actions.column(name)
            if column.null_count == 0 and pa.types.is_integer(column.type):
                nulls[name.removeprefix("null_count.")] = int(pa.compute.sum(column).as_py())
    return rows, nulls


# -- events ------------------------------------------------------------------------------------

def _ol() -> Any:
    return import_optional("openlineage.client.event_v2", purpose="OpenLineage events")


def _facets(ds: LineageDataset) -> dict[str, Any]:
    facet_v2 = import_optional("openlineage.client.facet_v2", purpose="OpenLineage events")
    facets: dict[str, Any] = {}
    if ds.fields is not None:
        schema = facet_v2.schema_dataset
        facets["schema"] = schema.SchemaDatasetFacet(fields=[
            schema.SchemaDatasetFacetFields(name=n, type=t) for n, t in ds.fields],
            producer=PRODUCER)
    if ds.version is not None:
        facets["version"] = facet_v2.dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(ds.version), producer=PRODUCER)
    if ds.lifecycle is not None:
        life = facet_v2.lifecycle_state_change_dataset
        facets["lifecycleStateChange"] = life.LifecycleStateChangeDatasetFacet(
            lifecycleStateChange=life.LifecycleStateChange(ds.lifecycle), producer=PRODUCER)
    return facets


def input_dataset(ds: LineageDataset) -> Any:
    facet_v2 = import_optional("openlineage.client.facet_v2", purpose="OpenLineage events")
    input_facets: dict[str, Any] = {}
    if ds.assertions:
        dqa = facet_v2.data_quality_assertions_dataset
        input_facets["dataQualityAssertions"] = dqa.DataQualityAssertionsDatasetFacet(
            assertions=[dqa.Assertion(assertion=name, success=ok, column=column)
                        for name, ok, column in ds.assertions], producer=PRODUCER)
        dqm = facet_v2.data_quality_metrics_input_dataset
        input_facets["dataQualityMetrics"] = dqm.DataQualityMetricsInputDatasetFacet(
            rowCount=ds.row_count, producer=PRODUCER,
            columnMetrics={c: dqm.ColumnMetrics(nullCount=n) for c, n in ds.null_counts.items()})
    return _ol().InputDataset(namespace=ds.namespace, name=ds.name, facets=_facets(ds),
                              inputFacets=input_facets)


def event(run: Any, state: str, error: BaseException | None) -> Any:
    """The RunEvent of ``run`` (job, run_id, inputs, outputs) entering ``state``."""
    ol = _ol()
    run_facets: dict[str, Any] = {}
    if error is not None:
        facet_v2 = import_optional("openlineage.client.facet_v2", purpose="OpenLineage events")
        run_facets["errorMessage"] = facet_v2.error_message_run.ErrorMessageRunFacet(
            message=_error_text(error), programmingLanguage="python", producer=PRODUCER)
    return ol.RunEvent(
        eventType=ol.RunState(state),
        eventTime=datetime.now(timezone.utc).isoformat(),
        run=ol.Run(runId=run.run_id, facets=run_facets),
        job=ol.Job(namespace=run.job[0], name=run.job[1]),
        producer=PRODUCER,
        inputs=[input_dataset(d) for d in run.inputs],
        outputs=[ol.OutputDataset(namespace=d.namespace, name=d.name, facets=_facets(d))
                 for d in run.outputs],
    )


def _error_text(error: BaseException) -> str:
    """lakekit's own errors are credential-free by design; of others only the type is kept."""
    from lakekit.errors import LakekitError

    if isinstance(error, LakekitError):
        return f"{type(error).__name__}: {redact(str(error))}"[:2000]
    return type(error).__name__


def safe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {redact(str(exc))}"[:300]


def warn(message: str) -> None:
    log.warning("%s", message)
    warnings.warn(message, LineageWarning, stacklevel=2)


# -- the background queue ----------------------------------------------------------------------

def new_client() -> Any:
    """The standard client; keeps os.environ as it was (openlineage copies OPENLINEAGE_URL
    into OPENLINEAGE__TRANSPORT__... variables while it builds the client)."""
    client_mod = import_optional("openlineage.client", purpose="OpenLineage events")
    before = dict(os.environ)
    try:
        return client_mod.OpenLineageClient()
    finally:
        for key in [k for k in os.environ if k.startswith("OPENLINEAGE__")]:
            if key not in before:
                del os.environ[key]


class Emitter:
    """One daemon thread sending queued events with the client; bounded queue."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_SIZE)
        self.failing = False
        self.closed = False
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="lakekit-lineage", daemon=True)
        self.thread.start()

    def put(self, event: Any) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % QUEUE_SIZE == 0:
                warn(f"{self.dropped} OpenLineage event(s) dropped: {QUEUE_SIZE} are "
                           "already waiting for the lineage backend")

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            try:
                if event is None:
                    return
                if not self.closed:
                    self.client.emit(event)
                    if self.failing:
                        log.info("lineage backend reachable again")
                    self.failing = False
            except Exception as exc:
                if not self.failing and not self.closed:
                    warn(f"OpenLineage events could not be sent ({safe(exc)}); "
                               "lakekit goes on and drops events until the backend answers")
                self.failing = True
            finally:
                self.queue.task_done()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue.all_tasks_done.wait(left)
        return True

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)
