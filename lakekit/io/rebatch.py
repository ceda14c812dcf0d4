"""Exact batch sizes: a stream of tables re-cut into record batches of ``batch_size`` rows.

Readers produce tables of whatever size their unit of work has (a parquet row group, a
block of JSONL or CSV lines, a Delta data file). :func:`rebatch` turns them into batches
of exactly ``batch_size`` rows, only the last one smaller: a batch that lies within one
input chunk is a zero-copy slice of it; one that spans chunks is concatenated from the
slices held back (a small carry-over buffer of less than one batch), so at most one
batch's rows are copied at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

__all__ = ["rebatch"]


def rebatch(tables: Iterable[pa.Table], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Record batches of exactly ``batch_size`` rows from ``tables`` (the last one smaller).

    Examples
    --------
    >>> parts = [pa.table({"x": list(range(5))}), pa.table({"x": list(range(5, 8))})]
    >>> [b.num_rows for b in rebatch(parts, 3)]
    [3, 3, 2]
    >>> [b["x"].to_pylist() for b in rebatch(parts, 3)][1]
    [3, 4, 5]
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    held: list[pa.RecordBatch] = []
    count = 0
    for table in tables:
        for batch in table.to_batches():
            offset, n = 0, batch.num_rows
            while offset < n:
                if not count and n - offset >= batch_size:
                    yield batch.slice(offset, batch_size)  # within one chunk: no copy
                    offset += batch_size
                    continue
                take = min(batch_size - count, n - offset)
                held.append(batch.slice(offset, take))
                count += take
                offset += take
                if count == batch_size:
                    yield _join(held)
                    held, count = [], 0
    if count:
        yield _join(held)


def _join(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch from the slices held back (the only copy made, of one batch's rows)."""
    if len(parts) == 1:
        return parts[0]
    concat = getattr(pa, "concat_batches", None)  # pyarrow >= 19
    if concat is not None:
        joined: pa.RecordBatch = concat(parts)
        return joined
    if not parts[0].num_columns:  # no columns, only a row count
        rows = sum(p.num_rows for p in parts)
        return pa.record_batch([pa.nulls(rows)], names=["_"]).select([])
    batch: pa.RecordBatch = pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
    return batch
