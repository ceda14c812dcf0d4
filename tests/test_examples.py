"""Every example in examples/ runs: the scripts as subprocesses, the notebook with nbclient,
the Airflow DAG through Airflow itself (import into a DagBag, then `airflow dags test`)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from _support.airflow import Airflow

import lakekit as lk

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def test_every_example_is_covered() -> None:
    covered = {"load_training_data.py", "stream_events.py", "nightly_quality_dag.py",
               "quickstart.ipynb"}
    present = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".ipynb")}
    assert present == covered, f"examples without a test: {present - covered}"


def test_load_training_data(tmp_path: Path) -> None:
    proc = _run("load_training_data.py", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "12 files" in proc.stdout and "240,000 rows" in proc.stdout
    # what the script wrote is a real dataset the loaders read back
    assert lk.dataset(tmp_path / "features").count_rows() == 240_000


@pytest.mark.kafka
def test_stream_events(tmp_path: Path) -> None:
    proc = _run("stream_events.py", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    rows = lk.Table(tmp_path / "events").read(columns=["event_id"]).num_rows
    dead = lk.Table(tmp_path / "events_dead_letter").read(columns=["error"]).num_rows
    # 6,000 produced: 10 malformed + 8 invalid in the first 5,000, 2 + 1 in the next 1,000
    assert (rows, dead) == (5_979, 21)
    assert "all distinct by partition/offset: True" in proc.stdout
    assert "SinkStats(records_in=5000, rows_written=4982, dead_lettered=18, " in proc.stdout


def test_quickstart_notebook(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors
    html = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert any("lakekit.Dataset" in h for h in html)
    assert any("lakekit.QualityReport" in h and "FAIL" in h for h in html)
    assert any("lakekit.Table" in h for h in html)
    # the loader's progress bar is a Jupyter widget, not text written to stderr
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert not [o for o in outputs if o.output_type == "stream" and o.get("name") == "stderr"]


def _airflow(airflow: type[Airflow], tmp_path: Path, table: Path) -> Airflow:
    return airflow(
        tmp_path / "airflow",
        {"nightly_quality_dag.py": (EXAMPLES / "nightly_quality_dag.py").read_text()},
        {"LAKEKIT_EVENTS_TABLE": str(table),
         "LAKEKIT_RESULTS_TABLE": str(tmp_path / "quality_history"),
         "LAKEKIT_SCHEMAS_DIR": str(ROOT / "schemas")},
    )


def _fresh_events(path: Path, n: int = 50) -> None:
    now = datetime.now(timezone.utc)
    lk.Table(path).write(pa.table({
        "event_id": pa.array(range(n), pa.int64()),
        "user_id": pa.array([i % 7 for i in range(n)], pa.int64()),
        "kind": ["view", "click", "buy", "view", "click"] * (n // 5),
        "amount": [float(i) for i in range(n)],
        "event_time": pa.array([now - timedelta(minutes=5)] * n, pa.timestamp("us", "UTC")),
    }))


def test_nightly_dag_imports_with_the_expected_structure(
        airflow: type[Airflow], tmp_path: Path) -> None:
    code = (
        "from airflow.models import DagBag\n"
        "bag = DagBag(dag_folder=r'%s')\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "dag = bag.dags['nightly_events_quality']\n"
        "ops = {t.task_id: type(t).__name__ for t in dag.tasks}\n"
        "print(sorted(ops.items()))\n"
        "print(sorted(dag.get_task('check_events').upstream_task_ids))\n"
        "print(dag.get_task('wait_for_events').mode, dag.get_task('wait_for_events').timeout)\n"
    ) % (EXAMPLES / "nightly_quality_dag.py")
    af = _airflow(airflow, tmp_path, tmp_path / "events")
    proc = subprocess.run([sys.executable, "-c", code], env=af.env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-3] == ("[('check_events', 'QualityCheckOperator'), "
                         "('wait_for_events', 'FreshnessSensor')]")
    assert lines[-2] == "['wait_for_events']"
    assert lines[-1] == "reschedule 10800.0"


@pytest.mark.slow
def test_nightly_dag_runs_in_airflow(airflow: type[Airflow], tmp_path: Path) -> None:
    table = tmp_path / "events"
    _fresh_events(table)
    af = _airflow(airflow, tmp_path, table)
    af.migrate()
    run = af("dags", "test", "nightly_events_quality")
    assert run.returncode == 0, run.stdout[-6000:]
    history = lk.load(tmp_path / "quality_history", output="polars")
    assert sorted(history["check"].to_list()) == ["freshness", "schema", "volume"]
    assert set(history["check_status"].to_list()) == {"pass"}
