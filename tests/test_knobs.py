"""The notebooks' knobs: every profile's parameters cell passes its notebook's check, and the bad
values a student types are named there (a bad-value probe of every parameters cell found them
failing cells later, deep in torch, or silently changed)."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT

from helpers import knobs
from helpers.profiles import PROFILES, sizes_for

NOTEBOOKS = {path.name[:2]: path for path in sorted((ROOT / "notebooks").glob("0*.ipynb"))}


def parameters(notebook: str, profile: str) -> dict:
    """The knobs the notebook's parameters cell sets in ``profile``."""
    cells = json.loads(NOTEBOOKS[notebook].read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    lab = SimpleNamespace(sizes=sizes_for(notebook, profile), seed=42, profile=profile)
    values = {"lab": lab}
    exec("".join(cell["source"]), values)
    return values


def test_every_notebook_checks_its_knobs_after_its_parameters_cell():
    assert set(NOTEBOOKS) == set(knobs.KNOBS)
    for notebook, path in NOTEBOOKS.items():
        code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        assert f'knobs.check("{notebook}", globals())' in code, notebook


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("notebook", sorted(knobs.KNOBS))
def test_every_profile_s_knobs_pass(notebook, profile):
    values = parameters(notebook, profile)
    knobs.check(notebook, values)
    assert set(knobs.KNOBS[notebook]) <= set(values), "a checked knob the cell does not set"


BAD = [
    ("01", "SELECTION_STRENGTH", 50, "from 0 to 20"),
    ("01", "SELECTED_KEY", 2.5, "a whole number from 1 to 4"),
    ("01", "AVERAGED_KEYS", (1, 2, 3), "two key numbers from 1 to 4"),
    ("01", "SWEEP_POINTS", 0, "from 2 to 10000"),
    ("02", "LM_STEPS", 10.5, "a whole number ≥ 1"),
    ("02", "NORM_SEEDS", 0, "a whole number ≥ 1"),
    ("02", "TIMING_TOKENS", 16, "a tuple of whole numbers"),
    ("02", "SENTENCE", "word " * 600, "a sentence of 1 to 100 words"),
    ("03", "CONFIG", "Course", "one of 'course', 'best'"),
    ("03", "EPOCHS", 1.5, "a whole number ≥ 1, or None"),
    ("04", "TASK", "sst-2", "one of 'sst2', 'boolq'"),
    ("04", "BATCH_SIZE", 0, "a whole number ≥ 1"),
    ("04", "MAX_LENGTH", 1000, "from 1 to 512"),
    ("04", "GRID_LRS", 1e-3, "a tuple of finite numbers > 0"),
    ("04", "LR", float("inf"), "a finite number > 0"),
    ("04", "SANITY_LR", 0, "a finite number > 0"),
    ("05", "LRS", {"pretrian": (1e-2,), "finetune": (1e-4,)}, '{"pretrain": (rates, ...)'),
    ("05", "DROPOUTS", 0.3, "a tuple of finite numbers from 0 to 0.99"),
    ("06", "BPE_MERGES", -1, "a whole number ≥ 1"),
    ("06", "SLIDER_WORDS", "king", "1 to 20 single words"),
    ("06", "SLIDER_WORDS", ["the cat", "don't"], "single words of up to 30 characters"),
    ("06", "MLM", {"heads": 3, "hidden": 64}, "a dict of MlmConfig's fields"),
    ("06", "WHOLE_WORD_RATE", 1.5, "from 0 to 1"),
    ("06", "WIKITEXT_SPLIT", "valid", "one of 'train', 'validation', 'test'"),
    ("07", "VARIANTS", ("dot", "inf"), "(attention, mask) pairs"),
    ("07", "STUDY", {"iters": 10.5}, "GPTRunConfig.iters must be a whole number, got 10.5"),
    ("08", "SAMPLING", {"temprature": 0.8}, "a dict with temperature"),
    ("08", "LENGTHS", (8, 5000), "a tuple of whole numbers from 1 to 1024"),
    ("08", "TOKENS", 100_000, "from 1 to 10000"),
    ("09", "MODELS", "tiny", "a tuple of model names with a T5"),
    ("09", "MODELS", ("tiny",), "a T5 among them"),
    ("09", "MODELS", ("google/mt5-small",), "a T5 among them"),
    ("09", "PROCESSES", (1, 2.0), "a tuple of whole numbers from 1 to 8"),
]


def test_process_counts_that_do_not_divide_the_accumulation_are_named():
    values = parameters("09", "quick") | {"PROCESSES": (1, 3), "ACCUMULATE": 2}
    with pytest.raises(
        knobs.KnobError, match="each process count must divide ACCUMULATE.*; 3 does not"
    ):
        knobs.check("09", values)


@pytest.mark.parametrize(("notebook", "name", "value", "takes"), BAD)
def test_a_bad_knob_is_named_with_what_it_takes(notebook, name, value, takes):
    values = parameters(notebook, "quick") | {name: value}
    with pytest.raises(knobs.KnobError) as err:
        knobs.check(notebook, values)
    assert str(err.value).startswith(f"{name} = {value!r} in the parameters cell: it takes")
    assert takes in str(err.value), str(err.value)


GOOD = [  # values a student may sensibly set, which the notebooks' code takes
    ("01", "AVERAGED_KEYS", (2, 2)),
    ("01", "AVERAGED_KEYS", np.array([1, 3])),
    ("02", "TIMING_TOKENS", range(16, 64, 16)),
    ("04", "MODEL", Path("my-model")),
    ("05", "LRS", {"pretrain": (), "finetune": (1e-4,)}),
    ("06", "DEMO_SEED", -1),
    ("06", "SLIDER_WORDS", ("king", "queen")),
    ("06", "WIKITEXT_FILE", Path("wiki.valid.tokens")),
    ("07", "PROMPT", "\n"),
    ("08", "TOKENS", 2000),
    ("08", "SEED", np.int64(3)),
    ("09", "MODELS", ("minilm", "google/flan-t5-small")),
]


@pytest.mark.parametrize(("notebook", "name", "value"), GOOD)
def test_sensible_values_pass(notebook, name, value):
    knobs.check(notebook, parameters(notebook, "quick") | {name: value})


LESSONS_PROBE = """
import json, sys
from types import SimpleNamespace
from helpers import knobs
from helpers.profiles import sizes_for
loaded = []
for notebook, path in (("01", sys.argv[1]), ("07", sys.argv[2])):
    cell = next(c for c in json.load(open(path))["cells"] if "parameters" in c["metadata"].get("tags", []))
    values = {"lab": SimpleNamespace(sizes=sizes_for(notebook, "quick"), seed=42, profile="quick")}
    exec("".join(cell["source"]), values)
    knobs.check(notebook, values)
    loaded.append(sorted(sys.modules))
print(json.dumps(loaded))
"""


def test_checking_one_notebook_loads_no_other_notebooks_lesson():
    """knobs sits below the lessons: notebook 01's check loads neither notebook 06's MLM runs nor
    notebook 07's GPT; notebook 07's check loads its own config when it reads STUDY."""
    paths = [str(NOTEBOOKS[n]) for n in ("01", "07")]
    done = subprocess.run(
        [sys.executable, "-c", LESSONS_PROBE, *paths], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    after_01, after_07 = json.loads(done.stdout.splitlines()[-1])
    assert not [m for m in after_01 if m.startswith(("helpers.gpt", "helpers.mlm"))]
    assert "helpers.gpt.runs" in after_07
