"""The Slurm path of notebook 09 on a real one-node Slurm started by the test: write the job scripts,
submit the job array and the one-node job, wait, collect. Skips where Slurm is not installed."""

import json
import subprocess
import time

import pytest
from slurm_support import Cluster, why_not

from helpers.scaling.cli import main
from helpers.synthetic import synthetic_reviews


def write_data(folder):
    texts, labels = synthetic_reviews(80)
    rows = [{"sentence": t, "label": y} for t, y in zip(texts, labels)]
    for name, part in (("train", rows[:48]), ("dev", rows[48:64]), ("test", rows[64:])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))


def test_array_over_two_models_runs_and_is_collected(tmp_path, monkeypatch):
    reason = why_not()
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    write_data(tmp_path)
    runs = tmp_path / "runs 100%x"  # Slurm reads %x in --output as the job's name unless written %%
    assert main(["write", "--out", runs.name, "--models", "tiny,t5-tiny", "--lrs", "1e-3", "--epochs", "1",
                 "--train-file", "train.jsonl", "--eval-file", "dev.jsonl", "--test-file", "test.jsonl",
                 "--batch-size", "16", "--max-length", "32", "--gpus", "0", "--cpus", "1",
                 "--time", "00:05:00"]) == 0  # fmt: skip
    with Cluster(tmp_path / "slurm") as env:
        for script in (runs / "array.sh", runs / "job.sh"):
            done = subprocess.run(
                ["sbatch", "--parsable", script], env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 240
        while subprocess.run(
            ["squeue", "-h"], env=env, capture_output=True, text=True
        ).stdout.strip():
            assert time.monotonic() < deadline, "the jobs did not finish in 4 minutes"
            time.sleep(1)
    texts = [p.read_text() for p in sorted((runs / "logs").glob("*.out"))]
    logs = "".join(t[-800:] for t in texts)  # the tails, for a failure's message
    assert sorted(p.name for p in (runs / "results").iterdir()) == [
        "0.json",
        "1.json",
        "job.json",
    ], logs
    job = json.loads((runs / "results" / "job.json").read_text())
    assert (
        job["processes"] == 1 and job["largest_batch"][0]["batch_size"] is None
    )  # a CPU: skipped, said why
    whole = "".join(texts)  # a long temporary path can push these lines out of the tails
    assert "rank 0 on cpu" in whole and "memory is not the limit" in whole, logs
    assert main(["collect", runs.name, "--json", "all.json", "--plot", "bars.png"]) == 0
    collected = json.loads((tmp_path / "all.json").read_text())
    assert [r["model"] for r in collected["runs"]] == ["tiny", "t5-tiny"] and collected[
        "missing"
    ] == []
    assert all(0 <= r["dev"] <= 1 and 0 <= r["test"] <= 1 for r in collected["runs"])
    assert (tmp_path / "bars.png").stat().st_size > 1000
