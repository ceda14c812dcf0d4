"""Errors raised by lakekit.

Every error a user sees is a :class:`LakekitError`. Messages say what happened, where
(path, line, topic/partition/offset) and, where it helps, what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "BadRecordError",
    "BadRecordsWarning",
    "BrokerError",
    "CommitConflictError",
    "ConfigError",
    "DataChangedError",
    "FormatError",
    "LakekitError",
    "MissingDependencyError",
    "NotFoundError",
    "QualityError",
    "SchemaMismatchError",
    "StorageError",
    "TableError",
    "VersionNotFoundError",
]


class LakekitError(Exception):
    """Base class of every error raised by lakekit."""


class ConfigError(LakekitError, ValueError):
    """An argument, option or configuration value is invalid."""


class MissingDependencyError(LakekitError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class StorageError(LakekitError, OSError):
    """Storage could not be reached or answered with an error (after retries)."""


class BrokerError(LakekitError, ConnectionError):
    """A Kafka broker could not be reached or answered with an error (after retries)."""


class NotFoundError(StorageError, FileNotFoundError):
    """A path, table or object does not exist."""


class AccessDeniedError(StorageError, PermissionError):
    """Storage refused the request (HTTP 403): the credentials may not access the path."""


class FormatError(LakekitError, ValueError):
    """A file is not of the expected format, or is corrupt or truncated."""


class BadRecordError(FormatError):
    """A record (a JSONL line, a Kafka message) could not be parsed or converted."""


class SchemaMismatchError(LakekitError, TypeError):
    """Schemas of two inputs (files, a table and new data) cannot be reconciled."""


class TableError(LakekitError):
    """An operation on a versioned table failed."""


class VersionNotFoundError(TableError, LookupError):
    """A table version, tag or timestamp does not resolve to a readable version."""


class CommitConflictError(TableError):
    """A commit conflicted with a concurrent writer and could not be retried safely."""


class DataChangedError(LakekitError):
    """The data under a training loader changed: a shard vanished or changed mid-epoch, or a
    saved state belongs to other data, another seed or another filter."""


class QualityError(LakekitError):
    """A quality check failed; ``report`` holds the full :class:`QualityReport`."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class BadRecordsWarning(UserWarning):
    """Records were skipped (``on_bad_lines="skip"``).

    The message gives the count and the first location.
    """
