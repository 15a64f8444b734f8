import json

import pytest

from helpers.download import project_file
from helpers.quiz import grade, load_quiz


def test_quiz_covers_the_five_concepts():
    title, questions = load_quiz("01_concepts")
    assert title and [q.id for q in questions] == [
        "pair-packing",
        "new-tokenizer",
        "bpe",
        "mlm-labels",
        "from-scratch",
    ]
    for q in questions:
        assert len(q.options) >= 3 and q.explanation and q.hint


def test_grading():
    _, questions = load_quiz("01_concepts")
    q = questions[2]
    right = grade(q, q.answer)
    assert right.passed and right.hints == [q.explanation]
    wrong = grade(q, (q.answer + 1) % len(q.options))
    assert not wrong.passed and wrong.hints == [q.hint]
    assert not grade(q, None).passed
    with pytest.raises(ValueError, match="choice 9 is not one of the 4 options"):
        grade(q, 9)


def test_hints_do_not_give_the_answer_away():
    _, questions = load_quiz("01_concepts")
    for q in questions:
        assert q.options[q.answer] not in q.hint


def test_answers_are_not_in_the_notebook():
    raw = json.loads(project_file("quiz_01_concepts.json").read_text())
    notebook = (
        project_file("quiz_01_concepts.json").parent.parent
        / "notebooks"
        / "01_attention_by_hand.ipynb"
    ).read_text()
    for q in raw["questions"]:
        assert q["explanation"] not in notebook
