"""The result every exercise checker returns: passed or not, a one-line verdict, specific hints.

Hints escalate. A checker lists its hints for a mistake from the idea to the answer; the first
failed attempt prints the first hint, each further failed attempt of the same exercise one more, and
a pass starts the count again. ``result.hints`` always holds them all (for code and tests).
"""

import html
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NOT_IMPLEMENTED = "not implemented yet"
MORE = "(check again after your next try for a more specific hint)"
_FAILED: dict[str, int] = {}  # exercise name -> failed attempts since its last pass (this kernel)


@dataclass(repr=False)
class CheckResult:
    """Prints as ✅/❌ with hints in a notebook; code reads ``result.passed`` and ``result.hints``."""

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
        mark = "✅" if self.passed else ("⏳" if self.not_implemented else "❌")
        lines = [f"{mark} {self.name}: {self.verdict}"]
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


def passed(name: str, verdict: str) -> CheckResult:
    return CheckResult(name, True, verdict)


def failed(name: str, verdict: str, *hints: str) -> CheckResult:
    return CheckResult(name, False, verdict, list(hints))


def forget_attempts() -> None:
    """Start every exercise's hints again from the first (the tests do, before each test)."""
    _FAILED.clear()


def run_check(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run ``check``; a stub's NotImplementedError or any crash becomes a result, never a traceback.

    A failed attempt shows one hint more than the last one did (see the module doc)."""
    try:
        result = check()
    except NotImplementedError as err:
        hint = str(err) or "replace the `raise NotImplementedError` line with your code"
        return CheckResult(name, False, NOT_IMPLEMENTED, [hint])
    except Exception as err:  # the student's code crashed, or returned what the check cannot use
        message = [str(err).splitlines()[0] if str(err) else type(err).__name__]
        frame = _students_frame(err)
        if frame is None:
            return CheckResult(name, False, "the checker could not use what your code returned "
                               f"({type(err).__name__}): check what it returns", message)  # fmt: skip
        where = f"line {frame.lineno} (`{frame.line}`)" if frame.line else f"line {frame.lineno}"
        return CheckResult(
            name, False, f"your code raised {type(err).__name__} at {where}", message
        )
    if result.passed:
        _FAILED.pop(name, None)
    else:
        _FAILED[name] = _FAILED.get(name, 0) + 1
        result.shown = _FAILED[name]
    return result


def _students_frame(err: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback that is the student's. Going outwards from where the
    error arose, library code (installed packages, Python's own, helpers' layers a student may call)
    is skipped; the first frame that is either a checker's (helpers/checks, the quizzes) or the
    student's decides. None for a checker's: the student's code returned, and the checker could not
    use what it returned."""
    frames = traceback.extract_tb(err.__traceback__)
    helpers_dir, stdlib = Path(__file__).parent, sysconfig.get_paths()["stdlib"]
    checkers = (str(helpers_dir / "checks"), str(helpers_dir / "quiz.py"))
    for frame in reversed(frames):
        if frame.filename.startswith(checkers):
            return None
        library = (
            frame.filename.startswith((str(helpers_dir), stdlib)) or "-packages" in frame.filename
        )
        if not library:
            return frame
    return frames[-1] if frames else None
