"""Schema validation on Dask or Ray: ``lk.check(..., engine="dask" | "ray")``.

The driver plans the source into pieces (:meth:`lakekit.Dataset.pieces`, only the columns
the schema needs) and runs one task per piece through :func:`lakekit.scale.engines.run`.
Each task reads its piece and validates it with exactly the code a local check runs
(:func:`lakekit.quality.validation.run_schema`), and sends back little: its row count, the
failure count of each pandera check, the first ``max_failure_cases`` failure cases of each
with piece-local row indexes. The driver shifts indexes by the rows of the pieces before
(pieces are in read order, so indexes are those of a local run), puts the checks back in
pandera's order and caps the cases as a local run does: the report equals the local one.

What one piece cannot decide alone:

- uniqueness (``Column(unique=True)``, ``DataFrameSchema(unique=[...])``) gets a global
  step: the tasks also return the key columns (as pandera parsed them); the driver finds
  the duplicates over all rows and builds the same failure cases as a local run (for a
  frame-level ``unique``, the duplicate rows are fetched back from their pieces, since
  pandera reports whole rows). The key columns of every row come to the driver.
- checks that may look at a whole column or frame (custom checks that are not
  ``element_wise``, ``groupby`` checks, ``unique_values_eq``) are refused up front with a
  :class:`~lakekit.errors.ConfigError` naming them: never a silent pass.
- a failed coercion (``coerce=True``): pandera reports the first column that fails and
  then validates the frame uncoerced; the pieces that failed elsewhere, or not at all, are
  validated again that way.

``sample=N`` draws exactly the rows a local check draws (the same seeded keys, one per row
in read order; each task keeps its N smallest) and validates those N rows on the driver,
so every check is allowed there.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakekit.errors import ConfigError
from lakekit.quality.partitions import (
    Block,
    BlockKey,
    PieceCheck,
    PieceCount,
    PieceOutcome,
    PieceRows,
    PieceSample,
    check_limit,
    column_position,
    cut_blocks,
    has_limits,
)
from lakekit.quality.sources import Source, guard
from lakekit.quality.validation import (
    Validation,
    needed_columns,
    run_schema,
    schema_result,
    validate,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    from pandera.api.polars.container import DataFrameSchema

    from lakekit.io.dataset import Dataset
    from lakekit.io.pieces import Piece

__all__ = ["ROW_WISE_CHECKS", "Distributed", "refused_checks", "validate_distributed"]

# pandera's built-in checks that judge each value on its own.
ROW_WISE_CHECKS = frozenset({
    "equal_to", "not_equal_to", "greater_than", "greater_than_or_equal_to", "less_than",
    "less_than_or_equal_to", "in_range", "isin", "notin", "str_matches", "str_contains",
    "str_startswith", "str_endswith", "str_length",
})


@dataclass(frozen=True)
class Distributed:
    """A distributed validation: the same :class:`Validation` a local run gives, and how
    many partitions (pieces) were validated."""

    validation: Validation
    partitions: int


# -- the plan ------------------------------------------------------------------------------

def _builtin_name(check: Any) -> str | None:
    """The name of the pandera built-in check ``check`` runs, else ``None`` (a custom one,
    whatever its name)."""
    from pandera.api.function_dispatch import Dispatcher

    fn = getattr(check, "_check_fn", None)
    if not isinstance(fn, Dispatcher):
        return None
    registered = getattr(fn, "_function_registry", {}).values()
    if not registered or not all(
            (getattr(f, "__module__", "") or "").startswith("pandera.") for f in registered):
        return None
    return str(fn.__name__)


def _why_not_row_wise(check: Any) -> str | None:
    if getattr(check, "groupby", None) is not None:
        return "a groupby check"
    builtin = _builtin_name(check)
    if builtin is not None:
        return None if builtin in ROW_WISE_CHECKS else "a check on the column as a whole"
    if getattr(check, "element_wise", False):
        return None
    return "a custom check that is not element_wise"


def _label(check: Any) -> str:
    return str(getattr(check, "error", None) or getattr(check, "name", None) or check)


def refused_checks(schema: DataFrameSchema) -> list[str]:
    """The checks of ``schema`` that one partition cannot decide alone (and that have no
    global step), described for an error message; empty when all can be distributed.

    Examples
    --------
    >>> import pandera.polars as pa
    >>> refused_checks(pa.DataFrameSchema({"n": pa.Column(int, pa.Check.ge(0))}))
    []
    >>> refused_checks(pa.DataFrameSchema(checks=[pa.Check(lambda d: d.lazyframe, name="f")]))
    ["dataframe check 'f' (a custom check that is not element_wise)"]
    """
    out = []
    if getattr(schema, "drop_invalid_rows", False):
        out.append("drop_invalid_rows=True (pandera drops the failing rows of the whole "
                   "table instead of reporting them)")
    for name, column in (getattr(schema, "columns", {}) or {}).items():
        for check in column.checks:
            why = _why_not_row_wise(check)
            if why:
                out.append(f"column {name!r} check {_label(check)!r} ({why})")
        if column.unique and getattr(column, "regex", False):
            out.append(f"column {name!r} unique=True (a regex column)")
    for check in getattr(schema, "checks", []) or []:
        why = _why_not_row_wise(check)
        if why:
            out.append(f"dataframe check {_label(check)!r} ({why})")
    return out


@dataclass(frozen=True)
class _Plan:
    """What the tasks validate, and what the global uniqueness step needs."""

    row_wise: DataFrameSchema  # the schema without its uniqueness checks
    unique_columns: list[str]  # Column(unique=True), in schema order
    unique_sets: list[list[str]]  # DataFrameSchema(unique=...), pandera's list of lists
    keys: list[str] = field(default_factory=list)  # the columns both need


def _plan(schema: DataFrameSchema) -> _Plan:
    columns = getattr(schema, "columns", {}) or {}
    unique_columns = [name for name, c in columns.items() if c.unique]
    unique = getattr(schema, "unique", None) or []
    unique_sets: list[list[str]] = (
        [list(unique)] if all(isinstance(x, str) for x in unique) else [list(x) for x in unique]
    ) if unique else []
    row_wise = schema
    if unique_columns or unique_sets:
        row_wise = copy.deepcopy(schema)
        row_wise.unique = None
        for name in unique_columns:
            row_wise.columns[name].unique = False
    keys = list(dict.fromkeys([*unique_columns, *(c for s in unique_sets for c in s)]))
    return _Plan(row_wise, unique_columns, unique_sets, keys)


def _coercion_order(schema: DataFrameSchema, available: Sequence[str]) -> list[str] | None:
    """The columns pandera coerces, in its order; ``None`` when the frame is coerced as a
    whole (a frame-level ``dtype``)."""
    if getattr(schema, "dtype", None) is not None:
        return None
    out = []
    for name, column in schema.columns.items():
        if not column.required and name not in available:
            continue
        if (schema.coerce or column.coerce) and not getattr(column, "regex", False):
            out.append(name)
    return out


def _without_coercion(schema: DataFrameSchema) -> Any:
    """``schema`` coercing nothing: what pandera validates after a coercion failed (it
    keeps the frame as it came, every column uncoerced)."""
    fixed = copy.deepcopy(schema)
    fixed.coerce = False
    for column in fixed.columns.values():
        column.coerce = False
    return fixed


# -- the driver ----------------------------------------------------------------------------

def validate_distributed(
    source: Source,
    schema: DataFrameSchema,
    *,
    engine: str,
    client: Any = None,
    max_failure_cases: int,
    sample: int | None = None,
) -> Distributed:
    """Validate ``source`` against ``schema`` piece by piece on ``engine``; the result
    equals :func:`lakekit.quality.validation.validate` on the whole source.

    Raises
    ------
    ConfigError
        A check no partition can decide alone (see :func:`refused_checks`).
    """
    import polars as pl

    plan = None
    if sample is None:
        refused = refused_checks(schema)
        if refused:
            raise ConfigError(
                f"engine={engine!r} validates partition by partition, and "
                f"{'this check needs' if len(refused) == 1 else 'these checks need'} the "
                f"whole table at once: {'; '.join(refused)}. Run the check without engine= "
                "(locally) or with sample=N; a custom check that judges each value on its "
                "own can be declared element_wise=True"
            )
        plan = _plan(schema)
    ds = source.dataset()
    columns = needed_columns(schema, source.column_names())
    # a file, or about PIECE_BYTES of its row groups, per task: bounded memory on workers
    pieces: list[Piece] = guard(lambda: ds.pieces(columns, split="row_group"),
                                what=source.label, redact=source.redact)
    token = uuid.uuid4().hex[:8]

    def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        from lakekit.scale.engines import run as run_on_engine

        # a fresh name per call: Dask keys must not meet those of an earlier call
        name = f"lakekit-check-{token}-{len(calls)}"
        calls.append(name)
        task = _as_function(fn)
        return guard(lambda: run_on_engine(task, items, engine=engine, client=client, name=name),
                     what=source.label, redact=source.redact)

    calls: list[str] = []
    if sample is not None:
        frame, index = _sample(ds, pieces, columns, sample, run)
        validation = validate(frame, schema, max_failure_cases=max_failure_cases,
                              index_map=index)
        return Distributed(validation, len(pieces))
    assert plan is not None
    if not pieces:
        empty = pl.from_arrow(ds.schema.empty_table().select(columns))
        assert isinstance(empty, pl.DataFrame)
        return Distributed(validate(empty, schema, max_failure_cases=max_failure_cases), 0)
    indexes = bool(plan.keys) or has_limits(schema)
    task = PieceCheck(ds, columns, plan.row_wise, keys=plan.keys, cap=max_failure_cases,
                      indexes=indexes)
    outcomes: list[PieceOutcome] = run(task, pieces)
    schemas = [plan.row_wise]
    which = [0] * len(pieces)
    failed = [o.coerced_column for o in outcomes if o.coerced_column is not None]
    if failed and not any(o.stopped for o in outcomes):
        order = _coercion_order(schema, columns)
        if order is not None and any(c not in order for c in failed):
            raise ConfigError(
                f"coercion of {sorted(set(failed) - set(order))} failed, and distributed "
                "validation cannot reproduce how pandera reports a failed coercion there; "
                "run the check without engine="
            )
        first = failed[0] if order is None else min(failed, key=order.index)
        redo = [i for i, o in enumerate(outcomes)
                if o.coerced_column is None or (order is not None and o.coerced_column != first)]
        if redo:
            fixed = _plan(_without_coercion(schema)).row_wise
            schemas.append(fixed)
            again = run(PieceCheck(ds, columns, fixed, keys=plan.keys, cap=max_failure_cases,
                                   indexes=indexes), [pieces[i] for i in redo])
            for i, outcome in zip(redo, again, strict=True):
                outcomes[i] = outcome
                which[i] = 1
    validation = _merge(schema, plan, outcomes, pieces, columns, which, schemas, ds, run,
                        max_failure_cases, indexes)
    return Distributed(validation, len(pieces))


def _as_function(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` as a plain function (``ray.remote`` takes functions and classes, not callable
    objects)."""

    def task(item: Any) -> Any:
        return fn(item)

    return task


def _sample(ds: Dataset, pieces: list[Piece], columns: list[str], n: int,
            run: Callable[..., list[Any]]) -> tuple[pl.DataFrame, Any]:
    """The rows (and their indexes) a local ``sample=n`` validates."""
    import numpy as np
    import polars as pl

    if not pieces:
        empty = pl.from_arrow(ds.schema.empty_table().select(columns))
        assert isinstance(empty, pl.DataFrame)
        return empty, np.zeros(0, dtype=np.int64)
    counts: list[int] = (
        [int(p.rows) for p in pieces if p.rows is not None]
        if all(p.rows is not None for p in pieces)
        else run(PieceCount(ds, columns[:1]), pieces)
    )
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    items = [(p, int(o)) for p, o in zip(pieces, offsets, strict=True)]
    parts = run(PieceSample(ds, columns, n), items)
    index = np.concatenate([p[0] for p in parts])
    keys = np.concatenate([p[1] for p in parts])
    frame = pl.concat([p[2] for p in parts], how="vertical")
    keep = np.arange(len(index))
    if len(index) > n:
        keep = np.sort(np.argsort(keys, kind="stable")[:n])  # index order = read order
    return frame[keep], index[keep]


@dataclass
class _Merged:
    key: BlockKey
    count: int
    rows: list[pl.DataFrame]
    groups: dict[tuple[Any, str], int]
    schema_level: bool
    seen: int  # when it was first seen (piece, position): breaks ties in the order


def _merge(
    schema: DataFrameSchema,
    plan: _Plan,
    outcomes: list[PieceOutcome],
    pieces: list[Piece],
    columns: list[str],
    which: list[int],
    schemas: list[DataFrameSchema],
    ds: Dataset,
    run: Callable[..., list[Any]],
    cap: int,
    indexes: bool,
) -> Validation:
    import numpy as np
    import polars as pl

    rows = sum(o.rows for o in outcomes)
    stopped = next((o for o in outcomes if o.stopped), None)
    if stopped is not None:  # a schema-level error stopped pandera: the same in every piece
        block = stopped.blocks[0]
        return Validation(schema_result(list(block.groups), block.count, rows, 0),
                          block.rows.head(cap), block.count, rows)
    offsets = np.concatenate([[0], np.cumsum([o.rows for o in outcomes])[:-1]]).astype(np.int64)
    merged: dict[BlockKey, _Merged] = {}
    for outcome, offset in zip(outcomes, offsets, strict=True):
        for block in outcome.blocks:
            m = merged.get(block.key)
            if m is None:
                m = merged[block.key] = _Merged(block.key, 0, [], {}, block.schema_level,
                                                len(merged))
            elif m.schema_level or block.schema_level:
                continue  # a fact about the schema: counted once, as in a local run
            m.count += block.count
            m.rows.append(block.rows.with_columns(pl.col("index") + int(offset)))
            for column, check, n in block.groups:
                m.groups[(column, check)] = m.groups.get((column, check), 0) + n
    for m in merged.values():
        limit = check_limit(schema, m.key)
        if limit is not None and m.count > limit:
            m.count = limit
            m.groups = {k: min(v, limit) for k, v in m.groups.items()}
    unique_index = _uniqueness(schema, plan, outcomes, pieces, columns, which, schemas, offsets,
                               ds, run, cap, merged)
    ordered = sorted(merged.values(), key=lambda m: (_order(schema, columns, m.key), m.seen))
    total = sum(m.count for m in ordered)
    groups: dict[tuple[Any, str], int] = {}
    for m in ordered:
        for k, v in m.groups.items():
            groups[k] = groups.get(k, 0) + v
    frames = [pl.concat(m.rows, how="vertical") for m in ordered if m.rows]
    limits = [check_limit(schema, m.key) for m in ordered if m.rows]
    if indexes:  # some failing rows may fail several checks: count each row once
        found = [o.failing + off for o, off in zip(outcomes, offsets, strict=True)
                 if o.failing is not None]
        found += [f.head(lim).get_column("index").drop_nulls().to_numpy()
                  for f, lim in zip(frames, limits, strict=True) if lim is not None]
        if unique_index is not None:
            found.append(unique_index)
        rows_failing = len(np.unique(np.concatenate(found))) if found else 0
    else:  # the pieces' failing rows are disjoint
        rows_failing = sum(o.rows_failing for o in outcomes)
    kept = [f.head(cap if lim is None else min(cap, lim))
            for f, lim in zip(frames, limits, strict=True)]
    cases = (pl.concat(kept, how="vertical").head(cap) if kept
             else pl.DataFrame(schema={"column": pl.String, "check": pl.String,
                                       "failure_case": pl.String, "index": pl.Int64}))
    result = schema_result([(c, k, n) for (c, k), n in groups.items()], total, rows,
                           rows_failing)
    return Validation(result, cases, total, rows)


def _uniqueness(
    schema: DataFrameSchema,
    plan: _Plan,
    outcomes: list[PieceOutcome],
    pieces: list[Piece],
    columns: list[str],
    which: list[int],
    schemas: list[DataFrameSchema],
    offsets: Any,
    ds: Dataset,
    run: Callable[..., list[Any]],
    cap: int,
    merged: dict[BlockKey, _Merged],
) -> np.ndarray | None:
    """The global uniqueness step: its failure blocks go into ``merged``; returns the
    indexes of the rows it found failing (``None`` when the schema has no uniqueness)."""
    import numpy as np
    import pandera.polars as pa
    import polars as pl

    if not plan.keys:
        return None
    keys = pl.concat([o.keys for o in outcomes if o.keys is not None], how="vertical")
    found: list[Any] = [np.zeros(0, dtype=np.int64)]
    found_blocks: list[Block] = []
    for subset in plan.unique_sets:  # pandera reports the first list with duplicates only
        present = [c for c in subset if c in keys.columns]
        if not present:
            continue
        duplicated = keys.select(present).is_duplicated()
        if not duplicated.any():
            continue
        index = np.flatnonzero(duplicated.to_numpy()).astype(np.int64)
        items = []
        for i, (piece, offset, outcome) in enumerate(zip(pieces, offsets, outcomes, strict=True)):
            local = index[(index >= offset) & (index < offset + outcome.rows)] - offset
            if len(local):
                items.append((piece, local, which[i]))
        rows = run(PieceRows(ds, columns, schemas), items)
        gathered = pl.concat(rows, how="vertical")
        bare = pa.DataFrameSchema(unique=present, name=schema.name)
        cases = run_schema(gathered, bare).cases
        cases = cases.with_columns(
            pl.Series("index", index, dtype=pl.Int64).gather(cases.get_column("index"))
        )
        found_blocks += cut_blocks(cases, cap)[0]
        found.append(index)
        break
    present_columns = [c for c in plan.unique_columns if c in keys.columns]
    if present_columns:
        bare = pa.DataFrameSchema(
            {c: pa.Column(nullable=True, unique=True) for c in present_columns}, name=schema.name
        )
        cases = run_schema(keys.select(present_columns), bare).cases
        found_blocks += cut_blocks(cases, cap)[0]
        found.append(cases.get_column("index").drop_nulls().to_numpy())
    for block in found_blocks:
        merged[block.key] = _Merged(block.key, block.count, [block.rows],
                                    {(c, k): n for c, k, n in block.groups}, False, len(merged))
    return np.unique(np.concatenate(found))


def _order(schema: DataFrameSchema, columns: list[str], key: BlockKey) -> tuple[Any, ...]:
    """Where pandera puts a check's failures: parsers, column presence, frame uniqueness,
    then each column (nullable, unique, dtype, its checks), then the frame's checks."""
    context, column, check, number = key
    check = str(check or "")
    if context == "Column":
        if check == "not_nullable":
            sub = 0
        elif check == "field_uniqueness":
            sub = 1
        elif check.startswith("dtype("):
            sub = 2
        else:
            sub = 3 + (number if number is not None else 1 << 20)
        return (3, *column_position(schema, columns, column), sub)
    stages = {"add_missing_has_default": (0, 0), "column_in_schema": (0, 1),
              "column_ordered": (0, 1), "column_in_dataframe": (1, 0),
              "multiple_fields_uniqueness": (2, 0)}
    if check in stages:
        return stages[check]
    if check.startswith("coerce_dtype"):
        return (0, 2)
    if number is not None:
        return (4, number)
    return (5, 0)

