"""lk.Pii on a labelled Faker set: recall per kind, false positives on text without PII, and
no detected value in the report's JSON, HTML, summary, logs, errors, the CLI's output or
the Airflow operator's XCom; on a Delta table written through lk.Table and on a parquet
dataset."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _support.airflow import Airflow
from _support.cli import Cli
from _support.pii_data import Labelled, labelled

import lakekit as lk
from lakekit.errors import ConfigError, QualityError

N = 1500  # rows per kind / per negative column: 1% is 15 rows


@pytest.fixture(scope="module")
def data() -> Labelled:
    return labelled(N)


@pytest.fixture(scope="module")
def frame(data: Labelled) -> pl.DataFrame:
    return pl.DataFrame({**{f"{k}_text": v for k, v in data.positives.items()},
                         **data.negatives, "n": range(N)})


def raw_values(data: Labelled) -> list[str]:
    """Every value a report must not show, also without its separators (cards, IBANs)."""
    out = []
    for kind, values in data.values.items():
        for v in values:
            out.append(v)
            if kind in ("credit_card", "iban"):
                out.append(re.sub(r"[ -]", "", v))
    return out


def assert_no_value(text: str, data: Labelled, where: str) -> None:
    leaked = [v for v in raw_values(data) if v in text]
    assert not leaked, f"{where} shows {len(leaked)} detected values"


def by_column(report: lk.QualityReport) -> dict[str, Any]:
    return {r.details["column"]: r for r in report.results if r.name == "pii"}


def test_recall_and_false_positives_on_the_labelled_set(frame: pl.DataFrame) -> None:
    report = lk.check(frame, checks=[lk.Pii(sample=None)])
    results = by_column(report)
    assert "n" not in results  # only string columns are scanned by default
    recall = {k: results[f"{k}_text"].details["kinds"][k]["ratio"]
              for k in ("email", "phone", "credit_card", "iban", "ipv4", "ssn")}
    assert recall["email"] >= 0.99 and recall["credit_card"] >= 0.99 and recall["iban"] >= 0.99
    assert recall["ipv4"] >= 0.99 and recall["ssn"] >= 0.99
    assert recall["phone"] >= 0.85  # North American with separators or +international only
    for name in ("sentence", "paragraph", "name", "address", "company", "product_code", "isbn",
                 "number", "date", "url", "uuid"):
        result = results[name]
        assert result.observed <= 0.01, result.message  # the worst kind's ratio
        assert result.details["rows_scanned"] == N
    assert results["sentence"].status == "pass"
    assert results["email_text"].status == "fail"
    assert report.status == "fail"
    email = results["email_text"].details["kinds"]["email"]
    assert email["rows"] == round(email["ratio"] * N)
    assert all(re.fullmatch(r"\w\*\*\*@\w\*\*\*\.\w+", e) for e in email["examples"])
    cards = results["credit_card_text"].details["kinds"]["credit_card"]["examples"]
    assert cards and all(re.fullmatch(r"\*\*\*\* \d{4}", e) for e in cards)


def test_no_detected_value_in_json_html_summary_logs_or_errors(
        data: Labelled, frame: pl.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        report = lk.check(frame, checks=[lk.Pii(max_ratio=0.5, warn_ratio=0.0, sample=800)])
    assert report.status == "fail"  # the kinds' own columns are above 50%
    assert {r.status for r in report.results} == {"pass", "fail"}
    assert "pii:" in caplog.text
    with pytest.raises(QualityError) as raised:
        report.raise_for_status(on="warn")
    for where, text in (("to_json", report.to_json()), ("HTML", report._repr_html_()),
                        ("summary", report.summary()), ("repr", repr(report)),
                        ("logs", caplog.text), ("QualityError", str(raised.value))):
        assert_no_value(text, data, where)
    assert "e.g. " in report.summary()  # masked examples are shown


def test_delta_table_and_parquet_dataset_sampled_deterministically(
        data: Labelled, frame: pl.DataFrame, tmp_path: Path) -> None:
    table = lk.Table(str(tmp_path / "people"))
    for part in frame.iter_slices(500):  # three commits
        table.write(part.to_arrow())
    pii = lk.Pii(columns=["email_text", "sentence"], kinds=("email", "iban"), sample=600)
    first = lk.check(table, checks=[pii])
    again = lk.check(str(tmp_path / "people"), checks=[pii])
    assert [r.to_dict() for r in first.results] == [r.to_dict() for r in again.results]
    email, sentence = first.results
    assert email.details["rows_scanned"] == 600 and email.status == "fail"
    assert email.details["kinds"]["email"]["rows"] == 600
    assert sentence.status == "pass" and sentence.observed == 0
    assert email.details["method"] == "a seeded sample of at most 600 rows"

    folder = tmp_path / "parquet"
    folder.mkdir()
    for i, part in enumerate(frame.select("iban_text", "uuid", "n").iter_slices(700)):
        part.write_parquet(folder / f"part-{i}.parquet")
    whole = lk.check(str(folder), checks=[lk.Pii(kinds=["iban", "credit_card"], sample=None,
                                                 max_ratio=0.02)])
    iban, uuid = whole.results
    assert iban.details["rows_scanned"] == N and iban.details["method"] == "every row"
    assert iban.details["kinds"]["iban"]["ratio"] >= 0.99 and iban.status == "fail"
    assert uuid.status == "pass"
    assert_no_value(whole.to_json(), data, "parquet report")


def test_bad_input_names_what_to_change(frame: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"unknown 'passport'.*choose from email, phone"):
        lk.Pii(kinds=("email", "passport"))
    with pytest.raises(ConfigError, match="max_ratio must be a ratio between 0 and 1"):
        lk.Pii(max_ratio=5)
    with pytest.raises(ConfigError, match="warn_ratio must be a ratio"):
        lk.Pii(max_ratio=0.5, warn_ratio=-0.1)
    with pytest.raises(ConfigError, match=r"warn_ratio .* must be below max_ratio"):
        lk.Pii(max_ratio=0.1, warn_ratio=0.2)
    with pytest.raises(ConfigError, match="sample must be a positive number"):
        lk.Pii(sample=0)
    with pytest.raises(ConfigError, match="has no column 'emial'; its string columns: "
                                          "email_text"):
        lk.check(frame, checks=[lk.Pii(columns=["emial"])])
    with pytest.raises(ConfigError, match=r"column 'n' .* is int64, not a string column"):
        lk.check(frame, checks=[lk.Pii(columns=["email_text", "n"])])
    only_numbers = lk.check(frame.select("n"), checks=[lk.Pii()])
    assert only_numbers.status == "warn"
    assert only_numbers.results[0].message == "no string column to scan for PII"


def test_cli_prints_masked_examples_only(data: Labelled, frame: pl.DataFrame, tmp_path: Path,
                                         cli: Cli) -> None:
    path = tmp_path / "people.parquet"
    frame.write_parquet(path)
    text = cli("check", str(path), "--pii", "--pii-columns", "email_text,credit_card_text,name",
               "--pii-kinds", "email,credit_card")
    assert text.code == 1, text.err
    assert "[fail] pii: column 'email_text': email in" in text.out
    assert "[pass] pii: column 'name': no email, credit_card in" in text.out
    as_json = cli("check", str(path), "--pii", "--json", "--pii-max-ratio", "1")
    assert as_json.code == 0, as_json.err
    assert json.loads(as_json.out)["status"] == "pass"
    for where, out in (("text", text.out + text.err), ("json", as_json.out + as_json.err)):
        assert_no_value(out, data, f"CLI {where} output")
    bad = cli("check", str(path), "--pii", "--pii-kinds", "email,passport")
    assert bad.code == 2 and "choose from email, phone" in bad.err
    bad = cli("check", str(path), "--pii-kinds", "email")
    assert bad.code == 2 and "--pii-kinds needs --pii" in bad.err


DAG = textwrap.dedent('''
    import os
    from datetime import datetime
    from airflow.sdk import DAG
    from lakekit.airflow import QualityCheckOperator

    with DAG("lakekit_pii", start_date=datetime(2024, 1, 1), schedule=None,
             params={"max_ratio": "1"}):
        QualityCheckOperator(
            task_id="pii", source=os.environ["LAKEKIT_TEST_ROOT"] + "/people",
            pii={"columns": ["email_text", "iban_text", "sentence"],
                 "max_ratio": "{{ params.max_ratio }}", "warn_ratio": 0.0})
''')


def xcoms(af: Airflow, dag_id: str, task_id: str) -> dict[str, Any]:
    """The XComs a task pushed, read back from Airflow's database (key -> value)."""
    with sqlite3.connect(af.database) as db:
        rows = db.execute("select key, value from xcom where dag_id = ? and task_id = ?",
                          (dag_id, task_id)).fetchall()
    out = {}
    for key, value in rows:
        value = json.loads(value)
        out[key] = json.loads(value) if isinstance(value, str) else value
    return out


@pytest.mark.slow
def test_airflow_operator_xcom_and_log_hold_masked_examples_only(
        airflow: type[Airflow], data: Labelled, frame: pl.DataFrame, tmp_path: Path) -> None:
    lk.Table(str(tmp_path / "people")).write(frame.to_arrow())
    af = airflow(tmp_path, {"pii_dag.py": DAG}, {"LAKEKIT_TEST_ROOT": str(tmp_path)})
    af.migrate()
    run = af("dags", "test", "lakekit_pii")
    assert run.returncode == 0, run.stdout[-5000:]
    pushed = xcoms(af, "lakekit_pii", "pii")
    report = pushed["report"]
    assert pushed["return_value"] == report
    assert report["status"] == "warn"  # found, within the templated max_ratio: the task passes
    statuses = {r["details"]["column"]: r["status"] for r in report["results"]}
    assert statuses == {"email_text": "warn", "iban_text": "warn", "sentence": "pass"}
    assert report["results"][0]["threshold"] == 1.0
    assert "WARN" in run.stdout and "e.g. " in run.stdout
    with sqlite3.connect(af.database) as db:
        stored = " ".join(str(v) for (v,) in db.execute("select value from xcom"))
    for where, text in (("XCom", json.dumps(pushed)), ("XCom table", stored),
                        ("task log", run.stdout)):
        assert_no_value(text, data, where)
