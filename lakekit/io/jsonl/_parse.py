"""JSONL parsing: lakekit's native parser or pyarrow.json on a block under a given or
inferred schema, and the unification of the types inferred for different blocks."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from lakekit.errors import ConfigError, SchemaMismatchError
from lakekit.io.jsonl._stream import WHITESPACE, Block

PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _native_module() -> ModuleType | None:
    """The compiled parser (``_ndjson.c``), or None where lakekit was installed without a
    C compiler."""
    name = "lakekit.io.jsonl._ndjson"
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


_NATIVE = _native_module()
# the native parser's type codes, by parse type (lakekit/io/jsonl/_ndjson.c: K_*)
_NATIVE_KINDS = {
    pa.null(): 0, pa.bool_(): 1,
    pa.int8(): 2, pa.int16(): 3, pa.int32(): 4, pa.int64(): 5,
    pa.uint8(): 6, pa.uint16(): 7, pa.uint32(): 8, pa.uint64(): 9,
    pa.float64(): 10, pa.string(): 11,
}
# stop trying the native parser on a file when, after this many blocks, most fell back
_NATIVE_PATIENCE = 8


def native_parser() -> bool:
    """Whether the native JSONL parser is built (``pip install`` compiled it) and on.

    Without it (or with the environment variable ``LAKEKIT_NATIVE_JSONL=0``, read when a
    file is opened), every block is parsed by ``pyarrow.json``: the same rows, errors and
    line numbers, about half as fast.

    Examples
    --------
    >>> from lakekit.io.jsonl import native_parser
    >>> isinstance(native_parser(), bool)
    True
    """
    return _NATIVE is not None and os.environ.get("LAKEKIT_NATIVE_JSONL", "1") != "0"


_LIST, _STRUCT = 12, 13   # the native parser's codes of nested kinds


def _native_type(t: pa.DataType, depth: int = 0) -> pa.DataType | None:
    """The type the native parser builds for parse type ``t``, or None if it cannot.

    Timestamps and large strings are built as strings and cast (pyarrow's cast of a string
    to a timestamp accepts exactly what its JSON reader accepts, and reads it the same);
    lists and structs of what it can build, up to 32 levels deep (the C parser stops at
    64), as long as their fields are nullable and a struct's names unique.
    """
    if depth > 32:
        return None
    if t in _NATIVE_KINDS:
        return t
    if pa.types.is_timestamp(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_list(t):
        item = t.value_field
        inner = _native_type(item.type, depth + 1)
        return pa.list_(item.with_type(inner)) if inner is not None and item.nullable else None
    if pa.types.is_struct(t):
        fields = []
        for f in t:
            inner = _native_type(f.type, depth + 1)
            if inner is None or not f.nullable:
                return None
            fields.append(f.with_type(inner))
        return pa.struct(fields) if len({f.name for f in fields}) == len(fields) else None
    return None


def _spec(name: str, t: pa.DataType) -> tuple[Any, ...]:
    """The native parser's description of a column of (native) type ``t``."""
    if pa.types.is_list(t):
        return (name, _LIST, (_spec(t.value_field.name, t.value_type),))
    if pa.types.is_struct(t):
        return (name, _STRUCT, tuple(_spec(f.name, f.type) for f in t))
    return (name, _NATIVE_KINDS[t], ())


def _array(t: pa.DataType, out: tuple[Any, ...]) -> pa.Array:
    """The Arrow array of type ``t`` over the buffers the native parser returned."""
    valid, values, offsets, nulls, n, children = out
    if pa.types.is_null(t):
        return pa.nulls(n)
    validity = None if valid is None else pa.py_buffer(valid)
    if pa.types.is_struct(t):
        fields = [_array(f.type, c) for f, c in zip(t, children, strict=True)]
        return pa.Array.from_buffers(t, n, [validity], null_count=nulls, children=fields)
    if pa.types.is_list(t):
        items = _array(t.value_type, children[0])
        return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(offsets)],
                                     null_count=nulls, children=[items])
    buffers = [validity, pa.py_buffer(values)]
    if offsets is not None:
        buffers.insert(1, pa.py_buffer(offsets))
    return pa.Array.from_buffers(t, n, buffers, null_count=nulls)


class _Native:
    """The native parser under one parse schema; gives up on a file whose blocks keep
    needing pyarrow (each such block is parsed up to its first odd line twice)."""

    def __init__(self, schema: pa.Schema, types: list[pa.DataType]) -> None:
        self.schema = schema
        self.types = types
        self.specs = tuple(_spec(f.name, t) for f, t in zip(schema, types, strict=True))
        self.tries = 0
        self.fallbacks = 0

    @classmethod
    def create(cls, schema: pa.Schema) -> _Native | None:
        """The native parser for ``schema``, or None where it cannot parse it (or is off)."""
        if not native_parser() or not len(schema):   # no columns: the row count would be lost
            return None
        if len(set(schema.names)) != len(schema.names):
            return None
        types = [_native_type(f.type) for f in schema]
        if any(t is None for t in types):
            return None
        return cls(schema, types)

    def parse(self, data: Any, rows: int) -> pa.Table | None:
        """The block's table, or None: pyarrow.json must parse it (a bad line, or a
        construct the native parser leaves to pyarrow)."""
        if self.tries >= _NATIVE_PATIENCE and self.fallbacks * 2 > self.tries:
            return None
        assert _NATIVE is not None
        self.tries += 1
        columns = _NATIVE.parse(data, rows, self.specs)
        if columns is None:
            self.fallbacks += 1
            return None
        arrays = []
        for f, t, out in zip(self.schema, self.types, columns, strict=True):
            array = _array(t, out)
            array.validate()          # buffer sizes and lengths (O(1) per array)
            if not array.type.equals(f.type):
                try:
                    array = array.cast(f.type)
                except PARSE_ERRORS:
                    self.fallbacks += 1
                    return None       # pyarrow names the line whose value does not fit
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=self.schema)


# -- parsing -----------------------------------------------------------------------------------
def _parse_type(t: pa.DataType) -> pa.DataType:
    """A type pyarrow.json can parse into, from which ``t`` is reached by a cast."""
    if pa.types.is_dictionary(t):
        return _parse_type(t.value_type)
    if pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_duration(t):
        return pa.int64()
    if pa.types.is_float16(t):
        return pa.float64()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(_parse_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_parse_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_parse_type(f.type)) for f in t])
    return t


class Parser:
    """Parses bytes of whole lines into a table of ``target`` (or inferred, if None)."""

    def __init__(self, target: pa.Schema | None, *, url: str) -> None:
        self.target = target
        self.url = url
        self._infer_options = pj.ParseOptions()
        self._explicit_options: pj.ParseOptions | None = None
        self._native: _Native | None = None
        if target is not None:
            parse_schema = pa.schema(
                [pa.field(f.name, _parse_type(f.type), nullable=True) for f in target]
            )
            self._explicit_options = pj.ParseOptions(
                explicit_schema=parse_schema, unexpected_field_behavior="ignore"
            )
            try:
                self._read(b"{}\n", self._explicit_options)
            except pa.ArrowNotImplementedError as exc:
                raise ConfigError(f"{url}: the schema cannot be read from JSON: {exc}") from None
            self._native = _Native.create(parse_schema)

    def _read(self, data: Any, options: pj.ParseOptions) -> pa.Table:
        # one block per call, on the calling thread: blocks are parsed in parallel by the
        # parse pool, which scales better than pyarrow's threads within one small call
        return pj.read_json(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pj.ReadOptions(use_threads=False,
                                        block_size=min(max(len(data) + 1, 1 << 16), 2**31 - 1)),
            parse_options=options,
        )

    def parse(self, data: Any, *, rows: int) -> pa.Table:
        """Parse ``data``, ``rows`` non-blank lines; raise one of ``PARSE_ERRORS`` if a
        line does not fit."""
        _check_utf8(data)      # pyarrow.json passes invalid UTF-8 through into strings
        if self._native is not None:
            native = self._native.parse(data, rows)
            if native is not None:
                return self._conform(native)
        if self._explicit_options is None:
            table = self._read(data, self._infer_options)
            if _has_list(table.schema):
                # inferred lists with leading nulls come out corrupt (apache/arrow#51305);
                # the same types given explicitly parse correctly
                table = self._read(data, pj.ParseOptions(explicit_schema=table.schema))
        else:
            table = self._read(data, self._explicit_options)
        if table.num_rows != rows:
            # pyarrow reads '{"a": 1}{"a": 2}' on one line as two rows
            raise pa.ArrowInvalid("more than one JSON value on a line")
        return table if self._explicit_options is None else self._conform(table)

    def _conform(self, table: pa.Table) -> pa.Table:
        target = self.target
        assert target is not None
        if not len(target):
            return table.select([])               # no columns, but the row count
        rows = table.num_rows
        columns = [
            table.column(f.name) if f.name in table.column_names else pa.nulls(rows, f.type)
            for f in target
        ]
        for f, col in zip(target, columns, strict=True):
            if not f.nullable and col.null_count:
                raise pa.ArrowInvalid(f"column {f.name!r} is required but missing or null")
        if not rows:
            return target.empty_table()
        out = pa.Table.from_arrays(columns, names=target.names)
        return out if out.schema.equals(target, check_metadata=True) else out.cast(target)

    def single_column(self, name: str) -> Parser:
        assert self.target is not None
        return Parser(pa.schema([self.target.field(name)]), url=self.url)


def _check_utf8(data: Any) -> None:
    """Raise ``ArrowInvalid`` unless ``data`` is valid UTF-8 (vectorised, ~10 GB/s)."""
    buf = pa.py_buffer(data)
    offsets = pa.py_buffer(np.array([0, buf.size], dtype=np.int64))
    pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, buf]).validate(full=True)


def _has_list(t: pa.Schema | pa.DataType) -> bool:
    if isinstance(t, pa.Schema):
        return any(_has_list(f.type) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_list(f.type) for f in t)
    return False


def _cast_table(table: pa.Table, target: pa.Schema) -> pa.Table:
    """Conform an inferred table to ``target`` (table fields are a subset or narrower)."""
    columns = []
    for f in target:
        if f.name in table.column_names:
            col = table.column(f.name)
            if not col.type.equals(f.type):
                col = pa.concat_tables(
                    [pa.schema([f]).empty_table(), table.select([f.name])],
                    promote_options="permissive",
                ).column(0)
            columns.append(col)
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=target)



# -- salvage: find the lines pyarrow rejects ---------------------------------------------------
@dataclass
class Piece:
    """A parsed table; ``lines`` are the (1-based) line numbers of its rows, None = every
    non-blank line of ``block``."""

    table: pa.Table
    block: Block
    lines: np.ndarray | None = None



# -- unification across blocks (schema=None) ---------------------------------------------------
class Unifier:
    """Widens a running schema block after block (int -> float, null -> any)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema: pa.Schema | None = None

    def add(self, piece: Piece) -> pa.Table:
        table = piece.table
        if self.schema is None:
            self.schema = table.schema
            return table
        if not table.schema.equals(self.schema):
            try:
                self.schema = pa.unify_schemas(
                    [self.schema, table.schema], promote_options="permissive"
                )
            except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise self._mismatch(piece) from None
        return _cast_table(table, self.schema)

    def _mismatch(self, piece: Piece) -> SchemaMismatchError:
        assert self.schema is not None
        for f in piece.table.schema:
            if f.name not in self.schema.names:
                continue
            old = self.schema.field(f.name)
            try:
                pa.unify_schemas([pa.schema([old]), pa.schema([f])], promote_options="permissive")
            except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                valid = piece.table.column(f.name).is_valid()
                row = next((i for i, v in enumerate(valid.to_pylist()) if v), 0)
                line = _row_line(piece, row)
                where = f"{self.url}:{line}" if line else self.url
                return SchemaMismatchError(
                    f"{where}: column {f.name!r} is {f.type} here but {old.type} in earlier "
                    "lines; these types cannot be reconciled (pass an explicit schema)"
                )
        return SchemaMismatchError(
            f"{self.url}: the types inferred for its blocks cannot be reconciled"
        )


def _row_line(piece: Piece, row: int) -> int | None:
    if piece.lines is not None:
        return int(piece.lines[row]) if row < len(piece.lines) else None
    block = piece.block
    starts, ends = block.bounds()
    seen = 0
    for i in range(len(starts)):
        if bytes(block.data[int(starts[i]) : int(ends[i])]).strip(WHITESPACE):
            if seen == row:
                return block.first_line + i
            seen += 1
    return None
