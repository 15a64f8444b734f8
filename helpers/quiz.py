"""Multiple-choice concept quizzes. Questions and answers live in data/quiz_*.json, not in notebooks."""

import json
from dataclasses import dataclass

from helpers.download import project_file
from helpers.feedback import CheckResult


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    options: list[str]
    answer: int  # index into options
    explanation: str  # shown once the answer is right
    hint: str  # shown after a wrong answer; it must not give the answer away


def load_quiz(name: str) -> tuple[str, list[Question]]:
    """The title and questions of data/quiz_<name>.json."""
    raw = json.loads(project_file(f"quiz_{name}.json").read_text(encoding="utf-8"))
    questions = [Question(**q) for q in raw["questions"]]
    for q in questions:
        if not 0 <= q.answer < len(q.options):
            raise ValueError(
                f"quiz {name}, question {q.id!r}: answer {q.answer} is not an option index"
            )
    return raw["title"], questions


def grade(question: Question, choice: int | None) -> CheckResult:
    """Grade one answer (an option index, or None when nothing is chosen yet)."""
    if choice is None:
        return CheckResult(question.id, False, "choose an answer first")
    if not 0 <= choice < len(question.options):
        raise ValueError(f"choice {choice} is not one of the {len(question.options)} options")
    if choice == question.answer:
        return CheckResult(question.id, True, "correct", [question.explanation])
    return CheckResult(question.id, False, "not quite, try again", [question.hint])
