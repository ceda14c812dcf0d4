"""One rank of a real DDP run on CPU (torch.distributed, gloo), for tests/train/test_ddp.py.

    python ddp_train.py DATA --rank R --world-size W --port P --batch-size B --out OUT
        [--steps K] [--state-in STATE] [--state-out STATE] [--workers N]

The loader takes its rank and world size from torch.distributed (initialised here). Each
step trains a tiny DistributedDataParallel model on the batch (so ranks really step
together) and records the batch's ids. After ``--steps`` steps (or the epoch) every rank's
state is gathered: they must agree; rank 0 writes it to ``--state-out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import lakekit as lk


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world-size", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=-1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--state-in")
    p.add_argument("--state-out")
    a = p.parse_args()

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}",
                            rank=a.rank, world_size=a.world_size)
    try:
        loader = lk.dataset(a.data).loader(columns=["id"], batch_size=a.batch_size, seed=7)
        assert (loader.rank, loader.world_size) == (a.rank, a.world_size), "not from torch"
        ds = loader.torch()
        if a.state_in:
            ds.load_state_dict(json.loads(Path(a.state_in).read_text()))
        model = DistributedDataParallel(torch.nn.Linear(1, 1))
        opt = torch.optim.SGD(model.parameters(), lr=1e-6)
        dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=a.workers)
        steps: list[list[int]] = []
        for batch in ds.track(dl):
            loss = model(batch["id"].float()[:, None]).mean()
            opt.zero_grad()
            loss.backward()  # DDP all-reduces the gradients: every rank takes this step
            opt.step()
            steps.append(batch["id"].tolist())
            if len(steps) == a.steps:
                break
        state = ds.state_dict()
        states: list[object] = [None] * a.world_size
        dist.all_gather_object(states, state)
        assert all(s == state for s in states), f"ranks disagree on the state: {states}"
        if a.rank == 0 and a.state_out:
            Path(a.state_out).write_text(json.dumps(state))
        Path(a.out).write_text(json.dumps({"steps": steps}))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
