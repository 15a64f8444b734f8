"""Every command's argparse errors are one line (``helpers.cli.Parser``): ``error: ... (see PROG
--help)`` and exit status 2, not argparse's usage block."""

import importlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    "helpers.authoring", "helpers.benchmark", "helpers.download", "helpers.finetune.cli",
    "helpers.finetune.proxy", "helpers.finetune.twin", "helpers.gpt.cli", "helpers.imdb.ablation",
    "helpers.imdb.baseline", "helpers.imdb.cli", "helpers.minbert.cli", "helpers.mlm.cli",
    "helpers.scaling.cli",
]  # fmt: skip


def test_every_parser_is_the_one_line_parser():
    """No module builds a plain argparse parser (it would print the usage block on an error)."""
    plain = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "helpers").rglob("*.py"))
        if "argparse.ArgumentParser(" in path.read_text()
    ]
    assert plain == [], plain


@pytest.mark.parametrize("module", COMMANDS)
def test_an_unknown_flag_is_one_line_and_exit_2(module, capsys):
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(["--no-such-flag"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--help)" in err, err


HUGE = [  # (command, argv): a count or size with 20 digits, a rate that is inf in float32
    ("helpers.mlm.cli", ["--train-file", "t.txt", "--save", "s", "--json", "o.json", "--vocab-size", "9" * 20]),
    ("helpers.mlm.cli", ["--train-file", "t.txt", "--save", "s", "--json", "o.json", "--epochs", "9" * 20]),
    ("helpers.gpt.cli", ["train", "--data", "t.txt", "--save", "s", "--json", "o.json", "--embd", "9" * 20]),
    ("helpers.gpt.cli", ["train", "--data", "t.txt", "--save", "s", "--json", "o.json", "--minutes", "1e308"]),
    ("helpers.finetune.cli", ["--train-file", "t.tsv", "--json", "o.json", "--batch-size", "9" * 20]),
    ("helpers.imdb.cli", ["--train-file", "t.jsonl", "--json", "o.json", "--max-len", "9" * 11]),
    ("helpers.finetune.twin", ["--pretrained", "p", "--sst-file", "s.tsv", "--json", "o.json", "--small-lr", "1e308"]),
    ("helpers.finetune.twin", ["--pretrained", "p", "--sst-file", "s.tsv", "--json", "o.json", "--seeds", "9" * 20]),
    ("helpers.scaling.cli", ["write", "--out", "o", "--models", "tiny", "--epochs", "9" * 20]),
    ("helpers.scaling.cli", ["write", "--out", "o", "--models", "tiny", "--lrs", "1e308"]),
]  # fmt: skip


@pytest.mark.parametrize(("module", "argv"), HUGE)
def test_absurd_magnitudes_are_refused_at_parsing(module, argv, capsys):
    """Before: tracebacks from the tokenizer trainer, the allocator or the optimizer, or a run that
    never ends; now one line naming the flag and the largest value taken."""
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"argument {argv[-2]}" in err  # "--max-len/--max-length" names both spellings
        and f": {argv[-1]} is too large (at most" in err
    ), err


ODD_DIGITS = [  # (command, argv): numbers Python's int() and float() read, a reader would not
    ("helpers.gpt.cli", ["sample", "--load", "s", "--prompt", "a", "--tokens", "1_000"]),
    ("helpers.mlm.cli", ["--train-file", "t.txt", "--save", "s", "--json", "o.json", "--seed", "٣"]),
    ("helpers.finetune.cli", ["--train-file", "t.tsv", "--json", "o.json", "--lr", "1_0e-4"]),
    ("helpers.scaling.cli", ["write", "--out", "o", "--models", "tiny", "--epochs", "1,٣"]),
    ("helpers.scaling.cli", ["write", "--out", "o", "--models", "tiny", "--lrs", "1e-4, 2_0e-4"]),
]  # fmt: skip


@pytest.mark.parametrize(("module", "argv"), ODD_DIGITS)
def test_digits_of_other_scripts_and_underscores_are_refused_at_parsing(module, argv, capsys):
    """``int("٣")`` is 3 and ``int("1_000")`` is 1000: they ran as those numbers; now one line naming
    the flag and the value."""
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {argv[-2]}: " in err and "is not a plain" in err, err


def test_every_sub_command_help_says_what_it_does(capsys):
    """``python -m helpers.scaling task --help`` showed a usage line and two bare names."""
    commands = {"helpers.gpt.cli": ["train", "sample"], "helpers.authoring": ["students", "check"],
                "helpers.scaling.cli": ["write", "task", "collect", "compare"]}  # fmt: skip
    for module, names in commands.items():
        for name in names:
            with pytest.raises(SystemExit):
                importlib.import_module(module).main([name, "--help"])
            usage, description = capsys.readouterr().out.split("\n\n")[:2]
            assert "usage:" in usage and description.strip() and ":" not in description, description
    with pytest.raises(SystemExit):
        importlib.import_module("helpers.scaling.cli").main(["task", "--help"])
    assert "$SLURM_ARRAY_TASK_ID" in capsys.readouterr().out


def test_seeds_keep_their_whole_range(capsys):
    from helpers.cli import Parser

    parser = Parser(prog="p")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--split-seed", type=int)
    big = str(2**62)
    assert parser.parse_args(["--seed", big, "--split-seed", big]).seed == 2**62


def test_ctrl_c_stops_a_command_with_one_line_saying_what_is_kept(capsys):
    from helpers.cli import stops_cleanly

    @stops_cleanly("the same command resumes")
    def main(argv):
        raise KeyboardInterrupt

    assert main([]) == 130
    assert capsys.readouterr().err == "\nstopped: the same command resumes\n"
    for module in COMMANDS:
        source = Path(importlib.import_module(module).__file__).read_text()
        assert "@stops_cleanly(" in source or "return stopped(" in source, module


def test_help_shows_the_default_of_a_flag_without_help_text(capsys):
    """argparse leaves a flag with no help text out of its formatter, so its default was never shown
    (gpt train's --layers, --heads, --lr, ...)."""
    from helpers.cli import Parser

    parser = Parser(prog="p")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--note", help="with help text")
    parser.add_argument("--out")
    text = parser.format_help()
    assert "--layers LAYERS  (default: 4)" in text and "--out OUT\n" in text + "\n", text
    with pytest.raises(SystemExit):
        importlib.import_module("helpers.gpt.cli").main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for flag in (
        "--layers LAYERS (default: 4)",
        "--lr LR (default: 0.002)",
        "--seed SEED (default: 42)",
    ):
        assert flag in shown, shown


# --- two runs on one output ---------------------------------------------------------------------


@pytest.fixture
def held(cache, tmp_path):
    """Another process holding the run lock of an output, as a second command on it would."""
    import subprocess
    import sys

    def hold(path: Path, flag: str) -> subprocess.Popen:
        code = ("import sys; from pathlib import Path; from helpers.cli import lock_output; "
                f"lock_output(Path({str(path)!r}), {flag!r}); print('held', flush=True); sys.stdin.read()")  # fmt: skip
        other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, cwd=ROOT)  # fmt: skip
        holders.append(other)
        assert other.stdout.readline() == "held\n"
        return other

    holders: list = []
    yield hold
    for other in holders:
        other.kill()
        other.wait()
        other.stdin.close()
        other.stdout.close()


def test_a_second_run_on_the_same_save_or_json_is_refused_by_name(held, tmp_path, capsys):
    """Two runs given one --save each found it empty and both wrote there (plan.json of one, model.pt
    of the other), or both wrote one --json and one result was lost, each saying "wrote"."""
    from helpers.corpora import synthetic_text
    from helpers.gpt import cli as gpt
    from helpers.mlm import cli as mlm

    data = tmp_path / "text.txt"
    data.write_text(synthetic_text(3000), encoding="utf-8")
    save, out = tmp_path / "m", tmp_path / "run.json"
    args = ["train", "--data", str(data), "--iters", "4", "--layers", "1", "--heads", "2", "--embd", "16",
            "--block-size", "16", "--batch-size", "8", "--evals", "2", "--save", str(save), "--json", str(out), "--quiet"]  # fmt: skip
    other = held(save, "--save")
    assert gpt.main(args) == 2
    err = capsys.readouterr().err
    assert (
        f"error: --save {save} is in use by another run (process {other.pid}): let it finish" in err
    )
    assert not save.exists() and not out.exists()  # nothing of this run written
    mlm_args = [
        "--train-file",
        str(data),
        "--save",
        str(tmp_path / "p"),
        "--json",
        str(out),
        "--quiet",
    ]
    held(out, "--json")
    assert mlm.main(mlm_args) == 2
    assert f"error: --json {out} is in use by another run" in capsys.readouterr().err
    other.kill()
    other.wait()  # a killed holder holds nothing: the operating system dropped its lock
    assert gpt.main([*args[:-2], str(tmp_path / "other.json"), "--quiet"]) == 0


def test_only_rank_0_locks_the_outputs_and_a_finished_command_frees_them(
    cache, tmp_path, monkeypatch
):
    from helpers import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    cli.lock_output(tmp_path / "run.json", "--json")  # rank 1 writes nothing: no lock
    assert cli._HELD == {}
    monkeypatch.setenv("RANK", "0")
    cli.lock_output(tmp_path / "run.json", "--json")
    cli.lock_output(
        tmp_path / "sub" / ".." / "run.json", "--checkpoint"
    )  # the same file: held already
    assert len(cli._HELD) == 1
    cli.release_outputs()
    assert cli._HELD == {}


def test_a_lock_whose_holder_id_cannot_be_written_is_still_released(cache, tmp_path, monkeypatch):
    """A full disk while writing the holder's id left the lock held for good (notebook 09 runs the
    finetune command in its kernel: that --json was refused until a restart)."""
    import errno
    import os

    from helpers import cli

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli.os, "write", full)
    cli.lock_output(tmp_path / "run.json", "--json")
    cli.release_outputs()
    monkeypatch.setattr(cli.os, "write", os.write)
    cli.lock_output(tmp_path / "run.json", "--json")  # free again
    cli.release_outputs()


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_left_alone(cache, tmp_path, capsys):
    """The lock's name is a hash anyone can compute: a link planted in a shared cache's locks folder
    had the holder's id written through it, emptying the file it pointed to."""
    import hashlib
    import os

    from helpers import cli
    from helpers.corpora import synthetic_text
    from helpers.gpt import cli as gpt

    data, save = tmp_path / "text.txt", tmp_path / "m"
    data.write_text(synthetic_text(3000), encoding="utf-8")
    victim = tmp_path / "notes.txt"
    victim.write_text("two lines\nof work\n", encoding="utf-8")
    locks = cache / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(save.resolve()).encode()).hexdigest()[:24]
    (locks / f"{key}.lock").symlink_to(victim)
    args = ["train", "--data", str(data), "--iters", "4", "--layers", "1", "--heads", "2", "--embd", "16",
            "--block-size", "16", "--batch-size", "8", "--evals", "2", "--save", str(save),
            "--json", str(tmp_path / "run.json"), "--quiet"]  # fmt: skip
    assert gpt.main(args) == 2
    err = capsys.readouterr().err
    assert (
        f"the run lock {locks / key}.lock is a link or a special file" in err and "delete it" in err
    )
    assert victim.read_text(encoding="utf-8") == "two lines\nof work\n" and not save.exists()
    (locks / f"{key}.lock").unlink()
    os.link(victim, locks / f"{key}.lock")  # a hard link: the same file under two names
    with pytest.raises(ValueError, match="is a link or a special file"):
        cli.lock_output(save, "--save")
    assert victim.read_text(encoding="utf-8") == "two lines\nof work\n" and cli._HELD == {}


def test_a_lock_that_is_a_pipe_or_a_link_without_o_nofollow_is_refused_at_once(
    cache, tmp_path, monkeypatch
):
    """Opening a pipe read-only waits for a writer (another user's pipe in a shared cache hung the
    command for good); where os has no O_NOFOLLOW (Windows) the link was followed and its target
    written over with the holder's id."""
    import hashlib
    import os

    from helpers import cli

    locks = cache / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "run.json"
    lock = locks / f"{hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:24]}.lock"
    os.mkfifo(lock)
    with monkeypatch.context() as as_another_user:  # who may only read it
        as_another_user.setattr(cli.os, "O_RDWR", os.O_RDONLY)
        with pytest.raises(ValueError, match="is a link or a special file"):
            cli.lock_output(out, "--json")
    lock.unlink()
    victim = tmp_path / "notes.txt"
    victim.write_text("my notes\n", encoding="utf-8")
    lock.symlink_to(victim)
    with monkeypatch.context() as windows:
        windows.delattr(os, "O_NOFOLLOW")
        with pytest.raises(ValueError, match="is a link or a special file"):
            cli.lock_output(out, "--json")
    assert victim.read_text(encoding="utf-8") == "my notes\n" and cli._HELD == {}


@pytest.mark.parametrize(
    ("module", "args"),
    [("helpers.mlm.cli", ["--train-file", "t.txt", "--save", "s", "--json", "o.json"]),
     ("helpers.minbert.cli", ["--model", "tiny", "--train-file", "t.txt", "--json", "o.json"]),
     ("helpers.finetune.twin", ["--pretrained", "p", "--sst-file", "t.tsv", "--json", "o.json"]),
     ("helpers.imdb.ablation", ["--train-file", "t.jsonl", "--glove-file", "g.txt", "--json", "o.json"]),
     ("helpers.benchmark", ["block", "--json", "o.json"])],
)  # fmt: skip
def test_a_wrong_helpers_device_is_one_line_and_exit_2(
    module, args, cache, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELPERS_DEVICE", "gpu")
    assert importlib.import_module(module).main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: HELPERS_DEVICE='gpu' is not a device") and "Traceback" not in err


def test_the_ablation_and_an_explicit_checkpoint_are_locked_too(held, cache, tmp_path, capsys):
    from helpers.finetune import cli as finetune
    from helpers.imdb import ablation

    out, checkpoint = tmp_path / "ablation.json", tmp_path / "mine.pt"
    held(out, "--json")
    args = ["--train-file", "t.jsonl", "--glove-file", "g.txt", "--json", str(out)]
    assert ablation.main(args) == 2
    assert f"error: --json {out} is in use by another run" in capsys.readouterr().err
    held(checkpoint, "--checkpoint")
    args = ["--model", "tiny", "--train-file", "t.csv", "--eval-file", "e.csv", "--json", str(tmp_path / "f.json"),
            "--checkpoint", str(checkpoint)]  # fmt: skip
    assert finetune.main(args) == 2
    assert f"error: --checkpoint {checkpoint} is in use by another run" in capsys.readouterr().err


LOCKING = [  # (command, argv): each locks an output before its other checks
    ("helpers.gpt.cli", ["train", "--data", "t.txt", "--save", "s", "--json", "o.json"]),
    ("helpers.mlm.cli", ["--train-file", "t.txt", "--save", "s", "--json", "o.json"]),
    ("helpers.minbert.cli", ["--model", "tiny", "--train-file", "t.txt", "--json", "o.json"]),
    ("helpers.finetune.cli", ["--model", "tiny", "--train-file", "t.csv", "--eval-file", "e.csv", "--json", "o.json"]),
    ("helpers.finetune.twin", ["--pretrained", "p", "--sst-file", "t.tsv", "--json", "o.json"]),
    ("helpers.imdb.cli", ["--train-file", "t.jsonl", "--test-file", "e.jsonl", "--glove-file", "g.txt", "--json", "o.json"]),
    ("helpers.imdb.ablation", ["--train-file", "t.jsonl", "--glove-file", "g.txt", "--json", "o.json"]),
]  # fmt: skip


@pytest.mark.parametrize("bad", ["relative-cache", "a-file", "~no-such-user-here/cache"])
@pytest.mark.parametrize(("module", "args"), LOCKING)
def test_a_bad_helpers_cache_is_named_not_a_run_without_its_lock(
    module, args, bad, tmp_path, monkeypatch, capsys
):
    """A relative $HELPERS_CACHE, or one that is a file, turned the run lock off without a word (two
    runs on one --save both wrote there); a ~user this machine lacks was a RuntimeError traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text(
        "some text to train on\n" * 50, encoding="utf-8"
    )  # gpt reads it first
    (tmp_path / "a-file").write_text("not a folder\n", encoding="utf-8")
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path / bad) if bad == "a-file" else bad)
    assert importlib.import_module(module).main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: $HELPERS_CACHE=") and err.count("\n") == 1, err


def test_a_run_without_a_lock_says_so(cache, tmp_path, monkeypatch, capsys):
    """Where the locks folder cannot be written the run goes on, but not silently."""
    from helpers import cli

    mkdir = Path.mkdir

    def unwritable_locks(path: Path, *args, **kwargs) -> None:
        if path.name == "locks":
            raise PermissionError(13, "Permission denied")
        mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", unwritable_locks)
    cli.lock_output(tmp_path / "o.json", "--json")
    assert cli._HELD == {}
    assert capsys.readouterr().err == (f"note: --json {tmp_path / 'o.json'} runs without a run lock (Permission "
                                       "denied): a second run on it would not be refused\n")  # fmt: skip


@pytest.mark.parametrize(("module", "args"), [
    ("helpers.finetune.cli", ["--model", "tiny", "--train-file", "t.tsv", "--eval-file", "t.tsv", "--json", "o.json"]),
    ("helpers.minbert.cli", ["--model", "minilm", "--train-file", "t.txt", "--json", "o.json"]),
])  # fmt: skip
def test_a_folder_named_like_a_built_in_model_is_not_passed_over(
    module, args, cache, tmp_path, monkeypatch, capsys
):
    """A saved model in a folder named tiny (or minilm) was silently replaced by the built-in one."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / args[1]
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    lines = [f"{i % 2} ||| {'good' if i % 2 else 'bad'} film number {i}" for i in range(20)]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tsv = [f"{'good' if i % 2 else 'bad'} film number {i}\t{i % 2}" for i in range(20)]
    (tmp_path / "t.tsv").write_text("sentence\tlabel\n" + "\n".join(tsv) + "\n", encoding="utf-8")
    assert importlib.import_module(module).main(args) == 2
    err = capsys.readouterr().err
    assert (
        f"'{args[1]}' names the course's" in err and f"write ./{args[1]} for the folder" in err
    ), err


@pytest.mark.parametrize("given", ["", ".", "runs/", "/"])
@pytest.mark.parametrize(("module", "args"), [
    *LOCKING, ("helpers.imdb.baseline", ["--train-file", "t.jsonl", "--test-file", "e.jsonl", "--json"]),
    ("helpers.benchmark", ["block", "--json"]), ("helpers.scaling.cli", ["collect", "runs", "--json"]),
])  # fmt: skip
def test_an_output_file_that_names_a_folder_is_refused_at_parsing(module, args, given, capsys):
    """--json runs/ wrote a file named runs; --json . failed after the checks with "PosixPath('.')
    has an empty name", naming no flag."""
    argv = [*args[: args.index("--json") + 1], given] if args[-1] != "--json" else [*args, given]
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: argument --json: {given!r} is not a file name")
        and err.count("\n") == 1
    ), err


def test_a_built_in_name_the_course_uses_itself_is_not_refused(cache, tmp_path, monkeypatch):
    """The tiny stand-in loads MiniLM's tokenizer: a folder ./minilm the user never named had made
    --model tiny fail."""
    from helpers.finetune.models import load_classifier

    monkeypatch.chdir(tmp_path)
    (tmp_path / "minilm").mkdir()
    (tmp_path / "minilm" / "config.json").write_text("{}", encoding="utf-8")
    model, tokenizer = load_classifier("tiny", 2)
    assert tokenizer.vocab_size > 1000


REPORTERS = [  # (module, function): every command function that writes a JSON report
    ("helpers.benchmark", "main"), ("helpers.finetune.cli", "main"), ("helpers.finetune.proxy", "main"),
    ("helpers.finetune.twin", "main"), ("helpers.gpt.cli", "run_train"), ("helpers.imdb.ablation", "main"),
    ("helpers.imdb.baseline", "main"), ("helpers.imdb.cli", "main"), ("helpers.minbert.cli", "main"),
    ("helpers.mlm.cli", "main"), ("helpers.scaling.cli", "main"),
]  # fmt: skip


def test_the_reporters_list_is_every_module_that_writes_a_report():
    writers = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "helpers").rglob("*.py")
        if any(f"{call}(" in path.read_text() for call in ("write_report", "write_json"))
    }
    commands = {module for module in writers if module in COMMANDS}
    assert commands == {module for module, _ in REPORTERS}


@pytest.mark.parametrize(("module", "function"), REPORTERS)
def test_a_nan_bound_for_a_report_is_one_line_and_exit_2(module, function):
    """A NaN no check caught was written as invalid JSON; since reports refuse NaN, each command says
    so in one line (``cli.refuses_non_finite``, inside ``stops_cleanly`` too) instead of a traceback."""
    from helpers.cli import refuses_non_finite

    command = getattr(importlib.import_module(module), function)
    # the outermost function is the wrapper's own (a marker attribute would be copied by wraps)
    assert command.__code__ is refuses_non_finite(lambda: 0).__code__, command


@pytest.mark.parametrize(
    ("module", "argv", "required"),
    [("helpers.imdb.ablation", ["--seed", "5"], ["--train-file", "t", "--glove-file", "g"]),
     ("helpers.finetune.twin", ["--seed", "42"], ["--pretrained", "p", "--sst-file", "s"]),
     ("helpers.finetune.cli", ["--max-leng", "5"], ["--model", "m", "--train-file", "t", "--eval-file", "e"])],
)  # fmt: skip
def test_a_flag_is_never_taken_for_a_longer_one(module, argv, required, capsys):
    """argparse took any unique prefix of a flag: `--seed 42` in `finetune compare` ran 42 seeds of each
    model (--seeds), `--seed 5` in the ablation 5 seeds per change."""
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main([*required, "--json", "o.json", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {' '.join(argv)}" in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("module", "argv", "help_of"),
    [("helpers.gpt.cli", ["train", "--data", "t.txt", "--save", "s", "--json", "o.json", "--bogus", "1"],
      "python -m helpers.gpt train"),
     ("helpers.scaling.cli", ["write", "--out", "o", "--models", "tiny", "--bogus"], "python -m helpers.scaling write"),
     ("helpers.authoring", ["students", "--bogus"], "python -m helpers.authoring students")],
)  # fmt: skip
def test_a_sub_commands_unknown_flag_names_that_sub_commands_help(module, argv, help_of, capsys):
    """It pointed at the top level's --help, which lists none of the sub-command's flags."""
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"(see {help_of} --help)\n")


def help_of(module: str, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        importlib.import_module(module).main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


@pytest.mark.parametrize(
    ("module", "argv", "shown"),
    [("helpers.imdb.cli", [], "of the train file, held out (seed 42) (default: 0.1)"),
     ("helpers.imdb.cli", [], "--epochs EPOCHS default: the --config's (course 5, best 6)"),
     ("helpers.imdb.cli", [], "auto (by hardware), fp32, bf16 or fp16 (default: auto)"),
     ("helpers.minbert.cli", [], "--lr LR default: the --option's (finetune 0.0001, pretrain 0.01)"),
     ("helpers.finetune.twin", [], "--seeds SEEDS per small model (default: 3)"),
     ("helpers.scaling.cli", ["write"], "--parallel PARALLEL array tasks running at once at most (default: 4)"),
     ("helpers.scaling.cli", ["compare"], "--processes PROCESSES comma-separated (default: 1,2)"),
     ("helpers.gpt.cli", ["train"], "--quiet no progress bar")],
)  # fmt: skip
def test_help_shows_every_default_as_it_is_typed(module, argv, shown, capsys):
    """Only flags without help text showed their default (`imdb --valid-fraction` did not, the
    ablation's did); a list's showed as Python's `[1, 2]`; flags left to the config said nothing."""
    text = help_of(module, argv, capsys)
    assert shown in text, text
    assert "default: [" not in text and "(default: False)" not in text, text


@pytest.mark.parametrize("module", ["helpers.imdb.cli", "helpers.minbert.cli", "helpers.finetune.cli",
                                    "helpers.finetune.twin", "helpers.scaling.cli"])  # fmt: skip
def test_both_spellings_of_the_token_limit_are_taken(module):
    """`--max-len` in imdb and minbert, `--max-length` in finetune: imdb and minbert refused the other
    spelling (finetune took `--max-len` only as a prefix, which the parser no longer allows)."""
    parse = importlib.import_module(module).parse
    required = {"helpers.imdb.cli": ["--train-file", "t", "--test-file", "t", "--glove-file", "g"],
                "helpers.minbert.cli": ["--model", "m", "--train-file", "t"],
                "helpers.finetune.cli": ["--model", "m", "--train-file", "t", "--eval-file", "e"],
                "helpers.finetune.twin": ["--pretrained", "p", "--sst-file", "s"],
                "helpers.scaling.cli": ["write", "--out", "o", "--models", "tiny", "--train-file", "t",
                                        "--eval-file", "e"]}[module]  # fmt: skip
    spelled = [
        vars(parse([*required, *([] if "scaling" in module else ["--json", "o.json"]), flag, "64"]))
        for flag in ("--max-len", "--max-length")
    ]
    assert spelled[0] == spelled[1] and 64 in spelled[0].values()


@pytest.mark.parametrize(
    ("module", "said"),
    [("helpers.benchmark", "no report is written; run it again"),
     ("helpers.imdb.baseline", "no report is written; run it again"),
     ("helpers.finetune.proxy", "each file is written whole or not at all"),
     ("helpers.scaling.cli", "compare's gpt runs keep what they saved"),
     ("helpers.authoring", "each notebook is written whole or not at all")],
)  # fmt: skip
def test_ctrl_c_in_the_other_commands_is_one_line_and_exit_130(module, said, monkeypatch, capsys):
    """They ended in a KeyboardInterrupt traceback (`benchmark block`, `scaling compare`, tried)."""
    from helpers.cli import Parser

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Parser, "parse_args", interrupted)
    assert importlib.import_module(module).main(["anything"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("\nstopped: ") and said in err and err.count("\n") == 2, err


def test_imdb_names_a_bad_precision_as_its_flag(tmp_path, capsys):
    from helpers.imdb import cli

    argv = ["--train-file", "t.jsonl", "--test-file", "t.jsonl", "--glove-file", "g", "--json",
            str(tmp_path / "o.json"), "--precision", "fp8"]  # fmt: skip
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --precision must be one of auto, fp32")


INPUTS = {  # command: (its input flags, other required flags)
    "helpers.imdb.cli": (["--train-file", "--test-file", "--glove-file"], []),
    "helpers.imdb.baseline": (["--train-file", "--test-file"], []),
    "helpers.imdb.ablation": (["--train-file", "--glove-file", "--choose-file"], []),
    "helpers.minbert.cli": (["--train-file", "--dev-file", "--test-file"], ["--model", "minilm"]),
    "helpers.finetune.cli": (["--train-file", "--eval-file", "--test-file"], ["--model", "tiny"]),
    "helpers.finetune.proxy": (["--sst-file", "--train-file"], ["--out", "proxy"]),
}


@pytest.mark.parametrize(
    ("module", "flag"), [(module, flag) for module, (flags, _) in INPUTS.items() for flag in flags]
)
def test_a_missing_or_folder_input_is_named_by_its_flag(
    module, flag, tmp_path, monkeypatch, capsys
):
    """imdb, minbert, finetune and the baseline said only "nope.jsonl does not exist", the proxy
    "[Errno 2] No such file or directory: 'nope'"; mlm and gpt named the flag."""
    monkeypatch.chdir(tmp_path)
    flags, other = INPUTS[module]
    for name in flags:
        (tmp_path / name.strip("-")).write_text("")
    main = importlib.import_module(module).main
    json = [] if module.endswith("proxy") else ["--json", "out.json"]
    for given, said in (
        ("nope.txt", "does not exist; check the path"),
        (".", "is a folder; give a file"),
    ):
        argv = [x for f in flags for x in (f, given if f == flag else f.strip("-"))]
        assert main([*argv, *other, *json]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag} {given} {said}") and err.count("\n") == 1, err


def wrapped_command(tmp_path: Path, body: str) -> list[str]:
    """The argv of a script whose ``main`` (``body``: its lines, unindented) runs under
    ``cli.refuses_non_finite``, every command's outermost wrapper."""
    script = tmp_path / "command.py"
    script.write_text("import os, sys\nfrom helpers.cli import refuses_non_finite\ndef main():\n"
                      + textwrap.indent(body, "    ") + "sys.exit(refuses_non_finite(main)())\n",
                      encoding="utf-8")  # fmt: skip
    return [sys.executable, str(script)]


def script_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_a_command_writes_characters_its_output_cannot_encode_as_escapes(tmp_path):
    """Under PYTHONIOENCODING=ascii, the C locale or a Windows code page, gpt sample printed its
    sample and finetune its labels ("négatif") into a UnicodeEncodeError traceback: the sample and
    the report were lost (an environment probe, stop 56). A process of its own: the browser tier's
    threads share this one's sys.stdout."""
    argv = wrapped_command(tmp_path, "print('négatif ✓')\nreturn 0\n")
    done = subprocess.run(argv, capture_output=True, env=script_env(PYTHONIOENCODING="ascii"))
    assert done.returncode == 0 and done.stdout == b"n\\xe9gatif \\u2713\n", done.stderr


def test_a_command_whose_reader_went_away_stops_quietly(tmp_path):
    """`gpt sample ... | head -1` ended in a BrokenPipeError traceback (exit 1)."""
    argv = wrapped_command(tmp_path, "for i in range(200_000):\n    print('line', i)\nreturn 0\n")
    writer = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=script_env()
    )
    assert writer.stdout.readline() == b"line 0\n"
    writer.stdout.close()  # as `head -1` exits
    assert writer.wait(timeout=60) == 141
    assert writer.stderr.read() == b""  # no traceback, no "Exception ignored" at exit


def test_a_command_whose_error_reader_went_away_stops_quietly_too(tmp_path):
    """`cmd 2>&1 >/dev/null | head -1`: the error stream's reader gone gave exit 1 and a traceback
    written nowhere (a review of stop 56's diff)."""
    body = "for i in range(200_000):\n    print('note', i, file=sys.stderr, flush=True)\nreturn 0\n"
    argv = wrapped_command(tmp_path, body)
    writer = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=script_env()
    )
    assert writer.stderr.readline() == b"note 0\n"
    writer.stderr.close()
    assert writer.wait(timeout=60) == 141


def test_a_gone_reader_is_seen_as_linux_and_macos_report_it(monkeypatch):
    """poll() says POLLERR for a pipe whose reader exited on Linux, POLLHUP on macOS: with POLLERR
    alone, `| head -1` on a Mac was a traceback again."""
    import select

    from helpers import cli

    class Poll:
        def __init__(self, event):
            self.event = event

        def register(self, fd, mask):
            pass

        def poll(self, timeout):
            return [(1, self.event)]

    # cli's own names, not the modules: the browser tier's threads in this process use those
    monkeypatch.setattr(cli, "stat", SimpleNamespace(S_ISFIFO=lambda mode: True))
    for event, gone in ((select.POLLERR, True), (select.POLLHUP, True), (select.POLLOUT, False)):
        fake = SimpleNamespace(poll=lambda event=event: Poll(event), POLLOUT=select.POLLOUT,
                               POLLERR=select.POLLERR, POLLHUP=select.POLLHUP)  # fmt: skip
        monkeypatch.setattr(cli, "select", fake)
        assert cli._reader_gone(sys.__stdout__) == gone, event
    assert not cli._reader_gone(io.StringIO())  # not this process's own stream


def test_a_broken_pipe_that_is_not_the_output_stays_an_error(tmp_path):
    """A worker's or a socket's broken pipe is a real fault: not a quiet exit 141 with the rest of
    the output sent nowhere (a diff review of stop 56)."""
    body = "read, write = os.pipe()\nos.close(read)\nos.write(write, b'x')\nreturn 0\n"
    done = subprocess.run(wrapped_command(tmp_path, body), capture_output=True, text=True,
                          env=script_env())  # fmt: skip
    assert done.returncode == 1 and "BrokenPipeError" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "module", ["helpers.benchmark", "helpers.authoring", "helpers.finetune.proxy"]
)
def test_help_works_under_python_OO(module):
    """-OO removes docstrings: three commands built --help from __doc__ and gave AttributeError
    ('NoneType' object has no attribute 'split'), even for --help."""
    env = script_env()
    done = subprocess.run([sys.executable, "-OO", "-m", module, "--help"], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


def test_finetune_under_python_OO_names_it(tmp_path):
    """transformers builds its models from their docstrings: under -OO finetune printed its error
    about a missing `Args` section as if a setting were wrong."""
    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0}] * 4
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = script_env(HELPERS_CACHE=str(tmp_path / "cache"))
    argv = ["--model", "tiny", "--train-file", str(data), "--eval-file", str(data), "--text-column",
            "text", "--json", str(tmp_path / "o.json")]  # fmt: skip
    done = subprocess.run([sys.executable, "-OO", "-m", "helpers.finetune", *argv],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 2
    assert "transformers cannot build its models under python -OO" in done.stderr, done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="a file name of raw bytes is Linux's")
def test_an_output_whose_name_is_not_utf8_can_be_locked(cache, tmp_path):
    """A folder named in Latin-1 bytes (read by Python as '\\udce9') stopped every command that locks
    its outputs: "'utf-8' codec can't encode character '\\udce9' ... surrogates not allowed"."""
    from helpers import cli

    folder = tmp_path / os.fsdecode(b"lat\xe9")
    folder.mkdir()
    cli.lock_output(folder / "r.json", "--json")
    assert len(cli._HELD) == 1
    cli.release_outputs()
