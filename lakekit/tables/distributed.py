"""Distributed writes: ``Table.write`` of a Dask DataFrame or a Ray Dataset.

The driver checks everything it can before any worker starts: the options, the ``txn``
(already committed: nothing to do), the data's schema (from the Dask meta or the Ray
schema) against the table's, the partitioning. Then every partition is written by a task
of the engine (:func:`lakekit.scale.engines.map_partitions`) as parquet data files in the
table's directory, in hive partition directories when the table is partitioned
(:func:`lakekit.tables.files.write_files`); the tasks return their ``add`` actions, with
statistics, and the driver makes one Delta commit of all of them (with the ``txn`` action
when ``txn=`` is given; ``mode="overwrite"`` removes every current file in that commit).

A task that fails (its worker killed, after the engine's retries) fails the write before
any commit: the table does not move, and the files the other tasks wrote are referenced
by no version, so ``vacuum`` lists and removes them. Every file name holds a fresh uuid,
so a retried task never overwrites the file of another attempt; only the files of the
attempts whose results reach the driver are committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakekit.errors import (
    CommitConflictError,
    ConfigError,
    LakekitError,
    QualityError,
    SchemaMismatchError,
    TableError,
)
from lakekit.io.delta import column_mapping_mode
from lakekit.scale.engines import TaskFailed, arrow_schema, engine_of, map_partitions
from lakekit.storage import Location
from lakekit.tables._delta import DeltaHandle, hooks, txn_done
from lakekit.tables._inputs import ANSI, check_metadata
from lakekit.tables.commits import commit_once, new_write
from lakekit.tables.create import create_with_files, needs_create, own_commit
from lakekit.tables.files import delta_type, write_files
from lakekit.tables.schema import normalize
from lakekit.tables.write import APPEND_ATTEMPTS, check_schema, check_write_options

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["TASK_NAME", "PartitionWriter", "write_distributed"]

TASK_NAME = "lakekit-write"  # the tasks' names: never a URL, never a credential


class PartitionWriter:
    """What each task runs: one partition -> data files of the table -> ``AddAction`` s.

    ``schema`` is the table's (Delta types, partition columns included): a partition's
    columns are cast to it (only lossless widenings remain after the driver's checks;
    timestamps are truncated to microseconds, as Delta stores them), a nullable column
    it lacks is written as nulls. Pickled with the task: the location travels with its
    storage options, the repr shows only the URL.
    """

    def __init__(self, location: Location, schema: pa.Schema, partition_by: Sequence[str]):
        self.location = location
        self.schema = schema
        self.partition_by = list(partition_by)

    def __repr__(self) -> str:
        return f"PartitionWriter({self.location.url!r})"

    def __call__(self, table: pa.Table, index: int | None = None) -> list[Any]:
        return write_files(self.location, conform(table, self.schema, self.location.url),
                           partition_by=self.partition_by, index=index or 0)


def conform(table: pa.Table, schema: pa.Schema, url: str) -> pa.Table:
    """``table`` with exactly the columns of ``schema``, in its order and types."""
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise SchemaMismatchError(
            f"{url}: a partition has column(s) {extra} that the table lacks (the data's "
            "declared schema, e.g. a Dask meta, does not match its partitions)"
        )
    arrays = []
    for field in schema:
        if field.name not in table.column_names:
            if not field.nullable:
                raise SchemaMismatchError(
                    f"{url}: a partition lacks the required column {field.name!r}")
            arrays.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type, safe=not pa.types.is_timestamp(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise SchemaMismatchError(
                    f"{url}: column {field.name!r} of a partition ({column.type}) cannot be "
                    f"written as the table's {field.type}: {exc}"
                ) from None
        if not field.nullable and column.null_count:
            raise SchemaMismatchError(
                f"{url}: column {field.name!r} is not null in the table, but a partition "
                f"holds {column.null_count} null(s)"
            )
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


_PARTITION_TYPES = "string, integer, boolean or date"


def _partition_type_ok(t: pa.DataType) -> bool:
    t = normalize(t)
    return (pa.types.is_string(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
            or pa.types.is_date32(t))


def write_distributed(
    delta: DeltaHandle,
    data: Any,
    *,
    mode: str,
    schema_mode: str | None,
    partition_by: str | Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    txn: tuple[str, int] | None,
    client: Any = None,
) -> int:
    """Write a Dask DataFrame or a Ray Dataset as one new version; see ``Table.write``."""
    engine = engine_of(data)
    if engine is None:
        raise ConfigError(f"not a Dask DataFrame or a Ray Dataset: {type(data).__name__}")
    parts = check_write_options(mode, schema_mode, partition_by)
    if schema_mode is not None:
        raise ConfigError(
            f"schema_mode={schema_mode!r} is not supported when writing {engine} data: "
            "change the table's schema with a (small) single-machine write first, or write "
            "the data with the table's columns"
        )
    meta = check_metadata(metadata)
    data_schema = arrow_schema(data)
    if parts:
        missing = [c for c in parts if c not in data_schema.names]
        if missing:
            raise ConfigError(f"partition_by names columns the data lacks: {missing}")
    creating = needs_create(delta)
    if creating:
        table_parts = parts or []
        for name in table_parts:
            if not _partition_type_ok(data_schema.field(name).type):
                raise ConfigError(
                    f"partition column {name!r} is {data_schema.field(name).type}; "
                    f"distributed writes partition by {_PARTITION_TYPES} columns"
                )
        schema = _new_table_schema(delta, data_schema)
    else:
        dt = delta.latest()
        if txn_done(dt, txn):
            return int(dt.version())
        table_parts = _check_table(delta, dt, data_schema, parts, mode)
        schema = _table_schema(dt)
    writer = PartitionWriter(delta.location, schema, table_parts)
    try:
        results = map_partitions(data, writer, client=client, name=TASK_NAME)
    except TaskFailed as failed:
        raise _failure(delta, failed, engine, mode) from None
    adds = [add for result in results for add in result]
    if creating:
        version = create_with_files(delta, schema, adds, table_parts or None, meta, txn)
        if version is not None:
            return version
        # Another writer created the table while the tasks ran: the files join it when
        # the schemas agree.
        dt = delta.latest()
        if txn_done(dt, txn):
            return int(dt.version())
        if (_table_schema(dt) != schema
                or list(dt.metadata().partition_columns) != table_parts):
            raise CommitConflictError(
                f"{delta.url}: another writer created the table, with another schema or "
                "partitioning, while this write ran; nothing was committed (the files "
                "written are not in the log: vacuum removes them)"
            )
    return _commit_files(delta, adds, mode=mode, partition_by=table_parts, metadata=meta,
                         txn=txn)


def _new_table_schema(delta: DeltaHandle, data: pa.Schema) -> pa.Schema:
    """The schema of a table created from data of schema ``data`` (in Delta's types),
    checked before any task runs."""
    from deltalake import Schema as DeltaSchema

    schema = pa.schema([pa.field(f.name, delta_type(f.type)) for f in data])
    try:
        DeltaSchema.from_arrow(schema)
    except Exception as exc:
        raise SchemaMismatchError(
            f"{delta.url}: the data's schema cannot be a Delta table's: "
            f"{str(exc).splitlines()[0]}. "
            "Nothing was written."
        ) from None
    return schema


def _table_schema(dt: DeltaTable) -> pa.Schema:
    """The table's schema in the types its data files store."""
    schema = pa.schema(dt.schema().to_arrow())
    return pa.schema([f.with_type(delta_type(f.type)) for f in schema])


def _check_table(delta: DeltaHandle, dt: DeltaTable, data: pa.Schema,
                 parts: list[str] | None, mode: str) -> list[str]:
    """Fail unless ``data`` can be written into ``dt`` by workers; its partition columns."""
    if column_mapping_mode(dt) is not None:
        raise TableError(
            f"{delta.url} uses column mapping: distributed writes cannot write its data "
            "files; write the data with a single-machine Table.write"
        )
    existing = list(dt.metadata().partition_columns)
    if parts is not None and parts != existing:
        raise ConfigError(
            f"{delta.url} is partitioned by {existing}; partition_by={parts} cannot "
            "change that"
        )
    table = pa.schema(dt.schema().to_arrow())
    for name in existing:
        if not _partition_type_ok(table.field(name).type):
            raise TableError(
                f"{delta.url} is partitioned by {name!r} ({table.field(name).type}); "
                f"distributed writes support {_PARTITION_TYPES} partition columns"
            )
    check_schema(delta, dt, data, allow_new=False, what=mode)
    return existing


def _commit_files(delta: DeltaHandle, adds: list[Any], *, mode: str, partition_by: list[str],
                  metadata: dict[str, Any], txn: tuple[str, int] | None) -> int:
    """Commit the written files (and ``txn``) as one version of the existing table."""
    write_id, props = new_write(metadata, txn)

    def commit(dt: DeltaTable | None) -> int:
        assert dt is not None
        dt.create_write_transaction(
            adds, mode, dt.schema(), partition_by=partition_by or None,
            commit_properties=props, post_commithook_properties=hooks(),
        )
        return own_commit(delta, write_id, "the data was committed")

    # the files are kept: only the commit is tried again
    return commit_once(delta, f"committing the {mode}", commit, write_id=write_id,
                       attempts=APPEND_ATTEMPTS, retry_conflicts=mode == "append", txn=txn)


def _failure(delta: DeltaHandle, failed: TaskFailed, engine: str, mode: str) -> LakekitError:
    """The error of a write whose tasks failed: which partition, what the engine said."""
    error = failed.error
    cause = _lakekit_cause(error)
    shown = cause if cause is not None else error
    text = " ".join(ANSI.sub("", str(shown)).split()).rstrip(".")
    text = delta.location.redact(f"{type(shown).__name__}: {text}")[:800]
    if failed.index is None:
        where = "a task failed"
    elif len(failed.failed) > 1:
        where = (f"partitions {', '.join(map(str, failed.failed))} of {failed.count} "
                 f"failed; partition {failed.index}")
    else:
        where = f"partition {failed.index} of {failed.count} failed"
    message = (
        f"{delta.url}: distributed {mode} ({engine}): {where}: {text}. Nothing was "
        "committed; data files the other tasks wrote are in no version of the table, "
        "and vacuum removes them."
    )
    if cause is not None and not isinstance(cause, QualityError):
        try:
            return type(cause)(message)
        except TypeError:
            pass
    return TableError(message)


def _lakekit_cause(error: BaseException) -> LakekitError | None:
    """The LakekitError behind an engine's wrapper exceptions, if there is one."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, LakekitError):
            return exc
        wrapped = getattr(exc, "cause", None)
        todo.extend([exc.__cause__, exc.__context__,
                     wrapped if isinstance(wrapped, BaseException) else None])
    return None
