"""CSV / TSV (plain, .gz, .zst), streamed in blocks with pyarrow.csv."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from lakekit.errors import BadRecordError, FormatError
from lakekit.io.ranges import ResumableFile

__all__ = ["infer_csv_schema", "read_csv_batches"]


def _open(fs: Any, path: str, url: str, compression: str | None) -> pa.NativeFile:
    # a failed read resumes at the first byte not yet delivered (see ResumableFile)
    stream: pa.NativeFile = pa.PythonFile(ResumableFile(fs, path, url=url), mode="r")
    if compression:
        stream = pa.CompressedInputStream(stream, compression)
    return stream


def _parse_options(path: str) -> pacsv.ParseOptions:
    name = path.lower()
    return pacsv.ParseOptions(delimiter="\t" if ".tsv" in name else ",")


def infer_csv_schema(
    fs: Any, path: str, *, url: str, compression: str | None, sample_bytes: int = 1 << 20
) -> pa.Schema:
    """The schema pyarrow infers from the first ``sample_bytes`` (whole lines) of a CSV file."""
    with _open(fs, path, url, compression) as stream:
        sample = stream.read(sample_bytes)
    if len(sample) == sample_bytes and b"\n" in sample:
        sample = sample[: sample.rfind(b"\n") + 1]
    if not sample.strip():
        raise FormatError(f"{url}: empty CSV file; expected a header line")
    try:
        table = pacsv.read_csv(
            pa.py_buffer(sample),
            read_options=pacsv.ReadOptions(block_size=len(sample) + 1),
            parse_options=_parse_options(path),
        )
    except pa.ArrowInvalid as exc:
        raise FormatError(f"{url}: not a readable CSV file ({exc})") from None
    return table.schema


def read_csv_batches(
    fs: Any,
    path: str,
    *,
    url: str,
    compression: str | None,
    schema: pa.Schema,
    columns: Sequence[str] | None = None,
    block_size: int = 8 << 20,
    max_line: int = 64 << 20,
) -> Iterator[pa.RecordBatch]:
    """Stream a CSV file as record batches of ``schema`` (restricted to ``columns``).

    The file is read in blocks of about ``block_size`` bytes cut at line ends (values do
    not span lines, as with pyarrow's default ``newlines_in_values=False``), so at most
    a block or two are in memory whatever the file size.
    """
    names = list(columns) if columns is not None else schema.names
    convert = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        include_columns=names,
        include_missing_columns=True,
    )
    parse = _parse_options(path)
    with _open(fs, path, url, compression) as stream:
        header = b""
        carry = b""
        line = 1  # 1-based line number of the first line of the next block
        while True:
            chunk = stream.read(block_size)
            data = carry + chunk if carry else chunk
            if not chunk:
                block, carry = data, b""
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > max_line:
                        raise BadRecordError(
                            f"{url}:{line}: a line longer than {max_line} bytes; expected CSV "
                            "rows separated by newlines"
                        )
                    carry = data
                    continue
                block, carry = data[:cut], data[cut:]
            if not header:
                end = block.find(b"\n") + 1 or len(block)
                header, block = block[:end], block[end:]
                line += 1
            if block.strip():
                try:
                    table = pacsv.read_csv(
                        pa.py_buffer(header + block),
                        read_options=pacsv.ReadOptions(block_size=len(header) + len(block) + 1),
                        parse_options=parse,
                        convert_options=convert,
                    )
                except pa.ArrowInvalid as exc:
                    last = line + block.count(b"\n") - 1
                    raise BadRecordError(f"{url}: in lines {line}-{last}: {exc}") from None
                yield from table.to_batches()
                line += block.count(b"\n")
            if not chunk:
                return
