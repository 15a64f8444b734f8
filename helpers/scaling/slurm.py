"""Notebook 09 on a Slurm cluster: sbatch scripts for one job and for a job array over a grid of runs
(learning rates × epochs for one model, or one setting for several models), and a collector that
reads the JSON every run wrote.

    plan = make_plan(folder, models=["minilm"], lrs=[1e-5, 3e-5], epochs=[2, 3], files=...)
    write_jobs(plan)            # folder/plan.json, folder/job.sh, folder/array.sh
    # on the cluster: sbatch folder/array.sh; squeue --me; then, when it is done:
    rows = collect(folder)      # one row per run: its settings, dev and test accuracy

Every run is ``python -m helpers.finetune`` with the plan's arguments; it writes
``folder/results/<index>.json``. The collector never chooses on test: ``best_on_dev`` picks on dev.
"""

import json
import math
import re
import shlex
import sys
from pathlib import Path

from helpers.files import write_json, write_text

FLAGS = ("train_file", "eval_file", "test_file", "text_column", "label_column",
         "max_train_examples", "batch_size", "max_length", "seed")  # fmt: skip

HEADER = """#!/bin/bash
# {what}
# Written by `python -m helpers.scaling write`; submit with: sbatch {script}
#SBATCH --job-name={name}
#SBATCH --nodes=1
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
"""

JOB = """#SBATCH --ntasks-per-node=1
#SBATCH --output={folder}/logs/%x-%j.out
set -euo pipefail
cd {workdir}
# The Python that wrote this script; on a cluster, `module load` / activate your environment instead.
# torchrun starts one process per GPU that Slurm gave the job (SLURM_GPUS_ON_NODE; 1 without GPUs).
{python} -m torch.distributed.run --standalone --nproc_per_node "${{SLURM_GPUS_ON_NODE:-1}}" \\
    -m helpers.finetune {args} --find-batch --json {folder}/results/job.json
"""

ARRAY = """#SBATCH --array=0-{last}%{parallel}
#SBATCH --output={folder}/logs/%x-%A_%a.out
set -euo pipefail
cd {workdir}
# Task $SLURM_ARRAY_TASK_ID of the array runs line $SLURM_ARRAY_TASK_ID of {folder}/plan.json.
{python} -m helpers.scaling task {folder}/plan.json "$SLURM_ARRAY_TASK_ID"
"""


def _listed(name: str, values: list) -> list:
    if not values:
        raise ValueError(f"--{name} needs at least one value")
    return list(values)


def make_plan(folder: str | Path, *, models: list[str], lrs: list[float], epochs: list[int],
              files: dict[str, object], gpus: int = 1, time: str = "01:00:00",
              partition: str | None = None, parallel: int = 4, cpus: int = 4) -> dict:  # fmt: skip
    """Every (model, lr, epochs) combination as one run of ``python -m helpers.finetune``; ``files``
    holds its other flags (train_file, eval_file, test_file, batch_size, ...)."""
    unknown = sorted(set(files) - set(FLAGS))
    if unknown:
        raise ValueError(f"unknown run settings {unknown}; known: {', '.join(FLAGS)}")
    for name in ("train_file", "eval_file"):
        if not files.get(name):
            raise ValueError(f"--{name.replace('_', '-')} is required: every run needs it")
    for name in ("train_file", "eval_file", "test_file"):
        if files.get(name) and not Path(str(files[name])).is_file():
            raise ValueError(f"--{name.replace('_', '-')} {files[name]} is not a file")
    if not all(math.isfinite(lr) and lr > 0 for lr in lrs) or any(e < 1 for e in epochs):
        raise ValueError(
            f"learning rates must be finite and > 0 and epochs ≥ 1, not {lrs} and {epochs}"
        )
    if not re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", time):
        raise ValueError(f"--time {time!r} is not Slurm's HH:MM:SS or D-HH:MM:SS (e.g. 01:30:00)")
    for name in ("max_train_examples", "batch_size", "max_length"):
        if files.get(name) is not None and files[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {files[name]}")
    if gpus < 0 or parallel < 1 or cpus < 1:
        raise ValueError(
            f"--gpus must be ≥ 0, --parallel and --cpus ≥ 1 (got {gpus}, {parallel}, {cpus})"
        )
    common = []
    for name in FLAGS:
        value = files.get(name)
        if value is not None:  # files as absolute paths: a job runs wherever Slurm starts it
            value = Path(str(value)).resolve() if name.endswith("_file") else value
            common += [f"--{name.replace('_', '-')}", str(value)]
    runs = [{"model": m, "lr": lr, "epochs": e, "args": ["--model", m, "--lr", str(lr), "--epochs", str(e)]}
            for m in _listed("models", models) for lr in _listed("lrs", lrs) for e in _listed("epochs", epochs)]  # fmt: skip
    return {"folder": str(Path(folder).resolve()), "common": common, "runs": runs, "gpus": gpus,
            "time": time, "partition": partition, "parallel": parallel, "cpus": cpus}  # fmt: skip


def _header(plan: dict, what: str, script: str, name: str, gpus: int) -> str:
    text = HEADER.format(what=what, script=script, name=name, cpus=plan["cpus"], time=plan["time"])
    if gpus:
        text += f"#SBATCH --gpus-per-node={gpus}\n"
    if plan["partition"]:
        text += f"#SBATCH --partition={plan['partition']}\n"
    return text


def write_jobs(plan: dict) -> dict[str, Path]:
    """``plan.json``, ``job.sh`` (the first run, on all the node's GPUs) and ``array.sh`` (every run,
    one array task each) in the plan's folder; logs/ and results/ beside them."""
    folder = Path(plan["folder"])
    for sub in ("logs", "results"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    values = {"folder": shlex.quote(str(folder)), "workdir": shlex.quote(str(Path.cwd())),
              "python": shlex.quote(sys.executable)}  # fmt: skip
    first = " ".join(map(shlex.quote, plan["runs"][0]["args"] + plan["common"]))
    job = _header(plan, "One run, data-parallel on all the GPUs of one node.", "job.sh",
                  "attention-lab", plan["gpus"]) + JOB.format(args=first, **values)  # fmt: skip
    runs = f"{len(plan['runs'])} run{'s' if len(plan['runs']) > 1 else ''}"
    array = _header(plan, f"{runs}, one array task each (one process, one GPU per task).", "array.sh",
                    "attention-lab-grid", min(plan["gpus"], 1))  # fmt: skip
    array += ARRAY.format(last=len(plan["runs"]) - 1, parallel=plan["parallel"], **values)
    return {
        "plan": write_json(folder / "plan.json", plan),
        "job": write_text(folder / "job.sh", job),
        "array": write_text(folder / "array.sh", array),
    }


def read_plan(path: str | Path) -> dict:
    path = Path(path)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{path} does not exist: write it with `python -m helpers.scaling write`"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text, so not a plan") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not JSON (line {err.lineno}, column {err.colno}): {err.msg}"
        ) from None
    run_keys = {"model", "lr", "epochs", "args"}
    if (not isinstance(plan, dict) or not {"folder", "common", "runs"} <= set(plan)
            or not isinstance(plan["runs"], list) or not plan["runs"]
            or not all(isinstance(r, dict) and run_keys <= set(r) for r in plan["runs"])):  # fmt: skip
        raise ValueError(f"{path} is not a plan written by `python -m helpers.scaling write` (it needs "
                         "folder, common and a non-empty list of runs with model, lr, epochs, args)")  # fmt: skip
    return plan


def task_command(plan: dict, index: int) -> list[str]:
    """Array task ``index``: its ``python -m helpers.finetune`` command line."""
    if not 0 <= index < len(plan["runs"]):
        raise ValueError(
            f"task {index} is not in the plan: it has tasks 0 to {len(plan['runs']) - 1}"
        )
    result = Path(plan["folder"]) / "results" / f"{index}.json"
    return [sys.executable, "-m", "helpers.finetune", *plan["runs"][index]["args"], *plan["common"],
            "--find-batch", "--json", str(result)]  # fmt: skip


def collect(folder: str | Path) -> tuple[list[dict], list[str]]:
    """One row per finished run (model, lr, epochs, dev and test accuracy, seconds, largest batch), and
    a line for each run with no result yet, naming its log."""
    folder = Path(folder)
    plan = read_plan(folder / "plan.json")
    rows, missing = [], []
    for i, run in enumerate(plan["runs"]):
        path = folder / "results" / f"{i}.json"
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
            missing.append(f"task {i} ({run['model']}, lr {run['lr']}, {run['epochs']} epochs): no "
                           f"{path.name} yet; see {folder / 'logs'}/*_{i}.out")  # fmt: skip
            continue
        try:
            scores = {"dev": report["final_accuracy"], "test": report["test_accuracy"],
                      "seconds": report["seconds"]["train_and_eval"]}  # fmt: skip
        except (KeyError, TypeError):
            raise ValueError(f"{path} is not a report of `python -m helpers.finetune` (it needs "
                             "final_accuracy, test_accuracy and seconds); move it out of results/") from None  # fmt: skip
        rows.append({"task": i, "model": run["model"], "lr": run["lr"], "epochs": run["epochs"], **scores,
                     "largest_batch": report.get("largest_batch")})  # fmt: skip
    return rows, missing


def best_on_dev(rows: list[dict]) -> dict:
    """The run with the best dev accuracy (its test accuracy is the one to report)."""
    if not rows:
        raise ValueError("no finished runs to choose from")
    return max(rows, key=lambda r: r["dev"])


def grid_table(rows: list[dict]):
    """Dev accuracy as a table: one row per (model, lr), one column per epochs."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame.pivot_table(index=["model", "lr"], columns="epochs", values="dev").round(4)


def per_model(rows: list[dict]) -> list[dict]:
    """Each model's run that dev chose, in the plan's order: the bars of the comparison chart."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    return [best_on_dev([r for r in rows if r["model"] == m]) for m in models]
