"""helpers.source: digests of the course's code that are the same in every process, change when the
code does, and not when only a comment or docstring does."""

import functools
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from helpers.source import code_digest
from helpers.training.checkpoints import load_checkpoint

CELL = """
import functools
import torch
import torch.nn.functional as F

def helper(x):
    return x

class Base:
    def __call__(self, rows):
        return rows

class Collate(Base):
    pass

class Attn(torch.nn.Module):
    ACT = (helper,)
    def forward(self, x, kind="a"):
        if kind in {"alpha", "beta", "gamma", "delta"}:
            return F.cross_entropy(x, x)
        return helper(x)

def make_loss(smoothing):
    def loss(logits, y):
        return F.cross_entropy(logits, y, label_smoothing=smoothing)
    return loss

@functools.lru_cache
def cached(n):
    return n + 1
"""


def cell(source: str = CELL) -> dict:
    """A notebook cell's names: its code has no source file, as in exec."""
    names = {"__name__": "__main__"}
    exec(source, names)
    return names


def test_digests_are_the_same_in_processes_with_other_hash_seeds():
    """A tuple class attribute holding a function put its memory address in the digest, and a set
    literal's order followed the hash seed: such a class's checkpoint never resumed."""
    script = (f"from helpers.source import code_digest\nc = {{'__name__': '__main__'}}\n"
              f"exec({CELL!r}, c)\nprint(code_digest(c['Attn']), code_digest(c['Collate']()))")  # fmt: skip
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, check=True, cwd=os.getcwd())  # fmt: skip
        digests.add(out.stdout)
    assert len(digests) == 1, digests


@pytest.mark.parametrize("old, new", [
    ("F.cross_entropy(x, x)", "F.nll_loss(x, x)"),  # a name only: the same bytecode and constants
    ("    def __call__(self, rows):\n        return rows", "    def __call__(self, rows):\n        return rows[::-1]"),
    ("return n + 1", "return n + 2"),  # inside an lru_cache
])  # fmt: skip
def test_a_change_without_source_is_seen(old, new):
    """Without a source file, only the bytecode and constants counted (a renamed call was the same),
    a base class of a reached object was not read, and an lru_cache hid its function."""
    plain = CELL.replace("    ACT = (helper,)\n", "")  # its address alone made two cells differ
    before, after = cell(plain), cell(plain.replace(old, new))
    roots = lambda c: (c["Attn"], c["Collate"](), c["cached"])  # noqa: E731
    assert code_digest(*roots(before)) != code_digest(*roots(after))


def test_a_value_held_in_a_closure_or_a_partial_counts():
    """A loss made by ``make_loss(0.9)`` resumed a checkpoint ``make_loss(0.0)`` had trained."""
    c = cell()
    assert code_digest(c["make_loss"](0.0)) != code_digest(c["make_loss"](0.9))
    assert code_digest(c["make_loss"](0.0)) == code_digest(c["make_loss"](0.0))
    assert code_digest(functools.partial(c["make_loss"], 0.0)) != code_digest(
        functools.partial(c["make_loss"], 0.9)
    )


def test_a_comment_or_docstring_edit_leaves_the_digest_alone(tmp_path):
    """The source text counted: a docstring edit of the training loop retrained every command."""
    versions = [
        'def f(x):\n    """Add one."""\n    return x + 1  # one\n',
        'def f(x):\n    """Add one to x (reworded)."""\n\n    # a new comment\n    return x + 1\n',
        "def f(x):\n    return x + 2\n",
    ]
    digests = []
    for i, text in enumerate(versions):  # one module, edited: its file read anew each time
        path = tmp_path / f"v{i}" / "mod.py"
        path.parent.mkdir()
        path.write_text(text)
        spec = importlib.util.spec_from_file_location("mod", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        digests.append(code_digest(module.f))
    assert digests[0] == digests[1] != digests[2]


def test_running_out_of_memory_while_loading_never_trains_over_the_checkpoint(
    tmp_path, monkeypatch
):
    """On a CPU torch says so with a RuntimeError ("can't allocate memory"), not a MemoryError: it
    read as a damaged file, and training began again over the checkpoint."""
    from helpers.training import checkpoints

    path = tmp_path / "run.pt"
    torch.save({"fingerprint": {}, "epoch": 1}, path)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        )

    monkeypatch.setattr(checkpoints.torch, "load", out_of_memory)
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        load_checkpoint(path, {})


def test_a_constant_a_function_reads_and_a_partials_keyword_names_count():
    """A module constant read by name (``SCALE``), a set class attribute and the keyword a partial
    passes were left out: each could change under a resumed checkpoint."""
    source = "SCALE = 0.5\nclass K:\n    KINDS = {'a', 'b'}\ndef loss(x, smoothing=0.0, weight=0.0):\n    return x * SCALE\n"
    before, scale, kinds = (
        cell(source),
        cell(source.replace("0.5", "2.0")),
        cell(source.replace("'b'", "'c'")),
    )
    assert code_digest(before["loss"]) != code_digest(scale["loss"])
    assert code_digest(before["K"]) != code_digest(kinds["K"])
    smoothing = functools.partial(before["loss"], smoothing=0.5)
    assert code_digest(smoothing) != code_digest(functools.partial(before["loss"], weight=0.5))


def test_a_cell_without_source_never_takes_the_source_of_an_equal_cells_code():
    """Code objects compare equal whatever their file: cached by code object, a bare exec's class took
    the source an IPython cell's equal code had, until that cell was collected: the same code then
    digested differently and a checkpoint retrained (seen in CI, depending on test order)."""
    import gc
    import linecache

    source = "def forward(x):\n    return x * 2\n"
    linecache.cache["<ipython-input-1-test>"] = (len(source), None, source.splitlines(True), "")
    kept = {"__name__": "__main__"}
    exec(compile(source, "<ipython-input-1-test>", "exec"), kept)
    code_digest(kept["forward"])  # read from its source
    first = code_digest(cell(source)["forward"])  # the same code, no source
    del kept
    gc.collect()
    assert code_digest(cell(source)["forward"]) == first
    del linecache.cache["<ipython-input-1-test>"]
