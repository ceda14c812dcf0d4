"""What each task of a distributed check does on its piece (see :mod:`lakekit.quality.distributed`).

A task reads its piece, validates it with :func:`lakekit.quality.validation.run_schema` (the
code a local check runs) and sends back little: counts, and the first failure cases of each
pandera check, cut into :class:`Block` s that the driver merges. The sampling tasks give each
row the seeded key a local ``sample=`` gives it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakekit.quality.report import FAILURE_CASE_COLUMNS
from lakekit.quality.validation import SAMPLE_SEED, run_schema

if TYPE_CHECKING:
    import polars as pl
    from pandera.api.polars.container import DataFrameSchema

    from lakekit.io.dataset import Dataset
    from lakekit.io.pieces import Piece

__all__ = [
    "BLOCK_KEY",
    "Block",
    "BlockKey",
    "PieceCheck",
    "PieceCount",
    "PieceOutcome",
    "PieceRows",
    "PieceSample",
    "check_limit",
    "column_position",
    "cut_blocks",
    "has_limits",
]

# the columns of pandera's failure cases that tell which check a case comes from
BLOCK_KEY = ("schema_context", "column", "check", "check_number")
BlockKey = tuple[Any, Any, Any, Any]
Group = tuple[Any, str, int]


@dataclass(frozen=True)
class Block:
    """The failure cases of one pandera check in one piece."""

    key: BlockKey
    count: int
    rows: pl.DataFrame  # the first cases: column, check, failure_case, index (piece-local)
    groups: tuple[Group, ...]  # (column, check, count), in order of appearance
    schema_level: bool  # no row index: a fact about the schema, the same in every piece


@dataclass(frozen=True)
class PieceOutcome:
    """What one task sends back."""

    rows: int
    blocks: tuple[Block, ...]
    rows_failing: int  # rows failing a check (without its own n_failure_cases)
    failing: Any = None  # numpy: piece-local indexes of rows failing (when asked), checks
    # with their own n_failure_cases left out (their first cases count, in the blocks)
    keys: pl.DataFrame | None = None  # the uniqueness key columns, as pandera parsed them
    stopped: bool = False
    coerced_column: str | None = None


def cut_blocks(
    cases: pl.DataFrame, cap: int, limit: Callable[[BlockKey], int | None] = lambda key: None
) -> tuple[list[Block], pl.Series]:
    """The cases cut into one block per pandera check (the first ``cap`` cases of each kept;
    all of them for a check with its own ``n_failure_cases``), and the indexes of the rows
    failing a check without such a limit."""
    import polars as pl

    if cases.height == 0:
        return [], pl.Series("index", [], dtype=pl.Int64)
    marked = cases.with_columns(pl.struct(list(BLOCK_KEY)).rle_id().alias("__block__"))
    out = []
    unlimited = []
    for part in marked.partition_by("__block__", maintain_order=True):
        first = part.row(0, named=True)
        key: BlockKey = tuple(first[k] for k in BLOCK_KEY)
        own = limit(key)
        if own is None:
            unlimited.append(part.get_column("index"))
        groups = part.group_by(["column", "check"], maintain_order=True).len().iter_rows()
        out.append(Block(
            key=key,
            count=part.height,
            rows=part.head(cap if own is None else max(cap, own)).select(FAILURE_CASE_COLUMNS),
            groups=tuple((c, k, int(n)) for c, k, n in groups),
            schema_level=part.get_column("index").null_count() == part.height,
        ))
    failing = pl.concat(unlimited) if unlimited else pl.Series("index", [], dtype=pl.Int64)
    return out, failing.drop_nulls().unique()


class PieceCheck:
    """The task: read one piece, validate it, summarise (what the engine runs)."""

    def __init__(self, dataset: Dataset, columns: list[str], schema: DataFrameSchema, *,
                 keys: list[str], cap: int, indexes: bool) -> None:
        self.dataset = dataset
        self.columns = columns
        self.schema = schema
        self.keys = keys
        self.cap = cap
        self.indexes = indexes

    def __call__(self, piece: Piece) -> PieceOutcome:
        import polars as pl

        df = pl.from_arrow(self.dataset.read_piece(piece, self.columns))
        assert isinstance(df, pl.DataFrame)
        outcome = run_schema(df, self.schema)
        blocks, failing = cut_blocks(outcome.cases, self.cap,
                                  lambda key: check_limit(self.schema, key))
        keys = None
        if self.keys and outcome.parsed is not None:
            keys = outcome.parsed.select([k for k in self.keys if k in outcome.parsed.columns])
        return PieceOutcome(
            rows=df.height, blocks=tuple(blocks), rows_failing=failing.len(),
            failing=failing.sort().to_numpy() if self.indexes else None, keys=keys,
            stopped=outcome.stopped, coerced_column=outcome.coerced_column,
        )


class PieceRows:
    """The task of the global uniqueness step: some rows of a piece, as pandera parsed them."""

    def __init__(self, dataset: Dataset, columns: list[str],
                 schemas: list[DataFrameSchema]) -> None:
        self.dataset = dataset
        self.columns = columns
        self.schemas = schemas

    def __call__(self, item: tuple[Piece, Any, int]) -> pl.DataFrame:
        import polars as pl

        piece, index, which = item
        df = pl.from_arrow(self.dataset.read_piece(piece, self.columns))
        assert isinstance(df, pl.DataFrame)
        parsed = run_schema(df, self.schemas[which]).parsed
        assert parsed is not None  # a piece that stopped early has no uniqueness step
        return parsed[index]


class PieceCount:
    """The task that counts a piece's rows (for sampling, where metadata does not tell)."""

    def __init__(self, dataset: Dataset, columns: list[str]) -> None:
        self.dataset = dataset
        self.columns = columns

    def __call__(self, piece: Piece) -> int:
        return int(self.dataset.read_piece(piece, self.columns).num_rows)


class PieceSample:
    """The sampling task: the piece's rows with the smallest of the seeded keys a local
    check gives them (the key of row ``i`` is the ``i``-th draw of the seeded generator)."""

    def __init__(self, dataset: Dataset, columns: list[str], n: int) -> None:
        self.dataset = dataset
        self.columns = columns
        self.n = n

    def __call__(self, item: tuple[Piece, int]) -> tuple[Any, Any, pl.DataFrame]:
        import numpy as np
        import polars as pl

        piece, offset = item
        df = pl.from_arrow(self.dataset.read_piece(piece, self.columns))
        assert isinstance(df, pl.DataFrame)
        rng = np.random.default_rng(SAMPLE_SEED)
        rng.bit_generator.advance(offset)  # type: ignore[attr-defined]  # PCG64: row i's key
        # (Generator.random takes one 64-bit draw per double, so advancing by ``offset``
        # gives the draws a local check gives the rows from ``offset`` on)
        keys = rng.random(df.height)
        keep = np.arange(df.height)
        if df.height > self.n:
            keep = np.sort(np.argsort(keys, kind="stable")[: self.n])
        return keep.astype(np.int64) + offset, keys[keep], df[keep]


def column_position(schema: DataFrameSchema, columns: list[str], name: Any) -> tuple[int, int]:
    names = list(schema.columns)
    if name in schema.columns and not getattr(schema.columns[name], "regex", False):
        return names.index(name), 0
    for i, (key, column) in enumerate(schema.columns.items()):
        if getattr(column, "regex", False) and isinstance(name, str) and re.fullmatch(key, name):
            return i, columns.index(name) if name in columns else len(columns)
    return len(names), 0


def has_limits(schema: DataFrameSchema) -> bool:
    """Whether a check of ``schema`` keeps only its first ``n_failure_cases``."""
    checks = [*(getattr(schema, "checks", []) or [])]
    for column in (getattr(schema, "columns", {}) or {}).values():
        checks += column.checks
    return any(getattr(c, "n_failure_cases", None) is not None for c in checks)


def check_limit(schema: DataFrameSchema, key: BlockKey) -> int | None:
    """The check's own ``n_failure_cases`` (pandera keeps only that many), if any."""
    context, column, _, number = key
    if number is None:
        return None
    checks: list[Any] = list(getattr(schema, "checks", []) or [])
    if context == "Column":
        position, _ = column_position(schema, [], column)
        found = list(schema.columns.values())
        checks = list(found[position].checks) if position < len(found) else []
    if 0 <= number < len(checks):
        limit = getattr(checks[number], "n_failure_cases", None)
        return int(limit) if limit is not None else None
    return None
