"""A nightly Airflow DAG: wait until the events table is fresh, then check its quality.

Copy this file into your DAGs folder (``pip install 'lakekit[airflow]'`` on the workers).
Configure it with environment variables (or edit the defaults):

- ``LAKEKIT_EVENTS_TABLE``: the Delta table to check (default ``s3://lake/events``);
- ``LAKEKIT_RESULTS_TABLE``: a Delta table that keeps every report's summary (optional);
- ``LAKEKIT_SCHEMAS_DIR``: where ``events.yaml`` lives (default: ``schemas/`` next to
  this repository's ``examples/``).

Credentials come from the worker's environment (the AWS chain for S3), so none are
written here or rendered in the Airflow UI; see docs/storage.md and docs/airflow.md.

``FreshnessSensor`` pokes the table's Delta log (no data read) in reschedule mode until
the newest ``event_time`` is younger than ``max_age``, for at most 3 hours.
``QualityCheckOperator`` then validates the table against ``schemas/events.yaml`` with
freshness and volume thresholds: a *fail* fails the task without retries, a *warn* is
logged, and the report is pushed to XCom (key ``report``).

Try it locally with ``airflow dags test nightly_events_quality`` (the test suite does,
against a local table).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from lakekit.airflow import FreshnessSensor, QualityCheckOperator

EVENTS_TABLE = os.environ.get("LAKEKIT_EVENTS_TABLE", "s3://lake/events")
RESULTS_TABLE = os.environ.get("LAKEKIT_RESULTS_TABLE") or None
SCHEMAS_DIR = os.environ.get(
    "LAKEKIT_SCHEMAS_DIR", str(Path(__file__).resolve().parent.parent / "schemas")
)

with DAG(
    "nightly_events_quality",
    description="Wait for fresh events, then validate them against schemas/events.yaml",
    start_date=datetime(2024, 1, 1),
    schedule="@daily",
    catchup=False,
    params={"table": EVENTS_TABLE, "max_age": "1d", "warn_age": "12h", "min_rows": 1},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["lakekit", "quality"],
) as dag:
    wait_for_events = FreshnessSensor(
        task_id="wait_for_events",
        source="{{ params.table }}",
        freshness={"column": "event_time", "max_age": "{{ params.max_age }}"},
        poke_interval=300,
        timeout=3 * 3600,
    )
    check_events = QualityCheckOperator(
        task_id="check_events",
        source="{{ params.table }}",
        schema="events",
        schemas_dir=SCHEMAS_DIR,
        freshness={"column": "event_time", "max_age": "{{ params.max_age }}",
                   "warn_age": "{{ params.warn_age }}"},
        volume={"min_rows": "{{ params.min_rows }}"},
        results_table=RESULTS_TABLE,
    )
    wait_for_events >> check_events
