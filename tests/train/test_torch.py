"""The torch adapter: DataLoader workers yield the loader's exact sequence; a run stopped
mid-epoch resumes exactly (torchdata's StatefulDataLoader, and a plain DataLoader with
``track``), also on another world size; batches become tensors of the right dtypes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit as lk
from lakekit.errors import ConfigError, FormatError

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402
from torchdata.stateful_dataloader import StatefulDataLoader  # noqa: E402

from lakekit.train.torch import TorchDataset, to_tensors  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:This DataLoader will create:UserWarning",  # 3 workers on a 2-core machine
    "ignore:'set_vital' is deprecated:UserWarning",  # torchdata 0.11 on torch 2.13
)

BATCH = 8
SEED = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 shards of uneven sizes (row groups of 10 rows): 330 rows, ids 0..329."""
    root = tmp_path_factory.mktemp("shards")
    start = 0
    for i, n in enumerate([30, 100, 45, 85, 70]):
        ids = np.arange(start, start + n)
        pq.write_table(pa.table({
            "id": pa.array(ids, pa.int64()),
            "x": pa.array(ids / 10, pa.float32()),
            "small": pa.array(ids % 100, pa.int16()),
            "even": pa.array(ids % 2 == 0),
            "ts": pa.array(ids * 1_000_000, pa.timestamp("us")),
        }), root / f"part-{i}.parquet", row_group_size=10)
        start += n
    return root


def _loader(data: Path, **kw: Any) -> Any:
    kw = {"batch_size": BATCH, "seed": SEED, "rank": 0, "world_size": 1, **kw}
    return lk.dataset(data).loader(columns=["id"], **kw)


def _ids(batches: Iterable[dict[str, Any]]) -> list[list[int]]:
    return [b["id"].tolist() for b in batches]


def _reference(data: Path, **kw: Any) -> list[list[int]]:
    return _ids(_loader(data, **kw))


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_dataloader_workers_yield_the_loaders_exact_sequence(data: Path, workers: int) -> None:
    ref = _reference(data)
    assert len(ref) == 330 // BATCH
    ds = _loader(data).torch()
    got = _ids(DataLoader(ds, batch_size=None, num_workers=workers))
    assert got == ref
    # a rank of a larger world: its own batches, in its order, whatever the workers
    rank1 = _reference(data, batch_size=4, rank=1, world_size=2)
    ds = _loader(data, batch_size=4, rank=1, world_size=2).torch()
    assert _ids(DataLoader(ds, batch_size=None, num_workers=workers)) == rank1


@pytest.mark.parametrize("workers", [0, 2])
def test_stateful_dataloader_stopped_mid_epoch_resumes_exactly(data: Path, workers: int) -> None:
    ref = _reference(data)
    prefetch = {"prefetch_factor": 4} if workers else {}  # workers run well ahead of the loop
    sdl = StatefulDataLoader(_loader(data).torch(), batch_size=None, num_workers=workers,
                             **prefetch)
    got = []
    for batch in sdl:
        got.append(batch["id"].tolist())
        if len(got) == 11:
            break
    state = json.loads(json.dumps(sdl.state_dict()))  # survives a JSON checkpoint
    del sdl

    again = StatefulDataLoader(_loader(data).torch(), batch_size=None, num_workers=workers,
                               **prefetch)
    again.load_state_dict(state)
    assert got + _ids(again) == ref
    # the loader's own state of the same moment resumes without torchdata's
    loader = _loader(data)
    loader.load_state_dict(TorchDataset.loader_state(state))
    assert loader.position == 11
    assert got + _ids(loader) == ref


@pytest.mark.parametrize("workers", [0, 2])
def test_plain_dataloader_with_track_resumes_exactly(data: Path, workers: int) -> None:
    ref = _reference(data)
    ds = _loader(data).torch()
    dl = DataLoader(ds, batch_size=None, num_workers=workers,
                    **({"prefetch_factor": 4} if workers else {}))
    got = []
    for batch in ds.track(dl):
        got.append(batch["id"].tolist())
        if len(got) == 9:
            break
    assert ds.position == 9  # consumed by the loop, not what the workers prefetched
    state = json.loads(json.dumps(ds.state_dict()))
    del dl

    again = _loader(data).torch()
    again.load_state_dict(state)
    assert got + _ids(DataLoader(again, batch_size=None, num_workers=workers)) == ref


def test_stateful_state_of_two_ranks_resumes_on_one_rank_with_other_workers(data: Path) -> None:
    """Saved on 2 ranks x 2 workers (batch 4 each), resumed on 1 rank x 3 workers (batch 8)."""
    ref = _reference(data)
    ranks, states = [], []
    for rank in range(2):
        sdl = StatefulDataLoader(_loader(data, batch_size=4, rank=rank, world_size=2).torch(),
                                 batch_size=None, num_workers=2)
        got = []
        for batch in sdl:
            got.append(batch["id"].tolist())
            if len(got) == 5:
                break
        ranks.append(got)
        states.append(TorchDataset.loader_state(sdl.state_dict()))
        del sdl
    assert states[0] == states[1], "ranks at the same step have the same state"
    first = [ranks[0][step] + ranks[1][step] for step in range(5)]

    loader = _loader(data)
    loader.load_state_dict(states[0])
    rest = _ids(DataLoader(loader.torch(), batch_size=None, num_workers=3))
    assert first + rest == ref


def test_a_workers_state_is_refused_elsewhere_with_the_way_out(data: Path) -> None:
    sdl = StatefulDataLoader(_loader(data).torch(), batch_size=None, num_workers=2)
    next(iter(sdl))
    worker_state = sdl.state_dict()["_snapshot"]["_worker_snapshots"]["worker_0"]
    del sdl
    with pytest.raises(ConfigError, match=r"loader_state"):
        _loader(data).torch().load_state_dict(worker_state["dataset_state"])
    with pytest.raises(ConfigError, match="not a TorchDataset state"):
        _loader(data).torch().load_state_dict(_loader(data).state_dict())


def test_set_epoch_starts_the_next_epochs_order(data: Path) -> None:
    ds = _loader(data).torch()
    dl = DataLoader(ds, batch_size=None, num_workers=2)
    epoch0 = _ids(dl)
    ds.set_epoch(1)
    epoch1 = _ids(dl)
    loader = _loader(data)
    loader.set_epoch(1)
    assert epoch1 == _ids(loader) != epoch0
    for epoch in (epoch0, epoch1):  # 41 batches of 8 of 330 rows: 2 rows dropped, none twice
        ids = [i for b in epoch for i in b]
        assert len(ids) == len(set(ids)) == 328 and set(ids) <= set(range(330))


def test_batches_are_tensors_of_the_columns_dtypes(data: Path) -> None:
    loader = lk.dataset(data).loader(batch_size=BATCH, seed=SEED, rank=0, world_size=1)
    batch = next(iter(DataLoader(loader.torch(), batch_size=None, num_workers=0)))
    assert {k: v.dtype for k, v in batch.items()} == {
        "id": torch.int64, "x": torch.float32, "small": torch.int16, "even": torch.bool,
        "ts": torch.int64,
    }
    assert batch["id"].shape == (BATCH,)
    np.testing.assert_allclose(batch["x"].numpy(), batch["id"].numpy() / 10, rtol=1e-6)
    assert (batch["ts"] == batch["id"] * 1_000_000).all()  # microseconds, the column's unit


def test_to_tensors_stacks_equal_lists_and_names_a_ragged_column() -> None:
    same = np.empty(2, dtype=object)
    same[:] = [np.array([1, 2, 3]), np.array([4, 5, 6])]
    assert to_tensors({"tokens": same})["tokens"].shape == (2, 3)
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.array([1, 2]), np.array([3])]
    with pytest.raises(FormatError, match="'tokens'"):
        to_tensors({"tokens": ragged})


@pytest.mark.s3
def test_workers_read_from_s3_and_resume(s3_bucket: str, s3_options: dict[str, Any],
                                          data: Path) -> None:
    """The loader (and its S3 filesystem) pickled into forked DataLoader workers, on moto."""
    import fsspec

    fs = fsspec.filesystem("s3", **s3_options)
    for path in sorted(data.iterdir()):
        fs.put(str(path), f"{s3_bucket}/train/{path.name}")

    def s3_loader() -> Any:
        return lk.dataset(f"s3://{s3_bucket}/train", storage_options=s3_options).loader(
            ["id"], batch_size=BATCH, seed=SEED, rank=0, world_size=1)

    ref = _reference(data)
    sdl = StatefulDataLoader(s3_loader().torch(), batch_size=None, num_workers=2)
    got = []
    for batch in sdl:
        got.append(batch["id"].tolist())
        if len(got) == 6:
            break
    state = sdl.state_dict()
    del sdl
    again = StatefulDataLoader(s3_loader().torch(), batch_size=None, num_workers=2)
    again.load_state_dict(state)
    assert got + _ids(again) == ref
