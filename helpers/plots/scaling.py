"""Notebook 09's figures: each model's dev and test accuracy from the cluster's runs."""

import matplotlib.pyplot as plt
import numpy as np


def dev_test_bars(
    rows: list[dict], title: str = "Fine-tuned on the cluster: the run dev chose per model"
):
    """Grouped bars: dev and test accuracy for each row (one per model)."""
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 3, 3.5))
    x = np.arange(len(rows))
    for shift, split in ((-0.2, "dev"), (0.2, "test")):
        values = [r[split] if r[split] is not None else np.nan for r in rows]
        bars = ax.bar(x + shift, values, width=0.4, label=split)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(x, [f"{r['model']}\nlr {r['lr']:g}, {r['epochs']} ep" for r in rows])
    ax.set(ylim=(0, 1.08), ylabel="accuracy", xlabel="model (the settings dev chose)", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
