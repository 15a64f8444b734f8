"""Checkpoints that know what they trained.

A checkpoint stores, beside the weights, a fingerprint of what produced them: the training config,
the model's config, the data, the parameter shapes, the source code of every class in the model (a
student's ``MySelfAttention`` included, also when it was written in a notebook cell) and of the
course's code it reaches (``attend``, a helper from another cell: ``helpers.source``), and the code
that trains it (``fit`` adds the loss, the batches' making and its own steps). Resuming compares
fingerprints first: a checkpoint made by other code, config or data is never reused; the run says
what changed and trains again.
"""

import errno
import pickle
from pathlib import Path

import torch
import torch.nn as nn

from helpers.files import RUN_FILES, atomic_write, check_not_an_input, check_writable
from helpers.source import code_digest, digest

# errors of the disk or the network, not of the file: it may be good when read again
NOT_THE_FILE = {errno.EIO, errno.ENOMEM, errno.ESTALE, errno.ETIMEDOUT, errno.EACCES, errno.EPERM}


def not_the_files_fault(err: BaseException) -> bool:
    """Memory that ran out (a MemoryError, or torch's RuntimeError: "can't allocate memory" on a CPU,
    "out of memory" on a GPU), or an OSError of the disk or the network (a file cut short raises
    EINVAL: that one is the file's)."""
    said = str(err).lower()
    out_of_memory = isinstance(err, RuntimeError) and (
        "out of memory" in said or "can't allocate memory" in said
    )
    return (
        out_of_memory
        or isinstance(err, (MemoryError, PermissionError))
        or (isinstance(err, OSError) and err.errno in NOT_THE_FILE)
    )


def code_fingerprint(model: nn.Module) -> dict[str, str]:
    """A digest of the source of every class in ``model`` that is not PyTorch's own, by class name."""
    classes: dict[str, type] = {}
    for module in model.modules():
        for cls in type(module).__mro__:
            if cls.__module__.startswith("torch") or cls is object:
                continue
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return {name: code_digest(cls) for name, cls in sorted(classes.items())}


# The fingerprint's own make: one more whenever what it holds or how code is digested changes, so a
# checkpoint of an older helpers is named as such, not as changes the student never made.
FORMAT = 2


def fingerprint(model: nn.Module, /, **parts: object) -> dict:
    """What a checkpoint must match to be reused: the model's code and parameter shapes, plus ``parts``
    (the training config, the model config, a digest of the data, ...)."""
    shapes = {name: list(p.shape) for name, p in model.state_dict().items()}
    return {"format": FORMAT, "code": code_fingerprint(model), "shapes": digest(repr(shapes)),
            **parts}  # fmt: skip


def differences(saved: dict, current: dict) -> list[str]:
    """What differs between two fingerprints, in words."""
    found = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if old == new:
            continue
        if key == "code" and isinstance(old, dict) and isinstance(new, dict):
            changed = [
                n.rsplit(".", 1)[-1]
                for n in sorted(set(old) | set(new))
                if old.get(n) != new.get(n)
            ]
            found.append(f"the code of {', '.join(changed)} changed")
        elif key == "shapes":
            found.append("the model's parameter shapes changed")
        elif isinstance(old, dict) and isinstance(new, dict):  # a config: its fields, then and now
            fields = [f"{f} {_brief(old.get(f, UNSET))} -> {_brief(new.get(f, UNSET))}"
                      for f in sorted(set(old) | set(new), key=str)
                      if old.get(f, UNSET) != new.get(f, UNSET)]  # fmt: skip
            found.append(f"the {key}'s {', '.join(fields)}")
        else:
            found.append(f"the {key} changed")
    return found


UNSET = object()  # a field one fingerprint lacks (not the same as a field set to None)


def _brief(value: object, width: int = 30) -> str:
    """``repr(value)``, cut to ``width`` characters; a missing field as "(unset)"."""
    text = "(unset)" if value is UNSET else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """``torch.save(state)`` atomically: a crash mid-save never leaves a half-written checkpoint."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def check_own_checkpoint(path: str | Path, made_by: str, flag: str) -> None:
    """A ValueError unless ``path`` is missing or a checkpoint whose fingerprint says ``made_by``
    wrote it: anything else there (a file of yours, one that cannot be read) would be written over by
    the first epoch, and deleted with the run's checkpoints once its report is written."""
    path = Path(path)
    if not path.exists():
        return
    try:
        # mmap: the weights stay on disk, only the fingerprint is read (2 ms for a 285 MB file here);
        # torch 2.2 maps only a file named by a str; weights_only: see load_checkpoint
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        owner = state["fingerprint"].get("made_by")
    except Exception as err:  # not a checkpoint, or not one of ours
        if not_the_files_fault(err):
            err.add_note(f"(while reading the checkpoint {path}: it is kept, not trained over)")
            raise
        owner = None
    if owner != made_by:
        raise ValueError(f"{flag} {path} exists and is not a checkpoint of {made_by}: training would "
                         f"write over it; move it, or give another {flag}")  # fmt: skip


def report_checkpoint(
    given: Path | None, report: Path, inputs: dict[str, str | Path | None], made_by: str
) -> Path:
    """Where a command writing ``report`` keeps its finished epochs until the report is written:
    ``given`` (its --checkpoint), or beside the report (``run.json`` -> ``run-checkpoint.pt``). A
    ValueError unless the report is none of ``inputs`` (flag -> path) and the checkpoint a ``.pt`` file
    of its own: not an input, not the report, not named like a saved model's file, and, if it exists,
    a checkpoint ``made_by`` wrote."""
    check_not_an_input(report, inputs)
    path = given or report.with_name(report.stem + "-checkpoint.pt")
    check_not_an_input(path, {**inputs, "--json": report}, "--checkpoint")
    if path.suffix != ".pt" or path.name in RUN_FILES:
        raise ValueError(f"--checkpoint {path}: give a file of its own ending in .pt (not "
                         "model.pt or checkpoint.pt, a saved model's or run's)")  # fmt: skip
    check_writable(path, create=False)
    check_own_checkpoint(path, made_by, "--checkpoint")  # it is written over, then deleted
    return path


def load_checkpoint(path: str | Path, current: dict) -> tuple[dict | None, str]:
    """The checkpoint at ``path`` (on the CPU) if it exists and its fingerprint equals ``current``, with
    a reason either way: (state, "resuming ...") or (None, "... training again"). A file that cannot
    be read now (permissions, a disk or network error) or memory that runs out raises: training
    again would write over a checkpoint that may be good."""
    path = Path(path)
    if not path.exists():
        return None, f"no checkpoint at {path}: training from the start"
    try:
        # weights_only: a checkpoint holds tensors, numbers, strings and containers of them, and a file
        # from elsewhere (a shared run folder, a copied cache) must not run code when it is loaded
        state = torch.load(path, map_location="cpu", weights_only=True)
    # not a checkpoint, or a damaged one: unpickling a flipped byte raises almost anything
    except Exception as err:
        if not_the_files_fault(err):
            err.add_note(f"(while reading the checkpoint {path}: it is kept, not trained over)")
            raise
        if isinstance(err, pickle.UnpicklingError):  # not torch's advice to load it unsafely
            return None, (f"{path} could not be read: it is damaged or holds objects other than "
                          "tensors, numbers and strings (only those are loaded, so a file from "
                          "elsewhere cannot run code); training again")  # fmt: skip
        return None, f"{path} could not be read ({type(err).__name__}: {err}); training again"
    saved = state.get("fingerprint") if isinstance(state, dict) else None
    if not isinstance(saved, dict) or "epoch" not in state:
        return None, f"{path} has no fingerprint (an older format); training again"
    if saved.get("format") != current.get("format"):  # 1: before the format was written down
        return None, (f"{path.name} was written by another version of helpers (checkpoint format "
                      f"{saved.get('format', 1)}, now {current.get('format')}): training again")  # fmt: skip
    changed = differences(saved, current)
    if changed:
        return None, f"{path.name} was trained differently ({'; '.join(changed)}): training again"
    return state, f"resuming from {path.name} after epoch {state['epoch']}"
