"""Load training data the way a notebook does: prune columns, filter, sample, stream.

Run it with ``python examples/load_training_data.py [DIR]``. It writes a small sharded,
hive-partitioned parquet dataset under DIR (a temporary directory by default), then loads
it with lakekit. Point ``SOURCE`` at your own data (``s3://bucket/prefix/`` plus
``storage_options``, see docs/storage.md) and the same calls work unchanged.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import lakekit as lk


def make_shards(root: Path, *, days: int = 4, shards_per_day: int = 3, rows: int = 20_000) -> Path:
    """Write ``days`` x ``shards_per_day`` parquet shards of synthetic click features."""
    rng = np.random.default_rng(42)
    source = root / "features"
    for day in range(1, days + 1):
        part = source / f"day={day}"
        part.mkdir(parents=True, exist_ok=True)
        for shard in range(shards_per_day):
            n = rows
            table = pa.table({
                "user_id": rng.integers(0, 50_000, n),
                "label": rng.integers(0, 2, n).astype(np.int8),
                "clicks_7d": rng.poisson(3, n).astype(np.int32),
                "spend_30d": rng.gamma(2.0, 20.0, n),
                "country": rng.choice(["DE", "FR", "US", "JP"], n),
                **{f"f{i}": rng.normal(size=n).astype(np.float32) for i in range(12)},
            })
            pq.write_table(table, part / f"shard_{shard}.parquet", row_group_size=5_000)
    return source


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="lakekit-train-"))
    source = make_shards(root)

    ds = lk.dataset(source)                 # lazy: lists files, reads no data
    print(ds)                                # Dataset('.../features', format='parquet', ...)
    print(f"{len(ds.files)} files, {ds.total_bytes / 1e6:.1f} MB, "
          f"{ds.count_rows():,} rows (from the footers)")
    print("schema:", ", ".join(f"{f.name}:{f.type}" for f in ds.schema))

    # 1. the columns a model needs, for two days and one country: only those column chunks
    #    are read, and the day filter skips whole directories
    t0 = time.perf_counter()
    train = ds.to_polars(
        columns=["user_id", "label", "clicks_7d", "spend_30d", "f0", "f1", "f2"],
        filter=[("day", "in", [3, 4]), ("country", "=", "FR")],
    )
    print(f"train: {train.height:,} rows x {train.width} columns "
          f"in {time.perf_counter() - t0:.2f}s")
    assert set(train.columns) == {"user_id", "label", "clicks_7d", "spend_30d", "f0", "f1", "f2"}
    assert train.height > 0

    # 2. a quick look: n_rows stops after the first shards
    head = ds.to_pandas(columns=["user_id", "label"], n_rows=1_000)
    print(f"head: {len(head)} rows as pandas")
    assert len(head) == 1_000

    # 3. streaming in bounded memory, e.g. to feed a training loop
    seen = positives = 0
    for batch in ds.iter_batches(columns=["label"], batch_size=8_192):
        seen += batch.num_rows
        positives += int(pc.sum(batch.column("label")).as_py() or 0)
    print(f"streamed {seen:,} labels, {positives / seen:.1%} positive")
    assert seen == ds.count_rows()

    # 4. a pyarrow expression works as a filter too
    big = lk.load(source, columns=["user_id", "spend_30d"],
                  filter=pc.field("spend_30d") > 150, output="arrow")
    print(f"big spenders: {big.num_rows:,} rows")
    assert pc.min(big.column("spend_30d")).as_py() > 150
    print(f"done; the data is in {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
