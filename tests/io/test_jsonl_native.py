"""The native JSONL parser (``lakekit/io/jsonl/_ndjson.c``) accepts exactly what the
pyarrow path accepts and reads it the same: every line lakekit rejects is still a bad line
with its number (also the lines polars lets through), lines both accept read the same (to
the bit, for floats), the common case stays on the native path, a file that mostly falls
back stops trying it, and random and mutated files read the same on both paths.

The rules are in docs/loaders.md ("How JSONL lines are accepted").
"""

from __future__ import annotations

import datetime
import json
import random
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakekit as lk
import lakekit.io.jsonl._parse as parse_module
from lakekit.errors import BadRecordError, BadRecordsWarning
from lakekit.io.jsonl import BadLineTally, native_parser, read_jsonl_batches

LOCAL = fsspec.filesystem("file")
SCHEMA = pa.schema([("i", pa.int64()), ("f", pa.float64()), ("s", pa.string()),
                    ("b", pa.bool_()), ("n", pa.int32()), ("z", pa.null()), ("u", pa.uint8()),
                    ("t", pa.timestamp("ms")), ("L", pa.large_string())])
GOOD = [  # the two usual spellings: json.dumps (", " and ": ") and compact (polars, orjson)
    b'{"i": 1, "f": 2.5, "s": "x", "b": true, "n": 3, "z": null}',
    b'{"i":1,"f":2.5,"s":"x","b":true,"n":3}',
]

# lines lakekit rejects (polars reads many of them, or reads them differently), with the
# reason lakekit gives
REJECTED = {
    "number in a string column": (b'{"s": 1}', "column 's': expected string, got a JSON number"),
    "float in a string column": (b'{"s":1.5}', "got a JSON number 1.5"),
    "boolean in a string column": (b'{"s": false}', "got a JSON boolean"),
    "object in a string column": (b'{"s": {"a": 1}}', "got a JSON object"),
    "array in a string column": (b'{"s":["a"]}', "got a JSON array"),
    "string in an int column": (b'{"i": "1"}', "column 'i': expected int64, got a JSON string"),
    "float in an int column": (b'{"i": 1.0}', "got a JSON number 1.0"),
    "int out of an int32 column's range": (b'{"n": 3000000000}', "expected int32"),
    "value in a null column": (b'{"z": 1}', "column 'z': expected null"),
    "duplicate key": (b'{"i": 1, "i": 2}', "specified twice"),
    "duplicate key, then null": (b'{"i":1,"i":null}', "specified twice"),
    "duplicate key, null first": (b'{"i": null, "i": 1}', "specified twice"),
    "duplicate null key": (b'{"i":null,"i":null}', "specified twice"),
    "duplicate string key, then null": (b'{"s": "a", "s": null}', "specified twice"),
    "duplicate of an escaped key": (b'{"i": 5, "\\u0069": null}', "specified twice"),
    "duplicate key after a space": (b'{"i":5,"i" : null}', "specified twice"),
    "lone surrogate": (b'{"s": "\\ud800"}', "surrogate"),
    "lone surrogate in an unknown field": (b'{"i": 1, "q": "\\udc00"}', "surrogate"),
    "trailing garbage": (b'{"i": 1} x', "invalid JSON (Extra data"),
    "two objects on a line": (b'{"i": 1}{"i": 2}', "invalid JSON (Extra data"),
    "array line": (b"[1]", "got a JSON array"),
    "null line": (b"null", "got null"),
    "invalid UTF-8": (b'{"s": "caf\xe9"}', "invalid UTF-8"),
    "leading zero": (b'{"i": 01}', "invalid JSON"),
    "trailing comma": (b'{"i": 1,}', "invalid JSON"),
    "unterminated string": (b'{"s": "abc}', "invalid JSON"),
    "bad escape": (b'{"s": "a\\qb"}', "invalid JSON"),
    "control byte in a string": (b'{"s": "a\tb"}', "invalid JSON"),
    "int64 overflow": (b'{"i": 9223372036854775808}', "expected int64"),
    "exponent in an int column": (b'{"i": 1e3}', "expected int64"),
    "negative in an unsigned column": (b'{"u": -1}', "expected uint8"),
    "minus zero in an unsigned column": (b'{"u": -0}', "JSON to uint8"),
    "number in a bool column": (b'{"b": 1}', "expected bool"),
    "unclosed object": (b'{"i": 1', "invalid JSON"),
    "nested unknown field left open": (b'{"q": [1, {"a": 2]}', "invalid JSON"),
    "minus alone": (b'{"f": -}', "invalid JSON"),
    "not a timestamp": (b'{"t": "2024-13-01"}', "column 't'"),
    "a number in a timestamp column": (b'{"t": 5}', "column 't'"),
    "a number in a large string column": (b'{"L": 5}', "column 'L'"),
    "dot without digits": (b'{"f": 1.}', "invalid JSON"),
}

# lines both paths accept, with the row lakekit reads
ACCEPTED: dict[str, tuple[bytes, dict[str, Any]]] = {
    "escaped key": (b'{"\\u0069": 5}', {"i": 5}),
    "unknown fields": (b'{"i": 1, "q": "a", "r": 2}', {"i": 1}),
    "unknown null field": (b'{"i":1,"q":null}', {"i": 1}),
    "unknown nested field": (b'{"i": 1, "q": {"i": 2, "s": 3}}', {"i": 1}),
    "duplicate unknown key": (b'{"i": 1, "q": 1, "q": 2}', {"i": 1}),
    "surrogate pair": (b'{"s": "\\ud83d\\ude00"}', {"s": "\U0001F600"}),
    "key text inside a string": (b'{"s": "\\"i\\": null"}', {"s": '"i": null'}),
    "colon inside a string": (b'{"s":"a : b"}', {"s": "a : b"}),
    "the word null in a string": (b'{"s": "null"}', {"s": "null"}),
    "int in a float column": (b'{"f": 1}', {"f": 1.0}),
    "space before a colon": (b'{"i" : 7}', {"i": 7}),
    "tabs and a CR": (b'{\t"i":\t7}\r', {"i": 7}),
    "empty object": (b"{}", {}),
    "leading spaces": (b'   {"i": 7}', {"i": 7}),
    "escapes": (b'{"s": "a\\"b\\\\c\\/d\\n\\t\\u00e9\\u20ac"}',
                {"s": 'a"b\\c/d\n\t\u00e9\u20ac'}),
    "infinity": (b'{"f": -Infinity}', {"f": float("-inf")}),
    "negative zero": (b'{"f": -0.0, "i": -0}', {"f": -0.0, "i": 0}),
    "extremes": (b'{"i": -9223372036854775808, "n": 2147483647, "u": 255}',
                 {"i": -(2**63), "n": 2**31 - 1, "u": 255}),
    "long mantissa": (b'{"f": 3.14159265358979323846264338327950288}', {"f": 3.141592653589793}),
    "exponents": (b'{"f": 1.5E+300}', {"f": 1.5e300}),
    "a big int in a float column": (b'{"f": 123456789012345678901}', {"f": 1.2345678901234568e20}),
    "NUL escape": (b'{"s": "a\\u0000b"}', {"s": "a\x00b"}),
    "deep unknown field": (b'{"q": ' + b"[" * 80 + b"]" * 80 + b', "i": 3}', {"i": 3}),
    "timestamps": (b'{"t": "2024-01-02T03:04:05.123", "L": "x"}',
                   {"t": datetime.datetime(2024, 1, 2, 3, 4, 5, 123000), "L": "x"}),
    "a date as a timestamp": (b'{"t": "2024-01-02"}', {"t": datetime.datetime(2024, 1, 2)}),
    "booleans and nulls": (b'{"b": false, "s": null, "z": null, "f": null}', {"b": False}),
}


def write_around(tmp_path: Path, line: bytes, good: bytes) -> tuple[Path, int]:
    """``line`` at line 201 of 400 good lines; returns the path and that line number."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([good] * 200 + [line] + [good] * 199) + b"\n")
    return path, 201


def full_row(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in SCHEMA.names}


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row counts of the blocks the native parser kept (observed, not changed)."""
    counts: list[int] = []
    parse = parse_module._Native.parse

    def observed(self: Any, data: Any, rows: int) -> pa.Table | None:
        table = parse(self, data, rows)
        if table is not None:
            counts.append(table.num_rows)
        return table

    monkeypatch.setattr(parse_module._Native, "parse", observed)
    return counts


def test_the_native_parser_is_built() -> None:
    """``pip install`` compiled ``_ndjson.c`` (CI and the README's install have gcc)."""
    assert native_parser()


def test_the_environment_can_turn_it_off(tmp_path: Path, kept: list[int],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(b'{"i": %d, "s": "v%d"}\n' % (i, i) for i in range(100)))
    on = lk.load(path)
    assert kept == [100]
    monkeypatch.setenv("LAKEKIT_NATIVE_JSONL", "0")
    assert not native_parser()
    assert lk.load(path).equals(on) and kept == [100]


@pytest.mark.parametrize("good", GOOD, ids=["dumps", "compact"])
@pytest.mark.parametrize("case", list(REJECTED))
def test_lines_polars_would_let_through_are_bad_lines(tmp_path: Path, case: str,
                                                       good: bytes) -> None:
    line, reason = REJECTED[case]
    path, number = write_around(tmp_path, line, good)
    with pytest.raises(BadRecordError) as exc:
        lk.load(path, schema=SCHEMA)
    assert str(exc.value).startswith(f"{path}:{number}: ")
    assert reason in str(exc.value)
    with pytest.warns(BadRecordsWarning, match=re.escape(f"skipped 1 bad line(s); first at "
                                                         f"{path}:{number}:")):
        table = lk.load(path, schema=SCHEMA, on_bad_lines="skip")
    assert table.num_rows == 399 and table.schema == SCHEMA


@pytest.mark.parametrize("good", GOOD, ids=["dumps", "compact"])
@pytest.mark.parametrize("case", list(ACCEPTED))
def test_lines_both_paths_accept_read_the_same(tmp_path: Path, case: str, good: bytes) -> None:
    line, row = ACCEPTED[case]
    path, number = write_around(tmp_path, line, good)
    table = lk.load(path, schema=SCHEMA)
    good_row = full_row(json.loads(good))
    assert table.schema == SCHEMA
    assert table.slice(number - 1, 1).to_pylist() == [full_row(row)]
    assert table.slice(0, 200).to_pylist() == [good_row] * 200


def test_the_common_case_stays_on_the_native_path(tmp_path: Path, kept: list[int]) -> None:
    rng = random.Random(3)
    rows = [{"event_id": i, "user": f"u{rng.randrange(10**6)}", "price": rng.random() * 100,
             "ok": rng.random() < 0.9, "referrer": None if i % 3 else f"https://x.test/p/{i}",
             "kind": rng.choice(["view", "click", "caf\u00e9 \u2603"])}
            for i in range(60_000)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n"
                              for r in rows))
    table = lk.load(path)
    assert sum(kept) == len(rows) and len(kept) >= 3       # every block, several blocks
    assert table.to_pylist() == rows
    projected = lk.load(path, columns=["price", "kind"])
    assert projected.column_names == ["price", "kind"]
    assert projected.column("kind").to_pylist() == [r["kind"] for r in rows]


def test_narrow_int_columns_are_read_and_checked(tmp_path: Path, kept: list[int]) -> None:
    path = tmp_path / "small.jsonl"
    path.write_bytes(b"".join(b'{"a": %d, "b": %d}\n' % (i % 100, i) for i in range(1000)))
    schema = pa.schema([("a", pa.int8()), ("b", pa.uint16())])
    table = lk.load(path, schema=schema)
    assert table.schema == schema and kept == [1000]
    assert table.column("b").to_pylist() == list(range(1000))
    path.write_bytes(path.read_bytes() + b'{"a": 1, "b": 70000}\n')
    with pytest.raises(BadRecordError, match=re.escape(f"{path}:1001: column 'b'")):
        lk.load(path, schema=schema)


def test_random_files_read_the_same_on_both_paths(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Good lines of both spellings mixed with the rejected and accepted cases, in blocks of
    a few KiB: rows, bad-line count and first bad line equal to the pyarrow path's."""
    rng = random.Random(14)
    odd = [line for line, _ in REJECTED.values()] + [line for line, _ in ACCEPTED.values()]
    path = tmp_path / "mixed.jsonl"

    def read(fast: bool) -> tuple[list[dict[str, Any]], int, Any]:
        with monkeypatch.context() as m:
            if not fast:
                m.setenv("LAKEKIT_NATIVE_JSONL", "0")
            tally = BadLineTally()
            batches = read_jsonl_batches(LOCAL, str(path), url="mixed.jsonl", compression=None,
                                         schema=SCHEMA, on_bad_lines="skip", tally=tally,
                                         block_size=4096)
            table = pa.Table.from_batches(list(batches), schema=SCHEMA)
        return table.to_pylist(), tally.count, tally.first

    for _ in range(6):
        lines = []
        for _ in range(2000):
            r = rng.random()
            lines.append(rng.choice(odd) if r < 0.004 else GOOD[r < 0.5])
        path.write_bytes(b"\n".join(lines) + b"\n")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert read(True) == read(False)


def test_a_file_that_mostly_falls_back_stops_trying(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[bool] = []
    native = parse_module._NATIVE
    assert native is not None

    class Observed:
        @staticmethod
        def parse(*args: Any) -> Any:
            out = native.parse(*args)
            tried.append(out is not None)
            return out

    monkeypatch.setattr(parse_module, "_NATIVE", Observed)
    path = tmp_path / "escaped.jsonl"       # an escaped key on every line: pyarrow's path
    path.write_bytes(b"".join(b'{"\\u0069": %d}\n' % i for i in range(5000)))
    batches = read_jsonl_batches(LOCAL, str(path), url="escaped.jsonl", compression=None,
                                 schema=pa.schema([("i", pa.int64())]), block_size=4096)
    table = pa.Table.from_batches(list(batches))
    assert table.column("i").to_pylist() == list(range(5000))
    assert tried.count(True) == 0
    assert parse_module._NATIVE_PATIENCE <= len(tried) <= parse_module._NATIVE_PATIENCE + 2


# -- differential: the native parser against pyarrow.json, on generated and mutated lines ------
FIELD_NAMES = [*SCHEMA.names, "q", "caf\u00e9"]
NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,22})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?",
                       fullmatch=True)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=3),
    max_leaves=6,
)


def _fitting(name: str) -> st.SearchStrategy[str]:
    """JSON text of a value that fits column ``name`` (or null)."""
    by_type: dict[str, st.SearchStrategy[str]] = {
        "i": st.integers(-(2**63), 2**63 - 1).map(str),
        "n": st.integers(-(2**31), 2**31 - 1).map(str),
        "u": st.integers(0, 255).map(str),
        "f": NUMBER | st.floats(allow_nan=False).map(repr) | st.integers().map(str),
        "b": st.sampled_from(["true", "false"]),
        "z": st.just("null"),
        "t": st.datetimes().map(lambda d: json.dumps(d.isoformat(sep=" " if d.day % 2 else "T")))
        | st.from_regex(r"[0-9]{4}-[0-9]{1,2}-[0-9]{2}([T ][0-9]{2}(:[0-9]{2}){0,2}(\.[0-9]{1,10})?"
                        r"Z?)?", fullmatch=True).map(json.dumps),
        "L": st.text(max_size=5).map(json.dumps),
        "s": st.tuples(st.text(max_size=12), st.booleans()).map(
            lambda t: json.dumps(t[0], ensure_ascii=t[1])),
    }
    return by_type.get(name, JSON_VALUE.map(json.dumps)) | st.just("null")


@st.composite
def json_line(draw: st.DrawFn) -> bytes:
    """A line that is mostly an object of schema and other fields, written with random
    spacing and escaping, its values mostly of their column's type; now and then a value
    of any type, a raw number token, or a byte inserted or deleted."""
    parts = []
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), unique=True, max_size=7))
    if names and draw(st.integers(0, 30)) == 0:
        names.append(draw(st.sampled_from(names)))      # a duplicate key
    for name in names:
        key = json.dumps(name, ensure_ascii=draw(st.integers(0, 30)) != 0)
        kind = draw(st.integers(0, 40))
        if kind == 0:
            value = draw(NUMBER)
        elif kind == 1:
            value = json.dumps(draw(JSON_VALUE), allow_nan=True)
        else:
            value = draw(_fitting(name))
        gap = draw(st.sampled_from(["", "", " ", "\t", " \r"]))
        parts.append(f"{key}{gap}:{gap}{value}")
    line = ("{" + draw(st.sampled_from([",", ", "])).join(parts) + "}").encode()
    edit = draw(st.integers(0, 30))
    if edit == 0:                          # a byte inserted: anything may break
        at = draw(st.integers(0, len(line) - 1))
        line = line[:at] + bytes([draw(st.sampled_from(b'{}[]",:\\ 0-.eu\x00\xff'))]) + line[at:]
    elif edit == 1:                        # a byte deleted
        at = draw(st.integers(0, len(line) - 1))
        line = line[:at] + line[at + 1:]
    return line


def assert_both_parsers_agree(schema: pa.Schema, data: bytes, rows: int) -> None:
    """The native path's rows equal pyarrow's (None: the block was rejected), and its
    table passes Arrow's full validation."""
    native = parse_module.Parser(schema, url="t.jsonl")
    reference = parse_module.Parser(schema, url="t.jsonl")
    assert native._native is not None
    reference._native = None
    try:
        expected = normalised(reference.parse(data, rows=rows))
    except parse_module.PARSE_ERRORS:
        expected = None
    try:
        table = native.parse(data, rows=rows)
        table.validate(full=True)     # offsets, bitmaps and lengths the C code wrote
        got = normalised(table)
    except parse_module.PARSE_ERRORS:
        got = None
    assert got == expected


def normalised(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows with floats as their bits (NaN, -0.0 and rounding compared exactly)."""
    return [tuple(struct.pack("<d", v) if isinstance(v, float) else v for v in row.values())
            for row in table.to_pylist()]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(json_line(), min_size=1, max_size=12))
def test_native_and_pyarrow_agree_on_every_block(lines: list[bytes]) -> None:
    """A block the native parser accepts, pyarrow accepts with the same values; a block
    pyarrow rejects, the native parser leaves to it."""
    if any(line.lstrip(b" \t\r").startswith(b"n") for line in lines):
        return      # such blocks never reach a parser (apache/arrow#47409): Block.unsafe
    rows = sum(1 for line in lines if line.strip(b" \t\r"))
    assert_both_parsers_agree(SCHEMA, b"\n".join(lines) + b"\n", rows)


# -- nested columns: lists and structs of the flat kinds ----------------------------------------
NESTED = pa.schema([
    ("i", pa.int64()),
    ("tags", pa.list_(pa.string())),
    ("ctx", pa.struct([("a", pa.int64()), ("b", pa.list_(pa.float64())),
                       ("t", pa.timestamp("ms"))])),
    ("m", pa.list_(pa.list_(pa.int32()))),
    ("ls", pa.large_list(pa.struct([("k", pa.string()), ("v", pa.float64())]))),
])
NESTED_ACCEPTED: dict[str, tuple[bytes, dict[str, Any]]] = {
    "all set": (b'{"i": 1, "tags": ["a", "\\u00e9"], "ctx": {"a": 2, "b": [1, 2.5], '
                b'"t": "2024-01-02T03:04:05"}, "m": [[1], [], null, [2, 3]], '
                b'"ls": [{"k": "x", "v": 1}, null, {}]}',
                {"i": 1, "tags": ["a", "\u00e9"],
                 "ctx": {"a": 2, "b": [1.0, 2.5], "t": datetime.datetime(2024, 1, 2, 3, 4, 5)},
                 "m": [[1], [], None, [2, 3]],
                 "ls": [{"k": "x", "v": 1.0}, None, {"k": None, "v": None}]}),
    "nulls and empties": (b'{"tags": [], "ctx": {}, "m": null, "ls": [null]}',
                          {"tags": [], "ctx": {"a": None, "b": None, "t": None}, "ls": [None]}),
    "null items": (b'{"tags": [null, "b"], "ctx": {"b": [null]}}',
                   {"tags": [None, "b"], "ctx": {"a": None, "b": [None], "t": None}}),
    "unknown nested fields": (b'{"ctx": {"q": {"z": [1, {"y": 2}]}, "a": 5}, "ls": [{"w": 1}]}',
                              {"ctx": {"a": 5, "b": None, "t": None},
                               "ls": [{"k": None, "v": None}]}),
}
NESTED_REJECTED = {
    "a number in a list of strings": (b'{"tags": ["a", 1]}', "column 'tags'"),
    "an object for a list": (b'{"tags": {}}', "column 'tags'"),
    "a list for a struct": (b'{"ctx": []}', "column 'ctx'"),
    "a duplicate nested key": (b'{"ctx": {"a": 1, "a": 2}}', "column 'ctx'"),
    "a float in a nested int": (b'{"ctx": {"a": 1.5}}', "column 'ctx'"),
    "not a timestamp, nested": (b'{"ctx": {"t": "yesterday"}}', "column 'ctx'"),
    "an int out of range in a list": (b'{"m": [[2147483648]]}', "column 'm'"),
    "an unclosed list": (b'{"tags": ["a"}', "invalid JSON"),
}


def nested_row(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in NESTED.names}


@pytest.mark.parametrize("case", list(NESTED_ACCEPTED))
def test_nested_lines_read_the_same_natively(tmp_path: Path, case: str,
                                             kept: list[int]) -> None:
    line, row = NESTED_ACCEPTED[case]
    good = b'{"i": 7, "tags": ["t"], "ctx": {"a": 1}, "m": [[1, 2]], "ls": [{"k": "k"}]}'
    path, number = write_around(tmp_path, line, good)
    table = lk.load(path, schema=NESTED)
    assert table.schema == NESTED and sum(kept) == 400      # every block natively
    assert table.slice(number - 1, 1).to_pylist() == [nested_row(row)]
    assert table.slice(0, 1).to_pylist() == [nested_row(
        {"i": 7, "tags": ["t"], "ctx": {"a": 1, "b": None, "t": None}, "m": [[1, 2]],
         "ls": [{"k": "k", "v": None}]})]


@pytest.mark.parametrize("case", list(NESTED_REJECTED))
def test_nested_bad_lines_are_named(tmp_path: Path, case: str) -> None:
    line, reason = NESTED_REJECTED[case]
    path, number = write_around(tmp_path, line, b'{"i": 7, "tags": ["t"], "m": [[1]]}')
    with pytest.raises(BadRecordError) as exc:
        lk.load(path, schema=NESTED)
    assert str(exc.value).startswith(f"{path}:{number}: ")
    assert reason in str(exc.value)


def _fitting_nested(t: pa.DataType) -> st.SearchStrategy[str]:
    """JSON text of a value of type ``t`` (or null), now and then of another type."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _fitting_nested(t.value_type)
        fit = st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
    elif pa.types.is_struct(t):
        keys = st.lists(st.sampled_from([f.name for f in t] + ["q"]), unique=True, max_size=4)
        fit = keys.flatmap(lambda ks: st.tuples(*[
            _fitting_nested(t.field(k).type) if k != "q" else JSON_VALUE.map(json.dumps)
            for k in ks]).map(lambda vs, ks=ks: "{" + ", ".join(
                f"{json.dumps(k)}: {v}" for k, v in zip(ks, vs, strict=True)) + "}"))
    elif pa.types.is_timestamp(t):
        fit = st.datetimes().map(lambda d: json.dumps(d.isoformat()))
    elif pa.types.is_string(t):
        fit = st.text(max_size=6).map(json.dumps)
    elif pa.types.is_floating(t):
        fit = NUMBER
    else:
        fit = st.integers(-(2**31), 2**31 - 1).map(str)
    return st.one_of(fit, fit, fit, fit, fit, fit, st.just("null"),
                     JSON_VALUE.map(json.dumps) if t.num_fields == 0 else st.just("[]"))


@st.composite
def nested_line(draw: st.DrawFn) -> bytes:
    names = draw(st.lists(st.sampled_from(NESTED.names), unique=True))
    parts = [f"{json.dumps(n)}: {draw(_fitting_nested(NESTED.field(n).type))}" for n in names]
    line = ("{" + ", ".join(parts) + "}").encode()
    if draw(st.integers(0, 20)) == 0:          # a byte deleted: anything may break
        at = draw(st.integers(0, len(line) - 1))
        line = line[:at] + line[at + 1:]
    return line


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(nested_line(), min_size=1, max_size=8))
def test_native_and_pyarrow_agree_on_nested_blocks(lines: list[bytes]) -> None:
    assert_both_parsers_agree(NESTED, b"\n".join(lines) + b"\n", len(lines))


def test_a_schema_too_deep_for_the_native_parser_reads_through_pyarrow(tmp_path: Path,
                                                                      kept: list[int]) -> None:
    deep: pa.DataType = pa.int64()
    for _ in range(40):
        deep = pa.list_(deep)
    schema = pa.schema([("d", deep)])
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"d": ' + b"[" * 40 + b"7" + b"]" * 40 + b"}\n")
    table = lk.load(path, schema=schema)
    assert kept == [] and table.schema == schema
    value = table.column("d").to_pylist()[0]
    for _ in range(40):
        (value,) = value
    assert value == 7
