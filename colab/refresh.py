"""Refresh colab/constraints.txt from a newer Colab pip-freeze.gpu.txt.

    python colab/refresh.py path/to/pip-freeze.gpu.txt [--date YYYY-MM-DD] [--python 3.13]

Colab publishes its packages in the public repository googlecolab/backend-info, file
pip-freeze.gpu.txt. This keeps only the packages the constraints file already lists (the ones our
notebooks touch) and gives each Colab's version; a bare name (unpinned) is pinned when the freeze
lists it. Local version labels are dropped (torch 2.11.0+cu128 becomes 2.11.0: PyPI's build of that
release). A line ``name==X  # colab: Y; why`` is a documented substitute for a version that cannot be
installed: it is kept while Colab still has Y, and replaced (and said so) once Colab moves on.
Packages the freeze does not list are kept as they are, and named. The header's ``# as of:`` becomes
--date (default: today) and ``# python:`` becomes --python when given. The file is written atomically.

A file that is not a pip freeze gets one line on stderr and exit status 2.
"""

import argparse
import datetime
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "colab" / "constraints.txt"
NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
FREEZE_PIN = re.compile(rf"^({NAME})(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)\s*$")
FREEZE_OTHER = re.compile(rf"^(?:({NAME})(?:\[[^\]]*\])?\s*@\s*\S+|-e\s+\S+)\s*$")
LINE = re.compile(rf"^({NAME})(?:==([^\s#]+))?(\s*#.*)?$")
SUBSTITUTE = re.compile(r"#\s*colab:\s*([^\s;]+)")


class NotAFreeze(ValueError):
    pass


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(path: Path) -> dict[str, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotAFreeze(f"{path} is not a pip freeze: it is not UTF-8 text") from None
    return parse_freeze(text, path)


def parse_freeze(text: str, path: Path) -> dict[str, str | None]:
    """{normalized name: version} from `pip freeze` output; None for a `name @ url` line."""
    if "\x00" in text:
        raise NotAFreeze(f"{path} is not a pip freeze: it is binary")
    versions: dict[str, str | None] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if pin := FREEZE_PIN.match(line):
            versions[normalize(pin[1])] = pin[2]
        elif other := FREEZE_OTHER.match(line):
            if other[1]:
                versions[normalize(other[1])] = None
        else:
            raise NotAFreeze(
                f"{path} is not a pip freeze: line {number} is {raw[:60]!r}, not 'name==version'"
            )
    if not any(versions.values()):
        raise NotAFreeze(f"{path} is not a pip freeze: it has no 'name==version' line")
    return versions


def refresh(text: str, freeze: dict[str, str | None], date: str, python: str | None):
    """The new constraints text, and one line per change or package kept as it was."""
    out, notes = [], []
    for line in text.splitlines():
        if line.startswith("# as of:"):
            line = f"# as of: {date}"
        elif line.startswith("# python:") and python:
            line = f"# python: {python}"
        elif line.startswith("# note:"):
            continue  # notes on where the previous versions came from no longer hold
        elif (match := LINE.match(line)) and not line.startswith("#"):
            name, old, comment = match[1], match[2], match[3] or ""
            key = normalize(name)
            if key not in freeze or freeze[key] is None:
                notes.append(f"kept {name}{'==' + old if old else ''}: not pinned in the freeze")
            else:
                new = freeze[key].split("+", 1)[0]  # local label: PyPI has the plain release
                substitute = SUBSTITUTE.search(comment)
                if substitute and substitute[1] == new:
                    pass  # Colab still has the version that cannot be installed: keep ours
                elif new != old:
                    if substitute or not old:
                        comment = ""  # the reason was about the old version
                    line = f"{name}=={new}{comment}"
                    notes.append(f"{name}: {old or 'unpinned'} -> {new}")
        out.append(line)
    return "\n".join(out) + "\n", notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("freeze", type=Path, help="Colab's pip-freeze.gpu.txt")
    parser.add_argument("--constraints", type=Path, default=CONSTRAINTS)
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    parser.add_argument("--python", help="Colab's Python (X.Y), when it changed")
    args = parser.parse_args(argv)
    try:
        freeze = read_freeze(args.freeze)
    except (NotAFreeze, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text, notes = refresh(
        args.constraints.read_text(encoding="utf-8"), freeze, args.date, args.python
    )
    if str(ROOT) not in sys.path:  # run as a script from colab/: the project's helpers
        sys.path.insert(0, str(ROOT))
    from helpers.files import write_text

    write_text(args.constraints, text)
    for note in notes:
        print(note)
    changed = sum("->" in note for note in notes)
    print(f"{args.constraints}: {changed} version(s) changed, as of {args.date}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
