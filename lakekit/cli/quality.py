"""The quality subcommands of ``lakekit``: ``check`` and ``schema infer``.

``lakekit check`` exits 0 for pass and warn, 1 for fail, 2 for a usage, configuration or
access error (one line on stderr, raised as a LakekitError and printed by :func:`lakekit.cli.main`).
``lakekit schema infer SOURCE`` prints a pandera YAML schema started from the data;
``lakekit schema SOURCE`` keeps printing the arrow schema.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lakekit.cli.options import add_storage_option, storage_options

__all__ = ["register"]

INFER_ROWS = 100_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``check`` and the ``infer`` form of ``schema`` to the ``lakekit`` parser."""
    options = storage_options  # a malformed KEY=VALUE raises ConfigError: exit 2
    p = sub.add_parser(
        "check", help="check a dataset: pandera schema, freshness, volume (exit 1 on fail)",
        description="Check a dataset or Delta table. Exit status: 0 pass or warn, 1 fail, "
                    "2 usage, configuration or access error.",
    )
    p.add_argument("source", help="a Delta table, a parquet / JSONL / CSV dataset (path or URL)")
    p.add_argument("--schema", default=None, metavar="NAME|PATH",
                   help="a schema name (schemas/NAME.yaml) or a path to a pandera YAML file")
    p.add_argument("--schemas-dir", default=None, metavar="DIR",
                   help="where schema names are looked up first (then $LAKEKIT_SCHEMAS_DIR, "
                        "./schemas)")
    p.add_argument("--freshness-column", default=None, metavar="C",
                   help="timestamp column dating the data (default: last commit / file time)")
    p.add_argument("--max-age", default=None, metavar="AGE",
                   help="fail when older than this, e.g. 1h (default 1h when a freshness "
                        "option is given)")
    p.add_argument("--warn-age", default=None, metavar="AGE",
                   help="warn when older than this, e.g. 30m")
    p.add_argument("--min-rows", type=int, default=None, metavar="N", help="fail below N rows")
    p.add_argument("--max-rows", type=int, default=None, metavar="N", help="fail above N rows")
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="validate a deterministic sample of N rows")
    p.add_argument("--results-table", default=None, metavar="URI",
                   help="append the report's summary to this Delta table")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    add_storage_option(p)
    p.set_defaults(handler=lambda args: _cmd_check(args, options(args.storage_option)))

    schema = sub.choices.get("schema")
    if schema is None:
        schema = sub.add_parser("schema", help="print the schema of a dataset")
        schema.add_argument("source")
        add_storage_option(schema)
        schema.set_defaults(handler=None)
    schema.add_argument("infer_source", nargs="?", metavar="SOURCE", default=None,
                        help=argparse.SUPPRESS)
    schema.add_argument("--rows", type=int, default=INFER_ROWS, metavar="N",
                        help=f"'schema infer': rows to infer from (default {INFER_ROWS:,})")
    schema.usage = ("lakekit schema [-h] [--format F] [--storage-option KEY=VALUE] SOURCE\n"
                    "       lakekit schema infer [--rows N] [--format F] "
                    "[--storage-option KEY=VALUE] SOURCE > schemas/NAME.yaml")
    print_schema = schema.get_default("handler")

    def schema_handler(args: argparse.Namespace) -> int:
        if args.source == "infer" and args.infer_source is not None:
            return _cmd_infer(args, options(args.storage_option))
        if args.infer_source is not None:
            schema.error(f"unexpected argument {args.infer_source!r} (did you mean "
                         f"'lakekit schema infer {args.infer_source}'?)")
        if print_schema is None:
            schema.error("use: lakekit schema infer SOURCE")
        result: int = print_schema(args)
        return result

    schema.set_defaults(handler=schema_handler)


def _cmd_check(args: argparse.Namespace, options: dict[str, str]) -> int:
    import lakekit as lk

    freshness = None
    if args.freshness_column or args.max_age or args.warn_age:
        freshness = lk.Freshness(column=args.freshness_column, max_age=args.max_age or "1h",
                                 warn_age=args.warn_age)
    volume = None
    if args.min_rows is not None or args.max_rows is not None:
        volume = lk.Volume(min_rows=args.min_rows, max_rows=args.max_rows)
    if args.schema is None and freshness is None and volume is None:
        from lakekit.errors import ConfigError

        raise ConfigError("nothing to check: give --schema, a freshness option "
                          "(--freshness-column / --max-age) or --min-rows / --max-rows")
    report = lk.check(
        args.source, args.schema, freshness=freshness, volume=volume,
        storage_options=options or None, schemas_dir=args.schemas_dir, sample=args.sample,
        results_table=args.results_table,
    )
    if args.json:
        print(report.to_json(indent=2))
    else:
        print(report.summary())
        _print_failure_cases(report)
    return 1 if report.status == "fail" else 0


def _print_failure_cases(report: Any, limit: int = 20) -> None:
    cases = report.failure_cases
    if not cases.height:
        return
    import polars as pl

    print(f"\nfailure cases (first {min(limit, cases.height)} of {report.failure_count}):")
    with pl.Config(tbl_rows=limit, tbl_cols=-1, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
        print(cases.head(limit))


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
