"""Notebook 09 on a Slurm cluster: sbatch scripts for one job and for a job array over a grid of runs
(learning rates × epochs for one model, or one setting for several models), and a collector that
reads the JSON every run wrote.

    plan = make_plan(folder, models=["minilm"], lrs=[1e-5, 3e-5], epochs=[2, 3], files=...)
    write_jobs(plan)            # folder/plan.json, folder/job.sh, folder/array.sh
    # on the cluster: sbatch folder/array.sh; squeue --me; then, when it is done:
    rows, missing = collect(folder)  # a row per finished run (its settings, dev, test); a line per other

Every run is ``python -m helpers.finetune`` with the plan's arguments; it writes
``folder/results/<index>.json``. The collector never chooses on test: ``best_on_dev`` picks on dev.
"""

import hashlib
import json
import math
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.files import write_json, write_text
from helpers.tables import check_columns, check_labels, label_index, read_rows

if TYPE_CHECKING:
    import pandas as pd

MAX_ARRAY = 1001  # Slurm's default MaxArraySize: sbatch refuses a longer array there

FLAGS = ("train_file", "eval_file", "test_file", "text_column", "label_column",
         "max_train_examples", "batch_size", "max_length", "seed")  # fmt: skip

HEADER = """#!/bin/bash
# {what}
# Written by `python -m helpers.scaling write`; submit with: sbatch {script}
#SBATCH --job-name={name}
#SBATCH --nodes=1
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
#SBATCH --open-mode=append
"""
# (append: a requeued task's log keeps its first attempt's lines; they were written over)

WORKDIR = """cd {workdir} 2>/dev/null || {{ printf 'error: cannot enter %s, where `python -m helpers.scaling write` ran: write the scripts from a folder the nodes see\\n' {workdir} >&2; exit 2; }}
"""

JOB = """#SBATCH --ntasks-per-node=1
#SBATCH --output={logs}/logs/%x-%j.out
set -euo pipefail
{cd}# The Python that wrote this script; on a cluster, `module load` / activate your environment instead.
# torchrun starts one process per GPU that Slurm gave the job (SLURM_GPUS_ON_NODE; 1 without GPUs),
# each with its share of the task's cores (torchrun alone would give each process 1 thread).
processes="${{SLURM_GPUS_ON_NODE:-1}}"
threads=$(( ${{SLURM_CPUS_PER_TASK:-1}} / (processes > 0 ? processes : 1) ))
export OMP_NUM_THREADS="${{OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}}"
{python} -m torch.distributed.run --standalone --nproc_per_node "$processes" \\
    -m helpers.finetune {args} --find-batch --json {folder}/results/job.json
"""

ARRAY = """#SBATCH --array=0-{last}%{parallel}
#SBATCH --output={logs}/logs/%x-%A_%a.out
set -euo pipefail
{cd}# Task $SLURM_ARRAY_TASK_ID of the array runs line $SLURM_ARRAY_TASK_ID of {folder}/plan.json; the key
# is the plan's when this script was written: a queued task refuses a plan rewritten since.
{python} -m helpers.scaling task {folder}/plan.json \\
    "${{SLURM_ARRAY_TASK_ID:?submit it with sbatch (a job array); one task here: python -m helpers.scaling task PLAN N}}" \\
    --plan-key {key}
"""


def _listed(name: str, values: list) -> list:
    if not values:
        raise ValueError(f"--{name} needs at least one value")
    return list(values)


def make_plan(folder: str | Path, *, models: list[str], lrs: list[float], epochs: list[int],
              files: dict[str, Any], gpus: int = 1, time: str = "01:00:00",
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
    # ASCII digits (\d takes any script's), minutes and seconds below 60
    if not re.fullmatch(r"([0-9]+-)?[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]", time):
        raise ValueError(f"--time {time!r} is not Slurm's HH:MM:SS or D-HH:MM:SS (e.g. 01:30:00)")
    if not re.search(r"[1-9]", time):  # Slurm reads a time of 0 as no limit at all
        raise ValueError(f"--time {time!r} is no time: Slurm reads 0 as no limit; give one such as "
                         "01:30:00")  # fmt: skip
    for name in ("max_train_examples", "batch_size", "max_length"):
        if files.get(name) is not None and files[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {files[name]}")
    if gpus < 0 or parallel < 1 or cpus < 1:
        raise ValueError(
            f"--gpus must be ≥ 0, --parallel and --cpus ≥ 1 (got {gpus}, {parallel}, {cpus})"
        )
    seed = files.get("seed")
    if seed is not None and not 0 <= seed < 2**63:  # python -m helpers.finetune's range
        raise ValueError(f"--seed must be between 0 and 2**63 - 1, got {seed}")
    _check_once(models, lrs, epochs)
    model_args = _check_models(models)
    _check_tables(files)
    common = []
    for name in FLAGS:
        value = files.get(name)
        if value is not None:  # files as absolute paths: a job runs wherever Slurm starts it
            value = Path(str(value)).resolve() if name.endswith("_file") else value
            common += [f"--{name.replace('_', '-')}", str(value)]
    runs = [{"model": m, "lr": lr, "epochs": e, "args": ["--model", model_args[m], "--lr", str(lr), "--epochs", str(e)]}
            for m in _listed("models", models) for lr in _listed("lrs", lrs) for e in _listed("epochs", epochs)]  # fmt: skip
    data = {name: _sha256(files[name]) for name in ("train_file", "eval_file", "test_file")
            if files.get(name)}  # fmt: skip
    return {"folder": str(Path(folder).resolve()), "common": common, "runs": runs, "gpus": gpus,
            "time": time, "partition": partition, "parallel": parallel, "cpus": cpus,
            "data_sha256": data}  # fmt: skip


def _check_once(models: list[str], lrs: list[float], epochs: list[int]) -> None:
    """Refuse a value listed twice: two runs of the same settings would write two results of one run
    (model names compared ignoring case: the hub does)."""
    for flag, values, key in (("--models", models, str.lower), ("--lrs", lrs, float),
                              ("--epochs", epochs, int)):  # fmt: skip
        seen: dict = {}
        for value in values:
            seen.setdefault(key(value), []).append(value)
        twice = [same for same in seen.values() if len(same) > 1]
        if twice:
            named = "; ".join(", ".join(map(str, same)) for same in twice)
            raise ValueError(
                f"{flag} lists the same value more than once ({named}); give each once"
            )


def _check_models(models: list[str]) -> dict[str, str]:
    """Each model's ``--model`` for its task. A model that looks like a local folder (absolute, starting
    with "." or "~", ...) must exist and hold config.json, as ``python -m helpers.finetune`` will
    require, and is given as an absolute path (a task runs from plan.json's folder or wherever it is
    started); hub ids (not looked up) and the course's own names stay as they are."""
    from helpers.pretrained import (  # imports torch: when a plan is made
        BUILT_IN,
        built_in,
        model_source,
    )

    args = {}
    for name in models:
        try:
            if built_in(name, tuple(BUILT_IN)):  # a folder named like one is refused too
                args[name] = name
                continue
            source = model_source(name)
        except (OSError, ValueError) as err:
            raise ValueError(f"--models {name}: {err}") from None
        args[name] = str(Path(source).resolve()) if Path(source).exists() else source
    return args


def _check_tables(files: dict[str, object]) -> None:
    """What ``python -m helpers.finetune`` reads first: each file's format, its text and label
    columns, and labels (at least two classes in train; no eval or test label that train lacks)."""
    task = [files.get("text_column") or "sentence", files.get("label_column") or "label"]
    hint = "Name them with --text-column and --label-column."
    labels = None
    for name in ("train_file", "eval_file", "test_file"):
        if not files.get(name):
            continue
        where = f"--{name.replace('_', '-')} {files[name]}"
        rows = read_rows(str(files[name]))
        check_columns(rows, task, where, hint)
        values = [row[task[1]] for row in rows]
        if labels is None:
            labels = label_index(values, where)
        else:
            check_labels(labels, values, where)


def _sha256(path: object) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flags(args: list[str]) -> dict[str, str]:
    """``["--lr", "0.001", ...]`` as ``{"--lr": "0.001", ...}``."""
    return dict(zip(args[::2], args[1::2]))


def _summary(plan: dict) -> str:
    runs = plan["runs"]
    listed = [
        ", ".join(map(str, dict.fromkeys(r[k] for r in runs))) for k in ("model", "lr", "epochs")
    ]
    return f"{len(runs)} run{'s' * (len(runs) != 1)}: models {listed[0]}; lrs {listed[1]}; epochs {listed[2]}"


def plan_key(plan: dict) -> str:
    """A digest of what the plan's tasks run (their flags, the data's contents), not of Slurm's time,
    partition or GPUs: array.sh passes it, so a task queued before the plan was rewritten refuses it."""
    what = {"runs": [r["args"] for r in plan["runs"]], "common": plan["common"],
            "data": plan.get("data_sha256")}  # fmt: skip
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def plan_difference(old: dict, new: dict) -> str | None:
    """What makes ``new`` another plan than ``old`` (its runs, their settings, the data files' contents),
    or None when its results would be the same runs' (Slurm's time, partition, GPUs may differ)."""
    said = []
    if [r["args"] for r in old["runs"]] != [r["args"] for r in new["runs"]]:
        said.append(f"its {_summary(old)}; the new plan's {_summary(new)}")
    before, after = _flags(old["common"]), _flags(new["common"])
    changed = [f"{flag} {before.get(flag, '(unset)')} → {after.get(flag, '(unset)')}"
               for flag in dict.fromkeys([*before, *after]) if before.get(flag) != after.get(flag)]  # fmt: skip
    if changed:
        said.append("settings " + ", ".join(changed))
    if not changed and "data_sha256" in old and "data_sha256" in new:
        edited = [f"--{k.replace('_', '-')}" for k in new["data_sha256"]
                  if old["data_sha256"].get(k) != new["data_sha256"][k]]  # fmt: skip
        if edited:
            said.append(f"the contents of {', '.join(edited)} changed since it was written")
    return "; ".join(said) or None


def results_in(folder: str | Path) -> list[Path]:
    """The reports in ``folder/results`` (finished runs, job.json): not hidden ones (part-written),
    nor a task's checkpoint (``N-checkpoint.pt``, kept there until its report is written)."""
    results = Path(folder) / "results"
    if not results.is_dir():
        return []
    return sorted(p for p in results.glob("*.json") if not p.name.startswith("."))


def folder_conflict(plan: dict) -> str | None:
    """Why the plan's folder cannot take this plan (it holds another plan that has results or logs, or
    results with no plan), or None: it is empty, holds this same plan (rewriting the scripts keeps its
    results) or a plan none of whose tasks has run yet (a plan can be corrected before sbatch)."""
    folder = Path(plan["folder"])
    results = results_in(folder)
    held = f" and {len(results)} result{'s' * (len(results) != 1)} in results/" if results else ""
    if (folder / "plan.json").exists():
        try:
            old = read_plan(folder / "plan.json")
        except ValueError as err:
            return f"{folder} holds a plan.json that is not a plan ({err}){held}"
        difference = plan_difference(old, plan)
        # a task of the old plan ran, or is running
        ran = results or any((folder / "logs").glob("*"))
        return f"{folder} holds another plan ({difference}){held}" if difference and ran else None
    if results:
        names = ", ".join(p.name for p in results[:5]) + (" ..." if len(results) > 5 else "")
        return f"{folder} holds results ({names}) but no plan.json to say which runs they are"
    return None


def _header(plan: dict, what: str, script: str, name: str, gpus: int) -> str:
    text = HEADER.format(what=what, script=script, name=name, cpus=plan["cpus"], time=plan["time"])
    if gpus:
        text += f"#SBATCH --gpus-per-node={gpus}\n"
    if plan["partition"]:
        text += f"#SBATCH --partition={plan['partition']}\n"
    return text


def _check_script_values(plan: dict) -> None:
    """Refuse what would break the scripts' #SBATCH lines: a line break there (in --out, or in
    --partition, which is written as it is) starts a shell line, which would run, and ends Slurm's
    reading of the options after it."""
    partition = plan["partition"]
    if partition and not re.fullmatch(r"[A-Za-z0-9_.,-]+", str(partition)):  # "": none, as before
        raise ValueError(f"--partition {partition!r} is not a Slurm partition name (letters, digits "
                         "and _ . , - ; several separated by commas)")  # fmt: skip
    folder = str(plan["folder"])
    if re.search(r"[\x00-\x1f\x7f]", folder):  # é, a non-breaking space, a ZWNJ are fine
        raise ValueError(f"--out {folder!r} holds a line break or another control character: in the "
                         "job scripts it would end an #SBATCH line and run the rest as a command; "
                         "give a folder without one")  # fmt: skip
    if "\\" in folder:  # sbatch's #SBATCH reader drops a backslash, quoted or not
        raise ValueError(f"--out {folder!r} holds a backslash, which sbatch drops from its #SBATCH "
                         "lines (the logs would go to a folder that does not exist); give a folder "
                         "without one")  # fmt: skip


def write_jobs(plan: dict) -> dict[str, Path]:
    """``plan.json``, ``job.sh`` (the first run, on all the node's GPUs) and ``array.sh`` (every run,
    one array task each) in the plan's folder; logs/ and results/ beside them. Raises ValueError when
    the folder holds another plan or results without a plan (``folder_conflict``); the same plan
    again only rewrites the scripts."""
    folder = Path(plan["folder"])
    conflict = folder_conflict(plan)
    if conflict:  # the old plan's results would be read as this plan's
        raise ValueError(f"{conflict}; give another --out or move it away")
    _check_script_values(plan)
    for sub in ("logs", "results"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # quoted for the shell lines and for #SBATCH's, which sbatch splits at spaces outside quotes
    values = {"folder": shlex.quote(str(folder)), "workdir": shlex.quote(str(Path.cwd())),
              "python": shlex.quote(sys.executable)}  # fmt: skip
    values["cd"] = WORKDIR.format(workdir=values["workdir"])
    # in --output Slurm reads %x, %j, %A ... as its own placeholders: %% is a plain %
    values["logs"] = values["folder"].replace("%", "%%")
    first = " ".join(map(shlex.quote, plan["runs"][0]["args"] + plan["common"]))
    where = "on all the GPUs of one node" if plan["gpus"] else "on one node's CPUs"
    job = _header(plan, f"One run, data-parallel {where}.", f"{values['folder']}/job.sh",
                  "attention-lab", plan["gpus"]) + JOB.format(args=first, **values)  # fmt: skip
    runs = f"{len(plan['runs'])} run{'s' if len(plan['runs']) > 1 else ''}"
    each = "one process, one GPU per task" if plan["gpus"] else "one process per task, on CPUs"
    array = _header(plan, f"{runs}, one array task each ({each}).", f"{values['folder']}/array.sh",
                    "attention-lab-grid", min(plan["gpus"], 1))  # fmt: skip
    array += ARRAY.format(last=len(plan["runs"]) - 1, parallel=plan["parallel"], key=plan_key(plan),
                          **values)  # fmt: skip
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

    def strings(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    # the types too: a hand-edited "args": "--model x" ran "- - m o d"
    def a_run(r: object) -> bool:
        return (isinstance(r, dict) and {"model", "lr", "epochs", "args"} <= set(r)
                and isinstance(r["model"], str) and _is_number(r["lr"]) and strings(r["args"])
                and isinstance(r["epochs"], int) and not isinstance(r["epochs"], bool))  # fmt: skip

    if (not isinstance(plan, dict) or not {"folder", "common", "runs"} <= set(plan)
            or not isinstance(plan["folder"], str) or not strings(plan["common"])
            or not isinstance(plan["runs"], list) or not plan["runs"]
            or not all(a_run(r) for r in plan["runs"])):  # fmt: skip
        raise ValueError(f"{path} is not a plan written by `python -m helpers.scaling write` (it needs "
                         "a folder, the common flags and a non-empty list of runs, each a model name, "
                         "a number lr, whole epochs and a list of flags); write it again")  # fmt: skip
    return plan


def task_command(plan: dict, index: int) -> list[str]:
    """Array task ``index``: its ``python -m helpers.finetune`` command line. Its test accuracy goes to
    its JSON unprinted (``--hide-test``): a grid shows test once, for the run dev chose."""
    if not 0 <= index < len(plan["runs"]):
        raise ValueError(
            f"task {index} is not in the plan: it has tasks 0 to {len(plan['runs']) - 1}"
        )
    result = Path(plan["folder"]) / "results" / f"{index}.json"
    return [sys.executable, "-m", "helpers.finetune", *plan["runs"][index]["args"], *plan["common"],
            "--find-batch", "--hide-test", "--json", str(result)]  # fmt: skip


def collect(folder: str | Path) -> tuple[list[dict], list[str]]:
    """One row per finished run (model, lr, epochs, dev and test accuracy, seconds, largest batch), and
    a line for each run without a usable result, naming its log: not written yet, not valid JSON (a
    job killed while writing), no dev accuracy (a failed run), or the result of another run than the
    plan's task (``settings`` that are not this task's: left out, never attributed to it)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give the folder that `python -m helpers.scaling "
                         "write --out` made (it holds plan.json)")  # fmt: skip
    plan = read_plan(folder / "plan.json")
    rows, missing = [], []
    for i in range(len(plan["runs"])):
        result = task_result(folder, plan, i)
        if isinstance(result, dict):
            rows.append(result)
        else:
            missing.append(result)
    return rows, missing


def task_result(folder: Path, plan: dict, i: int) -> dict | str:
    """Task ``i``'s row if ``folder/results`` holds a finished run of it, else a line saying why not."""
    run = plan["runs"][i]
    path = folder / "results" / f"{i}.json"
    name = f"results/{i}.json"
    epochs = f"{run['epochs']} epoch{'s' * (run['epochs'] != 1)}"
    task = f"task {i} ({run['model']}, lr {run['lr']}, {epochs})"
    log = f"see {folder / 'logs'}/*_{i}.out"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if (folder / "results" / f"{i}-checkpoint.pt").exists():  # it trained, then stopped
            return (f"{task}: stopped before finishing (its checkpoint is kept): resubmit it to "
                    f"resume, with a longer --time if it ran out; {log}")  # fmt: skip
        return f"{task}: no {path.name} yet; {log}"
    except UnicodeDecodeError:
        return f"{task}: {name} is not UTF-8 text: rerun task {i}; {log}"
    except json.JSONDecodeError as err:
        return (f"{task}: {name} is not valid JSON (line {err.lineno}, column {err.colno}: "
                f"{err.msg}): rerun task {i}; {log}")  # fmt: skip
    try:
        scores = {"dev": report["final_accuracy"], "test": report["test_accuracy"],
                  "seconds": report["seconds"]["train_and_eval"]}  # fmt: skip
    except (KeyError, TypeError):
        raise ValueError(f"{path} is not a report of `python -m helpers.finetune` (it needs "
                         "final_accuracy, test_accuracy and seconds); move it out of results/") from None  # fmt: skip
    other = _other_run(report.get("settings"), run["args"] + plan["common"])
    if other:
        return (f"{task}: {name} is not this task's result ({other}): a run of another plan; "
                f"move it out of results/ and rerun task {i}")  # fmt: skip
    dev = scores["dev"]
    if not _is_number(dev):
        return (f"{task}: {name} has no dev accuracy (final_accuracy is {json.dumps(dev)}): the "
                f"run failed or did not finish; rerun task {i}; {log}")  # fmt: skip
    for key, value in (
        ("test_accuracy", scores["test"]),
        ("seconds.train_and_eval", scores["seconds"]),
    ):
        if not (_is_number(value) or (value is None and key == "test_accuracy")):  # no --test-file
            # a hand-edited result: its value would reach collect's report as it is
            return (f"{task}: {name}'s {key} is {json.dumps(value)}, not a number: rerun task {i}; "
                    f"{log}")  # fmt: skip
    return {"task": i, "model": run["model"], "lr": run["lr"], "epochs": run["epochs"], **scores,
            "largest_batch": report.get("largest_batch")}  # fmt: skip


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _other_run(settings: object, args: list[str]) -> str | None:
    """How a report's ``settings`` (``python -m helpers.finetune`` writes its flags there) differ from
    the flags ``args`` of the run it should be, e.g. "--model tiny, not minilm"; None if they agree
    (or the report has no settings to compare)."""
    if not isinstance(settings, dict):
        return None
    differ = []
    for flag, wanted in _flags(args).items():
        key = flag[2:].replace("-", "_")
        if key not in settings:
            continue
        got = settings[key]
        same = str(got) == wanted
        if not same and key.endswith("_file") and isinstance(got, str):
            same = Path(got).resolve() == Path(wanted).resolve()  # a relative path, run from here
        if not same and _is_number(got):
            try:
                same = float(got) == float(wanted)
            except ValueError:
                pass
        if not same:
            differ.append(f"{flag} {got}, not {wanted}")
    return ", ".join(differ) or None


def best_on_dev(rows: list[dict]) -> dict:
    """The run with the best dev accuracy (its test accuracy is the one to report); rows without a
    dev accuracy (a run that failed) are never chosen."""
    scored = [r for r in rows if _is_number(r.get("dev"))]
    if not scored:
        raise ValueError("no finished runs to choose from")
    return max(scored, key=lambda r: r["dev"])


def grid_table(rows: list[dict]) -> "pd.DataFrame":
    """Dev accuracy as a table: one row per (model, lr), one column per epochs."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame.pivot_table(index=["model", "lr"], columns="epochs", values="dev").round(4)


def per_model(rows: list[dict]) -> list[dict]:
    """Each model's run that dev chose, in the plan's order: the bars of the comparison chart."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    return [best_on_dev([r for r in rows if r["model"] == m]) for m in models]
