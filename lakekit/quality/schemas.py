"""Schema registry: a name -> ``schemas/NAME.yaml`` -> a pandera (polars) schema.

Schemas are pandera's own YAML format (``pandera.io.polars_io``). A name is looked up in
``schemas_dir=``, then ``$LAKEKIT_SCHEMAS_DIR``, then ``./schemas``; a path to a YAML
file and a pandera schema object are taken as they are.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakekit.errors import ConfigError

if TYPE_CHECKING:
    import polars as pl
    from pandera.api.polars.container import DataFrameSchema

__all__ = [
    "ENV_VAR",
    "ResolvedSchema",
    "available_schemas",
    "infer_schema_yaml",
    "load_schema",
    "schema_search_path",
]

ENV_VAR = "LAKEKIT_SCHEMAS_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ResolvedSchema:
    """A pandera schema and where it came from (a name, a file, or ``None`` for objects)."""

    schema: DataFrameSchema
    name: str | None


def schema_search_path(schemas_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories searched for schema names, in order.

    Examples
    --------
    >>> [p.name for p in schema_search_path("/etc/lake/schemas")][:1]
    ['schemas']
    """
    dirs: list[Path] = []
    if schemas_dir is not None:
        dirs.append(Path(schemas_dir))
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env))
    dirs.append(Path("schemas"))
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def available_schemas(schemas_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The schema names found on the search path, sorted.

    Examples
    --------
    >>> available_schemas()  # ./schemas holds events.yaml
    ['events']
    """
    names: set[str] = set()
    for d in schema_search_path(schemas_dir):
        if d.is_dir():
            names.update(p.stem for p in d.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    return sorted(names)


def load_schema(
    schema: Any, *, schemas_dir: str | os.PathLike[str] | None = None
) -> ResolvedSchema:
    """Turn a pandera schema, a YAML path or a schema name into a pandera polars schema.

    Parameters
    ----------
    schema
        A ``pandera.polars.DataFrameSchema`` (or ``DataFrameModel`` class), a path to a
        ``.yaml`` / ``.yml`` file, or a name looked up as ``NAME.yaml`` on the search path.
    schemas_dir
        The first directory to search for names.

    Raises
    ------
    ConfigError
        The name is not on the search path (the message lists the names available), or
        the YAML file is not valid YAML or not a valid pandera schema (the message names
        the file and the problem).

    Examples
    --------
    >>> events = load_schema("events", schemas_dir="schemas")
    >>> events.name, list(events.schema.columns)
    ('events', ['event_id', 'user_id', 'kind', 'amount', 'event_time'])
    """
    from pandera.api.polars.container import DataFrameSchema

    if isinstance(schema, DataFrameSchema):
        return ResolvedSchema(schema, getattr(schema, "name", None))
    to_schema = getattr(schema, "to_schema", None)
    if isinstance(schema, type) and callable(to_schema):
        built = to_schema()
        if isinstance(built, DataFrameSchema):
            return ResolvedSchema(built, schema.__name__)
    if isinstance(schema, Path) or (isinstance(schema, str) and _looks_like_path(schema)):
        path = Path(schema)
        if not path.is_file():
            raise ConfigError(f"schema file {path} does not exist")
        return ResolvedSchema(_read_yaml_schema(path), path.stem)
    if isinstance(schema, str):
        if not _NAME.match(schema):
            raise ConfigError(
                f"schema {schema!r} is neither a schema name (letters, digits, '_', '-', '.') "
                "nor a path to a .yaml file"
            )
        for d in schema_search_path(schemas_dir):
            for suffix in _SUFFIXES:
                path = d / f"{schema}{suffix}"
                if path.is_file():
                    return ResolvedSchema(_read_yaml_schema(path), schema)
        searched = ", ".join(str(d) for d in schema_search_path(schemas_dir))
        names = available_schemas(schemas_dir)
        known = ", ".join(names) if names else "none"
        raise ConfigError(
            f"unknown schema {schema!r}; available: {known} (searched {searched}; set "
            f"schemas_dir= or ${ENV_VAR}, or pass a path to a YAML file)"
        )
    module = type(schema).__module__ or ""
    if module.startswith("pandera"):
        raise ConfigError(
            f"schema must be a pandera polars schema (pandera.polars.DataFrameSchema); got "
            f"{module}.{type(schema).__name__}"
        )
    raise ConfigError(
        "schema must be a pandera.polars.DataFrameSchema, a path to a YAML file or a schema "
        f"name; got {type(schema).__name__}"
    )


def _looks_like_path(text: str) -> bool:
    return text.endswith(_SUFFIXES) or "/" in text or os.sep in text


def _read_yaml_schema(path: Path) -> DataFrameSchema:
    import yaml
    from pandera.io import polars_io

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"schema file {path}: cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"schema file {path}:{where} invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"schema file {path}: expected a mapping with 'columns' (pandera's YAML schema "
            f"format), got {type(data).__name__}"
        )
    schema_type = data.get("schema_type")
    if schema_type not in (None, "polars_dataframe"):
        raise ConfigError(
            f"schema file {path}: schema_type is {schema_type!r}; lakekit validates with "
            "pandera's polars backend and expects schema_type: polars_dataframe"
        )
    columns = data.get("columns")
    if columns is not None and not isinstance(columns, dict):
        raise ConfigError(f"schema file {path}: 'columns' must be a mapping of column names")
    unknown_top = sorted(set(map(str, data)) - _TOP_LEVEL_KEYS)
    if unknown_top:
        raise ConfigError(
            f"schema file {path}: unknown top-level key {unknown_top[0]!r}; expected some of "
            f"{', '.join(sorted(_TOP_LEVEL_KEYS))}"
        )
    for name, spec in (columns or {}).items():
        _check_column_spec(path, str(name), spec)
    try:
        return polars_io.deserialize_schema(data)
    except AttributeError as exc:
        unknown = re.search(r"attribute '([^']+)'", str(exc))
        what = f"unknown check {unknown.group(1)!r}" if unknown else str(exc)
        raise ConfigError(f"schema file {path}: {what}") from None
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise ConfigError(
            f"schema file {path}: not a valid pandera schema: {type(exc).__name__}: {text}"
        ) from None


_TOP_LEVEL_KEYS = frozenset({
    "schema_type", "version", "api", "columns", "checks", "index", "dtype", "coerce", "strict",
    "name", "ordered", "unique", "report_duplicates", "unique_column_names",
    "add_missing_columns", "title", "description", "metadata", "drop_invalid_rows",
})


def _check_column_spec(path: Path, name: str, spec: Any) -> None:
    """Reject what pandera would silently ignore: unknown keys and checks, bad dtypes."""
    from pandera.api.checks import Check
    from pandera.io._flat_checks import COMPONENT_RESERVED_KEYS
    from pandera.io.polars_io import _deserialize_dtype

    if spec is None:
        return
    if not isinstance(spec, dict):
        raise ConfigError(
            f"schema file {path}: column {name!r} must be a mapping (dtype, nullable, "
            f"checks), got {type(spec).__name__}"
        )
    for key in spec:
        if key in COMPONENT_RESERVED_KEYS or key == "metadata":
            continue
        if not callable(getattr(Check, str(key), None)) or str(key).startswith("_"):
            raise ConfigError(
                f"schema file {path}: column {name!r}: unknown key {key!r} (neither a column "
                "option such as dtype, nullable, unique, nor a pandera check such as isin, "
                "greater_than_or_equal_to, str_matches)"
            )
    for entry in spec.get("checks") or []:
        options = entry.get("options", {}) if isinstance(entry, dict) else {}
        check_name = options.get("check_name") if isinstance(options, dict) else None
        if not check_name or not callable(getattr(Check, str(check_name), None)):
            raise ConfigError(
                f"schema file {path}: column {name!r}: unknown check {check_name!r} in 'checks'"
            )
    dtype = spec.get("dtype")
    if dtype is not None:
        try:
            _deserialize_dtype(dtype)
        except Exception:
            raise ConfigError(
                f"schema file {path}: column {name!r}: unknown dtype {dtype!r} (use polars "
                "names: Int64, Float64, String, Boolean, Date, "
                "\"Datetime(time_unit='us', time_zone='UTC')\", ...)"
            ) from None


def infer_schema_yaml(df: pl.DataFrame, *, source: str, rows_total: int | None = None) -> str:
    """A pandera YAML schema inferred from ``df``, with a header naming the source.

    The checks pandera infers (value ranges, string lengths) describe the rows seen: review
    them before relying on the schema.

    Examples
    --------
    >>> import polars as pl
    >>> text = infer_schema_yaml(pl.DataFrame({"a": [1, 2]}), source="x")
    >>> "schema_type: polars_dataframe" in text and "dtype: Int64" in text
    True
    """
    from pandera.io import polars_io
    from pandera.schema_inference.polars import infer_schema

    schema = infer_schema(df)
    body = polars_io.to_yaml(schema)
    seen = f"{df.height:,} rows" + (f" of {rows_total:,}" if rows_total is not None else "")
    header = (
        f"# pandera schema inferred by `lakekit schema infer` from {source} ({seen}).\n"
        "# Review it: the ranges and lengths below describe the rows seen, not the rules.\n"
    )
    return header + str(body)
