import json

import pytest

from helpers import quiz as quiz_module
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
        assert "Select all that apply" in q.question and q.hint
        assert len(q.options) >= 3 and all(option.why for option in q.options)
        assert q.answer and len(q.answer) < len(q.options)


def test_several_options_can_be_right():
    """The course's key accepts two reasons to pretrain from scratch: no model for your language or
    domain, and concerns about a pretrained model's biases."""
    _, questions = load_quiz("01_concepts")
    from_scratch = {q.id: q for q in questions}["from-scratch"]
    assert from_scratch.answer == {0, 1}
    assert "biases" in from_scratch.options[1].text
    assert sum(len(q.answer) > 1 for q in questions) >= 3


def test_grading_is_per_option_and_hints_escalate():
    _, questions = load_quiz("01_concepts")
    q = {q.id: q for q in questions}["bpe"]  # options 1 and 2 are right
    right = grade(q, q.answer)
    assert right.passed and len(right.hints) == len(q.options)
    assert all(option.why in " ".join(right.hints) for option in q.options)

    missing = grade(q, {0})  # one right option missing
    assert not missing.passed and missing.verdict == "not quite: 3 of 4 options marked right"
    assert missing.hints[0] == q.hint and "option 2 is right too" in missing.hints[1]
    assert str(missing).count("hint:") == 1, "the first wrong try shows only the question's hint"
    extra = grade(q, {0, 1, 2})  # one wrong option selected
    assert "option 3 should not be selected" in str(extra) and str(extra).count("hint:") == 2
    third = grade(q, {3})
    assert str(third).count("hint:") == 3 and q.options[3].why in str(third)
    assert grade(q, q.answer).passed
    assert str(grade(q, {0})).count("hint:") == 1, "a right answer starts the hints again"


def test_choosing_nothing_or_an_unknown_option():
    _, questions = load_quiz("01_concepts")
    nothing = grade(questions[0], set())
    assert not nothing.passed and nothing.verdict == "choose at least one option first"
    with pytest.raises(ValueError, match="option 9 is not one of the 4 options"):
        grade(questions[0], {9})


def test_hints_do_not_give_the_answer_away():
    _, questions = load_quiz("01_concepts")
    for q in questions:
        for option in q.options:
            assert option.text not in q.hint and option.why not in q.hint


def test_answers_are_not_in_the_notebook():
    raw = json.loads(project_file("quiz_01_concepts.json").read_text())
    root = project_file("quiz_01_concepts.json").parent.parent
    text = (root / "notebooks" / "01_attention_by_hand.ipynb").read_text()
    for q in raw["questions"]:
        for option in q["options"]:
            assert option["why"] not in text


def test_a_malformed_quiz_file_names_the_question(tmp_path, monkeypatch):
    bad = {"title": "t", "questions": [{"id": "q1", "question": "?", "hint": "h",
                                        "options": [{"text": "a", "correct": True}]}]}  # fmt: skip
    (tmp_path / "quiz_bad.json").write_text(json.dumps(bad))
    monkeypatch.setattr(quiz_module, "project_file", lambda name: tmp_path / name)
    with pytest.raises(ValueError, match="question 'q1': each option needs exactly 'text'"):
        load_quiz("bad")
    bad["questions"][0]["options"] = [{"text": "a", "correct": False, "why": "w"}]
    (tmp_path / "quiz_bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="question 'q1': no option is correct"):
        load_quiz("bad")
