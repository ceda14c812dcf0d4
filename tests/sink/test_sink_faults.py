"""The sink through a broker crash: Tansu keeps its log in the moto S3 server, is killed
with SIGKILL mid-stream and started again on the same port."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

import lakekit as lk
from lakekit.local_servers import RestartableBroker, S3Server, restartable_tansu_broker

pytestmark = [pytest.mark.kafka, pytest.mark.s3, pytest.mark.slow]


def produce(broker: RestartableBroker, topic: str, ids: range) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5,
                             retries=10, retry_backoff_ms=200)
    for i in ids:
        producer.send(topic, json.dumps({"id": i}).encode(), partition=i % 2)
    producer.flush(timeout=30)
    producer.close()


def test_broker_crash_and_restart_loses_and_duplicates_nothing(
    s3_server: S3Server, tmp_path: Path
) -> None:
    table = str(tmp_path / "events")
    with restartable_tansu_broker(s3_server, bucket=f"tansu-{uuid.uuid4().hex[:8]}") as broker:
        topic = "events"
        broker.create_topic(topic, 2)
        produce(broker, topic, range(0, 300))
        sink = lk.KafkaDeltaSink(
            topic, table, bootstrap_servers=broker.bootstrap_servers, group_id="crash",
            consumer_config={"session_timeout_ms": 6000, "reconnect_backoff_max_ms": 500},
            kafka_metadata=True, max_batch_rows=50, max_batch_seconds=0.5,
        )
        result: list[object] = []
        runner = threading.Thread(
            target=lambda: result.append(sink.run()), daemon=True)
        runner.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sink.stats.rows_written < 100:
            time.sleep(0.05)
        assert sink.stats.rows_written >= 100, "the sink did not start writing"
        broker.kill()
        time.sleep(3)  # the sink keeps polling a dead broker
        broker.start()
        produce(broker, topic, range(300, 600))
        # stopped once every record is written (an idle stop would have to outlast the
        # outage, about 12 s, and wait that long again at the end); a record written
        # twice or lost shows in the table below
        deadline = time.monotonic() + 120
        while (time.monotonic() < deadline and runner.is_alive()
               and sink.stats.rows_written < 600):
            time.sleep(0.05)
        sink.stop()
        runner.join(timeout=60)
        assert not runner.is_alive(), "the sink did not recover and stop"
    assert result, "the sink's run() raised (see the log)"
    data = lk.Table(table).read(columns=["id", "_kafka_partition", "_kafka_offset"])
    ids = data.column("id").to_pylist()
    assert sorted(ids) == list(range(600)), "records lost or written twice"
    places = list(zip(data.column("_kafka_partition").to_pylist(),
                      data.column("_kafka_offset").to_pylist(), strict=True))
    assert len(set(places)) == 600
