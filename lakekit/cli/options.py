"""Options shared by the ``lakekit`` subcommands: ``KEY=VALUE`` pairs and byte sizes.

Nothing here echoes a value back: a storage or consumer option's value may be a secret.
A ``KEY=VALUE`` flag takes one pair and is repeated for more (``--storage-option A=1
--storage-option B=2``); :class:`Parser`'s usage errors (a second pair after one flag is an
unrecognized argument) show keys, never values.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import NoReturn

from lakekit.errors import ConfigError

__all__ = ["Parser", "add_storage_option", "byte_size", "hide", "key_values",
           "storage_options"]

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}


_PAIR = re.compile(r"(?P<key>[A-Za-z_][\w.-]*)=[^\s'\"]*")
_UNRECOGNIZED = "unrecognized arguments: "


class Parser(argparse.ArgumentParser):
    """The ``lakekit`` parser: its usage errors never show a ``KEY=VALUE`` argument's value.

    Its subcommands' parsers are of this class too (argparse makes them so).

    Examples
    --------
    >>> hide("unrecognized arguments: K2=hunter22 oops --x=1")
    'unrecognized arguments: K2=... (a value, not shown) --x=...'
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage and ``message`` without values, and exit with status 2."""
        hidden = hide(message)
        if message.startswith(_UNRECOGNIZED) and not all(
                word.startswith("-") for word in message[len(_UNRECOGNIZED):].split()):
            hidden += ("; each --storage-option / --consumer-option takes one KEY=VALUE: "
                       "repeat the flag for each pair")
        super().error(hidden)


def hide(message: str) -> str:
    """``message`` with every ``KEY=VALUE`` shown as ``KEY=...``; in an "unrecognized
    arguments" message, an argument that is not a flag is not shown at all (it may be the
    value of a pair split by a space)."""
    if message.startswith(_UNRECOGNIZED):
        words = []
        for word in message[len(_UNRECOGNIZED):].split():
            if "=" in word:
                words.append(word.split("=", 1)[0] + "=...")
            else:
                words.append(word if word.startswith("-") else "(a value, not shown)")
        return _UNRECOGNIZED + " ".join(words)
    return _PAIR.sub(lambda m: m.group("key") + "=...", message)


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
        help="a storage option; one KEY=VALUE per flag, repeat the flag for more, e.g. "
             "--storage-option AWS_ENDPOINT_URL=http://127.0.0.1:9000 "
             "--storage-option AWS_REGION=us-east-1",
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
