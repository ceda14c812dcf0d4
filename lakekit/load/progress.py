"""Progress bars by bytes and files: widgets in Jupyter, plain lines in logs."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["Progress", "interactive"]


def interactive() -> bool:
    """True in a Jupyter kernel or when stderr is a terminal."""
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class Progress:
    """A progress bar over ``total_bytes`` and ``total_files`` (a no-op when disabled)."""

    def __init__(self, *, total_bytes: int, total_files: int, desc: str, enabled: bool | None):
        self._bar: Any = None
        self._files_total = total_files
        self._files = 0
        if enabled is None:
            enabled = interactive()
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_bytes or None, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, leave=False, mininterval=0.2,
            )

    def advance(self, nbytes: int, files: int = 0) -> None:
        """Record ``nbytes`` read and ``files`` finished."""
        if self._bar is None:
            return
        self._files += files
        self._bar.set_postfix_str(f"{self._files}/{self._files_total} files", refresh=False)
        self._bar.update(nbytes)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
