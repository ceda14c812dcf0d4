"""Versioned-table benchmarks (issue 3). Prints Markdown tables with ratios.

1. Time travel cost: a table with 1,000 small append commits (lakekit writes, so a
   checkpoint every 10 commits). Opening and reading version 10, version 505 (between
   two checkpoints) and the latest, each with a fresh ``lk.Table`` (a new process pays the same log
   replay), and ``history()``. Target: old-version reads within 1.5x of latest reads.
   Baseline: the same 1,000 commits written with checkpoints turned off, where every open
   replays the whole JSON log.
1b. Time travel on overwrites (issue 14): 1,000 commits that each replace the table with a
   version of the same size (``--overwrite-mb``, 100 by default). Open and read of version
   10, version 500 and the latest, with deltalake's own open of each version beside them.
   Targets: read <= 1.2x and open <= 1.5x the latest's. Local disk, and the moto S3 server
   (``--s3-endpoint`` of a running one, or ``--s3-overwrites`` to start one).
2. Concurrent appends: 4 writer processes appending to one table on the moto S3 server
   at once (conditional put), against 1 process doing the same number of commits alone.
   Commits per second, deltalake's commit retries (from ``history()`` metrics), and a
   check that every row is present exactly once.

Usage: python benchmarks/bench_tables.py [--commits 1000] [--writers 4] [--appends 25]
       [--repeat 5] [--s3-commits 0] [--skip travel|concurrent|overwrites]
       [--overwrite-mb 100] [--keep DIR] [--s3-overwrites] [--s3-endpoint URL] [--no-local]

The overwrite table is built once per ``--keep`` directory (and once per moto server), so
the same table can be measured by two checkouts of lakekit (``PYTHONPATH=...``), e.g.
before and after a change; its script uses only lakekit's public API.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, PostCommitHookProperties, write_deltalake

import lakekit as lk


def batch(start: int, n: int, writer: int = 0) -> pa.Table:
    return pa.table({
        "id": pa.array(range(start, start + n), pa.int64()),
        "writer": pa.array([writer] * n, pa.int64()),
        "value": pa.array([float(i) for i in range(start, start + n)]),
    })


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``repeat`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- 1. time travel ------------------------------------------------------------------------

def build_tables(root: str, commits: int, options: dict[str, Any] | None) -> tuple[str, str]:
    """The same commits twice: through lakekit (checkpoints) and with checkpoints off."""
    with_cp, without_cp = f"{root}/with_checkpoints", f"{root}/no_checkpoints"
    t = lk.Table(with_cp, storage_options=options)
    delta_opts = t.location.delta_storage_options() or None  # the benchmark's own baseline
    base_uri = lk.Table(without_cp, storage_options=options).location.delta_uri()
    no_cp = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)
    t0 = time.perf_counter()
    write_deltalake(base_uri, batch(0, 10), storage_options=delta_opts,
                    post_commithook_properties=no_cp)
    base = DeltaTable(base_uri, storage_options=delta_opts)  # kept open: no full replays
    t.write(batch(0, 10))
    for i in range(1, commits):
        t.write(batch(i * 10, 10))
        write_deltalake(base, batch(i * 10, 10), mode="append", post_commithook_properties=no_cp)
    print(f"built 2 x {commits} commits in {time.perf_counter() - t0:.1f}s")
    return with_cp, without_cp


def bench_time_travel(root: str, commits: int, repeat: int,
                      options: dict[str, Any] | None, where: str) -> None:
    with_cp, without_cp = build_tables(root, commits, options)
    latest = commits - 1
    mid = commits // 2 + 5  # between two checkpoints: the worst case replays 9 commits
    versions = [10, mid, latest]

    def open_at(uri: str, v: int) -> Callable[[], Any]:
        return lambda: lk.Table(uri, storage_options=options).dataset(v)

    def read_at(uri: str, v: int) -> Callable[[], Any]:
        return lambda: lk.Table(uri, storage_options=options).read(v)

    probe = lk.Table(with_cp, storage_options=options).location
    engine_uri, engine_opts = probe.delta_uri(), probe.delta_storage_options() or None

    def engine_at(v: int) -> Callable[[], Any]:
        return lambda: DeltaTable(engine_uri, version=v, storage_options=engine_opts)

    rows = []
    results: dict[tuple[str, int], float] = {}
    opens: dict[tuple[str, int], float] = {}
    for label, uri in (("lakekit (checkpoints)", with_cp), ("no checkpoints", without_cp)):
        for v in versions:
            o = timed(open_at(uri, v), repeat)
            r = timed(read_at(uri, v), repeat)
            results[(label, v)], opens[(label, v)] = r, o
            rows.append((label, v, o, r))
    engine = {v: timed(engine_at(v), repeat) for v in versions}
    at10 = next(c.timestamp for c in lk.Table(with_cp, storage_options=options).history()
                if c.version == 10)
    as_of = timed(lambda: lk.Table(with_cp, storage_options=options).dataset(as_of=at10), repeat)
    hist = timed(lambda: lk.Table(with_cp, storage_options=options).history(), repeat)
    hist_base = timed(lambda: lk.Table(without_cp, storage_options=options).history(), repeat)

    print(f"\n### 1. Time travel on {commits:,} small commits ({where}; median of {repeat})\n")
    print("| table | version | files | open (log replay) | open vs latest | full read "
          "| read vs latest |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ref_open = opens[("lakekit (checkpoints)", latest)]
    ref_read = results[("lakekit (checkpoints)", latest)]
    for label, v, o, r in rows:
        print(f"| {label} | {v}{' (latest)' if v == latest else ''} | {v + 1} | "
              f"{o * 1000:.1f} ms | {o / ref_open:.2f}x | {r * 1000:.1f} ms | "
              f"{r / ref_read:.2f}x |")
    print("\nThe engine alone, `deltalake.DeltaTable(uri, version=v)` on the lakekit table: "
          + ", ".join(f"v{v} {engine[v] * 1000:.1f} ms ({engine[v] / engine[latest]:.2f}x)"
                      for v in versions)
          + ". lakekit's open of an older version is that open plus one existence check "
          "of one data file (issue 14).")
    print(f"\nOpen by `as_of=` (version 10's commit time; a binary search over commit "
          f"times): {as_of * 1000:.1f} ms, {as_of / opens[('lakekit (checkpoints)', 10)]:.2f}x "
          "the open by version number.")
    print(f"\n`history()` of {commits:,} commits: {hist * 1000:.0f} ms "
          f"(no-checkpoint baseline: {hist_base * 1000:.0f} ms)")
    lk_label = "lakekit (checkpoints)"
    r10, rmid = (results[(lk_label, v)] / ref_read for v in (10, mid))
    o10, omid = (opens[(lk_label, v)] / ref_open for v in (10, mid))
    ok = "met" if max(r10, rmid, o10, omid) <= 1.5 else "NOT met"
    print(f"\nread: version 10 / latest {r10:.2f}x, version {mid} / latest {rmid:.2f}x; "
          f"open: {o10:.2f}x and {omid:.2f}x (target <= 1.5x: {ok})")
    base_latest = results[("no checkpoints", latest)]
    print(f"latest read without checkpoints / with: "
          f"{base_latest / results[('lakekit (checkpoints)', latest)]:.2f}x")


# -- 1b. time travel on overwrites --------------------------------------------------------

def build_overwrites(uri: str, options: dict[str, Any] | None, commits: int, mb: int,
                     readable: set[int]) -> None:
    """``commits`` versions, each an overwrite by one parquet file of about ``mb`` MB.

    Version 0 is written by deltalake; versions 1.. commit, with lakekit's table settings
    (a checkpoint every 10 commits), add actions of files with version 0's bytes: local
    files are hard links of it (every version is readable, no disk is used), on S3 only
    the versions in ``readable`` get their copy (the others' files are never read). The
    log is exactly that of 1,000 overwrites of ``mb`` MB.
    """
    import numpy as np
    from deltalake.transaction import AddAction

    loc = lk.Table(uri, storage_options=options).location
    delta_uri, delta_opts = loc.delta_uri(), loc.delta_storage_options() or None
    table = lk.Table(uri, storage_options=options)
    if table.exists:
        if table.version != commits - 1:
            raise SystemExit(f"{loc.url} holds another table; remove it or change --keep")
        print(f"reusing {commits} overwrites at {loc.url}")
        return
    rows = mb * (1 << 20) // 16
    rng = np.random.default_rng(14)
    data = pa.table({"id": pa.array(rng.integers(0, 1 << 62, rows)),
                     "value": pa.array(rng.random(rows))})
    cp = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)
    t0 = time.perf_counter()
    write_deltalake(delta_uri, data, storage_options=delta_opts,
                    configuration={"delta.checkpointInterval": "10"},
                    post_commithook_properties=cp)
    del data
    dt = DeltaTable(delta_uri, storage_options=delta_opts)
    first = pa.table(dt.get_add_actions(flatten=True)).to_pylist()[0]
    template, size = f"{loc.path.rstrip('/')}/{first['path']}", int(first["size_bytes"])
    stats = json.dumps({"numRecords": int(first["num_records"])})
    fs = loc.fs
    for v in range(1, commits):
        name = f"overwrite-{v:05d}.parquet"
        target = f"{loc.path.rstrip('/')}/{name}"
        if "://" not in uri:
            os.link(template, target)
        elif v in readable:
            fs.copy(template, target)
        add = AddAction(name, size, {}, int(time.time() * 1000), True, stats)
        dt.create_write_transaction([add], "overwrite", dt.schema(),
                                    post_commithook_properties=cp)
        dt.update_incremental()
    print(f"built {commits} overwrites of {size / 1e6:.0f} MB at {loc.url} in "
          f"{time.perf_counter() - t0:.1f}s")


def bench_overwrites(uri: str, options: dict[str, Any] | None, commits: int, mb: int,
                     repeat: int, where: str) -> None:
    latest = commits - 1
    versions = [10, commits // 2, latest]
    build_overwrites(uri, options, commits, mb, set(versions))
    loc = lk.Table(uri, storage_options=options).location
    delta_uri, delta_opts = loc.delta_uri(), loc.delta_storage_options() or None

    def ask(v: int) -> int | None:
        return None if v == latest else v  # the latest: opened as a reader opens it

    calls: dict[tuple[str, int], Callable[[], Any]] = {}
    for v in versions:
        at = ask(v)
        calls[("engine", v)] = lambda at=at: DeltaTable(delta_uri, version=at,
                                                        storage_options=delta_opts)
        calls[("open", v)] = lambda at=at: lk.Table(uri, storage_options=options).dataset(at)
        calls[("read", v)] = lambda at=at: lk.Table(uri, storage_options=options).read(at)
    # round-robin, so that a load change on a shared machine hits every version alike
    samples: dict[tuple[str, int], list[float]] = {k: [] for k in calls}
    for fn in calls.values():
        fn()
    for _ in range(repeat):
        for key, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(ts) for k, ts in samples.items()}
    rows = [(v, med[("engine", v)], med[("open", v)], med[("read", v)]) for v in versions]
    size = sum(e.size or 0 for e in lk.Table(uri, storage_options=options).dataset(10).entries)
    e0, o0, r0 = rows[-1][1:]
    print(f"\n### 1b. Time travel on {commits:,} overwrites of {size / 1e6:.0f} MB ({where}; "
          f"median of {repeat})\n")
    print("| version | deltalake open | vs latest | lakekit open | vs latest | lakekit read "
          "| vs latest |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for v, e, o, r in rows:
        print(f"| {v}{' (latest)' if v == latest else ''} | {e * 1000:.1f} ms | "
              f"{e / e0:.2f}x | {o * 1000:.1f} ms | {o / o0:.2f}x | {r * 1000:.0f} ms | "
              f"{r / r0:.2f}x |")
    if options is not None:
        count_requests(uri, options, versions, latest)
    worst_open = max(o / o0 for _, _, o, _ in rows)
    worst_read = max(r / r0 for _, _, _, r in rows)
    print(f"\nworst: open {worst_open:.2f}x (target <= 1.5x: "
          f"{'met' if worst_open <= 1.5 else 'NOT met'}), read {worst_read:.2f}x (target "
          f"<= 1.2x: {'met' if worst_read <= 1.2 else 'NOT met'})")


# -- 2. concurrent appends -----------------------------------------------------------------

def _writer(uri: str, options: dict[str, Any], writer: int, appends: int,
            ready: Any, go: Any, out: Any) -> None:
    t = lk.Table(uri, storage_options=options)
    _ = t.version  # load the log before the clock starts
    ready.put(writer)
    go.wait(120)
    t0 = time.perf_counter()
    for i in range(appends):
        t.write(batch(writer * 1_000_000 + i * 10, 10, writer))
    out.put((writer, time.perf_counter() - t0))


def run_writers(uri: str, options: dict[str, Any], writers: int, appends: int) -> float:
    """Wall seconds from 'go' until the last writer finished."""
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_writer, args=(uri, options, w, appends, ready, go, out))
             for w in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=180)
    t0 = time.perf_counter()
    go.set()
    for _ in procs:
        out.get(timeout=600)
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise SystemExit(f"writer exited with {p.exitcode}")
    return wall


def check_table(
    uri: str, options: dict[str, Any], writers: int, appends: int
) -> tuple[int, int, int, bool]:
    t = lk.Table(uri, storage_options=options)
    history = t.history()
    writes = [c for c in history if c.operation == "WRITE" and c.version > 0]
    retries = [int(c.metrics.get("num_retries", 0)) for c in writes]
    got = sorted(t.read(columns=["id"]).column("id").to_pylist())
    want = sorted([-1] + [w * 1_000_000 + i * 10 + k for w in range(writers)
                          for i in range(appends) for k in range(10)])
    consecutive = [c.version for c in history] == list(range(t.version, -1, -1))
    return len(writes), sum(retries), max(retries, default=0), got == want and consecutive


def bench_concurrent(writers: int, appends: int) -> None:
    from lakekit.local_servers import moto_s3_server

    with moto_s3_server() as s3:
        s3.create_bucket("bench")
        options = s3.storage_options
        rows = []
        for n, per in ((1, writers * appends), (writers, appends)):
            uri = f"s3://bench/appends_{n}"
            lk.Table(uri, storage_options=options).write(batch(-1, 1, -1))
            wall = run_writers(uri, options, n, per)
            commits, retries, worst, ok = check_table(uri, options, n, per)
            rows.append((n, commits, wall, retries, worst, ok))
    print(f"\n### 2. Concurrent appends on the moto S3 server ({writers} x {appends} commits)\n")
    print("| writers | commits | wall | commits/s | vs 1 writer | deltalake commit retries "
          "(total / max per commit) | every row once, versions consecutive |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    base = rows[0][1] / rows[0][2]
    for n, commits, wall, retries, worst, ok in rows:
        rate = commits / wall
        print(f"| {n} | {commits} | {wall:.1f} s | {rate:.1f} | {rate / base:.2f}x | "
              f"{retries} / {worst} | {'yes' if ok else 'NO'} |")


def count_requests(uri: str, options: dict[str, Any], versions: list[int],
                   latest: int) -> None:
    """S3 requests of one open / read of each version (through a counting proxy, untimed)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _support.s3proxy import counting_proxy

    endpoint = options["client_kwargs"]["endpoint_url"]
    print("\n| version | S3 requests: deltalake open | lakekit open | lakekit read "
          "(of which data file) |")
    print("| ---: | --- | --- | --- |")
    with counting_proxy(endpoint) as proxy:
        via = proxy.options(options)
        loc = lk.Table(uri, storage_options=via).location
        delta_uri, delta_opts = loc.delta_uri(), loc.delta_storage_options() or None

        def count(fn: Callable[[], Any]) -> tuple[str, int]:
            proxy.reset()
            fn()
            reqs = proxy.requests
            kinds: dict[str, int] = {}
            for r in reqs:
                kind = ("LIST" if "/" not in r.key else "HEAD" if r.method == "HEAD"
                        else "GET")
                kinds[kind] = kinds.get(kind, 0) + 1
            data = sum(1 for r in reqs if "/_delta_log/" not in r.key and "/" in r.key)
            text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            return f"{len(reqs)} ({text})", data

        for v in versions:
            at = None if v == latest else v
            e, _ = count(lambda at=at: DeltaTable(delta_uri, version=at,
                                                  storage_options=delta_opts))
            o, _ = count(lambda at=at: lk.Table(uri, storage_options=via).dataset(at))
            r, data = count(lambda at=at: lk.Table(uri, storage_options=via).read(at))
            print(f"| {v}{' (latest)' if v == latest else ''} | {e} | {o} | {r} ({data}) |")


def run_overwrites(args: argparse.Namespace) -> None:
    from lakekit.local_servers import S3Server, moto_s3_server

    if args.no_local:
        pass
    elif args.keep:
        bench_overwrites(f"{args.keep}/overwrites", None, args.commits, args.overwrite_mb,
                         args.repeat, "local disk")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            bench_overwrites(f"{tmp}/overwrites", None, args.commits, args.overwrite_mb,
                             args.repeat, "local disk")
    if args.s3_endpoint:
        import s3fs

        s3 = S3Server(args.s3_endpoint)
        if not s3fs.S3FileSystem(skip_instance_cache=True, **s3.storage_options).exists("travel"):
            s3.create_bucket("travel")
        bench_overwrites("s3://travel/overwrites", s3.storage_options, args.commits,
                         args.overwrite_mb, args.repeat, "moto S3")
    elif args.s3_overwrites:
        with moto_s3_server() as server:
            server.create_bucket("travel")
            bench_overwrites("s3://travel/overwrites", server.storage_options, args.commits,
                             args.overwrite_mb, args.repeat, "moto S3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--appends", type=int, default=25)
    ap.add_argument("--s3-commits", type=int, default=0,
                    help="also run benchmark 1 on the moto S3 server with this many commits")
    ap.add_argument("--skip", choices=["travel", "concurrent", "overwrites"], action="append",
                    default=[])
    ap.add_argument("--overwrite-mb", type=int, default=100)
    ap.add_argument("--keep", default=None,
                    help="directory of the local overwrite table (built once, kept)")
    ap.add_argument("--no-local", action="store_true",
                    help="benchmark 1b on S3 only")
    ap.add_argument("--s3-overwrites", action="store_true",
                    help="also run benchmark 1b on a moto S3 server started here")
    ap.add_argument("--s3-endpoint", default=None,
                    help="run benchmark 1b on this running moto server (bucket 'travel')")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, date {time.strftime('%Y-%m-%d')}")
    if "travel" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            bench_time_travel(tmp, args.commits, args.repeat, None, "local disk")
        if args.s3_commits:
            from lakekit.local_servers import moto_s3_server

            with moto_s3_server() as s3:
                s3.create_bucket("travel")
                bench_time_travel("s3://travel", args.s3_commits, args.repeat,
                                  s3.storage_options, "moto S3")
    if "overwrites" not in args.skip:
        run_overwrites(args)
    if "concurrent" not in args.skip:
        bench_concurrent(args.writers, args.appends)


if __name__ == "__main__":
    main()
