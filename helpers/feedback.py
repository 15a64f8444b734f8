"""The result every exercise checker returns: passed or not, a one-line verdict, specific hints.

Hints escalate. A checker lists its hints for a mistake from the idea to the answer; the first
failed attempt with a mistake prints its first hint, each further attempt with the same mistake one
more (a new mistake starts from its own first hint), and a pass starts every count of the exercise
again. ``result.hints`` always holds them all (for code and tests).
"""

import contextlib
import dis
import html
import importlib.machinery
import re
import sys
import sysconfig
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

NOT_IMPLEMENTED = "not implemented yet"
MORE = "(check again after your next try for a more specific hint)"
_FAILED: dict[tuple[str, str], int] = {}  # (exercise, mistake) -> failed attempts (this kernel)


@dataclass(repr=False)
class CheckResult:
    """Prints as "✅ name (passed): …" or "❌ name (not yet): …" with hints in a notebook; code reads
    ``result.passed`` and ``result.hints``."""

    name: str
    passed: bool
    verdict: str
    hints: list[str] = field(default_factory=list)
    shown: int | None = None  # how many hints to print (None: all)

    @property
    def not_implemented(self) -> bool:
        return self.verdict == NOT_IMPLEMENTED

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        # The outcome in words as well as a mark and a colour (a screen reader, a dark theme).
        if self.passed:
            head = f"✅ {self.name} (passed)"
        elif self.not_implemented:
            head = f"⏳ {self.name}"
        else:
            head = f"❌ {self.name} (not yet)"
        lines = [f"{head}: {self.verdict}"]
        label = "why" if self.passed else "hint"
        shown = self.hints if self.shown is None else self.hints[: max(1, self.shown)]
        lines += [f"   {label}: {hint}" for hint in shown]
        if len(shown) < len(self.hints):
            lines.append(f"   {MORE}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else ("#9a6700" if self.not_implemented else "#cf222e")
        text = html.escape(str(self)).replace("\n", "<br>")
        return f'<div style="font-family:monospace;color:{color}">{text}</div>'


class InputChanged(Exception):
    """A checker's signal: the student's code changed an input in place (the message names it)."""


def kind_of(value: object) -> str:
    """What a value is, for a message: "None", "an int", "a list"."""
    if value is None:
        return "None"
    noun = type(value).__name__
    return f"{_article(noun)} {noun}"


def returned(value: object) -> str:
    """What code returned, for a verdict: "None: did you forget `return`?", "a list", …"""
    return "None: did you forget `return`?" if value is None else kind_of(value)


def returned_not(value: object, what: str) -> str:
    """For "it returned …": "None: did you forget `return`?", or "a list, not ``what``"."""
    return returned(value) if value is None else f"{kind_of(value)}, not {what}"


def _article(noun: str) -> str:
    return "an" if noun[0].lower() in "aeiou" or noun == "ndarray" else "a"


def passed(name: str, verdict: str) -> CheckResult:
    return CheckResult(name, True, verdict)


def failed(name: str, verdict: str, *hints: str) -> CheckResult:
    return CheckResult(name, False, verdict, list(hints))


def named(name: str, mistake: str, *more: str, prefix: str = "") -> CheckResult:
    """A failure from a named mistake written "what is wrong: what to do next": the verdict is the
    first part (after ``prefix``) and the first hint the rest, so neither repeats the other."""
    verdict, _, hint = mistake.partition(": ")
    if not hint:
        raise ValueError(f"a named mistake needs a hint after ': ': {mistake!r}")
    return failed(name, prefix + verdict, hint, *more)


def forget_attempts() -> None:
    """Start every exercise's hints again from the first (the tests do, before each test)."""
    _FAILED.clear()


class ReturnedNone(Exception):
    """Raised by a checker when the student's code gave None where ``what`` belongs."""


@contextlib.contextmanager
def on_case(label: str) -> Iterator[None]:
    """Inside a checker, around a call of the student's code on the input ``label`` ("3 queries at
    once, (m, d)"): a crash there is reported with the input it happened on."""
    try:
        yield
    except Exception as err:
        with contextlib.suppress(AttributeError):  # a few C-level exceptions take no attributes
            err._check_case = label  # type: ignore[attr-defined]
        raise


@contextlib.contextmanager
def torch_defaults() -> Iterator[None]:
    """Torch's process-wide settings as a fresh kernel has them, whatever a student's cell set before
    a check (restored after): float32 by default, gradients on, no anomaly detection, tensors made
    on the CPU, no autocast. Under a float64 default or `torch.set_grad_enabled(False)` right answers
    failed ("your code works in float64", "does not require grad") and named mistakes passed (an
    evaluate without no_grad); under an autocast a cell entered and never left, right answers
    failed ("BFloat16 did not match Float") and two training-step mistakes passed; under
    `torch.set_default_device("cuda")` the checkers' CPU generators refuse to draw. The global
    random generator is left as it was: the student's next cell draws what it would have drawn
    without the check."""
    import torch

    dtype = torch.get_default_dtype()
    gpus = [torch.cuda.current_device()] if torch.cuda.is_available() else []  # one: no warning
    torch.set_default_dtype(torch.float32)
    try:
        with (
            torch.random.fork_rng(devices=gpus),
            torch.inference_mode(False),
            torch.enable_grad(),
            torch.autograd.set_detect_anomaly(False),
            # where torch.randn and friends make tensors (a mode on every call: only when needed)
            torch.device("cpu")
            if torch.empty(()).device.type != "cpu"
            else contextlib.nullcontext(),
            torch.autocast("cpu", enabled=False),
            torch.autocast("cuda", enabled=False) if gpus else contextlib.nullcontext(),
        ):
            yield
    finally:
        torch.set_default_dtype(dtype)


@contextlib.contextmanager
def warnings_shown() -> Iterator[None]:
    """Warnings a cell made errors (``warnings.simplefilter("error")``, ``PYTHONWARNINGS=error``)
    shown instead while a check runs, every other filter kept (restored after): a library's warning
    raised inside the student's code ended notebook 04's collate check before its verdict."""
    kept = list(warnings.filters)
    if not any(action == "error" for action, *_ in kept):
        yield  # filters a check adds (a library imported inside it) stay, as they would without it
        return
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, message, category, module, lineno in reversed(kept):  # in the same order
            warnings.filterwarnings("default" if action == "error" else action,
                                    _pattern(message), category, _pattern(module), lineno)  # fmt: skip
        yield


def _pattern(regex: "re.Pattern[str] | str | None") -> str:
    """A filter's message or module as ``filterwarnings`` takes it (stored compiled, as text or None)."""
    return getattr(regex, "pattern", regex) or ""


def run_check(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run ``check`` (under ``torch_defaults`` and ``warnings_shown``); a stub's NotImplementedError
    or any crash becomes a result, never a traceback.

    A failed attempt shows one hint more than the last one did (see the module doc)."""
    try:
        with torch_defaults(), warnings_shown():
            result = check()
    except InputChanged as err:
        result = failed(name, f"your code changed its input {err} in place",
                        "compute into new tensors (y = x + a, not x += a; x = x - mean, not x -= "
                        "mean): the caller still "
                        "needs its input, as a residual connection adds x to the sublayer's output")  # fmt: skip
    except ReturnedNone as err:
        result = failed(name, f"your code returned None for the {err}: did you forget `return`?",
                        f"end the function with `return` and the {err}")  # fmt: skip
    except NotImplementedError as err:
        if not _a_stub(err):  # torch's, for an operation this device or dtype lacks: a crash
            return _crashed(name, err)
        hints = [hint for hint in (str(err), _stub_named(err)) if hint]
        return CheckResult(name, False, NOT_IMPLEMENTED, hints)
    except SystemExit as err:  # sys.exit() in a function would end the check, not just the function
        code = "" if err.code is None else repr(err.code)
        return CheckResult(name, False, f"your code called sys.exit({code})",
                           ["raise an error (ValueError) instead: in a notebook sys.exit stops more "
                            "than your function"])  # fmt: skip
    except Exception as err:  # the student's code crashed, or returned what the check cannot use
        return _crashed(name, err)
    if result.passed:
        for key in [key for key in _FAILED if key[0] == name]:
            del _FAILED[key]
    else:
        mistake = (name, result.hints[0] if result.hints else result.verdict)
        _FAILED[mistake] = _FAILED.get(mistake, 0) + 1
        result.shown = _FAILED[mistake]
    return result


def _crashed(name: str, err: Exception) -> CheckResult:
    """The result when the student's code crashed, or the checker could not use what it returned."""
    message = [str(err).splitlines()[0] if str(err) else type(err).__name__]
    if _half_imported(err, message[0]):
        return CheckResult(name, False, "a library's import was cut short, not your code's fault "
                           "(a cell interrupted while it imported?)", [
                               "restart the kernel (Kernel → Restart) and run the cells again "
                               "(a file of yours named like the library would do this too: "
                               "rename it)", *message])  # fmt: skip
    frame = _students_frame(err)
    if frame is None:
        return _checker_side(name, err, message)
    where = f"line {frame.lineno} (`{frame.line}`)" if frame.line else f"line {frame.lineno}"
    if case := getattr(err, "_check_case", None):
        where += f" (input: {case})"
    return CheckResult(name, False, f"your code raised {type(err).__name__} at {where}", message)


def _a_stub(err: NotImplementedError) -> bool:
    """Raised by a ``raise`` statement (an exercise's stub however it is written, or torch's for a
    module without ``forward``), not by a call into compiled code: a torch operation that this device
    or dtype lacks ("Cannot copy out of meta tensor", "Could not run 'aten::...'"), which read as "not
    implemented yet" for finished code."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return True
    for instruction in dis.get_instructions(tb.tb_frame.f_code):
        if instruction.offset == tb.tb_lasti:
            return instruction.opname in ("RAISE_VARARGS", "RERAISE")
    return True


_WRONG_TYPE = re.compile(r"'(\w+)' object (?:has no attribute|is not subscriptable|is not iterable)|"
                         r"non-iterable (\w+) object")  # fmt: skip
_RETURNED = {"NoneType", "tuple", "list", "dict", "str", "int", "float", "bool", "ndarray"}
_SIGNATURE = re.compile(r"positional argument|keyword argument|multiple values for argument")
_FLOAT64 = re.compile(r"Double did not match Float|Float did not match Double|expected .*Float.*Double|"
                      r"expected .*Double.*Float|mixed dtype|scalar type Double")  # fmt: skip


def _half_imported(err: Exception, message: str) -> bool:
    """An import a KeyboardInterrupt cut short leaves its module half made: a library then fails with
    "partially initialized module", or misses a submodule that exists ("module 'sympy' has no
    attribute 'core'"; a name that is no submodule, torch.no_such_function, is a typo). Looked up
    without importing anything."""
    if not isinstance(err, ImportError | AttributeError) or not err.__traceback__:
        return False
    where = traceback.extract_tb(err.__traceback__)[-1].filename
    if not _library(where) or where.startswith(str(Path(__file__).parent)):
        return False
    if "partially initialized module" in message:
        return True
    missing = _MISSING.match(message)
    package = sys.modules.get(missing.group(1)) if missing else None
    if missing is None or package is None:
        return False
    # a guess about a library's state: never a crash of the checker's own
    with contextlib.suppress(Exception):
        name = f"{missing.group(1)}.{missing.group(2)}"
        return importlib.machinery.PathFinder.find_spec(name, package.__path__) is not None
    return False


_MISSING = re.compile(r"module '([\w.]+)' has no attribute '(\w+)'")


def _checker_side(name: str, err: Exception, message: list[str]) -> CheckResult:
    """An error raised in the checker's own frame: the student's code could not be called as the
    exercise says, returned float64, or returned something the check cannot use. Python's message
    comes first where it names the problem (the parameters, the attribute), after what to do where
    the verdict already says all it says (a None, a float64)."""
    if isinstance(err, TypeError) and _SIGNATURE.search(message[0]):
        return CheckResult(name, False, "the checker could not call your code the way the exercise "
                           "does: check its parameters", message + [
                               "keep the signature the exercise gives (names, order, defaults)"])  # fmt: skip
    found = _WRONG_TYPE.search(message[0]) if isinstance(err, TypeError | AttributeError) else None
    noun = found and (found.group(1) or found.group(2))
    if noun in _RETURNED:  # a value where a tensor belongs; a missing attribute of a class is not
        what = (
            "None: did you forget `return`?" if noun == "NoneType" else f"{_article(noun)} {noun}"
        )
        return CheckResult(name, False, f"your code returned {what}", [
            "return what the exercise asks for (a tensor, unless it says otherwise)", *message])  # fmt: skip
    if noun and isinstance(err, AttributeError):
        return CheckResult(name, False, f"the checker looked for an attribute your {noun} does not "
                           "have", message + ["keep the names the exercise gives (the layers "
                                              "__init__ creates)"])  # fmt: skip
    if isinstance(err, RuntimeError) and _FLOAT64.search(message[0]):
        return CheckResult(name, False, "your code works in float64 (double) where the checker "
                           "uses float32", [
                               "keep the input's dtype: torch.tensor of Python floats is float32, "
                               "but numpy arrays and .double() give float64", *message])  # fmt: skip
    return CheckResult(name, False, "the checker could not use what your code returned "
                       f"({type(err).__name__}): check what it returns", message)  # fmt: skip


def _stub_named(err: NotImplementedError) -> str | None:
    """Which function still raises (an exercise's check may call another exercise's), and that code
    under the ``raise`` line never runs."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code if tb is not None else None
    if code is None or _library(code.co_filename):  # torch's "missing the required forward"
        return None
    # co_qualname (Python 3.11+) names the class too: MyBertSelfAttention.forward
    return (f"`{getattr(code, 'co_qualname', code.co_name)}` still raises it: write your code in "
            "place of the `raise NotImplementedError(...)` line (code under it never runs)")  # fmt: skip


def _students_frame(err: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback that is the student's. Going outwards from where the
    error arose, library code (installed packages, Python's own, helpers' layers a student may call)
    is skipped; the first frame that is either a checker's (helpers/checks, the quizzes) or the
    student's decides. None for a checker's: the student's code returned, and the checker could not
    use what it returned."""
    frames = traceback.extract_tb(err.__traceback__)
    helpers_dir = Path(__file__).parent
    checkers = (str(helpers_dir / "checks"), str(helpers_dir / "quiz.py"))
    for frame in reversed(frames):
        if frame.filename.startswith(checkers):
            return None
        if not _library(frame.filename):
            return frame
    return frames[-1] if frames else None


_NOT_STUDENTS = (
    str(Path(__file__).parent),
    sysconfig.get_paths()["stdlib"],
)  # helpers, Python's own


def _library(filename: str) -> bool:
    """Whether code in ``filename`` is not the student's: installed packages, Python's own, helpers."""
    return filename.startswith(_NOT_STUDENTS) or "-packages" in filename
