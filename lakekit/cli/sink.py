"""``lakekit sink``: stream Kafka topics into a Delta table, exactly once."""

from __future__ import annotations

import argparse
import sys

from lakekit.cli.options import add_storage_option, byte_size, key_values, storage_options

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
                   help="a kafka-python consumer setting (repeatable), e.g. "
                        "session_timeout_ms=6000 or security_protocol=SASL_SSL")
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
    p.set_defaults(handler=_cmd_sink)


def _cmd_sink(args: argparse.Namespace) -> int:
    import logging

    import lakekit as lk
    from lakekit.sink.consumer import consumer_options

    log = logging.getLogger("lakekit.sink")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lakekit sink: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    topics = [t.strip() for arg in args.topic for t in arg.split(",") if t.strip()]
    storage = storage_options(args.storage_option)
    consumer = consumer_options(key_values("--consumer-option", args.consumer_option))
    sink = lk.KafkaDeltaSink(
        topics, args.table, bootstrap_servers=args.bootstrap_servers, group_id=args.group_id,
        storage_options=storage, consumer_config=consumer, decoder=args.decoder,
        schema=args.schema, partition_by=args.partition_by, kafka_metadata=args.kafka_metadata,
        max_batch_rows=args.max_batch_rows, max_batch_bytes=args.max_batch_bytes,
        max_batch_seconds=args.max_batch_seconds, dead_letter_table=args.dead_letter_table,
        on_error=args.on_error, compact_every=args.compact_every,
        compact_target_file_size=args.compact_target_size,
    )
    stats = sink.run(stop_after_idle=args.stop_after_idle)
    dead = f" ({sink.dead_letter_url})" if stats.dead_lettered else ""
    print(f"{stats.records_in} records in, {stats.rows_written} rows written to "
          f"{sink.table_url}, {stats.dead_lettered} dead-lettered{dead}; {stats.commits} "
          f"commits in {stats.elapsed_seconds:.1f}s")
    return 0
