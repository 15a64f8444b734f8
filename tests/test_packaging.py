"""pyproject.toml and environment.yml agree; nothing Colab ships is pinned; no torchtext."""

import re
import tomllib

import pytest
from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def conda_dependencies() -> dict[str, str]:
    deps, section = {}, None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        item = re.match(r"^  - (.+)$", line)
        if re.match(r"^\w+:", line):
            section = line.split(":")[0]
        elif line.startswith("  - pip:"):
            section = "pip"
        elif item and section == "dependencies":
            name, spec = split(item.group(1))
            if name not in ("python", "pip"):
                deps[CONDA_NAMES.get(name, name)] = spec
    return deps


def test_environment_yml_matches_pyproject():
    pyproject = dict(split(r) for r in PYPROJECT["project"]["dependencies"])
    assert conda_dependencies() == pyproject


@pytest.mark.parametrize("requirement", PYPROJECT["project"]["dependencies"])
def test_runtime_dependencies_have_lower_bounds_only(requirement):
    name, spec = split(requirement)
    assert spec.startswith(">="), f"{name}: lower bounds only, so Colab's versions are kept"
    assert "<" not in spec and "==" not in spec and "," not in spec


def test_no_torchtext_anywhere():
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "environment.yml").read_text()
    sources = "".join(p.read_text() for p in (ROOT / "helpers").rglob("*.py"))
    assert "torchtext" not in text and "import torchtext" not in sources


def test_dev_extra_holds_the_test_tools():
    dev = {split(r)[0] for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert {"pytest", "nbclient", "nbformat", "ruff", "ipykernel"} <= dev


def test_python_and_package_names():
    assert PYPROJECT["project"]["name"] == "attention-lab"
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert "helpers" in PYPROJECT["tool"]["setuptools"]["packages"]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("## Test\n\n```bash\n", 1)[1].split("\n```", 1)[0]
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ci[-1] == command == "pytest"
