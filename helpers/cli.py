"""The one argparse parser of the commands (``python -m helpers.X``): its errors are one line.

``Parser`` prints ``error: MESSAGE (see PROG --help)`` and exits 2, instead of argparse's usage block,
so a wrong flag reads like every other bad input the commands refuse. ``DefaultsHelp`` shows each
flag's default in --help, except where it is None (the flag's help says what happens then); a flag
with no help text shows its default under any formatter.
"""

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from helpers.files import DiskFull

INT_MAX = 2**31 - 1  # a count or size beyond this cannot be allocated or run: refused at parsing
FLOAT32_MAX = 3.4e38  # a number beyond it is inf in float32, where the models compute


def check_magnitude(
    value: float, kind: type, text: str, action: argparse.Action | None = None
) -> None:
    """An argparse error if ``value`` (an int or a float) is beyond what the commands can use; a type
    function's error without ``action``, the parser's with it."""
    limit = INT_MAX if kind is int else FLOAT32_MAX
    if not abs(value) > limit:  # nan passes: each command names it with what it takes
        return
    message = f"{text} is too large (at most {f'{limit:,}' if kind is int else f'{limit:g}'})"
    if action is None:
        raise argparse.ArgumentTypeError(message)
    raise argparse.ArgumentError(action, message)


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (``error: ...``, exit 2) instead of the usage block, and
    ``type=int`` (except seeds) and ``type=float`` values of absurd magnitude (``--batch-size`` with
    20 digits, ``--lr 1e308``) refused instead of failing deep inside torch."""

    def _get_value(self, action: argparse.Action, arg_string: str) -> object:
        value = super()._get_value(action, arg_string)
        seed = action.dest == "seed" or action.dest.endswith("_seed")  # --seeds is a count
        if action.type in (int, float) and not seed:
            check_magnitude(value, action.type, arg_string, action)
        return value

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """As argparse's, but a flag with a default and no help still shows its default in --help
        (argparse leaves a flag without help text out of the formatter)."""
        action = super().add_argument(*args, **kwargs)
        shown = action.default not in (None, argparse.SUPPRESS)
        if action.option_strings and action.help is None and shown:
            action.help = "(default: %(default)s)"
        return action

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """--help with "(default: X)" after each flag whose default is not None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def stopped(what_is_kept: str) -> int:
    """After Ctrl-C: one line on stderr (``stopped: ...``, saying what is kept) and exit status 130."""
    print(f"\nstopped: {what_is_kept}", file=sys.stderr)
    return 130


def disk_full(err: DiskFull, what_is_kept: str) -> int:
    """After a full disk: one line on stderr (``error: ...``, saying what is kept) and exit status 1."""
    print(f"error: {err}; {what_is_kept}", file=sys.stderr)
    return 1


def stops_cleanly(what_is_kept: str) -> Callable:
    """A command's ``main`` that Ctrl-C ends with one line (``stopped: ...``, saying what is kept)
    and exit status 130, and a full disk with one line and exit status 1, instead of a traceback from
    wherever training was."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                return stopped(what_is_kept)
            except DiskFull as err:
                return disk_full(err, what_is_kept)

        return run

    return wrap
