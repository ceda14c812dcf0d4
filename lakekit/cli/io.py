"""``lakekit head`` and ``lakekit schema`` (``schema infer`` is in :mod:`lakekit.cli.quality`)."""

from __future__ import annotations

import argparse

from lakekit.cli.options import add_storage_option, storage_options
from lakekit.io.formats import FORMAT_NAMES

__all__ = ["register"]


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
    schema.add_argument("--format", default=None, choices=FORMAT_NAMES)
    add_storage_option(schema)
    schema.set_defaults(handler=_cmd_schema)


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
