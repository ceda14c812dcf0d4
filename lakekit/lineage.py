"""OpenLineage events for table writes, sink commits and quality checks, only when configured.

When OpenLineage is configured the standard way (``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``
or an ``openlineage.yml``, ``OPENLINEAGE__TRANSPORT__...`` variables) or a client is given
with :func:`set_client`, every ``Table`` write (append, overwrite, upsert, delete, restore),
every sink commit and every ``lk.check`` of a stored source is a run: a START event, then
COMPLETE (or FAIL with the error). Datasets are named by their storage URI as the OpenLineage
naming spec says (namespace ``s3://bucket``, ``gs://bucket``, ``file``; name = the path),
never with credentials, and carry the schema facet; a check's input also carries the
``dataQualityAssertions`` (one assertion per check result) and ``dataQualityMetrics`` (row
count, null counts known from metadata) facets.

Without configuration nothing is built, nothing is sent and ``openlineage`` is not even
imported. Events go through one bounded background queue: a write never waits for the
lineage backend, and a backend that is down costs a warning (once per outage), never a
failed write, commit or check. The queue is drained for at most :data:`EXIT_FLUSH_S` seconds
when the process exits; :func:`flush` drains it on demand.

Jobs are named ``OPERATION:URI`` (``write:s3://lake/orders``, ``check:s3://lake/orders``,
``sink:s3://lake/events``) in the namespace ``$OPENLINEAGE_NAMESPACE`` (default
``lakekit``); :func:`job` names the runs of a block of code instead.

Examples
--------
>>> from lakekit import lineage
>>> lineage.dataset_of("/data/events")
LineageDataset(namespace='file', name='/data/events')
>>> with lineage.job("nightly_orders", namespace="etl"):
...     lineage.job_name("write", "s3://lake/orders")
('etl', 'nightly_orders.write')
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from lakekit._deps import import_optional
from lakekit._lineage_send import (
    QUEUE_SIZE,
    Emitter,
    LineageWarning,
    event,
    input_dataset,
    new_client,
    safe,
    warn,
)
from lakekit.storage import Location, resolve

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EXIT_FLUSH_S",
    "QUEUE_SIZE",
    "LineageDataset",
    "LineageWarning",
    "capturing",
    "check_source",
    "configured",
    "dataset_of",
    "flush",
    "job",
    "job_name",
    "kafka_namespace",
    "operator_lineage",
    "set_client",
    "sink_run",
    "table_run",
    "traced_check",
]

log = logging.getLogger("lakekit.lineage")

DEFAULT_NAMESPACE = "lakekit"
EXIT_FLUSH_S = 2.0  # the most a process waits at exit for queued events

P = ParamSpec("P")
R = TypeVar("R")


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


# -- configuration -----------------------------------------------------------------------------

_lock = threading.Lock()
_explicit: list[Any] = []  # the client given to set_client (at most one)
_emitter: Emitter | None = None
_emitter_key: Any = None
_exit_hooked = False
_suppressed: ContextVar[bool] = ContextVar("lakekit_lineage_suppressed", default=False)
_job: ContextVar[tuple[str, str | None] | None] = ContextVar("lakekit_lineage_job", default=None)
_captured: ContextVar[list[LineageDataset] | None] = ContextVar("lakekit_lineage_capture",
                                                               default=None)


def _config_file() -> str | None:
    for path in (os.environ.get("OPENLINEAGE_CONFIG"), "openlineage.yml",
                 os.path.join(os.path.expanduser("~"), ".openlineage", "openlineage.yml")):
        if path and os.path.isfile(path):
            return os.path.abspath(path)
    return None


def _env_key() -> tuple[Any, ...] | None:
    """What the standard configuration is made of now; ``None`` when there is none."""
    env = os.environ
    if env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    dynamic = tuple(sorted((k, v) for k, v in env.items() if k.startswith("OPENLINEAGE__")))
    path = _config_file()
    url = env.get("OPENLINEAGE_URL", "")
    if not (url or path or any(k.startswith("OPENLINEAGE__TRANSPORT") for k, _ in dynamic)):
        return None
    mtime = os.path.getmtime(path) if path else None
    return (url, env.get("OPENLINEAGE_ENDPOINT"), env.get("OPENLINEAGE_API_KEY"), path, mtime,
            dynamic)


def configured() -> bool:
    """True when lineage events are emitted: a client was set, or OpenLineage is configured
    by ``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``, an ``openlineage.yml`` (in the working
    directory or ``~/.openlineage``) or ``OPENLINEAGE__TRANSPORT__*`` variables, and
    ``OPENLINEAGE_DISABLED`` is not ``true``. Cheap: no import, no I/O beyond two ``stat``.
    """
    return bool(_explicit) or _env_key() is not None


def set_client(client: Any) -> None:
    """Send events with ``client`` (an ``openlineage.client.OpenLineageClient``, or any object
    with ``emit(event)``); ``None`` returns to the standard configuration. Events still
    queued for the previous client are dropped.

    Examples
    --------
    >>> class Collect:
    ...     def __init__(self): self.events = []
    ...     def emit(self, event): self.events.append(event)
    >>> from lakekit import lineage
    >>> lineage.set_client(Collect()); lineage.configured()
    True
    >>> lineage.set_client(None)
    """
    global _emitter, _emitter_key
    with _lock:
        _explicit.clear()
        if client is not None:
            _explicit.append(client)
        if _emitter is not None:
            _emitter.close()
        _emitter, _emitter_key = None, None


@contextlib.contextmanager
def job(name: str, *, namespace: str | None = None) -> Iterator[None]:
    """Name the runs inside this block ``NAME.OPERATION`` (``nightly.write``,
    ``nightly.check``), in ``namespace`` (default: ``$OPENLINEAGE_NAMESPACE`` or
    ``lakekit``)."""
    token = _job.set((name, namespace))
    try:
        yield
    finally:
        _job.reset(token)


def job_name(operation: str, uri: str) -> tuple[str, str]:
    """The (namespace, name) of the job of ``operation`` on ``uri`` here."""
    override = _job.get()
    default_ns = os.environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE
    if override is not None:
        return override[1] or default_ns, f"{override[0]}.{operation}"
    return default_ns, f"{operation}:{uri}"


def _active() -> bool:
    return not _suppressed.get() and configured()


def flush(timeout: float = 5.0) -> bool:
    """Wait up to ``timeout`` seconds until every queued event was sent (or given up on);
    True when the queue is empty."""
    emitter = _emitter
    return True if emitter is None else emitter.flush(timeout)


# -- naming ------------------------------------------------------------------------------------

def dataset_of(where: Location | str | os.PathLike[str], *,
               storage_options: Mapping[str, Any] | None = None) -> LineageDataset:
    """The OpenLineage (namespace, name) of a storage location, without credentials:
    ``s3://bucket/a/b`` -> (``s3://bucket``, ``a/b``); a local path -> (``file``, the
    absolute path); other filesystems -> (``PROTOCOL``, path)."""
    location = where if isinstance(where, Location) else resolve(
        where, storage_options=storage_options)
    if location.is_local:
        return LineageDataset("file", os.path.abspath(location.path))
    protocol = {"s3a": "s3", "gcs": "gs", "az": "abfss", "abfs": "abfss"}.get(
        location.protocol, location.protocol)
    path = location.path.strip("/")
    if protocol in ("s3", "gs", "abfss"):
        bucket, _, key = path.partition("/")
        return LineageDataset(f"{protocol}://{bucket}", key or "/")
    return LineageDataset(protocol, location.path)


def kafka_namespace(bootstrap_servers: str | Sequence[str]) -> str:
    """``kafka://HOST:PORT`` of the first bootstrap server (the OpenLineage Kafka naming).

    Examples
    --------
    >>> kafka_namespace("SASL_SSL://b-1.msk:9096,b-2.msk:9096")
    'kafka://b-1.msk:9096'
    """
    first = (bootstrap_servers.split(",") if isinstance(bootstrap_servers, str)
             else list(bootstrap_servers))[0].strip()
    return "kafka://" + re.sub(r"^[A-Za-z_]+://", "", first)


def _fields(schema: pa.Schema | None) -> tuple[tuple[str, str], ...] | None:
    return None if schema is None else tuple((f.name, str(f.type)) for f in schema)


# -- runs --------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One run: START now, COMPLETE or FAIL later, through the queue."""

    operation: str
    uri: str
    inputs: list[LineageDataset] = field(default_factory=list)
    outputs: list[LineageDataset] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: _uuid7())

    def __post_init__(self) -> None:
        self.job = job_name(self.operation, self.uri)

    def emit(self, state: str, error: BaseException | None = None) -> None:
        """Build the event and queue it; never raises (a warning instead)."""
        try:
            built = event(self, state, error)
            emitter = _current_emitter()
            if emitter is not None:
                emitter.put(built)
        except Exception as exc:  # lineage never fails the operation it describes
            warn(f"lakekit could not build an OpenLineage event ({safe(exc)})")


def _uuid7() -> str:
    """A UUIDv7 (time ordered, as OpenLineage recommends for run ids)."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62) | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


def table_run(table: Any, operation: str, write: Callable[[], int], *,
              data: Any = None, mode: str | None = None) -> int:
    """Run ``write`` (a commit of ``table`` returning its version) as an OpenLineage run
    when lineage is configured; else just run it. ``data``, when a lakekit Dataset, is the
    run's input."""
    if not _active():
        return write()
    output = dataset_of(table.location)
    inputs = [dataset_of(data.location)] if _is_dataset(data) else []
    run = _Run(operation, table.uri, inputs=inputs, outputs=[output])
    run.emit("START")
    try:
        version = write()
    except BaseException as exc:
        run.emit("FAIL", exc)
        raise
    try:
        lifecycle = "CREATE" if version == 0 else "OVERWRITE" if mode == "overwrite" else None
        run.outputs = [replace(output, fields=_fields(table.schema), version=version,
                               lifecycle=lifecycle)]
    except Exception as exc:
        log.debug("lineage: no schema for %s: %s", table.uri, safe(exc))
    run.emit("COMPLETE")
    return version


def _is_dataset(data: Any) -> bool:
    return type(data).__name__ == "Dataset" and isinstance(getattr(data, "location", None),
                                                           Location)


def sink_run(main: Any, dead: Any, topics: Sequence[str], kafka: str,
             commit: Callable[[], R]) -> R:
    """Run ``commit`` (one sink commit) as an OpenLineage run: the topics in, the table
    (and the dead-letter table when it got rows) out."""
    if not _active():
        return commit()
    inputs = [LineageDataset(kafka, t) for t in sorted(set(topics))]
    run = _Run("sink", main.url, inputs=inputs, outputs=[dataset_of(main.location)])
    run.emit("START")
    try:
        outcome = commit()
    except BaseException as exc:
        run.emit("FAIL", exc)
        raise
    try:
        outputs = []
        for target, version in ((main, getattr(outcome, "version", None)),
                                (dead, getattr(outcome, "dead_letter_version", None))):
            if target is not None and version is not None:
                outputs.append(replace(dataset_of(target.location), version=version,
                                       fields=_fields(target.arrow_schema())))
        run.outputs = outputs or run.outputs
    except Exception as exc:
        log.debug("lineage: no schema for %s: %s", main.url, safe(exc))
    run.emit("COMPLETE")
    return outcome


# -- checks ------------------------------------------------------------------------------------

@dataclass
class _PendingCheck:
    source: Any = None
    run: _Run | None = None


_check: ContextVar[_PendingCheck | None] = ContextVar("lakekit_lineage_check", default=None)


def traced_check(check: Callable[P, R]) -> Callable[P, R]:
    """``lk.check`` as an OpenLineage run (with :func:`check_source` called inside it)."""

    @functools.wraps(check)
    def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        emitting, capture = _active(), _captured.get()
        if not emitting and capture is None:
            return check(*args, **kwargs)
        pending = _PendingCheck()
        token = _check.set(pending)
        try:
            report = check(*args, **kwargs)
        except BaseException as exc:
            if pending.run is not None:
                pending.run.emit("FAIL", exc)
            raise
        finally:
            _check.reset(token)
        if pending.source is not None:
            try:
                checked = _checked_dataset(pending.source, report)
            except Exception as exc:
                log.debug("lineage: no facets for the check: %s", safe(exc))
                checked = None
            if checked is not None and capture is not None:
                capture.append(checked)
            if checked is not None and pending.run is not None:
                pending.run.inputs = [checked]
            if pending.run is not None:
                pending.run.emit("COMPLETE")
        return report

    return traced


def check_source(source: Any) -> None:
    """Inside ``lk.check``: what is checked is now known (START is sent). In-memory frames
    have no storage name: their checks are not reported."""
    pending = _check.get()
    if pending is None or getattr(source, "location", None) is None:
        return
    pending.source = source
    if _active():
        ds = dataset_of(source.location)
        pending.run = _Run("check", source.label, inputs=[ds])
        pending.run.emit("START")


def _checked_dataset(source: Any, report: Any) -> LineageDataset:
    ds = dataset_of(source.location)
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
        fields = _fields(source.arrow_schema())
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


def capturing(check: Callable[P, R], into: list[LineageDataset]) -> Callable[P, R]:
    """``check`` run without lakekit's own events; the datasets its checks describe are
    appended to ``into`` (the Airflow operator hands them to the Airflow provider)."""

    @functools.wraps(check)
    def quiet(*args: P.args, **kwargs: P.kwargs) -> R:
        tokens = (_suppressed.set(True), _captured.set(into))
        try:
            return check(*args, **kwargs)
        finally:
            _captured.reset(tokens[1])
            _suppressed.reset(tokens[0])

    return quiet


def operator_lineage(inputs: Sequence[LineageDataset], *, source: str | None = None,
                     storage_options: Mapping[str, Any] | None = None) -> Any:
    """An Airflow ``OperatorLineage`` with ``inputs`` (or, when the check never got that far,
    the bare ``source``) for the Airflow OpenLineage provider."""
    extractors = import_optional("airflow.providers.openlineage.extractors",
                                 purpose="OpenLineage facets of lakekit's Airflow operators")
    datasets = list(inputs)
    if not datasets and source:
        datasets = [dataset_of(source, storage_options=storage_options)]
    return extractors.OperatorLineage(inputs=[input_dataset(d) for d in datasets])


def _current_emitter() -> Emitter | None:
    global _emitter, _emitter_key, _exit_hooked
    key = ("explicit", id(_explicit[0])) if _explicit else _env_key()
    if key is None:
        return None
    with _lock:
        if _emitter is None or _emitter_key != key:
            client = _explicit[0] if _explicit else new_client()
            if _emitter is not None:
                _emitter.close()
            _emitter, _emitter_key = Emitter(client), key
            if not _exit_hooked:
                atexit.register(lambda: flush(EXIT_FLUSH_S))
                _exit_hooked = True
        return _emitter
