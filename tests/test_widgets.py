"""Drive each widget through its controls and check the state it recomputed."""

import re

import ipywidgets
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from helpers import attention as att
from helpers.widgets import live, lookup
from helpers.widgets.quiz import quiz

matplotlib.use("Agg")
K, V, Q = att.COURSE_KEYS, att.COURSE_VALUES, att.COURSE_QUERY


def test_attention_explorer_recomputes_on_every_control():
    explorer = lookup.attention_explorer(K, V, query=Q, scale=1.0)
    assert set(explorer.controls) == {"q0", "q1", "q2", "scale", "mode"}
    assert torch.allclose(explorer.state["output"], att.raw_softmax_attention(Q, K, V))

    explorer.controls["q0"].value = 1.0
    moved = torch.tensor([1.0, 1.0, 1.0])
    assert torch.allclose(
        explorer.state["weights"],
        att.softmax_attention(moved, K, V, scale=1.0, return_weights=True)[1],
    )

    explorer.controls["scale"].value = 0.0
    assert torch.allclose(explorer.state["weights"], torch.full((4,), 0.25))

    explorer.controls["mode"].value = "argmax"
    assert (
        explorer.state["weights"].tolist()
        == att.argmax_attention(moved, K, V, return_weights=True)[1].tolist()
    )
    assert explorer.state["mode"] == "argmax"


def test_explorer_starts_at_zero_query_when_none_given():
    explorer = lookup.attention_explorer(K, V)
    assert [explorer.controls[f"q{i}"].value for i in range(3)] == [0.0, 0.0, 0.0]


def test_selection_explorer_copies_as_strength_grows():
    """Keys are numbered from 1 on the sliders, as in the text: j = 3 copies v3 (row 2)."""
    explorer = lookup.selection_explorer(att.SELECTION_KEYS, V, strength=1.0, j=3)
    assert (explorer.controls["j"].min, explorer.controls["j"].max) == (1, 4)
    weak = explorer.state["distance"]
    explorer.controls["strength"].value = 20.0
    assert explorer.state["distance"] < weak and explorer.state["weights"].argmax() == 2
    explorer.controls["j"].value = 1
    assert torch.equal(explorer.state["target"], V[0]) and explorer.state["weights"].argmax() == 0
    assert torch.allclose(
        explorer.state["scores"], 20.0 * att.SELECTION_KEYS @ att.SELECTION_KEYS[0]
    )


def test_averaging_explorer_averages_the_chosen_pair():
    keys = att.random_orthonormal(4, 4, torch.Generator().manual_seed(0)).T.float()
    explorer = lookup.averaging_explorer(keys, V, strength=20.0, a=1, b=4)
    assert explorer.state["distance"] < 1e-4
    explorer.controls["b"].value = 2
    assert torch.allclose(explorer.state["target"], (V[0] + V[1]) / 2)
    assert explorer.state["distance"] < 1e-4
    explorer.controls["strength"].value = 0.0
    assert torch.allclose(explorer.state["weights"], torch.full((4,), 0.25))


def test_averaging_explorer_shows_a_third_key_winning_for_keys_that_are_not_orthogonal():
    explorer = lookup.averaging_explorer(att.SELECTION_KEYS, V, strength=20.0, a=1, b=3)
    assert explorer.state["weights"].argmax() == 1 and explorer.state["weights"][1] > 0.99


def test_a_key_number_outside_the_keys_is_refused():
    with pytest.raises(ValueError, match="key number 0 is not one of k1 … k4"):
        lookup.selection_explorer(att.SELECTION_KEYS, V, j=0)


def test_copy_explorer_turns_the_weights_into_the_identity():
    explorer = lookup.copy_explorer(att.SELECTION_KEYS, strength=0.0)
    assert torch.allclose(explorer.state["weights"], torch.full((4, 4), 0.25))
    explorer.controls["strength"].value = 20.0
    assert explorer.state["distance"] < 1e-4
    assert torch.allclose(explorer.state["weights"], torch.eye(4), atol=1e-4)


def test_notebook_01_explorers_redraw_while_a_slider_is_dragged():
    """Their recompute is a lookup over a few keys: cheap enough to follow the mouse."""
    explorers = [
        lookup.attention_explorer(K, V),
        lookup.selection_explorer(att.SELECTION_KEYS, V),
        lookup.averaging_explorer(att.SELECTION_KEYS, V, a=1, b=2),
        lookup.copy_explorer(att.SELECTION_KEYS),
    ]
    sliders = [
        control
        for explorer in explorers
        for control in explorer.controls.values()
        if hasattr(control, "continuous_update")
    ]
    assert len(sliders) == 10 and all(slider.continuous_update for slider in sliders)


def test_quiz_grades_each_answer():
    widget = quiz("01_concepts")
    assert len(widget.questions) == 5
    first = widget.questions[0]  # pair packing: options 1 and 2 are right
    first["button"].click()
    assert widget.results[first["id"]].verdict == "choose at least one option first"
    first["choices"][0].value = True
    first["button"].click()
    result = widget.results[first["id"]]
    assert not result.passed and "❌" in first["feedback"].value
    assert "3 of 4 options marked right" in result.verdict
    first["choices"][1].value = True
    first["button"].click()
    assert widget.results[first["id"]].passed and "✅" in first["feedback"].value
    first["choices"][3].value = True  # a wrong option as well
    first["button"].click()
    assert not widget.results[first["id"]].passed


def test_sliders_redraw_on_release_unless_asked_to_follow_the_drag():
    assert not live.slider("s", 0.5, 0.0, 1.0).continuous_update
    assert live.slider("s", 0.5, 0.0, 1.0, continuous_update=True).continuous_update
    index = live.index_slider("i", 0, 4, continuous_update=True)
    assert index.continuous_update and (index.min, index.max) == (0, 3)
    assert index.description == "i (from 0)"  # a student counting layers from 1 is told


def test_live_html_recomputes_and_redraws():
    box = live.live_html(
        {"n": live.index_slider("n", 1, 5)},
        lambda n: {"square": n * n},
        lambda state: ipywidgets.HTML(str(state["square"])),
    )
    box.controls["n"].value = 3
    assert box.state == {"square": 9} and box.children[-1].children[0].value == "9"


def test_live_runs_keeps_every_run_and_reports_errors_in_the_widget():
    runs = []

    def run(x: float) -> str:
        if x < 0:
            raise ValueError("x must not be negative")
        runs.append(x)
        return f"run {len(runs)}: x = {x}"

    def draw(runs):
        fig, ax = plt.subplots()
        ax.plot(runs)
        return fig

    box = live.live_runs({"x": live.slider("x", 1.0, -1.0, 2.0)}, run, draw, runs, "go")
    box.button.click()
    box.controls["x"].value = 2.0
    box.button.click()
    status = box.children[-2]
    assert box.runs == [1.0, 2.0] and re.fullmatch(r"run 2: x = 2.0 \(\d+\.\d s\)", status.value)
    box.controls["x"].value = -1.0
    box.button.click()
    assert box.runs == [1.0, 2.0] and "ValueError: x must not be negative" in status.value


def test_every_control_has_a_description():
    """A control without one is announced by a screen reader as "checkbox, not checked" and nothing
    more (the quiz's boxes were): every ipywidgets control helpers/widgets builds names itself."""
    import ast

    from conftest import ROOT

    controls = {name for name in dir(ipywidgets) if name[0].isupper()} - {
        "Layout", "HTML", "HTMLMath", "Label", "Output", "Box", "HBox", "VBox", "GridBox", "Image",
        "Widget", "DOMWidget", "CoreWidget", "ValueWidget", "Style", "Tab", "Accordion",
    }  # fmt: skip
    bare, seen = [], 0
    for path in sorted((ROOT / "helpers" / "widgets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in controls):  # fmt: skip
                seen += 1
                if "description" not in {k.arg for k in node.keywords}:
                    bare.append(f"{path.name}:{node.lineno} {node.func.attr}")
    assert seen >= 20 and not bare, bare
    box = quiz("01_concepts").questions[0]["choices"]
    assert [c.description for c in box] == [f"{i}." for i in range(1, len(box) + 1)]
    # the option's text, in its own HTML widget beside the box, is the box's tooltip too
    from helpers.quiz import load_quiz
    from helpers.widgets.quiz import TOOLTIP

    texts = [option.text for option in load_quiz("01_concepts")[1][0].options]
    assert [getattr(c, TOOLTIP) for c in box] == texts and all(texts)


def test_an_error_in_a_redraw_is_shown_in_the_widget_and_cleared_by_the_next_good_one():
    """Jupyter only logs an error raised in a widget's callback: the old view stayed up unexplained."""

    def compute(n: int) -> dict:
        if n == 3:
            raise ValueError("three is not allowed")
        return {"square": n * n}

    box = live.live_html(
        {"n": live.index_slider("n", 1, 5)}, compute, lambda s: ipywidgets.HTML(str(s["square"]))
    )
    assert box.status.layout.display == "none"  # no empty row while all is well
    with pytest.raises(ValueError, match="three"):
        box.controls["n"].value = 3
    assert (
        "ValueError: three is not allowed" in box.status.value and box.status.layout.display is None
    )
    assert "last values that worked" in box.status.value and box.state == {"square": 1}
    box.controls["n"].value = 2
    assert box.status.value == "" and box.children[-1].children[0].value == "4"
    assert box.status.layout.display == "none"


def test_a_view_that_fails_to_draw_keeps_the_state_it_shows():
    def draw(state: dict) -> ipywidgets.HTML:
        if state["square"] == 9:
            raise RuntimeError("cannot draw nine")
        return ipywidgets.HTML(str(state["square"]))

    box = live.live_html({"n": live.index_slider("n", 1, 5)}, lambda n: {"square": n * n}, draw)
    with pytest.raises(RuntimeError):
        box.controls["n"].value = 3
    assert box.state == {"square": 1} and box.children[-1].children[0].value == "1"


def test_a_fault_in_a_run_is_shown_not_left_at_running():
    def run(x: float) -> str:
        raise RuntimeError("out of memory")

    box = live.live_runs({"x": live.slider("x", 1.0, 0.0, 2.0)}, run, lambda r: None, [], "go")
    box.button.click()  # ipywidgets' button hands the traceback to IPython, or logs it without one
    status = box.children[-2]
    assert "RuntimeError: out of memory (the run stopped)" in status.value


def test_a_run_button_says_how_long_the_run_took_and_the_busy_line_the_last_ones_time(monkeypatch):
    seen = []
    box = live.live_runs({"x": live.slider("x", 1.0, 0.0, 2.0)}, lambda x: "done", lambda r: None,
                         [], "go", busy="training…")  # fmt: skip
    status = box.children[-2]
    clock = iter([100.0, 142.4, 200.0, 203.0])
    monkeypatch.setattr(live, "perf_counter", lambda: next(clock))
    status.observe(lambda change: seen.append(change["new"]), names="value")
    box.button.click()
    box.button.click()
    assert seen == [
        "training…",
        "done (42 s)",
        "training… (the last run took 42 s)",
        "done (3.0 s)",
    ]


def _open_widgets() -> int:
    from ipywidgets.widgets import widget

    registry = getattr(widget, "_instances", None)  # ipywidgets 8
    return len(registry if registry is not None else ipywidgets.Widget.widgets)  # 7.x


def test_an_html_view_closes_what_it_replaces():
    """Each redraw of a live_html view left its old HTML widget, layout and style open (three comms
    a change: 600 widgets in the browser after 200 drags of notebook 08's sliders)."""
    from helpers.widgets.tokenization import merge_explorer

    box = merge_explorer(["the", "thing"], [("t", "h"), ("th", "e")], set("theing"))
    step = box.controls["step"]
    step.value = 1  # warm
    before = _open_widgets()
    for i in range(30):
        step.value = i % 3
    assert _open_widgets() == before
    assert "th" in box.children[-1].children[0].value  # the view still shows the merges


def test_the_merge_explorer_refuses_a_text_of_several_words_showing_its_words():
    from helpers.widgets.tokenization import merge_explorer

    with pytest.raises(ValueError, match=r"\"don't\" is not one word: .*\(\['don', \"'\", 't'\]\)"):
        merge_explorer(["the", "don't"], [("t", "h")], set("thedon't"))
    merge_explorer(["café", "a‿b"], [], set("caféa‿b"))  # one word each to the pre-tokeniser
