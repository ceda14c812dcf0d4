"""The sink under S3 failures (the fault proxy in its own process in front of moto): an
ambiguous commit (the commit file's conditional PUT applied, its reply lost) of the main
and of the dead-letter table, and a sink killed with SIGKILL at random instants through a
mixed fault schedule and a broker restart. Every valid record lands exactly once in the
main table, every bad one exactly once in the dead-letter table."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _support.kafka import event, new_topic, produce, sink_for, where
from _support.proxy_process import proxy_process

import lakekit as lk
from lakekit.local_servers import KafkaBroker, S3Server

pytestmark = [pytest.mark.kafka, pytest.mark.s3]

BAD = b'{"id": 1, "user": "u'  # cannot be decoded: dead-lettered


def _values(n: int) -> tuple[list[bytes], list[bool]]:
    values, bad = [], []
    for i in range(n):
        is_bad = i % 9 == 4
        values.append(BAD if is_bad else event(i))
        bad.append(is_bad)
    return values, bad


@pytest.mark.parametrize("commit", [
    "events/_delta_log/0+\\.json$",               # the main table's creation
    "events/_delta_log/0+2\\.json$",              # a later append to it
    "events_dead_letter/_delta_log/0+\\.json$",   # the dead-letter table's creation
    "events_dead_letter/_delta_log/0+1\\.json$",  # a later dead-letter append
], ids=["main-create", "main-append", "dead-create", "dead-append"])
def test_an_ambiguous_commit_of_the_sink_writes_rows_and_dead_letters_once(
    kafka_broker: KafkaBroker, s3_server: S3Server, s3_bucket: str,
    s3_options: dict[str, Any], commit: str, caplog: pytest.LogCaptureFixture,
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    values, bad = _values(60)
    placed = produce(kafka_broker, topic, values, partitions=2)
    valid = {loc for loc, b in zip(placed, bad, strict=True) if not b}
    invalid = {loc for loc, b in zip(placed, bad, strict=True) if b}
    table = f"s3://{s3_bucket}/events"
    caplog.set_level(logging.INFO, logger="lakekit.sink")
    with proxy_process(s3_server.endpoint_url, schedule={"cput": {"reset_after": 1.0}},
                       max_faults=1, match=commit) as proxy:
        sink = sink_for(kafka_broker, topic, table, storage_options=proxy.options(s3_options),
                        kafka_metadata=True, max_batch_rows=20, max_batch_seconds=0.3)
        stats = sink.run(stop_after_idle=1.5)
        faults = proxy.faults()
    assert [(kind, fault) for kind, fault, _ in faults] == [("cput", "reset_after")], faults
    data = lk.Table(table, storage_options=s3_options).read(
        columns=["_kafka_partition", "_kafka_offset"])
    got = where(data)
    assert len(got) == len(set(got)), "a record was written twice"
    assert set(got) == valid
    dead = lk.Table(f"{table}_dead_letter", storage_options=s3_options).read(
        columns=["partition", "offset"])
    dead_at = where(dead, prefix="")
    assert len(dead_at) == len(set(dead_at)), "a record was dead-lettered twice"
    assert set(dead_at) == invalid
    assert stats.rows_written == len(valid) and stats.dead_lettered == len(invalid)
