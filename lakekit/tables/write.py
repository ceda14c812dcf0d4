"""The bodies of ``Table.write``, ``upsert`` and ``delete``: checks first, then one commit.

Options and schemas are checked before anything is written, so a refused write leaves no
files behind. Every commit goes through :func:`lakekit.tables.commits.commit_once`: a
failed attempt whose commit landed anyway (its answer lost) returns that version, and one
proven absent is made again after a transient storage error, or for an append of
replayable data that lost a commit race deltalake could not settle itself, at most
:data:`APPEND_ATTEMPTS` times in all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from lakekit.errors import ConfigError, SchemaMismatchError
from lakekit.tables._delta import DeltaHandle, hooks, txn_done
from lakekit.tables._inputs import (
    Source,
    as_arrow,
    check_metadata,
    check_unique_keys,
    delta_errors,
    dnf_to_sql,
)
from lakekit.tables.commits import commit_once, new_write
from lakekit.tables.create import create_or_yield, needs_create
from lakekit.tables.schema import fill_missing, write_conflicts

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = [
    "APPEND_ATTEMPTS",
    "Mode",
    "SchemaMode",
    "check_schema",
    "check_write_options",
    "delete_rows",
    "upsert_rows",
    "write_data",
]

# If deltalake still gives up, an append of an in-memory table is written again (whole
# write: new files, new commit), at most this many times.
APPEND_ATTEMPTS = 3

Mode = Literal["append", "overwrite"]
SchemaMode = Literal["merge", "overwrite"]


def check_write_options(
    mode: str, schema_mode: str | None, partition_by: str | Sequence[str] | None
) -> list[str] | None:
    """Check a write's ``mode`` and ``schema_mode``; the ``partition_by`` columns as a list."""
    if mode not in ("append", "overwrite"):
        raise ConfigError(f"mode must be 'append' or 'overwrite', got {mode!r}")
    if schema_mode not in (None, "merge", "overwrite"):
        raise ConfigError(
            f"schema_mode must be None, 'merge' or 'overwrite', got {schema_mode!r}"
        )
    if schema_mode == "overwrite" and mode != "overwrite":
        raise ConfigError("schema_mode='overwrite' needs mode='overwrite'")
    return [partition_by] if isinstance(partition_by, str) else (
        list(partition_by) if partition_by is not None else None
    )


def write_data(
    delta: DeltaHandle,
    data: Any,
    *,
    mode: Mode,
    schema_mode: SchemaMode | None,
    partition_by: str | Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    txn: tuple[str, int] | None = None,
) -> int:
    """Write ``data`` as a new version (creating the table); see ``Table.write``.

    ``txn`` (checked): when the table already records it, nothing is written and the
    current version is returned; otherwise the commit records it.
    """
    parts = check_write_options(mode, schema_mode, partition_by)
    meta = check_metadata(metadata)
    source = as_arrow(data)
    if parts:
        missing = [c for c in parts if c not in source.schema.names]
        if missing:
            raise ConfigError(f"partition_by names columns the data lacks: {missing}")
    if needs_create(delta):
        created = create_or_yield(delta, source, mode, parts, meta, txn)
        if created is not None:
            return created
    dt = delta.latest()
    if txn_done(dt, txn):
        return int(dt.version())
    existing_parts = list(dt.metadata().partition_columns)
    if parts is not None and parts != existing_parts and schema_mode != "overwrite":
        raise ConfigError(
            f"{delta.url} is partitioned by {existing_parts}; partition_by={parts} cannot "
            "change that (rewrite with mode='overwrite', schema_mode='overwrite')"
        )
    if schema_mode != "overwrite":
        check_schema(delta, dt, source.schema, allow_new=schema_mode == "merge", what=mode)
        source = fill_missing(source, pa.schema(dt.schema().to_arrow()))
    return _commit_write(delta, source, mode=mode, schema_mode=schema_mode,
                         partition_by=parts, metadata=meta, txn=txn)


def upsert_rows(
    delta: DeltaHandle,
    data: Any,
    *,
    on: str | Sequence[str],
    metadata: Mapping[str, Any] | None,
) -> int:
    """Update rows whose ``on`` key matches, insert the others; see ``Table.upsert``."""
    keys = [on] if isinstance(on, str) else list(on)
    if not keys:
        raise ConfigError("upsert needs at least one key column in on=")
    meta = check_metadata(metadata)
    source = as_arrow(data)
    with delta_errors(delta.location, "upsert", source=source):
        data = source.data
        table = data if isinstance(data, pa.Table) else data.read_all()
    missing = [k for k in keys if k not in table.schema.names]
    if missing:
        raise SchemaMismatchError(f"upsert: the data has no key column(s) {missing}")
    check_unique_keys(table, keys)
    if needs_create(delta):
        created = create_or_yield(delta, Source(table), "append", None, meta)
        if created is not None:
            return created
    dt = delta.latest()
    absent = [k for k in keys if k not in pa.schema(dt.schema().to_arrow()).names]
    if absent:
        raise SchemaMismatchError(
            f"{delta.url}: upsert key column(s) {absent} are not in the table"
        )
    check_schema(delta, dt, table.schema, allow_new=False, what="upsert")
    for name in table.schema.names:
        if "`" in name:
            raise ConfigError(f"upsert: column names may not contain backticks: {name!r}")
    # Only the data's columns are updated; a column it lacks keeps its value on update
    # and is null on insert.
    predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    values = {f"`{c}`": f"s.`{c}`" for c in table.schema.names}
    write_id, props = new_write(meta)

    def commit(dt: DeltaTable | None) -> int:
        assert dt is not None
        (
            dt.merge(table, predicate, source_alias="s", target_alias="t",
                     commit_properties=props, post_commithook_properties=hooks())
            .when_matched_update(updates=values)
            .when_not_matched_insert(updates=values)
            .execute()
        )
        return int(dt.version())

    # an upsert proven absent is made again on a transient error (it is idempotent)
    return commit_once(delta, "upsert", commit, write_id=write_id, attempts=APPEND_ATTEMPTS)


def delete_rows(
    delta: DeltaHandle, predicate: str | Sequence[Any], *, metadata: Mapping[str, Any] | None
) -> int:
    """Delete the rows matching ``predicate`` (SQL or DNF tuples); see ``Table.delete``."""
    sql = predicate if isinstance(predicate, str) else dnf_to_sql(predicate)
    if not sql.strip():
        raise ConfigError("delete needs a predicate; to empty a table, overwrite it")
    meta = check_metadata(metadata)
    write_id, props = new_write(meta)

    def commit(dt: DeltaTable | None) -> int:
        assert dt is not None
        dt.delete(sql, commit_properties=props, post_commithook_properties=hooks())
        return int(dt.version())

    return commit_once(delta, f"delete where {sql}", commit, write_id=write_id,
                       attempts=APPEND_ATTEMPTS)


def check_schema(delta: DeltaHandle, dt: DeltaTable, data: pa.Schema, *, allow_new: bool,
                 what: str) -> None:
    """Fail with SchemaMismatchError when ``data`` cannot be written into ``dt``."""
    table_schema = pa.schema(dt.schema().to_arrow())
    problems = write_conflicts(table_schema, data, allow_new_columns=allow_new)
    if problems:
        hint = "" if allow_new else "; pass schema_mode='merge' to add new columns"
        raise SchemaMismatchError(
            f"{delta.url}: cannot {what}: the data's schema conflicts with the table "
            f"(version {dt.version()}): " + "; ".join(problems)
            + f". Nothing was written{hint}."
        )


def _commit_write(delta: DeltaHandle, source: Source, *, mode: str, schema_mode: str | None,
                  partition_by: list[str] | None, metadata: dict[str, Any],
                  txn: tuple[str, int] | None) -> int:
    from deltalake import write_deltalake

    write_id, props = new_write(metadata, txn)

    def commit(dt: DeltaTable | None) -> int:
        assert dt is not None
        write_deltalake(
            dt, source.data, mode=mode,  # type: ignore[call-overload]
            schema_mode=schema_mode,
            partition_by=partition_by if schema_mode == "overwrite" else None,
            commit_properties=props, post_commithook_properties=hooks(),
        )
        return int(dt.version())

    # a failed attempt whose commit landed returns that version; one proven absent is
    # written again when the data can be replayed (transient errors; for appends, races)
    return commit_once(delta, f"{mode} write", commit, write_id=write_id,
                       attempts=APPEND_ATTEMPTS, retry_conflicts=mode == "append",
                       txn=txn, source=source)
