"""The same training command in 1 and in N processes (notebook 09): the data-parallel run should reach
the same loss, and the notebook shows how long each took on this machine.

    rows = compare_processes("shakespeare.txt", folder, processes=(1, 2), iters=200, accumulate=2)
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.files import write_text
from helpers.scaling.slurm import folder_conflict, make_plan, results_in
from helpers.training import distributed


def launch_command(
    module_args: list[str], processes: int, log_dir: str | Path | None = None
) -> list[str]:
    """``python ARGS`` for one process; ``python -m torch.distributed.run ... ARGS`` (torchrun) for N,
    its logs in ``log_dir`` (without it torchrun makes a torchelastic_* folder in /tmp and leaves it)."""
    if processes == 1:
        return [sys.executable, *module_args]
    logs = ["--log_dir", str(log_dir)] if log_dir is not None else []
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            str(processes), *logs, *module_args]  # fmt: skip


def compare_processes(data: str | Path, folder: str | Path, processes: tuple[int, ...] = (1, 2), *,
                      iters: int = 200, accumulate: int = 2, dropout: float = 0.0, layers: int = 2,
                      embd: int = 64, block_size: int = 64, batch_size: int = 16, seed: int = 42) -> list[dict]:  # fmt: skip
    """``python -m helpers.gpt train`` on ``data`` in each process count, on the CPU, with the same seed
    and the same batches per optimizer step (``accumulate`` over all processes: N must divide it). One
    row per run: processes, dev loss per evaluation, steps, training and wall seconds (start-up too),
    and the run's device, config and model as its report gives them."""
    for n in processes:
        if n < 1:
            raise ValueError(f"a process count must be at least 1, not {n}")
        if accumulate % n:
            raise ValueError(f"{n} processes cannot share {accumulate} batches per step; use a process "
                             f"count that divides --accumulate")  # fmt: skip
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in distributed.VARIABLES}
    # CPU processes (gloo): a Colab GPU cannot hold two NCCL ranks, and gloo cannot reduce on Apple's mps
    env.update(
        CUDA_VISIBLE_DEVICES="", HELPERS_DEVICE="cpu", PYTHONIOENCODING="utf-8"
    )  # paths in any script
    if sys.platform == "win32":  # torch's Windows wheels have no libuv for torchrun's store
        env["USE_LIBUV"] = "0"
    rows = []
    for n in processes:
        args = ["-m", "helpers.gpt", "train", "--data", str(Path(data).resolve()), "--iters", str(iters),
                "--accumulate", str(accumulate), "--dropout", str(dropout), "--layers", str(layers),
                "--heads", "4", "--embd", str(embd), "--block-size", str(block_size), "--batch-size",
                str(batch_size), "--evals", "4", "--seed", str(seed), "--quiet"]  # fmt: skip
        # a folder per setting: the same settings again resume, other settings start their own run
        # (python -m helpers.gpt train refuses a folder that holds a run with other flags)
        key = hashlib.sha256(json.dumps(args).encode()).hexdigest()[:10]
        args += [
            "--save",
            str(folder / f"{n}-processes-{key}"),
            "--json",
            str(folder / f"{n}.json"),
        ]
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as logs:
            done = subprocess.run(launch_command(args, n, logs), env=env, capture_output=True,
                                  encoding="utf-8", errors="replace")  # fmt: skip
        if done.returncode != 0:
            err = done.stderr  # its start says why; torchrun's own traceback ends it
            err = err if len(err) < 3000 else err[:1500] + "\n…\n" + err[-1500:]
            raise RuntimeError(f"{n} processes failed (exit {done.returncode}):\n{err}")
        report = json.loads((folder / f"{n}.json").read_text(encoding="utf-8"))
        rows.append({"processes": n, "dev_loss": report["dev_loss"], "dev_losses": report["dev_losses"],
                     "steps": report["iters"], "batches_per_step": accumulate,
                     "train_seconds": report["train_seconds"],
                     "wall_seconds": time.perf_counter() - started, "device": report["device"],
                     "config": report["config"], "model": report["model"]})  # fmt: skip
    return rows


def course_plan(folder: str | Path, splits: dict[str, list[dict]], models: list[str], lrs: list[float],
                epochs: list[int], batch_size: int, seed: int, max_length: int = 64) -> dict:  # fmt: skip
    """Notebook 09's plan: ``splits`` written as train/dev/test .jsonl in ``folder``, and every model × lr ×
    epochs as one run (each model gets the same grid, so the comparison is fair), for ``folder/slurm``.

    A rerun with the same plan and data keeps ``folder/slurm`` and its results. When that folder holds
    another plan (other models, lrs, epochs, settings) or results of other data (another profile's
    sizes), it is moved aside whole to ``folder/slurm-replaced-<time>`` (with the old data files, if
    they changed), and a line says so: a notebook cannot be asked, and the old results stay readable
    (``slurm.collect`` on that folder) instead of being attributed to the new plan's runs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {name: "".join(json.dumps(r) + "\n" for r in rows) for name, rows in splits.items()}
    changed = [name for name, text in texts.items() if _text_of(folder / f"{name}.jsonl") != text]
    files = {"train_file": folder / "train.jsonl", "eval_file": folder / "dev.jsonl",
             "test_file": folder / "test.jsonl", "batch_size": batch_size, "max_length": max_length, "seed": seed}  # fmt: skip
    grid = folder / "slurm"

    def plan() -> dict:
        return make_plan(grid, models=models, lrs=lrs, epochs=epochs, files=files)

    held = (grid / "plan.json").exists() or bool(results_in(grid))
    if held:
        # "<grid> holds another plan (...) and N results in results/"
        conflict = folder_conflict(plan())
        why = (f"the {', '.join(f'{n}.jsonl' for n in changed)} data changed" if changed
               else conflict and conflict.removeprefix(f"{grid} holds ").split(" and ")[0])  # fmt: skip
        if why:
            _move_aside(folder, grid, changed, why)
    for name in changed:
        write_text(folder / f"{name}.jsonl", texts[name])
    return plan()


def _text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _move_aside(folder: Path, grid: Path, changed: list[str], why: str) -> Path:
    """Move ``grid`` (and the data files about to be replaced) to a new ``slurm-replaced-*`` folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder / f"slurm-replaced-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = folder / f"slurm-replaced-{stamp}-{n}"
    count = len(results_in(grid))
    grid.rename(aside)
    for name in changed:
        old = folder / f"{name}.jsonl"
        if old.exists():
            old.rename(aside / old.name)
    print(f"moved {grid} aside to {aside} ({why}), so its {count} result{'s' * (count != 1)} "
          "cannot be read as this plan's; this plan starts with none")  # fmt: skip
    return aside
