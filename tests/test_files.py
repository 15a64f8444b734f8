"""The one atomic write: complete files only, and no write over something that is not a file."""

import errno
import gc
import json
import os
import pathlib
import signal
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.cli import stops_cleanly
from helpers.files import (
    DiskFull,
    NotFinite,
    atomic_write,
    check_writable,
    interrupt_after,
    load_arrays,
    save_arrays,
    save_into,
    write_json,
)


def test_a_failed_save_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "out" / "report.json"

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_json_file_never_holds_nan_or_infinity(tmp_path, bad):
    """json.dumps wrote NaN and Infinity, which jq and JavaScript's JSON.parse refuse."""
    target = tmp_path / "report.json"
    write_json(target, {"a": 1})
    with pytest.raises(NotFinite, match=rf"runs\[1\]\.loss \({bad}\) is not a finite number"):
        write_json(target, {"ok": 1.0, "runs": [{"loss": 0.5}, {"loss": bad}]})
    assert json.loads(target.read_text()) == {"a": 1}  # the file before is kept
    write_json(target, {"text": "pièce ✓", "n": [1.5, None]})
    assert "pièce ✓" in target.read_text(encoding="utf-8")  # readable text, not \u00e8 escapes
    assert json.loads(target.read_text(encoding="utf-8"))["text"] == "pièce ✓"
    write_json(target, {"data": "caf\udce9.txt", "text": "pièce"})  # a Latin-1 name on Linux
    assert json.loads(target.read_text(encoding="utf-8"))["data"] == "caf\udce9.txt"


def test_a_command_refuses_a_nan_bound_for_its_report_in_one_line(tmp_path, capsys):
    @stops_cleanly("nothing")
    def main() -> int:
        write_json(tmp_path / "r.json", {"test_loss": float("nan")})
        return 0

    assert main() == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'r.json'} was not written: test_loss (nan) is not a finite number, "
        "which JSON cannot hold (a diverged run?)\n"
    )


def test_a_library_save_moves_in_whole_files_or_none(tmp_path):
    """``save_into`` (a tokenizer's save_pretrained): a save that fails half-way leaves the folder as
    it was; one that finishes puts each of its files there, over older ones."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "vocab.txt").write_text("old")

    def broken(tmp):
        (tmp / "tokenizer.json").write_text("{")
        raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        save_into(folder, broken)
    assert sorted(p.name for p in folder.iterdir()) == ["vocab.txt"]
    save_into(
        folder, lambda tmp: [(tmp / n).write_text(n) for n in ("tokenizer.json", "vocab.txt")]
    )
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "tokenizer.json": "tokenizer.json",
        "vocab.txt": "vocab.txt",
    }
    assert save_into(tmp_path / "new" / "folder", lambda tmp: None).is_dir()  # made when missing


def test_saved_files_are_readable_by_others_as_open_would_make_them(tmp_path):
    """mkstemp and safetensors make 0o600 files: a model saved into a shared folder would be the saver's
    alone. Saved files get open()'s mode (0o666 less the umask), as a plain write would."""
    old = os.umask(0o022)
    os.umask(old)

    def private(tmp):
        tmp.write_text("weights")
        tmp.chmod(0o600)

    atomic_write(tmp_path / "report.json", private)
    save_into(tmp_path / "model", lambda tmp: private(tmp / "model.safetensors"))
    for path in (tmp_path / "report.json", tmp_path / "model" / "model.safetensors"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~old, path


@pytest.mark.parametrize("proc", [True, False])
def test_a_umask_set_after_import_is_the_one_used(tmp_path, monkeypatch, proc):
    """The umask was read once, at import: a notebook that then set a private one (0o077) still got
    files others could read, where open() would have made them private."""
    from helpers import files

    if not proc:  # macOS, Windows: no /proc, os.umask read by setting it back
        monkeypatch.setattr(files.Path, "read_text", lambda *a, **k: (_ for _ in ()).throw(OSError))
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "private.json", lambda tmp: tmp.write_text("{}"))
        assert os.umask(0o077) == 0o077  # left as it was
    finally:
        os.umask(old)
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_temporary_files_a_killed_write_left_are_removed_after_a_day(tmp_path):
    """kill -9 (or a SIGKILL after Slurm's SIGTERM) runs no clean-up: its .part file stays. The next
    write of the same file removes those over a day old; a fresh one may be another process's."""
    target = tmp_path / "glove.6B.zip"
    names = (
        "glove.6B.zip.ab12cd34",
        "glove.6B.zip.ef56gh78",
        "x.zip.ij90kl12",
        "glove.6B.zip.bak.mn34op56",
    )
    stale, fresh, other, longer = (tmp_path / f".{n}.part" for n in names)
    for part in (stale, fresh, other, longer):
        part.write_text("half a download")
    day_ago = time.time() - 24 * 3600 - 60
    for part in (stale, other, longer):
        os.utime(part, (day_ago, day_ago))
    atomic_write(target, lambda tmp: tmp.write_text("whole"))
    assert not stale.exists() and fresh.exists()
    assert (
        other.exists() and longer.exists()
    )  # other files' (x.zip's, glove.6B.zip.bak's): not this write's


def test_a_long_legal_file_name_is_written(tmp_path):
    """A 251-byte name (82 × 日 + .json) was refused as "File name too long": the temporary files
    beside it added 15-16 bytes to it. Their names are cut instead, and a killed write's is still
    found and removed after a day."""
    target = tmp_path / ("日" * 82 + ".json")
    assert len(target.name.encode()) == 251
    check_writable(target)
    write_json(target, {"a": 1})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 1}
    part = tmp_path / f".{'日' * 79}.ab12cd34.part"  # the name cut to 237 bytes
    part.write_text("half a write")
    day_ago = time.time() - 24 * 3600 - 60
    os.utime(part, (day_ago, day_ago))
    write_json(target, {"a": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_killed_model_save_s_folder_is_removed_after_a_day(tmp_path):
    """A hard kill during save_into left its hidden .saving-XXXXXXXX folder in the model folder for
    good; the next save into that folder removes those over a day old (a fresh one may be running)."""
    stale, fresh, other = (
        tmp_path / n for n in (".saving-ab12cd34", ".saving-ef56gh78", ".saving-x")
    )
    for tmp in (stale, fresh, other):
        tmp.mkdir()
        (tmp / "model.safetensors").write_text("half a save")
    day_ago = time.time() - 24 * 3600 - 60
    for tmp in (stale, other):
        os.utime(tmp, (day_ago, day_ago))
    save_into(tmp_path, lambda tmp: (tmp / "config.json").write_text("{}"))
    assert not stale.exists() and fresh.exists() and other.exists()  # other: not a save's name
    assert (tmp_path / "config.json").read_text() == "{}"


def test_text_is_written_as_utf8_with_newline_line_ends(tmp_path, monkeypatch):
    """On Windows, Python's defaults would write cp1252 and \\r\\n (a job script bash cannot run): the
    writer names both. (Here on Linux the defaults agree, so the call's arguments are what is checked.)"""
    from pathlib import Path

    from helpers.files import write_text

    calls = []
    plain = Path.write_text
    monkeypatch.setattr(
        Path, "write_text", lambda self, text, **kw: calls.append(kw) or plain(self, text, **kw)
    )
    path = write_text(tmp_path / "job.sh", "#!/bin/bash\necho Łukasz\n")
    assert calls == [{"encoding": "utf-8", "newline": "\n"}]
    assert path.read_bytes() == "#!/bin/bash\necho Łukasz\n".encode()


def test_targets_that_are_not_files_are_refused_before_any_work(tmp_path):
    with pytest.raises(
        ValueError, match="cannot write .*: it is a folder; give the name of a file"
    ):
        check_writable(tmp_path)
    with pytest.raises(ValueError, match="cannot write /dev/null: it is not a regular file"):
        check_writable("/dev/null")
    blocker = tmp_path / "a.txt"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write .*a.txt/b.json: .*choose another place"):
        check_writable(blocker / "b.json")


def test_a_report_never_replaces_a_run_file_or_a_file_that_is_not_a_report(tmp_path):
    from helpers.files import check_report

    (tmp_path / "old.json").write_text('{"accuracy": 0.8}')
    assert check_report(tmp_path / "old.json") == tmp_path / "old.json"  # a rerun's own report
    assert check_report(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    for name in ("config.json", "model.safetensors", "vocab.json", "model.safetensors.index.json"):
        with pytest.raises(
            ValueError, match=f"{name} is the name of a saved model's or run's file"
        ):
            check_report(tmp_path / name)  # also before it exists: a rerun would be refused
    (tmp_path / "lesson.ipynb").write_text('{"cells": []}')
    (tmp_path / "notes.json").write_text("not json")
    for name in ("lesson.ipynb", "notes.json"):
        with pytest.raises(ValueError, match="exists and is not a JSON report"):
            check_report(tmp_path / name)


def test_a_report_never_replaces_another_commands_report(tmp_path):
    """Any JSON passed as a report: `finetune --json pretrain.json` replaced mlm's report, exit 0."""
    from helpers.files import check_report, write_report

    mine = write_report(
        tmp_path / "mine.json", "python -m helpers.mlm", {"eval_perplexity": [70.0]}
    )
    written = json.loads(mine.read_text())
    assert list(written) == ["command", "eval_perplexity", "provenance"]
    assert written["command"] == "python -m helpers.mlm" and written["eval_perplexity"] == [70.0]
    assert check_report(mine, command="python -m helpers.mlm") == mine  # a rerun's own report
    assert check_report(mine) == mine  # no command named: any JSON report
    with pytest.raises(ValueError, match="mine.json is the report of python -m helpers.mlm: writing "
                       "would replace it; give another --json, or delete the file"):  # fmt: skip
        check_report(mine, command="python -m helpers.finetune")
    (tmp_path / "data.json").write_text('[{"text": "a review", "label": 1}]')
    with pytest.raises(
        ValueError, match="holds JSON that python -m helpers.finetune did not write"
    ):
        check_report(tmp_path / "data.json", command="python -m helpers.finetune")


def test_a_report_from_before_the_command_field_is_recognised_by_its_keys(tmp_path):
    """Notebook 09 reruns its gpt and finetune commands over their cached reports: one written before
    the "command" field must not stop the rerun, while JSON of another shape still does."""
    from helpers.files import check_report

    old = tmp_path / "1.json"
    old.write_text('{"dev_losses": [4.1, 3.9], "train_losses": [4.3, 4.0], "config": {}}')
    shape = ("dev_losses", "train_losses")
    assert check_report(old, command="python -m helpers.gpt train", shape=shape) == old
    with pytest.raises(ValueError, match="nothing in it names python -m helpers.finetune"):
        check_report(old, command="python -m helpers.finetune", shape=("accuracy_per_epoch",))
    old.write_text('{"command": 5, "dev_losses": [4.1], "train_losses": [4.3]}')  # not a name
    with pytest.raises(ValueError, match="nothing in it names python -m helpers.gpt train"):
        check_report(old, command="python -m helpers.gpt train", shape=shape)


@pytest.fixture
def ctrl_c_raises():
    """SIGINT as at a terminal (a job started with `cmd &` inherits it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_save_waits_until_the_file_is_whole(tmp_path, ctrl_c_raises):
    """A Ctrl-C that lands while a checkpoint is written (273 MB: about a second) cut the save off, and
    the epoch it held was lost, though it had been announced."""
    path = tmp_path / "checkpoint.pt"

    def save(tmp):
        with open(tmp, "w") as f:
            f.write("first half, ")
            os.kill(os.getpid(), signal.SIGINT)  # the key pressed mid-save
            f.write("second half")

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, save)
    assert path.read_text() == "first half, second half"
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C works as before afterwards
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_ctrl_c_while_a_model_folder_is_saved_leaves_every_file_in_place(tmp_path, ctrl_c_raises):
    def save(tmp):
        (tmp / "config.json").write_text("{}")
        os.kill(os.getpid(), signal.SIGINT)
        (tmp / "model.safetensors").write_text("weights")

    with pytest.raises(KeyboardInterrupt):
        save_into(tmp_path, save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_interrupt_after_keeps_an_ignored_sigint_ignored_and_leaves_nesting_to_the_outer_block(
    ctrl_c_raises,
):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job (`cmd &`)
    try:
        with interrupt_after():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after():
            with interrupt_after():
                os.kill(os.getpid(), signal.SIGINT)
            steps.append("inner done")  # the inner block does not raise inside the outer one
    assert steps == ["inner done"]


def test_interrupt_after_in_a_thread_changes_no_handler(tmp_path):
    import threading

    handler, seen = signal.getsignal(signal.SIGINT), []

    def save():
        atomic_write(tmp_path / "t.txt", lambda tmp: tmp.write_text("x"))
        seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=save)
    thread.start()
    thread.join()
    assert seen == [handler] and (tmp_path / "t.txt").read_text() == "x"


def test_a_download_stops_at_ctrl_c_at_once_leaving_no_file(tmp_path, ctrl_c_raises):
    """A download can take minutes (GloVe's zip is 822 MB): Ctrl-C stops it then and there."""
    written = []

    def fetch(tmp):
        tmp.write_text("part")
        os.kill(os.getpid(), signal.SIGINT)
        written.append("rest")  # not reached: the interrupt stops the fetch

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "glove.zip", fetch, wait=False)
    assert written == [] and list(tmp_path.iterdir()) == []


def test_a_full_disk_is_named_and_leaves_the_old_file_whole(tmp_path, monkeypatch):
    """Python's error 28, and torch's writer's RuntimeError when the disk has no room left, become
    one DiskFull naming the file; another RuntimeError stays itself."""
    target = tmp_path / "checkpoint.pt"
    target.write_text("the last good epoch")

    def no_space(tmp):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull, match=r"is full: checkpoint.pt could not be written"):
        atomic_write(target, no_space)
    assert target.read_text() == "the last good epoch" and len(list(tmp_path.iterdir())) == 1

    def torch_writer(tmp):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . unexpected pos 49216 vs 49108"
        )

    monkeypatch.setattr("helpers.files.shutil.disk_usage", lambda p: SimpleNamespace(free=0))
    with pytest.raises(DiskFull, match="checkpoint.pt could not be written"):
        atomic_write(target, torch_writer)
    with pytest.raises(DiskFull):
        save_into(tmp_path / "model", lambda tmp: torch_writer(tmp))
    monkeypatch.setattr("helpers.files.shutil.disk_usage", lambda p: SimpleNamespace(free=1 << 30))
    with pytest.raises(RuntimeError, match="unexpected pos") as err:
        atomic_write(target, torch_writer)
    assert not isinstance(err.value, DiskFull)


def test_only_a_write_out_of_space_is_called_a_full_disk(tmp_path, monkeypatch):
    """safetensors' Rust error says "os error 28" (an Exception, not an OSError); an offline
    download's error on a nearly full disk is still the download's."""
    from helpers.download import DownloadError

    class SafetensorError(Exception):
        pass

    def rust(tmp):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    with pytest.raises(DiskFull, match="model.safetensors could not be written"):
        atomic_write(tmp_path / "model.safetensors", rust)

    def windows(tmp):  # ERROR_DISK_FULL, as Rust writes it on Windows
        raise SafetensorError("I/O error: There is not enough space on the disk. (os error 112)")

    with pytest.raises(DiskFull, match="model.safetensors could not be written"):
        atomic_write(tmp_path / "model.safetensors", windows)
    monkeypatch.setattr("helpers.files.shutil.disk_usage", lambda p: SimpleNamespace(free=0))

    def offline(tmp):
        raise DownloadError("could not download tinyshakespeare.txt (Name or service not known)")

    with pytest.raises(DownloadError, match="could not download"):
        atomic_write(tmp_path / "tinyshakespeare.txt", offline)


def test_a_command_stopped_by_a_full_disk_says_so_in_one_line(capsys):
    @stops_cleanly("the last epoch is kept")
    def main():
        raise DiskFull("the disk holding /x is full: r.json could not be written")

    assert main() == 1
    err = capsys.readouterr().err
    expected = "error: the disk holding /x is full: r.json could not be written"
    assert err == f"{expected}; the last epoch is kept\n", err


def test_a_used_up_quota_is_a_full_disk_named_as_a_quota(tmp_path):
    """A cluster's home folder runs out by quota (error 122): it ended finetune, mlm and imdb in a
    traceback and gpt train in "error: [Errno 122] Disk quota exceeded" with exit 2."""

    def quota(tmp):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    with pytest.raises(DiskFull, match=r"^your disk quota is used up on the disk holding .*: r.json "
                       "could not be written, and nothing there was replaced; make room"):  # fmt: skip
        atomic_write(tmp_path / "r.json", quota)

    def rust(tmp):  # safetensors' error, not an OSError
        raise RuntimeError("I/O error: Disk quota exceeded (os error 122)")

    with pytest.raises(DiskFull, match="your disk quota is used up"):
        atomic_write(tmp_path / "model.safetensors", rust)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_temporary_files_killed_writes_left(tmp_path, monkeypatch):
    """A `kill -9` during a 25 MB checkpoint's save left its .part file; the next run's save found
    the disk full and said nothing of where the space had gone (such files go after a day)."""
    (tmp_path / ".checkpoint.pt.1bb9kjw6.part").write_bytes(b"x" * 3 * 2**20)
    (tmp_path / ".saving-abcd1234").mkdir()
    (tmp_path / ".saving-abcd1234" / "model.safetensors").write_bytes(b"x" * 2**20)

    def no_space(tmp):
        tmp.write_bytes(b"x" * 2**20)  # this write's own temporary file: not a leftover
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull) as full:
        atomic_write(tmp_path / "checkpoint.pt", no_space)
    assert str(full.value).endswith(
        "make room and run it again; 2 temporary file(s) there that killed writes left hold 4.0 MB "
        "(.checkpoint.pt.1bb9kjw6.part, .saving-abcd1234): delete them if no run is writing there"
    ), full.value
    # a relative path (the commands keep --json as typed): glob's paths relative, mkstemp's absolute
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DiskFull) as full:
        atomic_write("checkpoint.pt", no_space)
    assert "2 temporary file(s) there that killed writes left hold 4.0 MB" in str(full.value)
    (tmp_path / ".checkpoint.pt.1bb9kjw6.part").unlink()
    import tempfile

    made = tempfile.mkdtemp  # Python 3.12's gives an absolute path for a relative folder
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: os.path.abspath(made(*a, **k)))
    with pytest.raises(DiskFull, match="could not be written") as full:  # only the save's own
        save_into("model", lambda tmp: no_space(tmp / "model.safetensors"))
    assert "temporary file" not in str(full.value), full.value


def test_a_cache_that_cannot_be_written_is_a_note_not_an_error(tmp_path, capsys, monkeypatch):
    """A read-only or full HELPERS_CACHE stopped imdb at GloVe's arrays ("cannot write
    .../glove/glove.4e4...npz: Read-only file system; choose another place", with no flag to change),
    though that cache only saves parsing time."""
    from helpers.files import cache_arrays, load_arrays

    (tmp_path / "glove").write_text("")  # a file where the cache's folder should be
    cache_arrays(tmp_path / "glove" / "v.npz", "glove.txt's vectors", a=np.arange(3))
    err = capsys.readouterr().err
    assert (
        err.startswith("note: glove.txt's vectors not cached (cannot write ")
        and err.count("\n") == 1
    )
    assert "set HELPERS_CACHE to a folder you can write" in err

    def full(path, **arrays):
        raise DiskFull("the disk holding /c is full: v.npz could not be written")

    monkeypatch.setattr("helpers.files.save_arrays", full)
    cache_arrays(tmp_path / "v.npz", "the tokens", a=np.arange(3))
    assert "note: the tokens not cached (the disk holding /c is full)" in capsys.readouterr().err
    monkeypatch.undo()
    cache_arrays(tmp_path / "v.npz", "the tokens", a=np.arange(3))  # and where it can, it is
    assert load_arrays(tmp_path / "v.npz", "a")[0].tolist() == [0, 1, 2]


def test_a_command_out_of_memory_names_the_flags_to_lower(capsys):
    """mlm, finetune and minbert ended in a traceback from the allocator ("can't allocate memory:
    you tried to allocate 14400000000 bytes"); gpt train said it in one line."""
    said = ("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 14400000000 bytes. Error code 12 (Cannot allocate memory)")  # fmt: skip

    @stops_cleanly("the last epoch is kept", smaller="--batch-size or --max-len")
    def main(error):
        raise error

    assert main(RuntimeError(said)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the model or a batch does not fit in memory: make --batch-size or "
                          "--max-len smaller ([enforce fail at alloc_cpu.cpp:127] ")  # fmt: skip
    assert err.endswith("; the last epoch is kept\n") and err.count("\n") == 1, err
    assert main(MemoryError()) == 2 and "(MemoryError)" in capsys.readouterr().err
    cuda = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert main(cuda) == 2 and "Tried to allocate 2.00 GiB" in capsys.readouterr().err
    windows = RuntimeError("[enforce fail at alloc_cpu.cpp:116] data. DefaultCPUAllocator: not enough memory: you tried to allocate 3774873600 bytes.")  # fmt: skip
    assert main(windows) == 2 and "not enough memory: you tried" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes"):  # not memory: raised as it is
        main(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))

    @stops_cleanly("the last epoch is kept")  # no flags named: memory errors stay themselves
    def other(error):
        raise error

    with pytest.raises(RuntimeError, match="can't allocate memory"):
        other(RuntimeError(said))


def test_sigterm_stops_a_command_as_ctrl_c_does_after_the_save_under_way(tmp_path, capsys):
    """Slurm's scancel and time limit, and torchrun stopping the other ranks, send SIGTERM: it killed
    the command where it was (a checkpoint's .part file left, no word said). Now it is Ctrl-C's: the
    save finishes, one line, exit 130, and the default handler is back afterwards."""
    previous = signal.signal(
        signal.SIGTERM, signal.SIG_DFL
    )  # as in a command (pytest's tiers set one)
    try:

        @stops_cleanly("the last epoch is kept")
        def main():
            def save(tmp):
                os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-save
                tmp.write_text("whole")

            atomic_write(tmp_path / "checkpoint.pt", save)
            raise AssertionError("SIGTERM did not stop the command after the save")

        assert main() == 130
        assert (tmp_path / "checkpoint.pt").read_text() == "whole"
        assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no .part left
        assert capsys.readouterr().err == "\nstopped: the last epoch is kept\n"
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_cached_array_file_cut_short_is_built_again(tmp_path, capsys):
    path = tmp_path / "cached.npz"
    save_arrays(path, a=np.arange(5))
    assert load_arrays(path, "a")[0].tolist() == [0, 1, 2, 3, 4]
    path.write_bytes(path.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:  # numpy's np.load(path) left it open
        warnings.simplefilter("always")
        assert load_arrays(path, "a") is None
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught
    assert f"cached {path} could not be read (BadZipFile" in capsys.readouterr().out
    assert load_arrays(tmp_path / "none.npz", "a") is None


def test_every_report_says_what_wrote_it(tmp_path, monkeypatch):
    """No report named the code or the libraries: a fix (the warm-up's rounding) moved mlm's perplexity
    434.1533 -> 433.9036 with two reports alike but for the numbers; the thread count moved imdb's."""
    import torch

    from helpers import provenance
    from helpers.files import write_report

    report = json.loads(write_report(tmp_path / "r.json", "python -m x", {"a": 1}).read_text())
    said = report["provenance"]
    assert said["libraries"]["torch"] == torch.__version__ and said["cpus"] == os.cpu_count()
    assert said["torch_threads"] == torch.get_num_threads() and said["python"]
    assert said["helpers"] == provenance.code() and len(said["helpers"]["source_sha256"]) == 16
    # the source digest follows any edit of the package, committed or not
    package = tmp_path / "helpers"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(provenance, "PACKAGE", package)
    digests = []
    for text in ("y = 2\n", "y = 3\n"):
        (package / "sub" / "b.py").write_text(text)
        provenance.code.cache_clear()
        digests.append(provenance.code())
    provenance.code.cache_clear()
    assert digests[0]["source_sha256"] != digests[1]["source_sha256"]
    assert digests[0]["commit"] is None  # not a checkout, not installed from git


def test_the_commit_is_a_checkouts_or_the_one_pip_installed(tmp_path, monkeypatch):
    import subprocess

    from helpers import provenance

    checkout = tmp_path / "repo"
    (checkout / "helpers").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t", "commit",
                    "-q", "--allow-empty", "-m", "x"], check=True)  # fmt: skip
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    monkeypatch.setattr(provenance, "PACKAGE", checkout / "helpers")
    assert provenance._commit() == head

    record = pathlib.Path("attention_lab-0.1.0.dist-info") / "direct_url.json"
    (tmp_path / record.parent).mkdir()
    (tmp_path / record).write_text(  # pip's, after `pip install git+https://...@main`
        json.dumps(
            {"url": "https://github.com/o/r", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}
        )
    )

    class Installed:
        files = [record]

        def locate_file(self, path):
            return tmp_path / path

    monkeypatch.setattr(provenance, "PACKAGE", tmp_path / "site-packages" / "helpers")
    monkeypatch.setattr(provenance.metadata, "distribution", lambda name: Installed())
    assert provenance._commit() == "abc123"
