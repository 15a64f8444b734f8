"""Notebook 09's figures: each model's dev and test accuracy from the cluster's runs."""

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from helpers.plots import COLORS, count, subplots


def dev_test_bars(
    rows: list[dict],
    chosen: dict,
    title: str = "Fine-tuned on the cluster: the run dev chose per model",
) -> Figure:
    """Bars of each row's dev accuracy (one row per model), and beside ``chosen``'s (the run dev
    chose over all models) its test accuracy, the one test score shown: test chooses nothing."""
    fig, ax = subplots(figsize=(1.6 * len(rows) + 3, 3.5))
    x = np.arange(len(rows))
    for shift, split in ((-0.2, "dev"), (0.2, "test")):
        values = [np.nan if r[split] is None or (split == "test" and r != chosen) else r[split]
                  for r in rows]  # fmt: skip
        label = "test (the run dev chose, once)" if split == "test" else split
        bars = ax.bar(x + shift, values, width=0.4, label=label)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in values], fontsize=8)
    ax.set_xticks(x, [f"{r['model']}\nlr {r['lr']:g}, {r['epochs']} ep" for r in rows])
    ax.set(ylim=(0, 1.08), ylabel="accuracy", xlabel="model (the settings dev chose)", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, not over the last one
    fig.tight_layout()
    return fig


def plot_sharding(batches: int, processes: int, accumulate: int, ax: Axes | None = None) -> Figure:
    """An epoch's batches dealt to the processes (a row per rank, its batches in order): each cell is
    numbered with its batch and coloured by the optimizer step it joins, a line between two steps
    (the colours come round again after seven steps); ``accumulate`` is per process. The batches no
    rank can take are counted in the x label."""
    from matplotlib.colors import ListedColormap

    per_rank = batches // processes
    steps = -(-per_rank // accumulate)  # the last step may take fewer batches
    grid = np.full((processes, per_rank), np.nan)
    for rank in range(processes):
        for j in range(per_rank):
            grid[rank, j] = j // accumulate
    own = ax is None
    if ax is None:  # wide enough for the title, whatever the batches
        _, ax = subplots(figsize=(min(14, max(8.5, 1.0 + 0.45 * per_rank)), 1.2 + 0.45 * processes))
    n = max(1, min(7, steps))  # the palette's colours but black, which would hide the numbers
    colours = ListedColormap(COLORS[:n])  # colour-blind-safe; light enough for black numbers
    ax.imshow(grid % n, cmap=colours, alpha=0.55, aspect="auto", vmin=0, vmax=n - 0.999)
    for rank in range(processes):
        for j in range(per_rank):
            ax.text(j, rank, str(rank + j * processes), ha="center", va="center", fontsize=8)
    for step in range(1, steps):  # the steps told apart without colour
        ax.axvline(step * accumulate - 0.5, color="black", linewidth=1.5)
    ax.set_yticks(range(processes), [f"rank {r}" for r in range(processes)])
    ax.set_xticks([])
    dropped = batches - per_rank * processes
    ax.set(ylabel="process", xlabel=f"each rank's batches in order (a colour and a line per optimizer step; {count(dropped, 'batch')} dropped)",
           title=f"{count(batches, 'batch')}, {count(processes, 'process')} × {accumulate} accumulated each: "
                 f"{count(processes * accumulate, 'batch')} per step, {count(steps, 'step')}")  # fmt: skip
    if own:
        ax.figure.tight_layout()
    return ax.figure
