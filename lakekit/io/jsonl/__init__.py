"""JSONL / NDJSON (plain, ``.gz``, ``.zst``): streamed in blocks of whole lines, parsed in parallel.

:mod:`~lakekit.io.jsonl.reader` holds the readers and the bad-line policy; the byte streams
(``_stream``), block parsing (``_parse``, with the compiled parser ``_ndjson.c``) and
bad-line salvage (``_salvage``) are private to this package.
"""

from lakekit.io.jsonl._parse import native_parser
from lakekit.io.jsonl._stream import compression_of
from lakekit.io.jsonl.reader import BadLineTally, infer_jsonl_schema, read_jsonl_batches

__all__ = [
    "BadLineTally", "compression_of", "infer_jsonl_schema", "native_parser", "read_jsonl_batches",
]
