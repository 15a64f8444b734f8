"""Notebook 09's Slurm scripts and collector without a cluster: what the scripts say, what each array
task runs, the collector's table and choice, and the command line's messages for bad input."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.scaling.cli import main
from helpers.scaling.runs import course_plan
from helpers.scaling.slurm import (
    best_on_dev,
    collect,
    grid_table,
    make_plan,
    per_model,
    plan_key,
    task_command,
    write_jobs,
)


@pytest.fixture
def files(tmp_path):
    for name in ("train", "dev"):
        (tmp_path / f"{name}.jsonl").write_text(
            '{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 0}\n'
        )
    return {
        "train_file": tmp_path / "train.jsonl",
        "eval_file": tmp_path / "dev.jsonl",
        "batch_size": 8,
    }


def test_plan_is_every_model_lr_and_epochs_and_the_scripts_run_it(tmp_path, files):
    plan = make_plan(tmp_path / "runs", models=["minilm", "t5-small"], lrs=[2e-5, 5e-5], epochs=[2, 3],
                     files=files, gpus=2, partition="gpu")  # fmt: skip
    assert len(plan["runs"]) == 8 and plan["runs"][-1]["model"] == "t5-small"
    paths = write_jobs(plan)
    array, job = paths["array"].read_text(), paths["job"].read_text()
    assert "#SBATCH --array=0-7%4" in array and "#SBATCH --gpus-per-node=2" in job
    assert "#SBATCH --partition=gpu" in array and '"${SLURM_ARRAY_TASK_ID:?submit it' in array
    assert 'processes="${SLURM_GPUS_ON_NODE:-1}"' in job and '--nproc_per_node "$processes"' in job
    assert "--find-batch" in job and "#SBATCH --open-mode=append" in job + array  # a requeue's log
    for script in (paths["array"], paths["job"]):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # valid bash
    command = task_command(plan, 7)
    assert command[1:6] == ["-m", "helpers.finetune", "--model", "t5-small", "--lr"]
    assert command[-1].endswith("results/7.json") and str(files["train_file"]) in command
    assert (
        "--hide-test" in command
    )  # its test accuracy to its JSON only: collect shows the chosen's
    with pytest.raises(ValueError, match="task 8 is not in the plan: it has tasks 0 to 7"):
        task_command(plan, 8)


def test_a_relative_model_folder_is_written_as_an_absolute_path(tmp_path, monkeypatch, files):
    """--models ./p ü stayed relative in plan.json: `scaling task` started elsewhere failed with
    "the model folder p ü does not exist"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p ü").mkdir()
    (tmp_path / "p ü" / "config.json").write_text("{}", encoding="utf-8")
    plan = make_plan(
        tmp_path / "runs", models=["./p ü", "minilm"], lrs=[1e-5], epochs=[1], files=files
    )
    assert plan["runs"][0]["model"] == "./p ü"  # the name the table shows
    assert plan["runs"][0]["args"][:2] == ["--model", str(tmp_path / "p ü")]
    assert plan["runs"][1]["args"][:2] == ["--model", "minilm"]


def test_write_refuses_a_built_in_name_shadowed_by_a_folder(tmp_path, monkeypatch, files):
    """--models tiny with a ./tiny folder was written into plan.json; every task then failed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    with pytest.raises(ValueError, match="--models tiny: 'tiny' names the course's"):
        make_plan(tmp_path / "runs", models=["tiny"], lrs=[1e-5], epochs=[1], files=files)


def test_a_percent_in_the_folder_is_a_plain_percent_in_slurms_output_path(tmp_path, files):
    """Slurm reads %x, %j, %A ... in --output as placeholders; the folder's own % is written %%."""
    paths = write_jobs(
        make_plan(tmp_path / "r 100%x", models=["tiny"], lrs=[1e-5], epochs=[1], files=files)
    )
    folder = str(tmp_path / "r 100%%x")
    assert f"#SBATCH --output='{folder}'/logs/%x-%A_%a.out" in paths["array"].read_text()
    assert f"#SBATCH --output='{folder}'/logs/%x-%j.out" in paths["job"].read_text()
    assert (
        f"cd {shlex.quote(str(Path.cwd()))}" in paths["job"].read_text()
    )  # shell lines: as they are
    assert f"{shlex.quote(str(tmp_path / 'r 100%x'))}/plan.json" in paths["array"].read_text()


def test_collector_chooses_on_dev_and_names_the_missing_runs(tmp_path, files):
    plan = make_plan(tmp_path, models=["a", "b"], lrs=[1e-5, 1e-4], epochs=[2], files=files)
    write_jobs(plan)
    scores = {0: (0.80, 0.70), 1: (0.85, 0.60), 2: (0.90, 0.88)}  # task 3 has not finished
    for task, (dev, test) in scores.items():
        report = {"final_accuracy": dev, "test_accuracy": test, "seconds": {"train_and_eval": 5.0}}
        (tmp_path / "results" / f"{task}.json").write_text(json.dumps(report))
    rows, missing = collect(tmp_path)
    assert (
        [r["task"] for r in rows] == [0, 1, 2]
        and len(missing) == 1
        and "task 3 (b, lr 0.0001" in missing[0]
    )
    assert best_on_dev(rows)["task"] == 2  # the best dev, not the best test (task 2 has both here)
    assert [r["task"] for r in per_model(rows)] == [
        1,
        2,
    ]  # model a: dev chose lr 1e-4 (test 0.60 < 0.70)
    assert grid_table(rows).loc[("a", 1e-5), 2] == 0.8


@pytest.mark.parametrize("argv, said", [
    (["write", "--out", "o", "--models", "m", "--train-file", "nope.jsonl", "--eval-file", "dev.jsonl"],
     "--train-file nope.jsonl is not a file"),
    (["write", "--out", "o", "--models", "m", "--lrs", "1e-5,fast", "--train-file", "train.jsonl",
      "--eval-file", "dev.jsonl"], "'1e-5,fast' is not a comma-separated list of floats"),
    (["write", "--out", "o", "--models", "m", "--epochs", "0", "--train-file", "train.jsonl",
      "--eval-file", "dev.jsonl"], "epochs ≥ 1"),
    (["task", "missing/plan.json", "0"], "missing/plan.json does not exist"),
    (["collect", "."], "plan.json does not exist"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, files, argv, said):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors (a list that is not numbers)
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert said in err, err


def test_a_plan_that_is_not_json_names_line_and_column(tmp_path, capsys):
    (tmp_path / "plan.json").write_text('{"runs": [\n  oops]}')
    assert main(["task", str(tmp_path / "plan.json"), "0"]) == 2
    assert "is not JSON (line 2, column 3)" in capsys.readouterr().err


def test_sharding_explorer_redraws_for_every_slider():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.widgets.scaling import sharding_explorer

    explorer = sharding_explorer(batches=24, processes=2, accumulate=2)
    assert explorer.state == {"batches": 24, "processes": 2, "accumulate": 2}
    explorer.controls["processes"].value = 3
    explorer.controls["accumulate"].value = 4
    explorer.controls["batches"].value = 25
    assert explorer.state == {"batches": 25, "processes": 3, "accumulate": 4}
    explorer.controls["batches"].value = 4
    explorer.controls["processes"].value = 8
    assert explorer.state["processes"] == 4  # never more processes than batches


def test_sharding_plot_numbers_steps_and_dropped_batches():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.plots.scaling import plot_sharding

    ax = plot_sharding(25, 3, 2).axes[0]
    assert (
        "6 batches per step, 4 steps" in ax.get_title()
    )  # 8 batches per rank: steps of 2, 2, 2, 2
    assert "1 batch dropped" in ax.get_xlabel()
    assert [t.get_text() for t in ax.texts][:3] == ["0", "3", "6"]  # rank 0 takes every 3rd batch
    one = plot_sharding(2, 1, 2).axes[0]  # counts of one read in the singular
    assert (
        one.get_title() == "2 batches, 1 process × 2 accumulated each: 2 batches per step, 1 step"
    )
    assert "0 batches dropped" in one.get_xlabel()


def test_sharding_plot_tells_steps_apart_without_colour():
    """The palette's seven colours come round again: 64 batches, one process, a step each drew
    steps 0 and 7 alike, and colour alone says nothing to a colour-blind student or in print."""
    import matplotlib

    matplotlib.use("Agg")
    from helpers.plots.scaling import plot_sharding

    for batches, processes, accumulate in ((64, 1, 1), (25, 3, 2), (24, 2, 5)):
        ax = plot_sharding(batches, processes, accumulate).axes[0]
        steps = -(-(batches // processes) // accumulate)
        edges = sorted(line.get_xdata()[0] for line in ax.lines)
        assert edges == [k * accumulate - 0.5 for k in range(1, steps)]
        assert "a line per optimizer step" in ax.get_xlabel()


@pytest.mark.parametrize("extra, said", [
    (["--lrs", "nan"], "finite"), (["--time", "banana"], "is not Slurm's HH:MM:SS"),
    (["--time", "0:60:00"], "is not Slurm's HH:MM:SS"), (["--time", "01:00:99"], "is not Slurm's HH:MM:SS"),
    (["--time", "٠١:٠٠:٠٠"], "is not Slurm's HH:MM:SS"),  # Python's \d matched Arabic-Indic digits
    (["--batch-size", "-3"], "--batch-size must be at least 1"), (["--gpus", "-1"], "--gpus must be ≥ 0"),
])  # fmt: skip
def test_write_refuses_settings_that_would_only_fail_on_the_cluster(
    tmp_path, monkeypatch, capsys, files, extra, said
):
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "write",
            "--out",
            "o",
            "--models",
            "m",
            "--train-file",
            "train.jsonl",
            "--eval-file",
            "dev.jsonl",
            *extra,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and said in err and err.count("\n") == 1, err


@pytest.mark.parametrize("plan", [
    {"runs": [], "common": []}, {"folder": "x", "common": [], "runs": ["a"]},
    {"folder": "x", "common": [], "runs": []}, ["not", "a", "plan"],
    # hand-edited types: a TypeError traceback, a command of single characters, a split grid
    {"folder": 5, "common": [], "runs": [{"model": "a", "lr": 1e-4, "epochs": 1, "args": []}]},
    {"folder": "x", "common": [], "runs": [{"model": "a", "lr": 1e-4, "epochs": 1, "args": "--m a"}]},
    {"folder": "x", "common": [], "runs": [{"model": "a", "lr": 1e-4, "epochs": "1", "args": []}]},
    {"folder": "x", "common": [], "runs": [{"model": "a", "lr": "1e-4", "epochs": 1, "args": []}]},
    {"folder": "x", "common": "--seed 1", "runs": [{"model": "a", "lr": 1e-4, "epochs": 1, "args": []}]},
])  # fmt: skip
def test_a_plan_from_something_else_is_named(tmp_path, capsys, plan):
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(["task", str(tmp_path / "plan.json"), "0"]) == 2
    assert "is not a plan written by `python -m helpers.scaling write`" in capsys.readouterr().err
    assert main(["collect", str(tmp_path)]) == 2


@pytest.mark.parametrize("report", [{"accuracy": 1}, [1, 2]])
def test_collect_names_a_result_that_is_not_a_finetune_report(tmp_path, capsys, files, report):
    write_jobs(make_plan(tmp_path, models=["a"], lrs=[1e-5], epochs=[1], files=files))
    (tmp_path / "results" / "0.json").write_text(json.dumps(report))
    assert main(["collect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        "0.json is not a report of `python -m helpers.finetune`" in err and err.count("\n") == 1
    ), err


@pytest.mark.parametrize("out, partition, said", [
    ("grid", "gpu\ntouch PWNED #", "--partition 'gpu\\ntouch PWNED #' is not a Slurm partition name"),
    ("grid", "gpu;id", "is not a Slurm partition name"),
    ("nl\ntouch PWNED #", None, "holds a line break or another control character"),
])  # fmt: skip
def test_write_refuses_values_that_would_break_the_sbatch_lines(
    tmp_path, monkeypatch, capsys, files, out, partition, said
):
    """A line break in --partition or --out started a shell line in the script (run by sbatch, and
    ending Slurm's reading of --array and --output after it)."""
    monkeypatch.chdir(tmp_path)
    argv = write_argv("--models", "tiny")
    argv[2] = out
    code = main([*argv, *(["--partition", partition] if partition else [])])
    err = capsys.readouterr().err
    assert code == 2 and said in err and err.count("\n") == 1, err
    assert not list(tmp_path.rglob("*.sh"))  # nothing written
    assert main([*write_argv("--models", "tiny"), "--partition", "gpu-a100,gpu_v100"]) == 0
    script = (tmp_path / "grid" / "array.sh").read_text()
    assert "#SBATCH --partition=gpu-a100,gpu_v100\n" in script


def test_write_takes_any_printable_folder_and_an_empty_partition(tmp_path, monkeypatch, files):
    """Letters beyond ASCII, a non-breaking space and a zero-width non-joiner (Persian spelling) are
    no control characters; an empty --partition (a template's unset "$PART") is none, as before."""
    monkeypatch.chdir(tmp_path)
    folder = "zoé run\xa02 می\u200cخواهم"
    argv = write_argv("--models", "tiny", "--partition", "")
    argv[2] = folder
    assert main(argv) == 0
    script = (tmp_path / folder / "array.sh").read_text(encoding="utf-8")
    assert "--partition" not in script
    # sbatch groups quoted text in an #SBATCH line as a shell does: the folder, spaces and all
    line = next(x for x in script.splitlines() if x.startswith("#SBATCH --output="))
    assert shlex.split(line)[1] == f"--output={tmp_path / folder}/logs/%x-%A_%a.out"


def write_argv(*extra: str) -> list[str]:
    return ["write", "--out", "grid", "--train-file", "train.jsonl", "--eval-file", "dev.jsonl",
            "--gpus", "0", *extra]  # fmt: skip


def finished(folder, task: int, dev=0.6, **settings) -> None:
    report = {"final_accuracy": dev, "test_accuracy": 0.5, "seconds": {"train_and_eval": 1.0}}
    if settings:
        report["settings"] = settings
    (folder / "results" / f"{task}.json").write_text(json.dumps(report))


def test_write_refuses_a_folder_holding_another_plan_or_results(
    tmp_path, monkeypatch, capsys, files
):
    monkeypatch.chdir(tmp_path)
    first = write_argv("--models", "tiny,minilm", "--lrs", "1e-4,2e-4", "--epochs", "1")
    assert main(first) == 0
    for task in range(4):
        finished(tmp_path / "grid", task)
    plan = (tmp_path / "grid" / "plan.json").read_text()
    capsys.readouterr()
    assert (
        main(write_argv("--models", "distilbert-base-uncased", "--lrs", "5e-5", "--epochs", "3"))
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "grid holds another plan" in err, err
    assert "models tiny, minilm" in err and "4 results" in err and "give another --out" in err, err
    assert (tmp_path / "grid" / "plan.json").read_text() == plan  # nothing replaced
    assert main(write_argv("--models", "tiny,minilm", "--lrs", "1e-4,2e-4", "--epochs", "1",
                           "--batch-size", "4")) == 2  # fmt: skip
    assert "settings --batch-size (unset) → 4" in capsys.readouterr().err
    # the same plan again (other Slurm settings) rewrites the scripts and keeps the results
    assert main([*first, "--time", "02:00:00"]) == 0
    assert "02:00:00" in (tmp_path / "grid" / "array.sh").read_text()
    assert len(collect(tmp_path / "grid")[0]) == 4
    # the same flags on edited data: the results are of the old data
    (tmp_path / "train.jsonl").write_text(
        '{"sentence": "fine", "label": 1}\n{"sentence": "no", "label": 0}\n'
    )
    assert main(first) == 2
    assert "the contents of --train-file changed" in capsys.readouterr().err
    # results with no plan naming their runs
    (tmp_path / "orphans" / "results").mkdir(parents=True)
    (tmp_path / "orphans" / "results" / "0.json").write_text("{}")
    assert main([*first[:2], "orphans", *first[3:]]) == 2
    err = capsys.readouterr().err
    assert "orphans holds results (0.json) but no plan.json" in err and err.count("\n") == 1, err


def test_write_may_correct_a_plan_none_of_whose_tasks_ran(tmp_path, monkeypatch, capsys, files):
    """Before sbatch (no results, no logs) a plan can be written again with other flags; once a task
    has left a log, it cannot."""
    monkeypatch.chdir(tmp_path)
    assert main(write_argv("--models", "tiny", "--lrs", "1e-4", "--epochs", "1")) == 0
    assert main(write_argv("--models", "tiny", "--lrs", "3e-4", "--epochs", "1")) == 0
    assert json.loads((tmp_path / "grid" / "plan.json").read_text())["runs"][0]["lr"] == 3e-4
    (tmp_path / "grid" / "logs" / "attention-lab_1_0.out").write_text("started\n")
    capsys.readouterr()
    assert main(write_argv("--models", "tiny", "--lrs", "5e-4", "--epochs", "1")) == 2
    assert "grid holds another plan" in capsys.readouterr().err


def test_collect_leaves_out_a_result_of_another_run(tmp_path, files):
    plan = make_plan(tmp_path, models=["tiny", "minilm"], lrs=[1e-4], epochs=[1], files=files)
    write_jobs(plan)
    common = {"train_file": str(files["train_file"].resolve()), "batch_size": 8}
    finished(tmp_path, 0, 0.6, model="tiny", lr=0.0001, epochs=1, **common)  # this task's
    finished(tmp_path, 1, 0.9, model="distilbert-base-uncased", lr=5e-5, epochs=3, **common)
    rows, missing = collect(tmp_path)
    assert [r["task"] for r in rows] == [0] and len(missing) == 1
    assert (
        "task 1 (minilm, lr 0.0001, 1 epoch): results/1.json is not this task's result"
        in missing[0]
    )
    assert (
        "--model distilbert-base-uncased, not minilm" in missing[0]
        and "--epochs 3, not 1" in missing[0]
    )
    finished(tmp_path, 1, 0.9, model="minilm", lr=1e-4, epochs=1, batch_size=16)
    assert "--batch-size 16, not 8" in collect(tmp_path)[1][0]


@pytest.mark.parametrize("flag, target", [
    ("--json", "plan.json"), ("--json", "results/0.json"), ("--json", "results/summary.json"),
    ("--plot", "array.sh"), ("--json", "logs/x.json"),
])  # fmt: skip
def test_collect_never_writes_over_the_grid(tmp_path, monkeypatch, capsys, files, flag, target):
    monkeypatch.chdir(tmp_path)
    write_jobs(make_plan(tmp_path / "grid", models=["a"], lrs=[1e-5], epochs=[1], files=files))
    finished(tmp_path / "grid", 0)
    before = {p: p.read_bytes() for p in (tmp_path / "grid").rglob("*") if p.is_file()}
    assert main(["collect", "grid", flag, f"grid/{target}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} grid/{target} is " in err and "the grid's" in err, err
    assert {p: p.read_bytes() for p in (tmp_path / "grid").rglob("*") if p.is_file()} == before
    assert main(["collect", "grid", "--json", "grid/summary.json"]) == 0  # beside them is fine
    assert capsys.readouterr().out.endswith("wrote grid/summary.json\n")  # it says where


def test_collect_names_a_failed_run_and_a_broken_result(tmp_path, capsys, files):
    write_jobs(make_plan(tmp_path, models=["a", "b"], lrs=[1e-5, 1e-4], epochs=[1], files=files))
    finished(tmp_path, 0, 0.6)
    finished(tmp_path, 2, None)  # a run that failed: no dev accuracy
    (tmp_path / "results" / "1.json").write_text('{"final_accuracy": 0.7, "test_accu')  # cut short
    assert main(["collect", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "chosen on dev: a, lr 1e-05" in out
    lines = err.splitlines()
    assert len(lines) == 4, err
    assert lines[3] == f"to run just those once more: sbatch --array=1,2,3 {tmp_path / 'array.sh'}"
    assert (
        "results/1.json is not valid JSON (line 1, column 25: " in lines[0]
        and "rerun task 1" in lines[0]
    )
    assert "no 1.json yet" not in err
    assert (
        "task 2 (b, lr 1e-05, 1 epoch): results/2.json has no dev accuracy (final_accuracy is null)"
        in lines[1]
    )
    assert "task 3" in lines[2] and "no 3.json yet" in lines[2]
    assert best_on_dev([{"dev": None}, {"dev": 0.5, "task": 7}])["task"] == 7


def test_collect_lists_a_result_whose_test_accuracy_or_seconds_is_not_a_number(
    tmp_path, capsys, files
):
    """Only dev was checked: a hand-edited NaN test accuracy, "0.5" or "fast" went into collect's own
    report as they were (NaN made it invalid JSON)."""
    write_jobs(make_plan(tmp_path, models=["a"], lrs=[1e-5, 1e-4, 1e-3], epochs=[1], files=files))
    finished(tmp_path, 0, 0.6)
    (tmp_path / "results" / "1.json").write_text(
        '{"final_accuracy": 0.7, "test_accuracy": NaN, "seconds": {"train_and_eval": 1.0}}'
    )
    (tmp_path / "results" / "2.json").write_text(
        '{"final_accuracy": 0.8, "test_accuracy": null, "seconds": {"train_and_eval": "fast"}}'
    )
    assert main(["collect", str(tmp_path), "--json", str(tmp_path / "c.json")]) == 0
    err = capsys.readouterr().err
    assert "results/1.json's test_accuracy is NaN, not a number: rerun task 1" in err
    assert 'results/2.json\'s seconds.train_and_eval is "fast", not a number: rerun task 2' in err
    rows = json.loads((tmp_path / "c.json").read_text())["runs"]
    assert [r["task"] for r in rows] == [0]
    finished(tmp_path, 2, 0.8)  # a run without --test-file: test_accuracy null is a result
    report = json.loads((tmp_path / "results" / "2.json").read_text())
    report["test_accuracy"] = None
    (tmp_path / "results" / "2.json").write_text(json.dumps(report))
    assert main(["collect", str(tmp_path), "--json", str(tmp_path / "c.json")]) == 0
    collected = json.loads((tmp_path / "c.json").read_text())
    assert [r["task"] for r in collected["runs"]] == [0, 2]
    # and what the grid ran on: the plan's key, its common flags and its data files' digests
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert collected["plan"] == {"key": plan_key(plan), "common": plan["common"],
                                 "data_sha256": plan["data_sha256"]}  # fmt: skip
    assert set(plan["data_sha256"]) and "--train-file" in plan["common"]


@pytest.mark.parametrize("extra, said", [
    (["--models", "tiny", "--train-file", "tiny.txt"], "tiny.txt: unknown extension '.txt'"),
    (["--models", "tiny", "--text-column", "text"], "train.jsonl has no column 'text'"),
    (["--models", "tiny", "--train-file", "one.jsonl"], "one.jsonl's labels are all 1"),
    (["--models", "tiny", "--seed", "-1"], "--seed must be between 0 and 2**63 - 1, got -1"),
    (["--models", "./no_such_model,bert-bse-uncased"], "--models ./no_such_model: the model folder"),
    (["--models", "minilm,minilm,MiniLM"], "--models lists the same value more than once (minilm, minilm, MiniLM)"),
    (["--models", "tiny", "--lrs", "1e-4,0.0001"], "--lrs lists the same value more than once"),
    (["--models", "tiny", "--eval-file", "odd.jsonl"], "--eval-file odd.jsonl has label 2"),
])  # fmt: skip
def test_write_refuses_a_plan_every_task_of_which_would_fail(tmp_path, monkeypatch, capsys, files,
                                                            extra, said):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.txt").write_text("some text\n")
    (tmp_path / "odd.jsonl").write_text('{"sentence": "meh", "label": 2}\n')
    (tmp_path / "one.jsonl").write_text(
        '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": 1}\n'
    )
    argv = write_argv()
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err
    assert not (tmp_path / "grid").exists()


def test_notebook_rerun_keeps_its_results_and_moves_another_plans_aside(tmp_path, capsys):
    splits = {name: [{"sentence": "good", "label": 1}, {"sentence": "bad", "label": 0}] * n
              for name, n in (("train", 4), ("dev", 2), ("test", 2))}  # fmt: skip
    args = (["tiny", "t5-tiny"], [1e-3], [1], 8, 0)
    write_jobs(course_plan(tmp_path, splits, *args))
    finished(tmp_path / "slurm", 0)
    write_jobs(course_plan(tmp_path, splits, *args))  # the same plan: results kept, nothing moved
    assert len(collect(tmp_path / "slurm")[0]) == 1 and capsys.readouterr().out == ""
    write_jobs(course_plan(tmp_path, splits, ["tiny"], *args[1:]))  # another model list
    said = capsys.readouterr().out
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("slurm-replaced-")]
    assert len(aside) == 1 and f"aside to {aside[0]}" in said and "its 1 result " in said, said
    assert "models tiny, t5-tiny" in said and said.count("holds") == 0, said  # one plain sentence
    assert len(collect(aside[0])[0]) == 1  # the old result, still readable
    assert collect(tmp_path / "slurm") == ([], [collect(tmp_path / "slurm")[1][0]])
    finished(tmp_path / "slurm", 0)
    bigger = {**splits, "train": splits["train"] * 2}  # another profile's sizes, same settings
    write_jobs(course_plan(tmp_path, bigger, ["tiny"], *args[1:]))
    said = capsys.readouterr().out
    assert "the train.jsonl data changed" in said, said
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("slurm-replaced-")]) == 2
    assert len(tmp_path.joinpath("train.jsonl").read_text().splitlines()) == 16


def test_compare_processes_with_other_settings_in_the_same_folder_trains_again(tmp_path):
    """Notebook 09 reruns its part 3 in one cache folder; with another GPT_ITERS the command must not
    meet its own earlier run (python -m helpers.gpt train refuses a folder with other flags)."""
    from helpers.scaling.runs import compare_processes

    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat and the dog ran to the tree.\n" * 60, encoding="utf-8")
    sizes = dict(layers=1, embd=16, block_size=16, batch_size=4, accumulate=1)
    first = compare_processes(text, tmp_path / "work", (1,), iters=2, **sizes)
    again = compare_processes(text, tmp_path / "work", (1,), iters=3, **sizes)
    assert first[0]["steps"] == 2 and again[0]["steps"] == 3
    same = compare_processes(
        text, tmp_path / "work", (1,), iters=3, **sizes
    )  # resumes: nothing new
    assert same[0]["dev_losses"] == again[0]["dev_losses"]


def test_compare_processes_runs_cpu_processes_on_every_system(tmp_path, monkeypatch):
    """HELPERS_DEVICE=cpu (CUDA_VISIBLE_DEVICES hides no Apple GPU), UTF-8 output (a path with Ł in
    a Windows pipe), and no libuv store on Windows (its torch wheels have none)."""
    import subprocess

    from helpers.scaling import runs

    seen = {}

    def fake(command, env, **kw):
        seen.update(env=env, **kw)
        return subprocess.CompletedProcess(command, 1, "", "stopped here")

    monkeypatch.setattr(runs.subprocess, "run", fake)
    monkeypatch.setattr(runs.sys, "platform", "win32")
    with pytest.raises(RuntimeError, match="stopped here"):
        runs.compare_processes(tmp_path / "t.txt", tmp_path / "work", (1,))
    env = seen["env"]
    assert (env["HELPERS_DEVICE"], env["CUDA_VISIBLE_DEVICES"], env["PYTHONIOENCODING"], env["USE_LIBUV"]) == (
        "cpu", "", "utf-8", "0")  # fmt: skip
    assert seen["encoding"] == "utf-8" and seen["errors"] == "replace"


def test_compare_processes_names_a_process_count_below_1(tmp_path):
    """It said "0 processes cannot share 2 batches per step; use a count that divides --accumulate"."""
    from helpers.scaling.runs import compare_processes

    with pytest.raises(ValueError, match="a process count must be at least 1, not 0"):
        compare_processes(tmp_path / "text.txt", tmp_path / "work", (1, 0))


def test_compare_refuses_a_json_where_one_of_its_runs_writes(tmp_path, capsys):
    """--json sc/1.json: gpt train's report there was replaced, and the same command then refused to
    run again."""
    data = tmp_path / "text.txt"
    data.write_text("to be or not to be\n" * 50)
    argv = ["compare", "--data", str(data), "--processes", "1", "--iters", "2", "--folder",
            str(tmp_path / "sc"), "--json", str(tmp_path / "sc" / "1.json")]  # fmt: skip
    assert main(argv) == 2
    said = capsys.readouterr().err
    assert "1.json is where the run in 1 process(es) writes its own report" in said, said
    assert not (tmp_path / "sc" / "1.json").exists()


def test_compare_refuses_a_json_without_a_suffix_before_training(tmp_path, monkeypatch, capsys):
    """--json comp: the runs' default folder (--json without its suffix) was the report itself,
    found only after every run had trained."""
    import helpers.scaling.cli as scaling

    data = tmp_path / "text.txt"
    data.write_text("to be or not to be\n" * 50)
    monkeypatch.setattr(scaling, "compare_processes", lambda *a, **k: pytest.fail("it trained"))
    assert (
        main(["compare", "--data", str(data), "--iters", "2", "--json", str(tmp_path / "comp")])
        == 2
    )
    assert "has no suffix, so the runs' folder" in capsys.readouterr().err


@pytest.mark.parametrize("plot, said", [
    ("bars", "give a file ending in one of matplotlib's formats ("),
    ("train.jsonl", "give a file ending in one of"),
    ("./all.json", "is the --json report"), ("mine.png", "exists and is not a .png image"),
])  # fmt: skip
def test_collect_checks_its_plot_before_any_work(tmp_path, monkeypatch, capsys, files, plot, said):
    """--plot bars wrote bars.png, --plot ./r.json replaced the report just written, a file of the
    user's under the plot's name was replaced, and a wrong suffix failed after --json was written."""
    monkeypatch.chdir(tmp_path)
    write_jobs(make_plan(tmp_path / "grid", models=["a"], lrs=[1e-5], epochs=[1], files=files))
    finished(tmp_path / "grid", 0)
    (tmp_path / "mine.png").write_text("my notes\n", encoding="utf-8")
    assert main(["collect", "grid", "--json", "all.json", "--plot", plot]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err
    assert not (tmp_path / "all.json").exists() and not (tmp_path / "bars.png").exists()
    assert (tmp_path / "mine.png").read_text(encoding="utf-8") == "my notes\n"
    assert main(["collect", "grid", "--json", "all.json", "--plot", "chart.png"]) == 0
    assert (
        main(["collect", "grid", "--json", "all.json", "--plot", "chart.png"]) == 0
    )  # its own, again
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert (
        main(["collect", "grid", "--json", "all.json", "--plot", "chart.jpg"]) == 0
    )  # other formats too
    assert main(["collect", "grid", "--json", "all.json", "--plot", "chart.jpg"]) == 0
    assert (tmp_path / "chart.jpg").read_bytes().startswith(b"\xff\xd8")
    assert [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".")
    ] == []  # no temporary file left


def test_a_tasks_checkpoint_in_results_is_not_a_result(tmp_path):
    """python -m helpers.finetune keeps its epochs beside its report: results/3-checkpoint.pt, left by
    a task that was stopped, made the folder "hold results (3-checkpoint.pt) but no plan.json"."""
    from helpers.scaling.slurm import results_in

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "3-checkpoint.pt").write_bytes(b"epochs")
    (tmp_path / "results" / ".0.json.part").write_text("{")
    assert results_in(tmp_path) == []
    (tmp_path / "results" / "0.json").write_text("{}")
    assert results_in(tmp_path) == [tmp_path / "results" / "0.json"]


def test_the_submit_line_can_be_pasted_for_a_folder_with_a_space(
    tmp_path, files, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    argv = ["write", "--out", "slurm runs", "--models", "m", "--train-file", "train.jsonl",
            "--eval-file", "dev.jsonl"]  # fmt: skip
    assert main(argv) == 0
    line = capsys.readouterr().out.strip().split("submit with: ")[1]
    assert shlex.split(line) == ["sbatch", str(tmp_path / "slurm runs" / "array.sh")]


def test_notebook_09s_task_cell_passes_an_interrupt_on(monkeypatch):
    """Interrupted, the in-process command returns 130 (its finished epochs kept); the cell said
    "task 0 failed" (an AssertionError), as if the run had broken."""
    import json

    from conftest import ROOT

    from helpers.finetune import cli

    nb = json.loads((ROOT / "notebooks" / "09_scaling_out.ipynb").read_text(encoding="utf-8"))
    cell = next(
        "".join(c["source"])
        for c in nb["cells"]
        if "slurm.task_command(plan, i)" in "".join(c["source"])
    )
    plan = {"runs": [{"args": ["--model", "tiny"]}]}
    names = {"RUN_TASKS": True, "plan": plan, "paths": {"plan": "plan.json"},
             "slurm": type("S", (), {"task_command": staticmethod(lambda plan, i: ["a", "b", "c", "--x"])})}  # fmt: skip
    for code, raised in ((130, KeyboardInterrupt), (2, AssertionError)):
        monkeypatch.setattr(cli, "main", lambda argv, code=code: code)
        with pytest.raises(raised):
            exec(cell, dict(names))


def test_models_listed_with_spaces_after_the_commas_are_the_same_models():
    """`--models "minilm, t5-small"` planned a model named " t5-small" (a hub id no task could load),
    and "minilm, minilm" passed the check for a model listed twice."""
    from helpers.scaling.cli import parse

    base = ["write", "--out", "o", "--train-file", "t.jsonl", "--eval-file", "d.jsonl"]
    assert parse([*base, "--models", "minilm, t5-small ,tiny"]).models == [
        "minilm",
        "t5-small",
        "tiny",
    ]
    assert parse([*base, "--models", "minilm, minilm"]).models == [
        "minilm",
        "minilm",
    ]  # then refused


def test_a_task_queued_before_its_plan_was_rewritten_refuses_the_new_plan(
    tmp_path, monkeypatch, capsys, files
):
    """Rewriting a plan nothing had run from was allowed while its array sat in the queue: the queued
    tasks then ran the new plan's rows, and those beyond it failed."""
    monkeypatch.chdir(tmp_path)
    assert main(write_argv("--models", "tiny", "--lrs", "1e-4,2e-4")) == 0
    queued = (tmp_path / "grid" / "array.sh").read_text()  # sbatch keeps its own copy
    key = queued.split("--plan-key ")[1].split()[0]
    assert main(write_argv("--models", "tiny", "--lrs", "1e-4,2e-4", "--time", "02:00:00")) == 0
    assert f"--plan-key {key}" in (tmp_path / "grid" / "array.sh").read_text()  # Slurm's alone
    assert main(write_argv("--models", "tiny", "--lrs", "3e-4")) == 0  # no task ran: allowed
    capsys.readouterr()
    assert main(["task", "grid/plan.json", "0", "--plan-key", key]) == 2
    assert "changed since this array.sh was written" in capsys.readouterr().err
    from helpers.scaling import cli

    ran = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: ran.append(argv))
    current = (tmp_path / "grid" / "array.sh").read_text().split("--plan-key ")[1].split()[0]
    cli.main(["task", "grid/plan.json", "0", "--plan-key", current])  # its own plan: it runs
    assert ran and ran[0][ran[0].index("--lr") + 1] == "0.0003"


@pytest.mark.parametrize(("extra", "said"), [
    (["--out", "a\\b"], "holds a backslash, which sbatch drops"),
    (["--time", "00:00:00"], "is no time: Slurm reads 0 as no limit"),
    (["--time", "0-00:00:00"], "is no time"),
])  # fmt: skip
def test_what_slurm_would_read_otherwise_is_refused(
    tmp_path, monkeypatch, capsys, files, extra, said
):
    """A backslash in --out sent the logs to a folder that does not exist (the job failed with no log);
    --time 00:00:00 meant no time limit at all."""
    monkeypatch.chdir(tmp_path)
    assert main([*write_argv("--models", "tiny"), *extra]) == 2  # a later --out replaces "grid"
    assert said in capsys.readouterr().err


def test_a_grid_beyond_slurms_default_array_size_gets_a_note(tmp_path, monkeypatch, capsys, files):
    monkeypatch.chdir(tmp_path)
    lrs = ",".join(f"{i}e-6" for i in range(1, 1003))
    assert main(write_argv("--models", "tiny", "--lrs", lrs)) == 0
    assert (
        "an array of 1002 tasks is more than Slurm's default MaxArraySize"
        in capsys.readouterr().err
    )


def test_collect_says_a_task_that_stopped_kept_its_checkpoint(tmp_path, capsys, files):
    """A task that ran out of --time was "no 0.json yet", as if it had never started."""
    write_jobs(make_plan(tmp_path, models=["a"], lrs=[1e-5, 1e-4], epochs=[1], files=files))
    finished(tmp_path, 0, 0.6)
    (tmp_path / "results" / "1-checkpoint.pt").write_bytes(b"kept")
    assert main(["collect", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert (
        "task 1 (a, lr 0.0001, 1 epoch): stopped before finishing (its checkpoint is kept)" in err
    )
    assert f"sbatch --array=1 {tmp_path / 'array.sh'}" in err


def test_the_scripts_name_a_missing_task_id_and_folder_and_share_the_cores(tmp_path, files):
    """bash said "SLURM_ARRAY_TASK_ID: unbound variable" or "cd: ...: No such file or directory"; and
    torchrun gave each of N processes one thread of the task's cores."""
    workdir = tmp_path / "here"
    workdir.mkdir()
    plan = make_plan(tmp_path / "grid", models=["a"], lrs=[1e-5], epochs=[1], files=files, gpus=4,
                     cpus=8)  # fmt: skip
    import os

    before = Path.cwd()
    os.chdir(workdir)
    try:
        paths = write_jobs(plan)
    finally:
        os.chdir(before)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    run = subprocess.run(["bash", str(paths["array"])], capture_output=True, text=True, env=env)
    assert run.returncode != 0 and "submit it with sbatch (a job array)" in run.stderr
    workdir.rmdir()
    run = subprocess.run(["bash", str(paths["job"])], capture_output=True, text=True, env=env)
    assert run.returncode == 2 and run.stderr.startswith(f"error: cannot enter {workdir}"), (
        run.stderr
    )
    job = paths["job"].read_text()
    lines = [
        line for line in job.splitlines() if line.startswith(("processes=", "threads=", "export"))
    ]
    for cpus, gpus, threads in ((8, 4, "2"), (1, 2, "1"), (6, None, "6")):
        slurm = {
            "SLURM_CPUS_PER_TASK": str(cpus),
            **({"SLURM_GPUS_ON_NODE": str(gpus)} if gpus else {}),
        }
        shown = subprocess.run(["bash", "-c", "\n".join([*lines, 'echo "$OMP_NUM_THREADS"'])],
                               capture_output=True, text=True, env={**env, **slurm}).stdout.strip()  # fmt: skip
        assert shown == threads, (cpus, gpus, shown)


def test_a_task_prints_its_command_as_a_shell_would_read_it(tmp_path, monkeypatch, capsys, files):
    """The command at the top of each log was joined with spaces: a path with a space or a quote could
    not be pasted back."""
    from helpers.scaling import cli

    odd = tmp_path / "it's a file.jsonl"
    odd.write_text((tmp_path / "train.jsonl").read_text())
    plan = make_plan(tmp_path / "grid", models=["tiny"], lrs=[1e-5], epochs=[1],
                     files={**files, "train_file": odd})  # fmt: skip
    write_jobs(plan)
    ran = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: ran.append(argv))
    cli.main(["task", str(tmp_path / "grid" / "plan.json"), "0"])
    shown = capsys.readouterr().out.splitlines()[0]
    assert shlex.split(shown) == ran[0]


def test_a_whole_array_resubmitted_does_not_train_its_finished_tasks_again(
    tmp_path, monkeypatch, capsys, files
):
    """`sbatch array.sh` a second time (after some tasks failed) trained every finished task again
    and wrote over its result."""
    from helpers.scaling import cli

    write_jobs(make_plan(tmp_path, models=["a"], lrs=[1e-5, 1e-4], epochs=[1], files=files))
    finished(tmp_path, 0, 0.6)
    ran = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: ran.append(argv))
    assert cli.main(["task", str(tmp_path / "plan.json"), "0"]) == 0
    out = capsys.readouterr().out
    assert not ran and "task 0 has finished" in out and "dev accuracy 0.6000" in out
    assert "delete that file to run it again" in out
    cli.main(["task", str(tmp_path / "plan.json"), "1"])  # no result yet: it trains
    assert len(ran) == 1 and ran[0][ran[0].index("--lr") + 1] == "0.0001"


@pytest.mark.parametrize("backend", ["module://no_such_backend", "bogus"])
def test_collect_draws_its_plot_whatever_mplbackend_says(tmp_path, files, backend):
    """`python -m helpers.scaling collect --plot` wrote the report, then failed in plt.subplots
    (ModuleNotFoundError: no module named 'no_such_backend') or stopped at matplotlib's "'bogus' is
    not a valid value for backend", never naming MPLBACKEND: it only writes image files."""
    write_jobs(make_plan(tmp_path / "grid", models=["a"], lrs=[1e-5], epochs=[1], files=files))
    finished(tmp_path / "grid", 0)
    env = {**os.environ, "MPLBACKEND": backend, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "helpers.scaling", "collect", "grid", "--json", "all.json",
         "--plot", "bars.png"], cwd=tmp_path, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bars.png").read_bytes().startswith(b"\x89PNG")
