"""Governance checks from metadata (issue 16): lk.Completeness, lk.SchemaDrift and
lk.VolumeAnomaly on real Delta tables written through lk.Table (local disk and moto S3).

Completeness is compared with polars' ``null_count()`` on the same data and then computed
again with the data files moved away: only the log (or footers) can have answered. Volume
anomalies run on 8 weeks of daily commits whose log carries real past commit times.
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

import lakekit as lk
from lakekit.errors import ConfigError, VersionNotFoundError
from lakekit.quality.sources import open_source

UTC = timezone.utc


def people(n: int, seed: int) -> pa.Table:
    rnd = random.Random(seed)
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "email": pa.array([None if rnd.random() < 0.1 else f"u{i}@x.org" for i in range(n)]),
        "score": pa.array([None if rnd.random() < 0.02 else rnd.random() for _ in range(n)]),
        "seen": pa.array([None if rnd.random() < 0.5 else datetime(2026, 1, 1, tzinfo=UTC)
                          for _ in range(n)], pa.timestamp("us", "UTC")),
        "country": pa.array([None if i % 7 == 0 else "NL" if i % 2 else "FR" for i in range(n)]),
    })


def move_data_away(root: Path, to: Path) -> int:
    """Move every parquet data file of the table at ``root`` to ``to``; the log stays."""
    to.mkdir()
    moved = 0
    for f in root.rglob("*.parquet"):
        if "_delta_log" not in f.parts:
            shutil.move(str(f), to / f"{moved}.parquet")
            moved += 1
    return moved


def set_commit_times(table: lk.Table, times: dict[int, datetime]) -> None:
    """Rewrite the ``commitInfo.timestamp`` of versions in ``times`` in the table's log
    (through the table's own filesystem), as if they had been committed then."""
    fs, root = table.location.fs, table.location.path.rstrip("/")
    for version, when in times.items():
        path = f"{root}/_delta_log/{version:020d}.json"
        lines = fs.cat_file(path).decode().splitlines()
        out = []
        for line in lines:
            action = json.loads(line)
            if "commitInfo" in action:
                action["commitInfo"]["timestamp"] = int(when.timestamp() * 1000)
            out.append(json.dumps(action))
        fs.pipe_file(path, ("\n".join(out) + "\n").encode())


# -- completeness -----------------------------------------------------------------------

COLUMNS = ["email", "score", "seen", "country"]


def test_completeness_equals_polars_with_the_data_files_moved_away(tmp_path: Path) -> None:
    table = lk.Table(tmp_path / "people")
    table.write(people(3000, 1), partition_by="country")
    table.write(people(2000, 2))
    table.write(people(500, 3))
    expected = pl.from_arrow(table.read()).null_count()
    rows = table.read().num_rows
    assert move_data_away(tmp_path / "people", tmp_path / "away") >= 6

    report = lk.check(table, checks=[lk.Completeness(COLUMNS, min_ratio=0.95,
                                                     warn_ratio=0.99)])
    by_column = {r.details["column"]: r for r in report.results}
    assert list(by_column) == COLUMNS
    for column in COLUMNS:
        r = by_column[column]
        assert r.details["nulls"] == expected[column][0], column
        assert r.observed == pytest.approx(1 - expected[column][0] / rows, abs=1e-6)
        assert r.details["method"] == "delta_stats" and r.details["files_read"] == 0
        assert r.details["footers_read"] == 0
    assert by_column["email"].status == "fail"      # ~10% nulls
    assert by_column["score"].status == "warn"      # ~2%: between min and warn
    assert by_column["seen"].status == "fail"       # ~50%
    assert by_column["country"].status == "fail"    # every 7th row: a null partition value
    assert "email: " in by_column["email"].message and "no data file read" in \
        by_column["email"].message
    assert "completeness" in report._repr_html_()


def test_columns_without_log_statistics_come_from_footers_then_a_scan(tmp_path: Path) -> None:
    data = people(2000, 4)
    # the writer keeps statistics for the first column only: the rest needs the footers
    write_deltalake(str(tmp_path / "t"), data,
                    configuration={"delta.dataSkippingNumIndexedCols": "1"})
    report = lk.check(str(tmp_path / "t"), checks=[lk.Completeness(["email", "id"],
                                                                   min_ratio=0.5)])
    email = report.results[0]
    assert email.details["nulls"] == data.column("email").null_count
    assert email.details["footers_read"] == 1 and email.details["files_read"] == 0
    assert "footers read" in email.message

    # plain parquet: one file with footer statistics, one written without any
    (tmp_path / "pq").mkdir()
    pq.write_table(data.slice(0, 1000), tmp_path / "pq" / "a.parquet")
    pq.write_table(data.slice(1000), tmp_path / "pq" / "b.parquet", write_statistics=False)
    got = lk.check(str(tmp_path / "pq"), checks=[lk.Completeness("email", min_ratio=0.5)])
    r = got.results[0]
    assert r.details["nulls"] == data.column("email").null_count
    assert (r.details["method"], r.details["files_read"], r.details["files"]) == (
        "parquet_footer", 1, 2)


def test_completeness_on_s3_reads_the_log_only(s3_bucket: str,
                                               s3_options: dict[str, Any]) -> None:
    uri = f"s3://{s3_bucket}/people"
    table = lk.Table(uri, storage_options=s3_options)
    table.write(people(1500, 5))
    table.write(people(1500, 6))
    expected = pl.from_arrow(table.read()).null_count()
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_options)
    data_files = [p for p in fs.find(f"{s3_bucket}/people") if p.endswith(".parquet")
                  and "_delta_log" not in p]
    fs.rm(data_files)  # nothing left to read but the log
    report = lk.check(uri, storage_options=s3_options,
                      checks=[lk.Completeness(["email", "seen"], min_ratio=0.4)])
    assert [r.details["nulls"] for r in report.results] == [
        expected["email"][0], expected["seen"][0]]
    assert report.status == "pass"
    assert "secret" not in report.to_json().lower()


def test_completeness_bad_input_says_what_to_change(tmp_path: Path) -> None:
    table = lk.Table(tmp_path / "t")
    table.write(people(10, 7))
    with pytest.raises(ConfigError, match=r"'emial' not in the data; columns: id, email"):
        lk.check(table, checks=[lk.Completeness("emial")])
    with pytest.raises(ConfigError, match="between 0 and 1"):
        lk.Completeness("email", min_ratio=95)
    with pytest.raises(ConfigError, match="warn_ratio"):
        lk.Completeness("email", min_ratio=0.9, warn_ratio=0.8)
    # JSONL has no statistics: a scan of the asked columns
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.jsonl").write_text('{"a": 1}\n{"a": null}\n{"a": 3}\n')
    r = lk.check(str(tmp_path / "js"), checks=[lk.Completeness("a", min_ratio=0.5)]).results[0]
    assert (r.status, r.details["nulls"], r.details["method"]) == ("pass", 1, "scan")
    # an in-memory frame is answered by polars
    frame = pl.from_arrow(people(100, 8))
    r = lk.check(frame, checks=[lk.Completeness("email", min_ratio=0.0)]).results[0]
    assert r.details["nulls"] == frame["email"].null_count()


# -- schema drift -----------------------------------------------------------------------

def test_schema_drift_across_merge_and_overwrite_commits(tmp_path: Path) -> None:
    table = lk.Table(tmp_path / "t")
    table.write(pa.table({"id": [1, 2], "name": ["a", "b"]}))                       # v0
    table.write(pa.table({"id": [3], "name": ["c"], "email": ["c@x"]}),
                schema_mode="merge")                                                 # v1
    table.tag("release")
    table.write(pa.table({"id": ["x"], "email": ["d@x"], "score": [1.0]}),
                mode="overwrite", schema_mode="overwrite")                           # v2
    day = datetime(2026, 3, 1, tzinfo=UTC)
    set_commit_times(table, {0: day, 1: day + timedelta(days=1), 2: day + timedelta(days=2)})

    added = lk.check(table.dataset(version=1), checks=[lk.SchemaDrift(since=0)]).results[0]
    assert added.status == "pass" and added.details["added"] == ["email"]
    assert "+email" in added.message and "no data read" in added.message
    strict = lk.SchemaDrift(since=0, allow="none").evaluate(
        open_source(table.dataset(version=1)), now=datetime.now(UTC))
    assert strict.status == "fail" and "not allowed (none): email" in strict.message

    now = lk.check(table, checks=[lk.SchemaDrift(since="release")]).results[0]
    assert now.status == "fail"
    assert now.details["dropped"] == ["name"]
    assert now.details["retyped"] == [{"column": "id", "from": "int64", "to": "string"}]
    assert now.details["added"] == ["score"]
    assert "-name" in now.message and "id: int64 -> string" in now.message
    assert "tag 'release'" in now.message

    by_time = lk.check(table, checks=[lk.SchemaDrift(since="2026-03-01T12:00:00Z")])
    assert by_time.results[0].details["since_version"] == 0
    assert lk.check(table, checks=[lk.SchemaDrift(since="2")]).status == "pass"

    with pytest.raises(ConfigError, match="newer than the checked version 2"):
        lk.check(table, checks=[lk.SchemaDrift(since=9)])
    with pytest.raises(VersionNotFoundError, match="no tag named 'nope'"):
        lk.check(table, checks=[lk.SchemaDrift(since="nope")])
    with pytest.raises(ConfigError, match="before the table's first commit"):
        lk.check(table, checks=[lk.SchemaDrift(since="2020-01-01")])
    with pytest.raises(ConfigError, match="needs a Delta table"):
        lk.check(pl.DataFrame({"a": [1]}), checks=[lk.SchemaDrift(since=0)])
    with pytest.raises(ConfigError, match="'additive' or 'none'"):
        lk.SchemaDrift(since=0, allow="widening")  # type: ignore[arg-type]


# -- volume anomaly ---------------------------------------------------------------------

DROP, SPIKE, DAYS = 40, 50, 56


def day_start(when: datetime) -> datetime:
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> tuple[lk.Table, datetime]:
    """8 weeks of daily loads (quieter weekends), a drop on day 40 and a spike on day 50,
    the last one yesterday, and a compaction; returns the table and day 0's midnight."""
    table = lk.Table(tmp_path_factory.mktemp("vol") / "events")
    first = day_start(datetime.now(UTC)) - timedelta(days=DAYS)
    rnd = random.Random(16)
    for d in range(DAYS):
        weekend = (first + timedelta(days=d)).weekday() >= 5
        n = 300 + rnd.randint(-20, 20) if weekend else 1000 + rnd.randint(-60, 60)
        n = {DROP: n // 5, SPIKE: n * 4}.get(d, n)
        table.write(pa.table({"n": pa.array(range(n), pa.int64())}))
    compacted = table.compact().version  # adds and removes the same rows: net zero
    times = {d: first + timedelta(days=d, hours=12) for d in range(DAYS)}
    set_commit_times(table, {**times, compacted: first + timedelta(days=45, hours=13)})
    return table, first


def test_volume_anomaly_catches_the_drop_and_the_spike_and_passes_normal_weeks(
        daily: tuple[lk.Table, datetime]) -> None:
    table, first = daily
    check = lk.VolumeAnomaly(period="1d", lookback=28, sensitivity=3.0)
    statuses = {}
    for d in range(28, DAYS):
        r = check.evaluate(open_source(table), now=first + timedelta(days=d + 1, hours=2))
        statuses[d] = r.status
        if d == DROP:
            assert r.observed < r.threshold["low"] and "expected" in r.message
        if d == SPIKE:
            assert r.observed > r.threshold["high"]
            assert r.details["season"] == 7 and len(r.details["baseline"]) == 4
    assert {d for d, s in statuses.items() if s == "fail"} == {DROP, SPIKE}
    assert all(s == "pass" for d, s in statuses.items() if d not in (DROP, SPIKE)), statuses

    # without seasonality the quiet weekends look like drops
    flat = lk.VolumeAnomaly(lookback=28, seasonal=False)
    saturday = next(d for d in range(30, 37) if (first + timedelta(days=d)).weekday() == 5)
    r = flat.evaluate(open_source(table), now=first + timedelta(days=saturday + 1, hours=2))
    assert r.status == "fail"

    report = lk.check(table, checks=[check])  # today: yesterday (a normal day) is observed
    assert report.status == "pass", report.summary()
    html = report._repr_html_()
    assert html.count("<svg") == 1 and "expected" in html and "#1a7f37" in html
    assert html.count("r='2.4'") == 4  # the four same-weekday periods compared with
    assert len(report.results[0].details["series"]) == 29
    assert "rows per version" in table._repr_html_()


def test_volume_anomaly_too_little_history_warns_and_bad_options_fail(
        daily: tuple[lk.Table, datetime]) -> None:
    table, first = daily
    r = lk.VolumeAnomaly(lookback=28).evaluate(open_source(table),
                                              now=first + timedelta(days=20, hours=2))
    assert r.status == "warn" and r.threshold is None
    assert "too little history" in r.message and "lower lookback=" in r.message
    with pytest.raises(ConfigError, match="lookback >= 72 or seasonal=False"):
        lk.VolumeAnomaly(period="1h", lookback=28)
    with pytest.raises(ConfigError, match="period must be a duration"):
        lk.VolumeAnomaly(period="daily")
    with pytest.raises(ConfigError, match="lookback must be"):
        lk.VolumeAnomaly(lookback=1)
    with pytest.raises(ConfigError, match="sensitivity must be a positive"):
        lk.VolumeAnomaly(sensitivity=0)
    with pytest.raises(ConfigError, match="commit history"):
        lk.check(pl.DataFrame({"a": [1]}), checks=[lk.VolumeAnomaly()])


# -- CLI and Airflow --------------------------------------------------------------------

def test_cli_runs_the_metadata_checks(daily: tuple[lk.Table, datetime], cli: Any) -> None:
    table, _ = daily
    code, out, _ = cli("check", table.uri, "--completeness", "n", "--min-ratio", "0.99",
                       "--drift-since", "0", "--volume-anomaly", "--lookback", "28", "--json")
    assert code == 0, out
    names = [r["name"] for r in json.loads(out)["results"]]
    assert names == ["completeness", "schema_drift", "volume_anomaly"]
    code, _, err = cli("check", table.uri, "--completeness", "n", "--min-ratio", "2")
    assert code == 2 and "between 0 and 1" in err


@pytest.mark.slow  # importing Airflow: about 5 s
def test_airflow_operator_takes_check_objects_and_dicts(
        daily: tuple[lk.Table, datetime]) -> None:
    pytest.importorskip("airflow")
    from lakekit.airflow import AirflowFailException, QualityCheckOperator

    table, _ = daily

    class TaskInstance:  # what execute() uses of Airflow's context: xcom_push
        pushed: dict[str, Any] = {}

        def xcom_push(self, key: str, value: Any) -> None:
            self.pushed[key] = value

    op = QualityCheckOperator(task_id="governance", source=table.uri, checks=[
        {"check": "completeness", "columns": "n", "min_ratio": "0.99"},  # templated strings
        {"check": "volume_anomaly", "period": "1d", "lookback": "28", "sensitivity": "3"},
        lk.SchemaDrift(since=0),
    ])
    data = op.execute({"ti": TaskInstance()})
    assert [r["name"] for r in data["results"]] == ["completeness", "volume_anomaly",
                                                    "schema_drift"]
    assert TaskInstance.pushed["report"]["status"] == "pass"
    bad = QualityCheckOperator(task_id="bad", source=table.uri,
                               checks=[{"check": "completeness", "column": "n"}])
    with pytest.raises(AirflowFailException, match="unknown keys"):
        bad.execute({"ti": TaskInstance()})



def test_rows_removed_are_found_when_the_early_log_is_gone(tmp_path: Path) -> None:
    from lakekit.tables.history import read_row_changes

    table = lk.Table(tmp_path / "t")
    for i in range(12):  # lakekit tables checkpoint every 10 commits
        table.write(pa.table({"n": pa.array(range(10 + i), pa.int64())}))
    table.delete("n >= 5")  # rewrites every file: removes of files added in versions 0..11
    for v in range(6):  # log retention took the first commits
        (tmp_path / "t" / "_delta_log" / f"{v:020d}.json").unlink()
    changes = read_row_changes(table.location, table.version)
    assert [c.version for c in changes] == list(range(6, 13))
    deleted = changes[-1]
    assert (deleted.rows_removed - deleted.rows_added, deleted.unknown_files) == (
        sum(10 + i - 5 for i in range(12)), 0)
