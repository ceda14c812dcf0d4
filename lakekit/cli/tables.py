"""``lakekit history``, ``tag``, ``restore`` and ``diff``: versioned Delta tables."""

from __future__ import annotations

import argparse
from typing import Any

from lakekit.cli.options import add_storage_option, storage_options

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``history``, ``tag``, ``restore`` and ``diff`` to the ``lakekit`` parser."""
    history = sub.add_parser("history", help="list the versions of a Delta table")
    history.add_argument("uri")
    history.add_argument("--limit", type=int, default=None, help="newest N versions only")
    history.add_argument("--json", action="store_true", help="print JSON")
    add_storage_option(history)
    history.set_defaults(handler=_cmd_history)

    tag = sub.add_parser("tag", help="name a version of a Delta table (no NAME: list tags)")
    tag.add_argument("uri")
    tag.add_argument("name", nargs="?", default=None)
    tag.add_argument("--version", type=int, default=None, help="version to tag (default latest)")
    tag.add_argument("--force", action="store_true", help="move an existing tag")
    tag.add_argument("--delete", action="store_true", help="remove the tag")
    add_storage_option(tag)
    tag.set_defaults(handler=_cmd_tag)

    restore = sub.add_parser("restore", help="make a new version equal to an older one")
    restore.add_argument("uri")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", type=int, default=None)
    target.add_argument("--tag", default=None)
    target.add_argument("--as-of", default=None, help="ISO time, e.g. 2026-03-01T12:00:00Z")
    add_storage_option(restore)
    restore.set_defaults(handler=_cmd_restore)

    diff = sub.add_parser("diff", help="what changed between two versions (numbers or tags)")
    diff.add_argument("uri")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--json", action="store_true", help="print JSON")
    add_storage_option(diff)
    diff.set_defaults(handler=_cmd_diff)


def _table(args: argparse.Namespace) -> Any:
    import lakekit as lk

    return lk.Table(args.uri, storage_options=storage_options(args.storage_option))


def _cmd_history(args: argparse.Namespace) -> int:
    import json

    table = _table(args)
    commits = table.history(limit=args.limit)
    tags: dict[int, list[str]] = {}
    for name, version in table.tags().items():
        tags.setdefault(version, []).append(name)
    if args.json:
        print(json.dumps([
            {"version": c.version, "timestamp": c.timestamp.isoformat(), "operation": c.operation,
             "parameters": dict(c.parameters), "metrics": dict(c.metrics),
             "metadata": dict(c.metadata), "tags": tags.get(c.version, [])}
            for c in commits
        ], indent=2, default=str))
        return 0
    print(f"{table.uri}: {len(commits)} version(s), newest first")
    for c in commits:
        params = ", ".join(f"{k}={v}" for k, v in c.parameters.items() if len(str(v)) < 60)
        extra = [f"tags: {', '.join(tags[c.version])}"] if c.version in tags else []
        extra += [f"{k}={v}" for k, v in c.metadata.items()]
        print(f"{c.version:>6}  {c.timestamp:%Y-%m-%d %H:%M:%S}Z  {c.operation:<10} {params}"
              + (f"  [{'; '.join(extra)}]" if extra else ""))
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    table = _table(args)
    if args.name is None:
        for name, version in table.tags().items():
            print(f"{name}\t{version}")
        return 0
    if args.delete:
        print(f"removed tag {args.name!r} (was version {table.untag(args.name)})")
        return 0
    version = table.tag(args.name, args.version, force=args.force)
    print(f"tagged version {version} of {table.uri} as {args.name!r}")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    table = _table(args)
    before = table.version
    new = table.restore(args.version, tag=args.tag, as_of=args.as_of)
    what = (f"tag {args.tag!r}" if args.tag else f"as of {args.as_of}" if args.as_of
            else f"version {args.version}")
    if new == before:
        print(f"{table.uri} is already at {what} (version {new}); nothing to restore")
    else:
        print(f"restored {table.uri} to {what}: new version {new}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    result = _table(args).diff(args.a, args.b)
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    else:
        print(result.summary())
    return 0
