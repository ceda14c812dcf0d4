"""The embedded end-to-end quickstart behind ``lakekit demo``.

Each step is a function taking the :class:`DemoContext`; it prints what it did and
returns. Steps run in the order of ``STEPS``; the lake is left in a directory the demo
names at the end.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoContext", "run_demo"]


@dataclass
class DemoContext:
    """What the steps share: the lake directory, local servers, and notes between steps."""

    root: Path
    stack: contextlib.ExitStack
    notes: dict[str, Any] = field(default_factory=dict)
    _s3: Any = None

    def s3(self) -> Any:
        """A local moto S3 server, started on first use and stopped at the end."""
        if self._s3 is None:
            from lakekit.local_servers import moto_s3_server

            self._s3 = self.stack.enter_context(moto_s3_server())
        return self._s3


def _say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _timed(title: str) -> Iterator[None]:
    _say(f"\n== {title}")
    start = time.perf_counter()
    yield
    _say(f"   ({time.perf_counter() - start:.2f}s)")


def _step_loaders(ctx: DemoContext) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakekit as lk

    shards = ctx.root / "events"
    rng = np.random.default_rng(7)
    n_per_shard, n_shards = 50_000, 12
    for i in range(n_shards):
        country = ["FR", "DE", "US"][i % 3]
        part = shards / f"country={country}"
        part.mkdir(parents=True, exist_ok=True)
        table = pa.table({
            "event_id": np.arange(i * n_per_shard, (i + 1) * n_per_shard, dtype=np.int64),
            "user_id": rng.integers(0, 10_000, n_per_shard, dtype=np.int64),
            "amount": rng.random(n_per_shard) * 100,
            "kind": pa.array(rng.choice(["view", "click", "buy"], n_per_shard)),
            **{f"feature_{j}": rng.random(n_per_shard) for j in range(8)},
        })
        pq.write_table(table, part / f"shard_{i}.parquet", row_group_size=10_000)
    ds = lk.dataset(shards)
    _say(f"   created {len(ds.files)} parquet shards, {ds.count_rows():,} rows, "
         f"{len(ds.schema)} columns (hive partition 'country' included)")
    df = ds.to_polars(columns=["user_id", "amount"], filter=[("country", "=", "FR"),
                                                            ("amount", ">", 90.0)])
    _say(f"   2 columns where country = FR and amount > 90: {df.height:,} rows")
    _say(f"   first 100 rows read early: {ds.to_arrow(n_rows=100).num_rows} rows")

    s3 = ctx.s3()
    s3.create_bucket("lake")
    remote = "s3://lake/events"
    lk_fs = lk.dataset(shards)
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3.storage_options)
    fs.put(str(shards), remote, recursive=True)
    rds = lk.dataset(remote, storage_options=s3.storage_options)
    t = rds.to_arrow(columns=["event_id", "kind"], filter=[("kind", "=", "buy")])
    local = lk_fs.to_arrow(columns=["kind"], filter=[("kind", "=", "buy")]).num_rows
    _say(f"   from the local S3 server ({s3.endpoint_url}): {len(rds.files)} shards, "
         f"{t.num_rows:,} 'buy' rows; same as local: {t.num_rows == local}")


def _step_tables(ctx: DemoContext) -> None:
    import numpy as np
    import pyarrow as pa

    import lakekit as lk
    from lakekit.errors import SchemaMismatchError

    rng = np.random.default_rng(3)

    def orders(start: int, n: int) -> pa.Table:
        return pa.table({
            "order_id": np.arange(start, start + n, dtype=np.int64),
            "amount": np.round(rng.random(n) * 100, 2),
            "country": pa.array(rng.choice(["FR", "DE", "US"], n)),
        })

    t = lk.Table(ctx.root / "tables" / "orders")
    v0 = t.write(orders(0, 10_000), metadata={"load": "initial"})
    v1 = t.write(orders(10_000, 2_000), metadata={"load": "daily"})
    t.tag("reviewed")
    _say(f"   wrote versions {v0} and {v1} ({t.read().num_rows:,} orders); tagged v{v1} 'reviewed'")
    bad = pa.table({"order_id": [1], "amount": ["12,50"], "coupon": ["X"]})
    try:
        t.write(bad)
    except SchemaMismatchError as exc:
        _say(f"   a bad load was refused, version still {t.version}:\n     {exc}")
    broken = orders(0, 500)
    v2 = t.write(broken, mode="overwrite", metadata={"load": "buggy backfill"})
    diff = t.diff("reviewed", v2)
    _say(f"   a buggy overwrite made version {v2}: {diff.net_rows:+,} rows against 'reviewed'")
    v3 = t.restore(tag="reviewed")
    same = t.read().sort_by("order_id").equals(t.read(tag="reviewed").sort_by("order_id"))
    _say(f"   restored 'reviewed' as version {v3}: {t.read().num_rows:,} orders, "
         f"identical to the tag: {same}")
    for c in t.history():
        _say(f"     v{c.version} {c.operation:<8} {dict(c.metadata) or ''}")


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("Loaders: sharded parquet on local disk and S3", _step_loaders),
    ("Versioned tables: write, tag, a bad load, restore", _step_tables),
]


def run_demo(directory: str | None = None) -> int:
    """Run every demo step; return the process exit status.

    Examples
    --------
    >>> run_demo("/tmp/lakekit-demo")  # doctest: +SKIP
    0
    """
    root = Path(directory or "lakekit-demo").resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        ctx = DemoContext(root=root, stack=stack)
        for title, step in STEPS:
            with _timed(title):
                step(ctx)
    _say(f"\nDone in {time.perf_counter() - start:.1f}s. The lake is in {root}")
    return 0
