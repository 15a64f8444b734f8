import dataclasses
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import helpers
from helpers import env
from helpers.config import ConfigError
from helpers.env import current_seed, pick_device, resolve_profile, seed_everything, seeded
from helpers.profiles import PROFILES, SIZES, Sizes03, sizes_for


@pytest.fixture(autouse=True)
def keep_the_default_seed(monkeypatch):
    """Tests here set the process's seed; later tests' runs must default to the one they had."""
    monkeypatch.setattr(env, "_current_seed", env.current_seed())


def test_setup_prints_one_line_and_seeds_everything(monkeypatch, capsys):
    monkeypatch.setenv("HELPERS_PROFILE", "smoke")
    lab = helpers.setup("01")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    helpers.setup("01")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "device: cpu" in lines[0] and "profile: smoke" in lines[0]
    assert f"torch {torch.__version__}" in lines[0]
    assert lab.profile == "smoke" and lab.device == pick_device()
    assert "sized for a GPU" not in lines[0]
    # HELPERS_PROFILE=full on a CPU was taken without a word; the quick line pointed CPUs at it
    full = dataclasses.replace(lab, profile="full", device=torch.device("cpu"))
    assert full.describe().endswith("| full is sized for a GPU; quick is the CPU's profile")
    assert "full for everything" not in dataclasses.replace(lab, profile="quick").describe()
    # a Colab CPU runtime: the line said "| Colab" and nothing about the GPU a class needs
    colab = dataclasses.replace(lab, profile="quick", device=torch.device("cpu"), in_colab=True)
    assert colab.describe().endswith("| Colab | no GPU: Runtime > Change runtime type > a GPU "
                                     "(e.g. T4), then run all cells again")  # fmt: skip
    gpu = dataclasses.replace(colab, profile="class", device=torch.device("cuda"))
    assert "no GPU" not in gpu.describe() and "no GPU" not in full.describe()  # not Colab
    assert lab.sizes == SIZES["01"]["smoke"] and lab.sizes.sweep_points == 41


def test_setup_remembers_its_seed_for_later_runs(monkeypatch):
    monkeypatch.setenv("HELPERS_PROFILE", "smoke")
    lab = helpers.setup("03", seed=123)
    assert lab.seed == 123 and current_seed() == 123
    a = torch.rand(3)
    seed_everything(123)
    assert torch.equal(torch.rand(3), a)  # setup(seed=123) seeded torch with 123
    assert helpers.setup("03").seed == 42 and current_seed() == 42  # the default seed again


def test_seeded_is_repeatable_and_gives_the_caller_its_generator_back():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with seeded(5):
        a = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), state)
    after = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(4), after)  # as if the block had never drawn
    with seeded(5):
        assert torch.equal(torch.rand(4), a)
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="inside"), seeded(6):
        torch.rand(1)
        raise RuntimeError("inside")
    assert torch.equal(torch.get_rng_state(), state)  # given back after an error too


def test_helpers_device_chooses_the_device_and_a_wrong_one_is_named(monkeypatch):
    monkeypatch.setenv("HELPERS_DEVICE", " CPU ")
    assert pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for asked, said in (
        ("gpu", "'gpu' is not a device; use cpu, cuda or mps"),
        ("cuda", "'cuda' but torch sees none"),
    ):
        monkeypatch.setenv("HELPERS_DEVICE", asked)
        with pytest.raises(ValueError, match=f"HELPERS_DEVICE={said}"):
            pick_device()
    monkeypatch.delenv("HELPERS_DEVICE")
    assert pick_device().type in ("cpu", "mps")  # by the hardware


def test_several_processes_are_refused_apples_gpu_before_any_work(monkeypatch):
    """gloo cannot reduce mps tensors: on a Mac, torchrun's processes must train on the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.delenv("HELPERS_DEVICE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert pick_device() == torch.device("mps")  # one process: Apple's GPU
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="set HELPERS_DEVICE=cpu"):
        pick_device()
    monkeypatch.setenv("HELPERS_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_synchronize_waits_for_the_gpu_it_was_given(monkeypatch):
    waited = []
    monkeypatch.setattr(
        torch.cuda, "synchronize", lambda device=None: waited.append(("cuda", device))
    )
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append(("mps", None)))
    for name in ("cpu", "cuda", "mps"):
        env.synchronize(torch.device(name))
    assert waited == [
        ("cuda", torch.device("cuda")),
        ("mps", None),
    ]  # Apple's too: timings were wrong


def test_profile_defaults_to_quick_on_cpu_and_class_on_gpu(monkeypatch):
    monkeypatch.delenv("HELPERS_PROFILE", raising=False)
    assert resolve_profile(torch.device("cpu")) == "quick"
    assert resolve_profile(torch.device("cuda")) == "class"
    monkeypatch.setenv("HELPERS_PROFILE", " Smoke ")
    assert resolve_profile(torch.device("cuda")) == "smoke"


def test_unknown_profile_says_what_to_use(monkeypatch):
    monkeypatch.setenv("HELPERS_PROFILE", "fast")
    with pytest.raises(
        ValueError,
        match="HELPERS_PROFILE='fast' is not a profile; use one of class, full, quick, smoke",
    ):
        resolve_profile(torch.device("cpu"))


def test_the_profile_argument_is_read_as_the_variable_is(monkeypatch):
    """HELPERS_PROFILE=" Full" was taken, helpers.setup(profile="Full") refused."""
    monkeypatch.delenv("HELPERS_PROFILE", raising=False)
    assert resolve_profile(torch.device("cpu"), "Full") == "full"
    assert resolve_profile(torch.device("cpu"), " quick ") == "quick"


def test_every_notebook_has_every_profile_as_one_config_class():
    for notebook, profiles in SIZES.items():
        assert set(profiles) == set(PROFILES), notebook
        classes = {name: type(sizes) for name, sizes in profiles.items()}
        assert len(set(classes.values())) == 1, f"{notebook}: {classes}"
        cls = next(iter(classes.values()))
        assert dataclasses.is_dataclass(cls) and cls.__name__ == f"Sizes{notebook}", notebook
        for profile, sizes in profiles.items():
            assert sizes_for(notebook, profile) is sizes
            assert set(sizes.to_dict()) == {f.name for f in dataclasses.fields(cls)}


def test_sizes_are_frozen_and_refuse_an_unknown_field():
    smoke = SIZES["03"]["smoke"]
    with pytest.raises(
        ConfigError, match=r"Sizes03 has no field 'max_tran' \(did you mean 'max_train'\?\)"
    ):
        Sizes03(synthetic=True, max_tran=400, max_test=100, glove_dim=16, epochs=None, max_len=None)
    with pytest.raises(ConfigError, match="its fields: synthetic, max_train, max_test, glove_dim"):
        smoke.replace(glove_dims=50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.max_train = 10
    bigger = smoke.replace(max_train=1000)
    assert bigger.max_train == 1000 and smoke.max_train == 300 and bigger.glove_dim == 16


def test_sizes_for_unknown_notebook_or_profile():
    with pytest.raises(ValueError, match="no sizes for notebook '99'; known notebooks: 01, 02"):
        sizes_for("99", "quick")
    with pytest.raises(
        ValueError, match="unknown profile 'fast'; choose one of class, full, quick, smoke"
    ):
        sizes_for("01", "fast")


def test_seed_everything_is_repeatable_and_becomes_the_default():
    seed_everything(42)
    a = torch.randn(3)
    seed_everything(42)
    assert torch.equal(a, torch.randn(3))
    seed_everything(9)
    assert current_seed() == 9


@pytest.mark.parametrize(("notebook", "imported"), [("01", False), ("02", True)])
def test_setup_makes_the_first_optimizers_slow_imports_where_an_interrupt_waits(notebook, imported):
    """Interrupted half-way, torch's lazy import of dynamo (and sympy, inductor) at a kernel's first
    optimizer broke every later optimizer until a restart; the setup cell now makes it, under
    interrupt_after. Notebook 01 has no optimizer and skips the 1-6 s."""
    code = (f"import sys, helpers; helpers.setup(notebook={notebook!r}); "
            "print('torch._dynamo' in sys.modules)")  # fmt: skip
    env = {**os.environ, "HELPERS_PROFILE": "smoke"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == str(imported)


def test_a_missing_module_is_named_with_the_pip_line_that_installs_it(monkeypatch):
    """The message named only `pip install -e ".[dev]"` in the attention-lab folder, which a helpers
    installed from its repository's address (no folder) cannot run."""
    monkeypatch.setattr(env, "RUNTIME_MODULES", ("tqdm", "no_such_module_x", "no_such_module_y"))
    monkeypatch.setattr(env.missing_modules, "__defaults__", (env.RUNTIME_MODULES,))
    with pytest.raises(ImportError) as raised:
        env.setup("02")
    message = str(raised.value)
    assert "needs no_such_module_x, no_such_module_y" in message, message
    assert "`pip install no_such_module_x no_such_module_y`" in message, message


def test_setup_quiets_the_oldest_libraries_own_deprecations(monkeypatch, capsys):
    """Under transformers 4.40 and huggingface_hub 0.23 (pyproject's floors) notebooks 04 and 09 put
    FutureWarnings from inside those libraries on stderr; other warnings still show."""
    import warnings

    monkeypatch.setenv("HELPERS_PROFILE", "smoke")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        helpers.setup("04")
        warnings.warn("`resume_download` is deprecated and will be removed", FutureWarning, 1)
        warnings.warn("transformers.deepspeed module is deprecated", FutureWarning, 1)
        warnings.warn("a warning of the course's own", FutureWarning, 1)
    assert [str(w.message) for w in caught] == ["a warning of the course's own"]


@pytest.mark.parametrize(
    "backend, switched", [("agg", True), ("module://matplotlib_inline.backend_inline", False)]
)
def test_setup_shows_figures_in_a_kernel_whose_backend_only_writes_files(
    monkeypatch, backend, switched
):
    """MPLBACKEND=agg exported before Jupyter started (common on clusters): every figure of the
    notebook went unshown and nothing said why (an environment probe, stop 56)."""
    import IPython
    import matplotlib

    magics = []

    class Kernel:
        kernel = object()

        def run_line_magic(self, *args):
            magics.append(args)

    monkeypatch.setattr(IPython, "get_ipython", lambda: Kernel())
    monkeypatch.setattr(matplotlib, "get_backend", lambda: backend)
    monkeypatch.setenv("MPLBACKEND", backend)
    note = env.show_figures_here()
    assert (magics == [("matplotlib", "inline")]) == switched
    assert (
        note is not None and "switched to inline" in note and "MPLBACKEND='agg'" in note
    ) == switched
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # a terminal: nothing to switch
    assert env.show_figures_here() is None
