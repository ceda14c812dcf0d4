"""Shard discovery: sources (files, directories, globs, lists) -> an ordered list of files.

Order is natural (``shard_2`` before ``shard_10``) and deterministic; hidden and
underscore files (``_SUCCESS``, ``.crc``, ``_delta_log``) are skipped; hive
``key=value/`` directories become partition values. Which format the files are is told
by :mod:`lakekit.io.formats`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lakekit.errors import ConfigError, NotFoundError
from lakekit.io.pipeline import ordered_map
from lakekit.storage import Location, default_workers, retry_call

__all__ = ["FileEntry", "discover", "natural_key"]

_GLOB_CHARS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class FileEntry:
    """One data file: its path on the filesystem, size in bytes, hive partition values and,
    where a table's log records it, its row count."""

    path: str
    size: int | None
    partition: tuple[tuple[str, str], ...] = field(default=())
    rows: int | None = None


def natural_key(path: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``shard_2`` before ``shard_10``.

    Examples
    --------
    >>> sorted(["s_10", "s_2", "s_1"], key=natural_key)
    ['s_1', 's_2', 's_10']
    """
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(path) if p)


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _partition_of(relative_dir: str) -> tuple[tuple[str, str], ...]:
    out = []
    for part in relative_dir.split("/"):
        key, sep, value = part.partition("=")
        if sep and key:
            from urllib.parse import unquote

            out.append((key, unquote(value)))
    return tuple(out)


def _has_magic(text: str) -> bool:
    return bool(_GLOB_CHARS.search(text))


def discover(
    location: Location,
    sources: Sequence[str],
    *,
    partitioning: str | None = "hive",
) -> list[FileEntry]:
    """Expand ``sources`` (paths on ``location.fs``) into data files.

    A directory is read recursively, a glob is expanded, a file is taken as is. Files
    from each source are ordered naturally; sources keep the order they were given in.
    A missing path raises :class:`NotFoundError`.
    """
    groups = ordered_map(
        lambda s: _expand(location, s, partitioning),
        sources,
        workers=min(len(sources), default_workers(location)),
    )
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for files in groups:
        for e in files:
            if e.path not in seen:
                seen.add(e.path)
                entries.append(e)
    if not entries:
        raise NotFoundError(
            f"{', '.join(location.url_of(s) for s in sources)}: no data files found "
            "(hidden and underscore files are ignored)"
        )
    return entries


def _expand(location: Location, source: str, partitioning: str | None) -> list[FileEntry]:
    """The data files of one source, in natural order."""
    fs = location.fs
    what = location.url_of(source)
    if _has_magic(source):
        try:
            found: dict[str, Any] = retry_call(lambda: fs.glob(source, detail=True), what=what)
        except ValueError as exc:  # fsspec rejects malformed patterns ("a/**.parquet")
            raise ConfigError(f"{what}: invalid glob pattern ({exc})") from None
        base = _glob_base(source)
        infos: dict[str, Any] = {}
        for p, info in found.items():
            if info.get("type") == "directory":
                infos.update(_find(fs, p, location.url_of(p)))
            else:
                infos[p] = info
        if not infos:
            raise NotFoundError(f"{what}: no files match this pattern")
    else:
        top: dict[str, Any] = retry_call(lambda: fs.info(source), what=what)
        if top.get("type") == "directory":
            infos = _find(fs, source, what)
            base = source
        else:
            infos = {source: top}
            base = source.rsplit("/", 1)[0] if "/" in source else ""
    files = []
    for p, info in infos.items():
        if info.get("type") == "directory":
            continue
        relative = _relative(p, base)
        if _is_hidden(relative) or relative.endswith((".crc", ".tmp")):
            continue
        part_dir = relative.rsplit("/", 1)[0] if "/" in relative else ""
        partition = _partition_of(part_dir) if partitioning == "hive" else ()
        files.append(FileEntry(_norm(p, fs), info.get("size"), partition))
    files.sort(key=lambda e: natural_key(_relative(e.path, base)))
    return files


def _find(fs: Any, path: str, what: str) -> dict[str, Any]:
    found: dict[str, Any] = retry_call(lambda: fs.find(path, detail=True), what=what)
    return found


def _norm(path: str, fs: object) -> str:
    strip = getattr(fs, "_strip_protocol", None)
    return str(strip(path)) if strip else path


def _glob_base(pattern: str) -> str:
    parts = pattern.split("/")
    base = []
    for p in parts:
        if _has_magic(p):
            break
        base.append(p)
    return "/".join(base)


def _relative(path: str, base: str) -> str:
    base = base.rstrip("/")
    if base and path.startswith(base + "/"):
        return path[len(base) + 1:]
    if path == base:
        return path.rsplit("/", 1)[-1]
    return path.lstrip("/")

