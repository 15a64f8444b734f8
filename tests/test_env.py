import random

import numpy as np
import pytest
import torch

import helpers
from helpers.env import pick_device, resolve_profile, seed_everything
from helpers.profiles import PROFILES, SIZES, sizes_for


def test_setup_prints_one_line_and_seeds_everything(monkeypatch, capsys):
    monkeypatch.setenv("HELPERS_PROFILE", "smoke")
    lab = helpers.setup("01")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    helpers.setup("01")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "device: cpu" in lines[0] and "profile: smoke" in lines[0]
    assert f"torch {torch.__version__}" in lines[0]
    assert (
        lab.profile == "smoke" and lab.device == pick_device() and lab.sizes == SIZES["01"]["smoke"]
    )


def test_profile_defaults_to_quick_on_cpu_and_full_on_gpu(monkeypatch):
    monkeypatch.delenv("HELPERS_PROFILE", raising=False)
    assert resolve_profile(torch.device("cpu")) == "quick"
    assert resolve_profile(torch.device("cuda")) == "full"
    monkeypatch.setenv("HELPERS_PROFILE", " Smoke ")
    assert resolve_profile(torch.device("cuda")) == "smoke"


def test_unknown_profile_says_what_to_use(monkeypatch):
    monkeypatch.setenv("HELPERS_PROFILE", "fast")
    with pytest.raises(
        ValueError, match="HELPERS_PROFILE='fast' is not a profile; use one of full, quick, smoke"
    ):
        resolve_profile(torch.device("cpu"))


def test_every_notebook_has_every_profile_with_the_same_knobs():
    for notebook, profiles in SIZES.items():
        assert set(profiles) == set(PROFILES), notebook
        knobs = {name: set(sizes) for name, sizes in profiles.items()}
        assert len({frozenset(k) for k in knobs.values()}) == 1, f"{notebook}: {knobs}"


def test_sizes_for_unknown_notebook():
    with pytest.raises(ValueError, match="no sizes for notebook '99'"):
        sizes_for("99", "quick")


def test_seed_everything_is_repeatable():
    seed_everything(42)
    a = torch.randn(3)
    seed_everything(42)
    assert torch.equal(a, torch.randn(3))
