"""Four writers append to one table at once, every request of theirs through the fault
proxy (503 SlowDown, 500, resets before and after the server applied a request, cut-short
bodies, stalls): every row lands exactly once, each batch in exactly one commit, and the
versions are consecutive."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pyarrow as pa
import pytest
from _support.proxy_process import proxy_process

import lakekit as lk

pytestmark = [pytest.mark.s3, pytest.mark.slow]

WRITERS, BATCHES, ROWS = 4, 5, 20
READS = {"slowdown": 0.03, "internal": 0.03, "reset": 0.03, "truncate": 0.03}
SCHEDULE: dict[str, dict[str, float]] = {
    "cput": {"reset_after": 0.15, "reset": 0.1, "internal": 0.05, "slowdown": 0.05},
    "put": {"reset_after": 0.05, "reset": 0.05, "internal": 0.05, "slowdown": 0.05},
    "get": {**READS, "stall": 0.02}, "get_range": READS, "list": READS, "head": READS,
}


def batch(writer: int, n: int) -> pa.Table:
    first = (writer * BATCHES + n) * ROWS
    return pa.table({"id": pa.array(range(first, first + ROWS), pa.int64()),
                     "writer": pa.array([writer] * ROWS, pa.int32())})


@pytest.mark.parametrize("seed", [2])
def test_four_writers_on_faulty_storage_write_every_row_once(
        seed: int, s3_server: Any, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    uri = f"s3://{s3_bucket}/t"
    lk.Table(uri, storage_options=s3_options).write(batch(0, 0).slice(0, 0))  # version 0
    versions: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []
    with proxy_process(s3_server.endpoint_url, seed=seed, schedule=SCHEDULE,
                       max_faults=400, stall_s=0.5) as proxy:
        go = threading.Barrier(WRITERS, timeout=60)

        def write(w: int) -> None:
            table = lk.Table(uri, storage_options=proxy.options(s3_options))
            go.wait()
            for n in range(BATCHES):
                try:
                    versions[w, n] = table.write(batch(w, n))
                except BaseException as exc:  # reported below, with the others
                    errors.append(exc)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=240)
        assert not any(th.is_alive() for th in threads), "a writer hung"
        faults = proxy.faults()
    assert not errors, f"writes failed under faults: {errors[:3]}"
    kinds = Counter((kind, fault) for kind, fault, _ in faults)
    assert kinds["cput", "reset_after"] >= 1, kinds  # ambiguous commits really happened
    assert len({fault for _, fault, _ in faults}) >= 4, kinds

    clean = lk.Table(uri, storage_options=s3_options)
    data = clean.read()
    ids = data.column("id").to_pylist()
    assert len(ids) == WRITERS * BATCHES * ROWS
    assert sorted(ids) == list(range(WRITERS * BATCHES * ROWS))  # no row lost, none twice
    # each batch is one commit: the versions returned are distinct and are exactly the
    # versions after the creating one, consecutive
    assert sorted(versions.values()) == list(range(1, WRITERS * BATCHES + 1))
    assert [c.version for c in clean.history()] == list(range(WRITERS * BATCHES, -1, -1))
    for (w, n), version in versions.items():
        at = clean.read(version=version).column("id").to_pylist()
        before = clean.read(version=version - 1).column("id").to_pylist()
        assert sorted(set(at) - set(before)) == batch(w, n).column("id").to_pylist()
