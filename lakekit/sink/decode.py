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
_CAST_MARKERS = ("changed from", "failed to convert", "required field", "cannot cast", "conflict")


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
    return "cast" if any(m in low for m in _CAST_MARKERS) else "decode"


def _explain(message: str, schema: pa.Schema | None) -> str:
    """Add the expected type to a pyarrow error that names a column of ``schema``."""
    text = " ".join(message.split())
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


def _evolve(schema: pa.Schema | None, seen: pa.Schema) -> pa.Schema:
    """Add the non-null fields of ``seen`` that ``schema`` lacks (types fixed from now on)."""
    fields = list(schema) if schema is not None else []
    names = {f.name for f in fields}
    for f in seen:
        if f.name not in names and not pa.types.is_null(f.type):
            fields.append(f.with_nullable(True).with_type(_without_nulls(f.type)))
    return pa.schema(fields)


def _concat(pieces: list[tuple[pa.Table, np.ndarray]], errors: list[RowError]) -> Decoded:
    tables = [t for t, _ in pieces if t.num_rows]
    idx = [i for t, i in pieces if t.num_rows]
    if not tables:
        return Decoded(pa.table({}), np.empty(0, dtype=np.int64), errors)
    try:
        table = pa.concat_tables(tables, promote_options="default")
        return Decoded(table, np.concatenate(idx), errors)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    acc, kept_i = tables[0], [idx[0]]
    for t, i in zip(tables[1:], idx[1:], strict=True):
        try:
            acc = pa.concat_tables([acc, t], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            errors.extend(RowError(int(k), "cast", "field types conflict with earlier rows: "
                                                   f"{_explain(str(exc), None)}") for k in i)
            continue
        kept_i.append(i)
    return Decoded(acc, np.concatenate(kept_i), errors)


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
        self._present = batch.lengths > 0
        self._cum = np.concatenate(([0], np.cumsum(self._present)))
        self._batch = batch
        self._extra = extra
        self._schema = schema
        pieces: list[tuple[pa.Table, np.ndarray]] = []
        try:
            self._range(0, n, pieces, errors)
        finally:
            del self._batch
        decoded = _concat(pieces, errors)
        decoded.errors.sort(key=lambda e: e.index)
        decoded.table = finish_table(decoded.table, schema)
        return decoded

    def _parse(self, i: int, j: int) -> pa.Table:
        b = self._batch
        longest = int(b.lengths[i:j].max()) + 2
        read = pj.ReadOptions(use_threads=True, block_size=max(_MIN_BLOCK, longest))
        parse = pj.ParseOptions(explicit_schema=self._schema,
                                unexpected_field_behavior=self._extra)
        with b.reader(i, j) as source:
            return pj.read_json(source, read_options=read, parse_options=parse)

    def _range(self, i: int, j: int, pieces: list[tuple[pa.Table, np.ndarray]],
               errors: list[RowError]) -> None:
        expected = int(self._cum[j] - self._cum[i])
        if expected == 0:
            return
        table: pa.Table | None = None
        failure = ""
        try:
            table = self._parse(i, j)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            failure = _explain(str(exc), self._schema)
        if table is not None and table.num_rows == expected:
            idx = np.flatnonzero(self._present[i:j]) + i
            pieces.append((table, idx))
            if self._extra == "infer":
                self._schema = _evolve(self._schema, table.schema)
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
                self._range(k, k + 1, pieces, errors)
            return
        mid = (i + j) // 2
        self._range(i, mid, pieces, errors)
        self._range(mid, j, pieces, errors)


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
        pieces: list[tuple[pa.Table, np.ndarray]] = []
        self._convert(dicts, np.asarray(idx, dtype=np.int64), schema, extra, pieces, errors)
        decoded = _concat(pieces, errors)
        decoded.errors.sort(key=lambda e: e.index)
        decoded.table = finish_table(decoded.table, schema)
        return decoded

    def _convert(self, dicts: list[Mapping[str, Any]], idx: np.ndarray, schema: pa.Schema | None,
                 extra: ExtraFields, pieces: list[tuple[pa.Table, np.ndarray]],
                 errors: list[RowError]) -> pa.Schema | None:
        if not dicts:
            return schema
        try:
            table = conform(pa.Table.from_pylist(list(dicts)), schema, extra)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            if len(dicts) == 1:
                msg = _explain(str(exc), schema)
                errors.append(RowError(int(idx[0]), _stage_of(msg), msg))
                return schema
            mid = len(dicts) // 2
            schema = self._convert(dicts[:mid], idx[:mid], schema, extra, pieces, errors)
            return self._convert(dicts[mid:], idx[mid:], schema, extra, pieces, errors)
        pieces.append((table, idx))
        return _evolve(schema, table.schema) if extra == "infer" else schema
