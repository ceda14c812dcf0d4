"""lakekit.airflow with real Airflow 3: DAGs run by `airflow dags test` against SQLite.

One DAG passes (sensor, templated quality check that warns, XCom read downstream); one
fails (a failing check that must not be retried, a sensor that times out in reschedule
mode, the failing check again on a Dask cluster). Task states, tries, reschedules and
XComs are read back from Airflow's database.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import textwrap
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _support.airflow import Airflow
from _support.data import SCHEMAS, events
from deltalake import write_deltalake

pytestmark = pytest.mark.slow

DAGS = textwrap.dedent('''
    import json, os
    from datetime import datetime
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.python import PythonOperator
    from lakekit.airflow import FreshnessSensor, QualityCheckOperator

    ROOT = os.environ["LAKEKIT_TEST_ROOT"]
    SCHEMAS = os.environ["LAKEKIT_TEST_SCHEMAS"]

    def dump(ti, **_):
        with open(os.path.join(ROOT, "xcom.json"), "w") as f:
            json.dump({"report": ti.xcom_pull(task_ids="check", key="report"),
                       "returned": ti.xcom_pull(task_ids="check")}, f)

    with DAG("lakekit_pass", start_date=datetime(2024, 1, 1), schedule=None,
             params={"table": ROOT + "/good", "max_age": "1h"}):
        wait = FreshnessSensor(
            task_id="wait", source="{{ params.table }}",
            freshness={"column": "event_time", "max_age": "{{ params.max_age }}"},
            poke_interval=1, timeout=60)
        check = QualityCheckOperator(
            task_id="check", source="{{ params.table }}", schema="events",
            schemas_dir=SCHEMAS, volume={"min_rows": 100},
            freshness={"column": "event_time", "max_age": "{{ params.max_age }}",
                       "warn_age": "5m"})
        wait >> check >> PythonOperator(task_id="dump", python_callable=dump)

    # the failing DAG also holds the check on the Dask cluster (it fails the same way):
    # each `airflow dags test` costs about 12 s before its first task starts
    with DAG("lakekit_fail", start_date=datetime(2024, 1, 1), schedule=None,
             params={"scheduler": os.environ["LAKEKIT_TEST_SCHEDULER"]}):
        QualityCheckOperator(task_id="check", source=ROOT + "/bad", schema="events",
                             schemas_dir=SCHEMAS, retries=3)
        FreshnessSensor(task_id="wait_stale", source=ROOT + "/good",
                        freshness={"column": "event_time", "max_age": "1m"},
                        poke_interval=1, timeout=4)  # room for a slow first poke
        QualityCheckOperator(task_id="check_dask", source=ROOT + "/bad", schema="events",
                             schemas_dir=SCHEMAS, engine="dask",
                             scheduler="{{ params.scheduler }}")
''')


@pytest.fixture(scope="module")
def homes(airflow: type[Airflow], tmp_path_factory: pytest.TempPathFactory,
          dask_client: Any) -> dict[str, Airflow]:
    """An Airflow home (its own SQLite database) per DAG run, on the same tables."""
    root = tmp_path_factory.mktemp("airflow")
    newest = datetime.now(timezone.utc) - timedelta(minutes=20)
    good = events(400, newest=newest)
    write_deltalake(str(root / "good"), good)
    user = np.arange(400) % 50
    user[[3, 77]] = -1
    write_deltalake(str(root / "bad"), good.set_column(1, "user_id", pa.array(user, pa.int64())))
    env = {"LAKEKIT_TEST_ROOT": str(root), "LAKEKIT_TEST_SCHEMAS": str(SCHEMAS),
           "LAKEKIT_TEST_SCHEDULER": dask_client.scheduler.address}
    made = {}
    for dag in ("lakekit_pass", "lakekit_fail"):
        made[dag] = airflow(root / dag, {"lakekit_dags.py": DAGS}, env)
        made[dag].migrate()
    return made


@pytest.fixture(scope="module")
def runs(homes: dict[str, Airflow]
         ) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """`airflow dags test` of both DAGs at once, each in its home: a run is mostly
    Airflow's start-up (about 12 s before the first task), on one core."""
    with ThreadPoolExecutor(len(homes)) as pool:
        yield {dag: pool.submit(af, "dags", "test", dag) for dag, af in homes.items()}


def task_rows(af: Airflow, dag_id: str) -> dict[str, tuple[str, int, int]]:
    with sqlite3.connect(af.database) as db:
        rows = db.execute("select task_id, state, try_number, max_tries from task_instance "
                          "where dag_id = ?", (dag_id,)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_passing_dag_warns_succeeds_and_pushes_the_report(
        homes: dict[str, Airflow], runs: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    airflow_home = homes["lakekit_pass"]
    run = runs["lakekit_pass"].result()
    assert run.returncode == 0, run.stdout[-5000:]
    states = task_rows(airflow_home, "lakekit_pass")
    assert {t: s[0] for t, s in states.items()} == {"wait": "success", "check": "success",
                                                    "dump": "success"}
    pushed = json.loads((Path(airflow_home.env["LAKEKIT_TEST_ROOT"]) / "xcom.json").read_text())
    report = pushed["report"]
    assert pushed["returned"] == report
    assert report["status"] == "warn"  # 20 minutes old: over warn_age, within max_age
    assert report["source"] == airflow_home.env["LAKEKIT_TEST_ROOT"] + "/good"  # templated
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["schema"]["status"] == "pass"
    assert by_name["freshness"]["threshold"] == 3600.0  # "{{ params.max_age }}" rendered
    assert by_name["freshness"]["details"]["method"] == "delta_stats"
    assert by_name["volume"]["observed"] == 400
    assert "WARN" in run.stdout


def test_failing_dag_fails_without_retries_and_the_sensor_times_out(
        homes: dict[str, Airflow], runs: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    airflow_home = homes["lakekit_fail"]
    run = runs["lakekit_fail"].result()
    assert run.returncode != 0
    states = task_rows(airflow_home, "lakekit_fail")
    state, tries, max_tries = states["check"]
    assert (state, tries, max_tries) == ("failed", 1, 3)  # retries=3, none used
    assert "AirflowFailException" in run.stdout
    assert "user_id greater_than_or_equal_to(0): 2" in run.stdout
    assert states["wait_stale"][0] == "failed"
    with sqlite3.connect(airflow_home.database) as db:
        xcom = db.execute("select value from xcom where dag_id = 'lakekit_fail' and "
                          "task_id = 'check' and key = 'report'").fetchone()
        reschedules = db.execute(
            "select count(*) from task_reschedule r join task_instance t on r.ti_id = t.id "
            "where t.dag_id = 'lakekit_fail' and t.task_id = 'wait_stale'").fetchone()[0]
    report = json.loads(xcom[0])
    assert report["status"] == "fail"
    assert {(c["column"], c["index"]) for c in report["failure_cases"]} == {("user_id", 3),
                                                                           ("user_id", 77)}
    assert reschedules >= 1  # the sensor gave its slot back between pokes
    assert "AirflowSensorTimeout" in run.stdout or "timed out" in run.stdout.lower()


def test_a_check_on_a_dask_cluster_gives_the_local_report(
        homes: dict[str, Airflow], runs: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    airflow_home = homes["lakekit_fail"]
    run = runs["lakekit_fail"].result()
    assert run.returncode != 0  # the same failing check as lakekit_fail's
    assert "user_id greater_than_or_equal_to(0): 2" in run.stdout
    # that line from the Dask task itself, not only from its local twin
    assert re.search(r"\(validated on dask, \d+ partitions?\)\n.*"
                     r"user_id greater_than_or_equal_to\(0\): 2", run.stdout), run.stdout[-5000:]
    assert task_rows(airflow_home, "lakekit_fail")["check_dask"][0] == "failed"
    with sqlite3.connect(airflow_home.database) as db:
        xcom = db.execute("select value from xcom where dag_id = 'lakekit_fail' and "
                          "task_id = 'check_dask' and key = 'report'").fetchone()
    report = json.loads(xcom[0])
    assert report["status"] == "fail" and report["engine"] == "dask"
    assert report["partitions"] >= 1
    # global row indexes, as a local run gives them
    assert {(c["column"], c["index"]) for c in report["failure_cases"]} == {("user_id", 3),
                                                                           ("user_id", 77)}
