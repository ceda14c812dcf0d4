"""JSONL salvage: when pyarrow rejects a block, find the lines it rejects (halving the
block until they are isolated) and say what is wrong with each."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakekit.io.jsonl._parse import PARSE_ERRORS, Parser, Piece
from lakekit.io.jsonl._stream import ODD_FIRST, WHITESPACE, Block

_LEAF_LINES = 32          # a failing range this small is checked line by line
_SNIPPET = 80             # characters of a bad line quoted in messages


@dataclass
class _Bad:
    line: int           # 1-based
    data: bytes         # the raw line
    obj: Any = None     # the decoded JSON value, when it decoded
    reason: str = ""    # filled in when known
    error: str = ""     # what pyarrow said, when it rejected the line alone


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, (int, float)):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return type(value).__name__


def _snippet(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "...")


def _decode(data: bytes) -> tuple[Any, str | None]:
    """The JSON value of a line, or why it is not a JSON object."""
    try:
        obj = json.loads(data)       # like pyarrow, accepts NaN and Infinity
    except UnicodeDecodeError:
        return None, "expected a JSON object, got invalid UTF-8"
    except ValueError as exc:
        detail = (
            f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        )
        return None, f"expected a JSON object, got invalid JSON ({detail})"
    if not isinstance(obj, dict):
        return obj, f"expected a JSON object, got {_json_kind(obj)}"
    return obj, None


_INT_RANGE = {
    pa.int8(): (-(2**7), 2**7), pa.int16(): (-(2**15), 2**15), pa.int32(): (-(2**31), 2**31),
    pa.int64(): (-(2**63), 2**63), pa.uint8(): (0, 2**8), pa.uint16(): (0, 2**16),
    pa.uint32(): (0, 2**32), pa.uint64(): (0, 2**64),
}


def _surely_fits(value: Any, t: pa.DataType) -> bool:
    """True when ``value`` certainly parses as ``t`` (False means: ask pyarrow)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return pa.types.is_boolean(t)
    if isinstance(value, int):
        bounds = _INT_RANGE.get(t)
        if bounds is not None:
            return bounds[0] <= value < bounds[1]
        return pa.types.is_float32(t) or pa.types.is_float64(t)
    if isinstance(value, float):
        return pa.types.is_float32(t) or pa.types.is_float64(t)
    if isinstance(value, str):
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    return False


class Salvage:
    """Isolates the bad lines of a block pyarrow rejected, parsing the good ranges."""

    def __init__(self, parser: Parser, block: Block, *, stop_at_first: bool) -> None:
        self.parser = parser
        self.block = block
        self.stop_at_first = stop_at_first
        self.starts, self.ends = block.bounds()
        self.pieces: list[Piece] = []
        self.bad: list[_Bad] = []

    def run(self, *, whole_failed: bool) -> None:
        data = np.frombuffer(self.block.buffer, dtype=np.uint8)
        keep = np.ones(len(self.starts), dtype=bool)
        early: list[_Bad] = []
        # blank lines, and lines starting with "n" (never an object; must not reach pyarrow)
        first = data[np.minimum(self.starts, len(data) - 1)]
        odd = np.flatnonzero((self.ends == self.starts) | ODD_FIRST[first])
        for i in odd:
            raw = self._line(int(i))
            text = raw.lstrip(WHITESPACE)
            if not text.strip():
                keep[i] = False
            elif text[:1] == b"n":
                keep[i] = False
                obj, why = _decode(raw)
                early.append(_Bad(self.block.first_line + int(i), raw, obj, why or ""))
        idx = np.flatnonzero(keep)
        if early and self.stop_at_first:
            # only lines before the first of those can come first
            idx = idx[idx < early[0].line - self.block.first_line]
        if len(idx):
            self._solve(idx, known_bad=whole_failed and not early)
        self.bad.extend(early)
        self.bad.sort(key=lambda b: b.line)

    def _line(self, i: int) -> bytes:
        return bytes(self.block.data[int(self.starts[i]) : int(self.ends[i])])

    def _bytes(self, idx: np.ndarray) -> Any:
        first, last = int(idx[0]), int(idx[-1])
        if last - first == len(idx) - 1:
            return self.block.data[int(self.starts[first]) : int(self.ends[last])]
        return b"\n".join(self._line(int(i)) for i in idx)

    def _done(self) -> bool:
        return self.stop_at_first and bool(self.bad)

    def _solve(self, idx: np.ndarray, *, known_bad: bool = False) -> None:
        if self._done():
            return
        if not known_bad:
            try:
                table = self.parser.parse(self._bytes(idx), rows=len(idx))
            except PARSE_ERRORS:
                pass
            else:
                self._keep(table, idx)
                return
        if len(idx) <= _LEAF_LINES:
            self._leaf(idx)
            return
        mid = len(idx) // 2
        self._solve(idx[:mid])
        self._solve(idx[mid:])

    def _keep(self, table: pa.Table, idx: np.ndarray) -> None:
        lines = idx + self.block.first_line
        self.pieces.append(Piece(table, self.block, lines))

    def _leaf(self, idx: np.ndarray) -> None:
        """Check a small failing range line by line (json first, pyarrow when unsure)."""
        good: list[int] = []
        target = self.parser.target
        for i in idx:
            i = int(i)
            raw = self._line(i)
            obj, why = _decode(raw)
            if why is not None:
                self.bad.append(_Bad(self.block.first_line + i, raw, obj, why))
                if self.stop_at_first:
                    break
                continue
            if target is None or all(_surely_fits(obj.get(f.name), f.type) and (
                    f.nullable or obj.get(f.name) is not None) for f in target):
                good.append(i)
                continue
            try:
                self.parser.parse(raw + b"\n", rows=1)
            except PARSE_ERRORS as exc:
                self.bad.append(_Bad(self.block.first_line + i, raw, obj, error=str(exc)))
                if self.stop_at_first:
                    break
            else:
                good.append(i)
        if not good:
            return
        kept = np.asarray(good, dtype=np.int64)
        try:
            self._keep(self.parser.parse(self._bytes(kept), rows=len(kept)), kept)
            return
        except PARSE_ERRORS:
            pass
        # one by one: json.loads accepted a line pyarrow rejects (a duplicate key, a lone
        # surrogate, 1e400), or lines that fit alone but not together (inferred types)
        for i in good:
            one = np.asarray([i], dtype=np.int64)
            try:
                self._keep(self.parser.parse(self._bytes(one), rows=1), one)
            except PARSE_ERRORS as exc:
                raw = self._line(i)
                self.bad.append(_Bad(self.block.first_line + i, raw, _decode(raw)[0],
                                     error=str(exc)))
        self.bad.sort(key=lambda b: b.line)


def explain(bad: _Bad, parser: Parser) -> str:
    """Why ``bad`` does not fit the target schema (which column, what was expected)."""
    if bad.reason:
        return f"{bad.reason}: {_snippet(bad.data)}"
    target = parser.target
    obj = bad.obj if isinstance(bad.obj, dict) else {}
    if target is not None:
        for f in target:
            value = obj.get(f.name)
            if value is None and not f.nullable:
                return f"column {f.name!r} is required but missing or null: {_snippet(bad.data)}"
            if _surely_fits(value, f.type):
                continue
            try:
                parser.single_column(f.name).parse(bad.data + b"\n", rows=1)
            except PARSE_ERRORS:
                shown = json.dumps(value)
                shown = shown if len(shown) <= _SNIPPET else shown[: _SNIPPET - 3] + "..."
                return f"column {f.name!r}: expected {f.type}, got {_json_kind(value)} {shown}"
    detail = re.sub(r"\.? in row \d+$", "", bad.error.removeprefix("JSON parse error: "))
    detail = detail or "it does not fit the schema"
    return f"expected a JSON object that fits the schema, got one that does not ({detail}): " \
        f"{_snippet(bad.data)}"
