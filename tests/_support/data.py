"""Shared test data: the quality ``events`` rows and the schemas folder."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def events(n: int, *, newest: datetime, start: int = 0, seed: int = 0) -> pa.Table:
    """Valid rows for schemas/events.yaml; event_time spans the 10 minutes before ``newest``."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, 600_000_000, n))[::-1]  # microseconds before newest
    times = [newest - timedelta(microseconds=int(o)) for o in offsets]
    if n:
        times[-1] = newest
    return pa.table({
        "event_id": pa.array(np.arange(start, start + n), pa.int64()),
        "user_id": pa.array(rng.integers(0, 1000, n), pa.int64()),
        "kind": pa.array(rng.choice(["view", "click", "buy"], n).tolist(), pa.string()),
        "amount": pa.array(rng.random(n) * 100, pa.float64()),
        "event_time": pa.array(times, pa.timestamp("us", "UTC")),
    })
