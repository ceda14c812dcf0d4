"""The ``lakekit`` command: a thin shell over the public API.

A module per area registers its subcommands (``register(sub)``) and runs them:
:mod:`~lakekit.cli.io` (head, schema), :mod:`~lakekit.cli.tables` (history, tag, restore,
diff), :mod:`~lakekit.cli.sink`, :mod:`~lakekit.cli.quality` (check, schema infer) and
:mod:`~lakekit.cli.demo`. Exit status: 0 success, 1 a failed check, 2 a usage,
configuration or access error (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lakekit.cli import demo, io, quality, sink, tables
from lakekit.cli.options import Parser
from lakekit.errors import LakekitError

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

_REGISTRARS = [demo.register, io.register, quality.register, tables.register, sink.register]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lakekit`` command."""
    parser = Parser(prog="lakekit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lakekit`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except LakekitError as exc:
        print(f"lakekit {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lakekit: interrupted", file=sys.stderr)
        return 130
