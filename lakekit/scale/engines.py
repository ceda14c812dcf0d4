"""The engines lakekit hands work to (Dask, Ray): finding the cluster, running tasks.

:func:`run` runs one function over a list of items on an engine and returns the results
in order; it is all that checks (:mod:`lakekit.quality`) and writes (:mod:`lakekit.tables`)
need from an engine. Dask: the given ``distributed.Client``, else the default client if
one exists (``Client("tcp://scheduler:8786")`` makes itself the default), else Dask's
local scheduler. Ray: ``ray.init`` when Ray is not initialised yet (a local instance, or
the cluster ``RAY_ADDRESS`` names).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from lakekit._deps import import_if_available, import_optional
from lakekit.errors import ConfigError

__all__ = ["ENGINES", "Engine", "dask_client", "engine_of", "ray_module", "run"]

T = TypeVar("T")
R = TypeVar("R")
Engine = Literal["dask", "ray"]
ENGINES: tuple[str, ...] = ("dask", "ray")


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
        tasks = [dask.delayed(fn, pure=False, name=f"{name}-{i}")(it) for i, it in enumerate(items)]
        return list(dask.compute(*tasks))
    ray = ray_module(purpose=f"{name} on Ray")
    def task(item: T) -> R:  # ray.remote takes functions, not callable objects
        return fn(item)

    remote = ray.remote(task).options(name=name, max_retries=3)
    return list(ray.get([remote.remote(it) for it in items]))
