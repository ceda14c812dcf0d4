"""``lakekit demo``: the embedded end-to-end quickstart on local servers.

The steps live in :mod:`lakekit.cli.demo_steps`, imported only when the command runs, so
that building the parser (``lakekit --help``, every other command) stays quick.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``lakekit`` parser."""
    p = sub.add_parser("demo", help="run the end-to-end quickstart on embedded defaults")
    p.add_argument("--dir", default=None, help="where to leave the lake (default: ./lakekit-demo)")
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from lakekit.cli.demo_steps import run_demo

    return run_demo(args.dir)
