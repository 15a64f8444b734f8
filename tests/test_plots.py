"""Every plot has a title and labelled axes."""

import matplotlib
import pytest
import torch

from helpers import attention as att
from helpers import benchmark, masking, plots

matplotlib.use("Agg")


K, V, Q = att.COURSE_KEYS, att.COURSE_VALUES, att.COURSE_QUERY
W = att.softmax_attention(Q, K, V, return_weights=True)[1]
HISTORY = {"run": {"step": [1, 2], "train": [2.0, 1.0], "valid": [2.1, 1.2]}}
FIGURES = {
    "lookup": lambda: plots.plot_lookup(W, V[0], V[1], "lookup"),
    "argmax vs softmax": lambda: plots.plot_argmax_vs_softmax(Q, K, V, V[1], points=11),
    "heatmap": lambda: plots.plot_attention_heatmap(["a", "b"], torch.eye(2), "heatmap"),
    "masking": lambda: plots.plot_masking(
        torch.tensor([0.5, 0.5, 0]), torch.tensor([0.3, 0.3, 0]), torch.tensor([True, True, False])
    ),
    "future": lambda: plots.plot_future_influence(
        {s: masking.future_influence(s, T=4) for s in masking.STYLES}
    ),
    "loss curves": lambda: plots.plot_loss_curves(HISTORY, "curves", 1.0),
    "history": lambda: plots.plot_history(
        {
            "epoch": [1, 2],
            "train_loss": [0.7, 0.5],
            "valid_loss": [0.6, 0.5],
            "valid_accuracy": [0.6, 0.7],
        }
    ),
    "runs": lambda: plots.plot_runs(
        [{"label": "a", "history": {"epoch": [1], "valid_loss": [0.5]}, "test_accuracy": 0.8}]
    ),
    "accuracy": lambda: plots.plot_accuracy(
        {"a": {"epoch": [1, 2], "dev_accuracy": [0.5, 0.6]}}, ("dev",), "t"
    ),
    "curves": lambda: plots.plot_curves(
        {"a": {"epoch": [1, 2], "dev_accuracy": [0.5, 0.6]}}, "dev", "t"
    ),
    "models": lambda: plots.plot_model_comparison(
        [
            {"model": "a", "dev_accuracy": 0.9, "test_accuracy": 0.8, "reason": ""},
            {"model": "b", "dev_accuracy": 0.0, "test_accuracy": 0.0, "reason": "out of memory"},
        ]  # fmt: skip
    ),
    "timings": lambda: plots.plot_attention_timings(
        benchmark.attention_speed([4], embed_dim=4, repeats=1)
    ),
}


@pytest.mark.parametrize("name", FIGURES)
def test_every_axis_is_titled_and_labelled(name):
    fig = FIGURES[name]()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), (name, ax)
    matplotlib.pyplot.close(fig)


def test_lookup_table():
    table = plots.lookup_table(att.COURSE_QUERY, att.COURSE_KEYS, att.COURSE_VALUES)
    assert list(table["score q·k"]) == [3.0, 1.0, 1.0, -3.0] and list(table.index) == [
        "k1",
        "k2",
        "k3",
        "k4",
    ]
