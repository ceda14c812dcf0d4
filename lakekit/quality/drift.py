"""Schema drift: the schema of a Delta table now against the one it had at a version, a tag
or a time, from the log alone.

Both schemas come from the Delta log (the latest ``metaData`` action, and the one in force
at the reference version), so no data file is read. Types are compared up to
representation (``large_string`` is ``string``), as :func:`lakekit.tables.schema.normalize`
does for writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from lakekit.errors import ConfigError
from lakekit.quality.report import CheckResult, Status
from lakekit.quality.sources import Source, guard

__all__ = ["SchemaDrift", "check_drift"]

Allow = Literal["additive", "none"]
_ALLOW = ("additive", "none")


@dataclass(frozen=True)
class SchemaDrift:
    """A schema drift check: the schema now against the schema at ``since``.

    Parameters
    ----------
    since
        The reference: a version number, a tag name, or a time (a ``datetime``, a ``date``
        or an ISO string such as ``"2026-03-01T00:00:00Z"``: the version in force then).
    allow
        ``"additive"``: added columns pass (and are named); dropped or retyped columns
        fail. ``"none"``: any change fails.

    Examples
    --------
    >>> import lakekit as lk
    >>> lk.SchemaDrift(since="release-1")
    SchemaDrift(since='release-1', allow='additive')
    """

    since: int | str | datetime | date
    allow: Allow = "additive"
    name: ClassVar[str] = "schema_drift"

    def __post_init__(self) -> None:
        if self.allow not in _ALLOW:
            raise ConfigError(f"SchemaDrift allow must be 'additive' or 'none'; got {self.allow!r}")
        since = self.since
        if isinstance(since, bool) or not isinstance(since, (int, str, datetime, date)):
            raise ConfigError("SchemaDrift since must be a version, a tag name or a time; "
                              f"got {since!r}")
        if isinstance(since, int) and since < 0:
            raise ConfigError(f"SchemaDrift since must be a version >= 0; got {since}")
        if isinstance(since, str) and not since.strip():
            raise ConfigError("SchemaDrift since is empty: give a version, a tag or a time")

    def evaluate(self, source: Source, *, now: datetime) -> CheckResult:
        """Run this check on ``source`` (the :class:`~lakekit.quality.protocol.Check` protocol)."""
        return check_drift(source, self)


def check_drift(source: Source, check: SchemaDrift) -> CheckResult:
    """Run ``check`` on ``source``; ``observed`` is the number of columns changed."""
    if source.kind != "delta":
        raise ConfigError(f"{source.label}: schema drift needs a Delta table's history; this "
                          f"source is {'in-memory data' if source.kind == 'frame' else 'files'}")
    return guard(lambda: _drift(source, check), what=source.label, redact=source.redact)


def _drift(source: Source, check: SchemaDrift) -> CheckResult:
    import pyarrow as pa
    from deltalake import DeltaTable

    from lakekit.storage import retry_call
    from lakekit.tables.schema import schema_changes

    location = source.location
    assert location is not None
    now_dt = source.delta_table()
    current = int(now_dt.version())
    version, how = _reference(source, check.since, current)
    if version > current:
        raise ConfigError(f"{source.label}: SchemaDrift since={check.since!r} names version "
                          f"{version}, newer than the checked version {current}")
    then = retry_call(
        lambda: DeltaTable(location.delta_uri(), version=version,
                           storage_options=location.delta_storage_options() or None),
        what=f"{source.label}: loading version {version}",
    )
    before = pa.schema(then.schema().to_arrow())
    after = pa.schema(now_dt.schema().to_arrow())
    added, removed, retyped = schema_changes(before, after)
    bad = list(removed) + [c.name for c in retyped]
    if check.allow == "none":
        bad += list(added)
    status: Status = "fail" if bad else "pass"
    parts = [f"+{c}" for c in added] + [f"-{c}" for c in removed]
    parts += [f"{c.name}: {c.from_type} -> {c.to_type}" for c in retyped]
    ref = f"version {version}{how}"
    if not parts:
        message = f"schema unchanged since {ref} (from the Delta log, no data read)"
    else:
        verdict = (f"not allowed ({check.allow}): {', '.join(bad)}" if bad
                   else f"allowed ({check.allow})")
        message = (f"schema changed since {ref}: {', '.join(parts)}; {verdict} "
                   "(from the Delta log, no data read)")
    details: dict[str, Any] = {
        "since_version": version, "version": current, "allow": check.allow,
        "added": list(added), "dropped": list(removed),
        "retyped": [{"column": c.name, "from": c.from_type, "to": c.to_type} for c in retyped],
        "method": "delta_log",
    }
    return CheckResult("schema_drift", status, len(parts), check.allow, message, details)


def _reference(source: Source, since: int | str | datetime | date, current: int
               ) -> tuple[int, str]:
    """The version ``since`` names, and how it was named (for the message)."""
    from lakekit.io.tags import TagStore

    location = source.location
    assert location is not None
    if isinstance(since, int):
        return since, ""
    if isinstance(since, str) and since.strip().isdigit():
        return int(since), ""
    moment = _as_time(since)
    if moment is None:
        assert isinstance(since, str)
        return TagStore(location).get(since).version, f" (tag {since!r})"
    from lakekit.tables.history import read_history

    commits = read_history(location, current)
    before = [c.version for c in commits if c.timestamp <= moment]
    if not before:
        first = min(commits, key=lambda c: c.version) if commits else None
        when = f"; the first readable commit is at {first.timestamp.isoformat()}" if first else ""
        raise ConfigError(f"{source.label}: SchemaDrift since={moment.isoformat()} is before "
                          f"the table's first commit{when}; give a later time or a version")
    return max(before), f" (in force at {moment.isoformat()})"


def _as_time(value: Any) -> datetime | None:
    """``value`` as a UTC datetime when it is a time (naive = UTC), else None (a tag).

    Examples
    --------
    >>> _as_time("2026-03-01T12:00:00Z").isoformat(), _as_time("release-1")
    ('2026-03-01T12:00:00+00:00', None)
    """
    from lakekit.quality.freshness import to_utc

    if isinstance(value, (datetime, date)):
        return to_utc(value)
    text = str(value).strip()
    if not text[:1].isdigit():
        return None
    try:
        return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None  # a tag name that starts with a digit
