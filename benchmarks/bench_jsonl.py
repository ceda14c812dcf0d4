"""JSONL benchmark (issue 2, benchmark 4). Prints Markdown tables with ratios.

1. Throughput (MB/s of uncompressed JSON text) reading realistic, nesting-free events into
   memory: lakekit (``lk.load``, to a pyarrow Table) vs ``polars.read_ndjson`` (the
   target: at least as fast), a ``json.loads`` loop building a pyarrow Table, and one
   ``pyarrow.json.read_json`` call on the whole file (pyarrow's own speed, no streaming).
   On a plain ``.jsonl`` and the same data as ``.jsonl.gz``.
2. Memory: peak RSS of a fresh process iterating ``lk.dataset(path).iter_batches()`` over a
   file of at least 1 GB (target: under 300 MB), beside the same process doing nothing
   and ``polars.read_ndjson`` of the whole file.

3. Nested: the same events with a list of strings and a struct holding a list and a
   nested struct (``--nested-mb``), lakekit vs polars vs lakekit with its native parser off.

Usage: python benchmarks/bench_jsonl.py [--size-mb 256] [--rss-size-mb 1100] [--repeat 3]
       [--loads-mb 32] [--nested-mb 128] [--dir DIR] [--no-rss] [--no-throughput]
       [--no-nested]
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pj

import lakekit as lk

KINDS = ["view", "click", "add_to_cart", "purchase", "signup", "logout"]
COUNTRIES = ["US", "DE", "FR", "JP", "BR", "IN", "GB", "NG", "MX", "KR"]


def events(n: int, start: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` realistic events: ids, timestamps, amounts, categories, free text, nulls."""
    referrer = [f"https://shop.example.com/p/{p}" for p in rng.integers(1, 50_000, n)]
    missing = rng.random(n) < 0.3
    return pl.DataFrame({
        "event_id": np.arange(start, start + n, dtype=np.int64),
        "user_id": rng.integers(1, 5_000_000, n),
        "session": [f"{s:016x}" for s in rng.integers(0, 1 << 62, n)],
        "kind": rng.choice(KINDS, n),
        "ts_ms": 1_700_000_000_000 + np.arange(start, start + n, dtype=np.int64) * 37,
        "price": np.round(rng.gamma(2.0, 20.0, n), 2),
        "quantity": rng.integers(1, 10, n),
        "country": rng.choice(COUNTRIES, n),
        "ok": rng.random(n) < 0.95,
        "referrer": pl.Series(referrer).set(pl.Series(missing), None),
        "latency_ms": rng.exponential(80.0, n),
    })


def write_jsonl(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """Write at least ``size_mb`` MB of events as JSON Lines; returns the byte size."""
    rng = np.random.default_rng(seed)
    target = int(size_mb * 1e6)
    written = start = 0
    with open(path, "wb") as out:
        while written < target:
            n = 50_000
            text = events(n, start, rng).write_ndjson().encode()
            out.write(text)
            written += len(text)
            start += n
    return written


def gzip_copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as f, gzip.open(dst, "wb", compresslevel=6) as g:
        shutil.copyfileobj(f, g, 16 << 20)


def json_loads_table(path: Path) -> pa.Table:
    """The baseline people write: json.loads per line, then a pyarrow table."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return pa.Table.from_pylist(rows)


def pyarrow_path_load(path: Path) -> pa.Table:
    """``lk.load`` with the native parser off: what lakekit read at before it."""
    os.environ["LAKEKIT_NATIVE_JSONL"] = "0"
    try:
        return lk.load(path)
    finally:
        del os.environ["LAKEKIT_NATIVE_JSONL"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


Timings = dict[str, list[tuple[float, float]]]


def time_best(fns: dict[str, Callable[[], Any]], repeat: int) -> Timings:
    """(wall, CPU) seconds per call, rounds interleaved so background load hits all alike."""
    times: Timings = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            c0, t0 = cpu_seconds(), time.perf_counter()
            result = fn()
            times[name].append((time.perf_counter() - t0, cpu_seconds() - c0))
            del result
    return times


def throughput(root: Path, size_mb: float, loads_mb: float, repeat: int) -> list[str]:
    plain = root / "events.jsonl"
    nbytes = write_jsonl(plain, size_mb)
    gz = root / "events.jsonl.gz"
    gzip_copy(plain, gz)
    small = root / "small.jsonl"
    small_bytes = write_jsonl(small, loads_mb, seed=1)
    expected = lk.load(plain).num_rows
    assert pl.read_ndjson(plain).height == expected == lk.load(gz).num_rows
    lines = [
        f"Data: {nbytes / 1e6:,.0f} MB of JSON Lines, {expected:,} events x 11 fields "
        f"(ints, floats, strings, bool, nulls); the .jsonl.gz of it: "
        f"{gz.stat().st_size / 1e6:,.0f} MB. The json.loads loop reads a "
        f"{small_bytes / 1e6:,.0f} MB file of the same events. MB = 10^6 bytes of "
        f"uncompressed JSON. MB/s: best of {repeat} (median); CPU: process CPU seconds "
        "(all threads) per GB of JSON, lower is better.",
        "",
        "| file | reader | MB/s | CPU s/GB | MB/s vs polars |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    loads_label = "`json.loads` loop -> `pa.Table.from_pylist`"
    for path in (plain, gz):
        fns: dict[str, Callable[[], Any]] = {
            "lakekit `lk.load` (to arrow)": lambda p=path: lk.load(p),
            "`polars.read_ndjson`": lambda p=path: pl.read_ndjson(p),
        }
        fns["lakekit, native parser off (its pyarrow.json path)"] = (
            lambda p=path: pyarrow_path_load(p))
        if path == plain:
            fns["`pyarrow.json.read_json` (whole file)"] = lambda p=path: pj.read_json(p)
        times = time_best(fns, repeat)
        loads_file = small if path == plain else _gz(small, root)
        times[loads_label] = time_best({"loads": lambda f=loads_file: json_loads_table(f)},
                                       1)["loads"]
        sizes = {name: nbytes for name in times} | {loads_label: small_bytes}
        lines += [f"| `{path.name}` {row}" for row in rate_rows(times, sizes)]
    return lines


def rate_rows(times: Timings, sizes: dict[str, int]) -> list[str]:
    """``| reader | MB/s best (median) | CPU s/GB | vs polars |`` per timed reader."""
    best = {name: sizes[name] / 1e6 / min(w for w, _ in t) for name, t in times.items()}
    polars = best["`polars.read_ndjson`"]
    rows = []
    for name, t in times.items():
        median = sizes[name] / 1e6 / statistics.median(w for w, _ in t)
        cpu = min(c for _, c in t) / (sizes[name] / 1e9)
        rows.append(f"| {name} | {best[name]:,.0f} ({median:,.0f}) | {cpu:,.1f} | "
                    f"{best[name] / polars:.2f}x |")
    return rows


def write_nested(path: Path, size_mb: float) -> int:
    """Events with nested fields: ``tags`` (list of strings), ``ctx`` (a struct of a
    string, a list of ints and a struct of two floats)."""
    rng = np.random.default_rng(2)
    target = int(size_mb * 1e6)
    written = start = 0
    with open(path, "wb") as out:
        while written < target:
            n = 50_000
            frame = events(n, start, rng).with_columns(
                tags=pl.Series([list(rng.choice(KINDS, k)) for k in rng.integers(0, 4, n)]),
                ctx=pl.struct(
                    ua=pl.Series([f"agent/{v}" for v in rng.integers(1, 90, n)]),
                    ab=pl.Series([list(rng.integers(0, 9, k)) for k in rng.integers(0, 3, n)]),
                    geo=pl.struct(lat=pl.Series(rng.uniform(-90, 90, n)),
                                  lon=pl.Series(rng.uniform(-180, 180, n))),
                ),
            )
            text = frame.write_ndjson().encode()
            out.write(text)
            written += len(text)
            start += n
    return written


def nested(root: Path, size_mb: float, repeat: int) -> list[str]:
    path = root / "nested.jsonl"
    nbytes = write_nested(path, size_mb)
    rows = lk.load(path).num_rows
    assert pl.read_ndjson(path).height == rows
    assert lk.load(path).equals(pyarrow_path_load(path))
    times = time_best({
        "lakekit `lk.load` (to arrow)": lambda: lk.load(path),
        "`polars.read_ndjson`": lambda: pl.read_ndjson(path),
        "lakekit, native parser off (its pyarrow.json path)": lambda: pyarrow_path_load(path),
    }, repeat)
    lines = [
        f"Data: {nbytes / 1e6:,.0f} MB, {rows:,} events: the 11 fields above plus `tags` "
        "(list of strings) and `ctx` (struct of a string, a list of ints and a struct of "
        f"two floats). Best of {repeat} (median).",
        "",
        "| reader | MB/s | CPU s/GB | MB/s vs polars |",
        "| --- | ---: | ---: | ---: |",
    ]
    return lines + rate_rows(times, {name: nbytes for name in times})


def _gz(src: Path, root: Path) -> Path:
    dst = root / (src.name + ".gz")
    if not dst.exists():
        gzip_copy(src, dst)
    return dst


CHILD = r"""
import json, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
rows = 0
if mode == "lakekit":
    import lakekit as lk
    for batch in lk.dataset(path).iter_batches():
        rows += batch.num_rows
elif mode == "polars":
    import polars as pl
    rows = pl.read_ndjson(path).height
else:
    import lakekit as lk
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0, "hwm": hwm()}))
"""


def peak_rss(root: Path, size_mb: float) -> list[str]:
    big = root / "big.jsonl"
    nbytes = write_jsonl(big, size_mb, seed=2)
    results = {}
    for mode in ("import", "lakekit", "polars"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode, str(big)],
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"the {mode} child failed:\n{out.stderr}")
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    lk_res = results["lakekit"]
    assert lk_res["rows"] == results["polars"]["rows"], results
    base = results["import"]["hwm"]
    return [
        f"File: {nbytes / 1e6:,.0f} MB plain JSON Lines, {lk_res['rows']:,} events; peak RSS "
        "(VmHWM) of a fresh Python process.",
        "",
        "| process | peak RSS | time | vs lakekit |",
        "| --- | ---: | ---: | ---: |",
        f"| `import lakekit` only | {base / 2**20:,.0f} MiB | - | "
        f"{base / lk_res['hwm']:.2f}x |",
        f"| lakekit `iter_batches()` over the file | {lk_res['hwm'] / 2**20:,.0f} MiB | "
        f"{lk_res['seconds']:.1f} s ({nbytes / 1e6 / lk_res['seconds']:,.0f} MB/s) | 1.00x |",
        f"| `polars.read_ndjson` (whole file in memory) | "
        f"{results['polars']['hwm'] / 2**20:,.0f} MiB | {results['polars']['seconds']:.1f} s | "
        f"{results['polars']['hwm'] / lk_res['hwm']:.2f}x |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=256, help="throughput file size")
    ap.add_argument("--rss-size-mb", type=float, default=1100, help="peak-RSS file size")
    ap.add_argument("--loads-mb", type=float, default=32, help="json.loads baseline file size")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS benchmark")
    ap.add_argument("--no-throughput", action="store_true", help="skip the throughput one")
    ap.add_argument("--nested-mb", type=float, default=128, help="nested file size")
    ap.add_argument("--no-nested", action="store_true", help="skip the nested one")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_jsonl_", dir=args.dir))
    try:
        print(f"{datetime.date.today()}; {platform.machine()}, {os.cpu_count()} cores, "
              f"python {platform.python_version()}, pyarrow {pa.__version__}, "
              f"polars {pl.__version__}\n")
        if not args.no_throughput:
            print("### Throughput\n")
            print("\n".join(throughput(root, args.size_mb, args.loads_mb, args.repeat)))
        if not args.no_nested:
            print("\n### Nested fields\n")
            print("\n".join(nested(root, args.nested_mb, args.repeat)))
        if not args.no_rss:
            print("\n### Peak memory of iter_batches\n")
            print("\n".join(peak_rss(root, args.rss_size_mb)))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
