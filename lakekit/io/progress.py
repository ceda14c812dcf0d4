"""Progress bars by bytes and files: widgets in Jupyter, plain lines in logs."""

from __future__ import annotations

import importlib.util
import sys
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress", "interactive"]


def interactive() -> bool:
    """True in a Jupyter kernel or when stderr is a terminal."""
    if _in_jupyter():
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _LineWriter:
    """A stream for logs: each refresh of a bar becomes one plain line (no carriage returns)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = ""

    def write(self, text: str) -> int:
        for part in text.replace("\r", "\n").split("\n"):
            line = part.strip()
            if line and line != self._last:
                self._stream.write(line + "\n")
                self._last = line
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def _in_jupyter() -> bool:
    """True inside a running Jupyter kernel (not merely with ipykernel imported)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _make_bar(*, total: int | None, desc: str) -> Any:
    """A widget in Jupyter (with ipywidgets), a redrawn line on a terminal, plain lines in logs."""
    common: dict[str, Any] = dict(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
    )
    if _in_jupyter() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(leave=False, mininterval=0.2, **common)
    from tqdm.std import tqdm

    if _in_jupyter() or getattr(sys.stderr, "isatty", lambda: False)():
        return tqdm(leave=False, mininterval=0.2, **common)
    # a log file or a pipe: a line every few seconds, and a last one when done
    return tqdm(file=_LineWriter(sys.stderr), leave=True, mininterval=5.0, ncols=100,
                ascii=True, **common)


class Progress:
    """A progress bar over ``total_bytes`` and ``total_files`` (a no-op when disabled)."""

    def __init__(self, *, total_bytes: int, total_files: int, desc: str, enabled: bool | None):
        self._bar: Any = None
        self._files_total = total_files
        self._files = 0
        if enabled is None:
            enabled = interactive()
        if enabled:
            self._bar = _make_bar(total=total_bytes or None, desc=desc)

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
