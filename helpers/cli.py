"""The one argparse parser of the commands (``python -m helpers.X``): its errors are one line.

``Parser`` prints ``error: MESSAGE (see PROG --help)`` and exits 2, instead of argparse's usage block,
so a wrong flag reads like every other bad input the commands refuse; a flag is never taken for
another by its first letters (``--seed`` is not ``--seeds``). Its --help (``DefaultsHelp``) shows
each flag's default, except where it is None (the flag's help says what happens then) or the flag
takes no value.
"""

import argparse
import contextlib
import errno
import functools
import hashlib
import os
import select
import stat
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from helpers.files import DiskFull, NotFinite, terminate_as_interrupt

INT_MAX = 2**31 - 1  # a count or size beyond this cannot be allocated or run: refused at parsing
FLOAT32_MAX = 3.4e38  # a number beyond it is inf in float32, where the models compute


def check_magnitude(
    value: float, kind: type, text: str, action: argparse.Action | None = None
) -> None:
    """An argparse error if ``value`` (an int or a float) is beyond what the commands can use; a type
    function's error without ``action``, the parser's with it."""
    limit = INT_MAX if kind is int else FLOAT32_MAX
    if not abs(value) > limit:  # nan passes: each command names it with what it takes
        return
    message = f"{text} is too large (at most {f'{limit:,}' if kind is int else f'{limit:g}'})"
    if action is None:
        raise argparse.ArgumentTypeError(message)
    raise argparse.ArgumentError(action, message)


def check_plain(text: str, kind: type, action: argparse.Action | None = None) -> None:
    """An argparse error if ``text`` is a number Python reads but a reader would not: digits of
    another script (``int("٣")`` is 3) or underscores (``int("1_000")``); as ``check_magnitude``."""
    if text.isascii() and "_" not in text:
        return
    example = "1000" if kind is int else "0.5 or 3e-4"
    message = (f"{text!r} is not a plain {kind.__name__}: write it with the ASCII digits 0-9 and no "
               f"underscores (e.g. {example})")  # fmt: skip
    if action is None:
        raise argparse.ArgumentTypeError(message)
    raise argparse.ArgumentError(action, message)


def output_file(text: str) -> Path:
    """An argparse type for a file a command writes: a name, not a folder's spelling (``runs/`` was
    written as a file named runs; ``.`` and an empty name failed later without naming the flag)."""
    if Path(text).name in ("", ".", "..") or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name (empty, or a folder's): give "
                                         "one such as run.json")  # fmt: skip
    return Path(text)


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (``error: ...``, exit 2) instead of the usage block, and
    ``type=int`` (except seeds) and ``type=float`` values of absurd magnitude (``--batch-size`` with
    20 digits, ``--lr 1e308``) refused instead of failing deep inside torch."""

    def _get_value(self, action: argparse.Action, arg_string: str) -> object:
        value = super()._get_value(action, arg_string)
        seed = action.dest == "seed" or action.dest.endswith("_seed")  # --seeds is a count
        if action.type in (int, float):
            check_plain(arg_string, action.type, action)
            if not seed:
                check_magnitude(value, action.type, arg_string, action)
        return value

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """As argparse's, but a flag with a default and no help still shows its default in --help
        (argparse leaves a flag without help text out of the formatter)."""
        action = super().add_argument(*args, **kwargs)
        if action.option_strings and action.help is None:
            if (shown := _default_text(action)) is not None:
                action.help = f"(default: {shown.replace('%', '%%')})"
        return action

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # --seed must not silently mean --seeds (argparse takes any unique prefix of a flag)
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsHelp)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """As argparse's, but a flag a sub-command does not take is named with that sub-command's
        --help (argparse pointed at the top level's, which lists no sub-command's flags)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The parser of the sub-command ``parsed`` chose (this one when there is none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(chosen, Parser):
                    return chosen._chosen(parsed)
        return self

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class _Commands(argparse._SubParsersAction):
    """Sub-commands whose own --help opens with the line the command list shows (argparse's has no
    description: ``python -m helpers.scaling task --help`` said nothing of what the task is)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        return super().add_parser(name, **kwargs)


def _default_text(action: argparse.Action) -> str | None:
    """A flag's default as one types it (a list as ``1,2`` or ``1 2``), or None: no default to show
    (None, or a flag that takes no value)."""
    value = action.default
    if value is None or value is argparse.SUPPRESS or action.nargs == 0:
        return None
    if isinstance(value, (list, tuple)):
        value = (" " if action.nargs in ("+", "*") else ",").join(map(str, value))
    return str(value)


class DefaultsHelp(argparse.HelpFormatter):
    """--help with "(default: X)" after each flag's help, unless its help already names its default,
    its default is None or the flag takes no value."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text, shown = action.help or "", _default_text(action)
        if shown is None or "default" in text.lower():
            return action.help
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """A training command's ``--quiet``: no progress bar or per-epoch lines."""
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar or per-epoch lines (a log file, a Slurm job)")  # fmt: skip


def per_config(flag: str, configs: dict[str, Any], field: str) -> str:
    """Help text for a flag left to a config: what it takes under each choice of ``flag``."""
    values = ", ".join(f"{name} {getattr(cfg, field):g}" for name, cfg in configs.items())
    return f"default: the {flag}'s ({values})"


def check_input_files(files: dict[str, str | Path | None]) -> None:
    """A ValueError naming the flag and the path of the first input (flag -> path; None: not given)
    that is missing or a folder, before any of them is read."""
    for flag, path in files.items():
        if path is None:
            continue
        if not Path(path).exists():
            relative = "" if Path(path).is_absolute() else f" (relative to {Path.cwd()})"
            raise ValueError(f"{flag} {path} does not exist; check the path{relative}")
        if Path(path).is_dir():
            raise ValueError(f"{flag} {path} is a folder; give a file")


def stopped(what_is_kept: str) -> int:
    """After Ctrl-C: one line on stderr (``stopped: ...``, saying what is kept) and exit status 130."""
    print(f"\nstopped: {what_is_kept}", file=sys.stderr)
    return 130


def disk_full(err: DiskFull, what_is_kept: str) -> int:
    """After a full disk: one line on stderr (``error: ...``, saying what is kept) and exit status 1."""
    print(f"error: {err}; {what_is_kept}", file=sys.stderr)
    return 1


def out_of_memory(err: BaseException) -> bool:
    """A MemoryError, or the allocator's RuntimeError: "can't allocate memory" on a CPU ("not enough
    memory" on Windows), "out of memory" on a GPU (torch.cuda.OutOfMemoryError)."""
    said = str(err).lower()
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError)
        and any(s in said for s in ("can't allocate memory", "not enough memory", "out of memory"))
    )


def allocator_said(err: BaseException) -> str:
    """The allocator's first line, shortened at a word (never inside a byte count)."""
    line = (str(err).splitlines() or [type(err).__name__])[0] or type(err).__name__
    return textwrap.shorten(line, 160, placeholder=" ...")


def no_memory(err: BaseException, smaller: str, what_is_kept: str) -> int:
    """After memory ran out: one line on stderr naming the flags to make ``smaller`` and what is
    kept, and exit status 2 (settings too large for this machine are bad input)."""
    print(f"error: the model or a batch does not fit in memory: make {smaller} smaller "
          f"({allocator_said(err)}); {what_is_kept}", file=sys.stderr)  # fmt: skip
    return 2


class Busy(ValueError):
    """Another run is using the same output (a --save folder, a --json report)."""


_NOT_PLAIN = (
    "the run lock {} is a link or a special file, not a plain file: delete it, then run again"
)
_HELD: dict[str, int] = {}  # the run locks this process holds for the command now running, by key
_BUSY = {errno.EAGAIN, errno.EACCES, errno.EDEADLK}  # flock's "held", and msvcrt's on Windows


def lock_output(path: Path, flag: str) -> None:
    """Hold ``path``'s run lock until the command ends (``release_outputs``): a second run on the same
    ``flag`` output is refused by name instead of mixing its files with this one's (two runs given
    one --save each saw it empty, and both wrote there). The lock is the operating system's, on a
    file in $HELPERS_CACHE/locks: a killed run holds none. Only rank 0 of a torchrun group takes it.
    A $HELPERS_CACHE that is not a folder one can make is a ValueError; where the file system cannot
    lock (or the locks folder cannot be written), the run goes on without one and says so."""
    from helpers.download import cache_dir
    from helpers.training.distributed import current

    if not current().main:
        return
    key = hashlib.sha256(os.fsencode(Path(path).resolve())).hexdigest()[:24]  # any name the OS took
    if key in _HELD:  # one file given to two of its flags: the other flag's check names that
        return
    lock = cache_dir() / "locks" / f"{key}.lock"  # a bad $HELPERS_CACHE: named, not passed over
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            before = os.lstat(lock)  # the name itself, not what a link there points to
        except FileNotFoundError:
            before = None
    except OSError as err:
        return _unlocked(flag, path, err)
    # Only a plain file of its own: the holder's id is written into it, so a link planted in a shared
    # cache would have that write empty the file it points to, and opening a pipe could wait forever.
    # Checked before opening (Windows has no O_NOFOLLOW), then the opened file is the one checked.
    if before is not None and not _plain(before):
        raise ValueError(_NOT_PLAIN.format(lock))
    flags = (
        getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    )
    try:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | flags, 0o666)
        except PermissionError:  # another user's lock file in a shared cache: locking reads it
            fd = os.open(lock, os.O_RDONLY | flags)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK):  # a link made meanwhile (EMLINK: BSDs)
            raise ValueError(_NOT_PLAIN.format(lock)) from None
        return _unlocked(flag, path, err)
    info = os.fstat(fd)
    if not _plain(info) or (
        before and (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino)
    ):
        os.close(fd)
        raise ValueError(_NOT_PLAIN.format(lock))
    try:
        _lock(fd)
    except OSError as err:
        holder = _holder(fd)
        os.close(fd)
        if err.errno in _BUSY:
            raise Busy(f"{flag} {path} is in use by another run{holder}: let it finish (or stop "
                       f"it), or give another {flag}") from None  # fmt: skip
        return _unlocked(flag, path, err)  # a file system without locks (some network mounts)
    _HELD[key] = fd
    with contextlib.suppress(OSError):  # the holder's id, for the message (a full disk: none)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())


def _unlocked(flag: str, path: Path, err: OSError) -> None:
    print(f"note: {flag} {path} runs without a run lock ({err.strerror or err}): a second run on "
          "it would not be refused", file=sys.stderr)  # fmt: skip


def _plain(info: os.stat_result) -> bool:
    """A regular file under one name (not a link, a hard link, a pipe or a device)."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def release_outputs() -> None:
    """Drop the run locks ``lock_output`` took (closing the file drops its lock)."""
    while _HELD:
        fd = _HELD.popitem()[1]
        if sys.platform == "win32":  # Windows may drop a lock late when the file is just closed
            import msvcrt

            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.close(fd)


def _lock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder(fd: int) -> str:
    """The holder's process id, written into the lock file, as " (process N)"; else ""."""
    try:
        pid = os.pread(fd, 20, 0).decode().strip() if hasattr(os, "pread") else ""
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


@contextlib.contextmanager
def running() -> Iterator[None]:
    """A command's run: SIGTERM (``scancel``, a job's time limit) stops it as Ctrl-C does, and the
    outputs it locked (``lock_output``) are free again when it ends, however it ends."""
    try:
        with terminate_as_interrupt():
            yield
    finally:
        release_outputs()


def refuses_non_finite(main: Callable[..., int]) -> Callable[..., int]:
    """A command's ``main`` (the outermost wrapper of every command) that a NaN or an infinity bound
    for its JSON report (``files.NotFinite``) or a launcher's variables without the rest
    (``env.LaunchError``) end with one line and exit status 2, not a traceback; whose output writes
    characters its encoding lacks as escapes (``\\u2713``; a Windows code page, the C locale); and
    that stops quietly, exit status 141, when the reader of its output has gone (``| head -1``)."""

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> int:
        for stream in (sys.stdout, sys.stderr):
            if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")  # UnicodeEncodeError lost the output
        try:
            return main(*args, **kwargs)
        except NotFinite as err:  # a number no check before it caught
            print(f"error: {err}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            gone = [stream for stream in (sys.stdout, sys.stderr) if _reader_gone(stream)]
            if not gone:  # another pipe: a worker's, a socket
                raise
            return _quiet(gone)
        except ValueError as err:
            env = sys.modules.get("helpers.env")  # no LaunchError without it
            if env is None or not isinstance(err, env.LaunchError):
                raise
            print(f"error: {err}", file=sys.stderr)
            return 2

    return run


def _reader_gone(stream: Any) -> bool:
    """Whether ``stream``, this process's own standard output or error, is a pipe whose reader has
    exited (``poll`` says POLLERR on Linux, POLLHUP on macOS); never in a notebook's kernel."""
    try:
        own = stream in (sys.__stdout__, sys.__stderr__)  # not a kernel's or a test's stream
        if not own or not stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode):
            return False
        fd = stream.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no fileno, no poll (Windows)
        return False


def _quiet(streams: list) -> int:
    """After the reader of standard output or error has exited: the rest of what goes there goes
    nowhere (Python would otherwise report the failed flush at exit), and the status is a pipe
    writer's, 128 + 13."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in streams:
            os.dup2(devnull, stream.fileno())
        os.close(devnull)
    return 141


def stops_cleanly(what_is_kept: str, smaller: str = "") -> Callable:
    """A command's ``main`` that Ctrl-C or SIGTERM ends with one line (``stopped: ...``, saying what
    is kept) and exit status 130, a full disk with one line and exit status 1, and a NaN bound for a
    JSON report with one line and exit status 2, instead of a traceback from wherever training was
    (or, for SIGTERM, no word at all). With ``smaller`` (the flags that size the model and its
    batches), memory that ran out gives one line naming them, exit status 2. The outputs it locked
    (``lock_output``) are free again when it returns."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                with running():
                    return main(*args, **kwargs)
            except KeyboardInterrupt:
                return stopped(what_is_kept)
            except DiskFull as err:
                return disk_full(err, what_is_kept)
            except (MemoryError, RuntimeError) as err:
                if not (smaller and out_of_memory(err)):
                    raise
                return no_memory(err, smaller, what_is_kept)

        return refuses_non_finite(run)

    return wrap
