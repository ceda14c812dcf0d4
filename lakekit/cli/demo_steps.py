"""The embedded end-to-end quickstart behind ``lakekit demo``: its steps and :func:`run_demo`.

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

from lakekit._deps import import_optional

__all__ = ["STEPS", "DemoContext", "run_demo"]


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
    s3fs = import_optional("s3fs", purpose="the demo")
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


def _step_quality(ctx: DemoContext) -> None:
    from datetime import datetime, timezone

    import numpy as np
    import pyarrow as pa

    import lakekit as lk

    shipped = Path(lk.__file__).resolve().parents[1] / "schemas"  # the repository's schemas/
    schemas_dir = ctx.root / "schemas"
    if (shipped / "events.yaml").is_file():
        schemas_dir = shipped
    events = lk.dataset(ctx.root / "events").to_arrow(
        columns=["event_id", "user_id", "kind", "amount"], n_rows=200_000)
    rng = np.random.default_rng(11)
    now_us = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
    times = now_us - rng.integers(60_000_000, 600_000_000, events.num_rows)  # 1-10 min ago
    events = events.append_column("event_time", pa.array(times, pa.timestamp("us", "UTC")))
    if schemas_dir != shipped:  # an installed wheel has no schemas/: start one from the data
        from lakekit.quality.schemas import infer_schema_yaml

        schemas_dir.mkdir(parents=True, exist_ok=True)
        import polars as pl

        frame = pl.from_arrow(events)
        assert isinstance(frame, pl.DataFrame)
        (schemas_dir / "events.yaml").write_text(infer_schema_yaml(frame, source="the demo"))
    table = lk.Table(ctx.root / "tables" / "events")
    table.write(events)
    fresh = lk.Freshness(column="event_time", max_age="1h", warn_age="30m")
    report = lk.check(table, "events", schemas_dir=schemas_dir, freshness=fresh,
                      volume=lk.Volume(min_rows=100_000))
    _say(f"   schema 'events' from {schemas_dir}:")
    for line in report.summary().splitlines():
        _say(f"     {line}")
    bad = events.slice(0, 5).set_column(
        2, "kind", pa.array(["view", "refund", "click", "buy", "refund"]))
    bad = bad.set_column(3, "amount", pa.array([-3.5, 10.0, 20.0, -1.0, 5.0]))
    bad = bad.set_column(0, "event_id", pa.array(np.arange(5) + 10_000_000, pa.int64()))
    table.write(bad)
    report = lk.check(table, "events", schemas_dir=schemas_dir, freshness=fresh)
    _say(f"   after a bad load (v{table.version}): {report.status.upper()}, "
         f"{report.failure_count} failure cases, e.g.:")
    for row in report.failure_cases.head(3).iter_rows(named=True):
        _say(f"     row {row['index']}: {row['column']} = {row['failure_case']!r} "
             f"fails {row['check']}")
    start = time.perf_counter()
    fast = lk.check(table, freshness=fresh, volume=lk.Volume(min_rows=1))
    _say(f"   freshness + volume alone, from the Delta log (no data file read): "
         f"{fast.status}, {(time.perf_counter() - start) * 1e3:.0f} ms")
    where = "" if schemas_dir == shipped else f" --schemas-dir {schemas_dir}"
    _say(f"   same from a shell: lakekit check {table.uri} --schema events{where} "
         "--freshness-column event_time --max-age 1h   (exit 1 on fail)")


def _step_streaming(ctx: DemoContext) -> None:
    import json

    import numpy as np
    import pandera.polars as pap
    import polars as pl
    from kafka import KafkaProducer

    import lakekit as lk
    from lakekit.local_servers import tansu_broker

    broker = ctx.stack.enter_context(tansu_broker())
    broker.create_topic("clicks", partitions=3)
    rng = np.random.default_rng(5)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20)
    n, malformed, invalid = 20_000, 0, 0
    for i in range(n):
        if i % 997 == 13:
            value, malformed = b'{"event_id": 13, "user_id": ', malformed + 1  # cut short
        else:
            amount = float(rng.normal(50, 20))
            invalid += amount < 0
            value = json.dumps({"event_id": i, "user_id": int(rng.integers(0, 1000)),
                                "kind": ["view", "click", "buy"][i % 3],
                                "amount": round(amount, 2)}).encode()
        producer.send("clicks", value=value, partition=i % 3)
    producer.flush()
    producer.close()
    _say(f"   local Kafka broker (Tansu) at {broker.bootstrap_servers}: {n:,} events in 3 "
         f"partitions, {malformed} malformed, {invalid} with a negative amount")
    schema = pap.DataFrameSchema({
        "event_id": pap.Column(pl.Int64), "user_id": pap.Column(pl.Int64),
        "kind": pap.Column(pl.Utf8, pap.Check.isin(["view", "click", "buy"])),
        "amount": pap.Column(pl.Float64, pap.Check.ge(0)),
    })
    table = ctx.root / "tables" / "clicks"
    sink = lk.KafkaDeltaSink(
        "clicks", str(table), bootstrap_servers=broker.bootstrap_servers,
        group_id="clicks-to-delta", consumer_config={"session_timeout_ms": 6000},
        schema=schema, kafka_metadata=True, max_batch_rows=5_000,
    )
    stats = sink.run(stop_after_idle=1.0)
    data = lk.Table(table).read(columns=["_kafka_partition", "_kafka_offset"])
    dead = lk.Table(sink.dead_letter_url or "").read(columns=["stage", "error"])
    unique = len(set(zip(data.column(0).to_pylist(), data.column(1).to_pylist(), strict=True)))
    _say(f"   sink: {stats.records_in:,} records in, {stats.commits} commits in "
         f"{stats.elapsed_seconds:.1f}s (joining the consumer group and 1 s idle included)")
    _say(f"   table {sink.table_url}: {data.num_rows:,} rows ({unique:,} distinct "
         f"topic/partition/offset), v{stats.table_version}")
    stages = {s: dead.column("stage").to_pylist().count(s) for s in ("decode", "validate")}
    _say(f"   dead-letter table: {dead.num_rows} rows ({stages['decode']} undecodable, "
         f"{stages['validate']} failed validation), e.g. {dead.column('error')[0].as_py()!r}")
    _say(f"   offsets are stored in the table (Delta txn actions): clicks[0] at "
         f"{sink.committed_offset('clicks', 0)}; a restart resumes there, exactly once")
    _say(f"   same from a shell: lakekit sink --topic clicks --bootstrap-servers "
         f"{broker.bootstrap_servers} --group-id clicks-to-delta --table {table} "
         "--kafka-metadata --stop-after-idle 5")


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("Loaders: sharded parquet on local disk and S3", _step_loaders),
    ("Versioned tables: write, tag, a bad load, restore", _step_tables),
    ("Quality: a pandera schema, freshness and volume from metadata", _step_quality),
    ("Streaming: Kafka -> Delta, exactly once, with a dead-letter table", _step_streaming),
]


def run_demo(directory: str | None = None) -> int:
    """Run every demo step; return the process exit status.

    Examples
    --------
    >>> run_demo("lakekit-demo")  # doctest: +ELLIPSIS
    <BLANKLINE>
    == Loaders: sharded parquet on local disk and S3
    ...
    == Streaming: Kafka -> Delta, exactly once, with a dead-letter table
    ...
    Done in ...s. The lake is in .../lakekit-demo
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
