"""The ``lakekit`` command: a thin shell over the public API.

Each subcommand is registered by a ``_add_*`` function below and runs a ``_cmd_*``
function. Exit status: 0 success, 1 a failed check, 2 a usage, configuration or access
error (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lakekit.errors import ConfigError, LakekitError, missing_extra

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _key_values(flag: str, pairs: Sequence[str] | None) -> list[tuple[str, str]]:
    out = []
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(  # not echoed: without its "=" the argument may be all secret
                f"{flag} expects KEY=VALUE; one argument has no KEY= part"
            )
        out.append((key, value))
    return out


def _storage_options(pairs: Sequence[str] | None) -> dict[str, str]:
    return dict(_key_values("--storage-option", pairs))


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

def _add_quality(sub: argparse._SubParsersAction) -> None:
    """``check`` and ``schema infer`` (after ``_add_loaders``, whose ``schema`` it extends)."""
    from lakekit.quality.cli import register

    register(sub, add_storage_option=_add_storage_option, storage_options=_storage_options)


# --- versioned tables -------------------------------------------------------------------

def _add_tables(sub: argparse._SubParsersAction) -> None:
    history = sub.add_parser("history", help="list the versions of a Delta table")
    history.add_argument("uri")
    history.add_argument("--limit", type=int, default=None, help="newest N versions only")
    history.add_argument("--json", action="store_true", help="print JSON")
    _add_storage_option(history)
    history.set_defaults(handler=_cmd_history)

    tag = sub.add_parser("tag", help="name a version of a Delta table (no NAME: list tags)")
    tag.add_argument("uri")
    tag.add_argument("name", nargs="?", default=None)
    tag.add_argument("--version", type=int, default=None, help="version to tag (default latest)")
    tag.add_argument("--force", action="store_true", help="move an existing tag")
    tag.add_argument("--delete", action="store_true", help="remove the tag")
    _add_storage_option(tag)
    tag.set_defaults(handler=_cmd_tag)

    restore = sub.add_parser("restore", help="make a new version equal to an older one")
    restore.add_argument("uri")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", type=int, default=None)
    target.add_argument("--tag", default=None)
    target.add_argument("--as-of", default=None, help="ISO time, e.g. 2026-03-01T12:00:00Z")
    _add_storage_option(restore)
    restore.set_defaults(handler=_cmd_restore)

    diff = sub.add_parser("diff", help="what changed between two versions (numbers or tags)")
    diff.add_argument("uri")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--json", action="store_true", help="print JSON")
    _add_storage_option(diff)
    diff.set_defaults(handler=_cmd_diff)


def _table(args: argparse.Namespace) -> Any:
    import lakekit as lk

    return lk.Table(args.uri, storage_options=_storage_options(args.storage_option))


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


# --- Kafka -> Delta sink ----------------------------------------------------------------

def _add_sink(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sink", help="stream Kafka topics into a Delta table, exactly once")
    p.add_argument("--topic", action="append", required=True,
                   help="topic to consume (repeatable or comma-separated)")
    p.add_argument("--bootstrap-servers", required=True, metavar="HOST:PORT")
    p.add_argument("--group-id", required=True,
                   help="consumer group; also names the progress records in the table")
    p.add_argument("--table", required=True, metavar="URI", help="the Delta table to append to")
    p.add_argument("--dead-letter-table", default=None, metavar="URI",
                   help="where bad records go (default: the table URI + _dead_letter)")
    p.add_argument("--schema", default=None, metavar="NAME|PATH",
                   help="a schemas/ name or a pandera YAML file to validate against")
    p.add_argument("--kafka-metadata", action="store_true",
                   help="add _kafka_topic/_kafka_partition/_kafka_offset/_kafka_timestamp")
    _add_storage_option(p)
    p.add_argument("--consumer-option", action="append", metavar="KEY=VALUE",
                   help="a kafka-python consumer setting (repeatable), e.g. "
                        "session_timeout_ms=6000 or security_protocol=SASL_SSL")
    p.add_argument("--decoder", choices=["json", "raw"], default="json",
                   help="how message values are decoded (default json)")
    p.add_argument("--on-error", choices=["dead_letter", "fail"], default="dead_letter",
                   help="bad records go to the dead-letter table (default) or stop the sink")
    p.add_argument("--partition-by", action="append", metavar="COLUMN",
                   help="partition column of a new table (repeatable)")
    p.add_argument("--max-batch-rows", type=int, default=100_000, metavar="N")
    p.add_argument("--max-batch-bytes", type=_byte_size, default=64 << 20, metavar="BYTES",
                   help="flush at this much buffered data, e.g. 64MiB (default)")
    p.add_argument("--max-batch-seconds", type=float, default=10.0, metavar="S")
    p.add_argument("--stop-after-idle", type=float, default=None, metavar="S",
                   help="stop once no message arrived for S seconds (default: run until "
                        "SIGINT / SIGTERM)")
    p.set_defaults(handler=_cmd_sink)


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _byte_size(text: str) -> int:
    number = text.strip().lower().rstrip("bikmg")
    unit = text.strip().lower()[len(number):]
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 67108864, 64MiB or 100MB; got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the size must be positive; got {text!r}")
    return int(value)


def _consumer_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as kafka-python settings, each typed like its default."""
    try:
        from kafka import KafkaConsumer
    except ImportError:
        raise missing_extra("kafka-python", "kafka") from None

    defaults = KafkaConsumer.DEFAULT_CONFIG
    out: dict[str, Any] = {}
    for key, text in _key_values("--consumer-option", pairs):
        key = key.strip().replace("-", "_")
        if key not in defaults:
            raise ConfigError(f"--consumer-option: {key!r} is not a kafka-python consumer "
                              "setting (see kafka.KafkaConsumer's documentation)")
        default = defaults[key]
        value: Any = text
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("true", "1", "yes")
            elif isinstance(default, int) or key.endswith(("_ms", "_bytes")):
                value = int(text)
            elif isinstance(default, float):
                value = float(text)
        except ValueError:
            kind = "true or false" if isinstance(default, bool) else "a number"
            raise ConfigError(f"--consumer-option {key} expects {kind}") from None
        out[key] = value
    return out


def _cmd_sink(args: argparse.Namespace) -> int:
    import logging

    import lakekit as lk

    log = logging.getLogger("lakekit.sink")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lakekit sink: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    topics = [t.strip() for arg in args.topic for t in arg.split(",") if t.strip()]
    sink = lk.KafkaDeltaSink(
        topics, args.table, bootstrap_servers=args.bootstrap_servers, group_id=args.group_id,
        storage_options=_storage_options(args.storage_option),
        consumer_config=_consumer_options(args.consumer_option), decoder=args.decoder,
        schema=args.schema, partition_by=args.partition_by, kafka_metadata=args.kafka_metadata,
        max_batch_rows=args.max_batch_rows, max_batch_bytes=args.max_batch_bytes,
        max_batch_seconds=args.max_batch_seconds, dead_letter_table=args.dead_letter_table,
        on_error=args.on_error,
    )
    stats = sink.run(stop_after_idle=args.stop_after_idle)
    dead = f" ({sink.dead_letter_url})" if stats.dead_lettered else ""
    print(f"{stats.records_in} records in, {stats.rows_written} rows written to "
          f"{sink.table_url}, {stats.dead_lettered} dead-lettered{dead}; {stats.commits} "
          f"commits in {stats.elapsed_seconds:.1f}s")
    return 0


_REGISTRARS = [_add_demo, _add_loaders, _add_quality, _add_tables, _add_sink]


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
