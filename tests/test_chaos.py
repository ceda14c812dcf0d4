"""A short chaos run (``benchmarks/chaos.py``): a sink killed with SIGKILL and a broker
restarted at random moments, two writers, readers, tag / compaction and checks, every S3
request through the seeded fault proxy; then nothing lost, nothing duplicated, no wrong
answer, and the faults really were injected. And the run's truth: what counts as a row a
broker restart accounts for, and what stays wrong."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def chaos_module() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "chaos.py"
    spec = importlib.util.spec_from_file_location("chaos", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.kafka
@pytest.mark.s3
@pytest.mark.slow
def test_a_short_chaos_run_loses_duplicates_and_gets_wrong_nothing() -> None:
    chaos = chaos_module()
    result = chaos.run(12, seed=7, kill_every=(3, 5), restart_every=(5, 8), rate=200,
                       drain_timeout=150)
    report = chaos.markdown([result])
    assert chaos.lost_duplicated_wrong(result) == (0, 0, 0), report
    assert result["drained"], report
    rows = result["rows"]
    assert rows["sink: events"]["present"] > 200, report  # the sink really ran
    assert rows["sink: dead letters"]["present"] > 5, report
    assert rows["writers: rows"]["present"] >= 500, report
    assert result["sink_kills"] >= 2 and result["broker_restarts"] >= 1, report
    assert result["broker"]["acked"] > 200, report  # the producer's acks were kept
    faults = result["faults"]
    assert result["faults_total"] >= 40, report
    assert {f.split()[1] for f in faults} >= {"slowdown", "internal", "reset", "truncate"}, report
    assert any(f.startswith("cput ") for f in faults), report  # commits were hit


def test_only_offsets_a_broker_restart_dropped_are_not_counted_wrong() -> None:
    chaos = chaos_module()
    # partition 0 ended at 10 before the kill and had acked up to 11; the restarted broker
    # ends at 8: offsets 8-11 were dropped; partition 1 lost nothing; a broker that did
    # not answer after its restart drops nothing
    restart = chaos.Restart({0: 10, 1: 5}, {0: 12, 1: 5}, {0: 8, 1: 5})
    assert restart.dropped == [(0, 8, 12)]
    assert chaos.Restart({0: 10}, {0: 12}, None).dropped == []
    dropped = restart.dropped
    # the topic now: records 0-7 at offsets 0-7, then new records 100 (JSON), 101 (not
    # JSON), 102 took offsets 8-10; partition 1 holds records 50-54
    truth = {(0, o): (True, o) for o in range(8)}
    truth |= {(0, 8): (True, 100), (0, 9): (False, 101), (0, 10): (True, 102)}
    truth |= {(1, o): (True, 50 + o) for o in range(5)}
    # the sink read the old log to offset 11 before the restart
    events = [((0, o), o) for o in range(12)] + [((1, o), 50 + o) for o in range(5)]
    passed = chaos._passed(truth, events, [], dropped)
    assert passed == {0: 12}
    assert chaos.compare(True, truth, events, dropped, passed) == {
        "expected": 15, "present": 17, "lost": 0, "duplicated": 0, "unexpected": 0,
        "broker dropped": 1, "broker re-used": 3}  # 11; 8, 9, 10
    assert chaos.compare(False, truth, [], dropped, passed)["broker re-used"] == 1  # 101
    # anything else stays wrong: a row at an offset no restart dropped, a record missing,
    # another record at an offset no restart dropped, a duplicate
    wrong = [*events, ((1, 7), 99)]
    assert chaos.compare(True, truth, wrong, dropped, passed)["unexpected"] == 1
    missing = [e for e in events if e[0] != (0, 3)]
    assert chaos.compare(True, truth, missing, dropped, passed)["lost"] == 1
    other = [((1, 0), 77) if k == (1, 0) else (k, n) for k, n in events]
    assert chaos.compare(True, truth, other, dropped, passed)[
        "lost"] == chaos.compare(True, truth, other, dropped, passed)["unexpected"] == 1
    assert chaos.compare(True, truth, [*events, ((1, 2), 52)], dropped, passed)[
        "duplicated"] == 1
    # with no dropped range, the old log's rows are all wrong
    assert chaos.compare(True, truth, events, [], {})["unexpected"] == 4


def test_a_record_names_its_number() -> None:
    chaos = chaos_module()
    assert chaos.record_id(b'{"id": 3, "kind": "view"}') == (True, 3)
    assert chaos.record_id(b"not json 24") == (False, 24)
