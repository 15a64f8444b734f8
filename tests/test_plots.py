"""Every plot has a title and labelled axes."""

import matplotlib
import pytest
import torch

from helpers import attention as att
from helpers import benchmark, masking
from helpers.plots import gpt, layers, lookup, rounded, training

matplotlib.use("Agg")


K, V, Q = att.COURSE_KEYS, att.COURSE_VALUES, att.COURSE_QUERY
W = att.softmax_attention(Q, K, V, return_weights=True)[1]
HISTORY = {"run": {"step": [1, 2], "train": [2.0, 1.0], "valid": [2.1, 1.2]}}
LEAKY = (
    torch.softmax(torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(0)), -1)
    * torch.ones(3, 3).tril()
)  # dot / zero's weights
INSPECTED = {"tokens": ["a", "b", " "], "itos": ["a", "b", " ", "c"], "weights": LEAKY,
             "probs": torch.tensor([0.1, 0.2, 0.3, 0.4])}  # fmt: skip
FIGURES = {
    "lookup": lambda: lookup.plot_lookup(W, V[0], V[1], "lookup"),
    "argmax vs softmax": lambda: lookup.plot_argmax_vs_softmax(Q, K, V, V[1], points=11),
    "heatmap": lambda: layers.plot_attention_heatmap(["a", "b"], torch.eye(2), "heatmap"),
    "masking": lambda: layers.plot_masking(
        torch.tensor([0.5, 0.5, 0]), torch.tensor([0.3, 0.3, 0]), torch.tensor([True, True, False])
    ),
    "future": lambda: layers.plot_future_influence(
        {s: masking.future_influence(s, T=4) for s in masking.STYLES}
    ),
    "loss curves": lambda: layers.plot_loss_curves(HISTORY, "curves", (1.0, "a reference")),
    "history": lambda: training.plot_history(
        {
            "epoch": [1, 2],
            "train_loss": [0.7, 0.5],
            "valid_loss": [0.6, 0.5],
            "valid_accuracy": [0.6, 0.7],
        }
    ),
    "runs": lambda: training.plot_runs(
        [{"label": "a", "history": {"epoch": [1], "valid_loss": [0.5]}, "valid_accuracy": 0.8}]
    ),
    "accuracy": lambda: training.plot_accuracy(
        {"a": {"epoch": [1, 2], "dev_accuracy": [0.5, 0.6]}}, ("dev",), "t"
    ),
    "curves": lambda: training.plot_curves(
        {"a": {"epoch": [1, 2], "dev_accuracy": [0.5, 0.6]}}, "dev", "t"
    ),
    "models": lambda: training.plot_model_comparison(
        [
            {"model": "a", "dev_accuracy": 0.9, "test_accuracy": 0.8, "reason": ""},
            {"model": "b", "dev_accuracy": 0.0, "test_accuracy": 0.0, "reason": "out of memory"},
        ]  # fmt: skip
    ),
    "weight matrix": lambda: lookup.plot_weight_matrix(torch.eye(3), "identity"),
    "heads grid": lambda: layers.plot_heads_grid(["a", "b"], torch.rand(5, 2, 2), "grid"),
    "runs with spread": lambda: layers.plot_runs_with_spread(
        {"a": [HISTORY["run"], {"step": [1, 2], "train": [2.0, 1.0], "valid": [2.3, 1.1]}]}, "t"
    ),
    "timings": lambda: layers.plot_attention_timings(
        benchmark.attention_speed([4], embed_dim=4, repeats=1)
    ),
    "gpt curves": lambda: gpt.plot_curves(
        {"a": {"steps": [1, 2], "dev_losses": [2.0, 1.5], "dev_loss": 1.5}}
    ),
    "gpt attention and next": lambda: gpt.plot_attention_and_next(INSPECTED, 0, 0, top=3),
}


@pytest.mark.parametrize("name", FIGURES)
def test_every_axis_is_titled_and_labelled(name):
    fig = FIGURES[name]()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), (name, ax)
    matplotlib.pyplot.close(fig)


def test_gpt_curves_legend_lies_beside_the_axes_not_over_the_curves():
    fig = FIGURES["gpt curves"]()
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 > ax.get_window_extent().x1  # right of the plotting area, whatever the data


def test_gpt_attention_plot_shows_a_colour_bar_and_the_row_sums():
    fig = gpt.plot_attention_and_next(INSPECTED, 0, 0, top=3)
    left, right = fig.axes[0], fig.axes[1]
    rows = LEAKY[0, 0].sum(-1)  # below 1 but the last: the leak the heat map alone cannot show
    assert f"(row sums {rows.min():.2f}–{rows.max():.2f})" in left.get_title()
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "attention weight"
    assert right.get_ylabel() == "next token"
    matplotlib.pyplot.close(fig)


def test_lookup_table():
    table = lookup.lookup_table(att.COURSE_QUERY, att.COURSE_KEYS, att.COURSE_VALUES)
    assert table["score q·k"] == [3.0, 1.0, 1.0, -3.0] and table.index == ["k1", "k2", "k3", "k4"]
    page = table._repr_html_()
    assert page.count("<tr>") == 1 + 4 and "<th>softmax weight</th>" in page
    assert repr(table).splitlines()[1].lstrip().startswith("k1")


def test_queries_table_shows_scores_and_weights_per_key():
    table = lookup.queries_table(att.COURSE_KEYS, {"q": att.COURSE_QUERY, "zero": torch.zeros(3)})
    assert table["score k1"] == [3.0, 0.0] and table.index == ["q", "zero"]
    assert (
        table["weight k4"][1] == 0.25
        and round(sum(table[f"weight k{i}"][0] for i in (1, 2, 3, 4)), 2) == 1.0
    )


def test_search_table_puts_the_best_dev_accuracy_first():
    results = [{"lr": 1e-4, "dev_accuracy": 0.6}, {"lr": 5e-5, "dev_accuracy": 0.8}]
    table = training.search_table(results)
    assert list(table["lr"]) == [5e-5, 1e-4] and list(table.index) == [0, 1]


def test_highlight_tokens_shades_relative_to_the_top_weight_and_escapes():
    page = training.highlight_tokens(["<b>", "ok"], [0.2, 0.4])
    assert "&lt;b&gt;" in page and "rgba(255, 140, 0, 0.50)" in page and "0, 1.00)" in page


def test_rounded():
    assert rounded(torch.tensor([[0.12345, 1.0]]), 2) == [0.12, 1.0]
