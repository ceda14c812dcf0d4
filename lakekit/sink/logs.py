"""The sink's log lines as data: structured fields on each record, and a JSON formatter.

The sink logs to the ``lakekit.sink`` logger in plain sentences ("commit v12 (bytes): ...").
The lines that an operator's log pipeline wants to read as data also carry their fields,
passed with ``extra=`` (see :func:`event`): an ``event`` name and a dict of values.
:class:`JsonFormatter` writes each record as one JSON object per line with stable keys:

``ts``
    When, ISO-8601 in UTC with milliseconds (``2025-01-31T12:00:00.123Z``).
``level``
    ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
``event``
    ``start``, ``commit``, ``rebalance``, ``error`` or ``stop``; a line logged without
    an event is ``error`` from level warning up and ``log`` below.
``message``
    The same sentence the text format prints.
``logger``
    The logger's name: ``lakekit.sink``, or ``kafka...`` for kafka-python's warnings.

and then the event's own fields (:func:`commit_fields` lists a commit's). Values that look
like credentials are removed from every line (:func:`lakekit.storage.redact`), whatever a
message or a field holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from lakekit.sink.stats import CommitSummary
from lakekit.storage import redact

__all__ = ["EVENTS", "JsonFormatter", "TextFormatter", "commit_fields", "event"]

EVENTS = ("start", "commit", "rebalance", "error", "stop")
"""The events the sink tags its log lines with."""

_EVENT_ATTR = "lakekit_event"
_FIELDS_ATTR = "lakekit_fields"
_KEYS = ("ts", "level", "event", "message", "logger")


def event(name: str, **fields: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call that tags the line with event ``name`` and ``fields``.

    Examples
    --------
    >>> import logging
    >>> log = logging.getLogger("lakekit.example")
    >>> log.info("partitions assigned: events[0]", extra=event("rebalance",
    ...          assigned=["events[0]"]))
    """
    return {_EVENT_ATTR: name, _FIELDS_ATTR: fields}


def commit_fields(summary: CommitSummary) -> dict[str, Any]:
    """The fields of a commit's log line: its version, counts, offsets, lag and timings.

    Examples
    --------
    >>> from lakekit.sink.stats import CommitSummary
    >>> s = CommitSummary(version=3, dead_letter_version=None, records=10, rows_written=10,
    ...                   dead_lettered=0, dead_letter_skipped=0, offsets={"events[0]": 9},
    ...                   lag={"events[0]": 0}, lost={}, decode_seconds=0.01,
    ...                   commit_seconds=0.02, attempts=1, reason="seconds")
    >>> commit_fields(s)["offsets"], commit_fields(s)["version"]
    ({'events[0]': 9}, 3)
    """
    return {
        "version": summary.version,
        "dead_letter_version": summary.dead_letter_version,
        "reason": summary.reason,
        "records": summary.records,
        "rows_written": summary.rows_written,
        "dead_lettered": summary.dead_lettered,
        "dead_letter_skipped": summary.dead_letter_skipped,
        "offsets": dict(summary.offsets),
        "lag": dict(summary.lag),
        "lost": dict(summary.lost),
        "decode_seconds": round(summary.decode_seconds, 6),
        "commit_seconds": round(summary.commit_seconds, 6),
        "attempts": summary.attempts,
    }


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line (keys ``ts``, ``level``, ``event``,
    ``message``, then the event's fields), with credentials removed.

    Parameters
    ----------
    secrets
        Options whose secret values (keys naming a key, secret, token, password, ...)
        must never be written, e.g. the storage and consumer options.

    Examples
    --------
    >>> import logging
    >>> record = logging.LogRecord("lakekit.sink", logging.INFO, __file__, 1,
    ...                            "sink stopped with %s", ("hunter22",), None)
    >>> record.__dict__.update(event("stop", rows_written=3))
    >>> line = JsonFormatter(secrets={"sasl_plain_password": "hunter22"}).format(record)
    >>> out = json.loads(line)
    >>> out["event"], out["message"], out["rows_written"]
    ('stop', 'sink stopped with ***', 3)
    """

    def __init__(self, *, secrets: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._secrets = dict(secrets or {})

    def format(self, record: logging.LogRecord) -> str:
        name = getattr(record, _EVENT_ATTR, None)
        if not isinstance(name, str):
            name = "error" if record.levelno >= logging.WARNING else "log"
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": name,
            "message": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, _FIELDS_ATTR, None)
        if isinstance(fields, Mapping):
            out.update((k, v) for k, v in fields.items() if k not in _KEYS)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out.setdefault("error_type", type(exc).__name__)
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(self._clean(out), default=str, ensure_ascii=False)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self._secrets)
        if isinstance(value, Mapping):
            return {self._clean(str(k)): self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._clean(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self._clean(str(value))


class TextFormatter(logging.Formatter):
    """Log records as ``PREFIX: message`` lines, with credentials removed (the text format
    of ``lakekit sink``).

    Examples
    --------
    >>> import logging
    >>> record = logging.LogRecord("lakekit.sink", logging.INFO, __file__, 1,
    ...                            "connected with %s", ("hunter22",), None)
    >>> TextFormatter("lakekit sink", secrets={"password": "hunter22"}).format(record)
    'lakekit sink: connected with ***'
    """

    def __init__(self, prefix: str, *, secrets: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{prefix}: %(message)s")
        self._secrets = dict(secrets or {})

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)
