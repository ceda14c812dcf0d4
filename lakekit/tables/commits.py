"""One commit, exactly once, when storage may lose the answer.

The commit of a Delta version is a conditional PUT of its log file. When the connection
fails after the server applied it, the client sees an error for a commit that landed: a
blind retry would write the same rows again at the next version, and a reported failure
would make the caller write them again. Every commit lakekit makes therefore carries a
unique ``lakekit.write_id`` in its ``commitInfo``; after any failure, :func:`commit_once`
reads the new log entries and returns the version that carries the id if one does. Only a
commit proven absent is retried (transient storage errors, and for appends commit races
deltalake could not settle), a bounded number of times. When the log cannot be read to
tell, the error says so, names the write id, and how to make a retry safe (``txn=``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lakekit.errors import (
    AccessDeniedError,
    CommitConflictError,
    LakekitError,
    NotFoundError,
    StorageError,
)
from lakekit.storage import is_transient
from lakekit.tables._delta import DeltaHandle, commit_properties, txn_done
from lakekit.tables._inputs import Source, delta_errors
from lakekit.tables.history import read_history

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["TRANSIENT_ATTEMPTS", "WRITE_ID", "commit_once", "find_commit", "new_write", "retryable"]

WRITE_ID = "lakekit.write_id"
# The newest commits searched for a write id (another process may commit right after).
SEARCH_LIMIT = 100
# Attempts of a commit that keeps failing with transient storage errors, each proven not
# to have landed (backoff 0.1 s doubling to 2 s: about 8 s in all).
TRANSIENT_ATTEMPTS = 8


def new_write(metadata: Mapping[str, Any], txn: tuple[str, int] | None = None
              ) -> tuple[str, Any]:
    """A fresh write id and deltalake commit properties that carry it (and ``txn``)."""
    write_id = uuid.uuid4().hex
    return write_id, commit_properties({**metadata, WRITE_ID: write_id}, txn)


def find_commit(delta: DeltaHandle, write_id: str, *, after: int) -> int | None:
    """The version newer than ``after`` whose commit carries ``write_id``; ``None`` when
    none does (among the newest :data:`SEARCH_LIMIT`).

    Raises
    ------
    StorageError
        The log could not be read (after bounded retries): nothing is proven either way.
    """
    if not delta.loaded and not delta.exists():
        return None
    latest = int(delta.latest().version())
    if latest <= after:
        return None
    limit = min(SEARCH_LIMIT, latest - after)
    for commit in read_history(delta.location, latest, limit):
        if commit.write_id == write_id:
            return commit.version
    return None


def retryable(exc: BaseException) -> bool:
    """True for a failed commit attempt worth making again once it is proven absent: a
    transient storage error (connection reset, 5xx, throttling, timeouts)."""
    if isinstance(exc, (NotFoundError, AccessDeniedError)):
        return False
    if isinstance(exc, StorageError):
        cause = exc.__context__  # delta_errors raises ``from None``: the context remains
        return cause is None or is_transient(cause)
    return not isinstance(exc, LakekitError) and is_transient(exc)


def commit_once(
    delta: DeltaHandle,
    what: str,
    commit: Callable[[DeltaTable | None], int],
    *,
    write_id: str,
    attempts: int,
    retry_conflicts: bool = False,
    txn: tuple[str, int] | None = None,
    source: Source | None = None,
    creating: bool = False,
) -> int:
    """Run ``commit`` (one Delta commit carrying ``write_id``; returns its version) until
    it is known to have landed: at most ``attempts`` times for lost commit races, and
    :data:`TRANSIENT_ATTEMPTS` times for transient storage errors.

    ``commit`` gets the latest snapshot (``None`` when ``creating`` the table). After a
    failure, the log decides: the version carrying ``write_id`` is returned when there is
    one; otherwise a transient error (and with ``retry_conflicts`` a lost commit race) is
    retried with backoff, other errors are raised. ``txn`` already recorded (by a
    concurrent writer of the same transaction) ends the write with the latest version.
    """
    conflicts = transients = 0
    for _ in range(attempts + TRANSIENT_ATTEMPTS):
        dt = None if creating else delta.latest()
        if dt is not None and txn_done(dt, txn):
            return int(dt.version())
        start = -1 if dt is None else int(dt.version())
        try:
            with delta_errors(delta.location, what, source=source):
                return commit(dt)
        except Exception as exc:
            landed = _prove(delta, write_id, start, exc, what)
            if landed is not None:
                return landed
            if creating and delta.exists():
                raise CommitConflictError(
                    f"{delta.url}: another writer created the table first") from exc
            if isinstance(exc, CommitConflictError) and not creating:
                latest = delta.latest()
                if txn_done(latest, txn):
                    return int(latest.version())
                conflicts += 1
                if not retry_conflicts or conflicts >= attempts:
                    raise
                pause = 0.05 * 2 ** conflicts
            elif retryable(exc) and (source is None or source.replayable):
                transients += 1
                if transients >= TRANSIENT_ATTEMPTS:
                    raise
                pause = 0.05 * 2 ** transients
            else:
                raise
            time.sleep(min(2.0, pause) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def _prove(delta: DeltaHandle, write_id: str, start: int, exc: BaseException,
           what: str) -> int | None:
    """The version ``write_id`` landed as, ``None`` if it did not; raises when the log
    cannot tell (then neither the caller nor a retry may assume either)."""
    try:
        return find_commit(delta, write_id, after=start)
    except LakekitError as unreadable:
        message = str(exc) if isinstance(exc, LakekitError) else delta.location.redact(
            f"{type(exc).__name__}: {exc}")
        raise StorageError(
            f"{message.rstrip('.')}. lakekit could not read the Delta log afterwards to "
            f"learn whether this {what} landed ({unreadable}): look for "
            f"{WRITE_ID}={write_id} in history() before writing the data again, or pass "
            "txn= to writes so that a retry is safe"
        ) from None
