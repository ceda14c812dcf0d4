"""Quality checks (issue 5): freshness from metadata, and validation overhead.

1. Freshness from metadata: ``lk.check(uri, freshness=...)`` on a Delta table of 200 files
   / 10M rows (then 200 files / 20M rows, and 400 files / 20M rows; one append per file)
   vs a polars scan computing ``max(event_time)``
   (``pl.scan_delta(uri).select(pl.col("event_time").max())``). Target: at most 5% of the
   scan's time, and about constant as the table grows.
2. Validation overhead: ``lk.check(df, schema)`` with a 10-column schema on 10M rows vs
   ``schema.validate(df, lazy=True)`` called directly. Target: at most 1.1x.

Run: ``python benchmarks/bench_quality.py [--quick]``; prints Markdown tables.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        sizes, rows, repeat = [(20, 5_000), (20, 10_000), (40, 5_000)], 200_000, 3
    else:
        # 10M rows in 200 files; twice the rows in the same files; twice the files
        sizes = [(200, 50_000), (200, 100_000), (400, 50_000)]
        rows, repeat = 10_000_000, 11
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, polars {pl.__version__}; "
          f"{datetime.now().date().isoformat()}\n")
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp:
        fresh = bench_freshness(Path(tmp), sizes, repeat)
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
    v = bench_validation(rows, repeat)
    print("| rows | pandera validate(lazy=True) | lk.check(df, schema) | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {v['rows'] / 1e6:g}M x 10 columns | {v['direct']:.3f} s | {v['check']:.3f} s | "
          f"{v['check'] / v['direct']:.3f}x | <= 1.1x |")


if __name__ == "__main__":
    main()
