"""``lakekit check``: a pandera schema, freshness, volume and PII (``--pii``), one verdict.

It exits 0 for pass and warn, 1 for fail, 2 for a usage, configuration or access error (one
line on stderr, raised as a LakekitError and printed by :func:`lakekit.cli.main`).
``--engine dask --scheduler tcp://host:8786`` validates on a Dask cluster (``--engine ray``
on Ray), partition by partition, with the report a local run gives.
``--completeness``, ``--drift-since`` and ``--volume-anomaly`` add the metadata checks
(:class:`lakekit.Completeness`, :class:`lakekit.SchemaDrift`, :class:`lakekit.VolumeAnomaly`).
``lakekit schema infer`` (a pandera YAML schema started from the data) is in
:mod:`lakekit.cli.io`, with the rest of ``lakekit schema``.
"""

from __future__ import annotations

import argparse
from typing import Any

from lakekit.cli.options import add_storage_option, storage_options

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``check`` to the ``lakekit`` parser."""
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
    p.add_argument("--pii", action="store_true",
                   help="scan string columns for PII (a seeded sample of 100,000 rows; fail "
                        "on any finding); only masked examples are printed")
    p.add_argument("--pii-columns", default=None, metavar="A,B",
                   help="with --pii: the string columns to scan (default: every one)")
    p.add_argument("--pii-kinds", default=None, metavar="K,K",
                   help="with --pii: any of email,phone,credit_card,iban,ipv4,ssn (default: all)")
    p.add_argument("--pii-max-ratio", type=float, default=None, metavar="R",
                   help="with --pii: fail a column above this share of rows (default 0)")
    p.add_argument("--results-table", default=None, metavar="URI",
                   help="append the report's summary to this Delta table")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--engine", choices=("dask", "ray"), default=None,
                   help="validate the schema partition by partition on Dask or Ray (the "
                        "report equals a local one; needs lakekit[dask] or lakekit[ray])")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="with --engine dask: the scheduler, e.g. tcp://host:8786 (default: "
                        "Dask's local scheduler); with --engine ray: the cluster address "
                        "(default: $RAY_ADDRESS, else a local Ray)")
    _add_metadata_checks(p)
    add_storage_option(p)
    p.set_defaults(handler=lambda args: _cmd_check(args, options(args.storage_option)))


def _add_metadata_checks(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("checks from metadata (no data read)")
    g.add_argument("--completeness", action="append", default=None, metavar="COL[,COL]",
                   help="fail when a column's non-null ratio is below --min-ratio (repeatable)")
    g.add_argument("--min-ratio", type=float, default=0.95, metavar="R",
                   help="with --completeness: the least non-null ratio, 0..1 (default 0.95)")
    g.add_argument("--warn-ratio", type=float, default=None, metavar="R",
                   help="with --completeness: warn below this ratio")
    g.add_argument("--drift-since", default=None, metavar="V|TAG|TIME",
                   help="fail when columns were dropped or retyped since this version, tag "
                        "or ISO time (added columns pass)")
    g.add_argument("--drift-allow", choices=("additive", "none"), default="additive",
                   help="with --drift-since: 'none' fails on added columns too")
    g.add_argument("--volume-anomaly", action="store_true",
                   help="fail when the rows added in the last period are out of the range "
                        "the same periods of the lookback give")
    g.add_argument("--period", default="1d", metavar="P",
                   help="with --volume-anomaly: 1d (default), 1h, 6h, 1w, ...")
    g.add_argument("--lookback", type=int, default=28, metavar="N",
                   help="with --volume-anomaly: periods in the baseline (default 28)")
    g.add_argument("--sensitivity", type=float, default=3.0, metavar="Z",
                   help="with --volume-anomaly: robust score that fails (default 3.0)")


def _metadata_checks(args: argparse.Namespace) -> list[Any]:
    import lakekit as lk

    checks: list[Any] = []
    if args.completeness:
        columns = [c.strip() for arg in args.completeness for c in arg.split(",") if c.strip()]
        checks.append(lk.Completeness(columns, min_ratio=args.min_ratio,
                                      warn_ratio=args.warn_ratio))
    if args.drift_since is not None:
        checks.append(lk.SchemaDrift(since=args.drift_since, allow=args.drift_allow))
    if args.volume_anomaly:
        checks.append(lk.VolumeAnomaly(period=args.period, lookback=args.lookback,
                                       sensitivity=args.sensitivity))
    return checks


def _cmd_check(args: argparse.Namespace, options: dict[str, str]) -> int:
    import lakekit as lk

    freshness = None
    if args.freshness_column or args.max_age or args.warn_age:
        freshness = lk.Freshness(column=args.freshness_column, max_age=args.max_age or "1h",
                                 warn_age=args.warn_age)
    volume = None
    if args.min_rows is not None or args.max_rows is not None:
        volume = lk.Volume(min_rows=args.min_rows, max_rows=args.max_rows)
    checks = [*_metadata_checks(args), *_pii(args)]
    if args.schema is None and freshness is None and volume is None and not checks:
        from lakekit.errors import ConfigError

        raise ConfigError("nothing to check: give --schema, a freshness option "
                          "(--freshness-column / --max-age), --min-rows / --max-rows, "
                          "--completeness, --drift-since, --volume-anomaly or --pii")
    client = _connect(args.engine, args.scheduler)
    try:
        report = lk.check(
            args.source, args.schema, freshness=freshness, volume=volume,
            storage_options=options or None, schemas_dir=args.schemas_dir, sample=args.sample,
            results_table=args.results_table, engine=args.engine, client=client,
            checks=checks,
        )
    finally:
        if client is not None:
            client.close(timeout=30)
    if args.json:
        print(report.to_json(indent=2))
    else:
        print(report.summary())
        _print_failure_cases(report)
    return 1 if report.status == "fail" else 0


def _pii(args: argparse.Namespace) -> list[Any]:
    """``[lk.Pii(...)]`` for ``--pii`` (and its options), else ``[]``."""
    import lakekit as lk
    from lakekit.errors import ConfigError

    given = [f for f, v in (("--pii-columns", args.pii_columns), ("--pii-kinds", args.pii_kinds),
                            ("--pii-max-ratio", args.pii_max_ratio)) if v is not None]
    if not args.pii:
        if given:
            raise ConfigError(f"{', '.join(given)} needs --pii")
        return []
    options: dict[str, Any] = {}
    if args.pii_columns is not None:
        options["columns"] = [c.strip() for c in args.pii_columns.split(",") if c.strip()]
    if args.pii_kinds is not None:
        options["kinds"] = [k.strip() for k in args.pii_kinds.split(",") if k.strip()]
    if args.pii_max_ratio is not None:
        options["max_ratio"] = args.pii_max_ratio
    return [lk.Pii(**options)]


def _connect(engine: str | None, address: str | None) -> Any:
    """The ``distributed.Client`` of ``--scheduler`` for Dask (closed by the caller); for
    Ray, ``ray.init(address)``. ``None`` when there is nothing to connect to."""
    from lakekit.errors import ConfigError
    from lakekit.scale.engines import connect

    if address is not None and engine is None:
        raise ConfigError("--scheduler needs --engine dask or --engine ray")
    return connect(engine, address, purpose=f"lakekit check --engine {engine} --scheduler")


def _print_failure_cases(report: Any, limit: int = 20) -> None:
    cases = report.failure_cases
    if not cases.height:
        return
    import polars as pl

    print(f"\nfailure cases (first {min(limit, cases.height)} of {report.failure_count}):")
    with pl.Config(tbl_rows=limit, tbl_cols=-1, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
        print(cases.head(limit))
