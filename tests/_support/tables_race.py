"""A shared race for the tag tests: several threads claim one tag name at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import lakekit as lk
from lakekit.errors import TableError


def claim_tag_concurrently(
    open_table: Callable[[], lk.Table], name: str, versions: range
) -> list[object]:
    """Each thread opens its own Table and tags one version as ``name``; returns what each
    got: the tagged version (an int) or the ``TableError`` it raised."""
    results: list[object] = []
    start = threading.Barrier(len(versions), timeout=60)

    def claim(version: int) -> None:
        try:
            table = open_table()
        except BaseException:
            start.abort()  # the others stop waiting; this thread's error is the one to see
            raise
        start.wait()
        try:
            results.append(table.tag(name, version))
        except TableError as exc:
            results.append(exc)

    threads = [threading.Thread(target=claim, args=(v,)) for v in versions]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    return results
