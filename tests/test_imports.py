"""Each notebook's imports work, and notebook 01's (torch, numpy, matplotlib, ipywidgets) stay light."""

import ast
import json
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT
from IPython.core.inputtransformer2 import TransformerManager

HEAVY = ("transformers", "datasets", "pandas")  # what notebook 01 must never load

# Runs the imports (argv[1], one statement a line) in a fresh interpreter, watching for the modules
# named in argv[2]. For each one loaded, it records the chain of helpers modules whose import pulled
# it in; it prints them as JSON.
PROBE = """
import json, sys
HEAVY, chains = sys.argv[2].split(","), {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in chains:
            importers, frame = [], sys._getframe(1)
            while frame:
                module = frame.f_globals.get("__name__", "")
                if module.startswith("helpers") and module not in importers:
                    importers.append(module)
                frame = frame.f_back
            chains[name] = " -> ".join([*reversed(importers), name])
        return None

sys.meta_path.insert(0, Watch())
exec(sys.argv[1])
print(json.dumps({name: chains.get(name, name) for name in HEAVY if name in sys.modules}))
"""


def notebook_imports(path) -> list[str]:
    """Every import statement in the code cells of ``path``, in order (IPython magics removed)."""
    statements = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            tree = ast.parse(TransformerManager().transform_cell(cell.source))
            statements += [
                ast.unparse(node)
                for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom)
            ]
    return list(dict.fromkeys(statements))


def heavy_modules_loaded(statements: list[str]) -> dict[str, str]:
    """Run ``statements`` in a fresh interpreter: the heavy modules they loaded, each with its chain."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "\n".join(statements), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, f"{statements} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def notebook(stem: str, student: bool = False):
    return ROOT / "notebooks" / ("student" if student else "") / f"{stem}.ipynb"


def test_the_probe_names_the_chain_that_loads_a_heavy_module():
    loaded = heavy_modules_loaded(["from helpers.plots import training"])
    assert loaded["pandas"] == "helpers.plots.training -> pandas"


def test_notebook_01_loads_no_transformers_datasets_or_pandas():
    statements = notebook_imports(notebook("01_attention_by_hand"))
    student = notebook_imports(notebook("01_attention_by_hand", student=True))
    assert any("helpers.widgets" in s for s in statements), statements
    # the student version's imports, probed too when they are not the same statements
    for version in [statements] + [student] * (sorted(student) != sorted(statements)):
        loaded = heavy_modules_loaded(version)
        assert not loaded, (
            "notebook 01 needs only torch, numpy, matplotlib and ipywidgets, but its imports load "
            + "; ".join(loaded.values())
        )


@pytest.mark.parametrize(
    "stem",
    [
        "02_attention_and_layernorm_from_scratch",
        "03_imdb_glove_transformer",
        "04_finetuning_bert",
    ],
)
def test_notebook_imports_work(stem):
    statements = notebook_imports(notebook(stem))
    assert statements, f"{stem} imports nothing?"
    heavy_modules_loaded(statements)  # fails, with the traceback, if any import fails
