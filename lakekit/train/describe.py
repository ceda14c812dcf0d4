"""describe(): what a loader will do, from metadata: units, window, batches, shuffle quality.

Shuffle quality is measured, not guessed: the order of sample batches spread over the epoch
is computed (from row counts alone, as the loader computes it) and the distinct shards per
batch are compared with what a uniform random sample of the epoch would give.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lakekit._html import esc, human_bytes
from lakekit.train.order import EpochOrder
from lakekit.train.units import Plan

__all__ = ["LoaderPlan", "describe_plan"]

SAMPLE_BATCHES = 32


@dataclass(frozen=True)
class LoaderPlan:
    """A loader's plan (see :meth:`lakekit.train.Loader.describe`).

    Attributes
    ----------
    source, version
        What is read (credential-free URL, Delta version or None).
    units, shards
        Row groups (or files) the epoch is made of, and the files they are in.
    rows_per_epoch, batches_per_epoch, batch_size, world_size
        Rows in an epoch; batches per rank per epoch, of ``batch_size`` rows.
    window_rows
        Rows mixed together (the sliding window the budget allows).
    memory_budget
        Bytes the loader may hold per reader.
    bytes_per_epoch
        Decoded bytes of the columns read per epoch by each rank.
    shards_per_batch, ideal_shards_per_batch, shuffle_quality
        Mean distinct shards in a batch, the uniform ideal, and their ratio (1.0 = as
        mixed as a uniform random sample; None without shuffle).
    counted_units
        Units whose rows a filter made the loader count by reading its columns (0 when
        metadata, or the cache, answered).
    """

    source: str
    version: int | None
    units: int
    shards: int
    rows_per_epoch: int
    batches_per_epoch: int
    batch_size: int
    world_size: int
    window_rows: int
    memory_budget: int
    bytes_per_epoch: int
    shards_per_batch: float | None
    ideal_shards_per_batch: float
    shuffle_quality: float | None
    counted_units: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        q = ("no shuffle" if self.shuffle_quality is None else
             f"{self.shards_per_batch:.1f} shards per batch of {self.batch_size} "
             f"(uniform ideal {self.ideal_shards_per_batch:.1f}: quality "
             f"{self.shuffle_quality:.2f})")
        return (f"{self.rows_per_epoch:,} rows in {self.units:,} units of {self.shards:,} "
                f"shards; {self.batches_per_epoch:,} batches per epoch on each of "
                f"{self.world_size} rank(s); window {self.window_rows:,} rows within "
                f"{human_bytes(self.memory_budget)}; {q}; "
                f"{human_bytes(self.bytes_per_epoch)} decoded per rank per epoch")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>"
                       for k, v in self.to_dict().items())
        return f"<div><p>{esc(str(self))}</p><table>{rows}</table></div>"


def describe_plan(plan: Plan, order: EpochOrder, *, batch_size: int, world_size: int,
                  batches: int, budget: int, url: str, version: int | None) -> LoaderPlan:
    """Describe ``plan`` ordered by ``order`` for batches of ``batch_size`` rows."""
    total = plan.total_rows
    shard_rows = np.bincount(plan.files, weights=plan.rows, minlength=len(plan.file_names))
    p = shard_rows[shard_rows > 0] / max(total, 1)
    ideal = float(np.sum(1.0 - (1.0 - p) ** batch_size))
    measured = None
    quality = None
    if order.shuffle:
        measured = sample_shards_per_batch(plan, order, batch_size)
        quality = measured / ideal if ideal else None
    return LoaderPlan(
        source=url, version=version, units=len(plan.rows), shards=int((shard_rows > 0).sum()),
        rows_per_epoch=total, batches_per_epoch=batches, batch_size=batch_size,
        world_size=world_size, window_rows=order.window, memory_budget=budget,
        bytes_per_epoch=int(plan.nbytes.sum()), shards_per_batch=measured,
        ideal_shards_per_batch=ideal, shuffle_quality=quality, counted_units=plan.counted,
    )


def sample_shards_per_batch(plan: Plan, order: EpochOrder, batch_size: int) -> float:
    """Mean distinct shards in batches spread over the epoch (metadata only)."""
    total = order.total
    if total < batch_size:
        return float(len(np.unique(plan.files)))
    starts = np.linspace(0, total - batch_size, num=min(SAMPLE_BATCHES, total // batch_size))
    counts = []
    for s in starts.astype(np.int64):
        s -= s % batch_size
        m = order.segment_of(int(s))
        seg = order.segment(m)
        units = seg.units[s - seg.start: s - seg.start + batch_size]
        if len(units) < batch_size and seg.stop < total:
            nxt = order.segment(m + 1)
            units = np.concatenate([units, nxt.units[: batch_size - len(units)]])
        counts.append(len(np.unique(plan.files[units])))
    return float(np.mean(counts))
