"""A concept quiz: per question a checkbox for each option ("select all that apply"), a Check
button and the feedback, for data/quiz_<name>.json."""

import html

import ipywidgets as w

from helpers.quiz import Question, grade, load_quiz

# The hover text's trait: "tooltip" in ipywidgets 8, "description_tooltip" in 7 (Colab's 7.7.1)
TOOLTIP = "tooltip" if "tooltip" in w.Checkbox.class_traits() else "description_tooltip"


def quiz(name: str) -> w.VBox:
    """The quiz data/quiz_<name>.json; ``box.results`` maps a question id to its latest grade."""
    title, questions = load_quiz(name)
    box = w.VBox([w.HTML(f"<h3>{html.escape(title)}</h3>")])
    box.questions, box.results = [], {}
    for number, question in enumerate(questions, 1):
        # Each box's description is its option's number (what a screen reader announces for it);
        # the option's text beside it, in an HTML widget: it wraps, where a description would be
        # cut off at the label's width. The text is also the box's tooltip (its title attribute).
        checkboxes = [
            w.Checkbox(
                value=False,
                description=f"{i}.",
                indent=False,
                layout=w.Layout(width="56px"),
                **{TOOLTIP: option.text},
            )
            for i, option in enumerate(question.options, 1)
        ]
        rows = [
            w.HBox(
                [box_, w.HTML(html.escape(option.text), layout=w.Layout(width="auto", flex="1"))]
            )
            for box_, option in zip(checkboxes, question.options)
        ]
        button = w.Button(description="Check", button_style="info")
        feedback = w.HTML()

        def on_click(
            _button: w.Button,
            question: Question = question,
            checkboxes: list[w.Checkbox] = checkboxes,
            feedback: w.HTML = feedback,
        ) -> None:
            chosen = {i for i, checkbox in enumerate(checkboxes) if checkbox.value}
            result = grade(question, chosen)
            box.results[question.id] = result
            feedback.value = result._repr_html_()

        button.on_click(on_click)
        box.questions.append(
            {"id": question.id, "choices": checkboxes, "button": button, "feedback": feedback}
        )
        box.children += (
            w.HTML(f"<b>{number}. {html.escape(question.question)}</b>"),
            *rows,
            button,
            feedback,
        )
    return box
