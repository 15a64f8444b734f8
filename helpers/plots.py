"""Plots and tables for the notebooks. Each function returns a matplotlib Figure or a DataFrame."""

import html
import inspect

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Code
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers import attention as att


def show_source(obj) -> Code:
    """The source code of a helpers function or class, highlighted in the notebook."""
    return Code(inspect.getsource(obj), language="python")


def rounded(t: torch.Tensor, digits: int = 3) -> list[float]:
    """A tensor as a flat list of rounded floats, for printing."""
    return [round(float(x), digits) for x in t.detach().flatten()]


def _labels(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1}" for i in range(n)]


def lookup_table(query, keys, values) -> pd.DataFrame:
    """One row per key: the key, its value, the score q·k and the argmax and softmax weights."""
    q, k, v = att.validate(query, keys, values)
    soft = att.softmax_attention(q, k, v, scale=1.0, return_weights=True)[1]
    hard = att.argmax_attention(q, k, v, return_weights=True)[1]
    return pd.DataFrame(
        {
            "key": [str(row.tolist()) for row in k],
            "value": [str(row.tolist()) for row in v],
            "score q·k": (q @ k.T).tolist(),
            "argmax weight": hard.tolist(),
            "softmax weight": [round(x, 4) for x in soft.tolist()],
        },
        index=_labels("k", k.shape[0]),
    )


def plot_lookup(
    weights: torch.Tensor, output: torch.Tensor, target: torch.Tensor | None = None, title: str = ""
) -> Figure:
    """Bar charts: the weight on each key, and the output (beside a target, if given)."""
    weights, output = weights.detach().double(), output.detach().double()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.bar(_labels("k", len(weights)), weights.tolist(), color="tab:blue")
    left.set(title="weight on each key", xlabel="key", ylabel="attention weight", ylim=(0, 1.05))
    positions = torch.arange(len(output)).double()
    width = 0.4 if target is not None else 0.8
    right.bar(
        (positions - width / 2 * (target is not None)).tolist(),
        output.tolist(),
        width,
        label="output",
    )
    if target is not None:
        right.bar(
            (positions + width / 2).tolist(),
            target.detach().double().tolist(),
            width,
            label="target",
        )
        right.legend(loc="best")
    right.set_xticks(positions.tolist(), [f"dim {i}" for i in range(len(output))])
    right.set(title="output vector", xlabel="component", ylabel="value")
    right.axhline(0, color="black", linewidth=0.5)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_argmax_vs_softmax(
    query, keys, values, target, points: int = 201, span: float = 3.0
) -> Figure:
    """Left: the loss as q[0] moves, for both lookups. Right: the gradient size at q, for both."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    norms = {}
    for label, attend in (("softmax", att.raw_softmax_attention), ("argmax", att.argmax_attention)):
        offsets, losses = att.loss_along_query(attend, query, keys, values, target, 0, span, points)
        left.plot((offsets + att.as_float(query)[0]).tolist(), losses.tolist(), label=label)
        grad_q, grad_k = att.query_key_gradients(attend, query, keys, values, target)
        norms[label] = [grad_q.norm().item()] + grad_k.norm(dim=1).tolist()
    left.axvline(att.as_float(query)[0].item(), color="gray", linestyle=":", label="our query")
    left.set(
        title="loss as the query's first component moves",
        xlabel="q[0]",
        ylabel="Σ (output − target)²",
    )
    left.legend(loc="best")
    names = ["q"] + _labels("k", att.as_float(keys).shape[0])
    x = torch.arange(len(names)).double()
    right.bar((x - 0.2).tolist(), norms["softmax"], 0.4, label="softmax")
    right.bar((x + 0.2).tolist(), norms["argmax"], 0.4, label="argmax")
    if not any(norms["argmax"]):
        right.text(0.5, 0.9, "argmax: exactly 0 everywhere", transform=right.transAxes, ha="center")
    right.set_xticks(x.tolist(), names)
    right.set(title="gradient size at our query", xlabel="tensor", ylabel="‖∂loss/∂·‖")
    right.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_attention_heatmap(tokens: list[str], weights: torch.Tensor, title: str = "") -> Figure:
    """A (T, T) weight matrix with the tokens on both axes: row = query, column = key."""
    T = len(tokens)
    fig, ax = plt.subplots(figsize=(0.45 * T + 2.5, 0.45 * T + 1.5))
    image = ax.imshow(weights.detach().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(T), tokens, rotation=90)
    ax.set_yticks(range(T), tokens)
    ax.set(title=title, xlabel="key (attended to)", ylabel="query (attending)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    fig.tight_layout()
    return fig


def plot_masking(
    weights_right: torch.Tensor, weights_wrong: torch.Tensor, allowed: torch.Tensor
) -> Figure:
    """One query's weights under both masking styles, with the sum of each printed on the chart."""
    labels = [f"k{i + 1}" + ("" if ok else " (pad)") for i, ok in enumerate(allowed.tolist())]
    x = torch.arange(len(labels)).double()
    fig, ax = plt.subplots(figsize=(8, 3.2))
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
    fig, ax = plt.subplots(figsize=(8, 3.2))
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
    histories: dict[str, dict[str, list[float]]], title: str, floor: float | None = None
) -> Figure:
    """Train (dashed) and validation (solid) loss per run; ``floor`` draws a reference line."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for (name, h), color in zip(
        histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ):
        ax.plot(h["step"], h["train"], "--", color=color, alpha=0.6, label=f"{name} (train)")
        ax.plot(h["step"], h["valid"], "-", color=color, label=f"{name} (validation)")
    if floor is not None:
        ax.axhline(
            floor, color="gray", linestyle=":", label=f"{floor}: roughly the best honest loss"
        )
    ax.set(title=title, xlabel="training step", ylabel="cross-entropy (nats per character)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_attention_timings(result: dict) -> Figure:
    """Seconds per forward pass as T grows, log-log: loops vs vectorised vs torch."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, marker in (("loops", "s"), ("vectorised", "o"), ("torch", "^")):
        rows = [r for r in result["rows"] if name in r]
        ax.loglog([r["tokens"] for r in rows], [r[name] for r in rows], marker=marker, label=name)
    ax.set(title="self-attention forward time", xlabel="tokens T", ylabel="seconds (median)")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_history(history: dict[str, list[float]], title: str = "training") -> Figure:
    """Train and validation loss per epoch (left) and validation accuracy (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(history["epoch"], history["train_loss"], "o-", label="train")
    left.plot(history["epoch"], history["valid_loss"], "o-", label="validation")
    left.set(title=f"{title}: loss", xlabel="epoch", ylabel="cross-entropy")
    left.legend(loc="best")
    right.plot(history["epoch"], history["valid_accuracy"], "o-", color="tab:green")
    right.set(title=f"{title}: validation accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def plot_runs(runs: list[dict]) -> Figure:
    """Validation loss per epoch of every run so far, one line each, labelled by its settings."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for run in runs:
        h = run["history"]
        ax.plot(
            h["epoch"],
            h["valid_loss"],
            "o-",
            label=f"{run['label']}: test acc {run['test_accuracy']:.1%}",
        )
    ax.set(
        title="validation loss of every run so far",
        xlabel="epoch",
        ylabel="validation cross-entropy",
    )
    if runs:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def highlight_tokens(tokens: list[str], weights: list[float]) -> str:
    """HTML: each token on a background as dark as its weight (relative to the largest)."""
    top = max(weights) if weights else 1.0
    spans = [
        f'<span style="background: rgba(255, 140, 0, {w / top:.2f}); padding: 1px">{html.escape(t)}</span>'
        for t, w in zip(tokens, weights)
    ]
    return '<div style="line-height: 1.8">' + " ".join(spans) + "</div>"


def plot_accuracy(histories: dict[str, dict], keys: tuple[str, ...], title: str) -> Figure:
    """Accuracy per epoch: one panel per run in ``histories``, one line per key (e.g. train, dev)."""
    fig, axes = plt.subplots(
        1, len(histories), figsize=(4.2 * len(histories), 3.4), squeeze=False, sharey=True
    )
    for ax, (name, history) in zip(axes[0], histories.items()):
        for key in keys:
            ax.plot(history["epoch"], history[f"{key}_accuracy"], "o-", label=key)
        ax.set(
            title=f"{title}: {name}" if name else title,
            xlabel="epoch",
            ylabel="accuracy",
            ylim=(0, 1.02),
        )
        ax.set_xticks(history["epoch"])
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_model_comparison(rows: list[dict]) -> Figure:
    """Dev and test accuracy per model; a model that could not run shows 0 and why."""
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 3.8))
    x = torch.arange(len(rows)).double()
    ax.bar((x - 0.2).tolist(), [r["dev_accuracy"] for r in rows], 0.4, label="dev")
    ax.bar((x + 0.2).tolist(), [r["test_accuracy"] for r in rows], 0.4, label="test")
    for i, row in enumerate(rows):
        if row["reason"]:
            ax.text(
                i,
                0.02,
                row["reason"][:40],
                rotation=90,
                ha="center",
                va="bottom",
                fontsize="x-small",
            )
    ax.set_xticks(x.tolist(), [r["model"] for r in rows], rotation=20, ha="right")
    ax.set(title="fine-tuned models compared", xlabel="model", ylabel="accuracy", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def search_table(results: list[dict]) -> pd.DataFrame:
    """Hyperparameter search results, best dev accuracy first."""
    return pd.DataFrame(results).sort_values("dev_accuracy", ascending=False).reset_index(drop=True)


def plot_curves(histories: dict[str, dict], key: str, title: str) -> Figure:
    """One accuracy curve per run on shared axes, e.g. key="dev" for every optimizer's dev accuracy."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, history in histories.items():
        ax.plot(history["epoch"], history[f"{key}_accuracy"], "o-", label=name)
    ax.set(title=title, xlabel="epoch", ylabel=f"{key} accuracy", ylim=(0, 1.02))
    ax.set_xticks(next(iter(histories.values()))["epoch"])
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
