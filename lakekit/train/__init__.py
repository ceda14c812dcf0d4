"""Training loaders: exact, resumable, rank-balanced epochs over a lakekit Dataset.

``lk.dataset(uri, version=42).loader(columns, batch_size=256, shuffle=True, seed=0)``
plans an epoch from metadata, shuffles it globally in bounded memory, cuts it among ranks
so that every rank yields the same number of batches, and saves and restores its position
exactly on any world size. ``loader.torch()`` adapts it to ``torch.utils.data``
(``lakekit[torch]``). See docs/training.md.
"""

from lakekit.train.describe import LoaderPlan
from lakekit.train.loader import Loader

__all__ = ["Loader", "LoaderPlan"]
