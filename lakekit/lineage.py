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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, TypeVar

from lakekit._deps import import_optional
from lakekit._lineage_send import (
    QUEUE_SIZE,
    Emitter,
    LineageDataset,
    LineageWarning,
    checked_dataset,
    event,
    input_dataset,
    new_client,
    new_run_id,
    safe,
    schema_fields,
    warn,
)
from lakekit.errors import MissingDependencyError
from lakekit.storage import Location, resolve

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


# -- configuration -----------------------------------------------------------------------------

_lock = threading.Lock()
_explicit: list[Any] = []  # the client given to set_client (at most one)
_emitter: Emitter | None = None
_emitter_key: Any = None
_exit_hooked = False
_unusable: list[Any] = []  # configurations that cannot send (openlineage missing, bad config)
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
        _unusable.clear()
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


def _key() -> Any:
    return ("explicit", id(_explicit[0])) if _explicit else _env_key()


def _active() -> bool:
    if _suppressed.get():
        return False
    key = _key()
    return key is not None and key not in _unusable


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


# -- runs --------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One run: START now, COMPLETE or FAIL later, through the queue."""

    operation: str
    uri: str
    inputs: list[LineageDataset] = field(default_factory=list)
    outputs: list[LineageDataset] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: new_run_id())

    def __post_init__(self) -> None:
        self.job = job_name(self.operation, self.uri)

    def call(self, operation: Callable[[], R]) -> R:
        """START, then ``operation()``; FAIL (and the error raised again) if it raises."""
        self.emit("START")
        try:
            return operation()
        except BaseException as exc:
            self.emit("FAIL", exc)
            raise

    def emit(self, state: str, error: BaseException | None = None) -> None:
        """Build the event and queue it; never raises (a warning instead)."""
        if _unusable and _key() in _unusable:
            return
        try:
            built = event(self, state, error)
            emitter = _current_emitter()
            if emitter is not None:
                emitter.put(built)
        except MissingDependencyError as exc:
            _give_up(f"OpenLineage is configured but cannot be used: {exc}")
        except Exception as exc:  # lineage never fails the operation it describes
            warn(f"lakekit could not build an OpenLineage event ({safe(exc)})")


def _give_up(message: str) -> None:
    """Warn once and send nothing more until the configuration changes."""
    _unusable.append(_key())
    warn(message)


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
    version = run.call(write)
    try:
        lifecycle = "CREATE" if version == 0 else "OVERWRITE" if mode == "overwrite" else None
        run.outputs = [replace(output, fields=schema_fields(table.schema), version=version,
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
    outcome = run.call(commit)
    try:
        outputs = []
        for target, version in ((main, getattr(outcome, "version", None)),
                                (dead, getattr(outcome, "dead_letter_version", None))):
            if target is not None and version is not None:
                outputs.append(replace(dataset_of(target.location), version=version,
                                       fields=schema_fields(target.arrow_schema())))
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
                source = pending.source
                checked = checked_dataset(dataset_of(source.location), source, report)
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
    key = _key()
    if key is None:
        return None
    with _lock:
        if _emitter is None or _emitter_key != key:
            try:
                client = _explicit[0] if _explicit else new_client()
            except MissingDependencyError:
                raise
            except Exception as exc:
                _give_up(f"the OpenLineage configuration cannot be used ({safe(exc)}); "
                         "lakekit sends no lineage events until it changes")
                return None
            if _emitter is not None:
                _emitter.close()
            _emitter, _emitter_key = Emitter(client), key
            if not _exit_hooked:
                atexit.register(lambda: flush(EXIT_FLUSH_S))
                _exit_hooked = True
        return _emitter
