"""The one argparse parser of the commands (``python -m helpers.X``): its errors are one line.

``Parser`` prints ``error: MESSAGE (see PROG --help)`` and exits 2, instead of argparse's usage block,
so a wrong flag reads like every other bad input the commands refuse. ``DefaultsHelp`` shows each
flag's default in --help, except where it is None (the flag's help says what happens then).
"""

import argparse
import sys


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (``error: ...``, exit 2) instead of the usage block."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """--help with "(default: X)" after each flag whose default is not None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)
