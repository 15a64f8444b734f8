"""Notebook 09's widget: how an epoch's batches are dealt to N processes and grouped into steps."""

import ipywidgets as w

from helpers.plots.scaling import plot_sharding
from helpers.widgets.live import int_slider, live_plot


def sharding_explorer(batches: int = 24, processes: int = 2, accumulate: int = 2) -> w.VBox:
    """Drag the number of batches, processes and accumulated batches: each rank's batches, coloured by
    the optimizer step they join (redrawn while dragging)."""
    controls = {
        "batches": int_slider("batches", batches, 4, 64, continuous_update=True),
        "processes": int_slider("processes", processes, 1, 8, continuous_update=True),
        "accumulate": int_slider("accumulate A", accumulate, 1, 8, continuous_update=True),
    }

    def compute(batches: int, processes: int, accumulate: int) -> dict:
        return {"batches": batches, "processes": min(processes, batches), "accumulate": accumulate}

    return live_plot(
        controls, compute, lambda s: plot_sharding(s["batches"], s["processes"], s["accumulate"])
    )
