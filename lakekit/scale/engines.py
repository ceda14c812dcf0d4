"""The engines lakekit hands work to (Dask, Ray): finding the cluster, running tasks.

:func:`run` runs one function over a list of items on an engine and returns the results
in order; it is all that checks (:mod:`lakekit.quality`) need from an engine.
:func:`map_partitions` runs one function on every partition of a Dask DataFrame or block
of a Ray Dataset, each handed over as a pyarrow Table, and brings the (small) results
back: what distributed writes (:mod:`lakekit.tables.distributed`) use.

Dask: the given ``distributed.Client``, else the default client if one exists
(``Client("tcp://scheduler:8786")`` makes itself the default), else Dask's local
scheduler. Ray: ``ray.init`` when Ray is not initialised yet (a local instance, or the
cluster ``RAY_ADDRESS`` names).
"""

from __future__ import annotations

import functools
import pickle
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import pyarrow as pa

from lakekit._deps import import_if_available, import_optional
from lakekit.errors import ConfigError

__all__ = [
    "ENGINES",
    "RAY_TASK_RETRIES",
    "Engine",
    "PartitionFn",
    "TaskFailed",
    "arrow_schema",
    "connect",
    "dask_client",
    "engine_of",
    "map_partitions",
    "ray_module",
    "run",
]

T = TypeVar("T")
R = TypeVar("R")
Engine = Literal["dask", "ray"]
ENGINES: tuple[str, ...] = ("dask", "ray")
PartitionFn = Callable[[pa.Table, "int | None"], R]
# Ray Data retries a task whose worker died forever by default; map_partitions stops after
# this many retries (Dask's bound is the cluster's distributed.scheduler.allowed-failures).
RAY_TASK_RETRIES = 3


def check_engine(engine: str) -> Engine:
    """``engine``, checked."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be 'dask' or 'ray'; got {engine!r}")
    return engine  # type: ignore[return-value]


def engine_of(data: Any) -> Engine | None:
    """``"dask"`` for a Dask DataFrame, ``"ray"`` for a Ray Dataset, else ``None``
    (decided from the type's module: neither engine is imported to ask)."""
    module = type(data).__module__ or ""
    if module.startswith("dask.") and hasattr(data, "to_delayed"):
        return "dask"
    if module.startswith("ray.data") and hasattr(data, "map_batches"):
        return "ray"
    return None


def dask_client(client: Any = None, *, purpose: str) -> Any:
    """The ``distributed.Client`` to use: ``client``, else the default one, else ``None``
    (Dask's local scheduler runs the tasks)."""
    import_optional("dask", purpose=purpose)
    if client is not None:
        return client
    distributed = import_if_available("distributed")
    if distributed is None:  # plain dask: its local scheduler runs the tasks
        return None
    try:
        return distributed.default_client()
    except ValueError:  # no client was started in this process
        return None


def ray_module(*, purpose: str) -> Any:
    """``ray``, initialised (locally, or to the cluster ``RAY_ADDRESS`` names)."""
    ray = import_optional("ray", purpose=purpose)
    import_optional("ray.data", purpose=purpose)
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    return ray


def connect(engine: str | None, address: str | None, *, purpose: str) -> Any:
    """Connect to the cluster at ``address``: a ``distributed.Client`` for Dask (the caller
    closes it; it is not made the default), ``ray.init(address=...)`` for Ray (``None`` is
    returned). ``None`` when ``address`` is ``None``: the engine's default is used.

    Raises ConfigError naming the address (never more of it than the address itself)
    when nothing answers there.
    """
    if address is None:
        return None
    if engine is None:
        raise ConfigError(f"{purpose}: a scheduler address needs engine='dask' or 'ray'")
    engine = check_engine(engine)
    try:
        if engine == "dask":
            distributed = import_optional("distributed", purpose=purpose)
            return distributed.Client(address, timeout=30, set_as_default=False)
        ray = import_optional("ray", purpose=purpose)
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(f"{purpose}: cannot connect to {engine} at {address}: "
                          f"{detail}") from None
    return None


def run(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    engine: str,
    client: Any = None,
    name: str = "lakekit",
) -> list[R]:
    """``[fn(item) for item in items]``, each call a task on ``engine``; results in order.

    ``name`` names the tasks (Dask keys, Ray task names): it must hold no credentials.
    A task that fails raises here, as the engine reports it, after the engine's retries.
    """
    engine = check_engine(engine)
    if not items:
        return []
    # Task keys must be unique per call: Dask hands back the result of a live task with
    # the same key instead of running the new function.
    name = f"{name}-{uuid.uuid4().hex[:12]}"
    if engine == "dask":
        purpose = f"{name} on Dask"
        dask = import_optional("dask", purpose=purpose)
        cl = dask_client(client, purpose=purpose)
        if cl is not None:
            futures = cl.map(fn, list(items), key=[f"{name}-{i}" for i in range(len(items))],
                             pure=False)
            try:
                return list(cl.gather(futures))
            finally:
                for f in futures:
                    f.release()
        # dask_key_name names the call; delayed(..., name=) would only name the function
        tasks = [dask.delayed(fn, pure=False)(it, dask_key_name=f"{name}-{i}")
                 for i, it in enumerate(items)]
        return list(dask.compute(*tasks))
    ray = ray_module(purpose=f"{name} on Ray")
    def task(item: T) -> R:  # ray.remote takes functions, not callable objects
        return fn(item)

    remote = ray.remote(task).options(name=name, max_retries=3)
    return list(ray.get([remote.remote(it) for it in items]))


class TaskFailed(Exception):
    """A partition's task failed, after the engine's retries.

    ``index`` is the first failed partition (``None`` when the engine does not say),
    ``failed`` every failed one, ``count`` the number of partitions (``None``: unknown)
    and ``error`` what the engine raised. Callers turn it into an error of their own.
    """

    def __init__(self, error: BaseException, *, index: int | None = None,
                 failed: Sequence[int] = (), count: int | None = None) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.index = index
        self.failed = tuple(failed)
        self.count = count


def arrow_schema(data: Any) -> pa.Schema:
    """The arrow schema of a Dask DataFrame (from its meta) or a Ray Dataset, as the
    partitions :func:`map_partitions` hands over will have it; nothing is computed for
    Dask, Ray may execute the first block when its schema is not known yet."""
    engine = engine_of(data)
    if engine == "dask":
        if not hasattr(data, "columns"):
            raise ConfigError(f"a Dask {type(data).__name__} has no columns: pass a DataFrame")
        # the nonempty meta: an object column of the empty meta would give a null type
        return pa.Schema.from_pandas(data._meta_nonempty, preserve_index=False)
    if engine == "ray":
        schema = data.schema()
        if schema is None:
            raise ConfigError("the Ray Dataset has no schema (no columns)")
        base = schema.base_schema
        if isinstance(base, pa.Schema):
            return base
        fields = []
        for name, t in zip(schema.names, schema.types, strict=True):
            if not isinstance(t, pa.DataType):
                raise ConfigError(
                    f"column {name!r} of the Ray Dataset has no arrow type ({t!r}); cast it "
                    "with map_batches(..., batch_format='pyarrow') first"
                )
            fields.append(pa.field(name, t))
        return pa.schema(fields)
    raise ConfigError(f"not a Dask DataFrame or a Ray Dataset: {type(data).__name__}")


def _as_arrow(part: Any) -> pa.Table:
    if isinstance(part, pa.Table):
        return part
    if isinstance(part, pa.RecordBatch):
        return pa.Table.from_batches([part])
    return pa.Table.from_pandas(part, preserve_index=False)


def _on_arrow(fn: PartitionFn[R], part: Any, index: int) -> R:
    return fn(_as_arrow(part), index)


def _ray_batch(fn: PartitionFn[Any], batch: pa.Table) -> pa.Table:
    return pa.table({"result": pa.array([pickle.dumps(fn(batch, None))], pa.binary())})


def map_partitions(
    data: Any,
    fn: PartitionFn[R],
    *,
    client: Any = None,
    name: str = "lakekit",
) -> list[R]:
    """``fn(partition, index)`` for every partition of a Dask DataFrame (in order) or every
    block of a Ray Dataset (in no particular order), each partition as a pyarrow Table;
    ``index`` is the partition's number (Dask), or ``None`` (Ray: blocks have none).

    The results come back to this process: keep them small. Dask runs on ``client``, else
    the default ``distributed.Client``, else its local scheduler; Ray on the running
    instance (started when there is none), each block's task retried at most
    :data:`RAY_TASK_RETRIES` times when its worker dies. ``name`` names the tasks: it must
    hold no credentials. When partitions fail, :class:`TaskFailed` is raised once every
    other partition's task has ended (Dask with a ``distributed.Client``), so that
    nothing of the job is still running.
    """
    engine = engine_of(data)
    if engine == "dask":
        return _dask_partitions(data, fn, client=client, name=name)
    if engine == "ray":
        if client is not None:
            raise ConfigError("client= is a Dask distributed.Client; a Ray Dataset runs on Ray")
        return _ray_partitions(data, fn, name=name)
    raise ConfigError(f"not a Dask DataFrame or a Ray Dataset: {type(data).__name__}")


def _dask_partitions(data: Any, fn: PartitionFn[R], *, client: Any,
                     name: str) -> list[R]:
    purpose = f"{name} on Dask"
    dask = import_optional("dask", purpose=purpose)
    parts = data.to_delayed()
    token = uuid.uuid4().hex[:12]
    task = functools.partial(_on_arrow, fn)
    tasks = [dask.delayed(task, pure=False)(part, i, dask_key_name=f"{name}-{token}-{i}")
             for i, part in enumerate(parts)]
    if not tasks:
        return []
    cl = dask_client(client, purpose=purpose)
    if cl is None:
        try:
            return list(dask.compute(*tasks))
        except Exception as exc:
            raise TaskFailed(exc, count=len(tasks)) from exc
    futures = cl.compute(tasks)
    try:
        errors = _settle(futures)
        if errors:
            first = min(errors)
            raise TaskFailed(errors[first], index=first, failed=sorted(errors),
                             count=len(futures))
        return list(cl.gather(futures))
    finally:
        for f in futures:
            f.release()


SETTLE_ROUNDS = 100


def _settle(futures: list[Any]) -> dict[int, BaseException]:
    """Wait until every task has ended (done, or failed after the cluster's retries); the
    errors by partition. A result lost with its worker is computed again, so the futures
    are looked at until all of them are final at once: then nothing of the job runs."""
    final = ("finished", "error", "cancelled")
    # Each round waits for every future; a round starts again only when a result was lost
    # with its worker meanwhile, which the cluster's allowed-failures bounds per task.
    for _ in range(SETTLE_ROUNDS):
        errors: dict[int, BaseException] = {}
        for i, future in enumerate(futures):
            try:
                error = future.exception()
            except Exception as exc:  # cancelled (the client or the cluster went away)
                error = exc
            if error is not None:
                errors[i] = error
        if all(f.status in final for f in futures):
            return errors
    raise TaskFailed(RuntimeError(
        f"the job's tasks did not settle after {SETTLE_ROUNDS} rounds of lost results "
        "(workers keep dying?)"), count=len(futures))


def _ray_partitions(data: Any, fn: PartitionFn[R], *, name: str) -> list[R]:
    ray_module(purpose=f"{name} on Ray")
    out = data.map_batches(
        functools.partial(_ray_batch, fn), batch_format="pyarrow", batch_size=None,
        zero_copy_batch=True, max_retries=RAY_TASK_RETRIES,
    )
    try:
        rows = out.take_all()
    except Exception as exc:
        raise TaskFailed(exc) from exc
    return [pickle.loads(row["result"]) for row in rows]
