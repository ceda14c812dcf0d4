"""Loader benchmarks (issue 2, benchmarks 1-3). Prints Markdown tables with ratios.

1. Bytes fetched: 32 parquet shards x 20 columns; read 2 columns through a byte-counting
   fsspec filesystem. Ideal = the selected column chunks' bytes + footers.
2. Latency-bound shard reads: the same shards behind a filesystem adding 20 ms per request:
   lakekit vs a per-shard ``pd.read_parquet`` loop, ``pyarrow.dataset`` and polars.
3. Local decode: lakekit vs ``pyarrow.parquet.read_table`` on local files.
4. Hive partition pruning (issue 14): 1,000 ``part=N/`` partitions behind the 20 ms
   filesystem (listed as an object store lists: 1,000 keys a request), a filter selecting
   10 of them, no ``schema=``: requests made and time, lakekit vs ``pyarrow.dataset`` and
   polars (``scan_pyarrow_dataset`` over the same dataset).

Usage: python benchmarks/bench_loaders.py [--rows 100000] [--shards 32] [--latency 0.02]
       [--sections 1,2,3,4] [--hive-parts 1000] [--hive-pick 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _fs import InstrumentedFS

import lakekit as lk

COLUMNS = ["c3", "c12"]


def make_shards(root: Path, shards: int, rows: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(shards):
        cols: dict[str, Any] = {}
        for j in range(20):
            if j % 4 == 0:
                cols[f"c{j}"] = rng.integers(0, 1 << 40, rows)
            else:
                cols[f"c{j}"] = rng.random(rows)
        path = root / f"shard_{i}.parquet"
        pq.write_table(pa.table(cols), path, row_group_size=max(1, rows // 2))
        paths.append(str(path))
    return paths


def ideal_bytes(paths: list[str], columns: list[str]) -> int:
    total = 0
    for p in paths:
        md = pq.read_metadata(p)
        total += md.serialized_size + 8
        for rg in range(md.num_row_groups):
            for j in range(md.num_columns):
                col = md.row_group(rg).column(j)
                if col.path_in_schema in columns:
                    total += col.total_compressed_size
    return total


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best = float("inf")
    out = None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_bytes(paths: list[str]) -> list[tuple[str, int, int]]:
    fs = InstrumentedFS()
    uris = [f"bench://{p}" for p in paths]
    results = []

    def run(name: str, fn: Callable[[], pa.Table]) -> None:
        fs.reset()
        table = fn()
        assert table.num_rows == expected_rows and table.column_names == COLUMNS, name
        results.append((name, fs.bytes, fs.requests))

    expected_rows = sum(pq.read_metadata(p).num_rows for p in paths)
    run("lakekit", lambda: lk.load(uris, columns=COLUMNS, filesystem=fs))
    pa_fs = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    run("pyarrow.dataset", lambda: pads.dataset(paths, filesystem=pa_fs).to_table(columns=COLUMNS))
    import pandas as pd

    run("pd.read_parquet loop", lambda: pa.Table.from_pandas(pd.concat(
        [pd.read_parquet(p, columns=COLUMNS, filesystem=fs) for p in paths],
        ignore_index=True), preserve_index=False))
    return results


def bench_latency(paths: list[str], latency: float) -> list[tuple[str, float]]:
    fs = InstrumentedFS(latency=latency)
    uris = [f"bench://{p}" for p in paths]
    import pandas as pd
    import polars as pl

    pa_fs = pafs.PyFileSystem(pafs.FSSpecHandler(fs))

    def polars_read() -> Any:
        frames = []
        for p in paths:
            with fs.open(p, "rb") as f:
                frames.append(pl.read_parquet(f, columns=COLUMNS))
        return pl.concat(frames)

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("lakekit", lambda: lk.load(uris, columns=COLUMNS, filesystem=fs)),
        ("pyarrow.dataset",
         lambda: pads.dataset(paths, filesystem=pa_fs).to_table(columns=COLUMNS)),
        ("polars (fsspec file objects)", polars_read),
        ("pd.read_parquet loop", lambda: pd.concat(
            [pd.read_parquet(p, columns=COLUMNS, filesystem=fs) for p in paths])),
    ]
    out = []
    for name, fn in cases:
        seconds, _ = timed(fn, repeat=2)
        out.append((name, seconds))
    return out


def bench_local(root: Path) -> list[tuple[str, float, float]]:
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("lakekit", lambda: lk.load(str(root))),
        ("pyarrow.parquet.read_table", lambda: pq.read_table(str(root))),
        ("lakekit, 2 columns", lambda: lk.load(str(root), columns=COLUMNS)),
        ("pyarrow.parquet.read_table, 2 columns",
         lambda: pq.read_table(str(root), columns=COLUMNS)),
    ]
    for _, fn in cases:  # warm the page cache
        fn()
    out = []
    for name, fn in cases:
        wall, _ = timed(fn, repeat=7)
        out.append((name, wall, cpu_seconds(fn, repeat=7)))
    return out


def make_hive(root: Path, parts: int, rows: int) -> None:
    rng = np.random.default_rng(1)
    for p in range(parts):
        d = root / f"part={p}"
        d.mkdir(parents=True)
        pq.write_table(pa.table({
            "id": np.arange(p * rows, (p + 1) * rows), "x": rng.random(rows),
            "y": rng.integers(0, 1000, rows), "s": [f"s{i % 97}" for i in range(rows)],
        }), d / "data-0.parquet")


def bench_hive(root: Path, pick: list[int], latency: float, rows: int
               ) -> list[tuple[str, float, int, int]]:
    """(reader, best seconds, requests, of which listing) for one filtered read."""
    import polars as pl

    fs = InstrumentedFS(latency=latency)
    pa_fs = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    uri = f"bench://{root}"
    dnf = [("part", "in", pick)]

    def pa_dataset() -> Any:
        return pads.dataset(str(root), filesystem=pa_fs, format="parquet", partitioning="hive")

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("lakekit", lambda: lk.load(uri, filesystem=fs, filter=dnf)),
        ("pyarrow.dataset", lambda: pa_dataset().to_table(filter=pads.field("part").isin(pick))),
        ("polars (scan_pyarrow_dataset)", lambda: pl.scan_pyarrow_dataset(pa_dataset()).filter(
            pl.col("part").is_in(pick)).collect()),
    ]
    out = []
    for name, fn in cases:
        fs.reset()
        got = fn()
        assert len(got) == rows * len(pick), (name, len(got))
        requests, listing = fs.requests, fs.listings
        seconds, _ = timed(fn, repeat=3)
        out.append((name, seconds, requests, listing))
    return out


def cpu_seconds(fn: Callable[[], Any], repeat: int) -> float:
    """Best-of CPU time (user + system) of this process: steadier than wall time on a
    shared machine, and what a decode costs whatever the parallelism."""
    best = float("inf")
    for _ in range(repeat):
        before = os.times()
        fn()
        after = os.times()
        best = min(best, (after.user + after.system) - (before.user + before.system))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--sections", default="1,2,3,4")
    ap.add_argument("--hive-parts", type=int, default=1000)
    ap.add_argument("--hive-pick", type=int, default=10)
    args = ap.parse_args()
    sections = {int(s) for s in args.sections.split(",")}
    if 4 in sections:
        section_hive(args)
    if sections & {1, 2, 3}:
        sections_shards(args, sections)


def section_hive(args: argparse.Namespace) -> None:
    rows = 2_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hive"
        make_hive(root, args.hive_parts, rows)
        step = max(1, args.hive_parts // args.hive_pick)
        pick = list(range(step // 2, args.hive_parts, step))[: args.hive_pick]
        size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
        print(f"# 4. Hive partition pruning: {args.hive_parts:,} partitions x {rows:,} rows "
              f"({size / 2**20:.0f} MiB), filter on {len(pick)} partitions, no schema=; "
              f"{args.latency * 1000:.0f} ms per request; {platform.machine()}, "
              f"{os.cpu_count()} cores, lakekit {lk.__version__}, pyarrow {pa.__version__}, "
              f"{time.strftime('%Y-%m-%d')}\n")
        print(f"Ideal: {len(pick)} files' footers and chunks, plus listing.\n")
        res = bench_hive(root, pick, args.latency, rows)
        lk_s = res[0][1]
        print("| reader | requests (of which listing) | seconds (best of 3) | x lakekit |\n"
              "|---|---:|---:|---:|")
        for name, s, req, listing in res:
            print(f"| {name} | {req} ({listing}) | {s:.3f} | {s / lk_s:.1f}x |")
        print()


def sections_shards(args: argparse.Namespace, sections: set[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_shards(root, args.shards, args.rows)
        size = sum(os.path.getsize(p) for p in paths)
        print(f"# Loader benchmarks: {args.shards} shards x 20 columns x {args.rows:,} rows "
              f"({size / 2**20:.0f} MiB); {platform.machine()}, {os.cpu_count()} cores, "
              f"python {platform.python_version()}, pyarrow {pa.__version__}, "
              f"{time.strftime('%Y-%m-%d')}\n")

        if 1 in sections:
            ideal = ideal_bytes(paths, COLUMNS)
            print(f"## 1. Bytes fetched, 2 of 20 columns (ideal {ideal / 2**20:.2f} MiB)\n")
            print("| reader | MiB fetched | requests | x ideal |\n|---|---:|---:|---:|")
            for name, nbytes, requests in bench_bytes(paths):
                print(f"| {name} | {nbytes / 2**20:.2f} | {requests} | {nbytes / ideal:.2f} |")

        if 2 in sections:
            print(f"\n## 2. Latency-bound reads, {args.latency * 1000:.0f} ms per request, "
                  "2 columns\n")
            lat = bench_latency(paths, args.latency)
            lk_s = lat[0][1]
            print("| reader | seconds | lakekit speed-up |\n|---|---:|---:|")
            for name, s in lat:
                print(f"| {name} | {s:.3f} | {s / lk_s:.1f}x |")

        if 3 in sections:
            print("\n## 3. Local decode (page cache warm, best of 7)\n")
            loc = bench_local(root)
            print("| reader | wall s | wall ratio | CPU s | CPU ratio |\n"
                  "|---|---:|---:|---:|---:|")
            base = {n: (w, c) for n, w, c in loc}
            for name, w, c in loc:
                suffix = ", 2 columns" if "2 columns" in name else ""
                ref_w, ref_c = base["pyarrow.parquet.read_table" + suffix]
                print(f"| {name} | {w:.3f} | {w / ref_w:.2f} | {c:.3f} | {c / ref_c:.2f} |")


if __name__ == "__main__":
    main()
