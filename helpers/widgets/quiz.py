"""A concept quiz: one radio group and a Check button per question of data/quiz_<name>.json."""

import ipywidgets as w

from helpers.quiz import grade, load_quiz

# Radio options are one fixed-height line in both ipywidgets 7 and 8: a long option would run into
# the next one. The style rides in the quiz's title (an HTML widget) and is scoped to its class.
WRAP_OPTIONS = (
    "<style>.helpers-quiz .widget-radio-box label {display: flex; align-items: flex-start; "
    "height: auto; min-height: 20px; line-height: 1.35; white-space: normal; margin: 2px 0} "
    ".helpers-quiz .widget-radio-box input {order: -1; flex: none; margin: 3px 6px 0 0}</style>"
)


def quiz(name: str) -> w.VBox:
    """The quiz data/quiz_<name>.json; ``box.results`` maps a question id to its latest grade."""
    title, questions = load_quiz(name)
    box = w.VBox([w.HTML(f"{WRAP_OPTIONS}<h3>{title}</h3>")])
    box.add_class("helpers-quiz")
    box.questions, box.results = [], {}
    for number, question in enumerate(questions, 1):
        choices = w.RadioButtons(
            options=question.options, index=None, layout=w.Layout(width="auto")
        )
        button = w.Button(description="Check", button_style="info")
        feedback = w.HTML()

        def on_click(_button, question=question, choices=choices, feedback=feedback) -> None:
            result = grade(question, choices.index)
            box.results[question.id] = result
            feedback.value = result._repr_html_()

        button.on_click(on_click)
        box.questions.append(
            {"id": question.id, "choices": choices, "button": button, "feedback": feedback}
        )
        box.children += (w.HTML(f"<b>{number}. {question.question}</b>"), choices, button, feedback)
    return box
