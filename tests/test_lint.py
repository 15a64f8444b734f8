import json
import subprocess
import sys

from conftest import ROOT
from IPython.core.inputtransformer2 import TransformerManager
from vulture import Vulture


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_check():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, "run `ruff format .`\n" + result.stdout + result.stderr


def test_no_dead_code_in_helpers():
    """Every function, class and variable of ``helpers`` is used by helpers, the tests, colab/ or a
    notebook (vulture; attributes are left out: helpers sets some on other libraries' objects, and so
    are the methods torch and Python call themselves). A file vulture cannot read fails the test: its
    uses would go unseen."""
    scan = Vulture(ignore_names=["extra_repr", "forward", "__torch_function__", "reset_parameters"])
    scan.scavenge([str(ROOT / "helpers"), str(ROOT / "tests"), str(ROOT / "colab")])
    to_python = TransformerManager().transform_cell  # IPython's: !ls and %magic become calls
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n\n".join(
            to_python("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code"
        )
        scan.scan(code, filename=str(path))
    assert scan.exit_code == 0, "vulture could not read a file (its message is above)"
    unused = [
        f"{item.filename.relative_to(ROOT)}:{item.first_lineno}: {item.message}"
        for item in scan.get_unused_code(min_confidence=60)
        if item.typ != "attribute" and (ROOT / "helpers") in item.filename.parents
    ]
    assert not unused, "unused code (delete it, or use it):\n" + "\n".join(unused)
