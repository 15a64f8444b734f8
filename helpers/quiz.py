"""Concept quizzes, "select all that apply". Questions, answers and the explanation of every option
live in data/quiz_*.json, not in notebooks."""

import json
from dataclasses import dataclass

from helpers.download import project_file
from helpers.feedback import CheckResult, failed, run_check


@dataclass(frozen=True)
class Option:
    text: str
    correct: bool  # whether a right answer selects it
    why: str  # why it is right or wrong; shown once the question is answered (or after 2 tries)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    options: list[Option]
    hint: str  # shown after the first wrong answer; it must not give the answer away

    @property
    def answer(self) -> set[int]:
        """The indices of the options a right answer selects (one or several)."""
        return {i for i, option in enumerate(self.options) if option.correct}


def load_quiz(name: str) -> tuple[str, list[Question]]:
    """The title and questions of data/quiz_<name>.json."""
    path = project_file(f"quiz_{name}.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    questions = []
    for q in raw["questions"]:
        try:
            options = [Option(**option) for option in q["options"]]
        except TypeError as err:
            raise ValueError(
                f"{path.name}, question {q.get('id')!r}: each option needs exactly 'text', "
                f"'correct' and 'why' ({err})"
            ) from None
        question = Question(q["id"], q["question"], options, q["hint"])
        if not question.answer:
            raise ValueError(f"{path.name}, question {question.id!r}: no option is correct")
        questions.append(question)
    return raw["title"], questions


def grade(question: Question, chosen: set[int] | list[int] | tuple[int, ...]) -> CheckResult:
    """Grade one answer: the set of option indices selected. Hints escalate per wrong attempt: the
    question's hint, then which options are marked wrongly, then why."""
    chosen = set(chosen)
    if bad := sorted(i for i in chosen if not 0 <= i < len(question.options)):
        raise ValueError(f"option {bad[0]} is not one of the {len(question.options)} options")
    if not chosen:
        return CheckResult(question.id, False, "choose at least one option first")
    return run_check(question.id, lambda: _grade(question, chosen))


def _grade(question: Question, chosen: set[int]) -> CheckResult:
    wrong = sorted(chosen ^ question.answer)  # selected but wrong, or right but not selected
    if not wrong:
        whys = [_why(question, i) for i in range(len(question.options))]
        return CheckResult(question.id, True, "correct", whys)
    right = len(question.options) - len(wrong)
    marks = ", ".join(
        f"option {i + 1} {'should not be selected' if i in chosen else 'is right too'}"
        for i in wrong
    )
    return failed(
        question.id,
        f"not quite: {right} of {len(question.options)} options marked right",
        question.hint,
        marks,
        "; ".join(_why(question, i) for i in wrong),
    )


def _why(question: Question, index: int) -> str:
    option = question.options[index]
    return f"{index + 1}. {'right' if option.correct else 'wrong'}: {option.why}"
