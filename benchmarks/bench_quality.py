"""Quality checks (issue 5): freshness from metadata, and validation overhead.

1. Freshness from metadata: ``lk.check(uri, freshness=...)`` on a Delta table of 200 files
   / 10M rows (then 200 files / 20M rows, and 400 files / 20M rows; one append per file)
   vs a polars scan computing ``max(event_time)``
   (``pl.scan_delta(uri).select(pl.col("event_time").max())``). Target: at most 5% of the
   scan's time, and about constant as the table grows.
2. Validation overhead: ``lk.check(df, schema)`` with a 10-column schema on 10M rows vs
   ``schema.validate(df, lazy=True)`` called directly. Target: at most 1.1x.
3. Completeness from metadata (issue 16): ``lk.Completeness`` of 3 columns on a Delta table
   of 10M and 40M rows (one append per file) vs ``pl.scan_delta(...).null_count()`` of the
   same columns. Target: at most 5% of the scan at >= 1 GB, and <= 1.2x for 4x the rows.
4. Volume anomaly (issue 16): ``lk.VolumeAnomaly`` on a table of 365 daily commits (commit
   times in the past) vs a polars scan counting rows by day.

Run: ``python benchmarks/bench_quality.py [--quick] [--section NAME ...]``; prints Markdown
tables. Sections: freshness, validation, completeness, anomaly (default: all).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

import lakekit as lk

UTC = timezone.utc


def timed_pair(a: Callable[[], Any], b: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median wall times of ``a`` and ``b``, run alternately (order flipped each round,
    after a warm-up of each) so that noise on a shared machine hits both alike."""
    a()
    b()
    times: dict[int, list[float]] = {0: [], 1: []}
    for i in range(repeat):
        order = ((0, a), (1, b)) if i % 2 == 0 else ((1, b), (0, a))
        for key, fn in order:
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def events_batch(rng: np.random.Generator, n: int, start: int, window_end: datetime,
                 window: timedelta) -> pa.Table:
    """One load of events: 10 columns, event times spread (unsorted) over ``window``."""
    end_us = int(window_end.timestamp() * 1_000_000)
    offsets = rng.integers(0, int(window.total_seconds() * 1_000_000), n)
    return pa.table({
        "event_id": pa.array(np.arange(start, start + n), pa.int64()),
        "user_id": pa.array(rng.integers(0, 1_000_000, n), pa.int64()),
        "session_id": pa.array(rng.integers(0, 10_000_000, n), pa.int64()),
        "kind": pa.array(rng.choice(["view", "click", "buy"], n)),
        "country": pa.array(rng.choice(["FR", "DE", "US", "JP", "BR"], n)),
        "amount": pa.array(rng.random(n) * 100),
        "quantity": pa.array(rng.integers(1, 10, n), pa.int32()),
        "price": pa.array(rng.random(n) * 50),
        "is_mobile": pa.array(rng.random(n) < 0.6),
        "event_time": pa.array(end_us - offsets, pa.timestamp("us", "UTC")),
    })


def build_table(uri: str, files: int, rows_per_file: int) -> None:
    """``files`` appends (one file each), as periodic loads would make; the last is newest."""
    from deltalake import write_deltalake

    rng = np.random.default_rng(files)
    now = datetime.now(UTC)
    step = timedelta(minutes=5)
    for i in range(files):
        end = now - (files - 1 - i) * step
        write_deltalake(uri, events_batch(rng, rows_per_file, i * rows_per_file, end, step),
                        mode="append")


def bench_freshness(root: Path, sizes: list[tuple[int, int]], repeat: int) -> list[dict[str, Any]]:
    out = []
    for files, per_file in sizes:
        uri = str(root / f"events_{files}_{per_file}")
        start = time.perf_counter()
        build_table(uri, files, per_file)
        built = time.perf_counter() - start
        freshness = lk.Freshness(column="event_time", max_age="1h")

        def metadata(uri: str = uri, freshness: lk.Freshness = freshness) -> None:
            report = lk.check(uri, freshness=freshness)
            assert report.result("freshness").details["files_read"] == 0

        def scan(uri: str = uri) -> None:
            pl.scan_delta(uri).select(pl.col("event_time").max()).collect()

        report = lk.check(uri, freshness=freshness)
        newest_scan = pl.scan_delta(uri).select(pl.col("event_time").max()).collect().item()
        newest_meta = datetime.fromisoformat(report.result("freshness").details["newest"])
        assert abs(newest_meta - newest_scan) < timedelta(milliseconds=1), (newest_meta,
                                                                            newest_scan)
        t_meta, t_scan = timed_pair(metadata, scan, repeat)
        out.append({"files": files, "rows": files * per_file, "meta": t_meta, "scan": t_scan,
                    "built": built})
        print(f"  {files} files, {files * per_file:,} rows: metadata {t_meta * 1e3:.1f} ms, "
              f"scan {t_scan * 1e3:.1f} ms (built in {built:.0f}s)", file=sys.stderr)
    return out


def validation_schema() -> Any:
    import pandera.polars as pa_pl

    return pa_pl.DataFrameSchema({
        "event_id": pa_pl.Column(pl.Int64, nullable=False),
        "user_id": pa_pl.Column(pl.Int64, pa_pl.Check.ge(0)),
        "session_id": pa_pl.Column(pl.Int64, pa_pl.Check.ge(0)),
        "kind": pa_pl.Column(pl.String, pa_pl.Check.isin(["view", "click", "buy"])),
        "country": pa_pl.Column(pl.String, pa_pl.Check.str_length(2, 2)),
        "amount": pa_pl.Column(pl.Float64, pa_pl.Check.in_range(0, 100)),
        "quantity": pa_pl.Column(pl.Int32, pa_pl.Check.gt(0)),
        "price": pa_pl.Column(pl.Float64, pa_pl.Check.ge(0)),
        "is_mobile": pa_pl.Column(pl.Boolean),
        "event_time": pa_pl.Column(pl.Datetime("us", "UTC"), nullable=False),
    }, name="events10")


def bench_validation(rows: int, repeat: int) -> dict[str, Any]:
    from pandera.errors import SchemaErrors

    rng = np.random.default_rng(1)
    df = pl.from_arrow(events_batch(rng, rows, 0, datetime.now(UTC), timedelta(hours=1)))
    assert isinstance(df, pl.DataFrame)
    schema = validation_schema()

    def direct() -> None:
        with contextlib.suppress(SchemaErrors):
            schema.validate(df, lazy=True)

    def via_check() -> None:
        lk.check(df, schema)

    assert lk.check(df, schema).status == "pass"
    t_direct, t_check = timed_pair(direct, via_check, repeat)
    print(f"  validation of {rows:,} rows: pandera {t_direct:.3f}s, check {t_check:.3f}s",
          file=sys.stderr)
    return {"rows": rows, "direct": t_direct, "check": t_check}


# -- completeness from metadata (issue 16) ----------------------------------------------

COMPLETENESS_COLUMNS = ["amount", "country", "event_time"]


def build_nullable_table(uri: str, files: int, rows_per_file: int) -> int:
    """``files`` appends of events whose ``amount`` (~3%) and ``country`` (~1%) have nulls;
    returns the table's size in bytes."""
    from deltalake import write_deltalake

    rng = np.random.default_rng(files)
    now = datetime.now(UTC)
    for i in range(files):
        batch = events_batch(rng, rows_per_file, i * rows_per_file, now, timedelta(hours=1))
        for name, share in (("amount", 0.03), ("country", 0.01)):
            mask = pa.array(rng.random(rows_per_file) < share)
            column = batch.column(name)
            nulls = pa.nulls(rows_per_file, column.type)
            batch = batch.set_column(batch.schema.get_field_index(name), name,
                                     pc.if_else(mask, nulls, column))
        write_deltalake(uri, batch, mode="append")
    return sum(f.stat().st_size for f in Path(uri).rglob("*.parquet"))


def bench_completeness(root: Path, sizes: list[tuple[int, int]], repeat: int
                       ) -> list[dict[str, Any]]:
    out = []
    check = lk.Completeness(COMPLETENESS_COLUMNS, min_ratio=0.9)
    for files, per_file in sizes:
        uri = str(root / f"nulls_{files}_{per_file}")
        start = time.perf_counter()
        size = build_nullable_table(uri, files, per_file)
        built = time.perf_counter() - start

        def metadata(uri: str = uri) -> Any:
            return lk.check(uri, checks=[check])

        def scan(uri: str = uri) -> Any:
            return pl.scan_delta(uri).select(pl.col(COMPLETENESS_COLUMNS).null_count()).collect()

        report, counted = metadata(), scan()
        for r in report.results:
            assert r.details["files_read"] == 0 and r.details["footers_read"] == 0
            assert r.details["nulls"] == counted[r.details["column"]][0], r
        t_meta, t_scan = timed_pair(metadata, scan, repeat)
        out.append({"files": files, "rows": files * per_file, "bytes": size, "meta": t_meta,
                    "scan": t_scan, "run": metadata})
        print(f"  {files} files, {files * per_file:,} rows, {size / 1e9:.2f} GB: metadata "
              f"{t_meta * 1e3:.1f} ms, scan {t_scan * 1e3:.1f} ms (built in {built:.0f}s)",
              file=sys.stderr)
    return out


def section_completeness(root: Path, quick: bool) -> None:
    if quick:
        sizes, repeat = [(20, 5_000), (20, 20_000)], 3
    else:  # 10M rows, then 4x the rows in the same number of files
        sizes, repeat = [(100, 100_000), (100, 400_000)], 7
    got = bench_completeness(root, sizes, repeat)
    print("| table | Completeness(3 columns) from the log | polars scan null_count() | "
          "ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for r in got:
        print(f"| {r['files']} files, {r['rows'] / 1e6:g}M rows, {r['bytes'] / 1e9:.2f} GB | "
              f"{r['meta'] * 1e3:.1f} ms | {r['scan'] * 1e3:.1f} ms | "
              f"{r['meta'] / r['scan'] * 100:.1f}% | <= 5% |")
    base, big = got[0], got[-1]
    # the metadata checks of both tables alternately, with no scan in between to evict caches
    t_base, t_big = timed_pair(base["run"], big["run"], 3 * repeat)
    print(f"\n- {big['rows'] / base['rows']:g}x the rows: metadata "
          f"{big['meta'] / base['meta']:.2f}x when timed beside the scans, "
          f"{t_big / t_base:.2f}x timed beside each other "
          f"({t_base * 1e3:.1f} vs {t_big * 1e3:.1f} ms; target <= 1.2x); scan "
          f"{big['scan'] / base['scan']:.2f}x\n")


# -- volume anomaly from the log (issue 16) ---------------------------------------------

def build_daily_table(uri: str, days: int, rows_per_day: int) -> datetime:
    """``days`` daily appends whose commit times (rewritten in the log) and ``loaded_at``
    column are noon of each past day, the last yesterday; returns day 0's midnight."""
    import json

    table = lk.Table(uri)
    rng = np.random.default_rng(days)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days)
    for d in range(days):
        when = first + timedelta(days=d, hours=12)
        n = int(rows_per_day * (0.3 if when.weekday() >= 5 else 1) * rng.uniform(0.95, 1.05))
        table.write(pa.table({
            "id": pa.array(np.arange(n), pa.int64()),
            "loaded_at": pa.array([when] * n, pa.timestamp("us", "UTC")),
            "value": pa.array(rng.random(n)),
        }))
    for d in range(days):
        path = Path(uri) / "_delta_log" / f"{d:020d}.json"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for action in lines:
            if "commitInfo" in action:
                when = first + timedelta(days=d, hours=12)
                action["commitInfo"]["timestamp"] = int(when.timestamp() * 1000)
        path.write_text("\n".join(json.dumps(a) for a in lines) + "\n")
    return first


def section_anomaly(root: Path, quick: bool) -> None:
    days, per_day, repeat = (60, 1_000, 3) if quick else (365, 50_000, 7)
    uri = str(root / "daily")
    start = time.perf_counter()
    build_daily_table(uri, days, per_day)
    built = time.perf_counter() - start
    checks = {28: lk.VolumeAnomaly(lookback=28), 364: lk.VolumeAnomaly(lookback=364)}
    if quick:
        checks = {28: checks[28]}

    def scan() -> Any:
        return (pl.scan_delta(uri).group_by(pl.col("loaded_at").dt.truncate("1d"))
                .agg(pl.len()).sort("loaded_at").collect())

    by_day = scan()
    yesterday = by_day["len"][-1]
    print("| check | from the log | polars scan, rows by day | ratio |")
    print("| --- | --- | --- | --- |")
    for lookback, check in checks.items():

        def from_log(check: lk.VolumeAnomaly = check) -> Any:
            return lk.check(uri, checks=[check])

        result = from_log().results[0]
        assert result.observed == yesterday, (result.observed, yesterday)
        assert result.status == "pass", result.message
        t_log, t_scan = timed_pair(from_log, scan, repeat)
        print(f"| VolumeAnomaly(lookback={lookback}), {days} daily commits, "
              f"{result.details['commits_read']} read | {t_log * 1e3:.1f} ms | "
              f"{t_scan * 1e3:.1f} ms | {t_log / t_scan * 100:.1f}% |")
    print(f"\n(table: {days} commits, {by_day['len'].sum():,} rows, built in {built:.0f}s)\n")


SECTIONS = ("freshness", "validation", "completeness", "anomaly")


def section_freshness(root: Path, quick: bool) -> None:
    if quick:
        sizes, repeat = [(20, 5_000), (20, 10_000), (40, 5_000)], 3
    else:
        # 10M rows in 200 files; twice the rows in the same files; twice the files
        sizes, repeat = [(200, 50_000), (200, 100_000), (400, 50_000)], 11
    fresh = bench_freshness(root, sizes, repeat)
    print("| table | check(freshness) from metadata | polars scan max(event_time) | "
          "ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for r in fresh:
        print(f"| {r['files']} files, {r['rows'] / 1e6:g}M rows | {r['meta'] * 1e3:.1f} ms | "
              f"{r['scan'] * 1e3:.1f} ms | {r['meta'] / r['scan'] * 100:.1f}% | <= 5% |")
    base = fresh[0]
    print()
    for r in fresh[1:]:
        print(f"- {r['files']} files / {r['rows'] / 1e6:g}M rows vs {base['files']} files / "
              f"{base['rows'] / 1e6:g}M rows: metadata {r['meta'] / base['meta']:.2f}x, "
              f"scan {r['scan'] / base['scan']:.2f}x")
    print()


def section_validation(root: Path, quick: bool) -> None:
    rows, repeat = (200_000, 3) if quick else (10_000_000, 11)
    v = bench_validation(rows, repeat)
    print("| rows | pandera validate(lazy=True) | lk.check(df, schema) | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {v['rows'] / 1e6:g}M x 10 columns | {v['direct']:.3f} s | {v['check']:.3f} s | "
          f"{v['check'] / v['direct']:.3f}x | <= 1.1x |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--section", action="append", choices=SECTIONS, default=None,
                        help="run only this section (repeatable; default: all)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, polars {pl.__version__}; "
          f"{datetime.now().date().isoformat()}\n")
    runs: dict[str, Callable[[Path, bool], None]] = {
        "freshness": section_freshness, "validation": section_validation,
        "completeness": section_completeness, "anomaly": section_anomaly,
    }
    for name in args.section or SECTIONS:
        with tempfile.TemporaryDirectory(prefix=f"bench_quality_{name}_") as tmp:
            runs[name](Path(tmp), args.quick)


if __name__ == "__main__":
    main()
