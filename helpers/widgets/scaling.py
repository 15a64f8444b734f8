"""Notebook 09's widget: how an epoch's batches are dealt to N processes and grouped into steps."""

import ipywidgets as w

from helpers.plots.scaling import plot_sharding
from helpers.widgets.live import SLIDER_LAYOUT, STYLE, live_plot


def _count(description: str, value: int, lo: int, hi: int) -> w.IntSlider:
    return w.IntSlider(value=value, min=lo, max=hi, description=description, continuous_update=True,
                       layout=SLIDER_LAYOUT, style=STYLE)  # fmt: skip


def sharding_explorer(batches: int = 24, processes: int = 2, accumulate: int = 2) -> w.VBox:
    """Drag the number of batches, processes and accumulated batches: each rank's batches, coloured by
    the optimizer step they join (redrawn while dragging)."""
    controls = {
        "batches": _count("batches", batches, 4, 64),
        "processes": _count("processes", processes, 1, 8),
        "accumulate": _count("accumulated", accumulate, 1, 8),
    }

    def compute(batches: int, processes: int, accumulate: int) -> dict:
        return {"batches": batches, "processes": min(processes, batches), "accumulate": accumulate}

    return live_plot(
        controls, compute, lambda s: plot_sharding(s["batches"], s["processes"], s["accumulate"])
    )
