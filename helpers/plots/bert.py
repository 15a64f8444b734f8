"""Notebook 05: BERT's parameters per component, and frozen vs fine-tuned learning curves."""

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers.bert import BertConfig, parameter_breakdown
from helpers.plots import subplots

COMPONENTS = ("embeddings", "attention", "feed-forward", "LayerNorm", "pooler")
FORMULAS = {
    "embeddings": "(V + P + S)·H",
    "attention": "L·4(H² + H)",
    "feed-forward": "L·(2·H·I + I + H)",
    "LayerNorm": "2H + L·2·2H",
    "pooler": "H² + H",
}


def parameter_table(config: BertConfig | Mapping[str, Any] | Any) -> pd.DataFrame:
    """Each component's formula, its value for ``config``, and its share of the total."""
    parts = parameter_breakdown(config)
    total = sum(parts.values())
    rows = [{"component": name, "formula": FORMULAS[name], "parameters": f"{parts[name]:,}",
             "share": f"{parts[name] / total:.2%}"} for name in COMPONENTS]  # fmt: skip
    rows.append({"component": "total", "formula": "", "parameters": f"{total:,}", "share": "100%"})
    return pd.DataFrame(rows).set_index("component")


def plot_parameter_breakdown(configs: dict[str, BertConfig | dict], title: str) -> Figure:
    """One horizontal bar per config, stacked by component, in millions of parameters."""
    fig, ax = subplots(figsize=(9, 0.7 * len(configs) + 1.6))
    names = list(configs)
    left = [0.0] * len(names)
    parts = [parameter_breakdown(configs[n]) for n in names]
    for component in COMPONENTS:
        sizes = [p[component] / 1e6 for p in parts]
        ax.barh(names, sizes, left=left, label=component)
        left = [a + b for a, b in zip(left, sizes)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:,.1f}M", va="center", fontsize="small")
    ax.set(title=title, xlabel="parameters (millions)", ylabel="model")
    ax.set_xlim(0, max(left) * 1.18)
    ax.legend(loc="lower right", fontsize="small", ncol=len(COMPONENTS) // 2 + 1)
    fig.tight_layout()
    return fig


def plot_learning_curves(curves: dict[str, dict[str, list[float]]], title: str) -> Figure:
    """Training loss (left) and dev accuracy (right) per epoch, one line per run (e.g. frozen, fine-tuned)."""
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.4))
    for label, history in curves.items():
        epochs = range(1, len(history["dev_accuracy"]) + 1)
        left.plot(epochs, history["train_loss"], "o-", label=label)
        right.plot(epochs, history["dev_accuracy"], "o-", label=label)
    left.set(title=f"{title}: training loss", xlabel="epoch", ylabel="cross-entropy (NLL)")
    right.set(title=f"{title}: dev accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig
