"""Data-parallel training through the one trainer, with 2 CPU processes (gloo) started by torchrun and
by accelerate launch: the same result as 1 process for the same seed and effective batch, rank 0
alone writing, a resume across process counts, and the same accuracy within noise on a real task."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ddp_fit
import psutil
import pytest
import torch

from helpers.gpt import cli as gpt_cli
from helpers.synthetic import synthetic_glove, synthetic_reviews
from helpers.training import distributed

HERE = Path(__file__).resolve().parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
GPT = ["-m", "helpers.gpt", "train", "--layers", "1", "--heads", "2", "--embd", "32",
       "--block-size", "32", "--batch-size", "8", "--evals", "2", "--quiet"]  # fmt: skip


def launch(command: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    scratch = tempfile.mkdtemp(prefix="attention-lab-launch-")  # torchrun's log folder goes here
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": scratch}
    for name in distributed.VARIABLES:  # a launcher sets these; a plain run must not inherit them
        env.pop(name, None)
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    finally:  # torchrun leaves a torchelastic_* folder in $TMPDIR per launch, never removed
        shutil.rmtree(scratch, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@contextlib.contextmanager
def in_this_process(cwd: Path):
    """A one-process run in the test's own process (no interpreter start-up, 2-3 s a run) as `launch`
    starts one: in ``cwd``, with 1 thread and no launcher variables; threads and RNG restored after."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch, torch.random.fork_rng():
        patch.chdir(cwd)
        for name in distributed.VARIABLES:
            patch.delenv(name, raising=False)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def gpt(tmp: Path, name: str, launcher: list[str], *extra: str) -> dict:
    """A GPT run on ``tmp``/text.txt; its JSON report."""
    launch(
        [*launcher, *GPT, "--data", "text.txt", "--save", name, "--json", f"{name}.json", *extra],
        tmp,
    )
    return json.loads((tmp / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    texts, _ = synthetic_reviews(200)
    (tmp / "text.txt").write_text("\n".join(texts))
    return tmp


@pytest.fixture(scope="module")
def one_process(text_dir) -> dict:
    """1 process, 2 batches of 8 per optimizer step, no dropout: the reference."""
    with in_this_process(text_dir):
        argv = [*GPT[2:], "--data", "text.txt", "--save", "one", "--json", "one.json"]
        assert gpt_cli.main([*argv, "--iters", "12", "--accumulate", "2", "--dropout", "0"]) == 0
    return json.loads((text_dir / "one.json").read_text())


def test_rank_from_the_launchers_variables(monkeypatch):
    for name in distributed.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.current() == distributed.Rank(0, 1, 0) and distributed.current().main
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.current() == distributed.Rank(3, 4, 1) and not distributed.current().main


def test_several_processes_on_apples_gpu_are_told_to_use_the_cpu(monkeypatch):
    """gloo reduces CPU and CUDA tensors only: DDP over mps failed deep inside torch."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="set HELPERS_DEVICE=cpu"):
        distributed.start(torch.device("mps"))
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize(
    "world, rank, said", [("two", "0", "WORLD_SIZE='two'"), ("2", "2", "RANK=2")]
)
def test_bad_launcher_variables_are_named(monkeypatch, world, rank, said):
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("RANK", rank)
    with pytest.raises(ValueError, match=said):
        distributed.current()


@pytest.mark.parametrize("backend, ids", [("nccl", [[3], [3]]), ("gloo", [None, None])])
def test_barriers_name_this_processs_gpu_under_nccl(monkeypatch, backend, ids):
    """Under NCCL a barrier without device_ids makes torch guess the GPU (and warn on rank 0); every
    barrier, the one before leaving the group included, names the GPU this process set."""
    calls = []
    monkeypatch.setattr(distributed.dist, "is_available", lambda: True)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda *group: backend)
    monkeypatch.setattr(
        distributed.dist, "barrier", lambda **kw: calls.append(kw.get("device_ids"))
    )
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda *group: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    distributed.barrier()
    distributed.finish()
    assert calls == ids


def test_shard_gives_each_rank_every_nth_batch_and_equal_counts():
    batches = list(range(7))
    shares = [distributed.shard(batches, distributed.Rank(r, 3)) for r in range(3)]
    assert shares == [[0, 3], [1, 4], [2, 5]]  # batch 6 dropped: every rank takes 2 steps
    with pytest.raises(ValueError, match="2 training batches cannot be shared by 4 processes"):
        distributed.shard([0, 1], distributed.Rank(0, 4))


def test_accumulation_per_process_keeps_the_effective_batch():
    assert distributed.per_process(4, 2) == 2 and distributed.per_process(2, 2) == 1
    assert distributed.per_process(1, 2) == 1  # the step sees 2 batches: fit says so
    assert distributed.per_process(3, 1) == 3


def test_torchrun_two_processes_equal_one_with_the_same_effective_batch(text_dir, one_process):
    two = gpt(text_dir, "two", TORCHRUN, "--iters", "12", "--accumulate", "2", "--dropout", "0")
    assert (one_process["processes"], two["processes"]) == (1, 2)
    assert two["iters"] == one_process["iters"] == 12 and two["batches"] == 24
    assert two["dev_losses"] == pytest.approx(one_process["dev_losses"], abs=1e-5)
    assert two["train_losses"] == pytest.approx(one_process["train_losses"], abs=1e-5)
    assert sorted(p.name for p in (text_dir / "two").iterdir()) == [
        "checkpoint.pt",
        "model.pt",
        "plan.json",
    ]


def test_accelerate_launch_runs_the_same_command(text_dir, one_process):
    pytest.importorskip("accelerate")
    # On CPUs accelerate's --cpu means one process; --multi_gpu starts the N processes (gloo here).
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    run = gpt(text_dir, "acc", accelerate, "--iters", "12", "--accumulate", "2", "--dropout", "0")
    assert run["processes"] == 2
    assert run["dev_losses"] == pytest.approx(one_process["dev_losses"], abs=1e-5)


def test_resume_in_another_process_count_gives_the_uninterrupted_result(tmp_path):
    script = str(HERE / "ddp_fit.py")
    with in_this_process(tmp_path):
        assert ddp_fit.main(["--json", "ref.json"]) == 0
    # started as a script, as torchrun starts it: the checkpoint's training-code digest reads the
    # module its batches' function lives in (__main__ there, ddp_fit imported), so it must match
    stopped = subprocess.run([sys.executable, script, "--json", "x.json", "--checkpoint", "ck.pt",
                              "--stop-after", "1"], cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert stopped.returncode == 3 and (tmp_path / "ck.pt").exists(), stopped.stderr[-2000:]
    resumed = launch([*TORCHRUN, script, "--json", "two.json", "--checkpoint", "ck.pt"], tmp_path)
    assert "resuming from ck.pt after epoch 1" in resumed.stdout, resumed.stdout[:1500]
    assert resumed.stdout.count("resuming") == 1  # rank 0 alone logs
    ref, two = (json.loads((tmp_path / f).read_text()) for f in ("ref.json", "two.json"))
    assert two["processes"] == 2 and two["history"]["epoch"] == [1, 2, 3]
    assert two["history"]["dev_loss"] == pytest.approx(ref["history"]["dev_loss"], abs=1e-6)
    flat = [(a, b) for p, q in zip(ref["weights"], two["weights"]) for a, b in zip(p, q)]
    assert max(abs(a - b) for a, b in flat) < 1e-6


def test_two_processes_weigh_uneven_batches_as_one_batch_would(tmp_path):
    """A step over a batch of 16 on one rank and of 4 on the other is the step of one batch of 20 (DDP
    alone averages the ranks' gradients: the 4 examples weighed as much as the 16, 0.44 off here)."""
    script = str(HERE / "ddp_fit.py")
    with in_this_process(tmp_path):
        assert ddp_fit.main(["--json", "merged.json", "--merged", "--accumulate", "1"]) == 0
    launch([*TORCHRUN, script, "--json", "two.json", "--uneven", "--accumulate", "2"], tmp_path)
    merged, two = (json.loads((tmp_path / f).read_text()) for f in ("merged.json", "two.json"))
    assert two["processes"] == 2
    flat = [(a, b) for p, q in zip(merged["weights"], two["weights"]) for a, b in zip(p, q)]
    assert max(abs(a - b) for a, b in flat) < 1e-5


def test_finetune_and_imdb_commands_run_under_torchrun(tmp_path):
    texts, labels = synthetic_reviews(96)
    rows = [{"text": t, "label": y} for t, y in zip(texts, labels)]
    for name, part in (("train", rows[:64]), ("dev", rows[64:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    g = synthetic_glove(8)
    (tmp_path / "glove.txt").write_text(
        "".join(w + " " + " ".join(map(str, v)) + "\n" for w, v in zip(g.words, g.vectors))
    )
    launch([*TORCHRUN, "-m", "helpers.finetune", "--model", "tiny", "--train-file", "train.jsonl",
            "--eval-file", "dev.jsonl", "--text-column", "text", "--epochs", "1", "--batch-size", "8",
            "--max-length", "32", "--json", "finetune.json"], tmp_path)  # fmt: skip
    launch([*TORCHRUN, "-m", "helpers.imdb", "--train-file", "train.jsonl", "--test-file", "dev.jsonl",
            "--glove-file", "glove.txt", "--epochs", "1", "--max-len", "32", "--json", "imdb.json"],
           tmp_path)  # fmt: skip
    finetune, imdb = (
        json.loads((tmp_path / f).read_text()) for f in ("finetune.json", "imdb.json")
    )
    assert finetune["processes"] == imdb["processes"] == 2
    assert 0 <= finetune["final_accuracy"] <= 1 and 0 <= imdb["test_accuracy"] <= 1


def test_two_processes_reach_the_same_accuracy_on_tiny_shakespeare(tmp_path, shared_data):
    """Dropout on: the two processes draw other masks than one process does, so the runs differ; their
    dev accuracies (next character) agree within noise."""
    text = (shared_data / "corpus" / "tinyshakespeare.txt").read_text()[:200_000]
    (tmp_path / "text.txt").write_text(text)
    extra = ["--iters", "150", "--accumulate", "2", "--dropout", "0.1", "--embd", "64"]
    one, two = (
        gpt(tmp_path, "one", [sys.executable], *extra),
        gpt(tmp_path, "two", TORCHRUN, *extra),
    )
    print(f"dev loss 1 process {one['dev_loss']:.3f}, 2 processes {two['dev_loss']:.3f}")
    assert one["dev_loss"] < 2.9 and two["dev_loss"] < 2.9  # both learned (uniform: ln 65 = 4.17)
    assert abs(one["dev_loss"] - two["dev_loss"]) < 0.05


@pytest.mark.parametrize("env, said", [({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc'"),
                                       ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5 but WORLD_SIZE=2"),
                                       ({"WORLD_SIZE": "4", "RANK": "0"}, "fewer batches of 8 than the 4 processes"),
                                       # torch's "environment variable RANK expected, but not set" from rendezvous.py
                                       ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 is set but RANK and MASTER_ADDR and MASTER_PORT are not: a launcher"),
                                       ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "localhost"}, "but MASTER_PORT is not")])  # fmt: skip
def test_finetune_command_names_a_bad_launch(tmp_path, monkeypatch, capsys, env, said):
    from helpers.finetune.cli import main

    texts, labels = synthetic_reviews(20)
    (tmp_path / "t.jsonl").write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels))
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["--model", "tiny", "--train-file", str(tmp_path / "t.jsonl"), "--eval-file", str(tmp_path / "t.jsonl"),
                 "--text-column", "text", "--batch-size", "8", "--json", str(tmp_path / "o.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and said in err and "Traceback" not in err, err


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_the_launcher_that_started_it(tmp_path):
    """A kernel restarted hard killed torchrun, and its workers waited for it for good, holding the
    run's lock; a worker now asks the kernel to kill it when its parent dies."""
    pid_file = tmp_path / "worker.pid"
    worker = ("import os, time, sys; from helpers.training.distributed import die_with_parent; "
              f"die_with_parent(); open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)")  # fmt: skip
    launcher = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {worker!r}], "
                "start_new_session=True); time.sleep(60)")  # fmt: skip
    parent = subprocess.Popen([sys.executable, "-c", launcher])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.kill()  # as a hard restart kills torchrun
    parent.wait()
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return  # gone with its parent
        if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the worker outlived its launcher")


@pytest.mark.parametrize(("launched", "asked"), [(True, True), (False, False)])
def test_only_a_torchrun_worker_asks_to_die_with_its_parent(monkeypatch, launched, asked):
    """A Slurm task started by srun (no torchrun) keeps its parent's rules."""
    calls = []
    monkeypatch.setattr(distributed, "die_with_parent", lambda: calls.append(True))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: None)
    monkeypatch.setattr(distributed.atexit, "register", lambda f: None)
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    if launched:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    else:
        monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    distributed.start(torch.device("cpu"))
    assert calls == ([True] if asked else [])


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_whose_launcher_died_before_it_asked_stops_at_once(monkeypatch, capsys):
    """Adopted by init before its prctl, the signal would never come: it stops instead."""
    asked = []
    monkeypatch.setattr(
        distributed.ctypes,
        "CDLL",
        lambda *a, **k: type("C", (), {"prctl": lambda *a: asked.append(a)})(),
    )
    monkeypatch.setattr(distributed.os, "getppid", lambda: 1)
    monkeypatch.setattr(
        distributed.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code))
    )
    with pytest.raises(SystemExit) as stopped:
        distributed.die_with_parent()
    assert stopped.value.code == 1 and [a[-2:] for a in asked] == [(1, signal.SIGKILL)]
    assert "the launcher (torchrun) is gone" in capsys.readouterr().err


def test_the_process_comparison_leaves_no_torchrun_log_folder(text_dir, tmp_path, monkeypatch):
    """torchrun without --log-dir made a torchelastic_* folder in the temp folder on every run of
    notebook 09's comparison cell and never removed it."""
    from helpers.scaling.runs import compare_processes

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the launched torchrun's temp folder
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rows = compare_processes(text_dir / "text.txt", tmp_path / "work", (2,), iters=2, accumulate=2,
                             layers=1, embd=16, block_size=16, batch_size=4)  # fmt: skip
    assert rows[0]["processes"] == 2 and rows[0]["steps"] == 2
    # what moves the result, as the run's own report says: seed, dropout, shape, device
    assert rows[0]["config"]["seed"] == 42 and rows[0]["config"]["dropout"] == 0.0
    assert rows[0]["model"]["embd"] == 16 and rows[0]["device"] == "cpu"
    assert not list(temp.glob("torchelastic_*"))
