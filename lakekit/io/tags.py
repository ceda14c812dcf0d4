"""Tags of a versioned table, stored with the table itself.

A tag is one small JSON file, ``<table>/_lakekit/tags/<name>.json``, holding the version it
names. Living next to the data, tags are seen by every reader of the same URI in any
process. A new tag is created with an atomic create-if-absent write
(:meth:`Location.write_whole`: a hard link of a complete file on local disk,
``If-None-Match: *`` on S3), so two processes racing for one name cannot both win. Each
write's bytes are unique (a claim id), so a create whose answer was lost and was retried
recognises its own file instead of reporting the name as taken.
Delta readers and ``vacuum`` ignore the underscore directory.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from lakekit.errors import ConfigError, TableError, VersionNotFoundError
from lakekit.storage import Location, retry_call

__all__ = ["Tag", "TagStore", "check_tag_name"]

TAGS_DIR = "_lakekit/tags"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Tag:
    """A named version of a table."""

    name: str
    version: int
    created: datetime


def check_tag_name(name: str) -> str:
    """Validate a tag name: letters, digits, ``.``, ``_``, ``-``; at most 128 characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"invalid tag name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


class TagStore:
    """Read and write the tags of the table at ``location``."""

    def __init__(self, location: Location) -> None:
        self._location = location
        self._dir = location.path.rstrip("/") + "/" + TAGS_DIR

    def _path(self, name: str) -> str:
        return f"{self._dir}/{check_tag_name(name)}.json"

    def all(self) -> dict[str, Tag]:
        """Every tag, by name (fresh from storage, never from a listing cache)."""
        fs = self._location.fs
        fs.invalidate_cache(self._dir)

        def listing() -> list[str]:
            try:
                return [str(p) for p in fs.ls(self._dir, detail=False)]
            except FileNotFoundError:
                return []

        paths = retry_call(listing, what=f"{self._location.url}: listing tags")
        tags: dict[str, Tag] = {}
        for path in sorted(paths):
            if not path.endswith(".json"):
                continue
            tag = self._read(path)
            if tag is not None:
                tags[tag.name] = tag
        return dict(sorted(tags.items()))

    def get(self, name: str) -> Tag:
        """The tag ``name``; :class:`VersionNotFoundError` when there is none."""
        path = self._path(name)
        tag = self._read(path)
        if tag is None:
            known = ", ".join(self.all()) or "none"
            raise VersionNotFoundError(
                f"{self._location.url}: no tag named {name!r} (tags: {known})"
            )
        return tag

    def _bytes(self, path: str) -> bytes | None:
        fs = self._location.fs

        def read() -> bytes | None:
            try:
                return bytes(fs.cat_file(path))
            except FileNotFoundError:
                return None

        return retry_call(read, what=f"{self._location.url}: reading tag file")

    def _read(self, path: str) -> Tag | None:
        raw = self._bytes(path)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            return Tag(
                name=str(doc["name"]),
                version=int(doc["version"]),
                created=datetime.fromisoformat(doc["created"]),
            )
        except (ValueError, KeyError, TypeError):
            rel = path.rsplit("/", 1)[-1]
            raise TableError(
                f"{self._location.url}: tag file {TAGS_DIR}/{rel} is corrupt "
                "(expected JSON with name, version, created); fix or delete it"
            ) from None

    def put(self, name: str, version: int, *, force: bool) -> Tag:
        """Write tag ``name`` -> ``version``; without ``force``, only if the name is free."""
        path = self._path(name)
        tag = Tag(name, int(version), datetime.now(timezone.utc))
        # the claim makes this write's bytes unique: a create whose answer was lost (the
        # server applied it) and was retried finds its own bytes, not another writer's tag
        body = json.dumps(
            {"name": tag.name, "version": tag.version, "created": tag.created.isoformat(),
             "claim": uuid.uuid4().hex}
        ).encode()
        fs = self._location.fs
        fs.makedirs(self._dir, exist_ok=True)
        try:
            retry_call(lambda: self._location.write_whole(path, body, exclusive=not force),
                       what=f"{self._location.url}: writing tag {name!r}")
        except FileExistsError:
            if self._bytes(path) == body:
                fs.invalidate_cache(self._dir)
                return tag
            existing = self._read(path)
            where = f" (version {existing.version})" if existing else ""
            raise TableError(
                f"{self._location.url}: tag {name!r} already exists{where}; "
                "pass force=True (--force on the command line) to move it"
            ) from None
        fs.invalidate_cache(self._dir)
        return tag

    def delete(self, name: str) -> Tag:
        """Remove tag ``name``; :class:`VersionNotFoundError` when there is none."""
        tag = self.get(name)
        fs = self._location.fs
        retry_call(lambda: fs.rm_file(self._path(name)),
                   what=f"{self._location.url}: removing tag {name!r}")
        fs.invalidate_cache(self._dir)
        return tag

