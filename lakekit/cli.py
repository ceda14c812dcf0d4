"""The ``lakekit`` command: a thin shell over the public API.

Each subcommand is registered by a ``_add_*`` function below and runs a ``_cmd_*``
function. Exit status: 0 success, 1 a failed check, 2 a usage, configuration or access
error (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lakekit.errors import LakekitError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _storage_options(pairs: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(  # not echoed: without its "=" the argument may be all secret
                "lakekit: --storage-option expects KEY=VALUE; one argument has no KEY= part"
            )
        out[key] = value
    return out


def _add_storage_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage-option", action="append", metavar="KEY=VALUE",
        help="a storage option (repeatable), e.g. AWS_ENDPOINT_URL=http://127.0.0.1:9000",
    )


# --- demo -------------------------------------------------------------------------------

def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the end-to-end quickstart on embedded defaults")
    p.add_argument("--dir", default=None, help="where to leave the lake (default: ./lakekit-demo)")
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from lakekit.demo import run_demo

    return run_demo(args.dir)


# --- loaders ----------------------------------------------------------------------------

def _add_loaders(sub: argparse._SubParsersAction) -> None:
    head = sub.add_parser("head", help="print the first rows of a dataset")
    head.add_argument("source")
    head.add_argument("-n", type=int, default=10, help="number of rows (default 10)")
    head.add_argument("--columns", default=None, help="comma-separated columns")
    head.add_argument("--format", default=None, choices=["parquet", "jsonl", "csv", "delta"])
    _add_storage_option(head)
    head.set_defaults(handler=_cmd_head)

    schema = sub.add_parser("schema", help="print the schema of a dataset")
    schema.add_argument("source")
    schema.add_argument("--format", default=None, choices=["parquet", "jsonl", "csv", "delta"])
    _add_storage_option(schema)
    schema.set_defaults(handler=_cmd_schema)


def _cmd_head(args: argparse.Namespace) -> int:
    import lakekit as lk

    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    ds = lk.dataset(args.source, format=args.format,
                    storage_options=_storage_options(args.storage_option))
    table = ds.to_polars(columns=columns, n_rows=args.n, progress=False)
    import polars as pl

    with pl.Config(tbl_rows=args.n, tbl_cols=-1, fmt_str_lengths=60):
        print(table)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    import lakekit as lk

    ds = lk.dataset(args.source, format=args.format,
                    storage_options=_storage_options(args.storage_option))
    print(f"{ds.format} dataset, {len(ds.files)} file(s)")
    for f in ds.schema:
        print(f"  {f.name}: {f.type}{'' if f.nullable else ' not null'}")
    return 0


# --- quality ----------------------------------------------------------------------------

def _add_quality(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``check`` and ``schema infer`` (after ``_add_loaders``, whose ``schema`` it extends)."""
    from lakekit.quality.cli import register

    register(sub, add_storage_option=_add_storage_option, storage_options=_storage_options)


_REGISTRARS = [_add_demo, _add_loaders, _add_quality]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lakekit`` command."""
    parser = argparse.ArgumentParser(prog="lakekit", description=__doc__.splitlines()[0])
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


if __name__ == "__main__":
    sys.exit(main())
