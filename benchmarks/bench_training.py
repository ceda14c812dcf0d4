"""Training loader benchmarks (issue 15). Prints Markdown tables with ratios vs baselines.

1. Shuffle quality: distinct source shards per batch (1M rows, 128 shards, batch 256, a
   window of ~64Ki rows) vs the uniform ideal (~110.8), an HF-style 1,000-row buffer
   shuffle (simulated, and HF ``datasets`` streaming ``shuffle(buffer_size=1000)`` itself)
   and Ray Data's ``iter_batches(local_shuffle_buffer_size=65536)``.
2. Peak RSS vs ``memory_budget`` on data 10x the budget (one epoch, in a subprocess).
3. Feed rate: rows/s of the loader (shuffled / unshuffled) vs raw
   ``pq.ParquetFile.iter_batches`` on the same files and columns; HF streaming and Ray
   ``iter_batches`` on the same files, in the same run.
4. Requests per epoch and seconds on a 20 ms-latency filesystem (``_fs.InstrumentedFS``,
   as in bench_loaders.py) vs a sequential read of the same files.
5. A simulated training step (``time.sleep``): stall fraction per step time, and the highest
   steps/s held with < 5 % stall, for the loader, HF streaming and Ray.
6. Resume: time from ``load_state_dict`` to the first batch vs a fresh epoch's first batch.

Usage: python benchmarks/bench_training.py [--rows 1000000] [--shards 128]
       [--sections 1,2,3,4,5,6] [--baseline-rows 200000] [--latency 0.02]
       [--rss-budget-mib 32]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _fs import InstrumentedFS

import lakekit as lk
from lakekit._deps import import_if_available

BATCH = 256
WINDOW_ROWS = 65_536
FEATURES = 8  # float32 feature columns besides shard and id


# -- data ----------------------------------------------------------------------------------
def make_shards(root: Path, shards: int, rows: int, *, row_group: int = 2048,
                features: int = FEATURES) -> list[str]:
    """``shards`` parquet files of equal size: shard (int16), id (int64), f0..f{k} float32."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    per = rows // shards
    paths = []
    for s in range(shards):
        cols: dict[str, Any] = {
            "shard": np.full(per, s, np.int16),
            "id": np.arange(s * per, (s + 1) * per, dtype=np.int64),
        }
        for j in range(features):
            cols[f"f{j}"] = rng.random(per, dtype=np.float32)
        path = root / f"part-{s:04d}.parquet"
        pq.write_table(pa.table(cols), path, row_group_size=row_group, compression="snappy")
        paths.append(str(path))
    return paths


def window_loader(data: Any, *, rows: int = WINDOW_ROWS, **kw: Any) -> Any:
    """A loader whose shuffle window holds about ``rows`` rows: the budget is scaled from the
    window that a first budget gives (describe() reports it)."""
    kw = {"batch_size": BATCH, "rank": 0, "world_size": 1, "seed": 0, **kw}
    budget = 64 * 2**20
    for _ in range(3):
        loader = data.loader(memory_budget=budget, **kw)
        window = int(loader.describe().window_rows)
        if abs(window - rows) <= rows * 0.1:
            break
        budget = max(2**20, int(budget * rows / max(window, 1)))
    return loader


# -- 1. shuffle quality --------------------------------------------------------------------
def distinct_per_batch(shard_batches: Iterable[np.ndarray], limit: int | None = None) -> float:
    counts = []
    for i, shards in enumerate(shard_batches):
        if limit is not None and i >= limit:
            break
        counts.append(len(np.unique(np.asarray(shards))))
    return float(np.mean(counts)) if counts else float("nan")


def uniform_ideal(shards: int, rows: int, batch: int) -> float:
    """Expected distinct shards in a uniform random batch of ``batch`` of ``rows`` rows."""
    per = rows // shards
    # hypergeometric: P(a shard is absent) = C(rows - per, batch) / C(rows, batch)
    log_absent = sum(math.log((rows - per - k) / (rows - k)) for k in range(batch))
    return shards * (1 - math.exp(log_absent))


def hf_style_buffer(paths: list[str], buffer: int, seed: int = 0) -> Iterator[np.ndarray]:
    """HF ``IterableDataset.shuffle``: shards in random order, read in sequence, through a
    buffer of ``buffer`` rows (each new row replaces a random one, which is yielded)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    stream = np.concatenate([pq.read_table(paths[i], columns=["shard"])["shard"].to_numpy()
                             for i in order])
    buf = list(stream[:buffer])
    out: list[int] = []
    picks = rng.integers(0, buffer, len(stream))
    for k in range(buffer, len(stream)):
        j = picks[k]
        out.append(buf[j])
        buf[j] = stream[k]
        if len(out) == BATCH:
            yield np.array(out)
            out = []


def section_quality(paths: list[str], root: Path, rows: int, args: argparse.Namespace) -> None:
    ideal = uniform_ideal(len(paths), rows, BATCH)
    data = lk.dataset(root)
    loader = window_loader(data, columns=["shard"], output="numpy")
    d = loader.describe()
    lk_q = distinct_per_batch(b["shard"] for b in loader)
    results: list[tuple[str, float, str]] = [
        ("lakekit loader", lk_q, f"window {d.window_rows:,} rows "
                                 f"(memory_budget {d.memory_budget / 2**20:.1f} MiB)"),
        ("HF-style 1,000-row buffer (simulated)",
         distinct_per_batch(hf_style_buffer(paths, 1000)), "1,000 rows"),
    ]
    hf = hf_batches(paths, args.baseline_rows, shuffle=True, columns=["shard"])
    if hf is not None:
        results.append(("HF datasets streaming, shuffle(buffer_size=1000)",
                        distinct_per_batch(b["shard"] for b in hf), "1,000 rows"))
    ray_it = ray_batches(paths, args.baseline_rows, shuffle=True, columns=["shard"])
    if ray_it is not None:
        results.append(("Ray Data iter_batches(local_shuffle_buffer_size=65536)",
                        distinct_per_batch(b["shard"] for b in ray_it), "65,536 rows"))
    sweep = []  # the unit (row group) size bounds the shards a window can mix: plan only
    for rg in (512, 7_812):
        sub = Path(str(root) + f"-rg{rg}")
        make_shards(sub, len(paths), rows, row_group=rg, features=0)
        plan = window_loader(lk.dataset(sub), columns=["shard"]).describe()
        sweep.append((rg, plan))
    print(f"\n## 1. Shuffle quality: distinct source shards per batch ({rows:,} rows, "
          f"{len(paths)} shards, batch {BATCH}; uniform ideal {ideal:.1f})\n")
    print(f"describe(): shards per batch {d.shards_per_batch}, ideal "
          f"{d.ideal_shards_per_batch:.1f}, quality {d.shuffle_quality}\n")
    print("| reader | rows resident | distinct shards / batch | x ideal |\n|---|---|---:|---:|")
    for name, q, resident in results:
        print(f"| {name} | {resident} | {q:.1f} | {q / ideal:.2f} |")
    print("\nThe same loader on the same rows with other row group sizes (describe(), from "
          "the plan: no data read)\n")
    print("| row group rows | units | window rows | shards / batch (plan) | x ideal |\n"
          "|---:|---:|---:|---:|---:|")
    print(f"| 2,048 | {d.units:,} | {d.window_rows:,} | {d.shards_per_batch:.1f} | "
          f"{d.shards_per_batch / ideal:.2f} |")
    for rg, plan in sweep:
        print(f"| {rg:,} | {plan.units:,} | {plan.window_rows:,} | "
              f"{plan.shards_per_batch:.1f} | {plan.shards_per_batch / ideal:.2f} |")


# -- 2. peak RSS ---------------------------------------------------------------------------
RSS_CHILD = r"""
import sys, time, resource
import lakekit as lk
root, budget = sys.argv[1], int(sys.argv[2])
def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
loader = lk.dataset(root).loader(batch_size=256, memory_budget=budget, rank=0, world_size=1,
                                 seed=0, output="numpy")
n = len(loader)
base = vm("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM: the peak from here on
t = time.perf_counter(); rows = 0
for b in loader:
    rows += len(b["id"])
print(base, vm("VmHWM:"), rows, time.perf_counter() - t, loader.describe().window_rows)
"""


def section_rss(tmp: Path, args: argparse.Namespace) -> None:
    budget = args.rss_budget_mib * 2**20
    features = 38  # 4 x 38 + 10 bytes: ~162 B a row
    rows = 10 * budget // (4 * features + 10)
    root = tmp / "rss"
    make_shards(root, 64, rows, row_group=4096, features=features)
    on_disk = sum(p.stat().st_size for p in root.iterdir())
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(root), str(budget)],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        print(f"\n## 2. Peak RSS: the child failed\n```text\n{out.stderr[-3000:]}\n```")
        return
    base, peak, n, secs, window = out.stdout.split()
    growth = int(peak) - int(base)
    mib = 2**20
    print(f"\n## 2. Peak RSS over one epoch, memory_budget {budget // mib} MiB, data "
          f"{rows * (4 * features + 10) / mib:,.0f} MiB in memory ({on_disk / mib:,.0f} MiB "
          f"parquet, {rows:,} rows, 64 shards)\n")
    print("| RSS after planning | peak RSS | growth while iterating | budget + 64 MiB | "
          "window rows | rows | seconds |\n|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {int(base) / mib:.0f} MiB | {int(peak) / mib:.0f} MiB | {growth / mib:.0f} MiB "
          f"| {budget / mib + 64:.0f} MiB | {int(window):,} | {int(n):,} | {float(secs):.1f} |")


# -- baselines: HF datasets streaming and Ray Data -----------------------------------------
def hf_batches(paths: list[str], limit_rows: int, *, shuffle: bool,
               columns: list[str]) -> Iterator[dict[str, np.ndarray]] | None:
    datasets = import_if_available("datasets")
    if datasets is None:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ds = datasets.load_dataset("parquet", data_files=paths, split="train", streaming=True,
                               columns=columns)
    if shuffle:
        ds = ds.shuffle(seed=0, buffer_size=1000)
    ds = ds.with_format("numpy")

    def gen() -> Iterator[dict[str, np.ndarray]]:
        seen = 0
        for batch in ds.iter(batch_size=BATCH, drop_last_batch=True):
            yield batch
            seen += BATCH
            if seen >= limit_rows:
                return
    return gen()


_RAY_STARTED = False


def ray_batches(paths: list[str], limit_rows: int, *, shuffle: bool,
                columns: list[str]) -> Iterator[dict[str, np.ndarray]] | None:
    global _RAY_STARTED
    ray = import_if_available("ray")
    if ray is None:
        return None
    if not _RAY_STARTED:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
        ray.data.DataContext.get_current().enable_progress_bars = False
        _RAY_STARTED = True
    ds = ray.data.read_parquet(paths, columns=columns)
    extra = {"local_shuffle_buffer_size": WINDOW_ROWS, "local_shuffle_seed": 0} if shuffle else {}

    def gen() -> Iterator[dict[str, np.ndarray]]:
        seen = 0
        for batch in ds.iter_batches(batch_size=BATCH, batch_format="numpy", drop_last=True,
                                     **extra):
            yield batch
            seen += BATCH
            if seen >= limit_rows:
                return
    return gen()


def torch_batches(loader: Any, *, workers: int) -> Iterable[Any] | None:
    """The loader through ``torch.utils.data.DataLoader`` with ``workers`` processes."""
    torch = import_if_available("torch")
    if torch is None:
        return None
    return torch.utils.data.DataLoader(loader.torch(), batch_size=None, num_workers=workers,
                                       prefetch_factor=4)


# -- 3. feed rate --------------------------------------------------------------------------
def rate(batches: Iterable[Any], column: str = "id") -> tuple[float, int, float]:
    """(rows/s after the first batch, rows, seconds to the first batch) of draining
    ``batches``: start-up (Ray's cluster, HF's resolution) is reported apart."""
    t = time.perf_counter()
    it = iter(batches)
    rows = len(next(it)[column])
    first = time.perf_counter() - t
    t = time.perf_counter()
    steady = 0
    for b in it:
        steady += len(b[column])
    return steady / (time.perf_counter() - t), rows + steady, first


def raw_parquet(paths: list[str], columns: list[str], shuffle: bool) -> Iterator[pa.RecordBatch]:
    """pq.ParquetFile.iter_batches over the files (in a random order if ``shuffle``)."""
    order = np.random.default_rng(0).permutation(len(paths)) if shuffle else range(len(paths))
    for i in order:
        yield from pq.ParquetFile(paths[i]).iter_batches(batch_size=BATCH, columns=columns)


def section_feed(paths: list[str], root: Path, args: argparse.Namespace) -> None:
    cols = ["id", *[f"f{j}" for j in range(FEATURES)]]
    data = lk.dataset(root)
    rows: list[tuple[str, float, int, float]] = []

    def add(name: str, batches: Iterable[Any] | None) -> None:
        if batches is not None:
            rows.append((name, *rate(batches)))

    add("raw pq.ParquetFile.iter_batches (files in order)", raw_parquet(paths, cols, False))
    add("raw pq.ParquetFile.iter_batches (files shuffled)", raw_parquet(paths, cols, True))
    add("lakekit loader, unshuffled (arrow)",
        data.loader(columns=cols, batch_size=BATCH, shuffle=False, rank=0, world_size=1,
                    output="arrow"))
    add("lakekit loader, shuffled (arrow)", window_loader(data, columns=cols, output="arrow"))
    add("lakekit loader, shuffled (numpy)", window_loader(data, columns=cols, output="numpy"))
    add("lakekit loader.torch(), shuffled, DataLoader(num_workers=2)",
        torch_batches(window_loader(data, columns=cols), workers=2))
    add(f"HF datasets streaming, no shuffle (first {args.baseline_rows:,} rows)",
        hf_batches(paths, args.baseline_rows, shuffle=False, columns=cols))
    add(f"HF datasets streaming, shuffle(1000) (first {args.baseline_rows:,} rows)",
        hf_batches(paths, args.baseline_rows, shuffle=True, columns=cols))
    add(f"Ray iter_batches, no shuffle (first {args.baseline_rows:,} rows)",
        ray_batches(paths, args.baseline_rows, shuffle=False, columns=cols))
    add(f"Ray iter_batches, local shuffle 65,536 (first {args.baseline_rows:,} rows)",
        ray_batches(paths, args.baseline_rows, shuffle=True, columns=cols))
    raw_in_order, raw_shuffled = rows[0][1], rows[1][1]
    print(f"\n## 3. Feed rate: rows/s, {len(cols)} columns, batch {BATCH}, local disk\n")
    print("rows/s after the first batch; the first batch's wait in its own column\n")
    print("| reader | rows | rows/s | x raw (in order) | x raw (shuffled files) | first batch s |"
          "\n|---|---:|---:|---:|---:|---:|")
    for name, r, n, first in rows:
        print(f"| {name} | {n:,} | {r:,.0f} | {r / raw_in_order:.2f} | {r / raw_shuffled:.2f} "
              f"| {first:.2f} |")


# -- 4. latency-bound filesystem -----------------------------------------------------------
def section_latency(tmp: Path, args: argparse.Namespace) -> None:
    root = tmp / "latency"
    paths = make_shards(root, 32, args.rows // 5, row_group=args.rows // 5 // 32 // 4)
    cols = ["id", "f0", "f1"]
    fs = InstrumentedFS(latency=args.latency)
    uris = [f"bench://{p}" for p in paths]
    out = []

    def run(name: str, make: Callable[[], Iterable[Any]]) -> None:
        """Requests to open and plan (``make()``), then requests of one pass over it."""
        fs.reset()
        t = time.perf_counter()
        batches = make()
        # a loader is planned now; an iterator plans lazily, in its epoch
        planning = fs.requests if hasattr(batches, "describe") else None
        fs.reset()
        n = sum(len(b["id"]) for b in batches)
        out.append((name, planning, fs.requests, time.perf_counter() - t, n))

    run("sequential read: lk.dataset(...).iter_batches",
        lambda: lk.dataset(uris, filesystem=fs).iter_batches(columns=cols, batch_size=BATCH))
    run("sequential read: pq.ParquetFile.iter_batches per file",
        lambda: (b for p in paths for b in pq.ParquetFile(fs.open(p, "rb"))
                 .iter_batches(batch_size=BATCH, columns=cols)))
    run("lakekit loader, unshuffled",
        lambda: lk.dataset(uris, filesystem=fs).loader(
            columns=cols, batch_size=BATCH, shuffle=False, rank=0, world_size=1))
    run("lakekit loader, shuffled (window ~64Ki rows)",
        lambda: window_loader(lk.dataset(uris, filesystem=fs), columns=cols))
    base = out[0][2]
    print(f"\n## 4. {args.latency * 1000:.0f} ms per request: requests per epoch "
          f"({len(paths)} shards, 4 row groups each, {len(cols)} columns)\n")
    print("A loader plans once (listing, footers) and then reads epochs; the sequential reads "
          "plan as they go, so their epoch includes their footers.\n")
    print("| reader | planning requests (once) | requests per epoch | x sequential (lakekit) "
          "| seconds | rows |\n|---|---:|---:|---:|---:|---:|")
    for name, planning, req, secs, n in out:
        plan_txt = "-" if planning is None else str(planning)
        print(f"| {name} | {plan_txt} | {req} | {req / base:.2f} | {secs:.1f} | {n:,} |")


# -- 5. simulated training step ------------------------------------------------------------
def stall(batches: Iterable[Any], step: float, steps: int) -> float:
    """Fraction of the wall time spent waiting for the next batch, over ``steps`` steps of
    ``step`` seconds (the first batch's wait excluded: start-up is section 6)."""
    it = iter(batches)
    next(it)
    waited = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            break
        waited += time.perf_counter() - t
        time.sleep(step)
    return waited / (time.perf_counter() - t0)


def section_stall(paths: list[str], root: Path, args: argparse.Namespace) -> None:
    cols = ["id", *[f"f{j}" for j in range(FEATURES)]]
    data = lk.dataset(root)
    step_ms = [0.5, 1, 2, 4, 8, 16, 32, 64]
    readers: list[tuple[str, Callable[[], Iterable[Any] | None]]] = [
        ("lakekit loader, shuffled (numpy)",
         lambda: window_loader(data, columns=cols, output="numpy")),
        ("lakekit loader.torch(), DataLoader(num_workers=2)",
         lambda: torch_batches(window_loader(data, columns=cols), workers=2)),
        ("HF datasets streaming, shuffle(1000)",
         lambda: hf_batches(paths, 10**9, shuffle=True, columns=cols)),
        ("Ray iter_batches, local shuffle 65,536",
         lambda: ray_batches(paths, 10**9, shuffle=True, columns=cols)),
    ]
    print(f"\n## 5. Simulated training step (time.sleep), batch {BATCH}: stall fraction "
          f"over {args.steps} steps\n")
    print("| reader | " + " | ".join(f"{s} ms" for s in step_ms)
          + " | highest steps/s with < 5 % stall |\n|---|" + "---:|" * (len(step_ms) + 1))
    for name, make in readers:
        fractions = []
        for s in step_ms:
            batches = make()
            if batches is None:
                break
            fractions.append(stall(batches, s / 1000, args.steps))
        if not fractions:
            continue
        ok = [s for s, f in zip(step_ms, fractions, strict=False) if f < 0.05]
        best = f"{1000 / min(ok):,.0f}" if ok else f"< {1000 / step_ms[-1]:,.0f}"
        print(f"| {name} | " + " | ".join(f"{f:.1%}" for f in fractions) + f" | {best} |")


# -- 6. resume -----------------------------------------------------------------------------
def section_resume(root: Path, args: argparse.Namespace) -> None:
    cols = ["id", *[f"f{j}" for j in range(FEATURES)]]
    data = lk.dataset(root)
    probe = window_loader(data, columns=cols)
    budget = probe.describe().memory_budget
    kw = {"columns": cols, "batch_size": BATCH, "rank": 0, "world_size": 1, "seed": 0,
          "memory_budget": budget}
    mid = len(probe) * 3 // 5
    state = None
    for i, _ in enumerate(probe):
        if i + 1 == mid:
            state = probe.state_dict()
            break
    fresh, resumed = [], []
    for _ in range(3):
        loader = data.loader(**kw)
        t = time.perf_counter()
        loader.set_epoch(0)
        next(iter(loader))
        fresh.append(time.perf_counter() - t)
        loader = data.loader(**kw)
        t = time.perf_counter()
        loader.load_state_dict(state)
        next(iter(loader))
        resumed.append(time.perf_counter() - t)
    f, r = min(fresh), min(resumed)
    print(f"\n## 6. Resume at batch {mid:,} of {len(probe):,}: time to the first batch "
          "(best of 3)\n")
    print("| start | seconds | x fresh |\n|---|---:|---:|")
    print(f"| fresh epoch (set_epoch) | {f:.3f} | 1.00 |")
    print(f"| load_state_dict mid-epoch | {r:.3f} | {r / f:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=128)
    ap.add_argument("--row-group", type=int, default=512,
                    help="rows per row group of the main data (the shuffle's unit)")
    ap.add_argument("--sections", default="1,2,3,4,5,6")
    ap.add_argument("--baseline-rows", type=int, default=200_000,
                    help="rows read by the HF / Ray baselines (they are slower)")
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--rss-budget-mib", type=int, default=32)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    sections = {int(s) for s in args.sections.split(",")}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    print(f"# bench_training.py: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"commit {commit}, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        root = tmp / "shards"
        paths = make_shards(root, args.shards, args.rows,
                            row_group=args.row_group) if sections - {2, 4} else []
        if 1 in sections:
            section_quality(paths, root, args.rows // args.shards * args.shards, args)
        if 3 in sections:
            section_feed(paths, root, args)
        if 5 in sections:
            section_stall(paths, root, args)
        if 6 in sections:
            section_resume(root, args)
        if 4 in sections:
            section_latency(tmp, args)
        if 2 in sections:
            section_rss(tmp, args)


if __name__ == "__main__":
    main()
