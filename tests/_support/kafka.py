"""Shared Kafka test helpers: topics, a kafka-python producer, sinks with test timeouts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

import lakekit as lk
from lakekit.local_servers import KafkaBroker

# 3 s consumer sessions: a group join takes about half of it (1.5 s; 3 s with 6 s
# sessions), paid by every test that starts a sink
SESSION = {"session_timeout_ms": 3000}



def new_topic(broker: KafkaBroker, partitions: int = 1) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    broker.create_topic(name, partitions)
    return name


def produce(broker: KafkaBroker, topic: str, values: Sequence[bytes | None], *,
            partitions: int = 1, keys: Sequence[bytes | None] | None = None, start: int = 0,
            compression_type: str | None = None, linger_ms: int = 5
            ) -> list[tuple[int, int]]:
    """Send ``values`` with kafka-python round-robin over the partitions (the first to
    partition ``start``), compressed with ``compression_type``; the (partition, offset) of
    each."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=linger_ms,
                             compression_type=compression_type)
    futures = [
        producer.send(topic, value=v, key=keys[i] if keys else None,
                      partition=(start + i) % partitions)
        for i, v in enumerate(values)
    ]
    producer.flush()
    out = [(f.get(timeout=10).partition, f.get(timeout=10).offset) for f in futures]
    producer.close()
    return out


def event(i: int, **extra: Any) -> bytes:
    return json.dumps({"id": i, "user": f"u{i % 7}", "amount": i * 1.5, **extra}).encode()


def where(table: pa.Table, prefix: str = "_kafka_") -> list[tuple[int, int]]:
    cols = (f"{prefix}partition", f"{prefix}offset") if prefix else ("partition", "offset")
    return list(zip(table.column(cols[0]).to_pylist(), table.column(cols[1]).to_pylist(),
                    strict=True))


def sink_for(broker: KafkaBroker, topic: str, table: str, **options: Any) -> lk.KafkaDeltaSink:
    options.setdefault("consumer_config", SESSION)
    return lk.KafkaDeltaSink(topic, table, bootstrap_servers=broker.bootstrap_servers,
                             group_id=f"g-{uuid.uuid4().hex[:8]}", **options)
