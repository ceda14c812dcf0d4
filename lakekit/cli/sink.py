"""``lakekit sink``: stream Kafka topics into a Delta table, exactly once.

Run as a service: every flag is also read from a ``LAKEKIT_SINK_<FLAG>`` environment
variable (:func:`~lakekit.cli.env.bind_env`), credentials from ``--storage-options-file``
/ ``--consumer-options-file`` (``KEY=VALUE`` lines) or the environment, and
``--log-format json`` writes one JSON object per log line on stderr
(:class:`~lakekit.sink.logs.JsonFormatter`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from lakekit.cli.env import bind_env, read_options_file
from lakekit.cli.options import add_storage_option, byte_size, key_values, storage_options
from lakekit.errors import LakekitError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sink`` to the ``lakekit`` parser."""
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
    add_storage_option(p)
    p.add_argument("--consumer-option", action="append", metavar="KEY=VALUE",
                   help="a kafka-python consumer setting; one KEY=VALUE per flag, repeat "
                        "the flag for more, e.g. --consumer-option session_timeout_ms=6000 "
                        "--consumer-option security_protocol=SASL_SSL")
    p.add_argument("--storage-options-file", default=None, metavar="PATH",
                   help="storage options as KEY=VALUE lines (credentials; --storage-option "
                        "wins for a key given both ways)")
    p.add_argument("--consumer-options-file", default=None, metavar="PATH",
                   help="consumer settings as KEY=VALUE lines, e.g. sasl_plain_password=... "
                        "(--consumer-option wins for a key given both ways)")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="stderr log lines as text (default) or one JSON object per line")
    p.add_argument("--decoder", choices=["json", "raw"], default="json",
                   help="how message values are decoded (default json)")
    p.add_argument("--on-error", choices=["dead_letter", "fail"], default="dead_letter",
                   help="bad records go to the dead-letter table (default) or stop the sink")
    p.add_argument("--partition-by", action="append", metavar="COLUMN",
                   help="partition column of a new table (repeatable)")
    p.add_argument("--max-batch-rows", type=int, default=100_000, metavar="N")
    p.add_argument("--max-batch-bytes", type=byte_size, default=64 << 20, metavar="BYTES",
                   help="flush at this much buffered data, e.g. 64MiB (default)")
    p.add_argument("--max-batch-seconds", type=float, default=10.0, metavar="S")
    p.add_argument("--compact-every", type=int, default=None, metavar="N",
                   help="compact the table (and the dead-letter table) after every N "
                        "commits, in the background (default: never)")
    p.add_argument("--compact-target-size", type=byte_size, default=None, metavar="BYTES",
                   help="file size compaction aims for, e.g. 128MiB (default: the table's "
                        "delta.targetFileSize, else 100MB); needs --compact-every")
    p.add_argument("--stop-after-idle", type=float, default=None, metavar="S",
                   help="stop once no message arrived for S seconds (default: run until "
                        "SIGINT / SIGTERM)")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve /metrics (Prometheus), /livez and /readyz on this port "
                        "(needs lakekit[metrics])")
    p.add_argument("--metrics-host", default="0.0.0.0", metavar="ADDRESS",
                   help="address for --metrics-port (default 0.0.0.0)")
    p.set_defaults(handler=_cmd_sink)
    bind_env(p, prefix="LAKEKIT_SINK_")  # last: covers every flag above


def _cmd_sink(args: argparse.Namespace) -> int:
    import logging  # here, not at the top: building the parser stays quick

    from lakekit.sink.logs import JsonFormatter, TextFormatter, event

    json_lines = args.log_format == "json"

    def formatter(secrets: dict[str, Any]) -> Any:
        if json_lines:
            return JsonFormatter(secrets=secrets)
        return TextFormatter("lakekit sink", secrets=secrets)

    log = logging.getLogger("lakekit.sink")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter({}))
    level = log.level
    # JSON: on the root logger, so that kafka-python's warnings are JSON lines too
    owner = logging.getLogger() if json_lines else log
    owner.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return _run_sink(args, lambda secrets: handler.setFormatter(formatter(secrets)))
    except LakekitError as exc:
        if not json_lines:
            raise  # main() prints it as one line
        log.error("%s", exc, extra=event("error", error_type=type(exc).__name__))
        return 2
    finally:
        owner.removeHandler(handler)
        log.setLevel(level)


def _run_sink(args: argparse.Namespace,
              set_secrets: Callable[[dict[str, Any]], None]) -> int:
    import lakekit as lk
    from lakekit.sink.consumer import consumer_options

    topics = [t.strip() for arg in args.topic for t in arg.split(",") if t.strip()]
    storage: dict[str, str] = {}
    consumer: dict[str, Any] = {}
    if args.storage_options_file:
        storage.update((line.key, line.value) for line in read_options_file(
            args.storage_options_file, flag="--storage-options-file"))
    if args.consumer_options_file:
        for line in read_options_file(args.consumer_options_file,
                                      flag="--consumer-options-file"):
            consumer.update(consumer_options([(line.key, line.value)], flag=line.where))
    storage.update(storage_options(args.storage_option))
    consumer.update(consumer_options(key_values("--consumer-option", args.consumer_option)))
    set_secrets({**storage, **consumer})  # from now on no log line shows their values
    sink = lk.KafkaDeltaSink(
        topics, args.table, bootstrap_servers=args.bootstrap_servers, group_id=args.group_id,
        storage_options=storage, consumer_config=consumer, decoder=args.decoder,
        schema=args.schema, partition_by=args.partition_by, kafka_metadata=args.kafka_metadata,
        max_batch_rows=args.max_batch_rows, max_batch_bytes=args.max_batch_bytes,
        max_batch_seconds=args.max_batch_seconds, dead_letter_table=args.dead_letter_table,
        on_error=args.on_error, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
        compact_every=args.compact_every, compact_target_file_size=args.compact_target_size,
    )
    stats = sink.run(stop_after_idle=args.stop_after_idle)
    dead = f" ({sink.dead_letter_url})" if stats.dead_lettered else ""
    print(f"{stats.records_in} records in, {stats.rows_written} rows written to "
          f"{sink.table_url}, {stats.dead_lettered} dead-lettered{dead}; {stats.commits} "
          f"commits in {stats.elapsed_seconds:.1f}s")
    return 0
