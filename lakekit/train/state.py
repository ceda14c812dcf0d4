"""A loader's state: a small JSON dict saying where the epoch is, and on which data.

The position is counted in rows of the epoch's sequence (whole global steps), so it means
the same on any world size; the fingerprint, table version, seed, shuffle and window say
which sequence it is a position of, and a state from another one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lakekit.errors import ConfigError, DataChangedError

__all__ = ["SavedState", "check_state", "make_state"]

FORMAT = 1
_KEY = "lakekit.loader"


@dataclass(frozen=True)
class SavedState:
    """What a loader takes from a valid state."""

    epoch: int
    rows: int
    window: int


def make_state(*, fingerprint: str, version: int | None, seed: int, shuffle: bool,
               drop_last: bool, epoch: int, rows: int, global_batch: int, window: int,
               world_size: int) -> dict[str, Any]:
    """The state dict (JSON-safe, well under 1 KiB).

    Examples
    --------
    >>> s = make_state(fingerprint="ab", version=3, seed=0, shuffle=True, drop_last=True,
    ...                epoch=1, rows=512, global_batch=256, window=4096, world_size=2)
    >>> s["epoch"], s["rows"], s["global_batch"]
    (1, 512, 256)
    """
    return {
        _KEY: FORMAT, "fingerprint": fingerprint, "version": version, "seed": seed,
        "shuffle": shuffle, "drop_last": drop_last, "epoch": epoch, "rows": rows,
        "global_batch": global_batch, "window": window, "world_size": world_size,
    }


def check_state(state: Any, *, fingerprint: str, version: int | None, seed: int,
                shuffle: bool, drop_last: bool, world_size: int,
                batch_size: int) -> SavedState:
    """Validate ``state`` against a loader; say what to change when it does not fit."""
    if not isinstance(state, dict) or state.get(_KEY) != FORMAT:
        raise ConfigError("not a lakekit loader state (expected the dict that "
                          "Loader.state_dict() returned)")
    try:
        epoch, rows = int(state["epoch"]), int(state["rows"])
        g, window = int(state["global_batch"]), int(state["window"])
        saved_seed, saved_shuffle = int(state["seed"]), bool(state["shuffle"])
        saved_fp, saved_version = str(state["fingerprint"]), state["version"]
        saved_drop = bool(state["drop_last"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"a lakekit loader state with a missing or bad field: {exc}") from None
    if saved_version != version:
        raise DataChangedError(
            f"the state was saved on table version {saved_version}, this loader reads version "
            f"{version}: open the dataset with version={saved_version}"
        )
    if saved_fp != fingerprint:
        raise DataChangedError(
            "the state was saved on other data (its fingerprint differs: other files, rows, "
            "table version or filter): resume on the data it was saved on, with the same filter"
        )
    if saved_seed != seed or saved_shuffle != shuffle:
        raise ConfigError(f"the state was saved with seed={saved_seed}, shuffle={saved_shuffle}; "
                          f"this loader has seed={seed}, shuffle={shuffle}: pass the saved ones")
    if saved_drop != drop_last:
        raise ConfigError(f"the state was saved with drop_last={saved_drop}: pass the same")
    if g % world_size:
        raise ConfigError(f"the state's global batch of {g} rows does not divide among "
                          f"{world_size} ranks: resume on a world size that divides {g}")
    if batch_size * world_size != g:
        raise ConfigError(f"the state's global batch is {g} rows: on {world_size} ranks pass "
                          f"batch_size={g // world_size} (not {batch_size})")
    if rows < 0 or rows % g or epoch < 0 or window < 1:
        raise ConfigError("a lakekit loader state with an impossible position")
    return SavedState(epoch, rows, window)
