"""``lakekit head`` and ``lakekit schema``: the first rows of a dataset, its arrow schema, and
``lakekit schema infer``, a pandera YAML schema started from its data."""

from __future__ import annotations

import argparse
import sys

from lakekit.cli.options import add_storage_option, storage_options
from lakekit.io.formats import FORMAT_NAMES

__all__ = ["register"]

INFER_ROWS = 100_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``head`` and ``schema`` to the ``lakekit`` parser."""
    head = sub.add_parser("head", help="print the first rows of a dataset")
    head.add_argument("source")
    head.add_argument("-n", type=int, default=10, help="number of rows (default 10)")
    head.add_argument("--columns", default=None, help="comma-separated columns")
    head.add_argument("--format", default=None, choices=FORMAT_NAMES)
    add_storage_option(head)
    head.set_defaults(handler=_cmd_head)

    schema = sub.add_parser("schema", help="print the schema of a dataset")
    schema.add_argument("source")
    schema.add_argument("infer_source", nargs="?", metavar="SOURCE", default=None,
                        help=argparse.SUPPRESS)
    schema.add_argument("--format", default=None, choices=FORMAT_NAMES)
    schema.add_argument("--rows", type=int, default=INFER_ROWS, metavar="N",
                        help=f"'schema infer': rows to infer from (default {INFER_ROWS:,})")
    add_storage_option(schema)
    schema.usage = ("lakekit schema [-h] [--format F] [--storage-option KEY=VALUE] SOURCE\n"
                    "       lakekit schema infer [--rows N] [--format F] "
                    "[--storage-option KEY=VALUE] SOURCE > schemas/NAME.yaml")

    def schema_handler(args: argparse.Namespace) -> int:
        if args.source == "infer" and args.infer_source is not None:
            return _cmd_infer(args, storage_options(args.storage_option))
        if args.infer_source is not None:
            schema.error(f"unexpected argument {args.infer_source!r} (did you mean "
                         f"'lakekit schema infer {args.infer_source}'?)")
        return _cmd_schema(args)

    schema.set_defaults(handler=schema_handler)


def _cmd_head(args: argparse.Namespace) -> int:
    import lakekit as lk

    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    ds = lk.dataset(args.source, format=args.format,
                    storage_options=storage_options(args.storage_option))
    table = ds.to_polars(columns=columns, n_rows=args.n, progress=False)
    import polars as pl

    with pl.Config(tbl_rows=args.n, tbl_cols=-1, fmt_str_lengths=60):
        print(table)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    import lakekit as lk

    ds = lk.dataset(args.source, format=args.format,
                    storage_options=storage_options(args.storage_option))
    print(f"{ds.format} dataset, {len(ds.files)} file(s)")
    for f in ds.schema:
        print(f"  {f.name}: {f.type}{'' if f.nullable else ' not null'}")
    return 0


def _cmd_infer(args: argparse.Namespace, options: dict[str, str]) -> int:
    import lakekit as lk
    from lakekit.errors import ConfigError
    from lakekit.quality.schemas import infer_schema_yaml

    if args.rows <= 0:
        raise ConfigError(f"--rows must be positive; got {args.rows}")
    ds = lk.dataset(args.infer_source, format=getattr(args, "format", None),
                    storage_options=options or None)
    df = ds.to_polars(n_rows=args.rows, progress=False)
    from lakekit.storage import redact

    text = infer_schema_yaml(df, source=redact(str(args.infer_source), options))
    sys.stdout.write(text)
    return 0
