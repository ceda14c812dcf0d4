"""The CLI as the tests call it: ``main(argv)`` in-process, with what it printed captured."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import pytest

from lakekit.cli import main

__all__ = ["Cli", "CliResult", "run_cli"]


class CliResult(NamedTuple):
    """Exit status and captured output of one ``lakekit`` command."""

    code: int
    out: str
    err: str


class Cli(Protocol):
    """The ``cli`` fixture: ``cli("head", path, "-n", "3")`` runs ``lakekit head ...``."""

    def __call__(self, *argv: str) -> CliResult: ...


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    """Run ``lakekit *argv`` in this process; return its exit status, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return CliResult(code, out, err)
