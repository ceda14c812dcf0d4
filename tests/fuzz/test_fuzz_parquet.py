"""Parquet files with corrupted footers and pages, and truncated ones.

Read through ``lk.dataset(...).to_arrow()``, ``iter_batches`` and ``pieces`` /
``read_piece`` on local disk, and ``to_arrow`` through a user-written fsspec filesystem
(``BlobFS``: the byte-range path with its ``SparseFile`` cache), a damaged file gives
exactly the rows written (the damage hit bytes no read uses, statistics for example) or a
``FormatError`` naming the file: never another exception, a hang, or other rows.

"Never other rows" needs the page CRCs (``write_page_checksum=True``, here for every
file): lakekit verifies them when reading (``page_checksum_verification``); a file
without them can decode a corrupted value silently, which no reader can detect. The
footer has no checksum either: a damaged column name (a byte of it replaced) reads as
another name, a damaged type annotation a string column as binary; the test allows
that, as long as the values are the ones written.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import multiprocessing
import os
import signal
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _support.testfs import BlobFS
from hypothesis import event, example, given, reject, settings
from hypothesis import strategies as st

import lakekit as lk
from lakekit.errors import FormatError

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=45, deadline=None, derandomize=True, database=None)
N = 1_500


def table() -> pa.Table:
    return pa.table({
        "id": pa.array(range(N), pa.int64()),
        "kind": pa.array([("click", "view", "buy")[i % 3] for i in range(N)]),
        "amount": pa.array([None if i % 11 == 0 else i * 0.25 for i in range(N)]),
        "tags": pa.array([[f"t{j}" for j in range(i % 4)] for i in range(N)],
                         pa.list_(pa.string())),
        "point": pa.array([{"x": i, "y": -i} for i in range(N)],
                          pa.struct([("x", pa.int32()), ("y", pa.int32())])),
    })


LAYOUTS: dict[str, dict[str, Any]] = {
    "snappy-dict-rowgroups": {"compression": "snappy", "row_group_size": 500},
    "zstd-plain": {"compression": "zstd", "use_dictionary": False, "row_group_size": N},
    "gzip-small-pages": {"compression": "gzip", "data_page_size": 2048,
                         "row_group_size": 700},
    "uncompressed-v1-pages": {"compression": "none", "data_page_version": "1.0",
                              "row_group_size": 400},
}


@cache
def original(layout: str) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table(), buf, write_page_checksum=True, **LAYOUTS[layout])
    return buf.getvalue()


def read(path: Path, how: str) -> pa.Table:
    if how == "to_arrow":
        return lk.dataset(str(path)).to_arrow()
    if how == "iter_batches":
        return pa.Table.from_batches(list(lk.dataset(str(path)).iter_batches(batch_size=333)))
    if how == "pieces":
        ds = lk.dataset(str(path))
        return pa.concat_tables([ds.read_piece(p) for p in ds.pieces()])
    fs = BlobFS()
    fs.put(f"blob/{path.name}", path.read_bytes())
    return lk.dataset(f"blob/{path.name}", filesystem=fs).to_arrow()


HOW = ["to_arrow", "iter_batches", "pieces", "blobfs"]


def _quiet_child() -> None:
    """In a forked child that may abort: no crash report on the test's output."""
    faulthandler.disable()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


def _walk_metadata(data: bytes) -> None:
    _quiet_child()
    try:
        md = pq.read_metadata(pa.BufferReader(data))
        for i in range(md.num_row_groups):
            for j in range(md.num_columns):
                _ = md.row_group(i).column(j).statistics
    except Exception:  # a Python exception is no abort: the test proper checks lakekit maps it
        pass


def pyarrow_aborts_on(data: bytes) -> bool:
    """Whether pyarrow itself aborts the process on this file's footer.

    pyarrow 26 throws a C++ exception nobody catches (``std::terminate``: "Definition level
    histogram size mismatch") when a damaged footer's size statistics are read, from its
    Python metadata accessors and from the dataset scanner's statistics alike: no caller
    can catch that. Such files are screened out here, in a forked child, and the crash is
    recorded by :func:`test_pyarrow_aborts_on_a_damaged_size_histogram` (strict xfail).
    """
    child = multiprocessing.get_context("fork").Process(target=_walk_metadata, args=(data,))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        raise AssertionError("reading the footer hung")
    return child.exitcode == -signal.SIGABRT


def read_or_error(path: Path, how: str) -> None:
    try:
        got = read(path, how)
    except FormatError as exc:
        assert path.name in str(exc), str(exc)
        return
    # the footer has no checksum: a damaged column name (a struct field's too) reads as
    # another name, which no reader can tell from the real one; the values must still be
    # the ones written
    got, want = got.flatten(), table().flatten()
    if got.column_names != want.column_names:
        got = got.rename_columns(want.column_names)
    if not got.schema.equals(want.schema):
        # likewise a damaged type annotation (string read as binary): same bytes
        got = got.cast(want.schema)
    assert got.equals(want), f"{how}: other rows, no error"


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_files_read_back(tmp_path: Path, layout: str, how: str) -> None:
    path = tmp_path / "ok.parquet"
    path.write_bytes(original(layout))
    assert read(path, how).equals(table())


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@FUZZ
# found by this test: a page value changed with no error (page CRCs were not checked)
@example(region="anywhere", edits=[(50000, 0)])
# column names / paths in the footer that are not UTF-8: UnicodeDecodeError
@example(region="footer", edits=[(60, 128)])
@example(region="footer", edits=[(126945, 128)])
@example(region="footer", edits=[(9060588, 128)])
# a column's type annotation damaged: string read as binary (the same bytes)
@example(region="footer", edits=[(36, 1)])
@given(region=st.sampled_from(["footer", "anywhere"]), edits=st.lists(
    st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=3))
def test_corrupted_files_give_the_rows_or_format_error(
        tmp_path_factory: pytest.TempPathFactory, layout: str, how: str, region: str,
        edits: list[tuple[int, int]]) -> None:
    data = bytearray(original(layout))
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for at, byte in edits:
        span = footer if region == "footer" else len(data)
        data[len(data) - span + at % span] = byte
    if region == "footer" and pyarrow_aborts_on(bytes(data)):
        event("pyarrow aborts on this footer (screened out)")
        reject()
    path = tmp_path_factory.mktemp("bad") / f"{layout}.parquet"
    path.write_bytes(bytes(data))
    read_or_error(path, how)


def _read_in_child(path: str) -> None:
    _quiet_child()
    with contextlib.suppress(FormatError):
        lk.dataset(path).to_arrow()


@pytest.mark.xfail(strict=True, reason="pyarrow 26 aborts (std::terminate) on a damaged "
                   "size-statistics histogram in a footer; no caller can catch it")
def test_pyarrow_aborts_on_a_damaged_size_histogram(tmp_path: Path) -> None:
    """Found by the fuzzing above: one byte of the footer of the
    "uncompressed-v1-pages" file replaced kills the reading process."""
    data = bytearray(original("uncompressed-v1-pages"))
    footer = int.from_bytes(data[-8:-4], "little") + 8
    data[len(data) - footer + 29] = 29
    path = tmp_path / "histogram.parquet"
    path.write_bytes(bytes(data))
    child = multiprocessing.get_context("fork").Process(target=_read_in_child,
                                                        args=(str(path),))
    child.start()
    child.join(60)
    assert child.exitcode == 0, f"the reading process died (exit code {child.exitcode})"


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@FUZZ
@given(cut=st.integers(0, 10**7))
def test_truncated_files_raise_format_error(tmp_path_factory: pytest.TempPathFactory,
                                            layout: str, how: str, cut: int) -> None:
    data = original(layout)
    path = tmp_path_factory.mktemp("cut") / f"{layout}.parquet"
    path.write_bytes(data[:1 + cut % (len(data) - 1)])
    with pytest.raises(FormatError, match=path.name):
        read(path, how)
