"""Two compactions of the same small-file table at once (threads and processes, local disk
and the moto S3 server): deltalake alone commits both and duplicates every rewritten row;
``Table.compact`` holds the table's compaction lease, so the rows stay exactly once."""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

import lakekit as lk
from lakekit.errors import CommitConflictError
from lakekit.storage import resolve
from lakekit.tables.maintenance import LEASE_DIR

FILES = 8
ROWS = 5


def small_files(uri: str, options: dict[str, Any] | None = None) -> None:
    t = lk.Table(uri, storage_options=options)
    for i in range(FILES):
        t.write(pa.table({"id": pa.array(range(i * ROWS, (i + 1) * ROWS), pa.int64())}))


def ids(uri: str, options: dict[str, Any] | None = None) -> list[int]:
    return sorted(lk.Table(uri, storage_options=options).read().column("id").to_pylist())


def at_once(jobs: list[Callable[[], object]]) -> list[object]:
    """Run ``jobs`` in threads released together; what each returned or raised."""
    results: list[object] = []
    start = threading.Barrier(len(jobs), timeout=60)

    def run(job: Callable[[], object]) -> None:
        start.wait()
        try:
            results.append(job())
        except Exception as exc:  # the test inspects it
            results.append(exc)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    return results


def test_deltalake_alone_duplicates_rows_when_two_compactions_race(tmp_path: Path) -> None:
    """The bug being fenced (delta-rs 1.6): both compactions commit, rows are doubled.
    Handles loaded before either commits, as two processes would have them."""
    doubled = 0
    for rnd in range(3):
        uri = str(tmp_path / f"t{rnd}")
        for i in range(FILES):
            write_deltalake(uri, pa.table({"id": pa.array(range(i * ROWS, (i + 1) * ROWS))}),
                            mode="append")
        handles = [DeltaTable(uri), DeltaTable(uri)]
        at_once([lambda dt=dt: dt.optimize.compact() for dt in handles])
        doubled += DeltaTable(uri).to_pyarrow_table().num_rows == 2 * FILES * ROWS
    assert doubled == 3


def check_fenced(uri: str, options: dict[str, Any] | None, rounds: int) -> None:
    small_files(uri, options)
    want = list(range(FILES * ROWS))
    for rnd in range(rounds):
        tables = [lk.Table(uri, storage_options=options) for _ in range(2)]
        for t in tables:
            t.version  # noqa: B018 (loads the log first, as a long-lived handle has it)
        results = at_once([t.compact for t in tables])
        assert all(isinstance(r, lk.CompactResult) for r in results), results
        removed = sorted(r.files_removed for r in results if isinstance(r, lk.CompactResult))
        assert removed[0] == 0 and removed[1] > 0, (rnd, results)
        assert ids(uri, options) == want, rnd
        lk.Table(uri, storage_options=options).write(
            pa.table({"id": pa.array([len(want)], pa.int64())}))
        want.append(len(want))


def test_table_compact_is_fenced_between_threads(tmp_path: Path) -> None:
    check_fenced(str(tmp_path / "t"), None, rounds=4)


@pytest.mark.s3
def test_table_compact_is_fenced_on_s3(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    check_fenced(f"s3://{s3_bucket}/t", s3_options, rounds=3)


def _compact_in_process(uri: str, start: Any, out: Any) -> None:
    t = lk.Table(uri)
    t.version  # noqa: B018
    start.wait(60)
    out.put(t.compact().files_removed)


def test_table_compact_is_fenced_between_processes(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    small_files(uri)
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_compact_in_process, args=(uri, start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(out.get(timeout=5) for _ in procs) == [0, FILES]
    assert ids(uri) == list(range(FILES * ROWS))


def test_a_held_lease_makes_a_compaction_wait_then_fail(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A live lease of another holder (a compaction in another process): compact() waits
    its bounded time and fails naming the lease; a released or expired one is taken."""
    from lakekit.tables import maintenance

    uri = str(tmp_path / "t")
    small_files(uri)
    loc = resolve(uri)
    lease_dir = f"{loc.path}/{LEASE_DIR}"
    loc.fs.makedirs(lease_dir, exist_ok=True)
    held = f"{lease_dir}/{0:020d}.json"
    loc.fs.pipe_file(held, b'{"owner": "x", "expires": "2999-01-01T00:00:00+00:00"}')
    monkeypatch.setattr(maintenance, "LEASE_WAIT", 0.3)
    with pytest.raises(CommitConflictError, match=r"another compaction.*00000000000000000000"):
        lk.Table(uri).compact()
    assert ids(uri) == list(range(FILES * ROWS))
    loc.fs.pipe_file(held, b'{"owner": "x", "expires": "2001-01-01T00:00:00+00:00"}')
    assert lk.Table(uri).compact().files_removed == FILES
    assert ids(uri) == list(range(FILES * ROWS))


def test_the_sinks_compaction_and_table_compact_are_fenced(tmp_path: Path) -> None:
    """The sink's compaction (compact_table) holds the same lease as Table.compact: one
    of them compacts, the other finds the lease held (the sink's retries again) or
    nothing left to compact."""
    from lakekit.sink.compaction import compact_table

    uri = str(tmp_path / "t")
    small_files(uri)
    want = list(range(FILES * ROWS))
    for rnd in range(3):
        table = lk.Table(uri)
        table.version  # noqa: B018
        results = at_once([table.compact,
                           lambda: compact_table(resolve(uri), attempts=20, base_delay=0.05)])
        assert ids(uri) == want, (rnd, results)
        for _ in range(FILES):  # small files again for the next round
            n = len(want)
            lk.Table(uri).write(pa.table({"id": pa.array([n], pa.int64())}))
            want.append(n)
    assert ids(uri) == want


def test_old_lease_generations_are_pruned(tmp_path: Path) -> None:
    from lakekit.tables.maintenance import LEASE_KEEP

    uri = str(tmp_path / "t")
    small_files(uri)
    t = lk.Table(uri)
    for _ in range(LEASE_KEEP + 5):
        t.compact()
    names = sorted(p.name for p in (tmp_path / "t" / LEASE_DIR).iterdir())
    assert len(names) <= LEASE_KEEP + 1
    assert names[-1] == f"{LEASE_KEEP + 4:020d}.json"


def test_a_held_lease_is_renewed_while_its_holder_compacts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder outliving several expiry periods keeps the lease (it renews it); once it
    releases, the next compaction proceeds at once."""
    import time

    from lakekit.tables import maintenance
    from lakekit.tables._delta import DeltaHandle

    uri = str(tmp_path / "t")
    small_files(uri)
    monkeypatch.setattr(maintenance, "LEASE_SECONDS", 0.4)
    monkeypatch.setattr(maintenance, "LEASE_WAIT", 0.2)
    holder = maintenance.CompactLease(DeltaHandle(resolve(uri)).location)
    holder.acquire()
    try:
        time.sleep(1.2)  # three expiry periods
        with pytest.raises(CommitConflictError, match="another compaction"):
            lk.Table(uri).compact()
    finally:
        holder.release()
    assert lk.Table(uri).compact().files_removed == FILES
    assert ids(uri) == list(range(FILES * ROWS))
