"""Notebook conventions: clean, titled, badged, set up, parameterised, short cells."""

import re
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from helpers.authoring import current_repo, instructor_notebooks, stale_students

NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
MAX_CODE_LINES = 15
REPO_LINE = re.compile(r'^REPO_URL = "(.+)"$', re.MULTILINE)


def ids(path):
    return str(path.relative_to(ROOT / "notebooks"))


def test_there_are_notebooks():
    assert instructor_notebooks(), "no numbered notebooks in notebooks/"
    assert len(NOTEBOOKS) == 2 * len(instructor_notebooks()), (
        "each notebook needs its student version"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_valid_nbformat4_with_python3_kernel(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_outputs_or_execution_counts(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count)
    ]
    assert not dirty, f"cells {dirty} carry outputs: run `python -m helpers.authoring strip`"
    # committed as `strip` writes it: a cell edited by hand (its "id" key last) made strip rewrite six
    # notebooks on a clean clone, a diff that was only key order
    from helpers.authoring import render

    assert path.read_text(encoding="utf-8") == render(nb), "run `python -m helpers.authoring strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_title_cell_has_badge_to_own_path(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    own = path.relative_to(ROOT).as_posix()
    badge = f"https://colab.research.google.com/github/{current_repo()}/blob/main/{own}"
    assert badge in first.source, f"cell 1 needs the Colab badge {badge}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_second_cell_is_setup(path):
    setup = nbformat.read(path, as_version=4).cells[1]
    assert setup.cell_type == "code"
    assert "helpers.setup(" in setup.source
    # find_spec: an ImportError from inside helpers (a missing numpy) is not "helpers is missing"
    assert 'importlib.util.find_spec("helpers") is None' in setup.source
    assert "%pip install -q --no-deps" in setup.source
    match = REPO_LINE.search(setup.source)
    assert match and match.group(1) == f"https://github.com/{current_repo()}", (
        "one REPO_URL everywhere"
    )


@pytest.mark.parametrize("case", ["install failed", "another helpers", "a helpers folder"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_the_setup_cell_names_a_failed_install_and_another_helpers(path, case, monkeypatch):
    """A failed %pip (offline, a wrong REPO_URL) ended in "No module named 'helpers'" (and `pip
    install helpers` fetches PyPI's unrelated package); a helpers.py or a helpers folder in /content
    was imported as the course's, and the cell stopped at "module 'helpers' has no attribute
    'setup'"."""
    import importlib.machinery
    import importlib.util
    import sys
    import types

    source = nbformat.read(path, as_version=4).cells[1].source
    pip = next(line for line in source.splitlines() if line.strip().startswith("%pip"))
    code = source.replace(pip, pip[: len(pip) - len(pip.lstrip())] + "pass  # pip failed")
    if case == "install failed":
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
        said = (
            f"helpers did not install from https://github.com/{current_repo()}: check the network"
        )
    else:
        found = types.ModuleType("helpers")
        found.__file__ = "/content/helpers.py" if case == "another helpers" else None
        if (
            case == "a helpers folder"
        ):  # no __init__.py: a namespace package, whose __file__ is None
            found.__path__ = ["/content/helpers"]
        found.__spec__ = importlib.machinery.ModuleSpec("helpers", None, origin=found.__file__)
        monkeypatch.setitem(sys.modules, "helpers", found)
        where = found.__file__ or "['/content/helpers']"
        said = (
            f"{where} is not this course's helpers: rename it (or pip uninstall helpers), restart"
        )
    with pytest.raises(RuntimeError, match=re.escape(said)):
        exec(compile(code, str(path), "exec"), {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_exactly_one_parameters_cell(path):
    cells = nbformat.read(path, as_version=4).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_code_cells_are_short(path):
    cells = nbformat.read(path, as_version=4).cells
    long = [
        i
        for i, c in enumerate(cells)
        if c.cell_type == "code" and len(c.source.splitlines()) > MAX_CODE_LINES
    ]
    assert not long, (
        f"cells {long} have more than {MAX_CODE_LINES} lines: move the code into helpers"
    )


def test_student_notebooks_are_up_to_date():
    stale = stale_students()
    assert not stale, f"regenerate with `python -m helpers.authoring students`: {stale}"


@pytest.mark.parametrize("path", instructor_notebooks(), ids=ids)
def test_student_versions_hold_no_solutions(path):
    student = nbformat.read(ROOT / "notebooks" / "student" / path.name, as_version=4)
    source = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in source and "END SOLUTION" not in source
    instructor = nbformat.read(path, as_version=4)
    blocks = sum(c.source.count("# BEGIN SOLUTION") for c in instructor.cells)
    assert source.count("raise NotImplementedError(") == blocks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_headings_nest_and_exercises_are_headings(path):
    """One title, no skipped heading level (screen readers navigate by them), and every exercise
    under a heading of its own, so heading navigation finds it."""
    levels, loose = [], []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            heading = re.match(r"(#{1,6}) ", line)
            if heading:
                levels.append((i, len(heading.group(1))))
            elif re.match(r"\W*Exercise \w+\b", line):
                loose.append((i, line[:60]))
    assert [level for _, level in levels].count(1) == 1 and levels[0][1] == 1
    skipped = [(i, b) for (_, a), (i, b) in zip(levels, levels[1:]) if b > a + 1]
    assert not skipped, f"(cell, level) headings that skip a level: {skipped}"
    assert not loose, f"exercises not under a '### Exercise …' heading: {loose}"


def test_tests_never_use_the_users_cache():
    """Tests that ran a command without the `cache` fixture left its run locks (about 360 a run)
    in ~/.cache/attention-lab, and read whatever that held; the session now has a cache of its own."""
    from notebook_runner import USER_CACHE

    from helpers.download import cache_dir

    if USER_CACHE:
        pytest.skip("HELPERS_CACHE was set before pytest started: the tests use that cache")
    default = Path.home() / ".cache" / "attention-lab"
    assert default != cache_dir() and default not in cache_dir().parents


def test_the_top_level_holds_only_the_projects_own_files():
    """A run's leftovers (a report named `runs`, a `mlm.pid`) were once committed beside README;
    `runs` then broke README's own `scaling write --out runs` example."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    top = {line.split("/")[0] for line in tracked.stdout.splitlines()}
    assert top <= {".ci", ".gitignore", "CITATION.cff", "LICENSE", "MANIFEST.in", "README.md", "colab", "data",
                   "environment.yml", "helpers", "notebooks", "pyproject.toml", "tests"}, top  # fmt: skip
