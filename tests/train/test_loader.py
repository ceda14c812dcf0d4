"""The training loader: exact epochs on any world size and worker count, exact resume, pinned
versions, bad input. Real parquet files and Delta tables, through the public API."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _support import delta_features as dfx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakekit as lk
from lakekit.errors import ConfigError, DataChangedError, VersionNotFoundError


def write_shards(root: Path, sizes: list[int], row_group: int, *, start: int = 0) -> int:
    """Shards of an ``id`` column (consecutive ids) and a payload; returns rows written."""
    n = start
    for i, size in enumerate(sizes):
        ids = np.arange(n, n + size, dtype=np.int64)
        table = pa.table({"id": ids, "x": ids.astype(np.float64) * 0.5,
                          "shard": pa.array([i] * size, pa.int32())})
        pq.write_table(table, root / f"part-{i:03d}.parquet", row_group_size=max(row_group, 1))
        n += size
    return n - start


def ids(batch: dict[str, np.ndarray]) -> list[int]:
    return [int(v) for v in batch["id"]]


def rank_stream(loader: lk.Loader, workers: int, start: int = 0) -> Iterator[list[int]]:
    """A rank's batches as DataLoader workers would yield them (round robin, in order)."""
    if workers == 0:
        yield from (ids(b) for b in loader.batches(start=start))
        return
    streams = [loader.batches(start=start, worker=w, num_workers=workers) for w in range(workers)]
    i = start
    while True:
        b = next(streams[i % workers], None)
        if b is None:
            return
        yield ids(b)
        i += 1


def by_step(loaders: list[lk.Loader], workers: int, start: int = 0,
            steps: int | None = None) -> list[int]:
    """All ranks' rows, concatenated step by step (rank 0's batch, rank 1's, ...)."""
    streams = [rank_stream(ld, workers, start) for ld in loaders]
    out: list[int] = []
    n = 0
    while steps is None or n < steps:
        got = [next(s, None) for s in streams]
        if all(g is None for g in got):
            break
        assert all(g is not None for g in got), "ranks yielded different numbers of batches"
        for g in got:
            out.extend(g)  # type: ignore[arg-type]
        n += 1
    return out


def loaders_for(ds: lk.Dataset, world: int, global_batch: int, **kw: Any) -> list[lk.Loader]:
    return [ds.loader(["id"], batch_size=global_batch // world, rank=r, world_size=world, **kw)
            for r in range(world)]


# -- the property: any world size, any workers, any stop point, resumed on another world size --

DIVISORS = {48: [1, 2, 3, 4, 6, 8, 12, 16], 60: [1, 2, 3, 4, 5, 6, 10, 12, 15]}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    g = draw(st.sampled_from(sorted(DIVISORS)))
    return {
        "sizes": draw(st.lists(st.integers(0, 260), min_size=1, max_size=9)),
        "row_group": draw(st.integers(3, 90)),
        "global_batch": g,
        "world": draw(st.sampled_from(DIVISORS[g])),
        "world2": draw(st.sampled_from(DIVISORS[g])),
        "workers": draw(st.integers(0, 3)),
        "workers2": draw(st.integers(0, 3)),
        "budget": draw(st.sampled_from([20_000, 50_000, 1 << 30])),
        "shuffle": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31)),
        "stop": draw(st.floats(0, 1)),
        "epoch": draw(st.integers(0, 3)),
    }


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_any_world_size_and_workers_give_the_one_sequence_and_resume_exactly(
        case: dict[str, Any]) -> None:
    root = Path(tempfile.mkdtemp(prefix="lk-train-"))
    try:
        total = write_shards(root, case["sizes"], case["row_group"])
        g = case["global_batch"]
        if total < g:  # an empty epoch is refused (tested below); nothing more to check here
            if total == 0:
                return
            with pytest.raises(ConfigError, match="fewer than one global batch"):
                lk.dataset(str(root)).loader(["id"], batch_size=g)
            return
        ds = lk.dataset(str(root))
        kw = {"shuffle": case["shuffle"], "seed": case["seed"], "memory_budget": case["budget"]}
        one = ds.loader(["id"], batch_size=g, **kw)
        one.set_epoch(case["epoch"])
        reference = [i for b in one for i in ids(b)]
        steps = total // g
        assert len(reference) == steps * g
        assert len(set(reference)) == len(reference)  # no duplicates
        if not case["shuffle"]:
            assert reference == list(range(steps * g))

        ranks = loaders_for(ds, case["world"], g, **kw)
        for ld in ranks:
            ld.set_epoch(case["epoch"])
            assert len(ld) == steps
        assert by_step(ranks, case["workers"]) == reference

        # stop after `stop` of the epoch, save (any rank's state is the same), resume on world2
        stop = int(case["stop"] * steps)
        it = iter(ranks[0])
        for _ in range(stop):
            next(it)
        state = ranks[0].state_dict()
        assert len(str(state)) <= 1024
        assert by_step(ranks, case["workers"], steps=stop) == reference[: stop * g]

        resumed = loaders_for(ds, case["world2"], g, **kw)
        for ld in resumed:
            ld.load_state_dict(state)
            ld.set_epoch(case["epoch"])  # the usual loop: set_epoch of the saved epoch keeps it
            assert ld.position == stop
        rest = by_step(resumed, case["workers2"], start=stop)
        assert reference[: stop * g] + rest == reference  # 0 duplicates, 0 skips
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- epochs, drop_last, outputs -------------------------------------------------------------

@pytest.fixture(scope="module")
def shards() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="lk-train-shards-"))
    write_shards(root, [300, 120, 7, 410, 233, 90], 50)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_epochs_differ_and_repeat_by_seed(shards: Path) -> None:
    ds = lk.dataset(str(shards))
    a = ds.loader(["id"], batch_size=64, seed=7)
    e0 = [ids(b) for b in a]
    a.set_epoch(1)
    e1 = [ids(b) for b in a]
    flat0 = [i for b in e0 for i in b]
    flat1 = [i for b in e1 for i in b]
    assert e0 != e1 and len(set(flat0)) == len(flat0) == len(flat1) == (1160 // 64) * 64
    b = ds.loader(["id"], batch_size=64, seed=7)
    assert [ids(x) for x in b] == e0  # a function of (data, seed, epoch)
    b.set_epoch(1)
    assert [ids(x) for x in b] == e1
    # iterating again without set_epoch repeats the epoch from its start
    assert [ids(x) for x in b] == e1


def test_drop_last_false_gives_every_rank_the_same_batches(shards: Path) -> None:
    ds = lk.dataset(str(shards))
    total = ds.count_rows()  # 1,160
    ranks = loaders_for(ds, 3, 96, drop_last=False, seed=1)
    counts = {len(ld) for ld in ranks}
    assert counts == {-(-total // 96)}
    everything = by_step(ranks, 0)
    assert set(everything) == set(range(total))  # every row, the few padded rows repeated
    assert len(everything) - total < 3
    one = ds.loader(["id"], batch_size=96, drop_last=False, seed=1)
    seq = [i for b in one for i in ids(b)]
    assert sorted(seq) == list(range(total))


def test_outputs(shards: Path) -> None:
    ds = lk.dataset(str(shards))
    batch = next(iter(ds.loader(["id", "x"], batch_size=10, output="arrow")))
    assert isinstance(batch, pa.RecordBatch) and batch.num_rows == 10
    assert batch.column_names == ["id", "x"]
    frame = next(iter(ds.loader(["id"], batch_size=10, output="polars")))
    assert frame.shape == (10, 1)
    arrays = next(iter(ds.loader(["id", "x"], batch_size=10)))
    assert arrays["id"].dtype == np.int64 and np.allclose(arrays["x"], arrays["id"] * 0.5)


def test_list_columns_come_out_as_2d_arrays(tmp_path: Path) -> None:
    tokens = pa.array([[i, i + 1, i + 2] for i in range(40)], pa.list_(pa.int32()))
    pq.write_table(pa.table({"id": np.arange(40), "tokens": tokens}), tmp_path / "a.parquet",
                   row_group_size=8)
    batch = next(iter(lk.dataset(str(tmp_path)).loader(["id", "tokens"], batch_size=8)))
    assert batch["tokens"].shape == (8, 3)
    assert (batch["tokens"][:, 0] == batch["id"]).all()


# -- planning from metadata, filters ----------------------------------------------------------

def test_partition_filter_prunes_at_planning_and_data_filter_counts_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEKIT_CACHE_DIR", str(tmp_path / "cache"))
    for lang, start in (("en", 0), ("de", 1000), ("fr", 2000)):
        part = tmp_path / "data" / f"lang={lang}"
        part.mkdir(parents=True)
        write_shards(part, [150, 90], 40, start=start)
    ds = lk.dataset(str(tmp_path / "data"))
    en = ds.loader(["id"], filter=[("lang", "=", "en")], batch_size=16, drop_last=False)
    plan = en.describe()
    assert plan.rows_per_epoch == 240 and plan.shards == 2 and plan.counted_units == 0
    assert sorted(i for b in en for i in ids(b)) == list(range(240))

    flt = [("lang", "=", "de"), ("x", ">=", 560.0)]  # x = id / 2: ids >= 1120
    first = ds.loader(["id"], filter=flt, batch_size=8, drop_last=False)
    assert first.describe().counted_units > 0
    got = sorted(i for b in first for i in ids(b))
    assert got == list(range(1120, 1240))
    again = lk.dataset(str(tmp_path / "data")).loader(["id"], filter=flt, batch_size=8)
    assert again.describe().counted_units == 0  # the counts came from the cache
    assert again.fingerprint == first.fingerprint
    other = ds.loader(["id"], filter=[("x", ">=", 0.0)], batch_size=8)
    assert other.fingerprint != first.fingerprint


def test_describe_reports_the_shuffle_quality_it_delivers(tmp_path: Path) -> None:
    write_shards(tmp_path, [500] * 16, 25)
    ds = lk.dataset(str(tmp_path))
    loader = ds.loader(["id", "shard"], batch_size=64, seed=3, memory_budget=300_000)
    plan = loader.describe()
    assert plan.window_rows < plan.rows_per_epoch
    measured = [len(set(b["shard"].tolist())) for b in loader]
    assert abs(np.mean(measured) - plan.shards_per_batch) < 1.5
    assert plan.shuffle_quality is not None and 0 < plan.shuffle_quality <= 1.05
    assert "shards per batch" in str(plan) and "<table>" in plan._repr_html_()
    assert ds.loader(["id"], batch_size=64, shuffle=False).describe().shuffle_quality is None


# -- pinned versions ----------------------------------------------------------------------------

def versioned_table(uri: str, storage_options: dict[str, Any] | None = None) -> dict[int, set[int]]:
    """v0 write, v1 append, v2 delete (deletion vectors), v3 overwrite; each version's ids."""
    after_dv = dfx.dv_table(uri, storage_options=storage_options, writes=2, rows_per_write=60,
                            row_group_rows=16)
    t = lk.Table(uri, storage_options=storage_options)
    assert t.version == 2
    t.write(pa.table({"id": pa.array(np.arange(5000, 5100), pa.int64())}), mode="overwrite",
            schema_mode="overwrite")
    return {0: set(range(60)), 1: set(range(120)), 2: set(after_dv["id"].to_pylist()),
            3: set(range(5000, 5100))}


def check_versions(uri: str, expected: dict[int, set[int]],
                   storage_options: dict[str, Any] | None) -> None:
    t = lk.Table(uri, storage_options=storage_options)
    t.tag("train-v1", 1)
    for v, rows in expected.items():
        ds = lk.dataset(uri, version=v, storage_options=storage_options)
        got = [i for b in ds.loader(["id"], batch_size=4, drop_last=False, seed=v) for i in ids(b)]
        assert len(got) - len(rows) < 4 and set(got) == rows, v
    tagged = lk.dataset(uri, tag="train-v1", storage_options=storage_options)
    loader = tagged.loader(["id"], batch_size=8)
    assert tagged.version == 1 and {i for b in loader for i in ids(b)} <= expected[1]
    state = loader.state_dict()
    latest = lk.dataset(uri, storage_options=storage_options).loader(["id"], batch_size=8)
    with pytest.raises(DataChangedError, match="version 1"):
        latest.load_state_dict(state)
    with pytest.raises(VersionNotFoundError, match="no tag named 'nope'"):
        lk.dataset(uri, tag="nope", storage_options=storage_options)


def test_pinned_versions_and_tags_local(tmp_path: Path) -> None:
    uri = str(tmp_path / "table")
    check_versions(uri, versioned_table(uri), None)


@pytest.mark.s3
def test_pinned_versions_and_tags_on_s3(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    uri = f"s3://{s3_bucket}/train-table"
    check_versions(uri, versioned_table(uri, s3_options), s3_options)


# -- bad input -----------------------------------------------------------------------------------

def test_bad_input_says_what_to_change(shards: Path, tmp_path: Path) -> None:
    ds = lk.dataset(str(shards))
    with pytest.raises(ConfigError, match="matches no row"):
        ds.loader(["id"], filter=[("id", "<", 0)], batch_size=8)
    with pytest.raises(ConfigError, match=r"fewer than one global batch.*drop_last=False"):
        ds.loader(["id"], batch_size=10_000)
    with pytest.raises(ConfigError, match="batch_size must be a positive"):
        ds.loader(["id"], batch_size=0)
    with pytest.raises(ConfigError, match="rank < world_size"):
        ds.loader(["id"], batch_size=8, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="memory_budget"):
        ds.loader(["id"], batch_size=8, memory_budget="1KiB")
    with pytest.raises(ConfigError, match="unknown column"):
        ds.loader(["nope"], batch_size=8)
    with pytest.raises(ConfigError, match="output must be"):
        ds.loader(["id"], batch_size=8, output="jax")  # type: ignore[arg-type]

    saved = ds.loader(["id"], batch_size=48, seed=1)
    next(iter(saved))
    state = saved.state_dict()
    with pytest.raises(ConfigError, match="does not divide among 5 ranks"):
        ds.loader(["id"], batch_size=9, rank=0, world_size=5, seed=1).load_state_dict(state)
    with pytest.raises(ConfigError, match="pass batch_size=12"):
        ds.loader(["id"], batch_size=8, rank=0, world_size=4, seed=1).load_state_dict(state)
    with pytest.raises(ConfigError, match="seed=1"):
        ds.loader(["id"], batch_size=48, seed=2).load_state_dict(state)
    other = tmp_path / "other"
    other.mkdir()
    write_shards(other, [200], 50)
    with pytest.raises(DataChangedError, match="other data"):
        lk.dataset(str(other)).loader(["id"], batch_size=48, seed=1).load_state_dict(state)
    with pytest.raises(ConfigError, match="not a lakekit loader state"):
        saved.load_state_dict({"epoch": 0})


def test_a_shard_that_disappears_mid_epoch_is_named(tmp_path: Path) -> None:
    write_shards(tmp_path, [200, 200, 200], 50)
    loader = lk.dataset(str(tmp_path)).loader(["id"], batch_size=20, shuffle=False,
                                              memory_budget=30_000)
    it = iter(loader)
    next(it)
    os.remove(tmp_path / "part-002.parquet")
    with pytest.raises(DataChangedError, match=r"part-002\.parquet.*disappeared mid-epoch"):
        for _ in it:
            pass
