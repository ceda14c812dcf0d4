"""OpenLineage: what lakekit emits when lineage is configured the standard way, and that it
emits (and imports) nothing otherwise.

Events go to a real HTTP receiver started here (``OPENLINEAGE_URL``), to openlineage's file
transport (``openlineage.yml``) and, in the slow test, through the Airflow OpenLineage
provider during ``airflow dags test``. Every event is validated against the RunEvent schema
(tests/_support/openlineage_schema.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from _support.openlineage_schema import validate

import lakekit as lk
from lakekit import lineage
from lakekit.local_servers import S3Server

pytest.importorskip("openlineage.client")

ROOT = Path(__file__).resolve().parents[1]


class Receiver:
    """An OpenLineage HTTP backend: every POSTed body, parsed, in ``events``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.raw.append(body + str(self.headers).encode())
                received.events.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_lineage_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OpenLineage configuration but what a test sets: no OPENLINEAGE_* variables, no
    openlineage.yml in the working directory or in ~/.openlineage."""
    for key in list(os.environ):
        if key.startswith("OPENLINEAGE"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    yield
    lineage.set_client(None)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = Receiver()
    monkeypatch.setenv("OPENLINEAGE_URL", r.url)
    yield r
    r.close()


def runs(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events by run id, each validated; every run is START then COMPLETE or FAIL."""
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        validate(e)
        out.setdefault(e["run"]["runId"], []).append(e)
    for run_events in out.values():
        assert [e["eventType"] for e in run_events] in (["START", "COMPLETE"], ["START", "FAIL"])
    return out


def by_job(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["eventType"] != "START":
            out.setdefault(e["job"]["name"], []).append(e)
    return out


def test_writes_and_checks_emit_valid_runs_to_an_http_backend(
        receiver: Receiver, tmp_path: Path) -> None:
    uri = str(tmp_path / "orders")
    t = lk.Table(uri)
    t.write(pa.table({"id": [1, 2, 3], "note": ["a", None, None]}))
    t.write(pa.table({"id": [4], "note": ["d"]}))
    t.upsert(pa.table({"id": [4], "note": ["e"]}), on="id")
    t.delete("id = 1")
    t.write(pa.table({"id": [7, 8], "note": [None, "x"]}), mode="overwrite")
    with pytest.raises(lk.errors.SchemaMismatchError):
        t.write(pa.table({"other": [1]}))
    with lineage.job("nightly", namespace="etl"):
        report = lk.check(t, volume=lk.Volume(min_rows=1),
                          freshness=None, checks=[lk.Volume(min_rows=10)])
    assert lineage.flush(10)

    all_runs = runs(receiver.events)
    assert len(all_runs) == 7
    jobs = by_job(receiver.events)
    writes = jobs[f"write:{uri}"]
    assert [e["eventType"] for e in writes] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    first, _, overwrite, failed = writes
    out = first["outputs"][0]
    assert (out["namespace"], out["name"]) == ("file", uri)
    assert out["facets"]["schema"]["fields"][:2] == [
        {"name": "id", "type": "int64", "fields": []},
        {"name": "note", "type": "string", "fields": []}]
    assert out["facets"]["version"]["datasetVersion"] == "0"
    assert out["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "CREATE"
    assert overwrite["outputs"][0]["facets"]["lifecycleStateChange"][
        "lifecycleStateChange"] == "OVERWRITE"
    assert "SchemaMismatchError" in failed["run"]["facets"]["errorMessage"]["message"]
    assert [e["outputs"][0]["facets"]["version"]["datasetVersion"]
            for e in jobs[f"upsert:{uri}"] + jobs[f"delete:{uri}"]] == ["2", "3"]
    assert {e["job"]["namespace"] for e in receiver.events if "nightly" not in e["job"]["name"]
            } == {"lakekit"}

    (checked,) = jobs["nightly.check"]
    assert checked["job"]["namespace"] == "etl" and report.status == "fail"
    (inp,) = checked["inputs"]
    assert (inp["namespace"], inp["name"]) == ("file", uri)
    assert [f["name"] for f in inp["facets"]["schema"]["fields"]] == ["id", "note"]
    assertions = inp["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["success"]) for a in assertions] == [
        (r.name, r.status == "pass") for r in report.results] == [
        ("volume", True), ("volume", False)]
    metrics = inp["inputFacets"]["dataQualityMetrics"]
    data = pl.from_arrow(t.read())
    assert isinstance(data, pl.DataFrame)
    assert metrics["rowCount"] == data.height == 2
    assert {c: m["nullCount"] for c, m in metrics["columnMetrics"].items()} == {
        c: int(data[c].null_count()) for c in data.columns}


def test_a_completeness_check_of_parquet_files_reports_its_null_counts(
        receiver: Receiver, tmp_path: Path) -> None:
    # parquet files have no Delta log statistics: the counts come from Completeness (footers)
    data = pl.DataFrame({"a": [1, None, 3, None], "b": ["x", "y", None, "z"]})
    data.write_parquet(tmp_path / "part-0.parquet")
    report = lk.check(str(tmp_path), checks=[lk.Completeness(["a", "b"], min_ratio=0.5)])
    assert lineage.flush(10)
    (checked,) = [e for e in receiver.events if e["eventType"] == "COMPLETE"]
    validate(checked)
    metrics = checked["inputs"][0]["inputFacets"]["dataQualityMetrics"]
    assert {c: m["nullCount"] for c, m in metrics["columnMetrics"].items()} == {
        c: int(data[c].null_count()) for c in data.columns} == {"a": 2, "b": 1}
    assert report.status == "pass"


def test_a_freshness_sensor_poke_emits_no_run_of_its_own(
        receiver: Receiver, tmp_path: Path) -> None:
    from lakekit.airflow import FreshnessSensor

    uri = str(tmp_path / "events")
    lk.Table(uri).write(pa.table({"id": [1]}))
    assert lineage.flush(10)
    written = len(receiver.events)
    sensor = FreshnessSensor(task_id="wait", source=uri, freshness={"max_age": "1h"},
                             poke_interval=1, timeout=10)
    assert sensor.poke({}) is True
    lk.check(uri, volume=lk.Volume(min_rows=1))  # the same check outside a sensor does emit
    assert lineage.flush(10)
    assert [e["job"]["name"] for e in receiver.events[written:]] == [f"check:{uri}"] * 2


def test_file_transport_from_openlineage_yml(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    (tmp_path / "openlineage.yml").write_text(textwrap.dedent(f"""
        transport:
          type: file
          log_file_path: {events_file}
          append: true
    """))
    assert lineage.configured()
    t = lk.Table(tmp_path / "t")
    t.write(pa.table({"id": [1]}))
    lk.check(str(tmp_path / "t"), volume=lk.Volume(min_rows=1))
    assert lineage.flush(10)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert len(runs(events)) == 2
    assert sorted(by_job(events)) == [f"check:{tmp_path / 't'}", f"write:{tmp_path / 't'}"]


def test_nothing_is_emitted_or_imported_without_configuration(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, pyarrow as pa, lakekit as lk
        from lakekit import lineage
        t = lk.Table({str(tmp_path / "t")!r})
        t.write(pa.table({{"id": [1]}}))
        t.upsert(pa.table({{"id": [1]}}), on="id")
        lk.check(t, volume=lk.Volume(min_rows=1))
        assert not lineage.configured()
        print(sorted(m for m in sys.modules if m.startswith("openlineage")))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120,
                          env={**env, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_backend_that_is_down_never_fails_or_slows_a_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = lk.Table(tmp_path / "t")
    t.write(pa.table({"id": [0]}))

    def three_writes() -> float:
        start = time.perf_counter()
        for i in range(3):
            t.write(pa.table({"id": [i]}))
        return time.perf_counter() - start

    baseline = three_writes()
    # the default HTTP transport (5 retries with backoff, ~9 s per event) on a closed port
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{closed_port()}")
    down = three_writes()
    assert down - baseline < 2.0, (baseline, down)
    lineage.set_client(None)  # drop what is still queued for that backend

    # a transport without retries: the failure is known at once, and warned about
    config = tmp_path / "ol.yml"
    config.write_text(textwrap.dedent(f"""
        transport:
          type: http
          url: http://127.0.0.1:{closed_port()}
          timeout: 1
          retry: {{total: 0, connect: 0, read: 0}}
    """))
    monkeypatch.delenv("OPENLINEAGE_URL")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        version = t.write(pa.table({"id": [9]}))
        report = lk.check(t, volume=lk.Volume(min_rows=1))
        assert lineage.flush(10)
    assert version == 7 and report.status == "pass"
    messages = [str(w.message) for w in caught if issubclass(w.category, lineage.LineageWarning)]
    assert len(messages) == 1, messages  # once per outage, not once per event
    assert "could not be sent" in messages[0]


@pytest.mark.s3
def test_no_credentials_in_events_on_s3(receiver: Receiver, s3_server: S3Server,
                                        s3_bucket: str) -> None:
    key_id, secret = "AKIALINEAGETEST12345", "lineage-secret-7Hq2pZ9"
    options = {**s3_server.storage_options, "key": key_id, "secret": secret}
    uri = f"s3://{s3_bucket}/lake/events"
    t = lk.Table(uri, storage_options=options)
    t.write(pa.table({"id": [1, 2], "v": [0.5, None]}))
    lk.check(uri, volume=lk.Volume(min_rows=1), storage_options=options)
    with pytest.raises(lk.errors.LakekitError):
        lk.Table(f"s3://{s3_bucket}-missing/x", storage_options=options).delete("id = 1")
    assert lineage.flush(10)
    jobs = by_job(receiver.events)
    assert len(runs(receiver.events)) >= 2
    (write,) = jobs[f"write:{uri}"]
    assert (write["outputs"][0]["namespace"], write["outputs"][0]["name"]) == (
        f"s3://{s3_bucket}", "lake/events")
    (check,) = jobs[f"check:{uri}"]
    assert check["inputs"][0]["inputFacets"]["dataQualityMetrics"]["columnMetrics"]["v"] == {
        "nullCount": 1, "quantiles": {}}
    body = b"\n".join(receiver.raw)
    assert secret.encode() not in body and key_id.encode() not in body


@pytest.mark.kafka
def test_a_sink_commit_is_a_run_from_the_topic_to_the_table(
        receiver: Receiver, kafka_broker: Any, tmp_path: Path) -> None:
    from _support.kafka import event, new_topic, produce, sink_for

    topic = new_topic(kafka_broker)
    produce(kafka_broker, topic, [event(i) for i in range(20)])
    table = str(tmp_path / "events")
    sink_for(kafka_broker, topic, table).run(max_messages=20)
    assert lineage.flush(10)
    commits = by_job(receiver.events)[f"sink:{table}"]
    assert commits and all(e["eventType"] == "COMPLETE" for e in commits)
    runs(receiver.events)
    host = kafka_broker.bootstrap_servers.split(",")[0]
    assert commits[0]["inputs"] == [{"namespace": f"kafka://{host}", "name": topic,
                                     "facets": {}, "inputFacets": {}}]
    out = commits[-1]["outputs"][0]
    assert (out["namespace"], out["name"]) == ("file", table)
    assert "amount" in [f["name"] for f in out["facets"]["schema"]["fields"]]


AIRFLOW_DAG = textwrap.dedent('''
    import os
    from datetime import datetime
    from airflow.sdk import DAG
    from lakekit.airflow import QualityCheckOperator

    with DAG("lakekit_lineage", start_date=datetime(2024, 1, 1), schedule=None):
        QualityCheckOperator(task_id="check", source=os.environ["LAKEKIT_TEST_TABLE"],
                             volume={"min_rows": 1, "max_rows": 2})
''')


@pytest.mark.slow
def test_airflow_provider_reports_the_operators_facets(
        airflow: Any, tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    table = str(tmp_path / "checked")
    lk.Table(table).write(pa.table({"id": [1, 2, 3], "name": ["a", None, "c"]}))
    events_file = tmp_path / "ol-events.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    # lakekit itself is configured too (its own events would go to another file)
    own_file = tmp_path / "lakekit-events.jsonl"
    own_config = tmp_path / "openlineage.yml"
    own_config.write_text(f"transport:\n  type: file\n  log_file_path: {own_file}\n"
                          "  append: true\n")
    af = airflow(tmp_path / "airflow", {"lineage_dag.py": AIRFLOW_DAG}, {
        "LAKEKIT_TEST_TABLE": table,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "lakekit-tests",
        "OPENLINEAGE_CONFIG": str(own_config),
        "HOME": str(tmp_path)})
    af.migrate()
    run = af("dags", "test", "lakekit_lineage")
    assert run.returncode != 0  # 3 rows > max_rows=2: the check fails the task
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    for e in events:
        validate(e)
    task_events = [e for e in events if e["job"]["name"] == "lakekit_lineage.check"]
    assert [e["eventType"] for e in task_events] == ["START", "FAIL"], [
        (e["job"]["name"], e["eventType"]) for e in events]
    (inp,) = task_events[-1]["inputs"]
    assert (inp["namespace"], inp["name"]) == ("file", table)
    assert [f["name"] for f in inp["facets"]["schema"]["fields"]] == ["id", "name"]
    assert inp["inputFacets"]["dataQualityAssertions"]["assertions"] == [
        {"assertion": "volume", "success": False, "params": {}}]
    metrics = inp["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 3 and metrics["columnMetrics"]["name"]["nullCount"] == 1
    # lakekit's own run of the check was left to the provider: no second job for it
    assert not own_file.exists()


def test_configured_without_openlineage_installed_warns_once_and_writes(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, warnings, pyarrow as pa
        sys.modules["openlineage"] = None  # as if openlineage-python were not installed
        import lakekit as lk
        from lakekit import lineage
        t = lk.Table({str(tmp_path / "t")!r})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            versions = [t.write(pa.table({{"id": [i]}})) for i in range(3)]
        assert lineage.configured() and versions == [0, 1, 2], versions
        print([str(w.message) for w in caught if w.category is lineage.LineageWarning])
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120,
                          env={**env, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
                               "OPENLINEAGE_URL": f"http://127.0.0.1:{closed_port()}"})
    assert done.returncode == 0, done.stderr[-3000:]
    (message,) = eval(done.stdout)
    assert "pip install 'lakekit[lineage]'" in message
