"""Every plot has a title and labelled axes."""

import matplotlib
import pytest
import torch

from helpers import attention as att
from helpers import benchmark, masking
from helpers.plots import (
    COLORS,
    bert,
    generation,
    gpt,
    imdb,
    layers,
    lookup,
    number,
    pretraining,
    rounded,
    scaling,
    training,
)

matplotlib.use("Agg")


K, V, Q = att.COURSE_KEYS, att.COURSE_VALUES, att.COURSE_QUERY
W = att.softmax_attention(Q, K, V, return_weights=True)[1]
HISTORY = {"run": {"step": [1, 2], "train": [2.0, 1.0], "valid": [2.1, 1.2]}}
LEAKY = (
    torch.softmax(torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(0)), -1)
    * torch.ones(3, 3).tril()
)  # dot / zero's weights
SUMMARY = {  # notebook 06's comparison as ``helpers.finetune.twin.summarize`` gives it, class-like values
    name: {"seeds": 3, **{k: {"mean": m, "sd": 0.01} for k in pretraining.METRICS}}
    for name, m in (
        ("pretrained", 0.72),
        ("random init", 0.70),
        ("rescaled", 0.71),
        ("minilm", 0.86),
    )
}
INSPECTED = {"tokens": ["a", "b", " "], "itos": ["a", "b", " ", "c"], "weights": LEAKY,
             "probs": torch.tensor([0.1, 0.2, 0.3, 0.4])}  # fmt: skip
FIGURES = {
    "lookup": lambda: lookup.plot_lookup(W, V[0], V[1], "lookup"),
    "lookup with scores": lambda: lookup.plot_lookup(W, V[0], V[1], "lookup", scores=K @ Q),
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
    "heads grid": lambda: layers.plot_heads_grid(
        [f"tok{i}" for i in range(12)], torch.rand(12, 12, 12), "grid"
    ),
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
    "ablation": lambda: imdb.plot_ablation(
        [
            {"change": c, "valid_accuracy": a}
            for c, a in (("course", 0.8), ("course", 0.82), ("lr", 0.7))
        ]
    ),
    "perplexity": lambda: pretraining.plot_perplexity(
        {"eval_perplexity": [700.0, 60.0], "tokens_seen": 10**6, "seconds": {"train": 60.0}}
    ),
    "comparison": lambda: pretraining.plot_comparison(SUMMARY),
    "dev and test": lambda: scaling.dev_test_bars(
        [{"model": m, "lr": 3e-4, "epochs": 2, "dev": 0.9, "test": 0.88} for m in ("a", "b", "c")],
        {"model": "b", "lr": 3e-4, "epochs": 2, "dev": 0.9, "test": 0.88},
    ),
    "sharding": lambda: scaling.plot_sharding(24, 2, 2),
    "time per token": lambda: generation.plot_time_per_token(
        [8, 16], [0.010, 0.012], [0.009, 0.0095]
    ),
    "next tokens": lambda: generation.plot_next_tokens(
        [(" Paris", 0.4), (" the", 0.05)], "after 'is'"
    ),
    "learning curves": lambda: bert.plot_learning_curves(
        {"mini": {"train_loss": [1.0, 0.8], "dev_accuracy": [0.5, 0.6]}}, "SST-5"
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


def drawn(name: str):
    """FIGURES[name], drawn: its texts have their places."""
    fig = FIGURES[name]()
    fig.canvas.draw()
    return fig


def overlaps(a, b, slack: float = 0.5) -> bool:
    return (
        a.x0 + slack < b.x1 and b.x0 + slack < a.x1 and a.y0 + slack < b.y1 and b.y0 + slack < a.y1
    )


def crowded_ticks(fig) -> list[str]:
    """Tick labels drawn over their neighbours ("101112…" on a crowded axis)."""
    fig.canvas.draw()
    found = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text().strip()]
            for a, b in zip(labels, labels[1:]):
                if overlaps(a.get_window_extent(), b.get_window_extent()):
                    found.append(f"{a.get_text()!r} and {b.get_text()!r}")
    return found


@pytest.mark.parametrize("name", FIGURES)
def test_no_tick_label_is_drawn_over_another(name):
    fig = FIGURES[name]()
    assert crowded_ticks(fig) == [], name
    matplotlib.pyplot.close(fig)


def clipped(fig) -> list[str]:
    """Texts drawn past the figure's edge (cut off when the figure is saved as it is)."""
    fig.canvas.draw()
    edge = fig.bbox
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for ticks, labels, limits in ((ax.get_xticks(), ax.get_xticklabels(), ax.get_xlim()),
                                      (ax.get_yticks(), ax.get_yticklabels(), ax.get_ylim())):  # fmt: skip
            texts += [t for x, t in zip(ticks, labels) if min(limits) <= x <= max(limits)]  # drawn
    return [
        t.get_text()
        for t in texts
        if t.get_visible() and t.get_text().strip()
        for box in [t.get_window_extent()]
        if box.x0 < edge.x0 - 1
        or box.x1 > edge.x1 + 1
        or box.y0 < edge.y0 - 1
        or box.y1 > edge.y1 + 1
    ]


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_is_cut_off_at_the_figures_edge(name):
    """A colour bar added after tight_layout (the heads grid) and a title wider than its figure
    (the sharding chart) were cut off when saved without bbox_inches="tight"."""
    fig = FIGURES[name]()
    assert clipped(fig) == [], name
    matplotlib.pyplot.close(fig)


def test_crowded_axes_of_class_sized_inputs_stay_readable():
    prompt = "First Citizen: We are accounted poor"  # notebook 07's class prompt, 36 characters
    T = len(prompt)
    weights = torch.softmax(torch.randn(1, 1, T, T), -1) * torch.ones(T, T).tril()
    state = {"tokens": list(prompt), "itos": sorted(set(prompt)), "weights": weights,
             "probs": torch.softmax(torch.randn(len(set(prompt))), -1)}  # fmt: skip
    twenty = {
        "": {"epoch": list(range(1, 21)), "train_accuracy": [0.5] * 20}
    }  # notebook 04's check
    for fig in (
        gpt.plot_attention_and_next(state, 0, 0),
        training.plot_accuracy(twenty, ("train",), "sanity check"),
        layers.plot_heads_grid([f"tok{i}" for i in range(12)], torch.rand(12, 12, 12), "layer 2"),
    ):
        assert crowded_ticks(fig) == [], fig.axes[0].get_title()
        matplotlib.pyplot.close(fig)


@pytest.mark.parametrize(
    "name", ["gpt curves", "comparison", "dev and test", "runs", "time per token"]
)
def test_legends_lie_beside_the_axes_not_over_the_data(name):
    fig = drawn(name)
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 > ax.get_window_extent().x1  # right of the plotting area, whatever the data
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize(
    "name", ["lookup with scores", "argmax vs softmax", "perplexity", "next tokens", "dev and test"]
)
def test_numbers_and_notes_sit_inside_the_axes_clear_of_the_bars(name):
    fig = drawn(name)
    for ax in fig.axes:
        frame = ax.get_window_extent()
        bars = [p.get_window_extent() for p in ax.patches]
        for text in ax.texts:
            if not text.get_text().strip():
                continue
            box = text.get_window_extent()
            inside = (
                frame.x0 <= box.x0
                and box.x1 <= frame.x1
                and frame.y0 <= box.y0
                and box.y1 <= frame.y1
            )
            assert inside, (name, text.get_text(), "crosses the frame")
            assert not any(overlaps(box, bar) for bar in bars), (
                name,
                text.get_text(),
                "covers a bar",
            )
    matplotlib.pyplot.close(fig)


def test_plots_use_the_colour_blind_safe_palette_and_leave_matplotlibs_alone():
    before = matplotlib.rcParams["axes.prop_cycle"]
    runs = {f"run {i}": [{"step": [1, 2], "valid": [2.0, 1.0 + i]}] for i in range(3)}
    fig = layers.plot_runs_with_spread(runs, "t")
    assert [line.get_color() for line in fig.axes[0].get_lines()] == list(COLORS[:3])
    fig = FIGURES["gpt curves"]()  # the axes' own cycle, not named colours
    assert fig.axes[0].get_lines()[0].get_color() == COLORS[0]
    fig = FIGURES["comparison"]()
    firsts = [matplotlib.colors.to_hex(c.patches[0].get_facecolor()) for c in fig.axes[0].containers
              if isinstance(c, matplotlib.container.BarContainer)]  # fmt: skip
    assert firsts == [c.lower() for c in COLORS[:4]]  # no red beside a green
    assert matplotlib.rcParams["axes.prop_cycle"] == before
    matplotlib.pyplot.close("all")


def test_a_white_space_token_is_named_on_both_panels():
    probs = torch.tensor([0.1, 0.2, 0.6, 0.1])  # the space is the most likely next token
    fig = gpt.plot_attention_and_next({**INSPECTED, "probs": probs}, 0, 0, top=2)
    left, right = fig.axes[0], fig.axes[1]
    assert [t.get_text() for t in right.get_yticklabels()][-1] == "' '"  # the top bar
    assert [t.get_text() for t in left.get_xticklabels()] == ["a", "b", "' '"]
    assert (
        right.get_title() == "next token after ' '"
    )  # quoted once (it read "next token after "' '"")
    matplotlib.pyplot.close(fig)


def test_a_long_sentence_keeps_its_figures_small_and_its_labels_readable():
    """A 512-token heatmap was 233 inches wide (85 s and 17 GB to draw), its heads grid bigger."""
    tokens = [f"w{i}" for i in range(512)]
    heatmap = layers.plot_attention_heatmap(tokens, torch.rand(512, 512), "costs $5 and $6")
    grid = layers.plot_heads_grid(tokens, torch.rand(12, 512, 512), "layer 2")
    assert max(heatmap.get_size_inches()) <= 16 and max(grid.get_size_inches()) <= 22
    for ax, most in (
        (heatmap.axes[0], layers.MOST_TOKENS),
        (grid.axes[0], layers.MOST_TOKENS_GRID),
    ):
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert most - 3 <= len(labels) <= most + 1 and labels[:2] == ["w0", f"w{-(-512 // most)}"]
        assert labels[-1] == "w511"  # the last token ([SEP]) is always named
    title = heatmap.axes[0].title
    assert title._preprocess_math(title.get_text()) == ("costs $5 and $6", False)  # text, not math
    matplotlib.pyplot.close("all")


def test_heads_grid_has_one_labelled_colour_bar():
    fig = layers.plot_heads_grid(["a", "b"], torch.rand(5, 2, 2), "layer 2: every head")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "attention weight"
    assert min(t.get_fontsize() for t in fig.axes[0].get_xticklabels()) >= 8
    matplotlib.pyplot.close(fig)


def test_next_tokens_shows_each_probability_and_their_total():
    fig = FIGURES["next tokens"]()
    ax = fig.axes[0]
    assert ax.get_title() == "after 'is': the top 2 hold 45%"
    assert [t.get_text() for t in ax.texts] == ["5.0%", "40.0%"]  # bottom bar first
    matplotlib.pyplot.close(fig)


def test_time_axis_starts_at_zero_and_chance_is_named():
    fig = FIGURES["time per token"]()
    assert fig.axes[0].get_ylim()[0] == 0
    fig = FIGURES["comparison"]()
    assert "chance (0.5)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    matplotlib.pyplot.close("all")


def test_timings_are_ticked_at_the_lengths_measured():
    fig = layers.plot_attention_timings(benchmark.attention_speed([8, 24], embed_dim=4, repeats=1))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "24"] and not ax.get_xticks(
        minor=True
    ).size
    matplotlib.pyplot.close(fig)


def test_number_never_shows_minus_zero():
    assert [number(v) for v in (-1e-17, -0.004, -0.5, 3, 0.0)] == [
        "0.00",
        "0.00",
        "-0.50",
        "3.00",
        "0.00",
    ]


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


def test_shaded_tokens_are_black_on_white_whatever_the_theme():
    """Pale shading under a dark theme's light text was unreadable: the panel sets both, and each
    token's number is on hover, not only in its shade."""
    from helpers.plots.imdb import highlight_signed

    for page in (training.highlight_tokens(["a", "b"], [0.2, 0.4]),
                 highlight_signed(["a", "b"], [0.3, -0.1])):  # fmt: skip
        assert page.startswith('<div style="line-height: 1.8; background: #fff; color: #000;')
        assert 'title="0.' in page or 'title="+0.' in page


def test_rounded():
    assert rounded(torch.tensor([[0.12345, 1.0]]), 2) == [0.12, 1.0]


def test_a_model_with_one_seed_has_no_error_bar_not_one_of_zero():
    """One seed's sd was written as 0.0 and drawn as an error bar of 0 (no spread seen, none measured)."""
    one = {name: {"seeds": 1, **{k: {"mean": 0.7, "sd": None} for k in pretraining.METRICS}}
           for name in ("pretrained", "random init")}  # fmt: skip
    fig = pretraining.plot_comparison(one)
    assert not [c for c in fig.axes[0].containers if type(c).__name__ == "ErrorbarContainer"]
    fig = pretraining.plot_comparison(SUMMARY)
    assert [c for c in fig.axes[0].containers if type(c).__name__ == "ErrorbarContainer"]


def test_the_grid_chart_shows_test_for_the_run_dev_chose_alone():
    """It drew a test bar for every model: a test score per model, to choose a model by."""
    rows = [
        {"model": m, "lr": 3e-4, "epochs": 2, "dev": d, "test": 0.8}
        for m, d in (("a", 0.7), ("b", 0.9))
    ]
    fig = scaling.dev_test_bars(rows, rows[1])
    dev, test = fig.axes[0].containers
    assert [bar.get_height() for bar in dev] == [0.7, 0.9]
    heights = [bar.get_height() for bar in test]
    assert heights[0] != heights[0] and heights[1] == 0.8  # NaN: no bar
    assert [t.get_text() for t in fig.axes[0].texts if t.get_text()] == ["0.700", "0.900", "0.800"]
    matplotlib.pyplot.close(fig)
