"""Beyond one machine (issue 12): lakekit's reads and checks on Dask. Prints Markdown tables.

1. Scaling: read (and, with ``lk.check(engine="dask")``, validate) N parquet shards on a
   ``distributed.LocalCluster`` of 1, 2 and 4 worker processes of one thread each, against
   lakekit's own threaded read (and check) in this one process. Each worker is held to one
   core (OMP / Arrow / polars threads = 1) so that processes, not threads, do the scaling.
2. Planning: time to first task for ``Dataset.to_dask()`` vs ``dd.read_parquet`` on the
   same M files on the moto S3 server (each in a fresh process: no warm caches).
3. Memory: a dataset 4x one worker's memory limit read on 2 workers: peak RSS per worker
   (sampled every 50 ms) against the piece size, and whether any worker was restarted.

Usage: python benchmarks/bench_scale.py [--shards 256] [--rows 100000] [--files 2000]
       [--workers 1,2,4] [--memory-limit 512] [--parts 1,2,3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import lakekit as lk

ONE_THREAD = {"OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}
KINDS = ["view", "click", "buy", "refund"]


def make_shards(root: Path, shards: int, rows: int, *, row_group: int | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    users = pa.array([f"user-{u}" for u in range(50_000)])
    kinds = pa.array(KINDS)
    for i in range(shards):
        n = rows
        table = pa.table({
            "id": np.arange(i * n, (i + 1) * n, dtype=np.int64),
            "user": users.take(rng.integers(0, len(users), n)),
            "kind": kinds.take(rng.integers(0, len(KINDS), n)),
            "amount": rng.gamma(2.0, 20.0, n),
            "score": rng.random(n),
        })
        pq.write_table(table, root / f"shard-{i:05d}.parquet", row_group_size=row_group or n)


def schema() -> Any:
    import pandera.polars as pa_pl

    return pa_pl.DataFrameSchema({
        "id": pa_pl.Column(int, pa_pl.Check.ge(0)),
        "user": pa_pl.Column(str, pa_pl.Check.str_startswith("user-")),
        "kind": pa_pl.Column(str, pa_pl.Check.isin(KINDS)),
        "amount": pa_pl.Column(float, [pa_pl.Check.ge(0), pa_pl.Check.le(1_000)]),
        "score": pa_pl.Column(float, pa_pl.Check.in_range(0, 1)),
    })


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def cluster(n: int, memory_limit: str | int = "4GiB") -> tuple[Any, Any]:
    import dask
    import distributed

    with dask.config.set({"distributed.nanny.pre-spawn-environ": ONE_THREAD,
                          "distributed.worker.daemon": False}):
        c = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", memory_limit=memory_limit,
                                     silence_logs=50)
    client = distributed.Client(c, set_as_default=False)
    client.wait_for_workers(n, timeout=120)
    return c, client


# -- 1. scaling ------------------------------------------------------------------------------

def bench_scaling(root: Path, workers: list[int], repeat: int) -> list[str]:
    ds = lk.dataset(root)
    sch = schema()
    rows = ds.count_rows()

    def local_read() -> float:
        return float(pa.compute.sum(ds.to_arrow(columns=["amount"])["amount"]).as_py()
                     + ds.to_arrow(columns=["user", "kind"]).num_rows)

    def local_full_read() -> int:
        return ds.to_arrow().num_rows

    def local_check() -> str:
        return lk.check(ds, sch).status

    lines = ["| run | read all columns (s) | rows/s | read + validate (s) | vs 1 worker "
             "(read / check) |", "|---|---|---|---|---|"]
    t_read, _ = best(local_full_read, repeat)
    t_check, status = best(local_check, repeat)
    assert status == "pass", status
    lines.append(f"| lakekit, one process, threads | {t_read:.2f} | {rows / t_read:,.0f} | "
                 f"{t_check:.2f} | - |")
    base: tuple[float, float] | None = None
    for n in workers:
        c, client = cluster(n)
        try:
            def dask_read(client: Any = client) -> int:
                ddf = ds.to_dask()
                return int(client.compute(ddf.map_partitions(len).sum()).result())

            def dask_check(client: Any = client) -> str:
                return lk.check(ds, sch, engine="dask", client=client).status

            dask_read()  # warm the workers (imports)
            tr, got = best(dask_read, repeat)
            assert got == rows
            tc, st = best(dask_check, repeat)
            assert st == "pass", st
        finally:
            client.close()
            c.close()
        if base is None:
            base = (tr, tc)
        lines.append(f"| Dask, {n} worker process{'es' if n > 1 else ''} x 1 thread | "
                     f"{tr:.2f} | {rows / tr:,.0f} | {tc:.2f} | "
                     f"{base[0] / tr:.2f}x / {base[1] / tc:.2f}x |")
    return lines


# -- 2. planning ----------------------------------------------------------------------------

PLAN_LAKEKIT = """
import json, sys, time
import dask.dataframe  # imported before the clock starts, as in the dask script
import lakekit as lk
import lakekit.io.dataset, lakekit.scale.dask
url, opts = sys.argv[1], json.loads(sys.argv[2])
t0 = time.perf_counter()
ddf = lk.dataset(url, storage_options=opts).to_dask()
n = ddf.npartitions
t1 = time.perf_counter()
first = ddf.partitions[0].compute(scheduler="sync")
t2 = time.perf_counter()
print(json.dumps({"graph": t1 - t0, "first": t2 - t0, "npartitions": n, "rows": len(first)}))
"""

PLAN_LAKEKIT_SCHEMA = """
import json, sys, time
import dask.dataframe
import pyarrow as pa
import lakekit as lk
import lakekit.io.dataset, lakekit.scale.dask
url, opts = sys.argv[1], json.loads(sys.argv[2])
schema = pa.schema([("id", pa.int64()), ("x", pa.float64())])
t0 = time.perf_counter()
ddf = lk.dataset(url, storage_options=opts, schema=schema).to_dask()
n = ddf.npartitions
t1 = time.perf_counter()
first = ddf.partitions[0].compute(scheduler="sync")
t2 = time.perf_counter()
print(json.dumps({"graph": t1 - t0, "first": t2 - t0, "npartitions": n, "rows": len(first)}))
"""

PLAN_DASK = """
import json, sys, time
import dask.dataframe as dd
url, opts = sys.argv[1], json.loads(sys.argv[2])
t0 = time.perf_counter()
ddf = dd.read_parquet(url, storage_options=opts)
n = ddf.npartitions
t1 = time.perf_counter()
first = ddf.partitions[0].compute(scheduler="sync")
t2 = time.perf_counter()
print(json.dumps({"graph": t1 - t0, "first": t2 - t0, "npartitions": n, "rows": len(first)}))
"""


def bench_planning(files: int, repeat: int) -> list[str]:
    from lakekit.local_servers import moto_s3_server

    lines = ["| planner | files | graph built (s) | first partition computed (s) |",
             "|---|---|---|---|"]
    with moto_s3_server() as server:
        server.create_bucket("plan")
        import fsspec

        opts = server.storage_options
        fs = fsspec.filesystem("s3", **opts)
        rng = np.random.default_rng(1)
        t = time.perf_counter()
        for i in range(files):
            buf = pa.BufferOutputStream()
            pq.write_table(pa.table({"id": np.arange(i * 100, i * 100 + 100),
                                     "x": rng.random(100)}), buf)
            fs.pipe_file(f"plan/data/part-{i:05d}.parquet", buf.getvalue().to_pybytes())
        upload = time.perf_counter() - t
        url = "s3://plan/data/"
        # the same rows as one Delta table of as many files (one commit)
        import deltalake

        delta_opts = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                      "AWS_ENDPOINT_URL": opts["client_kwargs"]["endpoint_url"],
                      "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
        ids = np.arange(files * 100)
        whole = pa.table({"id": ids, "x": rng.random(files * 100), "part": ids // 100})
        # one file per value of "part": as many files as above, in one commit
        deltalake.write_deltalake("s3://plan/delta", whole, storage_options=delta_opts,
                                  partition_by=["part"])
        runs = {
            "lakekit": (PLAN_LAKEKIT, url, "lakekit `Dataset.to_dask()` (reads every footer)"),
            "schema": (PLAN_LAKEKIT_SCHEMA, url, "lakekit `to_dask()` with `schema=` (no footer)"),
            "delta": (PLAN_LAKEKIT, "s3://plan/delta",
                      "lakekit `to_dask()` on a Delta table of the same rows (the log only)"),
            "dask": (PLAN_DASK, url, "`dd.read_parquet` (dask 2026.8.0; one footer)"),
        }
        results: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
        for _ in range(repeat):
            for name, (code, where, _label) in runs.items():
                out = subprocess.run([sys.executable, "-c", code, where, json.dumps(opts)],
                                     capture_output=True, text=True, timeout=900, check=True)
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for name, (_code, _where, label) in runs.items():
            g = min(r["graph"] for r in results[name])
            f = min(r["first"] for r in results[name])
            n = results[name][0]["npartitions"]
            lines.append(f"| {label} | {files} ({n} partitions) | {g:.2f} | {f:.2f} |")
        lk_first = min(r["first"] for r in results["lakekit"])
        dd_first = min(r["first"] for r in results["dask"])
        lines.append(f"\nTime to first task, dask / lakekit: **{dd_first / lk_first:.2f}x** "
                     f"(upload of the {files} files: {upload:.0f} s, not counted)")
    return lines


# -- 3. memory -------------------------------------------------------------------------------

def bench_memory(root: Path, memory_limit_mib: int, piece_mib: int) -> list[str]:
    ds = lk.dataset(root)
    pieces = ds.pieces(split="row_group", piece_bytes=piece_mib << 20)
    decoded = sum(p.nbytes for p in pieces)  # uncompressed column chunks, from the footers
    c, client = cluster(2, memory_limit=memory_limit_mib << 20)
    peaks: dict[str, int] = {}
    baseline: dict[str, int] = {}
    stop = threading.Event()

    def rss() -> int:
        import psutil

        return int(psutil.Process().memory_info().rss)

    def sample() -> None:
        while not stop.is_set():
            try:
                for w, v in client.run(rss).items():
                    peaks[w] = max(peaks.get(w, 0), v)
            except Exception:  # a worker restarting: counted below
                pass
            time.sleep(0.05)

    try:
        before = set(client.scheduler_info()["workers"])
        baseline.update(client.run(rss))
        ddf = ds.to_dask(split="row_group", piece_bytes=piece_mib << 20)
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        t = time.perf_counter()
        total = int(client.compute(ddf.map_partitions(len).sum()).result())
        elapsed = time.perf_counter() - t
        stop.set()
        thread.join(timeout=10)
        after = set(client.scheduler_info()["workers"])
    finally:
        client.close()
        c.close()
    assert total == ds.count_rows()
    ratio = decoded / (memory_limit_mib << 20)
    lines = [f"Dataset: {decoded / 2**20:,.0f} MiB decoded ({ratio:.1f}x"
             f" a worker's {memory_limit_mib} MiB limit), {ddf.npartitions} partitions of "
             f"~{piece_mib} MiB (`split=\"row_group\"`), read in {elapsed:.1f} s; "
             f"workers restarted: {len(before - after)}",
             "",
             "| worker | RSS before (MiB) | peak RSS (MiB) | peak above before (MiB) |",
             "|---|---|---|---|"]
    for i, w in enumerate(sorted(baseline)):
        b, p = baseline[w], peaks.get(w, 0)
        lines.append(f"| {i} | {b / 2**20:,.0f} | {p / 2**20:,.0f} | {(p - b) / 2**20:,.0f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=256)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--memory-limit", type=int, default=512, help="MiB per worker (part 3)")
    ap.add_argument("--piece", default="8,32,64", help="MiB per piece (part 3), a list")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--parts", default="1,2,3")
    args = ap.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    print(f"# bench_scale — {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}\n")
    with tempfile.TemporaryDirectory() as tmp:
        if 1 in parts:
            root = Path(tmp) / "shards"
            make_shards(root, args.shards, args.rows)
            size = sum(f.stat().st_size for f in root.iterdir())
            print(f"## 1. Scaling: {args.shards} shards x {args.rows:,} rows "
                  f"({size / 2**20:,.0f} MiB of parquet)\n")
            workers = [int(w) for w in args.workers.split(",")]
            print("\n".join(bench_scaling(root, workers, args.repeat)), "\n", flush=True)
        if 2 in parts:
            print(f"## 2. Planning on moto S3: {args.files} files\n")
            print("\n".join(bench_planning(args.files, args.repeat)), "\n", flush=True)
        if 3 in parts:
            root = Path(tmp) / "big"
            target = 4 * (args.memory_limit << 20)
            rows_per_file = 1_000_000
            make_shards(root, 1, rows_per_file, row_group=100_000)
            md = pq.read_metadata(root / "shard-00000.parquet")
            per_row = sum(md.row_group(g).total_byte_size
                          for g in range(md.num_row_groups)) / md.num_rows
            files = int(target // (rows_per_file * per_row)) + 1
            make_shards(root, files, rows_per_file, row_group=100_000)
            print("## 3. Memory per worker\n")
            for piece in [int(x) for x in args.piece.split(",")]:
                print("\n".join(bench_memory(root, args.memory_limit, piece)), "\n",
                      flush=True)


if __name__ == "__main__":
    main()
