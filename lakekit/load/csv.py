"""CSV / TSV (plain, .gz, .zst), streamed in blocks with pyarrow.csv."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from lakekit.errors import BadRecordError, FormatError
from lakekit.storage import retry_call

__all__ = ["infer_csv_schema", "read_csv_batches"]


def _open(fs: Any, path: str, url: str, compression: str | None) -> pa.NativeFile:
    raw = retry_call(lambda: fs.open(path, "rb", cache_type="none"), what=url)
    stream: pa.NativeFile = pa.PythonFile(raw, mode="r")
    if compression:
        stream = pa.CompressedInputStream(stream, compression)
    return stream


def _parse_options(path: str) -> pacsv.ParseOptions:
    name = path.lower()
    return pacsv.ParseOptions(delimiter="\t" if ".tsv" in name else ",")


def infer_csv_schema(
    fs: Any, path: str, *, url: str, compression: str | None, block_size: int = 1 << 20
) -> pa.Schema:
    """The schema pyarrow infers from the first block of a CSV file."""
    with _open(fs, path, url, compression) as stream:
        try:
            reader = pacsv.open_csv(
                stream, read_options=pacsv.ReadOptions(block_size=block_size),
                parse_options=_parse_options(path),
            )
        except pa.ArrowInvalid as exc:
            raise FormatError(f"{url}: not a readable CSV file ({exc})") from None
        return reader.schema


def read_csv_batches(
    fs: Any,
    path: str,
    *,
    url: str,
    compression: str | None,
    schema: pa.Schema,
    columns: Sequence[str] | None = None,
    block_size: int = 16 << 20,
) -> Iterator[pa.RecordBatch]:
    """Stream a CSV file as record batches of ``schema`` (restricted to ``columns``)."""
    names = list(columns) if columns is not None else schema.names
    convert = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        include_columns=names,
        include_missing_columns=True,
    )
    with _open(fs, path, url, compression) as stream:
        try:
            reader = pacsv.open_csv(
                stream, read_options=pacsv.ReadOptions(block_size=block_size),
                parse_options=_parse_options(path), convert_options=convert,
            )
            yield from reader
        except pa.ArrowInvalid as exc:
            raise BadRecordError(f"{url}: {exc}") from None
