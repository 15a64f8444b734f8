"""Notebook 04's widget: fine-tune a chosen model on a chosen data set and compare the dev curves
(dev only: the test set is scored once, at the end of the notebook, never here)."""

from typing import TYPE_CHECKING

import ipywidgets as w
from matplotlib.figure import Figure

from helpers.finetune import experiments
from helpers.plots.training import plot_curves
from helpers.profiles import Sizes04
from helpers.widgets.live import SLIDER_LAYOUT, STYLE, live_runs

if TYPE_CHECKING:
    import torch


def finetune_explorer(
    models: list[str],
    data: dict,
    device: "torch.device",
    sizes: Sizes04,
    *,
    lr: float | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    max_length: int = 128,
) -> w.VBox:
    """Choose a model, a data set, lr, epochs and batch size; "run" fine-tunes and adds a dev curve.

    ``data`` maps a data-set name to (splits, task) as ``experiments.explorer_data`` returns them;
    ``sizes`` is the profile's ``helpers.profiles.Sizes04``; ``lr``, ``epochs`` and ``batch_size``
    (the parameters cell's; default: the profile's) are where the controls start, and every run
    keeps ``max_length``.
    """
    lr = sizes.lr if lr is None else lr
    epochs = sizes.epochs if epochs is None else epochs
    controls = {
        "model": w.Dropdown(options=models, description="model", style=STYLE),
        "dataset": w.Dropdown(options=list(data), description="data set", style=STYLE),
        "lr": w.Dropdown(
            options=sorted({2e-5, 5e-5, 1e-4, 2e-4, 5e-4, lr}),
            value=lr,  # the parameters cell's learning rate
            description="learning rate",
            style=STYLE,
        ),
        "epochs": w.IntSlider(
            value=epochs,
            min=1,
            max=max(10, epochs),
            description="epochs",
            layout=SLIDER_LAYOUT,
            style=STYLE,
        ),
        "batch_size": w.Dropdown(
            options=sorted({8, 16, 32, 64, batch_size}),
            value=batch_size,
            description="batch size",
            style=STYLE,
        ),
    }
    runs: dict[str, dict] = {}  # label -> history

    def run(model: str, dataset: str, lr: float, epochs: int, batch_size: int) -> str:
        splits, task = data[dataset]
        cfg = experiments.FinetuneConfig(
            lr=lr, epochs=epochs, batch_size=batch_size, max_length=max_length
        )
        result = experiments.experiment(
            model, splits, task, device, cfg, train_rows=sizes.max_train
        )
        # every setting is in the label, so a run that differs only in epochs gets its own curve
        label = f"{model} on {dataset}, lr {lr}, batch {batch_size}, {epochs} epochs"
        runs[label] = result.history
        return f"{label}: dev accuracy {result.history.last('dev_accuracy'):.1%}"

    def draw(runs: dict[str, dict]) -> Figure:
        return plot_curves(runs, "dev", "dev accuracy of every run")

    # A model that cannot load (offline: OSError), does not fit (RuntimeError) or a bad setting
    # (ValueError) is reported in the widget; anything else is a bug and is raised.
    errors = (OSError, RuntimeError, ValueError)
    return live_runs(controls, run, draw, runs, "run", "fine-tuning…", errors=errors)
