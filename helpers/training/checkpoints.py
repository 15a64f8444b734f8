"""Checkpoints that know what they trained.

A checkpoint stores, beside the weights, a fingerprint of what produced them: the training config,
the model's config, the data, the parameter shapes, and the source code of every class in the model
(a student's ``MySelfAttention`` included, also when it was written in a notebook cell) and of the
functions its methods call by name (``attend``, a helper from another cell). Resuming compares
fingerprints first: a checkpoint made by other code, config or data is never reused; the run says
what changed and trains again.
"""

import hashlib
import inspect
import pickle
from pathlib import Path

import torch
import torch.nn as nn

from helpers.files import RUN_FILES, atomic_write, check_not_an_input, check_writable


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


def _code_bytes(code) -> bytes:
    """A code object's bytecode and constants, nested code (lambdas, comprehensions) included, without
    the memory addresses that ``repr`` would put in."""
    consts = (_code_bytes(c) if inspect.iscode(c) else repr(c).encode() for c in code.co_consts)
    return code.co_code + b"|" + b"|".join(consts)


def _function_source(fn) -> bytes:
    try:
        return inspect.getsource(fn).encode()
    except (OSError, TypeError):  # no source (e.g. made by exec): the compiled code instead
        return _code_bytes(fn.__code__)


def _names(code) -> set[str]:
    """The global names ``code`` (and the code nested in it) looks up."""
    nested = (_names(c) for c in code.co_consts if inspect.iscode(c))
    return set(code.co_names).union(*nested)


def _called_functions(functions: list, home: str) -> list:
    """The plain functions of ``home``'s module or of the course (``helpers``, a notebook's
    ``__main__``) that ``functions`` reach through their global names, and those they reach in turn
    (each once, also where two share a name: a wrapper around a function it replaced)."""
    found, seen = [], {id(inspect.unwrap(fn)) for fn in functions}
    todo = [inspect.unwrap(fn) for fn in functions]  # a decorated method: its own body
    while todo:
        fn = todo.pop()
        for name in sorted(_names(fn.__code__)):
            target = fn.__globals__.get(name)
            if not inspect.isfunction(target) or id(target) in seen:
                continue
            module = target.__module__ or ""
            if module == home or module == "__main__" or module.split(".")[0] == "helpers":
                seen.add(id(target))
                found.append(target)
                todo.append(target)
    return found


def class_source(cls: type) -> bytes:
    """What defines ``cls``: the source of each of its methods (found through their code, so it is
    exact also for a class re-defined in a notebook cell), else their bytecode, its plain class
    attributes, and the source of the module-level functions its methods call (``attend``, a helper
    written in another cell)."""
    parts: list[str | bytes] = []
    methods = []
    for name, member in sorted(vars(cls).items(), key=lambda item: item[0]):
        if inspect.isfunction(member):
            parts.append(_function_source(member))
            methods.append(member)
        elif isinstance(member, int | float | str | bool | tuple) and not name.startswith("__"):
            parts.append(f"{name} = {member!r}")
    called = [(f"{fn.__module__}.{fn.__qualname__}", _function_source(fn))
              for fn in _called_functions(methods, cls.__module__)]  # fmt: skip
    parts += [source for _, source in sorted(called)]
    return b"\n".join(p.encode() if isinstance(p, str) else p for p in parts)


def code_fingerprint(model: nn.Module) -> dict[str, str]:
    """A digest of the source of every class in ``model`` that is not PyTorch's own, by class name."""
    classes: dict[str, type] = {}
    for module in model.modules():
        for cls in type(module).__mro__:
            if cls.__module__.startswith("torch") or cls is object:
                continue
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return {name: _digest(class_source(cls)) for name, cls in sorted(classes.items())}


def fingerprint(model: nn.Module, /, **parts: object) -> dict:
    """What a checkpoint must match to be reused: the model's code and parameter shapes, plus ``parts``
    (the training config, the model config, a digest of the data, ...)."""
    shapes = {name: list(p.shape) for name, p in model.state_dict().items()}
    return {"code": code_fingerprint(model), "shapes": _digest(repr(shapes)), **parts}


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
        else:
            found.append(f"the {key} changed")
    return found


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
    except Exception:  # not a checkpoint, or not one of ours
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


def load_checkpoint(
    path: str | Path, current: dict, device: torch.device
) -> tuple[dict | None, str]:
    """The checkpoint at ``path`` if it exists and its fingerprint equals ``current``, with a reason
    either way: (state, "resuming ...") or (None, "... training again")."""
    path = Path(path)
    if not path.exists():
        return None, f"no checkpoint at {path}: training from the start"
    try:
        # weights_only: a checkpoint holds tensors, numbers, strings and containers of them, and a file
        # from elsewhere (a shared run folder, a copied cache) must not run code when it is loaded
        state = torch.load(path, map_location=device, weights_only=True)
    # not a checkpoint, or a damaged one: unpickling a flipped byte raises almost anything
    except Exception as err:
        if isinstance(err, pickle.UnpicklingError):  # not torch's advice to load it unsafely
            return None, (f"{path} could not be read: it is damaged or holds objects other than "
                          "tensors, numbers and strings (only those are loaded, so a file from "
                          "elsewhere cannot run code); training again")  # fmt: skip
        return None, f"{path} could not be read ({type(err).__name__}: {err}); training again"
    saved = state.get("fingerprint") if isinstance(state, dict) else None
    if not isinstance(saved, dict) or "epoch" not in state:
        return None, f"{path} has no fingerprint (an older format); training again"
    changed = differences(saved, current)
    if changed:
        return None, f"{path.name} was trained differently ({'; '.join(changed)}): training again"
    return state, f"resuming from {path.name} after epoch {state['epoch']}"
