"""Options shared by the ``lakekit`` subcommands: ``KEY=VALUE`` pairs and byte sizes.

Neither parser echoes a value back: a storage or consumer option's value may be a secret.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakekit.errors import ConfigError

__all__ = ["add_storage_option", "byte_size", "key_values", "storage_options"]

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}


def key_values(flag: str, pairs: Sequence[str] | None) -> list[tuple[str, str]]:
    """``KEY=VALUE`` arguments of ``flag`` as pairs; a malformed one raises ConfigError.

    Examples
    --------
    >>> key_values("--storage-option", ["region=eu-west-1", "token=a=b"])
    [('region', 'eu-west-1'), ('token', 'a=b')]
    """
    out = []
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(  # not echoed: without its "=" the argument may be all secret
                f"{flag} expects KEY=VALUE; one argument has no KEY= part"
            )
        out.append((key, value))
    return out


def storage_options(pairs: Sequence[str] | None) -> dict[str, str]:
    """The ``--storage-option`` pairs as a ``storage_options`` dict."""
    return dict(key_values("--storage-option", pairs))


def add_storage_option(p: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--storage-option KEY=VALUE`` flag to ``p``."""
    p.add_argument(
        "--storage-option", action="append", metavar="KEY=VALUE",
        help="a storage option (repeatable), e.g. AWS_ENDPOINT_URL=http://127.0.0.1:9000",
    )


def byte_size(text: str) -> int:
    """A size such as ``67108864``, ``64MiB`` or ``100MB`` in bytes (an argparse type).

    Examples
    --------
    >>> byte_size("64MiB"), byte_size("1.5kb")
    (67108864, 1500)
    """
    number = text.strip().lower().rstrip("bikmg")
    unit = text.strip().lower()[len(number):]
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 67108864, 64MiB or 100MB; got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the size must be positive; got {text!r}")
    return int(value)
