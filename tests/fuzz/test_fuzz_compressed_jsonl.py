"""Truncated and corrupted ``.jsonl.gz`` / ``.jsonl.zst`` files.

Reading one through ``lk.dataset(path).to_arrow()`` gives exactly the rows written or a
``FormatError`` naming the file: never another exception, a hang, or some of the rows
without an error. gzip carries a CRC-32 and the length of its content; the zstd files are
written with a content checksum (``write_checksum=True``), without which a corrupted
frame can decode to other bytes that no reader can tell from the real ones. Files are
read from local disk and from fsspec's memory filesystem (the remote stream path).
"""

from __future__ import annotations

import gzip
import json
import uuid
from functools import cache
from pathlib import Path

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakekit as lk
from lakekit.errors import FormatError

pytestmark = pytest.mark.timeout(120)

ROWS = [{"id": i, "text": f"row {i} " + "é" * (i % 7)} for i in range(400)]
FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None)
WHERE = ["local", "memory"]  # memory://: the remote stream path (fsspec)


def zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


COMPRESS = {".jsonl.gz": lambda b: gzip.compress(b, compresslevel=6, mtime=0),
            ".jsonl.zst": zstd}


@cache
def original(suffix: str) -> bytes:
    return COMPRESS[suffix]("".join(json.dumps(r) + "\n" for r in ROWS).encode())


def place(path: Path, data: bytes, where: str) -> str:
    """``data`` as a file on local disk or in fsspec's memory filesystem; its URL."""
    if where == "local":
        path.write_bytes(data)
        return str(path)
    url = f"memory://fuzz-{uuid.uuid4().hex[:8]}/{path.name}"
    fsspec.filesystem("memory").pipe(url, data)
    return url


def read_or_error(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    try:
        table = lk.dataset(url).to_arrow()
    except FormatError as exc:
        assert name in str(exc), str(exc)
        return
    finally:
        if url.startswith("memory://"):
            fsspec.filesystem("memory").rm(url)
    assert table.to_pylist() == ROWS


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_the_files_read_back(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ok{suffix}"
    path.write_bytes(original(suffix))
    assert lk.dataset(str(path)).to_arrow().to_pylist() == ROWS


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("suffix", list(COMPRESS))
@FUZZ
@given(cut=st.integers(0, 10**6))
def test_truncated_streams_raise_format_error(tmp_path_factory: pytest.TempPathFactory,
                                              suffix: str, where: str, cut: int) -> None:
    data = original(suffix)
    path = tmp_path_factory.mktemp("cut") / f"events{suffix}"
    # 1 byte or more (an empty file reads as no rows, as an empty plain file does), and
    # always shorter than the whole
    url = place(path, data[:1 + cut % (len(data) - 1)], where)
    try:
        with pytest.raises(FormatError, match=path.name):
            lk.dataset(url).to_arrow()
    finally:
        if where == "memory":
            fsspec.filesystem("memory").rm(url)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("suffix", list(COMPRESS))
@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                      min_size=1, max_size=3))
def test_corrupted_streams_give_the_rows_or_format_error(
        tmp_path_factory: pytest.TempPathFactory, suffix: str, where: str,
        edits: list[tuple[int, int]]) -> None:
    data = bytearray(original(suffix))
    for at, byte in edits:
        data[at % len(data)] = byte
    path = tmp_path_factory.mktemp("bad") / f"events{suffix}"
    read_or_error(place(path, bytes(data), where))


# -- JSONL with random bytes -------------------------------------------------------------------

# a bad line: a byte no JSON value starts with, then random bytes (no line break)
bad_lines = st.tuples(st.sampled_from([b"}", b"#", b"\x01", b"\xff", b"]", b":"]),
                      st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(
                          b"\r", b""))).map(b"".join)


@pytest.mark.parametrize("suffix", [".jsonl", *COMPRESS])
@settings(FUZZ, max_examples=40)
@given(bad=st.lists(st.tuples(st.integers(0, len(ROWS)), bad_lines), min_size=1, max_size=6))
def test_random_bytes_lines_are_named_or_skipped_and_counted(
        tmp_path_factory: pytest.TempPathFactory, suffix: str,
        bad: list[tuple[int, bytes]]) -> None:
    """Lines of random bytes among valid ones: ``on_bad_lines="error"`` names the first
    (by its line number), ``"skip"`` gives exactly the valid rows and counts the others."""
    lines = [json.dumps(r).encode() for r in ROWS]
    for at, line in sorted(bad, reverse=True):  # inserted before the row at ``at``
        lines.insert(at, line)
    bad_numbers = [n for n, line in enumerate(lines, 1) if line in {b for _, b in bad}]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path_factory.mktemp("junk") / f"events{suffix}"
    path.write_bytes(COMPRESS[suffix](data) if suffix in COMPRESS else data)
    with pytest.raises(FormatError) as raised:
        lk.dataset(str(path)).to_arrow()
    assert f"{path.name}:{bad_numbers[0]}:" in str(raised.value), str(raised.value)
    with pytest.warns(lk.errors.BadRecordsWarning) as warned:
        table = lk.dataset(str(path), on_bad_lines="skip").to_arrow()
    assert table.to_pylist() == ROWS
    assert [str(w.message) for w in warned if w.category is lk.errors.BadRecordsWarning] \
        and f"skipped {len(bad)} bad line(s); first at" in str(warned[0].message)
    assert f"{path.name}:{bad_numbers[0]}:" in str(warned[0].message)
