"""JSONL / NDJSON (plain, .gz, .zst): block-parsed with pyarrow.json, with a bad-line policy.

A file is read ``block_size`` bytes at a time by a background thread (which also
decompresses), cut at newlines into blocks of about 2 MiB of whole lines, and those are
parsed a few at a time on a shared thread pool, in order: by lakekit's native parser
(``_ndjson.c``) under a schema of the usual types, else, and for any block it is not sure of, by
``pyarrow.json.read_json``.
Memory stays at a few blocks whatever the size of the file. Only a block that pyarrow
rejects is looked at more closely: it is split in halves until the bad lines are isolated,
which are then named (``on_bad_lines="error"``) or dropped and counted in a
:class:`BadLineTally` (``"skip"``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pyarrow as pa

from lakekit.errors import BadRecordError, BadRecordsWarning, ConfigError
from lakekit.io.jsonl._parse import PARSE_ERRORS, Parser, Piece, Unifier
from lakekit.io.jsonl._salvage import Salvage, explain
from lakekit.io.jsonl._stream import Block, compression_of, iter_blocks, open_stream
from lakekit.io.pipeline import read_ahead, shared_pool

__all__ = ["BadLineTally", "compression_of", "infer_jsonl_schema", "read_jsonl_batches"]

T = TypeVar("T")
DEFAULT_BLOCK_SIZE = 16 << 20
DEFAULT_MAX_LINE_BYTES = 256 << 20
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- bad-line bookkeeping ----------------------------------------------------------------------
@dataclass
class BadLineTally:
    """Counts the lines skipped by one read (``on_bad_lines="skip"``), across files and threads.

    ``first`` is the ``(url, line, reason)`` of the first bad line: the earliest line of the
    file with the lowest ``order`` (see :func:`read_jsonl_batches`); without an order, the
    earliest line of the file that reported first.

    Examples
    --------
    >>> tally = BadLineTally()
    >>> tally.add("events.jsonl", 3, "expected a JSON object, got a JSON array: '[1, 2]'")
    >>> tally.count, tally.first
    (1, ('events.jsonl', 3, "expected a JSON object, got a JSON array: '[1, 2]'"))
    """

    count: int = 0
    first: tuple[str, int, str] | None = None
    _first_key: tuple[float, int] = field(default=(math.inf, 0), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self, url: str, line: int, reason: str, *, n: int = 1, order: int | None = None
    ) -> None:
        """Record ``n`` bad lines of ``url``, the first of them at ``line``."""
        key = (math.inf if order is None else float(order), line)
        with self._lock:
            self.count += n
            comparable = order is not None or (self.first is not None and self.first[0] == url)
            if self.first is None or (comparable and key < self._first_key):
                self.first = (url, line, reason)
                self._first_key = key

    def message(self) -> str:
        """The summary the warning carries."""
        if self.first is None:
            return f"skipped {self.count} bad line(s)"
        url, line, reason = self.first
        return f"skipped {self.count} bad line(s); first at {url}:{line}: {reason}"

    def warn(self, stacklevel: int | None = None) -> None:
        """Warn with :class:`~lakekit.errors.BadRecordsWarning` if any line was skipped.

        The warning points at the first caller outside lakekit unless ``stacklevel`` is given.
        """
        with self._lock:
            count = self.count
        if count:
            warnings.warn(
                BadRecordsWarning(self.message()),
                stacklevel=stacklevel if stacklevel is not None else _user_stacklevel(),
            )


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the innermost frame outside the lakekit package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PKG_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level



# -- the public readers ------------------------------------------------------------------------
def _pieces(
    block: Block, parser: Parser, *, url: str, on_bad_lines: str, tally: BadLineTally | None,
    order: int | None,
) -> list[Piece]:
    """Parse one block; isolate and handle bad lines if pyarrow rejects it."""
    whole_failed = False
    if not block.unsafe:
        try:
            return [Piece(parser.parse(block.buffer, rows=block.rows), block)]
        except PARSE_ERRORS:
            whole_failed = True
    salvage = Salvage(parser, block, stop_at_first=on_bad_lines == "error")
    salvage.run(whole_failed=whole_failed)
    if salvage.bad:
        first = salvage.bad[0]
        if on_bad_lines == "error":
            raise BadRecordError(
                f"{url}:{first.line}: {explain(first, parser)} "
                "(pass on_bad_lines='skip' to skip bad lines)"
            )
        if tally is not None:
            tally.add(url, first.line, explain(first, parser), n=len(salvage.bad), order=order)
    return salvage.pieces


def _ordered_map(fn: Callable[[Block], T], blocks: Iterator[Block]) -> Iterator[T]:
    """``map(fn, blocks)`` on the parse pool, a few blocks in flight, results in order."""
    # threads that parse blocks, shared by every read (as many as pyarrow's CPU pool)
    pool = shared_pool("jsonl-parse", max_workers=max(1, pa.cpu_count()))
    window = max(2, pa.cpu_count())
    pending: deque[Future[T]] = deque()
    try:
        for block in blocks:
            if len(pending) >= window:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, block))
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        wait(pending)


def _check_options(block_size: int, on_bad_lines: str, max_line_bytes: int) -> None:
    if block_size < 1024:
        raise ConfigError(f"block_size must be at least 1024 bytes, got {block_size}")
    if on_bad_lines not in ("error", "skip"):
        raise ConfigError(f"on_bad_lines must be 'error' or 'skip'; got {on_bad_lines!r}")
    if max_line_bytes < 1:
        raise ConfigError(f"max_line_bytes must be positive, got {max_line_bytes}")


def read_jsonl_batches(
    fs: Any,
    path: str,
    *,
    url: str,
    compression: str | None,
    schema: pa.Schema | None,
    columns: Sequence[str] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    on_bad_lines: Literal["error", "skip"] = "error",
    tally: BadLineTally | None = None,
    order: int | None = None,
    use_threads: bool = True,
    prefetch: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[pa.RecordBatch]:
    """Stream a JSONL file (plain, gzip or zstd) as record batches, one block at a time.

    Parameters
    ----------
    fs, path
        An fsspec filesystem and the path on it.
    url
        A credential-free name of the file for messages.
    compression
        ``"gzip"``, ``"zstd"`` or ``None`` (see :func:`compression_of`).
    schema
        The target schema: every batch has exactly this schema (restricted to ``columns``);
        fields missing from a line are null and other fields are ignored. A value must be
        of its column's JSON type (a number for numeric columns, a string for string,
        date and timestamp columns, ...); one that is not makes its line bad. ``None``
        infers types block by block and widens them as the file goes on (int to float,
        null to anything); later batches may then be wider than earlier ones, and types
        that cannot be reconciled raise :class:`~lakekit.errors.SchemaMismatchError`.
    columns
        Only these columns are returned, in this order; other fields are not converted.
    block_size
        Bytes of (decompressed) text parsed at a time; about three blocks are in memory.
    on_bad_lines
        ``"error"`` raises :class:`~lakekit.errors.BadRecordError` naming the file, the
        1-based line and what was expected; ``"skip"`` drops bad lines and counts them in
        ``tally``. A bad line is one that is not a JSON object, or (with a schema) one with a
        value that does not fit its column's type. Blank lines are not bad.
    tally
        Collects skipped lines across the files of one read (call ``tally.warn()`` at the end).
    order
        The file's position in the read, so that ``tally.first`` is deterministic when
        files are read concurrently.
    use_threads
        Parse several blocks at once on a pool shared by all reads (as many threads as
        ``pyarrow.cpu_count()``); ``False`` parses on the calling thread.
    prefetch
        Read and decompress the next block in a background thread while parsing.
    max_line_bytes
        Longest line accepted; a longer one raises :class:`~lakekit.errors.FormatError`.

    Raises
    ------
    BadRecordError
        A bad line, with ``on_bad_lines="error"``.
    FormatError
        A truncated or corrupt ``.gz`` / ``.zst`` stream, or an over-long line.

    Examples
    --------
    >>> import fsspec, pyarrow as pa
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe("/doc/events.jsonl", b'{"id": 1, "kind": "view"}\\n{"id": 2}\\n')
    >>> batches = read_jsonl_batches(fs, "/doc/events.jsonl", url="memory://doc/events.jsonl",
    ...                              compression=None, schema=pa.schema([("id", pa.int64())]))
    >>> pa.Table.from_batches(list(batches)).to_pydict()
    {'id': [1, 2]}
    """
    _check_options(block_size, on_bad_lines, max_line_bytes)
    target: pa.Schema | None = None
    names = list(columns) if columns is not None else None
    if isinstance(columns, str):
        raise ConfigError("columns must be a list of names, not a string")
    if schema is not None:
        if names is not None:
            unknown = [c for c in names if c not in schema.names]
            if unknown:
                raise ConfigError(f"{url}: column(s) {unknown} are not in the schema")
            target = pa.schema([schema.field(c) for c in names], metadata=schema.metadata)
        else:
            target = schema
    parser = Parser(target, url=url)
    unifier = Unifier(url) if target is None else None
    stream = open_stream(fs, path, url, compression, block_size)
    blocks: Iterator[Block] = iter_blocks(
        stream, url=url, compression=compression, block_size=block_size,
        max_line_bytes=max_line_bytes,
    )
    if prefetch:
        blocks = read_ahead(blocks, name="lakekit-jsonl-read")

    def parse(block: Block) -> list[Piece]:
        return _pieces(block, parser, url=url, on_bad_lines=on_bad_lines, tally=tally,
                       order=order)

    parsed = _ordered_map(parse, blocks) if use_threads else map(parse, blocks)
    try:
        for pieces in parsed:
            for piece in pieces:
                table = piece.table if unifier is None else unifier.add(piece)
                if names is not None and unifier is not None:
                    table = _select(table, names)
                yield from table.to_batches()
    finally:
        for it in (parsed, blocks):
            close = getattr(it, "close", None)
            if close is not None:
                close()


def _select(table: pa.Table, names: list[str]) -> pa.Table:
    if not names:
        return table.select([])
    return pa.Table.from_arrays(
        [table.column(n) if n in table.column_names else pa.nulls(table.num_rows) for n in names],
        names=names,
    )


def infer_jsonl_schema(
    fs: Any,
    path: str,
    *,
    url: str,
    compression: str | None,
    sample_bytes: int = 1 << 20,
    max_sample_bytes: int = 16 << 20,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> pa.Schema:
    """Infer the schema of a JSONL file from its first ``sample_bytes`` (whole lines).

    Lines that are not JSON objects are left out of the inference (reading the file
    reports them as its ``on_bad_lines`` says); types that conflict within the sample raise
    :class:`~lakekit.errors.SchemaMismatchError` naming the line and column. Columns that
    are null throughout the sample (sparse fields) take their type from the next lines
    that have a value, looking up to ``max_sample_bytes`` into the file; past that they
    stay of type null. A file with no rows in the sample has an empty schema.

    Examples
    --------
    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe("/doc/s.jsonl", b'{"id": 1, "price": null}\\n{"id": 2, "price": 9.5}\\n')
    >>> infer_jsonl_schema(fs, "/doc/s.jsonl", url="memory://doc/s.jsonl", compression=None)
    id: int64
    price: double
    """
    if sample_bytes < 1024:
        raise ConfigError(f"sample_bytes must be at least 1024, got {sample_bytes}")
    stream = open_stream(fs, path, url, compression, sample_bytes)
    blocks = iter_blocks(stream, url=url, compression=compression, block_size=sample_bytes,
                          max_line_bytes=max_line_bytes, parse_size=sample_bytes)
    parser = Parser(None, url=url)
    try:
        block = next(blocks, None)
        if block is None:
            return pa.schema([])
        unifier = Unifier(url)
        for piece in _pieces(block, parser, url=url, on_bad_lines="skip", tally=None,
                             order=None):
            unifier.add(piece)
        schema = unifier.schema if unifier.schema is not None else pa.schema([])
        seen = len(block.data)
        while seen < max_sample_bytes and any(pa.types.is_null(f.type) for f in schema):
            block = next(blocks, None)
            if block is None:
                break
            seen += len(block.data)
            schema = _resolve_nulls(schema, block, parser)
        return schema
    finally:
        blocks.close()


def _resolve_nulls(schema: pa.Schema, block: Block, parser: Parser) -> pa.Schema:
    """Type the null columns of ``schema`` from a later block (other columns stay)."""
    if block.unsafe:
        return schema
    try:
        later = parser.parse(block.buffer, rows=block.rows).schema
    except PARSE_ERRORS:
        return schema                     # bad lines are reported when the file is read
    fields = []
    for f in schema:
        i = later.get_field_index(f.name)
        if pa.types.is_null(f.type) and i >= 0 and not pa.types.is_null(later.field(i).type):
            f = f.with_type(later.field(i).type)
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)
