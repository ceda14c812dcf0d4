"""The torch adapter: a :class:`~lakekit.train.Loader` as a torch ``IterableDataset``.

``loader.torch()`` returns a :class:`TorchDataset`. Batches are already cut by the loader
(``batch_size`` per rank), so it goes into ``DataLoader(ds, batch_size=None, ...)``.

**Workers.** A DataLoader with ``num_workers=n`` asks its workers for batches in turn
(worker 0, 1, ..., n - 1, 0, ...). Worker ``w`` yields the rank's batches ``start + w``,
``start + w + n``, ... (``Loader.batches(worker=, num_workers=)``), so the DataLoader
yields exactly the loader's sequence, whatever ``n``; no two workers yield the same rows.
But a shuffled batch mixes rows of every unit in the window, so **every worker reads every
unit**: ``n`` workers read and decode the data ``n`` times. The loader already reads
ahead and gathers the next batches in its own threads, so ``num_workers=0`` is the fast
choice (see docs/training.md's figures); a worker of a shuffled loader warns once.

**Resume.** Two ways, both exact (the state is the batches the training loop has
*consumed*, not what the workers have prefetched):

- torchdata's ``StatefulDataLoader``: this dataset implements ``state_dict`` /
  ``load_state_dict`` as it expects. Each worker's state records the batches it has
  produced; the StatefulDataLoader keeps, per worker, the state that came with the last
  batch it *yielded*, and on ``load_state_dict`` gives each worker back its own. That
  resumes on the same world size and ``num_workers`` (torchdata requires the latter).
  :meth:`TorchDataset.loader_state` turns such a state into the loader's own state (the
  consumed position), which resumes on any world size and any number of workers.
- a plain ``torch.utils.data.DataLoader``: the main process counts the batches the loop
  received, ``for batch in ds.track(dl)``, and ``ds.state_dict()`` is the state after
  them. Without ``track``, a DataLoader with workers leaves ``ds.state_dict()`` at the
  start of the pass (with ``num_workers=0`` the dataset counts itself).

Epochs: call ``ds.set_epoch(epoch)`` before each pass (as with ``DistributedSampler``);
workers are copies made at the start of a pass, so ``persistent_workers=True`` keeps the
first epoch's copies and is not supported across epochs.

torch is imported when this module is (``pip install 'lakekit[torch]'``); nothing else in
lakekit imports it.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lakekit._deps import import_optional
from lakekit.errors import ConfigError, FormatError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import IterableDataset

    from lakekit.train.loader import Loader, Output
else:
    torch = import_optional("torch", purpose="lakekit.train.torch")
    IterableDataset = torch.utils.data.IterableDataset

__all__ = ["TorchDataset", "to_tensors"]

T = TypeVar("T")

_FORMAT = "lakekit.train.torch/1"


def to_tensors(batch: Mapping[str, Any]) -> dict[str, Any]:
    """A batch of numpy columns as torch tensors (zero-copy where numpy allows it).

    Numbers and booleans keep their dtype; datetimes and durations become int64 (their
    numpy unit); a column of equal-shape arrays (a list column) is stacked into one tensor.
    A column of strings stays a list of ``str``, as torch's ``default_collate`` leaves it.

    Parameters
    ----------
    batch
        Column name -> numpy array (a loader batch with ``output="numpy"``).

    Returns
    -------
    dict
        Column name -> ``torch.Tensor`` (or ``list[str]``).

    Raises
    ------
    FormatError
        A column torch cannot hold (ragged lists, mixed objects): names the column.

    Examples
    --------
    >>> import numpy as np
    >>> t = to_tensors({"x": np.array([1.5, 2.0], dtype=np.float32),
    ...                 "ok": np.array([True, False]), "name": np.array(["a", "b"])})
    >>> t["x"].dtype, t["ok"].dtype, t["name"]
    (torch.float32, torch.bool, ['a', 'b'])
    """
    return {name: _tensor(name, np.asarray(col)) for name, col in batch.items()}


def _tensor(name: str, col: np.ndarray) -> Any:
    kind = col.dtype.kind
    if kind in "biufc":
        if not col.flags.writeable:  # torch warns on read-only memory (arrow's buffers)
            col = col.copy()
        return torch.from_numpy(np.ascontiguousarray(col))
    if kind in "mM":
        return torch.from_numpy(np.ascontiguousarray(col.view(np.int64)).copy())
    if kind in "US":
        return col.astype(str).tolist()
    if kind == "O":
        items = list(col)
        if all(isinstance(v, str) for v in items):
            return items
        arrays = [np.asarray(v) for v in items]
        if arrays and all(a.dtype.kind in "biuf" and a.shape == arrays[0].shape
                          for a in arrays):
            return torch.from_numpy(np.stack(arrays))
        raise FormatError(
            f"column {name!r} cannot become a torch tensor: its values are ragged lists or "
            "mixed objects; leave it out (columns=[...]), pad it to one length, or use "
            "output='numpy' / 'arrow' and convert it yourself"
        )
    raise FormatError(
        f"column {name!r} has dtype {col.dtype}, which torch cannot hold; leave it out "
        "(columns=[...]) or use output='numpy'"
    )


def _state_at(loader: Loader, position: int) -> dict[str, Any]:
    """The loader's state with ``position`` of its batches of the epoch consumed (the state
    counts rows of whole global steps, the same on every rank: lakekit/train/state.py)."""
    state = loader.state_dict()
    state["rows"] = int(position) * loader.global_batch_size
    return state


class TorchDataset(IterableDataset):
    """A :class:`~lakekit.train.Loader` as a torch ``IterableDataset`` (``loader.torch()``).

    Use it with ``DataLoader(ds, batch_size=None, num_workers=n)``: the DataLoader yields
    exactly the loader's sequence of batches for this rank, for any ``n``. It implements the
    ``state_dict`` / ``load_state_dict`` protocol of torchdata's ``StatefulDataLoader``;
    with a plain DataLoader, iterate ``ds.track(dl)`` and ``ds.state_dict()`` is exact.

    Parameters
    ----------
    loader
        The loader (it is pickled into each DataLoader worker).
    output
        The batch type: ``"torch"`` (default: dict of tensors, see :func:`to_tensors`),
        ``"numpy"``, ``"arrow"``, ``"polars"``, or None for the loader's own ``output``.

    Examples
    --------
    >>> import torch, pyarrow as pa, pyarrow.parquet as pq, tempfile, lakekit as lk
    >>> d = tempfile.mkdtemp()
    >>> pq.write_table(pa.table({"id": range(40)}), f"{d}/part-0.parquet", row_group_size=10)
    >>> ds = lk.dataset(d).loader(batch_size=8, seed=1).torch()
    >>> dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)
    >>> batches = []
    >>> for batch in ds.track(dl):
    ...     batches.append(batch["id"])
    ...     if len(batches) == 2:
    ...         break
    >>> state = ds.state_dict()          # 2 batches consumed
    >>> again = lk.dataset(d).loader(batch_size=8, seed=1).torch()
    >>> again.load_state_dict(state)
    >>> rest = [b["id"] for b in torch.utils.data.DataLoader(again, batch_size=None)]
    >>> len(batches + rest), sorted(torch.cat(batches + rest).tolist()) == list(range(40))
    (5, True)
    """

    def __init__(self, loader: Loader, *, output: Output | None = "torch") -> None:
        super().__init__()
        if output not in (None, "numpy", "arrow", "polars", "torch"):
            raise ConfigError(f"output must be 'torch', 'numpy', 'arrow', 'polars' or None; "
                              f"got {output!r}")
        self._loader = loader
        self._output = output
        self._position = int(loader.position)  # main process: next batch to consume
        self._next: int | None = None  # in a worker: the next batch this worker produces
        self._done = self._position  # in a worker: position after its last batch
        self._pid = os.getpid()  # the process whose loader this is (see _own_loader)

    # -- the loader's view -------------------------------------------------------------
    @property
    def loader(self) -> Loader:
        """The wrapped loader."""
        return self._loader

    @property
    def position(self) -> int:
        """In the main process: the batches of this epoch consumed so far (see ``track``)."""
        return self._position

    def __len__(self) -> int:
        """Batches per epoch for this rank (``len(loader)``)."""
        return len(self._loader)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` (call before each pass, as with ``DistributedSampler``)."""
        self._loader.set_epoch(epoch)
        self._position = int(self._loader.position)
        self._next, self._done = None, self._position

    def __repr__(self) -> str:
        return (f"TorchDataset(epoch={self._loader.epoch}, position={self._position}, "
                f"batches={len(self._loader)}, rank={self._loader.rank}/"
                f"{self._loader.world_size}, output={self._output!r})")

    # -- iteration ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        total = len(self._loader)
        if info is None:
            if self._position >= total:
                self._position = 0  # an epoch iterated again without set_epoch, as Loader does
            start = self._position
            indices = range(start, total)
            batches = self._loader.batches(start=start, output=self._output)
            for i, batch in zip(indices, batches, strict=True):
                self._position = i + 1  # counted as consumed once the loop receives it
                yield batch
            return
        n, w = int(info.num_workers), int(info.id)
        if n > 1 and w == 0 and self._loader.shuffle:
            warnings.warn(
                f"lakekit loader with DataLoader(num_workers={n}): every worker reads every "
                f"unit of the shuffle window, so the data is read {n} times; the loader "
                "reads ahead in its own threads, and num_workers=0 is faster", stacklevel=2)
        self._own_loader()
        first = self._first_index(w, n)
        indices = range(first, total, n)
        batches = self._loader.batches(start=first, worker=first % n, num_workers=n,
                                       output=self._output)
        for i, batch in zip(indices, batches, strict=True):
            self._next, self._done = i + n, i + 1
            yield batch

    def _own_loader(self) -> None:
        """In a forked DataLoader worker, rebuild the loader as a spawned worker would get it.

        A fork copies the parent's open filesystems as they are, and s3fs / gcsfs (fsspec's
        async filesystems) refuse to run in a fork ("not fork-safe"); a pickle round trip
        re-creates them from their options, in this process.
        """
        if self._pid != os.getpid():
            self._loader = pickle.loads(pickle.dumps(self._loader))
            self._pid = os.getpid()

    def _first_index(self, worker: int, num_workers: int) -> int:
        if self._next is None:
            self._next = self._position + worker
        return self._next

    def track(self, batches: Iterable[T]) -> Iterator[T]:
        """Yield ``batches`` (a DataLoader over this dataset), counting them as consumed.

        Use it with a plain ``torch.utils.data.DataLoader`` with workers: the main process
        counts the batches the loop received, and :meth:`state_dict` is the state after them
        (prefetched batches not yet received are not counted).
        """
        total = len(self._loader)
        start = 0 if self._position >= total else self._position
        for k, batch in enumerate(batches, start=1):
            self._position = min(start + k, total)
            yield batch

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state after the consumed batches (small, JSON-serialisable).

        In the main process: the loader's state at :attr:`position`. In a DataLoader worker
        (where torchdata's StatefulDataLoader asks for it after each batch): the batches
        this worker has produced, which the StatefulDataLoader keeps per yielded batch.
        """
        info = torch.utils.data.get_worker_info()
        if info is None:
            return {"format": _FORMAT, "loader": _state_at(self._loader, self._position)}
        n, w = int(info.num_workers), int(info.id)
        nxt = self._first_index(w, n)
        return {
            "format": _FORMAT,
            "loader": _state_at(self._loader, self._done),
            "worker": w, "num_workers": n, "next": nxt,
            "rank": int(self._loader.rank), "world_size": int(self._loader.world_size),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue after the batches ``state`` says were consumed.

        Accepts what :meth:`state_dict` returned (in the main process, or per worker from a
        StatefulDataLoader, which calls this in each worker). The loader refuses a state of
        other data, another seed or another filter (``DataChangedError``).
        """
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise ConfigError(
                "not a TorchDataset state (expected the dict TorchDataset.state_dict() "
                "returned); for the loader's own state use loader.load_state_dict(state)"
            )
        self._loader.load_state_dict(dict(state["loader"]))
        self._position = int(self._loader.position)
        self._next, self._done = None, self._position
        if "worker" not in state:
            return
        info = torch.utils.data.get_worker_info()
        same = (info is not None and int(info.id) == state["worker"]
                and int(info.num_workers) == state["num_workers"]
                and int(self._loader.world_size) == state["world_size"]
                and int(self._loader.rank) == state["rank"])
        if not same:
            raise ConfigError(
                "this state is one DataLoader worker's (worker "
                f"{state['worker']} of {state['num_workers']}, rank {state['rank']} of "
                f"{state['world_size']}): it resumes only in that worker of the same setup; "
                "to resume on another world size or number of workers, load "
                "TorchDataset.loader_state(dataloader_state) into the loader instead"
            )
        self._next = int(state["next"])

    @staticmethod
    def loader_state(dataloader_state: Mapping[str, Any]) -> dict[str, Any]:
        """The loader's state after the batches a StatefulDataLoader's loop consumed.

        ``loader.load_state_dict(TorchDataset.loader_state(sdl.state_dict()))`` resumes on
        any world size and any number of workers (the loader converts the position).

        Parameters
        ----------
        dataloader_state
            ``StatefulDataLoader.state_dict()`` of a DataLoader over a :class:`TorchDataset`
            (any ``num_workers``).
        """
        snapshot = dataloader_state.get("_snapshot")
        if snapshot is None:  # num_workers=0: the dataset's own state
            own = dataloader_state.get("dataset_state")
            if not own:
                raise ConfigError("this StatefulDataLoader state holds no TorchDataset state")
            return dict(own["loader"])
        workers = [w.get("dataset_state") for w in snapshot["_worker_snapshots"].values()]
        states = [s for s in workers if s and s.get("format") == _FORMAT]
        if not states or int(dataloader_state.get("_steps_since_snapshot", 0)) != 0:
            raise ConfigError(
                "this StatefulDataLoader state holds no per-batch TorchDataset state; "
                "create the StatefulDataLoader with snapshot_every_n_steps=1 (the default)"
            )
        # Batches are consumed in order: the worker of the last consumed batch is the one
        # whose produced batches reach furthest, and its position is the rank's position.
        return dict(max(states, key=lambda s: int(s["next"]) - int(s["num_workers"]))["loader"])
