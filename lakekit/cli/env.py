"""Flags from the environment, and ``KEY=VALUE`` option files: a command run as a service.

:func:`bind_env` makes every ``--flag`` of a subcommand also readable from an environment
variable ``PREFIX_FLAG`` (``--max-batch-seconds`` -> ``LAKEKIT_SINK_MAX_BATCH_SECONDS``),
for all flags at once, from the parser itself: a flag added later is covered too. The
command line wins over the environment; a required flag is satisfied by its variable.
Values are converted and checked as the flag's own would be (its ``type``, ``choices``);
a repeatable flag takes a comma-separated list, or for ``KEY=VALUE`` flags one pair per
line (values may hold commas); a switch (``--kafka-metadata``) takes ``true`` / ``false``
(``1`` / ``0``, ``yes`` / ``no``). A variable set empty counts as unset.

:func:`read_options_file` reads credentials from a file of ``KEY=VALUE`` lines, so that
they are never needed on a command line (where ``ps`` shows them).

No error here echoes a value: it may be a secret. It names the variable, or the file and
line, and what was expected.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from lakekit.errors import ConfigError

__all__ = ["OptionLine", "bind_env", "env_name", "read_options_file"]

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def env_name(prefix: str, option: str) -> str:
    """The variable of a ``--long-option``.

    Examples
    --------
    >>> env_name("LAKEKIT_SINK_", "--max-batch-seconds")
    'LAKEKIT_SINK_MAX_BATCH_SECONDS'
    """
    return prefix + option.lstrip("-").replace("-", "_").upper()


class _FromEnv:
    """The default of a flag whose variable is set: resolved after parsing, so that the
    command line wins and conversion errors name the variable."""

    def __init__(self, action: argparse.Action, name: str, text: str) -> None:
        self.action, self.name, self.text = action, name, text
        self.default = action.default  # what a switch set to false gives

    def __repr__(self) -> str:  # argparse may show a default; never the value
        return f"${self.name}"


class _EnvList(list[Any]):
    """The default of a repeatable flag whose variable is set: argparse appends the
    command line's values to a copy, so a non-empty one means the command line gave some."""

    source: _FromEnv


def bind_env(parser: argparse.ArgumentParser, *, prefix: str,
             environ: Mapping[str, str] | None = None) -> None:
    """Make every long flag of ``parser`` readable from ``prefix + FLAG`` variables.

    Call it after the flags and the ``handler`` default are set: the handler is wrapped
    so that it sees the variables' values, converted, where the command line gave none.

    Examples
    --------
    >>> p = argparse.ArgumentParser(prog="demo")
    >>> _ = p.add_argument("--topic", action="append", required=True)
    >>> _ = p.add_argument("--max-batch-seconds", type=float, default=10.0)
    >>> p.set_defaults(handler=lambda args: print(args.topic, args.max_batch_seconds) or 0)
    >>> bind_env(p, prefix="DEMO_", environ={"DEMO_TOPIC": "a,b",
    ...                                      "DEMO_MAX_BATCH_SECONDS": "2.5"})
    >>> args = p.parse_args([])
    >>> args.handler(args)
    ['a', 'b'] 2.5
    0
    >>> args = p.parse_args(["--topic", "c", "--max-batch-seconds", "1"])
    >>> args.handler(args)
    ['c'] 1.0
    0
    """
    env = os.environ if environ is None else environ
    for action in parser._actions:  # the public way to walk a parser's flags
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        name = env_name(prefix, longs[0])
        text = env.get(name)
        if text is None or not text.strip():
            continue  # unset, or set empty (``-e VAR=``): the flag's default
        source = _FromEnv(action, name, text)
        if isinstance(action, argparse._AppendAction):
            default = _EnvList()
            default.source = source
            action.default = default
        else:
            action.default = source
        action.required = False
    handler = parser.get_default("handler")
    if handler is not None:
        parser.set_defaults(handler=functools.partial(_with_env, handler))
    note = (f"Every flag can also be set by a {prefix}<FLAG> environment variable "
            f"(--max-batch-seconds: {env_name(prefix, '--max-batch-seconds')}); "
            "the command line wins.")
    parser.epilog = f"{parser.epilog}\n\n{note}" if parser.epilog else note


def _with_env(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    for dest, value in list(vars(args).items()):
        if isinstance(value, _EnvList):
            setattr(args, dest, list(value) if value else _convert(value.source))
        elif isinstance(value, _FromEnv):
            setattr(args, dest, _convert(value))
    return handler(args)


def _convert(source: _FromEnv) -> Any:
    action, name, text = source.action, source.name, source.text
    flag = next(o for o in action.option_strings if o.startswith("--"))
    where = f"{name} (the environment's {flag})"
    if action.nargs == 0:  # a switch: store_true / store_false / store_const
        word = text.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ConfigError(f"{where} expects true or false")
        return action.const if word in _TRUE else source.default
    if isinstance(action, argparse._AppendAction):
        sep = "\n" if action.metavar == "KEY=VALUE" else ","
        items = [item.strip() for item in text.split(sep)]
        return [_one(action, where, item) for item in items if item]
    return _one(action, where, text.strip())


def _one(action: argparse.Action, where: str, text: str) -> Any:
    value: Any = text
    if action.type is not None:
        convert: Callable[[str], Any] = action.type  # type: ignore[assignment]
        try:
            value = convert(text)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            hint = str(exc).replace(repr(text), "it").replace(text, "...") if text else str(exc)
            kind = getattr(convert, "__name__", "value")
            raise ConfigError(f"{where}: not a valid {kind}"
                              + (f" ({hint})" if isinstance(exc, argparse.ArgumentTypeError)
                                 else "")) from None
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{where} expects one of " + ", ".join(map(str, action.choices)))
    return value


class OptionLine(NamedTuple):
    """One ``KEY=VALUE`` line of an options file; ``where`` names the flag, file and line
    (for error messages, which never show the value)."""

    key: str
    value: str
    where: str


def read_options_file(path: str | os.PathLike[str], *, flag: str) -> list[OptionLine]:
    """The ``KEY=VALUE`` lines of a file (blank lines and ``#`` comment lines skipped).

    The value is everything after the first ``=`` up to the end of the line, as written
    (no quotes removed); the key is stripped. An error names ``flag``, the file and the
    line, never a value.

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("creds.env").write_text("# S3\\nAWS_ACCESS_KEY_ID=AKIA1\\n\\ntoken=a=b\\n")
    >>> lines = read_options_file("creds.env", flag="--storage-options-file")
    >>> [(line.key, line.value) for line in lines]
    [('AWS_ACCESS_KEY_ID', 'AKIA1'), ('token', 'a=b')]
    >>> lines[1].where
    '--storage-options-file creds.env line 4'
    """
    try:
        with open(path, encoding="utf-8") as f:  # not pathlib: the CLI's parser stays quick
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"{flag} {os.fspath(path)}: cannot read it: "
                          f"{exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{flag} {os.fspath(path)}: not UTF-8 text") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{flag} {os.fspath(path)} line {number}"
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}: expected KEY=VALUE (a # starts a comment line)")
        out.append(OptionLine(key.strip(), value, where))
    return out
