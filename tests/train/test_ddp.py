"""A real multi-process DDP run (torch.distributed, gloo, CPU) stopped and resumed on another
number of processes: the samples by global step are the uninterrupted world-size-1 sequence."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit as lk

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "_support" / "ddp_train.py"
GLOBAL_BATCH = 12
SEED = 7  # the script's


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shards(root: Path) -> Path:
    """7 shards of uneven sizes (40..160 rows), row groups of 16 rows: 620 rows, ids 0..619."""
    sizes = [40, 160, 55, 90, 120, 70, 85]
    root.mkdir()
    start = 0
    for i, n in enumerate(sizes):
        pq.write_table(pa.table({"id": pa.array(range(start, start + n), pa.int64())}),
                       root / f"part-{i}.parquet", row_group_size=16)
        start += n
    return root


def _run(data: Path, world: int, out: Path, *, steps: int = -1, workers: int = 0,
         state_in: Path | None = None, state_out: Path | None = None) -> list[list[list[int]]]:
    """Run ``world`` ranks; return each rank's batches (lists of ids), by rank."""
    port = _free_port()
    procs, outs = [], []
    for rank in range(world):
        outs.append(out / f"rank{rank}-of-{world}.json")
        cmd = [sys.executable, str(SCRIPT), str(data), "--rank", str(rank),
               "--world-size", str(world), "--port", str(port),
               "--batch-size", str(GLOBAL_BATCH // world), "--out", str(outs[-1]),
               "--steps", str(steps), "--workers", str(workers)]
        if state_in:
            cmd += ["--state-in", str(state_in)]
        if state_out:
            cmd += ["--state-out", str(state_out)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=dict(os.environ)))
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=90)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    for rank, proc in enumerate(procs):
        assert proc.returncode == 0, f"rank {rank} of {world} failed:\n{logs[rank][-4000:]}"
    return [json.loads(p.read_text())["steps"] for p in outs]


def _by_global_step(ranks: list[list[list[int]]]) -> list[list[int]]:
    lengths = {len(r) for r in ranks}
    assert len(lengths) == 1, f"ranks took different numbers of steps: {lengths}"
    return [[i for r in ranks for i in r[step]] for step in range(lengths.pop())]


@pytest.mark.slow
def test_ddp_stopped_on_3_processes_resumes_on_2_without_loss_or_repeat(tmp_path: Path) -> None:
    data = _shards(tmp_path / "data")
    reference = [b["id"].tolist() for b in
                 lk.dataset(data).loader(columns=["id"], batch_size=GLOBAL_BATCH, seed=SEED,
                                         rank=0, world_size=1)]
    assert len(reference) == 620 // GLOBAL_BATCH

    state = tmp_path / "state.json"
    first = _by_global_step(_run(data, 3, tmp_path, steps=17, workers=2, state_out=state))
    assert len(first) == 17
    assert len(state.read_bytes()) <= 1024, "a state is small"
    rest = _by_global_step(_run(data, 2, tmp_path, state_in=state))

    assert first + rest == reference
    seen = [i for step in first + rest for i in step]
    assert len(seen) == len(set(seen)) == len(reference) * GLOBAL_BATCH  # 0 repeats, 0 skips
