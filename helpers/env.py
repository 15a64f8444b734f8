"""Notebook setup: seeds, device, profile, and where we are running."""

import importlib.util
import os
import random
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from helpers.files import interrupt_after
from helpers.profiles import PROFILE_NOTES, PROFILES, Sizes, sizes_for

SEED = 42
_current_seed = SEED  # the seed of the last setup(): every run function's default
# Imported names (not pip names) that notebooks need beyond torch and numpy.
RUNTIME_MODULES = ("matplotlib", "ipywidgets", "tqdm")
# Deprecations inside the libraries at the oldest versions pyproject allows (transformers 4.40 passes
# resume_download to huggingface_hub 0.23; accelerate 0.30 imports transformers.deepspeed): a student
# can do nothing about them, and the notebooks' tests fail on any text on stderr
LIBRARY_DEPRECATIONS = (
    r"`resume_download` is deprecated",
    r"transformers\.deepspeed module is deprecated",
)
# a Colab runtime without a GPU runs quick, minutes a notebook on its 2 cores: say where a GPU is
COLAB_CPU = " | no GPU: Runtime > Change runtime type > a GPU (e.g. T4), then run all cells again"


F = TypeVar("F", bound=Callable[..., Any])


def with_gradients(fn: F) -> F:
    """``fn`` run with autograd on, whatever a notebook cell left (``torch.set_grad_enabled(False)``,
    a ``no_grad`` or ``inference_mode`` block around the call): for helpers that train or take
    gradients, which stopped at torch's "element 0 of tensors does not require grad"."""
    return torch.inference_mode(False)(torch.enable_grad()(fn))


@dataclass
class Lab:
    """What ``setup`` decided; notebooks read ``lab.device``, ``lab.profile`` and ``lab.sizes``."""

    device: torch.device
    profile: str
    in_colab: bool
    sizes: Sizes  # this notebook's sizes in this profile: a config from helpers.profiles
    seed: int = SEED

    def describe(self) -> str:
        # class and full are sized for a GPU: chosen on a CPU (HELPERS_PROFILE), said so
        slow = self.device.type == "cpu" and self.profile in ("class", "full")
        return (
            f"device: {self.device.type} | profile: {self.profile} "
            f"({PROFILE_NOTES[self.profile]}) | torch {torch.__version__}"
            + (" | Colab" if self.in_colab else "")
            + (f" | {self.profile} is sized for a GPU; quick is the CPU's profile" if slow else "")
            + (COLAB_CPU if self.in_colab and self.device.type == "cpu" else "")
        )


def seed_everything(seed: int = SEED) -> None:
    """Seed Python's, numpy's and torch's random generators; later runs default to ``seed`` too."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int from 0 to 2**32 - 1 (numpy's range), not {seed!r}")
    global _current_seed
    _current_seed = seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def current_seed() -> int:
    """The seed ``setup`` (or ``seed_everything``) was last given: run functions use it by default."""
    return _current_seed


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's generators seeded to ``seed``, then give the caller back the random
    state it had: a run is reproducible from its seed and never resets the caller's generators."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


FILE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}  # matplotlib's: no window


def show_figures_here() -> str | None:
    """In a Jupyter kernel whose matplotlib backend only writes files (``MPLBACKEND=agg`` exported
    before Jupyter started, as on many clusters) no figure was shown and nothing said why: switch to
    the inline backend and return a note saying so. None anywhere else."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is None or not hasattr(shell, "kernel"):
        return None
    import matplotlib  # every notebook draws

    backend = matplotlib.get_backend().lower()
    if backend not in FILE_BACKENDS:
        return None
    shell.run_line_magic("matplotlib", "inline")
    return (f"note: matplotlib's backend was {backend!r} (MPLBACKEND="
            f"{os.environ.get('MPLBACKEND', '')!r}), which shows no figure in a notebook: "
            "switched to inline")  # fmt: skip


class LaunchError(ValueError):
    """The launcher's environment variables do not describe a run (``WORLD_SIZE`` without the rest):
    a command says so in one line (``cli.refuses_non_finite``)."""


# gloo, torch's CPU backend, reduces CPU and CUDA tensors only
MPS_SEVERAL = ("several processes cannot share gradients on Apple's mps device (gloo reduces CPU and "
               "CUDA tensors only): set HELPERS_DEVICE=cpu")  # fmt: skip


def pick_device() -> torch.device:
    """$HELPERS_DEVICE (cpu, cuda or mps) when set, else cuda if there is a GPU (under torchrun, the GPU
    of this process's LOCAL_RANK), else Apple's mps, else cpu."""
    mps = getattr(torch.backends, "mps", None)
    has = {"cuda": torch.cuda.is_available(), "mps": bool(mps and mps.is_available()), "cpu": True}
    asked = os.environ.get("HELPERS_DEVICE", "").strip().lower()
    if asked and not has.get(asked):
        why = (
            "is not a device; use cpu, cuda or mps"
            if asked not in has
            else "but torch sees none here"
        )
        raise ValueError(f"HELPERS_DEVICE={asked!r} {why} (or unset it to choose by the hardware)")
    name = asked or next(n for n, present in has.items() if present)
    if name == "mps" and os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1"):
        raise ValueError(MPS_SEVERAL)
    local = os.environ.get("LOCAL_RANK", "")
    if name == "cuda" and local.isdigit():  # started by torchrun: one GPU per process
        if int(local) >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this machine shows {torch.cuda.device_count()} "
                             "GPU(s): start at most one process per GPU (--nproc_per_node)")  # fmt: skip
        torch.cuda.set_device(int(local))
        return torch.device("cuda", int(local))
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (GPUs run it asynchronously): before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def resolve_profile(device: torch.device, requested: str | None = None) -> str:
    """``requested``, else $HELPERS_PROFILE, else ``class`` on a GPU and ``quick`` on a CPU (``full``,
    whole data sets and every experiment, only when asked for)."""
    # "Full" and " quick" as well as "full": the argument read as the variable is
    profile = (requested or os.environ.get("HELPERS_PROFILE", "")).strip().lower() or None
    if profile is None:
        return "class" if device.type == "cuda" else "quick"
    if profile not in PROFILES:
        where = f"profile={profile!r}" if requested else f"HELPERS_PROFILE={profile!r}"
        unset = "leave it out" if requested else "unset it"
        raise ValueError(f"{where} is not a profile; use one of {', '.join(PROFILES)} (or {unset} to "
                         "pick class on a GPU and quick on a CPU)")  # fmt: skip
    return profile


def missing_modules(names: tuple[str, ...] = RUNTIME_MODULES) -> list[str]:
    """The names in ``names`` that cannot be imported."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def setup(notebook: str, profile: str | None = None, seed: int = SEED) -> Lab:
    """Seed everything, pick device and profile, print one line saying so, and return them."""
    missing = missing_modules()
    if missing:
        raise ImportError(
            f"this notebook needs {', '.join(missing)}, which is not installed: run `pip install "
            f"{' '.join(missing)}` (or, in a clone of attention-lab, `pip install -e .`, which installs "
            "everything the course uses; Colab already has them)"
        )
    if notebook != "01":  # 01 never trains; in the others the import comes soon anyway
        with interrupt_after():
            # The first optimizer of a kernel imports these (1-6 s); interrupted half-way, they stayed
            # half imported and every later optimizer failed ("module 'sympy' has no attribute
            # 'core'") until a restart. Here, an interrupt waits for the import's end.
            importlib.import_module("torch._dynamo")
    for message in LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    seed_everything(seed)
    device = pick_device()
    chosen = resolve_profile(device, profile)
    if chosen == "smoke" and device.type == "cpu":
        # the tests' tiny models: a second thread mostly waits for a core the other jobs hold
        torch.set_num_threads(1)
    lab = Lab(device=device, profile=chosen, in_colab=in_colab(), sizes=sizes_for(notebook, chosen),
              seed=seed)  # fmt: skip
    print(lab.describe())
    if note := show_figures_here():
        print(note)
    return lab
