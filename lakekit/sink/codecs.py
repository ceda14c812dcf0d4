"""Kafka's compression codecs: which library each needs, and a clear error when one is missing.

Kafka defines gzip, snappy, lz4 and zstd. kafka-python decompresses record batches with
the standard library's ``gzip`` and, for the others, with whatever it finds at import:
``snappy`` (python-snappy), ``lz4.frame`` (lz4) and ``zstandard``; lz4 in the old message
format v0 also needs ``xxhash``. ``pip install 'lakekit[kafka]'`` brings them all. Where
one is missing anyway (an environment built by hand), kafka-python raises
``UnsupportedCodecError`` from deep inside a poll; the sink turns it into a
:class:`~lakekit.errors.MissingDependencyError` naming the codec, the topic, partition
and offset where it was met, and the extra to install, and stops before committing any
of the batch that holds it (what the table holds is untouched; the next run re-reads
from there).

Both record paths raise it: the sink's bulk path (:mod:`lakekit.sink.fetch`) where it
decompresses a batch, kafka-python's own path through :func:`guard_codecs`, and any
other ``UnsupportedCodecError`` that reaches the consume loop through
:func:`raise_if_codec_missing`.

Examples
--------
>>> [c.name for c in CODECS.values()]
['gzip', 'snappy', 'lz4', 'zstd']
>>> print(missing_codec_error("snappy", topic="events", partition=1, offset=20))
records of events[1] at offset 20 are snappy-compressed, and the python-snappy package that \
decompresses them is not installed; install it with: pip install 'lakekit[kafka]' (nothing \
of this batch was committed)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from lakekit._deps import OPTIONAL
from lakekit.errors import MissingDependencyError

__all__ = [
    "CODECS",
    "Codec",
    "codec_context",
    "codec_missing_from",
    "guard_codecs",
    "missing_codec_error",
    "raise_if_codec_missing",
]


class Codec(NamedTuple):
    """A Kafka compression codec and the module kafka-python decompresses it with."""

    name: str
    module: str | None
    """The top-level module (a key of :data:`lakekit._deps.OPTIONAL`); None: the standard
    library's."""


# The codec id in a record batch's attributes (the low three bits) -> the codec.
CODECS: dict[int, Codec] = {
    1: Codec("gzip", None),
    2: Codec("snappy", "snappy"),
    3: Codec("lz4", "lz4"),
    4: Codec("zstd", "zstandard"),
}

_LZ4_V0 = "lz4 (message format v0)"
_BY_NAME = {c.name: c for c in CODECS.values()} | {_LZ4_V0: Codec(_LZ4_V0, "xxhash")}
_NOT_FOUND = re.compile(r"Libraries for (\w+) compression codec not found")


def missing_codec_error(codec: str, *, topic: str, partition: int | None,
                        offset: int | None) -> MissingDependencyError:
    """The error for records compressed with ``codec`` whose library is not installed.

    ``partition`` or ``offset`` may be None where kafka-python did not say.
    """
    module = _BY_NAME[codec].module if codec in _BY_NAME else None
    entry = OPTIONAL.get(module or "")
    package = entry.package if entry else (module or codec)
    extra = entry.extra if entry else "kafka"
    where = topic if partition is None else f"{topic}[{partition}]"
    at = "" if offset is None else f" at offset {offset}"
    return MissingDependencyError(
        f"records of {where}{at} are {codec}-compressed, and the {package} package that "
        f"decompresses them is not installed; install it with: pip install "
        f"'lakekit[{extra}]' (nothing of this batch was committed)")


def codec_missing_from(exc: BaseException) -> str | None:
    """The codec whose library kafka-python found missing, if that is what ``exc`` says.

    Examples
    --------
    >>> from kafka.errors import UnsupportedCodecError
    >>> codec_missing_from(UnsupportedCodecError("Libraries for lz4 compression codec not found"))
    'lz4'
    >>> codec_missing_from(RuntimeError("pip install xxhash for lz4 encoding with 0.8/0.9 brokers"))
    'lz4 (message format v0)'
    >>> codec_missing_from(ValueError("something else")) is None
    True
    """
    text = str(exc)
    if type(exc).__name__ == "UnsupportedCodecError":
        found = _NOT_FOUND.search(text)
        if found and found[1] in _BY_NAME:
            return found[1]
    if isinstance(exc, RuntimeError) and "pip install xxhash" in text:
        return _LZ4_V0  # kafka-python's lz4 reader of format v0 needs xxhash
    return None


@contextlib.contextmanager
def codec_context(tp: Any, offset: int) -> Iterator[None]:
    """Turn a missing codec library met inside into :func:`missing_codec_error` naming
    ``tp`` (a kafka-python ``TopicPartition``) and ``offset``."""
    try:
        yield
    except Exception as exc:
        codec = codec_missing_from(exc)
        if codec is None:
            raise
        raise missing_codec_error(codec, topic=tp.topic, partition=tp.partition,
                                  offset=offset) from None


def guard_codecs(consumer: Any) -> bool:
    """Make ``consumer``'s record parsing raise :func:`missing_codec_error` (with the
    partition and offset) instead of kafka-python's bare ``UnsupportedCodecError``.

    It wraps whatever ``PartitionRecords`` the consumer's fetcher uses (kafka-python's
    own, or the bulk one of :mod:`lakekit.sink.fetch`) without changing what it yields.
    Returns False where kafka-python's layout is not the one known (then
    :func:`raise_if_codec_missing` still names the codec, without the offset).
    """
    fetcher = getattr(consumer, "_fetcher", None)
    base = getattr(fetcher, "PartitionRecords", None)
    if base is None or not hasattr(base, "_unpack_records"):
        return False

    class CodecGuardedPartitionRecords(base):  # type: ignore[misc,valid-type,unused-ignore]
        next_fetch_offset: int
        topic_partition: Any

        def _unpack_records(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from super()._unpack_records(*args, **kwargs)
            except MissingDependencyError:
                raise
            except Exception as exc:
                codec = codec_missing_from(exc)
                if codec is None:
                    raise
                tp = self.topic_partition
                raise missing_codec_error(codec, topic=tp.topic, partition=tp.partition,
                                          offset=self.next_fetch_offset) from None

    assert fetcher is not None
    fetcher.PartitionRecords = CodecGuardedPartitionRecords
    return True


def raise_if_codec_missing(exc: BaseException, topics: Sequence[str]) -> None:
    """Raise :func:`missing_codec_error` if ``exc`` (from a poll) says a codec's library
    is missing; else return."""
    codec = codec_missing_from(exc)
    if codec is not None:
        raise missing_codec_error(codec, topic=",".join(topics), partition=None,
                                  offset=None) from None
