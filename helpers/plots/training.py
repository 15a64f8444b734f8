"""Notebooks 03 and 04: training histories, runs compared, search tables, and what a trained
classifier attends to."""

import html

import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers.plots import PANEL, subplots


def plot_history(history: dict[str, list[float]], title: str = "training") -> Figure:
    """Train and validation loss per epoch (left) and validation accuracy (right)."""
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.5))
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
    fig, ax = subplots(figsize=(9, 3.8))
    for run in runs:
        h = run["history"]
        ax.plot(
            h["epoch"],
            h["valid_loss"],
            "o-",
            label=f"{run['label']}: validation acc {run['valid_accuracy']:.1%}",
        )
    ax.set(
        title="validation loss of every run so far",
        xlabel="epoch",
        ylabel="validation cross-entropy",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if runs:  # beside the axes: each label names a run's settings, too long to sit on the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    return fig


def plot_accuracy(histories: dict[str, dict], keys: tuple[str, ...], title: str) -> Figure:
    """Accuracy per epoch: one panel per run in ``histories``, one line per key (e.g. train, dev)."""
    fig, axes = subplots(
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # 20 epochs: no crowded ticks
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_curves(histories: dict[str, dict], key: str, title: str) -> Figure:
    """One accuracy curve per run on shared axes, e.g. key="dev" for every optimizer's dev accuracy."""
    fig, ax = subplots(figsize=(7, 3.5))
    for name, history in histories.items():
        ax.plot(history["epoch"], history[f"{key}_accuracy"], "o-", label=name)
    ax.set(title=title, xlabel="epoch", ylabel=f"{key} accuracy", ylim=(0, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # runs may train for different epochs
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_model_comparison(rows: list[dict]) -> Figure:
    """Accuracy per model on each split the rows hold (``dev_accuracy``, …); a model that could not
    run shows 0 and why."""
    fig, ax = subplots(figsize=(max(6, 1.6 * len(rows)), 3.8))
    x = torch.arange(len(rows)).double()
    splits = (
        [k.removesuffix("_accuracy") for k in rows[0] if k.endswith("_accuracy")] if rows else []
    )
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        offset = (i - (len(splits) - 1) / 2) * width
        ax.bar(
            (x + offset).tolist(),
            [r.get(f"{split}_accuracy", 0.0) for r in rows],
            width,
            label=split,
        )
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


def highlight_tokens(tokens: list[str], weights: list[float]) -> str:
    """HTML: each token on a background as dark as its weight (relative to the largest; the weight
    shown on hover), black on a white panel in light and dark themes alike."""
    top = max(weights) if weights else 1.0
    spans = [
        f'<span style="background: rgba(255, 140, 0, {w / top:.2f}); padding: 1px" '
        f'title="{w:.3f}">{html.escape(t)}</span>'
        for t, w in zip(tokens, weights)
    ]
    return f'<div style="{PANEL}">' + " ".join(spans) + "</div>"
