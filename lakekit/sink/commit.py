"""The exactly-once commit protocol of the Kafka-to-Delta sink.

A batch is committed as (at most) two Delta commits, dead-letter table first:

1. *Fence*: read the main table's ``txn`` version of every topic-partition in the batch.
   A partition whose version is not the one the sink expected (what it read when the
   partition was assigned, or what it committed since) was committed by someone else
   (another sink process after a rebalance): its rows are dropped and reported as lost,
   so the consume loop re-seeks. A version equal to the batch's last offset means an
   earlier attempt of this very commit landed (its acknowledgement was lost): done.
2. *Dead letters*: rows whose offset is above the dead-letter table's ``txn`` version of
   their partition are appended, with ``txn`` = the batch's last offset of each such
   partition. (After a crash between the two commits they are already there, and the
   replay skips them.)
3. *Data*: the rows of the fenced partitions are appended to the main table with one
   ``txn`` action per partition (``version`` = last offset) in the same commit.

delta-rs rejects a commit whose ``txn`` app id was written by a concurrent commit
("Concurrent transaction"), so fence and commit are atomic; the protocol then starts
over from step 1 (bounded). Transient storage errors are retried with backoff (bounded).

An *ambiguous* commit (S3 applied the conditional PUT of the commit file, the reply was
lost) is caught by the same fence: the next attempt finds the batch's last offset in the
table (step 1) or in the dead-letter table (step 2) and commits nothing twice; it counts
what the lost attempt wrote as written (:class:`_Tried`). The table's creation is no
different: created, reply lost, the retry finds the table.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from lakekit.errors import CommitConflictError, StorageError, TableError
from lakekit.sink.buffer import TopicPartitionKey
from lakekit.sink.files import StagedRows
from lakekit.storage import is_transient, resolve, retry_call
from lakekit.tables.files import delta_type

__all__ = ["CommitOutcome", "CommitRequest", "DeltaTarget", "PartitionPlan", "commit_batch"]

log = logging.getLogger("lakekit.sink")


class DeltaTarget:
    """A Delta table the sink appends to, with its ``txn`` versions.

    Storage goes through :func:`lakekit.storage.resolve`; the repr and every message use
    the credential-free URL. Not thread-safe: one thread uses it at a time.
    """

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None = None,
                 *, partition_by: list[str] | None = None) -> None:
        self.location = resolve(uri, storage_options=storage_options)
        self.url = self.location.url
        self.partition_by = partition_by
        self._uri = self.location.delta_uri()
        self._options = self.location.delta_storage_options() or None
        self._table: Any = None

    def __repr__(self) -> str:
        return f"DeltaTarget({self.url!r})"

    def redact(self, text: str) -> str:
        """``text`` without this table's credentials."""
        return self.location.redact(text)

    def refresh(self) -> Any:
        """The table at its latest version (a ``DeltaTable``), or ``None`` if it does not exist.

        Transient storage errors (a reset, a 5xx, a log file or listing cut short) are
        retried (bounded); then a :class:`~lakekit.errors.StorageError`."""
        return retry_call(self._load, what=f"reading the Delta log of {self.url}")

    def _load(self) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        if self._table is None:
            try:
                self._table = DeltaTable(self._uri, storage_options=self._options)
            except TableNotFoundError:
                return None
        else:
            self._table.update_incremental()
        return self._table

    def txn_versions(self, app_ids: Iterable[str]) -> dict[str, int | None]:
        """The latest ``txn`` version of each app id (``None``: never committed)."""
        table = self.refresh()
        return {a: (table.transaction_version(a) if table is not None else None) for a in app_ids}

    def arrow_schema(self) -> pa.Schema | None:
        """The table's schema as arrow, or ``None`` if there is no table yet."""
        table = self._table if self._table is not None else self.refresh()
        if table is None:
            return None
        return pa.schema(table.schema().to_arrow())

    @property
    def version(self) -> int | None:
        """The version last seen (``None``: no table)."""
        return int(self._table.version()) if self._table is not None else None

    @contextlib.contextmanager
    def _creating(self) -> Iterator[None]:
        """Creating the table: if another writer created it first, retry as an append."""
        from deltalake.exceptions import CommitFailedError

        try:
            yield
        except CommitFailedError:
            raise
        except Exception:
            if self.refresh() is not None:
                raise _CreatedConcurrently(
                    f"{self.url} was created by another writer (or by this one, its reply "
                    "lost)") from None
            raise

    @property
    def writes_own_files(self) -> bool:
        """True when the sink writes the parquet files itself (unpartitioned tables without
        column mapping); otherwise delta-rs writes them."""
        if self.partition_by:
            return False
        table = self._table
        if table is None:
            return True
        if table.metadata().partition_columns:
            return False
        mapping = table.metadata().configuration.get("delta.columnMapping.mode", "none")
        return mapping in (None, "none")

    def stage(self) -> StagedRows:
        """Somewhere to put a batch's rows before the commit (files when the sink writes
        them, memory when delta-rs does)."""
        if self._table is None:
            self.refresh()
        return StagedRows(self.location if self.writes_own_files else None)

    def commit_files(self, adds: list[Any], schema: pa.Schema, txns: Mapping[str, int]) -> int:
        """Commit ``adds`` and the ``txn`` actions in one commit (adding the columns of
        ``schema`` the table lacks first, in a metadata-only commit); the new version."""
        from deltalake import Schema as DeltaSchema
        from deltalake.transaction import create_table_with_add_actions

        props = _commit_properties(txns)
        schema = pa.schema([f.with_type(delta_type(f.type)) for f in schema])
        table = self._table
        if table is None:
            with self._creating():
                create_table_with_add_actions(self._uri, DeltaSchema.from_arrow(schema), adds,
                                              mode="append", storage_options=self._options,
                                              commit_properties=props)
            self.refresh()
            return int(self._table.version())
        current = pa.schema(table.schema().to_arrow())
        new = [f.with_nullable(True) for f in schema if f.name not in current.names]
        if new:
            table.alter.add_columns(list(DeltaSchema.from_arrow(pa.schema(new)).fields))
            table.update_incremental()
            current = pa.schema(table.schema().to_arrow())
        table.create_write_transaction(adds, mode="append", schema=current,
                                       commit_properties=props)
        table.update_incremental()
        return int(table.version())

    def append(self, data: pa.Table, txns: Mapping[str, int]) -> int:
        """Append ``data`` and the ``txn`` actions in one commit, delta-rs writing the files
        (partitioned tables); returns the new version."""
        from deltalake import write_deltalake

        props = _commit_properties(txns)
        if self._table is None:
            with self._creating():
                write_deltalake(self._uri, data, mode="append", schema_mode="merge",
                                partition_by=self.partition_by, storage_options=self._options,
                                commit_properties=props)
            self.refresh()
        else:
            write_deltalake(self._table, data, mode="append", schema_mode="merge",
                            commit_properties=props)
        return int(self._table.version())


class _CreatedConcurrently(Exception):
    """Another writer created the table while this one tried to: retry as an append."""


def _commit_properties(txns: Mapping[str, int]) -> Any:
    from deltalake import CommitProperties, Transaction

    return CommitProperties(
        app_transactions=[Transaction(app_id, int(v)) for app_id, v in sorted(txns.items())],
    )


@dataclass(frozen=True)
class PartitionPlan:
    """One topic-partition of a batch: its txn app id, the version the sink expects the
    table to hold for it, and the batch's last offset for it."""

    tp: TopicPartitionKey
    app_id: str
    expected: int | None
    last: int


@dataclass
class CommitRequest:
    """A decoded batch, ready to commit: its rows and dead letters, staged. For every
    staged row, ``rows.parts`` / ``dead_part`` give the index of its partition in
    ``plans``; ``dead_offsets`` the offset of every dead letter."""

    plans: list[PartitionPlan]
    rows: StagedRows
    dead: StagedRows | None = None
    dead_part: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    dead_offsets: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    create_schema: pa.Schema | None = None
    """Schema to create the main table with when a batch has no valid row."""

    @property
    def held_bytes(self) -> int:
        """Decoded rows and dead letters held in memory."""
        return self.rows.held_bytes + (self.dead.held_bytes if self.dead is not None else 0)

    def close(self) -> None:
        """Remove scratch files."""
        self.rows.close()
        if self.dead is not None:
            self.dead.close()


@dataclass(frozen=True)
class CommitOutcome:
    """What a commit did."""

    version: int | None
    dead_letter_version: int | None
    rows_written: int
    dead_lettered: int
    dead_letter_skipped: int
    committed: dict[TopicPartitionKey, int]
    lost: dict[TopicPartitionKey, int | None]
    attempts: int


def commit_batch(main: DeltaTarget, dead: DeltaTarget | None, request: CommitRequest, *,
                 max_attempts: int = 12, base_delay: float = 0.2,
                 max_delay: float = 5.0) -> CommitOutcome:
    """Commit ``request`` exactly once (see the module docstring for the protocol).

    Raises
    ------
    CommitConflictError
        Conflicts kept happening for ``max_attempts`` attempts.
    StorageError
        Storage kept failing with transient errors for ``max_attempts`` attempts.
    TableError
        A non-retryable failure (a schema conflict, a permission error, ...). The tables
        are left at a clean version either way.
    """
    from deltalake.exceptions import CommitFailedError

    last_exc: BaseException | None = None
    tried = _Tried()
    for attempt in range(1, max_attempts + 1):
        try:
            return _attempt(main, dead, request, attempt, tried)
        except (CommitFailedError, _CreatedConcurrently) as exc:
            last_exc = exc
            log.info("commit to %s conflicted with a concurrent writer (attempt %d/%d): %s",
                     main.url, attempt, max_attempts, main.redact(str(exc)).splitlines()[0])
            time.sleep(random.uniform(0, min(max_delay, base_delay * attempt)))
        except Exception as exc:
            if not is_transient(exc):
                raise TableError(
                    f"commit to {main.url} failed: {type(exc).__name__}: "
                    f"{main.redact(str(exc)).strip()[:800]}"
                ) from None
            last_exc = exc
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            log.warning("transient storage error committing to %s (attempt %d/%d), retrying "
                        "in %.1fs: %s", main.url, attempt, max_attempts, delay,
                        main.redact(str(exc)).splitlines()[0][:300])
            time.sleep(delay)
    if isinstance(last_exc, (CommitFailedError, _CreatedConcurrently)):
        raise CommitConflictError(
            f"commit to {main.url} kept conflicting with concurrent writers "
            f"({max_attempts} attempts); nothing was committed for this batch"
        )
    raise StorageError(
        f"commit to {main.url} failed after {max_attempts} attempts: "
        f"{type(last_exc).__name__}: {main.redact(str(last_exc)).splitlines()[0][:300]}"
    )


def _append(target: DeltaTarget, staged: StagedRows, keep: np.ndarray | None,
            txns: Mapping[str, int], create_schema: pa.Schema | None = None) -> int | None:
    """Commit the staged rows that ``keep`` marks (all when ``None``) with ``txns``.

    Returns the new version, or ``None`` when there is no table and nothing to create it
    with (no column known yet)."""
    if staged.location is None:
        rows = staged.table(keep)
        if rows.num_columns == 0:
            schema = target.arrow_schema() if target.version is not None else create_schema
            if schema is None:
                return None
            rows = schema.empty_table()
        return target.append(rows, txns)
    schema = staged.schema
    if schema is None:
        schema = target.arrow_schema() if target.version is not None else create_schema
        if schema is None:
            return None
    return target.commit_files(staged.add_actions(keep), schema, txns)


@dataclass
class _Tried:
    """What earlier attempts of one :func:`commit_batch` sent: an attempt whose reply was
    lost (a reset after the conditional PUT of the commit file) may have landed, and the
    next attempt finds it by the ``txn`` versions; it counts those rows as its own."""

    main: set[int] = field(default_factory=set)
    """Indices (in ``plans``) of the partitions sent to the main table."""
    dead: np.ndarray | None = None
    """Mask of the dead letters sent to the dead-letter table."""


def _attempt(main: DeltaTarget, dead: DeltaTarget | None, req: CommitRequest,
             attempt: int, tried: _Tried | None = None) -> CommitOutcome:
    tried = tried if tried is not None else _Tried()
    plans = req.plans
    current = main.txn_versions(p.app_id for p in plans)
    ok = np.zeros(len(plans), dtype=bool)
    landed = np.zeros(len(plans), dtype=bool)  # an earlier attempt of this commit landed
    committed: dict[TopicPartitionKey, int] = {}
    lost: dict[TopicPartitionKey, int | None] = {}
    for i, plan in enumerate(plans):
        found = current[plan.app_id]
        if found == plan.expected:
            ok[i] = True
        elif found is not None and found == plan.last:
            committed[plan.tp] = plan.last  # an earlier attempt landed
            landed[i] = i in tried.main
        else:
            lost[plan.tp] = found

    dead_version, dead_n, dead_skipped = None, 0, 0
    if dead is not None and tried.dead is not None and landed.any():
        # the dead letters an earlier attempt sent before its main commit landed
        dead_n = int((tried.dead & landed[req.dead_part]).sum())
        dead_version = dead.version if dead_n else None
    if dead is not None and req.dead is not None and req.dead.num_rows:
        dead_ok = ok[req.dead_part]
        if dead_ok.any():
            seen = dead.txn_versions(plans[i].app_id for i in np.unique(req.dead_part[dead_ok]))
            floor = np.array([
                -1 if (v := seen.get(p.app_id)) is None else v for p in plans
            ], dtype=np.int64)
            keep = dead_ok & (req.dead_offsets > floor[req.dead_part])
            skipped = dead_ok & ~keep
            if tried.dead is not None:  # sent by an earlier attempt, which landed: ours
                dead_n += int((skipped & tried.dead).sum())
                skipped &= ~tried.dead
            dead_skipped = int(skipped.sum())
            if keep.any():
                parts = np.unique(req.dead_part[keep])
                tried.dead = keep if tried.dead is None else tried.dead | keep
                dead_version = _append(dead, req.dead, keep,
                                       {plans[i].app_id: plans[i].last for i in parts})
                dead_n += int(keep.sum())
            elif dead_n and dead_version is None:
                dead_version = dead.version

    version = None
    rows_written = 0
    if ok.any():
        keep_rows = ok[req.rows.parts] if req.rows.num_rows else None
        txns = {plans[i].app_id: plans[i].last for i in np.flatnonzero(ok)}
        tried.main.update(int(i) for i in np.flatnonzero(ok))
        # no valid row: the offsets are committed alone. Without a table and a schema to
        # create it with, the progress stays implicit (replays skip what the dead-letter
        # table already holds).
        version = _append(main, req.rows, keep_rows, txns, req.create_schema)
        if version is not None:
            rows_written = req.rows.num_rows if keep_rows is None else int(keep_rows.sum())
            committed.update({plans[i].tp: plans[i].last for i in np.flatnonzero(ok)})
    if landed.any():
        if req.rows.num_rows:
            rows_written += int(landed[req.rows.parts].sum())
        if version is None:
            version = main.version
    return CommitOutcome(version, dead_version, rows_written, dead_n, dead_skipped,
                         committed, lost, attempt)
