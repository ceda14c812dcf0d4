"""The local servers that the demo and the tests start: they survive a taken port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from lakekit import local_servers
from lakekit.local_servers import moto_s3_server, tansu_broker

pytestmark = [pytest.mark.s3, pytest.mark.kafka]


@pytest.fixture
def first_port_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make the first "free" port one that another process already listens on (the race
    between choosing a port and binding it, made certain); the rest are really free."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    handed: list[int] = []
    real = local_servers.free_port

    def port() -> int:
        handed.append(taken.getsockname()[1] if not handed else real())
        return handed[-1]

    monkeypatch.setattr(local_servers, "free_port", port)
    try:
        yield handed
    finally:
        taken.close()


def test_the_s3_server_starts_on_another_port_when_its_port_was_taken(
    first_port_taken: list[int]
) -> None:
    with moto_s3_server() as s3:
        assert len(first_port_taken) == 2
        assert s3.endpoint_url.endswith(f":{first_port_taken[1]}")
        s3.create_bucket("answers")


def test_the_kafka_broker_starts_on_another_port_when_its_port_was_taken(
    first_port_taken: list[int]
) -> None:
    with tansu_broker() as broker:
        assert len(first_port_taken) == 2
        assert broker.bootstrap_servers.endswith(f":{first_port_taken[1]}")
        broker.create_topic("answers", 1)
