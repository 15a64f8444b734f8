"""Files written safely: one atomic write for everything the project saves, and safe tar extraction.

``atomic_write(path, save)`` hands ``save`` a temporary path in the same folder and renames it into
place only when ``save`` returns, so a crash, a full disk or a killed kernel never leaves a file that
looks finished. Checkpoints, cached arrays, downloads and JSON reports all go through it;
``save_into`` does the same for the files a library's ``save_pretrained`` writes.
"""

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def json_digest(value: object) -> str:
    """A short digest of a JSON-able value (dict keys in any order): what a checkpoint was trained on."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# A saved model's own files: config, weights (also sharded), tokenizer; not a run's checkpoint or reports.
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json",
               "spiece.model", "tokenizer.model", "model.safetensors.index.json",
               "pytorch_model.bin.index.json")  # fmt: skip


def expand_home(path: str | Path, what: str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; a ValueError naming ``what`` when this
    machine has no such home folder (Python's own error was a RuntimeError from deep inside)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        shown = f"{what}{path}" if what.endswith("=") else f"{what} {path}"
        raise ValueError(f"{shown}: its ~ names no home folder on this machine; give the whole "
                         "path") from None  # fmt: skip


def folder_digest(folder: str | Path) -> str:
    """A short digest of a saved model's own files in ``folder`` (``MODEL_FILES`` and the weights,
    names and bytes): what a fine-tuning run starts from. Other files (a report, a run's checkpoint)
    leave it unchanged."""
    sha = hashlib.sha256()
    for file in sorted(Path(folder).iterdir()):
        weights = file.name.startswith(("model", "pytorch_model")) and file.suffix in (
            ".safetensors",
            ".bin",
        )
        if file.is_file() and (file.name in MODEL_FILES or weights):
            sha.update(file.name.encode() + b"\0")
            with open(file, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    sha.update(chunk)
    return sha.hexdigest()[:16]


def check_writable(path: str | Path, create: bool = True) -> Path:
    """Raise a ValueError naming ``path`` unless a file can be written there (call it before long work).
    ``create=False`` creates no missing folder: it probes the nearest one that exists."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ValueError(f"cannot write {path}: it is {kind}; give the name of a file to write")
    blocked = next((d for d in path.parents if d.exists() and not d.is_dir()), None)
    if blocked is not None:
        raise ValueError(
            f"cannot write {path}: {blocked} is a file, not a folder; choose another place"
        )
    folder = path.parent if create else next(d for d in (path.parent, *path.parents) if d.exists())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{_short(path.name)}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(
            f"cannot write {path}: {err.strerror or err}; choose another place"
        ) from None
    return path


# Files of a saved model or run, which a report must never replace (a JSON one among them too).
RUN_FILES = ("checkpoint.pt", "model.pt", "model.safetensors", "pytorch_model.bin", "config.json",
             "plan.json", "mlm-state.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
             "vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json",
             "generation_config.json")  # fmt: skip


def check_report(
    path: str | Path,
    flag: str = "--json",
    create: bool = False,
    command: str | None = None,
    shape: tuple[str, ...] = (),
) -> Path:
    """Like ``check_writable`` for a command's JSON report, and a ValueError if ``path`` is named like
    a file of a saved model or run (``config.json``, ``*.index.json``), or is an existing file that is
    not a JSON report (another suffix, or not JSON) or, with ``command``, not a report of that command
    (``write_report``'s "command" field; without it, a report from before the field is recognised by
    holding every key of ``shape``): writing the report would replace it."""
    path = check_writable(path, create=create)
    if path.name in RUN_FILES or path.name.endswith(".index.json"):
        raise ValueError(f"{flag} {path}: {path.name} is the name of a saved model's or run's file; "
                         f"give the report another name")  # fmt: skip
    if not path.is_file():
        return path
    if path.suffix.lower() == ".json":  # another suffix: a notebook (.ipynb) is JSON too
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            saved = None
        writer = saved.get("command") if isinstance(saved, dict) else None
        older = (
            isinstance(saved, dict)
            and "command" not in saved
            and shape
            and set(shape) <= set(saved)
        )
        if saved is not None and (command is None or writer == command or older):
            return path
        if saved is not None:
            what = (f"is the report of {writer}" if isinstance(writer, str)
                    else f"holds JSON that {command} did not write (nothing in it names {command}: "
                    "another tool's file, or your data)")  # fmt: skip
            raise ValueError(f"{flag} {path} {what}: writing would replace it; give another {flag}, "
                             "or delete the file")  # fmt: skip
    raise ValueError(f"{flag} {path} exists and is not a JSON report: writing would replace it; "
                     f"give another {flag}, or delete the file")  # fmt: skip


def write_report(path: str | Path, command: str, report: dict) -> Path:
    """Write a command's JSON report atomically, with the command's name first (``"command"``): a
    later run of another command refuses to replace it (``check_report``); and last, what wrote it
    (``"provenance"``: the code, the libraries, the machine)."""
    from helpers.provenance import provenance

    return write_json(path, {"command": command, **report, "provenance": provenance()})


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same path resolved, or (both existing) a hard link."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def check_not_an_input(
    out: str | Path, inputs: dict[str, str | Path | None], flag: str = "--json"
) -> None:
    """A ValueError if ``out`` (given as ``flag``) is one of ``inputs`` (each input's flag -> its path,
    None when not given; by another path, a link or a hard link too): writing it would replace that input."""
    for name, path in inputs.items():
        if path is not None and same_file(out, path):
            raise ValueError(
                f"{flag} {out} is the {name}: it would be written over; give another path"
            )


def visible_files(folder: str | Path) -> list[Path]:
    """The files and folders in ``folder`` (none if it is missing), sorted, hidden ones left out
    (.ipynb_checkpoints, .DS_Store, a save's leftover .part): no run keeps or writes over one."""
    folder = Path(folder)
    return (
        sorted(f for f in folder.iterdir() if not f.name.startswith(".")) if folder.is_dir() else []
    )


_guarding = 0  # interrupt_after blocks open in the main thread
STALE_SECONDS = 24 * 3600  # a temporary .part file this old is a killed write's


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (Slurm's scancel or time limit, a kernel shut down, torchrun stopping the others) raises
    KeyboardInterrupt inside, as Ctrl-C does: the command stops the same clean way (a save under way
    finishes, no temporary file is left) instead of dying where it was. Main thread only; a SIGTERM
    handler someone else set is left alone."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def interrupt_after() -> Iterator[None]:
    """Ctrl-C (SIGINT, and SIGTERM inside ``terminate_as_interrupt``) during the block waits for its
    end, then raises KeyboardInterrupt: a save that has begun finishes (a checkpoint cut off is no
    checkpoint). Only the main thread gets signals; an ignored SIGINT (a background job) stays ignored;
    a block inside another leaves it to the outer."""
    global _guarding
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    deferred = [signal.SIGINT] if previous[signal.SIGINT] not in (signal.SIG_IGN, None) else []
    deferred += [signal.SIGTERM] if previous[signal.SIGTERM] is _raise_interrupt else []
    if threading.current_thread() is not threading.main_thread() or _guarding or not deferred:
        yield
        return
    caught: list[int] = []
    for sig in deferred:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    _guarding += 1
    try:
        yield
    finally:
        _guarding -= 1
        for sig in deferred:
            signal.signal(sig, previous[sig])
    if caught:
        raise KeyboardInterrupt


# Python's ENOSPC, Rust's (safetensors), and Windows' ERROR_DISK_FULL as Rust and Python write it
NO_SPACE = (
    "No space left on device",
    "os error 28",
    "os error 112",
    "not enough space on the disk",
)
TORCH_WRITER = ("unexpected pos", "PytorchStreamWriter failed")  # torch.save's zip writer
# a user's quota used up (a cluster's home folder): error 122 on Linux, as Python and Rust write it
EDQUOT = getattr(errno, "EDQUOT", 122)
QUOTA = ("Disk quota exceeded", "os error 122")


class DiskFull(RuntimeError):
    """A write stopped because its disk is full; the message names the file."""


@contextlib.contextmanager
def disk_full_named(path: Path, own: Path | None = None) -> Iterator[None]:
    """A write's failure on a full disk as a ``DiskFull`` naming ``path``: Python's error 28, a
    library's "No space left on device", torch's writer's "unexpected pos" with the disk full, or a
    used-up quota. It names the temporary files killed writes left beside ``path`` (``own``, this
    write's, aside): their space may be what is missing."""
    try:
        yield
    except Exception as err:
        said, code = str(err), getattr(err, "errno", None)
        quota = code == EDQUOT or any(s in said for s in QUOTA)
        full = code == errno.ENOSPC or any(s in said for s in NO_SPACE)
        # torch's writer names no cause: the disk must have less than 1 MiB left
        torch_full = (
            any(s in said for s in TORCH_WRITER) and shutil.disk_usage(path.parent).free < 1 << 20
        )
        if not (quota or full or torch_full):
            raise
        where = (
            f"your disk quota is used up on the disk holding {path.parent}"
            if quota
            else f"the disk holding {path.parent} is full"
        )
        raise DiskFull(
            f"{where}: {path.name} could not be written, and nothing there was replaced; make room "
            f"and run it again{_leftovers(path.parent, own)}"
        ) from err


def _leftovers(folder: Path, own: Path | None) -> str:
    """The temporary files and folders of killed writes in ``folder`` ("" if none), and their size."""
    # by name: glob gives a relative folder's paths relative, mkstemp (and 3.12's mkdtemp) absolute
    found = [p for p in (*folder.glob(".*.part"), *folder.glob(".saving-*"))
             if own is None or p.name != own.name]  # fmt: skip
    if not found:
        return ""
    size = 0
    for item in found:
        with contextlib.suppress(OSError):  # another process may have just removed it
            files = item.rglob("*") if item.is_dir() else [item]
            size += sum(f.stat().st_size for f in files if f.is_file())
    names = ", ".join(p.name for p in sorted(found)[:2]) + (", ..." if len(found) > 2 else "")
    return (f"; {len(found)} temporary file(s) there that killed writes left hold {size / 2**20:.1f} "
            f"MB ({names}): delete them if no run is writing there")  # fmt: skip


def atomic_write(path: str | Path, save: Callable[[Path], object], *, wait: bool = True) -> Path:
    """Call ``save(tmp)`` on a temporary file beside ``path``, then rename it to ``path``. With
    ``wait``, Ctrl-C meanwhile waits until it is done; without (a download: minutes), it stops the
    save at once and leaves no file. A full disk raises ``DiskFull``."""
    path = check_writable(path)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{_short(path.name)}.", suffix=".part"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with interrupt_after() if wait else contextlib.nullcontext(), disk_full_named(path, tmp):
            save(tmp)
            with interrupt_after():  # the rename at least (inside the block above: that block's)
                _put(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _remove_stale_parts(path)
    return path


def _put(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` to ``path``, readable as open() would have made it (mkstemp and
    safetensors make their files 0o600: other users of a shared cache could not read them)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)  # atomic on one file system


def _umask() -> int:
    """The process's umask now (a notebook may have changed it since import): Linux shows it in
    /proc; elsewhere os.umask reads it only by setting it, so it is set back at once."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text(encoding="utf-8").splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _short(name: str) -> str:
    """``name`` cut to at most 238 bytes, so that a temporary file's name beside it (a dot, 8 random
    characters, .probe) fits the 255 bytes file systems allow: a long legal name was refused."""
    while len(name.encode()) > 238:
        name = name[:-1]
    return name


def _remove_stale_parts(path: Path) -> None:
    """Delete the temporary files of writes of ``path`` that a killed process left over a day ago."""
    cutoff = time.time() - STALE_SECONDS
    # mkstemp's random part is 8 characters: .a.json.bak.k3j2h1x9.part is another file's
    for part in path.parent.glob(f".{glob.escape(_short(path.name))}.{'?' * 8}.part"):
        with contextlib.suppress(OSError):  # another process may have just removed it
            if part.stat().st_mtime < cutoff:
                part.unlink()


def remove_stale_saves(folder: Path) -> None:
    """Delete the temporary folders of saves into ``folder`` that a killed process left a day ago."""
    cutoff = time.time() - STALE_SECONDS
    for tmp in folder.glob(f".saving-{'?' * 8}"):  # TemporaryDirectory's random part: 8 characters
        with contextlib.suppress(OSError):  # another process may have just removed it
            if tmp.is_dir() and not tmp.is_symlink() and tmp.stat().st_mtime < cutoff:
                shutil.rmtree(tmp)


def save_into(folder: str | Path, save: Callable[[Path], object]) -> Path:
    """Call ``save(tmp)`` on a temporary folder inside ``folder`` (a library's ``save_pretrained``),
    then rename each file it wrote into ``folder``: no file there is ever half written, and Ctrl-C
    waits until every file is in place. A killed save's temporary folder is removed after a day."""
    folder = Path(folder)
    check_writable(folder / ".probe")
    remove_stale_saves(folder)
    with (
        tempfile.TemporaryDirectory(dir=folder, prefix=".saving-") as tmp,
        interrupt_after(),
        disk_full_named(folder / "model files", Path(tmp)),
    ):
        save(Path(tmp))
        for file in sorted(Path(tmp).iterdir()):
            _put(file, folder / file.name)
    return folder


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, "\\n" line ends on every system: a Slurm script runs under bash) atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))


class NotFinite(ValueError):
    """A NaN or an infinity on its way into a JSON file."""


def write_json(path: str | Path, data: object) -> Path:
    """Write ``data`` as indented, strict JSON (UTF-8 text as it is, else escaped) atomically. A NaN
    or an infinity is refused, naming where it is: JSON has neither (Python's ``NaN`` breaks jq and
    JavaScript)."""
    if (where := _not_finite(data)) is not None:
        raise NotFinite(f"{path} was not written: {where} is not a finite number, which JSON cannot "
                         "hold (a diverged run?)")  # fmt: skip
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a file name in another encoding ('caf\udce9.txt'): \u escapes
        text = json.dumps(data, indent=2, default=str, allow_nan=False)
    return write_text(path, text + "\n")


def _not_finite(value: object, where: str = "the value") -> str | None:
    """Where in ``value`` (nested dicts and lists) a float is NaN or infinite, e.g. "runs[0].loss"."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} ({value})"
    if isinstance(value, dict):
        items = ((f"{k}" if where == "the value" else f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((w for key, v in items if (w := _not_finite(v, key)) is not None), None)


def save_arrays(path: str | Path, **arrays: Any) -> Path:
    """``np.savez`` atomically (the arrays keep their names)."""
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **arrays)

    return atomic_write(path, save)


def cache_arrays(path: str | Path, what: str, **arrays: Any) -> None:
    """``save_arrays`` into a cache, which only saves time: where it cannot be written (read-only, a
    full disk) a note says so, naming HELPERS_CACHE, and the caller goes on without it."""
    try:
        save_arrays(path, **arrays)
    except (ValueError, DiskFull) as err:
        why = str(err).split(": ")[0] if isinstance(err, DiskFull) else str(err).split("; ")[0]
        print(f"note: {what} not cached ({why}); they are computed again next time (set "
              "HELPERS_CACHE to a folder you can write to keep them)", file=sys.stderr)  # fmt: skip


def load_arrays(path: str | Path, *names: str) -> list | None:
    """The arrays ``names`` of a .npz that ``save_arrays`` wrote, or None when there is none or it
    cannot be read (a cache copied from elsewhere and cut short): the caller builds it again."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        return None
    try:
        # numpy leaves a file it opened unclosed when the zip is cut short: open it here instead
        with open(path, "rb") as file, np.load(file) as f:
            return [f[name] for name in names]
    # a copy cut short or damaged (BadZipFile, EOFError, zlib.error), or of an older layout (KeyError)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        print(f"cached {path} could not be read ({type(err).__name__}: {err}); building it again")
        return None


def extract_tar(archive: str | Path, target: str | Path) -> None:
    """Extract ``archive`` into ``target``: plain files and folders only, none landing outside it;
    folders with the default mode (0o777 less the umask), files readable and writable by their owner,
    none setuid or writable by others (the modes tarfile's "data" filter gives, done here too:
    Python 3.11.0 to 3.11.3 lack it)."""
    archive, root = Path(archive), Path(target).resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not (root / member.name).resolve().is_relative_to(root):
                raise ValueError(f"refusing to extract {member.name!r} from {archive}: it would "
                                 f"land outside {target}")  # fmt: skip
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"refusing to extract {member.name!r} from {archive}: it is a "
                                 "link, a device or a pipe, not a plain file or folder")  # fmt: skip
            if member.isdir():
                member.mode = 0o777 & ~_umask()
            else:  # the owner reads and writes; execute bits only if the owner's is set
                member.mode = (member.mode | 0o600) & (0o755 if member.mode & 0o100 else 0o644)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")
        else:
            tar.extractall(root)
