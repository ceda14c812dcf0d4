"""The torch adapter: a Loader as a ``torch.utils.data.IterableDataset``, batches as tensors.

Needs ``pip install 'lakekit[torch]'``; nothing in lakekit imports torch until this module
is used. With ``DataLoader(ds, batch_size=None, num_workers=n)`` worker ``w`` yields the
rank's batches ``i`` with ``i % n == w``; the DataLoader's in-order round robin gives back
exactly the loader's sequence.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lakekit._deps import import_optional

if TYPE_CHECKING:
    from lakekit.train.loader import Loader

torch = import_optional("torch", purpose="the training loader's torch adapter")

__all__ = ["TorchDataset", "to_tensors"]


def to_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """numpy columns -> tensors (numeric and bool columns; others are left as numpy)."""
    out: dict[str, Any] = {}
    for name, a in arrays.items():
        out[name] = torch.from_numpy(np.ascontiguousarray(a)) if a.dtype.kind in "biuf" else a
    return out


class TorchDataset(torch.utils.data.IterableDataset):  # type: ignore[name-defined]
    """An ``IterableDataset`` over a :class:`~lakekit.train.Loader` (one rank's batches)."""

    def __init__(self, loader: Loader) -> None:
        super().__init__()
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        if info is None:
            yield from self.loader
            return
        yield from self.loader.batches(start=self.loader.position, worker=info.id,
                                       num_workers=info.num_workers)
