"""Quality checks through the public API: lk.check, Freshness, Volume, QualityReport."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _support.data import SCHEMAS, events
from deltalake import write_deltalake

import lakekit as lk
from lakekit.errors import ConfigError, NotFoundError, QualityError, StorageError

UTC = timezone.utc


def now() -> datetime:
    return datetime.now(UTC)


# -- validation ------------------------------------------------------------------------

def test_valid_frame_passes_with_a_named_schema() -> None:
    report = lk.check(pl.from_arrow(events(500, newest=now())), "events", schemas_dir=SCHEMAS)
    assert report.status == "pass"
    assert report.result("schema").status == "pass"
    assert report.rows_checked == 500
    assert report.schema_name == "events"
    assert report.failure_cases.height == 0


def test_lazy_validation_collects_every_failure_with_row_indices() -> None:
    df = pl.from_arrow(events(100, newest=now()))
    assert isinstance(df, pl.DataFrame)
    df = df.with_columns(
        pl.when(pl.col("event_id") == 7).then(-5).otherwise(pl.col("user_id")).alias("user_id"),
        pl.when(pl.col("event_id").is_in([3, 42])).then(pl.lit("refund"))
        .otherwise(pl.col("kind")).alias("kind"),
        pl.when(pl.col("event_id") == 99).then(-1.0).otherwise(pl.col("amount")).alias("amount"),
    )
    report = lk.check(df, "events", schemas_dir=SCHEMAS)
    assert report.status == "fail"
    cases = report.failure_cases
    assert cases.columns == ["column", "check", "failure_case", "index"]
    got = {(r["column"], r["failure_case"], r["index"]) for r in cases.to_dicts()}
    assert got == {("user_id", "-5", 7), ("kind", "refund", 3), ("kind", "refund", 42),
                   ("amount", "-1.0", 99)}
    schema_result = report.result("schema")
    assert schema_result.observed == 4
    assert "4 failure cases in 3 checks" in schema_result.message
    assert schema_result.details["rows_failing"] == 4


def test_arrow_pandas_and_polars_inputs_agree() -> None:
    table = events(50, newest=now())
    bad = table.set_column(1, "user_id", pa.array([-1] * 50, pa.int64()))
    statuses = {
        kind: lk.check(data, "events", schemas_dir=SCHEMAS).failure_count
        for kind, data in (("arrow", bad), ("polars", pl.from_arrow(bad)),
                           ("lazy", pl.from_arrow(bad).lazy()),  # type: ignore[union-attr]
                           ("pandas", bad.to_pandas()))
    }
    assert statuses == {"arrow": 50, "polars": 50, "lazy": 50, "pandas": 50}
    assert isinstance(bad.to_pandas(), pd.DataFrame)


def test_missing_column_and_wrong_dtype_are_reported_not_raised() -> None:
    table = events(10, newest=now()).drop_columns(["amount"])
    table = table.set_column(0, "event_id", pa.array([str(i) for i in range(10)]))
    report = lk.check(table, "events", schemas_dir=SCHEMAS)
    assert report.status == "fail"
    checks = dict(zip(report.failure_cases["column"], report.failure_cases["check"], strict=True))
    assert checks["amount"] == "column_in_dataframe"
    assert checks["event_id"].startswith("dtype(")


def test_failure_cases_are_capped_but_counted() -> None:
    table = events(300, newest=now())
    bad = table.set_column(1, "user_id", pa.array([-1] * 300, pa.int64()))
    report = lk.check(bad, "events", schemas_dir=SCHEMAS, max_failure_cases=25)
    assert report.failure_cases.height == 25
    assert report.failure_count == 300
    assert "25 of 300 failure cases kept" in report.summary()


def test_strict_schema_reads_every_column_and_flags_extras(tmp_path: Path) -> None:
    (tmp_path / "strict_events.yaml").write_text(
        (SCHEMAS / "events.yaml").read_text().replace("strict: false", "strict: true"))
    table = events(20, newest=now()).append_column("debug", pa.array(["x"] * 20))
    report = lk.check(table, "strict_events", schemas_dir=tmp_path)
    assert report.status == "fail"
    assert report.failure_cases.filter(pl.col("failure_case") == "debug").height == 1


def test_sample_is_deterministic_and_indices_point_at_original_rows() -> None:
    table = events(20_000, newest=now())
    user = np.arange(20_000) % 1000
    user[::10] = -1  # every 10th row is bad
    bad = table.set_column(1, "user_id", pa.array(user, pa.int64()))
    first = lk.check(bad, "events", schemas_dir=SCHEMAS, sample=1_000)
    second = lk.check(bad, "events", schemas_dir=SCHEMAS, sample=1_000)
    assert first.rows_checked == 1_000 and first.sample == 1_000
    assert first.failure_cases.equals(second.failure_cases)
    indices = first.failure_cases["index"].to_list()
    assert 50 < len(indices) < 150  # about a tenth of the sample
    assert all(i % 10 == 0 for i in indices)  # original positions of the bad rows


def test_sample_of_a_dataset_streams_and_keeps_original_indices(tmp_path: Path) -> None:
    table = events(30_000, newest=now())
    user = np.arange(30_000) % 1000
    user[::7] = -1
    bad = table.set_column(1, "user_id", pa.array(user, pa.int64()))
    for i in range(3):
        pq.write_table(bad.slice(i * 10_000, 10_000), tmp_path / f"part_{i}.parquet",
                       row_group_size=2_500)
    report = lk.check(str(tmp_path), "events", schemas_dir=SCHEMAS, sample=600)
    again = lk.check(lk.dataset(str(tmp_path)), "events", schemas_dir=SCHEMAS, sample=600)
    assert report.rows_checked == 600
    assert report.failure_cases.equals(again.failure_cases)
    indices = report.failure_cases["index"].to_list()
    assert indices and all(i % 7 == 0 for i in indices)
    assert max(indices) > 20_000  # the sample reaches the last file


# -- freshness -------------------------------------------------------------------------

def test_freshness_of_a_frame_passes_warns_and_fails() -> None:
    data = events(100, newest=now() - timedelta(minutes=40))
    statuses = [
        lk.check(data, freshness=lk.Freshness(column="event_time", max_age=max_age,
                                              warn_age=warn)).status
        for max_age, warn in (("1h", None), ("1h", "30m"), ("30m", None), (timedelta(hours=2),
                                                                            timedelta(hours=1)))
    ]
    assert statuses == ["pass", "warn", "fail", "pass"]
    result = lk.check(data, freshness=lk.Freshness(column="event_time", max_age="30m")).result(
        "freshness")
    assert 40 * 60 - 5 < result.observed < 40 * 60 + 60
    assert result.threshold == 1800.0
    assert "40m" in result.message


def test_durations_and_bad_freshness_options() -> None:
    assert lk.Freshness(max_age="1h30m").max_age_delta == timedelta(minutes=90)
    assert lk.Freshness(max_age="2d").max_age_delta == timedelta(days=2)
    assert lk.Freshness(max_age=timedelta(seconds=5)).max_age_delta == timedelta(seconds=5)
    with pytest.raises(ConfigError, match="duration like"):
        lk.Freshness(max_age="soon")
    with pytest.raises(ConfigError, match="shorter than max_age"):
        lk.Freshness(max_age="30m", warn_age="1h")
    with pytest.raises(ConfigError, match="positive"):
        lk.Freshness(max_age="0s")
    with pytest.raises(ConfigError, match="needs a column"):
        lk.check(events(3, newest=now()), freshness=lk.Freshness(max_age="1h"))
    with pytest.raises(ConfigError, match="not in the data"):
        lk.check(events(3, newest=now()), freshness=lk.Freshness(column="nope"))
    with pytest.raises(ConfigError, match="expected a timestamp"):
        lk.check(events(3, newest=now()), freshness=lk.Freshness(column="amount"))


def test_delta_freshness_and_volume_read_no_data_file(tmp_path: Path) -> None:
    uri = str(tmp_path / "events")
    newest = now() - timedelta(minutes=20)
    write_deltalake(uri, events(1_000, newest=newest - timedelta(hours=3)))
    write_deltalake(uri, events(500, newest=newest, start=1_000), mode="append")
    fresh = lk.Freshness(column="event_time", max_age="1h")
    before = lk.check(uri, freshness=fresh, volume=lk.Volume(min_rows=1_500))

    # Remove every data file: only the log is left, and the same answers come back.
    data_files = [p for p in Path(uri).iterdir() if p.suffix == ".parquet"]
    assert len(data_files) == 2
    for p in data_files:
        p.unlink()
    after = lk.check(uri, freshness=fresh, volume=lk.Volume(min_rows=1_500, max_rows=1_500))
    for report in (before, after):
        assert report.status == "pass"
        result = report.result("freshness")
        assert result.details["method"] == "delta_stats"
        assert result.details["files_read"] == 0
        # Delta statistics keep milliseconds
        assert abs(datetime.fromisoformat(result.details["newest"]) - newest) < timedelta(
            milliseconds=1)
        assert report.result("volume").observed == 1_500
    # ... while anything that needs the data does fail: the files really are gone.
    with pytest.raises(NotFoundError):
        lk.check(uri, "events", schemas_dir=SCHEMAS)


def test_delta_freshness_fails_when_stale_and_without_column_uses_the_commit(
        tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_deltalake(uri, events(100, newest=now() - timedelta(hours=5)))
    stale = lk.check(uri, freshness=lk.Freshness(column="event_time", max_age="2h"))
    assert stale.status == "fail"
    assert "5h00m old" in stale.result("freshness").message or "4h59m" in stale.result(
        "freshness").message
    commit = lk.check(uri, freshness=lk.Freshness(max_age="1m"))
    assert commit.status == "pass"
    assert commit.result("freshness").details["method"] == "delta_commit"
    assert commit.result("freshness").observed < 60


def test_delta_without_statistics_falls_back_to_a_one_column_scan(tmp_path: Path) -> None:
    uri = str(tmp_path / "nostats")
    newest = now() - timedelta(minutes=3)
    # statistics only for the first column: event_time has none
    write_deltalake(uri, events(2_000, newest=newest),
                    configuration={"delta.dataSkippingNumIndexedCols": "1"})
    report = lk.check(uri, freshness=lk.Freshness(column="event_time", max_age="1h"))
    result = report.result("freshness")
    assert report.status == "pass"
    assert result.details["method"] == "scan"
    assert result.details["files_read"] == 1
    assert datetime.fromisoformat(result.details["newest"]) == newest


def test_delta_partition_column_freshness(tmp_path: Path) -> None:
    uri = str(tmp_path / "daily")
    today = now().date()
    table = events(30, newest=now()).append_column(
        "day", pa.array([today - timedelta(days=i % 3) for i in range(30)], pa.date32()))
    write_deltalake(uri, table, partition_by=["day"])
    report = lk.check(uri, freshness=lk.Freshness(column="day", max_age="2d"))
    result = report.result("freshness")
    assert result.details["method"] == "delta_partition_values"
    assert result.details["newest"].startswith(today.isoformat())
    assert report.status == "pass"


def test_parquet_freshness_from_footers_scans_only_files_without_statistics(
        tmp_path: Path) -> None:
    newest = now() - timedelta(minutes=2)
    pq.write_table(events(100, newest=newest - timedelta(hours=1)), tmp_path / "a.parquet")
    pq.write_table(events(100, newest=newest - timedelta(hours=2)), tmp_path / "b.parquet")
    fresh = lk.Freshness(column="event_time", max_age="1h")
    footers = lk.check(str(tmp_path), freshness=fresh).result("freshness")
    assert footers.details["method"] == "parquet_footer"
    assert footers.details["files_read"] == 0
    assert footers.status == "fail"  # newest is 1h02m old

    pq.write_table(events(100, newest=newest), tmp_path / "c.parquet", write_statistics=False)
    mixed = lk.check(str(tmp_path), freshness=fresh).result("freshness")
    assert mixed.details["files_read"] == 1 and mixed.details["files"] == 3
    assert datetime.fromisoformat(mixed.details["newest"]) == newest
    assert mixed.status == "pass"


def test_plain_dataset_freshness_without_column_is_the_newest_file(tmp_path: Path) -> None:
    pq.write_table(events(10, newest=now()), tmp_path / "a.parquet")
    old = now().timestamp() - 7200
    os.utime(tmp_path / "a.parquet", (old, old))
    report = lk.check(str(tmp_path), freshness=lk.Freshness(max_age="1h"))
    assert report.status == "fail"
    assert report.result("freshness").details["method"] == "file_mtime"
    pq.write_table(events(10, newest=now()), tmp_path / "b.parquet")
    assert lk.check(str(tmp_path), freshness=lk.Freshness(max_age="1h")).status == "pass"


def test_jsonl_freshness_scans_iso_timestamps(tmp_path: Path) -> None:
    newest = now().replace(microsecond=0) - timedelta(minutes=10)
    lines = [json.dumps({"id": i, "ts": (newest - timedelta(minutes=i)).isoformat()})
             for i in range(50)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    report = lk.check(str(tmp_path / "events.jsonl"),
                      freshness=lk.Freshness(column="ts", max_age="15m", warn_age="5m"),
                      volume=lk.Volume(min_rows=50, max_rows=50))
    assert report.status == "warn"
    assert report.result("freshness").details["method"] == "scan"
    assert datetime.fromisoformat(report.result("freshness").details["newest"]) == newest
    assert report.result("volume").observed == 50


# -- volume ----------------------------------------------------------------------------

def test_volume_bounds(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_deltalake(uri, events(120, newest=now()))
    assert lk.check(uri, volume=lk.Volume(min_rows=100)).status == "pass"
    low = lk.check(uri, volume=lk.Volume(min_rows=121))
    assert low.status == "fail" and low.result("volume").observed == 120
    assert lk.check(uri, volume=lk.Volume(max_rows=119)).status == "fail"
    with pytest.raises(ConfigError):
        lk.Volume()
    with pytest.raises(ConfigError):
        lk.Volume(min_rows=10, max_rows=5)


# -- report ----------------------------------------------------------------------------

def test_report_serialises_and_raises_for_status() -> None:
    bad = events(10, newest=now() - timedelta(minutes=45))
    bad = bad.set_column(1, "user_id", pa.array([-1] + [1] * 9, pa.int64()))
    report = lk.check(bad, "events", schemas_dir=SCHEMAS,
                      freshness=lk.Freshness(column="event_time", max_age="1h", warn_age="30m"),
                      volume=lk.Volume(min_rows=1))
    data = json.loads(report.to_json())
    assert data["status"] == "fail"
    assert [r["name"] for r in data["results"]] == ["schema", "freshness", "volume"]
    assert [r["status"] for r in data["results"]] == ["fail", "warn", "pass"]
    assert data["failure_cases"] == [{"column": "user_id", "check": "greater_than_or_equal_to(0)",
                                      "failure_case": "-1", "index": 0}]
    assert set(data["results"][1]) == {"name", "status", "observed", "threshold", "message",
                                       "details"}
    with pytest.raises(QualityError) as info:
        report.raise_for_status()
    assert info.value.report is report
    assert "user_id" in str(info.value)

    warn_only = lk.check(bad, freshness=lk.Freshness(column="event_time", max_age="1h",
                                                     warn_age="30m"))
    assert warn_only.status == "warn"
    assert warn_only.raise_for_status() is warn_only
    with pytest.raises(QualityError):
        warn_only.raise_for_status(on="warn")

    page = report._repr_html_()
    assert "FAIL" in page and "greater_than_or_equal_to(0)" in page and "<table>" in page


def test_results_table_keeps_the_history(tmp_path: Path) -> None:
    uri = str(tmp_path / "events")
    history = str(tmp_path / "checks")
    write_deltalake(uri, events(100, newest=now()))
    fresh = lk.Freshness(column="event_time", max_age="1h")
    lk.check(uri, "events", schemas_dir=SCHEMAS, freshness=fresh, results_table=history)
    lk.check(uri, volume=lk.Volume(min_rows=1_000), results_table=history)
    rows = lk.load(history, output="polars").sort("checked_at", "check")
    assert rows.height == 3
    assert rows["check"].to_list() == ["freshness", "schema", "volume"]
    assert rows["check_status"].to_list() == ["pass", "pass", "fail"]
    assert rows.filter(pl.col("check") == "volume")["observed"].item() == 100.0
    assert set(rows["source"].to_list()) == {uri}


# -- sources and bad input --------------------------------------------------------------

def test_dataset_input_and_directory_input_agree(tmp_path: Path) -> None:
    for i in range(3):
        pq.write_table(events(100, newest=now(), start=i * 100), tmp_path / f"p{i}.parquet")
    by_path = lk.check(str(tmp_path), "events", schemas_dir=SCHEMAS, volume=lk.Volume(min_rows=300))
    by_ds = lk.check(lk.dataset(str(tmp_path)), "events", schemas_dir=SCHEMAS,
                     volume=lk.Volume(min_rows=300))
    assert by_path.status == by_ds.status == "pass"
    assert by_path.rows_checked == by_ds.rows_checked == 300


def test_table_input_and_table_results(tmp_path: Path) -> None:
    table = lk.Table(str(tmp_path / "events"))
    table.write(events(250, newest=now() - timedelta(minutes=1)))
    history = lk.Table(str(tmp_path / "checks"))
    report = lk.check(table, "events", schemas_dir=SCHEMAS, results_table=history,
                      freshness=lk.Freshness(column="event_time", max_age="10m"),
                      volume=lk.Volume(min_rows=250))
    assert report.status == "pass", report.summary()
    assert report.source == table.uri
    assert report.rows_checked == 250
    assert history.version == 0
    assert history.read().num_rows == 3


def test_unknown_schema_lists_what_is_available(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text("columns:\n  id:\n    dtype: Int64\n")
    with pytest.raises(ConfigError) as info:
        lk.check(events(3, newest=now()), "evnts", schemas_dir=tmp_path)
    message = str(info.value)
    assert "unknown schema 'evnts'" in message
    assert "orders" in message


def test_schema_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, env, cwd = tmp_path / "first", tmp_path / "env", tmp_path / "cwd"
    for d, minimum in ((first, 0), (env, 10), (cwd / "schemas", 100)):
        d.mkdir(parents=True)
        (d / "ids.yaml").write_text(
            f"columns:\n  id:\n    dtype: Int64\n    greater_than_or_equal_to: {minimum}\n")
    (cwd / "schemas" / "only_here.yaml").write_text("columns:\n  id:\n    dtype: Int64\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("LAKEKIT_SCHEMAS_DIR", str(env))
    data = pa.table({"id": pa.array([5, 50], pa.int64())})
    assert lk.check(data, "ids", schemas_dir=first).status == "pass"    # argument first
    assert lk.check(data, "ids").failure_count == 1                       # then the env var
    monkeypatch.delenv("LAKEKIT_SCHEMAS_DIR")
    assert lk.check(data, "ids").failure_count == 2                       # then ./schemas
    assert lk.check(data, "only_here", schemas_dir=first).status == "pass"


@pytest.mark.parametrize(("text", "expected"), [
    ("columns:\n  a:\n    dtype: Int64\n   nullable: [\n", r"line 4, column 4: invalid YAML"),
    ("columns:\n  a:\n    dtype: Integer64\n", r"column 'a': unknown dtype 'Integer64'"),
    ("columns:\n  a:\n    dtype: Int64\n    greater_than_or_equals: 0\n",
     r"column 'a': unknown key 'greater_than_or_equals'"),
    ("colums:\n  a:\n    dtype: Int64\n", r"unknown top-level key 'colums'"),
    ("- a\n- b\n", r"expected a mapping"),
])
def test_invalid_schema_files_name_the_file_and_the_problem(
        tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        lk.check(pa.table({"a": [1]}), str(path))
    assert str(path) in str(info.value)


def test_unreachable_sources_raise_instead_of_failing(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        lk.check(str(tmp_path / "missing"), freshness=lk.Freshness(max_age="1h"))
    with pytest.raises(ConfigError, match="nothing to check"):
        lk.check(pa.table({"a": [1]}))
    with pytest.raises(ConfigError):
        lk.check(12345, volume=lk.Volume(min_rows=1))


@pytest.mark.s3
def test_s3_check_never_reports_credentials(s3_bucket: str, s3_options: dict[str, object],
                                            tmp_path: Path) -> None:
    import s3fs

    local = tmp_path / "events"
    write_deltalake(str(local), events(200, newest=now()))
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)  # type: ignore[arg-type]
    fs.put(str(local), f"{s3_bucket}/events", recursive=True)
    uri = f"s3://{s3_bucket}/events"
    report = lk.check(uri, "events", schemas_dir=SCHEMAS, storage_options=s3_options,
                      freshness=lk.Freshness(column="event_time", max_age="1h"),
                      volume=lk.Volume(min_rows=200),
                      results_table=f"s3://{s3_bucket}/checks")
    assert report.status == "pass", report.summary()
    assert report.result("freshness").details["method"] == "delta_stats"
    secret = str(s3_options["secret"])
    text = report.to_json() + repr(report) + report._repr_html_() + report.summary()
    assert secret not in text and uri in text
    history = lk.load(f"s3://{s3_bucket}/checks", storage_options=s3_options, output="polars")
    assert history.height == 3
    assert not any(secret in str(v) for row in history.rows() for v in row)

    wrong = dict(s3_options, secret="wrong-" + secret)
    with pytest.raises(StorageError) as info:
        lk.check(f"s3://{s3_bucket}/nothing-here", freshness=lk.Freshness(max_age="1h"),
                 storage_options=wrong)
    assert "wrong-" not in str(info.value) and secret not in str(info.value)
    shutil.rmtree(local)


def test_checks_list_runs_each_check_in_order_after_the_named_ones() -> None:
    df = pl.DataFrame({"a": [1, 2, 3]})
    report = lk.check(df, volume=lk.Volume(min_rows=1),
                      checks=[lk.Volume(max_rows=2), lk.Volume(min_rows=3)])
    assert [(r.name, r.status) for r in report.results] == [
        ("volume", "pass"), ("volume", "fail"), ("volume", "pass")]
    assert report.status == "fail"
    with pytest.raises(lk.errors.ConfigError, match="checks"):
        lk.check(df, checks=[object()])
    with pytest.raises(lk.errors.ConfigError, match="checks"):
        lk.check(df, checks=lk.Volume(min_rows=1))  # type: ignore[arg-type]
