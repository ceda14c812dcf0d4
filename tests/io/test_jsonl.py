"""JSONL / NDJSON loading: plain, .gz and .zst; bad-line policy with exact line numbers;
schemas (explicit, inferred, widened); truncated streams; memory:// and S3 (moto).

Most tests go through the public API (``lk.load`` / ``lk.dataset``); the block-level
behaviour (line numbers across block boundaries, widening between blocks, the shared
tally, early close) is checked on ``lakekit.io.jsonl`` directly with tiny blocks.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakekit as lk
from lakekit.errors import (
    BadRecordError,
    BadRecordsWarning,
    ConfigError,
    FormatError,
    SchemaMismatchError,
)
from lakekit.io.jsonl import (
    BadLineTally,
    compression_of,
    infer_jsonl_schema,
    read_jsonl_batches,
)

LOCAL = fsspec.filesystem("file")


# -- helpers ------------------------------------------------------------------------------------
def event(i: int) -> dict[str, Any]:
    """A realistic, nesting-free event."""
    return {
        "event_id": i,
        "user_id": (i * 7919) % 1000,
        "kind": ("view", "click", "purchase")[i % 3],
        "price": round(i * 0.25, 2),
        "ok": i % 5 != 0,
        "referrer": None if i % 4 == 0 else f"https://example.com/p/{i % 13}",
    }


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    ".jsonl": lambda b: b,
    ".jsonl.gz": lambda b: gzip.compress(b, compresslevel=1),
    ".jsonl.zst": zstd,
}


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` compressed as the file's extension says."""
    suffix = "".join(path.suffixes[-2:]) if path.suffix in (".gz", ".zst") else path.suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(COMPRESS[suffix](data))
    return path


def read(path: Path, **kwargs: Any) -> pa.Table:
    """All batches of one local file, through read_jsonl_batches."""
    kwargs.setdefault("schema", None)
    batches = list(read_jsonl_batches(
        LOCAL, str(path), url=str(path), compression=compression_of(str(path)), **kwargs
    ))
    if not batches:
        return pa.table({})
    return pa.concat_tables(
        [pa.Table.from_batches([b]) for b in batches], promote_options="permissive"
    )


def error_line(exc: pytest.ExceptionInfo[BaseException], path: Path) -> int:
    match = re.search(re.escape(str(path)) + r":(\d+):", str(exc.value))
    assert match, str(exc.value)
    return int(match.group(1))


# -- formats ------------------------------------------------------------------------------------
def test_plain_gz_and_zst_load_the_same_rows(tmp_path: Path) -> None:
    rows = [event(i) for i in range(3000)]
    for ext in COMPRESS:
        write(tmp_path / f"events{ext}", jsonl(rows))
    tables = {ext: lk.load(tmp_path / f"events{ext}") for ext in COMPRESS}
    for ext, table in tables.items():
        assert table.to_pylist() == rows, ext
        assert table.schema == pa.schema([
            ("event_id", pa.int64()), ("user_id", pa.int64()), ("kind", pa.string()),
            ("price", pa.float64()), ("ok", pa.bool_()), ("referrer", pa.string()),
        ])


def test_glob_of_gz_shards_reads_in_natural_order(tmp_path: Path) -> None:
    for shard in (10, 2, 1):
        rows = [event(shard * 100 + i) for i in range(3)]
        write(tmp_path / f"part_{shard}.jsonl.gz", jsonl(rows))
    table = lk.load(str(tmp_path / "*.jsonl.gz"), columns=["event_id"])
    assert table.column("event_id").to_pylist() == [100, 101, 102, 200, 201, 202, 1000, 1001, 1002]


def test_multi_member_gzip_and_missing_final_newline(tmp_path: Path) -> None:
    body = gzip.compress(jsonl([event(0), event(1)])) + gzip.compress(json.dumps(event(2)).encode())
    (tmp_path / "m.jsonl.gz").write_bytes(body)
    assert lk.load(tmp_path / "m.jsonl.gz").to_pylist() == [event(0), event(1), event(2)]


def test_blank_and_whitespace_lines_are_not_bad(tmp_path: Path) -> None:
    text = b'{"a": 1}\r\n\r\n   \n\t\n{"a": 2}\n\n\n{"a": 3}\n  '
    (tmp_path / "blank.jsonl").write_bytes(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lk.load(tmp_path / "blank.jsonl").column("a").to_pylist() == [1, 2, 3]


def test_empty_file_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    write(tmp_path / "blank.jsonl.gz", b"\n\n")
    assert read(tmp_path / "empty.jsonl").num_rows == 0
    assert read(tmp_path / "blank.jsonl.gz").num_rows == 0
    assert infer_jsonl_schema(LOCAL, str(tmp_path / "empty.jsonl"), url="e", compression=None) \
        == pa.schema([])


# -- bad lines ----------------------------------------------------------------------------------
def test_error_names_file_line_and_what_was_expected(tmp_path: Path) -> None:
    lines = jsonl([event(i) for i in range(500)]).splitlines(keepends=True)
    lines[411] = b'{"event_id": 411, "kind": "view",, }\n'
    path = tmp_path / "events.jsonl.gz"
    write(path, b"".join(lines))
    with pytest.raises(BadRecordError) as exc:
        lk.load(path)
    message = str(exc.value)
    assert f"{path}:412: expected a JSON object, got invalid JSON" in message
    assert '"kind": "view",, }' in message           # the offending text is quoted
    assert "on_bad_lines='skip'" in message          # and what to do about it


@pytest.mark.parametrize(("line", "kind"), [
    (b"null", "null"), (b"[1, 2]", "a JSON array"), (b"42", "a JSON number"),
    (b'"text"', "a JSON string"), (b"true", "a JSON boolean"), (b"  null  ", "null"),
])
def test_valid_json_that_is_not_an_object_is_a_bad_line(tmp_path: Path, line: bytes,
                                                        kind: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n' + line + b'\n{"a": 2}\n')
    expected = f"{path}:2: expected a JSON object, got {kind}"
    with pytest.raises(BadRecordError, match=re.escape(expected)):
        lk.load(path)
    with pytest.warns(BadRecordsWarning, match=r"skipped 1 bad line\(s\); first at .*x\.jsonl:2"):
        table = lk.load(path, on_bad_lines="skip")
    assert table.column("a").to_pylist() == [1, 2]


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"a": "caf\xe9"}', "invalid UTF-8"),                 # pyarrow alone passes it through
    (b'{"a": 1}{"a": 2}', "invalid JSON (Extra data"),       # pyarrow alone reads two rows
    (b'{"a": 1, "a": 2}', "specified twice"),                # json.loads alone keeps the last
    (b'{"a": 1e400}', "Number too big"),
])
def test_lines_either_parser_alone_would_let_through_are_bad(tmp_path: Path, line: bytes,
                                                              reason: str) -> None:
    lines = [b'{"a": %d}' % i for i in range(300)]
    lines[123] = line
    path = write(tmp_path / "odd.jsonl.zst", b"\n".join(lines) + b"\n")
    with pytest.raises(BadRecordError, match=re.escape(f"{path}:124: ") + ".*" + re.escape(reason)):
        read(path, schema=pa.schema([("a", pa.float64())]), block_size=1024)
    tally = BadLineTally()
    table = read(path, schema=pa.schema([("a", pa.float64())]), on_bad_lines="skip", tally=tally)
    assert tally.count == 1 and table.num_rows == 299
    assert 123.0 not in table.column("a").to_pylist()


def test_nan_and_infinity_are_numbers_like_in_pyarrow(tmp_path: Path) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_bytes(b'{"x": 1.5}\n{"x": NaN}\n{"x": -Infinity}\n')
    values = lk.load(path).column("x").to_pylist()
    assert values[0] == 1.5 and values[1] != values[1] and values[2] == float("-inf")


def test_skip_drops_bad_lines_and_warns_with_count_and_first_location(tmp_path: Path) -> None:
    rows = [event(i) for i in range(2000)]
    lines = jsonl(rows).splitlines(keepends=True)
    bad_at = [7, 8, 1500, 1999]                       # 0-based; the last line too
    for i in bad_at:
        lines[i] = b'{"event_id": oops}\n'
    write(tmp_path / "a.jsonl.gz", b"".join(lines))
    write(tmp_path / "b.jsonl.gz", jsonl([event(5000)]) + b"[]\n")
    with pytest.warns(BadRecordsWarning) as record:
        table = lk.load(str(tmp_path / "*.jsonl.gz"), on_bad_lines="skip")
    messages = [str(w.message) for w in record if issubclass(w.category, BadRecordsWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("skipped 5 bad line(s); first at ")
    assert f"{tmp_path / 'a.jsonl.gz'}:8: expected a JSON object, got invalid JSON" in messages[0] \
        or f"{tmp_path / 'b.jsonl.gz'}:2: expected a JSON object, got a JSON array" in messages[0]
    expected = [r for i, r in enumerate(rows) if i not in bad_at] + [event(5000)]
    assert table.to_pylist() == expected


def test_warning_points_at_the_callers_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n{oops\n')
    with pytest.warns(BadRecordsWarning) as record:
        lk.load(tmp_path / "x.jsonl", on_bad_lines="skip")
    assert record[0].filename == __file__


@pytest.mark.parametrize("ext", list(COMPRESS))
def test_line_numbers_are_exact_across_block_boundaries(tmp_path: Path, ext: str) -> None:
    # ~100-byte lines and 1 KiB blocks: a bad line at the start, middle and end of blocks,
    # blank lines in between shifting the count
    lines = [json.dumps(event(i)).encode() for i in range(400)]
    for i in range(0, 400, 37):
        lines[i] = lines[i] + b"\n"                   # a blank line after some lines
    bad = {3, 10, 11, 95, 96, 250, 399}
    for i in bad:
        lines[i] = b'{"event_id": ' + str(i).encode() + b', broken'
    data = b"\n".join(lines) + b"\n"
    path = write(tmp_path / f"blocks{ext}", data)
    numbered = data.split(b"\n")
    expected_bad = [n + 1 for n, text in enumerate(numbered) if b"broken" in text]
    assert len(expected_bad) == len(bad)

    with pytest.raises(BadRecordError) as exc:
        read(path, block_size=1024)
    assert error_line(exc, path) == expected_bad[0]

    tally = BadLineTally()
    table = read(path, block_size=1024, on_bad_lines="skip", tally=tally)
    assert tally.count == len(bad)
    assert tally.first is not None and tally.first[:2] == (str(path), expected_bad[0])
    assert table.column("event_id").to_pylist() == [i for i in range(400) if i not in bad]

    # each bad line alone is reported at its own number
    for i, target in zip(sorted(bad), expected_bad, strict=True):
        fixed = [json.dumps(event(j)).encode() if j in bad and j != i else lines[j]
                 for j in range(400)]
        one = write(tmp_path / f"one{ext}", b"\n".join(fixed) + b"\n")
        with pytest.raises(BadRecordError) as exc:
            read(one, block_size=1024, schema=pa.schema([("event_id", pa.int64())]))
        assert error_line(exc, one) == target


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.sampled_from(["row", "row", "row", "blank", "bad", "null", "array"]),
                   min_size=1, max_size=120),
    block_size=st.sampled_from([1024, 1500, 4096, 1 << 20]),
    threads=st.booleans(),
)
def test_skip_keeps_exactly_the_good_rows_whatever_the_blocks(
    tmp_path: Path, kinds: list[str], block_size: int, threads: bool
) -> None:
    text = {"blank": b"", "bad": b'{"x": ', "null": b"null", "array": b"[1]"}
    lines = [json.dumps(event(i)).encode() if k == "row" else text[k] for i, k in enumerate(kinds)]
    path = tmp_path / f"h-{uuid.uuid4().hex}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    schema = pa.schema([("event_id", pa.int64()), ("kind", pa.string())])
    bad_lines = [n + 1 for n, k in enumerate(kinds) if k in ("bad", "null", "array")]

    tally = BadLineTally()
    table = read(path, schema=schema, block_size=block_size, on_bad_lines="skip", tally=tally,
                 use_threads=threads)
    good = [i for i, k in enumerate(kinds) if k == "row"]
    assert table.column("event_id").to_pylist() == good if good else table.num_rows == 0
    assert tally.count == len(bad_lines)
    if bad_lines:
        assert tally.first is not None and tally.first[1] == bad_lines[0]
        with pytest.raises(BadRecordError) as exc:
            read(path, schema=schema, block_size=block_size)
        assert error_line(exc, path) == bad_lines[0]


def test_hive_partition_column_alone_keeps_the_row_count(tmp_path: Path) -> None:
    write(tmp_path / "region=eu" / "p.jsonl.gz", jsonl([event(1)]))
    write(tmp_path / "region=us" / "p.jsonl", jsonl([event(2), event(3)]))
    table = lk.load(tmp_path, columns=["region"])
    assert table.column("region").to_pylist() == ["eu", "us", "us"]
    path = str(tmp_path / "region=us" / "p.jsonl")
    batches = read_jsonl_batches(LOCAL, path, url=path, compression=None, columns=[],
                                 schema=pa.schema([("event_id", pa.int64())]))
    assert sum(b.num_rows for b in batches) == 2


# -- schemas ------------------------------------------------------------------------------------
def test_value_that_does_not_fit_the_schema_is_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "typed.jsonl"
    path.write_bytes(
        b'{"id": 1, "name": "a"}\n{"id": "x7", "name": "b"}\n{"id": 3, "name": 5}\n'
        b'{"id": 4, "name": {"nested": true}}\n{"id": 2.5}\n{"id": 6}\n'
    )
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    with pytest.raises(BadRecordError) as exc:
        lk.load(path, schema=schema)
    assert f"{path}:2: column 'id': expected int64, got a JSON string \"x7\"" in str(exc.value)
    first = r"skipped 4 bad line\(s\); first at .*typed\.jsonl:2"
    with pytest.warns(BadRecordsWarning, match=first):
        table = lk.load(path, schema=schema, on_bad_lines="skip")
    assert table.to_pylist() == [{"id": 1, "name": "a"}, {"id": 6, "name": None}]
    # the schema inferred from the file's first MiB is the target of the rest of it
    big = tmp_path / "drift.jsonl.gz"
    pad = "x" * 30                                     # ~2.6 MB: past the 1 MiB sample
    write(big, jsonl([{"n": i, "pad": pad} for i in range(60_000)] + [{"n": "sixty thousand"}]))
    with pytest.raises(BadRecordError, match=r"drift\.jsonl\.gz:60001: column 'n': expected int64"):
        lk.load(big)


def test_mismatches_in_unselected_columns_do_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "wide.jsonl"
    path.write_bytes(b'{"id": 1, "note": "a"}\n{"id": 2, "note": [1, 2]}\n{"id": 3, "note": 7}\n')
    schema = pa.schema([("id", pa.int64()), ("note", pa.string())])
    assert lk.load(path, schema=schema, columns=["id"]).column("id").to_pylist() == [1, 2, 3]


def test_required_field_missing_is_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "req.jsonl"
    path.write_bytes(b'{"id": 1}\n{"other": 2}\n{"id": null}\n{"id": 4}\n')
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    tally = BadLineTally()
    table = read(path, schema=schema, on_bad_lines="skip", tally=tally)
    assert table.column("id").to_pylist() == [1, 4] and tally.count == 2
    assert tally.first is not None and "'id' is required" in tally.first[2]
    assert table.schema == schema


def test_batches_have_exactly_the_target_schema(tmp_path: Path) -> None:
    path = tmp_path / "cast.jsonl"
    path.write_bytes(b'{"d": "2024-05-01", "k": "x", "n": 3, "f": 1}\n{"k": "y"}\n')
    schema = pa.schema(
        [("d", pa.date32()), ("k", pa.dictionary(pa.int32(), pa.string())), ("n", pa.int16()),
         ("f", pa.float32()), ("absent", pa.string())],
        metadata={b"origin": b"test"},
    )
    batches = list(read_jsonl_batches(LOCAL, str(path), url="cast", compression=None,
                                      schema=schema, columns=["n", "d", "k", "absent", "f"]))
    target = pa.schema([schema.field(c) for c in ["n", "d", "k", "absent", "f"]],
                       metadata=schema.metadata)
    assert all(b.schema.equals(target, check_metadata=True) for b in batches)
    rows = pa.Table.from_batches(batches).to_pylist()
    assert rows[0]["n"] == 3 and str(rows[0]["d"]) == "2024-05-01" and rows[1]["absent"] is None


def test_inferred_types_widen_across_blocks(tmp_path: Path) -> None:
    lines = [{"n": i, "s": None} for i in range(300)] + [{"n": 0.5, "s": "late"}]
    path = tmp_path / "widen.jsonl.zst"
    write(path, jsonl(lines))
    batches = list(read_jsonl_batches(LOCAL, str(path), url="w", compression="zstd",
                                      schema=None, block_size=1024))
    assert len(batches) > 3
    assert batches[0].schema.field("n").type == pa.int64()
    assert batches[-1].schema == pa.schema([("n", pa.float64()), ("s", pa.string())])
    table = pa.concat_tables([pa.Table.from_batches([b]) for b in batches],
                             promote_options="permissive")
    assert table.column("n").to_pylist() == [*map(float, range(300)), 0.5]
    # through the public API: shards that differ widen in the dataset's schema
    write(tmp_path / "d" / "a.jsonl.gz", jsonl([{"n": 1, "s": None}]))
    write(tmp_path / "d" / "b.jsonl.gz", jsonl([{"n": 2.5, "s": "x"}]))
    assert lk.load(tmp_path / "d").to_pydict() == {"n": [1.0, 2.5], "s": [None, "x"]}


def test_incompatible_types_name_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "clash.jsonl"
    path.write_bytes(jsonl([{"a": i} for i in range(200)] + [{"a": "two hundred"}]))
    with pytest.raises(SchemaMismatchError) as exc:
        read(path, block_size=1024)
    assert f"{path}:201: column 'a' is string here but int64" in str(exc.value)
    with pytest.raises(SchemaMismatchError, match=re.escape(f"{path}:201: column 'a'")):
        infer_jsonl_schema(LOCAL, str(path), url=str(path), compression=None)
    # across files: both files and the column are named
    write(tmp_path / "x" / "1.jsonl", jsonl([{"a": 1}]))
    write(tmp_path / "x" / "2.jsonl", jsonl([{"a": "s"}]))
    with pytest.raises(SchemaMismatchError, match=r"'a'.*1\.jsonl.*2\.jsonl"):
        lk.dataset(tmp_path / "x").schema  # noqa: B018


def test_sparse_field_takes_its_type_from_past_the_first_mib(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{**event(i), "coupon": None} for i in range(12_000)]
    rows[11_000]["coupon"] = "SPRING-10"                  # ~1.6 MB in: past the 1 MiB sample
    path = write(tmp_path / "sparse.jsonl.gz", jsonl(rows))
    assert lk.dataset(path).schema.field("coupon").type == pa.string()
    table = lk.load(path, columns=["event_id", "coupon"])
    assert table.column("coupon").drop_null().to_pylist() == ["SPRING-10"]
    assert table.column("event_id").to_pylist() == list(range(12_000))


def test_schema_inference_leaves_out_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "sample.jsonl"
    path.write_bytes(b'{"a": 1}\n{broken\nnull\n{"a": 2, "b": true}\n')
    schema = infer_jsonl_schema(LOCAL, str(path), url=str(path), compression=None)
    assert schema == pa.schema([("a", pa.int64()), ("b", pa.bool_())])


# -- truncated and corrupt files ----------------------------------------------------------------
@pytest.mark.parametrize("ext", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_compressed_file_is_a_format_error(tmp_path: Path, ext: str) -> None:
    whole = COMPRESS[ext](jsonl([event(i) for i in range(5000)]))
    path = tmp_path / f"cut{ext}"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(FormatError, match=re.escape(str(path)) + ".*truncated or corrupt"):
        lk.load(path)
    with pytest.raises(FormatError, match="truncated"):
        lk.load(path, on_bad_lines="skip")           # never a silent partial result
    with pytest.raises(FormatError, match="truncated"):
        read(path, block_size=1024)


@pytest.mark.parametrize("fast", [True, False], ids=["isal", "pyarrow"])
def test_both_gzip_decoders_agree_on_members_truncation_and_corruption(
    tmp_path: Path, fast: bool
) -> None:
    from lakekit.io.jsonl._stream import iter_blocks, open_stream

    def text(name: str, data: bytes) -> bytes:
        path = tmp_path / name
        path.write_bytes(data)
        stream = open_stream(LOCAL, str(path), str(path), "gzip", 4096, fast_gzip=fast)
        blocks = iter_blocks(stream, url=str(path), compression="gzip", block_size=4096,
                             max_line_bytes=1 << 20)
        return b"".join(bytes(b.data) for b in blocks)

    body = jsonl([event(i) for i in range(2000)])
    members = gzip.compress(body[:5000]) + gzip.compress(body[5000:], compresslevel=9)
    assert text("m.jsonl.gz", members) == body
    assert text("empty.jsonl.gz", b"") == b""
    whole = gzip.compress(body)
    with pytest.raises(FormatError, match="truncated or corrupt"):
        text("cut.jsonl.gz", whole[:-9])
    corrupt = bytearray(whole)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = bytes(64)
    with pytest.raises(FormatError, match="truncated or corrupt"):
        text("bad.jsonl.gz", bytes(corrupt))
    with pytest.raises(FormatError, match="gzip"):
        text("plain.jsonl.gz", body)


def test_file_that_is_not_gzip_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl.gz"
    path.write_bytes(jsonl([event(0)]))
    with pytest.raises(FormatError, match=re.escape(str(path)) + ".*gzip"):
        lk.load(path)


def test_overlong_line_is_a_format_error_but_long_lines_are_fine(tmp_path: Path) -> None:
    long_text = "x" * 50_000
    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl([{"a": 1, "t": "s"}, {"a": 2, "t": long_text}, {"a": 3, "t": "e"}]))
    table = read(path, block_size=1024)
    assert table.column("t").to_pylist() == ["s", long_text, "e"]
    with pytest.raises(FormatError, match=re.escape(f"{path}:2: a line longer than 10,000 bytes")):
        read(path, block_size=1024, max_line_bytes=10_000)


# -- filesystems --------------------------------------------------------------------------------
def test_memory_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    root = f"/jsonl-{uuid.uuid4().hex}"
    fs.pipe(f"{root}/a.jsonl.gz", gzip.compress(jsonl([event(1), event(2)])))
    fs.pipe(f"{root}/b.jsonl", jsonl([event(3)]) + b"[oops]\n")
    with pytest.warns(BadRecordsWarning, match=re.escape(f"memory://{root}/b.jsonl:2")):
        table = lk.load(f"memory://{root}/", on_bad_lines="skip")
    assert table.to_pylist() == [event(1), event(2), event(3)]


@pytest.mark.s3
def test_s3_jsonl_gz_through_moto(s3_bucket: str, s3_options: dict[str, object]) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)  # type: ignore[arg-type]
    rows = [event(i) for i in range(20_000)]
    lines = jsonl(rows).splitlines(keepends=True)
    lines[12_345] = b"not json\n"
    fs.pipe(f"{s3_bucket}/events/part-1.jsonl.gz", gzip.compress(b"".join(lines)))
    fs.pipe(f"{s3_bucket}/events/part-2.jsonl.zst", zstd(jsonl([event(99_999)])))
    source = f"s3://{s3_bucket}/events/"
    with pytest.raises(BadRecordError, match=re.escape(f"s3://{s3_bucket}/events/part-1.jsonl.gz:12346")):
        lk.load(source, storage_options=s3_options)
    with pytest.warns(BadRecordsWarning, match=r"skipped 1 bad line"):
        table = lk.load(source, storage_options=s3_options, on_bad_lines="skip",
                        columns=["event_id", "kind"])
    assert table.num_rows == 20_000
    assert table.column("event_id").to_pylist()[-2:] == [19_999, 99_999]
    assert "testing" not in json.dumps(str(lk.dataset(source, storage_options=s3_options)))


# -- concurrency and streaming ------------------------------------------------------------------
def test_concurrent_reads_share_one_tally(tmp_path: Path) -> None:
    paths = []
    for f in range(6):
        lines = [json.dumps(event(i)).encode() for i in range(300)]
        for i in range(f, 300, 50):
            lines[i] = b"{bad"
        paths.append(write(tmp_path / f"c{f}.jsonl.gz", b"\n".join(lines) + b"\n"))
    tally = BadLineTally()

    def rows(order: int) -> int:
        return read(paths[order], block_size=2048, on_bad_lines="skip", tally=tally,
                    order=order).num_rows

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(rows, [5, 4, 3, 2, 1, 0]))
    assert counts == [294] * 6 and tally.count == 36
    assert tally.first is not None and tally.first[:2] == (str(paths[0]), 1)
    first = r"skipped 36 bad line\(s\); first at .*c0\.jsonl\.gz:1:"
    with pytest.warns(BadRecordsWarning, match=first):
        tally.warn()


def test_closing_early_stops_the_reader_thread(tmp_path: Path) -> None:
    path = write(tmp_path / "big.jsonl.gz", jsonl([event(i) for i in range(3000)]))
    def readers() -> int:  # the prefetch threads; the shared parse pool stays
        return sum(th.name.startswith("lakekit-jsonl") and "parse" not in th.name
                   for th in threading.enumerate())

    before = readers()
    batches = read_jsonl_batches(LOCAL, str(path), url="big", compression="gzip", schema=None,
                                 block_size=4096)
    first = next(batches)
    assert first.num_rows > 0
    assert readers() > before
    batches.close()
    assert readers() == before


def test_blocks_stream_lazily(tmp_path: Path) -> None:
    path = write(tmp_path / "s.jsonl", jsonl([event(i) for i in range(5000)]))
    batches = read_jsonl_batches(LOCAL, str(path), url="s", compression=None,
                                 schema=pa.schema([("event_id", pa.int64())]), block_size=8192)
    sizes = [b.num_rows for b in batches]
    assert len(sizes) > 50 and max(sizes) < 200 and sum(sizes) == 5000


def test_iter_batches_through_the_public_api(tmp_path: Path) -> None:
    write(tmp_path / "e.jsonl.zst", jsonl([event(i) for i in range(10_000)]))
    ds = lk.dataset(tmp_path / "e.jsonl.zst")
    ids = [i for b in ds.iter_batches(columns=["event_id"], batch_size=1000)
           for i in b.column(0).to_pylist()]
    assert ids == list(range(10_000))


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "o.jsonl", jsonl([event(0)]))
    with pytest.raises(ConfigError, match="on_bad_lines"):
        list(read_jsonl_batches(LOCAL, str(path), url="o", compression=None, schema=None,
                                on_bad_lines="ignore"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not in the schema"):
        list(read_jsonl_batches(LOCAL, str(path), url="o", compression=None,
                                schema=pa.schema([("a", pa.int64())]), columns=["b"]))
    with pytest.raises(ConfigError, match="on_bad_lines"):
        lk.load(path, on_bad_lines="drop")
