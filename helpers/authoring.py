"""Tools for the people who write the notebooks (not used by the notebooks themselves).

    python -m helpers.authoring students          # write notebooks/student/ from the instructor notebooks
    python -m helpers.authoring check             # exit 1 if a student notebook is out of date
    python -m helpers.authoring set-repo OWNER/NAME   # point every badge and install cell at a fork
    python -m helpers.authoring strip             # remove outputs and execution counts

Solutions sit between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines in code cells. The student
version replaces them with ``raise NotImplementedError(hint)``; the hint is whatever follows
``# BEGIN SOLUTION:`` on the marker line.
"""

import copy
import json
import re
import sys
from pathlib import Path

import nbformat

from helpers.cli import Parser, stops_cleanly
from helpers.files import write_text

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STUDENT_DIR = NOTEBOOKS / "student"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
DEFAULT_HINT = "write your solution here"
STUDENT_NOTE = (
    "\n\n> **Student version**, generated from the instructor notebook by "
    "`python -m helpers.authoring students`. Fill in every `raise NotImplementedError`; the checker "
    "under each exercise tells you what is still wrong."
)
SLUG = re.compile(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?(?=[\"'/\s)]|$)")


def instructor_notebooks() -> list[Path]:
    """The numbered instructor notebooks, in teaching order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def strip_solutions(source: str) -> str:
    """Replace every BEGIN/END SOLUTION block in ``source`` by a NotImplementedError stub."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            hint = stripped[len(BEGIN) :].lstrip(":").strip() or DEFAULT_HINT
            out.append(f"{indent}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})")
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"line {number}: {END} without a {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN} block is never closed with {END}")
    return "\n".join(out)


def student_version(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """The student notebook for instructor notebook ``nb`` read from ``path``."""
    student = copy.deepcopy(nb)
    own = f"notebooks/{path.name}"
    for cell in student.cells:
        if cell.cell_type == "code":
            try:
                cell.source = strip_solutions(cell.source)
            except ValueError as err:
                raise ValueError(f"{path.name}: {err}") from None
    title = student.cells[0]
    title.source = title.source.replace(own, f"notebooks/student/{path.name}") + STUDENT_NOTE
    return student


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def stale_students() -> list[Path]:
    """Student notebooks that are missing or differ from what ``students`` would write."""
    stale = []
    for path in instructor_notebooks():
        target = STUDENT_DIR / path.name
        wanted = student_version(nbformat.read(path, as_version=4), path)
        if not target.exists() or nbformat.read(target, as_version=4) != wanted:
            stale.append(target)
    return stale


def write_students() -> list[Path]:
    STUDENT_DIR.mkdir(exist_ok=True)
    written = []
    for path in instructor_notebooks():
        target = STUDENT_DIR / path.name
        write_text(target, render(student_version(nbformat.read(path, as_version=4), path)))
        written.append(target)
    return written


def strip_outputs(paths: list[Path]) -> None:
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        write_text(path, render(nb))


def current_repo() -> str:
    """OWNER/NAME of the repository that pyproject.toml names."""
    match = SLUG.search((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    if match is None:
        raise ValueError("pyproject.toml has no github.com/OWNER/NAME URL under [project.urls]")
    return match.group(1)


def set_repo(new: str) -> list[Path]:
    """Point badges, install cells, README and pyproject at github.com/``new``; return changed files."""
    new = new.removeprefix("https://").removeprefix("github.com/").removesuffix(".git").strip("/")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", new):
        raise ValueError(f"{new!r} is not OWNER/NAME (for example: my-school/attention-lab)")
    old = current_repo()
    files = [ROOT / "pyproject.toml", ROOT / "README.md", *NOTEBOOKS.rglob("*.ipynb")]
    changed = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        updated = text.replace(f"github.com/{old}", f"github.com/{new}").replace(
            f"colab.research.google.com/github/{old}/", f"colab.research.google.com/github/{new}/"
        )
        if updated != text:
            write_text(path, updated)
            changed.append(path)
    return changed


@stops_cleanly("each notebook is written whole or not at all; run it again")
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m helpers.authoring", description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("students", help="write the student notebooks")
    sub.add_parser("check", help="fail if a student notebook is out of date")
    fork = sub.add_parser("set-repo", help="point every badge and install cell at OWNER/NAME")
    fork.add_argument("repo", help="OWNER/NAME on GitHub, e.g. my-school/attention-lab")
    sub.add_parser("strip", help="remove outputs from every notebook")
    args = parser.parse_args(argv)
    if not (ROOT / "pyproject.toml").is_file() or not NOTEBOOKS.is_dir():  # an installed copy
        print(f"error: python -m helpers.authoring works on a source checkout, and {ROOT} is not "
              "one (no pyproject.toml and notebooks/ there): clone the repository and pip install "
              "-e . in it", file=sys.stderr)  # fmt: skip
        return 2
    if args.command == "students":
        for path in write_students():
            print(f"wrote {path.relative_to(ROOT)}")
    elif args.command == "check":
        stale = stale_students()
        for path in stale:
            print(
                f"out of date: {path.relative_to(ROOT)} (run python -m helpers.authoring students)"
            )
        if not stale:
            print(f"{len(instructor_notebooks())} student notebooks up to date")
        return 1 if stale else 0
    elif args.command == "set-repo":
        try:
            changed = set_repo(args.repo)
        except ValueError as err:  # not OWNER/NAME: one line, as every command's bad input
            parser.error(str(err))
        for path in changed:
            print(f"updated {path.relative_to(ROOT)}")
    elif args.command == "strip":
        strip_outputs(sorted(NOTEBOOKS.rglob("*.ipynb")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
