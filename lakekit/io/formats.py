"""The formats table: every format the loader reads, by name, in one place.

``Dataset`` dispatches through it, ``lk.dataset(format=...)`` checks names against it, and
the CLI's ``--format`` choices and the quality checks' sources take its names, instead of
each spelling out lists of formats and if-chains. A :class:`FileFormat` says how a format
is recognised (file extensions, or a table log next to the data), whether its data files
are parquet (read by footers, row groups and byte ranges) or text streamed in blocks, and
for text formats its batch reader and schema inference.

Importing this module is cheap, because the CLI builds its parser from it: the readers
import their modules (``pyarrow.json``, ``pyarrow.csv``, ``deltalake``) when first called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

from lakekit.errors import ConfigError

if TYPE_CHECKING:  # types only: Protocol classes are slow to create (the CLI's start-up)
    from typing import Protocol

    import pyarrow as pa

    from lakekit.io.delta import DeltaSnapshot
    from lakekit.io.discover import FileEntry
    from lakekit.io.jsonl import BadLineTally
    from lakekit.storage import Location

    class TextReader(Protocol):
        """Streams one text file as record batches of ``schema`` restricted to ``columns``."""

        def __call__(
            self,
            fs: Any,
            path: str,
            *,
            url: str,
            schema: pa.Schema,
            columns: list[str],
            on_bad_lines: str,
            tally: BadLineTally | None,
            block_size: int,
            order: int,
        ) -> Iterator[pa.RecordBatch]: ...

    class SchemaInference(Protocol):
        """Infers the schema of one text file from its first lines."""

        def __call__(self, fs: Any, path: str, *, url: str) -> pa.Schema: ...


__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "FileFormat",
    "Format",
    "common_format",
    "detect_table",
    "format_of",
    "get_format",
]

Format = Literal["parquet", "jsonl", "csv", "delta"]

COMPRESSIONS = (".gz", ".zst", ".zstd")


class FileFormat(NamedTuple):
    """One format the loader reads.

    Attributes
    ----------
    name
        The name users pass as ``format=``.
    extensions
        File extensions that imply the format (compression suffixes aside).
    parquet_files
        The data files are parquet: schemas come from footers and reads are planned by
        row group (``read_batches`` / ``infer_schema`` are then unused).
    local_scan
        Whole reads on local disk go through one ``pyarrow.dataset`` scan.
    read_batches
        Text formats: the batch reader of one file.
    infer_schema
        Text formats: the schema inference of one file.
    new_tally
        A fresh counter of skipped bad lines for one read, where the format has them.
    is_here
        Table formats: whether a location holds such a table (a log next to the data).
    snapshot
        Table formats: the files and schema of one version of the table.
    """

    name: str
    extensions: tuple[str, ...] = ()
    parquet_files: bool = False
    local_scan: bool = False
    read_batches: TextReader | None = None
    infer_schema: SchemaInference | None = None
    new_tally: Callable[[], BadLineTally | None] = lambda: None
    is_here: Callable[[Location], bool] | None = None
    snapshot: Callable[[Location, int | None], DeltaSnapshot] | None = None


# -- the readers, importing their modules on first use -----------------------------------------
def _read_jsonl(
    fs: Any,
    path: str,
    *,
    url: str,
    schema: pa.Schema,
    columns: list[str],
    on_bad_lines: str,
    tally: BadLineTally | None,
    block_size: int,
    order: int,
) -> Iterator[pa.RecordBatch]:
    from lakekit.io.jsonl import compression_of, read_jsonl_batches

    return read_jsonl_batches(
        fs,
        path,
        url=url,
        compression=compression_of(path),
        schema=schema,
        columns=columns,
        on_bad_lines=on_bad_lines,  # type: ignore[arg-type]
        tally=tally,
        block_size=block_size,
        order=order,
    )


def _infer_jsonl(fs: Any, path: str, *, url: str) -> pa.Schema:
    from lakekit.io.jsonl import compression_of, infer_jsonl_schema

    return infer_jsonl_schema(fs, path, url=url, compression=compression_of(path))


def _jsonl_tally() -> BadLineTally:
    from lakekit.io.jsonl import BadLineTally

    return BadLineTally()


def _read_csv(
    fs: Any,
    path: str,
    *,
    url: str,
    schema: pa.Schema,
    columns: list[str],
    on_bad_lines: str,
    tally: BadLineTally | None,
    block_size: int,
    order: int,
) -> Iterator[pa.RecordBatch]:
    from lakekit.io.csv import read_csv_batches
    from lakekit.io.jsonl import compression_of

    return read_csv_batches(
        fs, path, url=url, compression=compression_of(path), schema=schema, columns=columns,
        block_size=block_size,
    )


def _infer_csv(fs: Any, path: str, *, url: str) -> pa.Schema:
    from lakekit.io.csv import infer_csv_schema
    from lakekit.io.jsonl import compression_of

    return infer_csv_schema(fs, path, url=url, compression=compression_of(path))


def _is_delta(location: Location) -> bool:
    from lakekit.io.delta import is_delta_table

    return is_delta_table(location)


def _delta_snapshot(location: Location, version: int | None) -> DeltaSnapshot:
    from lakekit.io.delta import snapshot

    return snapshot(location, version)


# -- the table ---------------------------------------------------------------------------------
FORMATS: dict[str, FileFormat] = {
    f.name: f
    for f in (
        FileFormat("parquet", (".parquet", ".parq", ".pq"), parquet_files=True, local_scan=True),
        FileFormat(
            "jsonl", (".jsonl", ".ndjson", ".json"),
            read_batches=_read_jsonl, infer_schema=_infer_jsonl, new_tally=_jsonl_tally,
        ),
        FileFormat("csv", (".csv", ".tsv"), read_batches=_read_csv, infer_schema=_infer_csv),
        FileFormat("delta", parquet_files=True, is_here=_is_delta, snapshot=_delta_snapshot),
    )
}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
assert get_args(Format) == FORMAT_NAMES, "the Format literal must list the table's names"

_EXTENSIONS: dict[str, str] = {ext: f.name for f in FORMATS.values() for ext in f.extensions}


def get_format(name: str) -> FileFormat:
    """The table's entry for ``name``, or a :class:`ConfigError` listing the names.

    Examples
    --------
    >>> get_format("jsonl").extensions
    ('.jsonl', '.ndjson', '.json')
    """
    spec = FORMATS.get(name)
    if spec is None:
        raise ConfigError(f"format must be one of {', '.join(FORMAT_NAMES)}; got {name!r}")
    return spec


def format_of(path: str) -> str | None:
    """The format a file's extension implies, compression suffixes ignored.

    Examples
    --------
    >>> format_of("s3://lake/part-0.ndjson.gz"), format_of("a.tsv"), format_of("README")
    ('jsonl', 'csv', None)
    """
    name = path.rsplit("/", 1)[-1].lower()
    for comp in COMPRESSIONS:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:]) if dot >= 0 else None


def common_format(entries: Sequence[FileEntry], location: Location) -> str:
    """The single format of ``entries`` inferred from extensions, or a clear error."""
    formats = {format_of(e.path) for e in entries}
    if None in formats:
        odd = next(e.path for e in entries if format_of(e.path) is None)
        by_extension = " | ".join(repr(f.name) for f in FORMATS.values() if f.extensions)
        raise ConfigError(
            f"{location.url_of(odd)}: cannot tell the format from the extension; "
            f"pass format={by_extension}"
        )
    if len(formats) > 1:
        raise ConfigError(
            f"files of several formats ({', '.join(sorted(f for f in formats if f))}) "
            "in one dataset; select one with a glob or pass format="
        )
    return formats.pop()  # type: ignore[return-value]


def detect_table(location: Location) -> FileFormat | None:
    """The table format whose log ``location`` holds (a Delta table), else ``None``."""
    for spec in FORMATS.values():
        if spec.is_here is not None and spec.is_here(location):
            return spec
    return None
