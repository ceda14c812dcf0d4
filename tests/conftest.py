"""Shared fixtures: real local servers (moto S3, a Tansu Kafka broker), started once per
session; the CLI run in-process (``cli``); a throwaway Airflow installation (``airflow``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from _support.airflow import Airflow
from _support.cli import Cli, CliResult, run_cli

from lakekit.local_servers import KafkaBroker, S3Server, moto_s3_server, tansu_broker


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real moto S3 server on 127.0.0.1, on a free port."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the moto server; returns its name."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def s3_options(s3_server: S3Server) -> dict[str, object]:
    """storage_options reaching the moto server."""
    return s3_server.storage_options


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A real Tansu Kafka-protocol broker (memory storage) on 127.0.0.1, on a free port."""
    with tansu_broker() as broker:
        yield broker


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``lakekit ARGV...`` in this process: ``code, out, err = cli("head", path)``."""

    def run(*argv: str) -> CliResult:
        return run_cli(capsys, *argv)

    return run


@pytest.fixture(scope="session")
def airflow() -> type[Airflow]:
    """Build an Airflow home: ``airflow(home, {"dag.py": source}, {"VAR": "value"})``, then
    ``af("dags", "test", dag_id)``. Skips the test when Airflow is not installed."""
    pytest.importorskip("airflow")
    return Airflow


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A real ``distributed.LocalCluster``: 2 worker processes of 1 thread, no dashboard.

    Shared by the whole session; tests that kill workers wait for the nanny to bring
    them back (``client.wait_for_workers(2)``) before they return."""
    import dask
    import distributed  # in the test extra: a missing engine fails the tests, never skips them

    with dask.config.set({"distributed.scheduler.allowed-failures": 2}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
            memory_limit="2GiB", silence_logs=40,
        )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[object]:
    """A local Ray instance with 2 CPUs, no dashboard; shut down at the end of the session."""
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, ignore_reinit_error=True)
    try:
        yield ray
    finally:
        ray.shutdown()
