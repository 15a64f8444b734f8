"""Drive each widget through its controls and check the state it recomputed."""

import matplotlib
import pytest
import torch

from helpers import attention as att
from helpers import widgets

matplotlib.use("Agg")
K, V, Q = att.COURSE_KEYS, att.COURSE_VALUES, att.COURSE_QUERY


def test_attention_explorer_recomputes_on_every_control():
    explorer = widgets.attention_explorer(K, V, query=Q, scale=1.0)
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
    explorer = widgets.attention_explorer(K, V)
    assert [explorer.controls[f"q{i}"].value for i in range(3)] == [0.0, 0.0, 0.0]


def test_selection_explorer_copies_as_strength_grows():
    explorer = widgets.selection_explorer(att.SELECTION_KEYS, V, strength=1.0, j=2)
    weak = explorer.state["distance"]
    explorer.controls["strength"].value = 20.0
    assert explorer.state["distance"] < weak and explorer.state["weights"].argmax() == 2
    explorer.controls["j"].value = 0
    assert torch.equal(explorer.state["target"], V[0]) and explorer.state["weights"].argmax() == 0


def test_averaging_explorer_averages_the_chosen_pair():
    keys = att.random_orthonormal(4, 4, torch.Generator().manual_seed(0)).T.float()
    explorer = widgets.averaging_explorer(keys, V, strength=20.0, a=0, b=3)
    assert explorer.state["distance"] < 1e-4
    explorer.controls["b"].value = 1
    assert torch.allclose(explorer.state["target"], (V[0] + V[1]) / 2)
    assert explorer.state["distance"] < 1e-4
    explorer.controls["strength"].value = 0.0
    assert torch.allclose(explorer.state["weights"], torch.full((4,), 0.25))


def test_quiz_grades_each_answer():
    quiz = widgets.quiz("01_concepts")
    assert len(quiz.questions) == 5
    first = quiz.questions[0]
    first["button"].click()
    assert quiz.results[first["id"]].verdict == "choose an answer first"
    wrong = 1
    first["choices"].index = wrong
    first["button"].click()
    assert not quiz.results[first["id"]].passed and "❌" in first["feedback"].value
    first["choices"].index = 0
    first["button"].click()
    assert quiz.results[first["id"]].passed and "✅" in first["feedback"].value


@pytest.mark.parametrize("bad", [{"j": 7}])
def test_out_of_range_slider_values_are_clamped(bad):
    explorer = widgets.selection_explorer(att.SELECTION_KEYS, V)
    explorer.controls["j"].value = bad["j"]
    assert explorer.controls["j"].value == 3 and explorer.state["weights"].shape == (4,)
