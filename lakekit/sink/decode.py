"""Message decoders: turn a :class:`RawBatch` into an arrow table in bulk.

* ``"json"``: the whole batch is parsed by ``pyarrow.json`` in one call (values are
  newline-separated in one buffer, so there is no per-message Python work). Types come
  from the target schema where it names a field, and are inferred for the others. When
  the bulk parse fails, the batch is bisected to find the bad messages; the good ones are
  still decoded in bulk.
* ``"raw"``: ``key`` and ``value`` as binary columns.
* a callable ``(bytes) -> dict``: called per message (the user's choice), then the dicts
  are converted to arrow in bulk.

Every message ends up either as a row of :attr:`Decoded.table` or as a :class:`RowError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from lakekit.errors import ConfigError
from lakekit.sink.buffer import RawBatch

__all__ = ["Decoded", "Decoder", "RowError", "make_decoder"]

ExtraFields = Literal["infer", "ignore"]

_MIN_BLOCK = 8 << 20
_LINEAR_BELOW = 16  # below this many messages a failing range is parsed one by one
_COLUMN_PATH = re.compile(r"Column\(/([^)/]*)")
_CAST_MARKERS = ("changed from", "failed to convert", "required field", "cannot cast", "conflict",
                 "as a scalar of type", "could not convert")


@dataclass(frozen=True)
class RowError:
    """Why message ``index`` of a batch could not become a row."""

    index: int
    stage: str  # "decode" | "cast" | "validate"
    error: str


@dataclass
class Decoded:
    """The decoded rows (``rows[k]`` is the message index of table row ``k``) and the errors."""

    table: pa.Table
    rows: np.ndarray
    errors: list[RowError]


class Decoder:
    """Base class: decode a batch against an optional target schema."""

    name = "decoder"

    def decode(self, batch: RawBatch, schema: pa.Schema | None, extra: ExtraFields) -> Decoded:
        """Decode ``batch``; ``schema`` fixes the types of the fields it names."""
        raise NotImplementedError


def make_decoder(decoder: str | Callable[[bytes], Mapping[str, Any]] | Decoder) -> Decoder:
    """The decoder for a ``decoder=`` argument: ``"json"``, ``"raw"`` or a callable.

    Examples
    --------
    >>> make_decoder("json").name
    'json'
    """
    if isinstance(decoder, Decoder):
        return decoder
    if decoder == "json":
        return JsonDecoder()
    if decoder == "raw":
        return RawDecoder()
    if callable(decoder):
        return CallableDecoder(decoder)
    raise ConfigError(
        f"decoder must be 'json', 'raw' or a callable(bytes) -> dict, got {decoder!r}"
    )


# --- helpers shared by the decoders ---------------------------------------------------------

def _stage_of(message: str) -> str:
    low = message.lower()
    if "column()" in low:  # the value itself is not an object
        return "decode"
    return "cast" if any(m in low for m in _CAST_MARKERS) else "decode"


def _explain(message: str, schema: pa.Schema | None) -> str:
    """Add the expected type to a pyarrow error that names a column of ``schema``."""
    text = " ".join(message.split())
    if "Column()" in text:
        return f"not a JSON object ({text})"
    m = _COLUMN_PATH.search(text)
    if schema is not None and m and m.group(1) in schema.names:
        field = schema.field(m.group(1))
        text += f" (expected {field.name}: {field.type})"
    return text


def _without_nulls(t: pa.DataType) -> pa.DataType:
    """``t`` with null types (no value seen yet) replaced by string, recursively."""
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_without_nulls(f.type)) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = t.value_field.with_type(_without_nulls(t.value_type))
        return pa.large_list(inner) if pa.types.is_large_list(t) else pa.list_(inner)
    return t


def finish_table(table: pa.Table, keep: pa.Schema | None) -> pa.Table:
    """Make an inferred table writable to Delta: drop all-null top-level columns that the
    target schema does not name, and give nested null types a concrete type."""
    keep_names = set(keep.names) if keep is not None else set()
    out = table
    for name in list(out.column_names):
        col_type = out.schema.field(name).type
        if pa.types.is_null(col_type) and name not in keep_names:
            out = out.drop_columns([name])
        elif _without_nulls(col_type) != col_type:
            i = out.schema.get_field_index(name)
            out = out.set_column(i, out.schema.field(name).with_type(_without_nulls(col_type)),
                                 out.column(name).cast(_without_nulls(col_type)))
    return out


@dataclass
class _Piece:
    """Rows decoded together: messages ``begin`` to ``end - 1`` (``rows``: their indices)."""

    table: pa.Table
    rows: np.ndarray
    begin: int
    end: int


def _vote(pieces: list[_Piece], base: pa.Schema | None) -> pa.Schema:
    """Fix a type for every field: the target's where it names one, else the type most
    rows were inferred with (numeric types promote; null means "no value yet")."""
    fixed = {f.name: f for f in (base or [])}
    votes: dict[str, dict[pa.DataType, int]] = {}
    order: list[str] = []
    for piece in pieces:
        for f in piece.table.schema:
            if f.name in fixed or pa.types.is_null(f.type):
                continue
            if f.name not in votes:
                votes[f.name] = {}
                order.append(f.name)
            t = _without_nulls(f.type)
            votes[f.name][t] = votes[f.name].get(t, 0) + piece.table.num_rows
    fields = list(base or [])
    for name in order:
        ranked = sorted(votes[name].items(), key=lambda kv: -kv[1])
        best = ranked[0][0]
        if pa.types.is_integer(best) and any(pa.types.is_floating(t) for t, _ in ranked):
            best = pa.float64()
        fields.append(pa.field(name, best))
    return pa.schema(fields)


def _fits(schema: pa.Schema, target: pa.Schema) -> bool:
    for f in schema:
        if f.name in target.names and not pa.types.is_null(f.type):
            want = target.field(f.name).type
            if f.type != want and not (pa.types.is_integer(f.type) and pa.types.is_floating(want)):
                return False
    return True


def _assemble(pieces: list[_Piece], base: pa.Schema | None, errors: list[RowError],
              redo: Callable[[int, int, pa.Schema], list[_Piece]]) -> Decoded:
    """Concatenate the pieces. Pieces whose inferred types disagree are decoded again
    against the majority types (:func:`_vote`); rows that still do not fit are errors."""
    pieces = [p for p in pieces if p.table.num_rows]
    if not pieces:
        return Decoded(pa.table({}), np.empty(0, dtype=np.int64), errors)
    try:
        table = pa.concat_tables([p.table for p in pieces], promote_options="permissive")
        return Decoded(table, np.concatenate([p.rows for p in pieces]), errors)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    target = _vote(pieces, base)
    settled: list[_Piece] = []
    for piece in pieces:
        if _fits(piece.table.schema, target):
            settled.append(piece)
        else:
            settled.extend(p for p in redo(piece.begin, piece.end, target) if p.table.num_rows)
    acc: pa.Table | None = None
    kept: list[np.ndarray] = []
    for piece in settled:
        try:
            acc = (piece.table if acc is None else
                   pa.concat_tables([acc, piece.table], promote_options="permissive"))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            errors.extend(RowError(int(k), "cast", "field types conflict with the other rows: "
                                                   f"{_explain(str(exc), target)}")
                          for k in piece.rows)
            continue
        kept.append(piece.rows)
    if acc is None:
        return Decoded(pa.table({}), np.empty(0, dtype=np.int64), errors)
    return Decoded(acc, np.concatenate(kept), errors)


# --- json -------------------------------------------------------------------------------------

class JsonDecoder(Decoder):
    """Bulk JSON decoding with ``pyarrow.json``; bisects to isolate bad messages."""

    name = "json"

    def decode(self, batch: RawBatch, schema: pa.Schema | None, extra: ExtraFields) -> Decoded:
        n = len(batch)
        errors: list[RowError] = []
        for i in np.flatnonzero(batch.tombstones):
            errors.append(RowError(int(i), "decode",
                                   "null value (tombstone); expected a JSON object"))
        empty = (batch.lengths == 0) & ~batch.tombstones
        for i in np.flatnonzero(empty):
            errors.append(RowError(int(i), "decode", "empty value; expected a JSON object"))
        # empty lines are skipped by pyarrow, so a range yields one row per non-empty message
        present = batch.lengths > 0
        cum = np.concatenate(([0], np.cumsum(present)))

        def decode_range(begin: int, end: int, target: pa.Schema | None) -> list[_Piece]:
            pieces: list[_Piece] = []
            self._range(batch, present, cum, begin, end, target, extra, pieces, errors)
            return pieces

        decoded = _assemble(decode_range(0, n, schema), schema, errors, decode_range)
        decoded.errors.sort(key=lambda e: e.index)
        decoded.table = finish_table(decoded.table, schema)
        return decoded

    @staticmethod
    def _parse(batch: RawBatch, i: int, j: int, schema: pa.Schema | None,
               extra: ExtraFields) -> pa.Table:
        # a line is its value plus, from bulk-decoded records, the blanked bytes before it
        ends = batch.starts[i:j] + batch.lengths[i:j]
        longest = int(max(batch.lengths[i], np.diff(ends).max(initial=0))) + 2
        read = pj.ReadOptions(use_threads=True, block_size=max(_MIN_BLOCK, longest))
        parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=extra)
        with batch.reader(i, j) as source:
            return pj.read_json(source, read_options=read, parse_options=parse)

    def _range(self, batch: RawBatch, present: np.ndarray, cum: np.ndarray, i: int, j: int,
               schema: pa.Schema | None, extra: ExtraFields, pieces: list[_Piece],
               errors: list[RowError]) -> None:
        expected = int(cum[j] - cum[i])
        if expected == 0:
            return
        table: pa.Table | None = None
        failure = ""
        try:
            table = self._parse(batch, i, j, schema, extra)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            failure = _explain(str(exc), schema)
        if table is not None and table.num_rows == expected:
            pieces.append(_Piece(table, np.flatnonzero(present[i:j]) + i, i, j))
            return
        if j - i == 1:
            if table is None:
                errors.append(RowError(i, _stage_of(failure), failure))
            elif table.num_rows == 0:
                errors.append(RowError(i, "decode", "blank value; expected a JSON object"))
            else:
                errors.append(RowError(i, "decode", f"{table.num_rows} JSON values in one "
                                                    "message; expected one JSON object"))
            return
        if j - i <= _LINEAR_BELOW:
            for k in range(i, j):
                self._range(batch, present, cum, k, k + 1, schema, extra, pieces, errors)
            return
        mid = (i + j) // 2
        self._range(batch, present, cum, i, mid, schema, extra, pieces, errors)
        self._range(batch, present, cum, mid, j, schema, extra, pieces, errors)


# --- raw --------------------------------------------------------------------------------------

class RawDecoder(Decoder):
    """Keys and values as they are: ``key`` and ``value`` binary columns."""

    name = "raw"

    def decode(self, batch: RawBatch, schema: pa.Schema | None, extra: ExtraFields) -> Decoded:
        n = len(batch)
        table = pa.table({
            "key": pa.array(batch.keys, type=pa.binary()),
            "value": pa.array([batch.value(i) for i in range(n)], type=pa.binary()),
        })
        return Decoded(table, np.arange(n, dtype=np.int64), [])


# --- callable ---------------------------------------------------------------------------------

def conform(table: pa.Table, schema: pa.Schema | None, extra: ExtraFields) -> pa.Table:
    """Cast ``table`` to the fields ``schema`` names (adding missing ones as nulls); keep
    (``"infer"``) or drop (``"ignore"``) the others. Raises on a value that does not cast."""
    if schema is None:
        return table
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    fields: list[pa.Field] = []
    for field in schema:
        if field.name in table.column_names:
            columns[field.name] = table.column(field.name).cast(field.type)
        else:
            if not field.nullable:
                raise pa.ArrowInvalid(f"required field {field.name!r} is missing")
            columns[field.name] = pa.nulls(table.num_rows, field.type)
        fields.append(field)
    if extra == "infer":
        for field in table.schema:
            if field.name not in columns:
                columns[field.name] = table.column(field.name)
                fields.append(field)
    for field in schema:
        if not field.nullable and columns[field.name].null_count:
            raise pa.ArrowInvalid(f"required field {field.name!r} is null")
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


class CallableDecoder(Decoder):
    """A user function ``(bytes) -> dict`` per message; arrow conversion in bulk."""

    name = "callable"

    def __init__(self, fn: Callable[[bytes], Mapping[str, Any]]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def decode(self, batch: RawBatch, schema: pa.Schema | None, extra: ExtraFields) -> Decoded:
        errors: list[RowError] = []
        dicts: list[Mapping[str, Any]] = []
        idx: list[int] = []
        for i in range(len(batch)):
            value = batch.value(i)
            if value is None:
                errors.append(RowError(i, "decode", "null value (tombstone)"))
                continue
            try:
                out = self.fn(value)
            except Exception as exc:
                errors.append(RowError(i, "decode", f"{type(exc).__name__}: {exc}"))
                continue
            if not isinstance(out, Mapping):
                errors.append(RowError(i, "decode", f"the decoder returned "
                                                    f"{type(out).__name__}; expected a dict"))
                continue
            dicts.append(out)
            idx.append(i)
        rows = np.asarray(idx, dtype=np.int64)

        def convert(begin: int, end: int, target: pa.Schema | None) -> list[_Piece]:
            pieces: list[_Piece] = []
            self._convert(dicts, rows, begin, end, target, extra, pieces, errors)
            return pieces

        decoded = _assemble(convert(0, len(dicts), schema), schema, errors, convert)
        decoded.errors.sort(key=lambda e: e.index)
        decoded.table = finish_table(decoded.table, schema)
        return decoded

    def _convert(self, dicts: list[Mapping[str, Any]], rows: np.ndarray, i: int, j: int,
                 schema: pa.Schema | None, extra: ExtraFields, pieces: list[_Piece],
                 errors: list[RowError]) -> None:
        if i >= j:
            return
        try:
            table = conform(pa.Table.from_pylist(list(dicts[i:j])), schema, extra)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            if j - i == 1:
                msg = _explain(str(exc), schema)
                errors.append(RowError(int(rows[i]), _stage_of(msg), msg))
                return
            mid = (i + j) // 2
            self._convert(dicts, rows, i, mid, schema, extra, pieces, errors)
            self._convert(dicts, rows, mid, j, schema, extra, pieces, errors)
            return
        pieces.append(_Piece(table, rows[i:j], i, j))
