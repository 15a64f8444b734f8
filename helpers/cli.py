"""The one argparse parser of the commands (``python -m helpers.X``): its errors are one line.

``Parser`` prints ``error: MESSAGE (see PROG --help)`` and exits 2, instead of argparse's usage block,
so a wrong flag reads like every other bad input the commands refuse.
"""

import argparse
import sys


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (``error: ...``, exit 2) instead of the usage block."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
