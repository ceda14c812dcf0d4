"""What ``check()`` looks at: an in-memory frame, a Delta table, or a file dataset.

:func:`open_source` turns whatever the caller passed (a pyarrow / polars / pandas frame,
a lakekit ``Dataset`` or ``Table``, a URI) into a :class:`Source`. Nothing is read here
beyond what telling a Delta table from a file dataset needs; metadata and data are read
by the checks that need them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from lakekit.errors import ConfigError, LakekitError, NotFoundError, StorageError
from lakekit.io.formats import detect_table
from lakekit.storage import Location, is_transient, resolve, retry_call, storage_error

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from lakekit.io.dataset import Dataset

__all__ = ["Source", "open_source"]

Kind = Literal["frame", "delta", "files"]


@dataclass
class Source:
    """A resolved check target.

    ``label`` is credential-free and goes into reports. ``frame`` is set for in-memory
    data; ``location`` for Delta tables and file datasets.
    """

    kind: Kind
    label: str
    frame: pl.DataFrame | None = None
    location: Location | None = None
    version: int | None = None
    _dataset: Dataset | None = None
    _delta: Any = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        """Remove this source's credentials from ``text``."""
        return self.location.redact(text) if self.location is not None else text

    # -- Delta -------------------------------------------------------------------------
    def delta_table(self) -> Any:
        """The ``deltalake.DeltaTable`` (opened once; reads the log only)."""
        if self._delta is None:
            assert self.location is not None
            loc = self.location
            self._delta = guard(
                lambda: _open_delta(loc, self.version), what=self.label, redact=self.redact
            )
        return self._delta

    # -- files and Delta: the loader's Dataset -----------------------------------------
    def dataset(self) -> Dataset:
        """The lakekit Dataset over this source (opened once)."""
        if self._dataset is None:
            import lakekit as lk

            assert self.location is not None
            loc = self.location
            fmt: Literal["delta"] | None = "delta" if self.kind == "delta" else None
            self._dataset = guard(
                lambda: lk.dataset(loc.path, filesystem=loc.fs, format=fmt,
                                   version=self.version),
                what=self.label, redact=self.redact,
            )
        return self._dataset

    def column_names(self) -> list[str]:
        """The source's column names (schema from metadata; no data read)."""
        if self.frame is not None:
            return list(self.frame.columns)
        if self.kind == "delta":
            return list(self.arrow_schema().names)
        ds = self.dataset()
        return guard(lambda: list(ds.schema.names), what=self.label, redact=self.redact)

    def arrow_schema(self) -> pa.Schema:
        """The source's arrow schema (from metadata)."""
        import pyarrow as pa

        if self.frame is not None:
            return self.frame.to_arrow().schema
        if self.kind == "delta":
            if "schema" not in self._cache:
                self._cache["schema"] = pa.schema(self.delta_table().schema().to_arrow())
            schema: pa.Schema = self._cache["schema"]
            return schema
        ds = self.dataset()
        return guard(lambda: ds.schema, what=self.label, redact=self.redact)


def guard(fn: Callable[[], Any], *, what: str, redact: Callable[[str], str]) -> Any:
    """Run ``fn``; turn storage / format failures into lakekit errors naming ``what``.

    Errors that are already lakekit errors pass through (their messages are redacted by
    the layer that raised them).
    """
    try:
        return fn()
    except LakekitError:
        raise
    except FileNotFoundError as exc:
        missing = exc.filename if isinstance(exc.filename, str) else _first_line(exc)
        detail = f" ({redact(missing)})" if missing and missing != what else ""
        raise NotFoundError(f"{what}: not found{detail}") from None
    except (OSError, TimeoutError) as exc:
        error = storage_error(exc, what, scrub=redact)  # a missing bucket, a 403, ...
        raise (error or StorageError(redact(f"{what}: cannot be read: {_first_line(exc)}"))
               ) from None
    except Exception as exc:
        from deltalake.exceptions import DeltaError, TableNotFoundError

        if isinstance(exc, TableNotFoundError):
            raise NotFoundError(f"{what}: no Delta table here") from None
        if isinstance(exc, DeltaError):
            from lakekit.io.delta import log_error

            unreadable = log_error(what, None, redact(str(exc)))
            if unreadable is not None:  # the log breaks the protocol, or a reader feature
                raise unreadable from None
            raise StorageError(
                redact(f"{what}: cannot read the Delta table: {_first_line(exc)}")
            ) from None
        module = type(exc).__module__ or ""
        if is_transient(exc) or module.startswith(("botocore", "aiobotocore", "aiohttp")):
            raise StorageError(redact(
                f"{what}: storage cannot be reached: {type(exc).__name__}: {_first_line(exc)}"
            )) from None
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]


def _open_delta(location: Location, version: int | None) -> Any:
    """Read the log; what deltalake's own retries gave up on (a body cut short, a 500 in a
    row) is retried, then a StorageError: never a table opened at a shorter log."""
    from deltalake import DeltaTable

    return retry_call(
        lambda: DeltaTable(location.delta_uri(), version=version,
                           storage_options=location.delta_storage_options() or None),
        what=f"{location.url}: reading the Delta log",
    )


def _is_delta(location: Location) -> bool:
    return detect_table(location) is not None


def _frame_label(kind: str, df: pl.DataFrame) -> str:
    return f"<{kind} {df.height:,} rows x {df.width} columns>"


def open_source(
    data_or_source: Any,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Source:
    """Resolve what ``check()`` was given into a :class:`Source`.

    Examples
    --------
    >>> import polars as pl
    >>> open_source(pl.DataFrame({"a": [1]})).kind
    'frame'
    """
    obj = data_or_source
    frame = _as_polars(obj)
    if frame is not None:
        return Source("frame", _frame_label(type(obj).__module__.split(".")[0], frame),
                      frame=frame)
    from lakekit.io.dataset import Dataset

    if isinstance(obj, Dataset):
        location: Location = obj.location
        kind: Kind = "delta" if obj.format == "delta" else "files"
        label = location.url + (f"@v{obj.version}" if obj.version is not None else "")
        return Source(kind, label, location=location, version=obj.version, _dataset=obj)
    table_location = _table_location(obj)
    if table_location is not None:
        return Source("delta", table_location.url, location=table_location)
    if isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        if not text.strip():
            raise ConfigError("source is empty; pass a path, a URI, a frame, a Dataset or a Table")
        location = resolve(text, storage_options=storage_options)
        is_delta = guard(lambda: _is_delta(location), what=location.url, redact=location.redact)
        if is_delta:
            return Source("delta", location.url, location=location)
        return Source("files", location.url, location=location)
    raise ConfigError(
        "check() takes a pyarrow / polars / pandas frame, a lakekit Dataset or Table, or a "
        f"path or URI; got {type(obj).__name__}"
    )


def _table_location(obj: Any) -> Location | None:
    """The resolved location of a lakekit ``Table``, else None."""
    from lakekit.tables import Table

    if not isinstance(obj, Table):
        return None
    location = obj.location  # the Table's resolved location (credentials stay inside)
    return location


def _as_polars(obj: Any) -> pl.DataFrame | None:
    """A polars DataFrame for in-memory inputs, else None (nothing is imported needlessly)."""
    module = type(obj).__module__ or ""
    if module.startswith("polars"):
        import polars as pl

        if isinstance(obj, pl.LazyFrame):
            return obj.collect()
        if isinstance(obj, pl.DataFrame):
            return obj
        if isinstance(obj, pl.Series):
            return obj.to_frame()
    if module.startswith("pyarrow"):
        import polars as pl
        import pyarrow as pa

        if isinstance(obj, pa.RecordBatch):
            obj = pa.Table.from_batches([obj])
        if isinstance(obj, pa.Table):
            out = pl.from_arrow(obj)
            assert isinstance(out, pl.DataFrame)
            return out
    if module.startswith("pandas"):
        import pandas as pd
        import polars as pl

        if isinstance(obj, pd.DataFrame):
            return pl.from_pandas(obj)
    return None
