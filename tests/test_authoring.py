import shutil

import nbformat
import pytest
from conftest import ROOT

from helpers import authoring


def test_strip_solutions_keeps_indentation_and_hint():
    source = "def f(x):\n    # BEGIN SOLUTION: square it\n    return x * x\n    # END SOLUTION\n\n\ncheck(f)"
    assert authoring.strip_solutions(source) == (
        'def f(x):\n    raise NotImplementedError("square it")\n\n\ncheck(f)'
    )
    assert "write your solution here" in authoring.strip_solutions(
        "# BEGIN SOLUTION\nx = 1\n# END SOLUTION"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("# BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n# END SOLUTION", "without a # BEGIN SOLUTION"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "inside another"),
    ],
)
def test_broken_markers_are_reported(source, message):
    with pytest.raises(ValueError, match=message):
        authoring.strip_solutions(source)


def test_student_version_points_its_badge_at_itself():
    path = authoring.instructor_notebooks()[0]
    student = authoring.student_version(nbformat.read(path, as_version=4), path)
    assert f"notebooks/student/{path.name}" in student.cells[0].source
    assert "Student version" in student.cells[0].source


@pytest.fixture
def copy_of_project(tmp_path, monkeypatch):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setattr(authoring, "ROOT", tmp_path)
    monkeypatch.setattr(authoring, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(authoring, "STUDENT_DIR", tmp_path / "notebooks" / "student")
    return tmp_path


def test_set_repo_rewrites_every_badge_and_install_cell(copy_of_project):
    old = authoring.current_repo()
    changed = authoring.set_repo("https://github.com/my-school/attention-lab.git")
    assert authoring.current_repo() == "my-school/attention-lab"
    notebooks = sorted((copy_of_project / "notebooks").rglob("*.ipynb"))
    assert set(notebooks) <= set(changed)
    for path in [*notebooks, copy_of_project / "README.md"]:
        text = path.read_text()
        assert old not in text and "my-school/attention-lab" in text
    assert authoring.stale_students() == []  # rewriting both keeps the student versions in step


def test_set_repo_rejects_nonsense(copy_of_project, capsys):
    with pytest.raises(ValueError, match="is not OWNER/NAME"):
        authoring.set_repo("not a repo")
    with pytest.raises(SystemExit) as stopped:  # the command: one line and exit 2, no traceback
        authoring.main(["set-repo", "foo"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("error: 'foo' is not OWNER/NAME")
    assert err.count("\n") == 1


def test_students_command_regenerates(copy_of_project, capsys):
    (copy_of_project / "notebooks" / "student" / authoring.instructor_notebooks()[0].name).unlink()
    assert authoring.main(["check"]) == 1
    assert authoring.main(["students"]) == 0 and authoring.main(["check"]) == 0
    assert capsys.readouterr().out.endswith("9 student notebooks up to date\n")  # said, not silent


@pytest.mark.parametrize("command", [["check"], ["students"], ["strip"], ["set-repo", "me/fork"]])
def test_an_installed_copy_says_it_needs_a_source_checkout(tmp_path, monkeypatch, capsys, command):
    """Installed into site-packages, `check` reported "0 student notebooks up to date" (exit 0, having
    checked nothing), `strip` did nothing silently and the others ended in a FileNotFoundError."""
    monkeypatch.setattr(authoring, "ROOT", tmp_path / "site-packages")
    monkeypatch.setattr(authoring, "NOTEBOOKS", tmp_path / "site-packages" / "notebooks")
    assert authoring.main(command) == 2
    said = capsys.readouterr()
    assert said.err.startswith("error: python -m helpers.authoring works on a source checkout")
    assert said.out == ""
