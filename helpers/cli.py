"""The one argparse parser of the commands (``python -m helpers.X``): its errors are one line.

``Parser`` prints ``error: MESSAGE (see PROG --help)`` and exits 2, instead of argparse's usage block,
so a wrong flag reads like every other bad input the commands refuse. ``DefaultsHelp`` shows each
flag's default in --help, except where it is None (the flag's help says what happens then).
"""

import argparse
import functools
import sys
from collections.abc import Callable

INT_MAX = 2**31 - 1  # a count or size beyond this cannot be allocated or run: refused at parsing
FLOAT32_MAX = 3.4e38  # a number beyond it is inf in float32, where the models compute


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (``error: ...``, exit 2) instead of the usage block, and
    ``type=int`` (except seeds) and ``type=float`` values of absurd magnitude (``--batch-size`` with
    20 digits, ``--lr 1e308``) refused instead of failing deep inside torch."""

    def _get_value(self, action: argparse.Action, arg_string: str) -> object:
        value = super()._get_value(action, arg_string)
        limit = {int: INT_MAX, float: FLOAT32_MAX}.get(action.type)
        if limit is not None and "seed" not in action.dest and abs(value) > limit:
            shown = f"{limit:,}" if action.type is int else f"{limit:g}"
            raise argparse.ArgumentError(action, f"{arg_string} is too large (at most {shown})")
        return value

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """--help with "(default: X)" after each flag whose default is not None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def stops_cleanly(what_is_kept: str) -> Callable:
    """A command's ``main`` that Ctrl-C ends with one line (``stopped: ...``, saying what is kept)
    and exit status 130, instead of a traceback from wherever training was."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"\nstopped: {what_is_kept}", file=sys.stderr)
                return 130

        return run

    return wrap
