"""A short chaos run (``benchmarks/chaos.py``): a sink killed with SIGKILL and a broker
restarted at random moments, two writers, readers, tag / compaction and checks, every S3
request through the seeded fault proxy; then nothing lost, nothing duplicated, no wrong
answer, and the faults really were injected."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.s3, pytest.mark.slow]


def chaos_module() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "chaos.py"
    spec = importlib.util.spec_from_file_location("chaos", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_short_chaos_run_loses_duplicates_and_gets_wrong_nothing() -> None:
    chaos = chaos_module()
    # 3 s consumer sessions (the benchmark's 6 s are its default): each sink restart
    # waits out the killed sink's session, the drain included
    result = chaos.run(12, seed=7, kill_every=(3, 5), restart_every=(5, 8), rate=200,
                       drain_timeout=150, session_timeout_ms=3000)
    report = chaos.markdown([result])
    assert chaos.lost_duplicated_wrong(result) == (0, 0, 0), report
    assert result["drained"], report
    rows = result["rows"]
    assert rows["sink: events"]["present"] > 200, report  # the sink really ran
    assert rows["sink: dead letters"]["present"] > 5, report
    assert rows["writers: rows"]["present"] >= 500, report
    assert result["sink_kills"] >= 2 and result["broker_restarts"] >= 1, report
    faults = result["faults"]
    assert result["faults_total"] >= 40, report
    assert {f.split()[1] for f in faults} >= {"slowdown", "internal", "reset", "truncate"}, report
    assert any(f.startswith("cput ") for f in faults), report  # commits were hit
