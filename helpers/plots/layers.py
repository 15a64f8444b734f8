"""Notebook 02's plots: attention maps over real tokens, masking, causal loss curves, timings."""

import itertools

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from helpers.plots import COLORS, count, plain, subplots, token_ticks

# Figures stop growing with the sentence at this many tokens (a 512-token heatmap was 233 inches wide:
# 85 s and 17 GB to draw); past it every k-th token is labelled. The heads grid has 12 panels.
MOST_TOKENS, MOST_TOKENS_GRID = 30, 20


def plot_attention_heatmap(tokens: list[str], weights: torch.Tensor, title: str = "") -> Figure:
    """A (T, T) weight matrix with the tokens on both axes: row = query, column = key."""
    side = 0.45 * min(len(tokens), MOST_TOKENS)
    fig, ax = subplots(figsize=(side + 2.5, side + 1.5))
    image = ax.imshow(weights.detach().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    token_ticks(ax, tokens, MOST_TOKENS, fontsize=10)
    ax.set(title=plain(title), xlabel="key (attended to)", ylabel="query (attending)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    fig.tight_layout()
    return fig


def plot_heads_grid(tokens: list[str], weights: torch.Tensor, title: str = "") -> Figure:
    """Every head of one layer at once: (h, T, T) weights as a grid of small heatmaps."""
    heads = weights.shape[0]
    cols = min(4, heads)
    rows = -(-heads // cols)
    size = max(2.2, 0.22 * min(len(tokens), MOST_TOKENS_GRID) + 0.8)
    # constrained: the grid and its colour bar laid out together (tight_layout leaves the bar out)
    fig, axes = subplots(rows, cols, figsize=(size * cols + 0.8, size * rows), squeeze=False,
                         layout="constrained")  # fmt: skip
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            fig.delaxes(ax)
            continue
        image = ax.imshow(weights[h].detach().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=10)
        token_ticks(ax, tokens, MOST_TOKENS_GRID)
        ax.set_xlabel("key", fontsize=9)
        ax.set_ylabel("query", fontsize=9)
    fig.suptitle(plain(title))
    # one scale for every head (each is drawn from 0 to 1), beside the grid
    fig.colorbar(
        image, ax=list(axes.flat[:heads]), label="attention weight", fraction=0.02, pad=0.02
    )
    return fig


def plot_runs_with_spread(runs: dict[str, list[dict]], title: str) -> Figure:
    """Validation loss per setting: the mean over its seeds' runs, and their range shaded."""
    fig, ax = subplots(figsize=(8, 3.5))
    for (label, seeded), color in zip(runs.items(), itertools.cycle(COLORS)):
        curves = torch.tensor([run["valid"] for run in seeded])  # (seeds, points)
        steps = seeded[0]["step"]
        ax.plot(
            steps,
            curves.mean(0).tolist(),
            color=color,
            label=f"{label} ({count(len(seeded), 'seed')})",
        )
        if len(seeded) > 1:
            ax.fill_between(steps, curves.min(0).values.tolist(), curves.max(0).values.tolist(),
                            color=color, alpha=0.2)  # fmt: skip
    ax.set(title=title, xlabel="training step", ylabel="validation loss (nats per character)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_masking(
    weights_right: torch.Tensor, weights_wrong: torch.Tensor, allowed: torch.Tensor
) -> Figure:
    """One query's weights under both masking styles, with the sum of each printed on the chart."""
    labels = [f"k{i + 1}" + ("" if ok else " (pad)") for i, ok in enumerate(allowed.tolist())]
    x = torch.arange(len(labels)).double()
    fig, ax = subplots(figsize=(8, 3.2))
    for offset, w, name in (
        (-0.2, weights_right, "-inf before softmax"),
        (0.2, weights_wrong, "zeros after softmax"),
    ):
        ax.bar(
            (x + offset).tolist(), w.tolist(), 0.4, label=f"{name}: weights sum to {w.sum():.3f}"
        )
    ax.set_xticks(x.tolist(), labels)
    ax.set(title="one query's attention weights, two ways to mask", xlabel="key", ylabel="weight")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_future_influence(influence: dict[str, torch.Tensor]) -> Figure:
    """How much each position's output moves when only the last token changes, per masking style."""
    fig, ax = subplots(figsize=(8, 3.2))
    T = len(next(iter(influence.values())))
    x = torch.arange(T).double()
    for offset, (style, change) in zip((-0.2, 0.2), influence.items()):
        ax.bar((x + offset).tolist(), change.tolist(), 0.4, label=style)
    ax.set_xticks(x.tolist(), [f"{t}" + (" (changed)" if t == T - 1 else "") for t in range(T)])
    ax.set(
        title="a causal mask must make earlier outputs blind to the last token",
        xlabel="position",
        ylabel="‖change in output‖",
    )
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_loss_curves(
    histories: dict[str, dict[str, list[float]]],
    title: str,
    reference: tuple[float, str] | None = None,
) -> Figure:
    """Train (dashed) and validation (solid) loss per run; ``reference`` = (loss, label) draws a
    horizontal line, e.g. another model's published result."""
    fig, ax = subplots(figsize=(8, 3.5))
    for (name, h), color in zip(histories.items(), itertools.cycle(COLORS)):
        ax.plot(h["step"], h["train"], "--", color=color, alpha=0.6, label=f"{name} (train)")
        ax.plot(h["step"], h["valid"], "-", color=color, label=f"{name} (validation)")
    if reference is not None:
        ax.axhline(
            reference[0], color="gray", linestyle=":", label=f"{reference[0]}: {reference[1]}"
        )
    ax.set(title=title, xlabel="training step", ylabel="cross-entropy (nats per character)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_attention_timings(result: dict) -> Figure:
    """Seconds per forward pass as T grows, log-log: loops vs vectorised vs torch."""
    fig, ax = subplots(figsize=(7, 3.5))
    for name, marker in (("loops", "s"), ("vectorised", "o"), ("torch", "^")):
        rows = [r for r in result["rows"] if name in r]
        ax.loglog([r["tokens"] for r in rows], [r[name] for r in rows], marker=marker, label=name)
    lengths = sorted({r["tokens"] for r in result["rows"]})
    ax.set_xticks(lengths, [str(t) for t in lengths])  # the lengths measured, not powers of ten
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set(title="self-attention forward time", xlabel="tokens T", ylabel="seconds (median)")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig
