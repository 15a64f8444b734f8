"""Notebook 09's Slurm scripts and collector without a cluster: what the scripts say, what each array
task runs, the collector's table and choice, and the command line's messages for bad input."""

import json
import subprocess

import pytest

from helpers.scaling.cli import main
from helpers.scaling.slurm import (
    best_on_dev,
    collect,
    grid_table,
    make_plan,
    per_model,
    task_command,
    write_jobs,
)


@pytest.fixture
def files(tmp_path):
    for name in ("train", "dev"):
        (tmp_path / f"{name}.jsonl").write_text('{"sentence": "good", "label": 1}\n')
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
    assert "#SBATCH --partition=gpu" in array and '"$SLURM_ARRAY_TASK_ID"' in array
    assert '--nproc_per_node "${SLURM_GPUS_ON_NODE:-1}"' in job and "--find-batch" in job
    for script in (paths["array"], paths["job"]):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # valid bash
    command = task_command(plan, 7)
    assert command[1:6] == ["-m", "helpers.finetune", "--model", "t5-small", "--lr"]
    assert command[-1].endswith("results/7.json") and str(files["train_file"]) in command
    with pytest.raises(ValueError, match="task 8 is not in the plan: it has tasks 0 to 7"):
        task_command(plan, 8)


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
    assert "1 batch(es) dropped" in ax.get_xlabel()
    assert [t.get_text() for t in ax.texts][:3] == ["0", "3", "6"]  # rank 0 takes every 3rd batch


@pytest.mark.parametrize("extra, said", [
    (["--lrs", "nan"], "finite"), (["--time", "banana"], "is not Slurm's HH:MM:SS"),
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
])  # fmt: skip
def test_a_plan_from_something_else_is_named(tmp_path, capsys, plan):
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(["task", str(tmp_path / "plan.json"), "0"]) == 2
    assert "is not a plan written by `python -m helpers.scaling write`" in capsys.readouterr().err


@pytest.mark.parametrize("report", [{"accuracy": 1}, [1, 2]])
def test_collect_names_a_result_that_is_not_a_finetune_report(tmp_path, capsys, files, report):
    write_jobs(make_plan(tmp_path, models=["a"], lrs=[1e-5], epochs=[1], files=files))
    (tmp_path / "results" / "0.json").write_text(json.dumps(report))
    assert main(["collect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        "0.json is not a report of `python -m helpers.finetune`" in err and err.count("\n") == 1
    ), err
