"""Notebook 03's widgets: train the GloVe transformer with other settings, and read what it attends to."""

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from helpers import imdb
from helpers.plots.imdb import highlight_signed
from helpers.plots.training import highlight_tokens, plot_runs
from helpers.widgets.live import STYLE, index_slider, int_slider, live_html, live_runs

if TYPE_CHECKING:
    import torch

    from helpers.classifier import MyTransformer


def _with(options: list, value) -> list:
    return sorted({*options, value})


def hyperparameter_explorer(
    prepared: imdb.Prepared, device: "torch.device", base: imdb.ImdbConfig
) -> w.VBox:
    """Controls for blocks, heads, lr, epochs, max length and frozen embeddings; "train" runs a quick
    training with them and overlays its validation loss on every earlier run's."""
    controls = {
        # the ranges hold the notebook's own settings too, so each control starts where they are
        "blocks": int_slider("blocks", base.blocks, 1, max(4, base.blocks)),
        "heads": w.Dropdown(
            options=_with([1, 2, 4, 5], base.heads),
            value=base.heads,
            description="heads",
            style=STYLE,
        ),  # fmt: skip
        "lr": w.Dropdown(
            options=_with([1e-4, 3e-4, 1e-3, 3e-3], base.lr),
            value=base.lr,
            description="learning rate",
            style=STYLE,
        ),  # fmt: skip
        "epochs": int_slider("epochs", base.epochs, 1, max(10, base.epochs)),
        "max_len": w.Dropdown(
            options=_with([32, 64, 128, 256, 512], base.max_len),
            value=base.max_len,
            description="max length (tokens)",
            style=STYLE,
        ),  # fmt: skip
        "freeze_embeddings": w.Checkbox(value=base.freeze_embeddings, description="freeze GloVe"),
    }
    runs: list[dict] = []

    def run(**settings: Any) -> str:
        result = imdb.run(prepared, base.replace(**settings), device, progress=False)
        # validation only: test is scored once, at the end
        accuracy = result.history.last("valid_accuracy")
        changed = ", ".join(f"{k}={v}" for k, v in settings.items() if getattr(base, k) != v)
        label = f"run {len(runs) + 1}: {changed or 'the starting settings'}"  # short legend lines
        runs.append({"label": label, "history": result.history, "valid_accuracy": accuracy})
        return f"run {len(runs)}: validation accuracy {accuracy:.1%}"

    # ValueError: e.g. heads that do not divide the GloVe size; anything else is a bug to see.
    return live_runs(controls, run, plot_runs, runs, "train", "training…", errors=(ValueError,))


def review_attention(
    prepared: imdb.Prepared,
    model: "MyTransformer",
    device: "torch.device",
    split: str = "valid",
    index: int = 0,
) -> w.VBox:
    """A review twice: each token shaded by the attention it receives in the first block, and by how
    much the prediction drops without it (leave one token out)."""
    n = len(prepared.docs[split])

    def compute(index: int) -> dict:
        state = imdb.token_attention(prepared, model, device, split, index)
        return {**state, "occlusion": imdb.token_occlusion(prepared, model, device, split, index)}

    def draw(state: dict) -> w.HTML:
        verdict = "✅ right" if state["predicted"] == state["label"] else "❌ wrong"
        truth, guess = ("pos" if state[k] else "neg" for k in ("label", "predicted"))
        head = f"<b>true: {truth} · predicted: {guess} ({state['confidence']:.0%}) {verdict}</b>"
        # each shading's strongest tokens in words too (no colour needed to read them)
        return w.HTML(f"{head}<br><i>attention received (orange)</i><br>"
                      + _strongest("most attention", state["weights"], state["tokens"], "{:.3f}")
                      + highlight_tokens(state["tokens"], state["weights"])
                      + "<i>leave one token out: the drop in P(predicted) without it (blue: it "
                      "supported the prediction, red: it argued against)</i><br>"
                      + _strongest("supported most", state["occlusion"], state["tokens"])
                      + _strongest("argued against most", [-d for d in state["occlusion"]],
                                   state["tokens"], sign=-1)
                      + highlight_signed(state["tokens"], state["occlusion"]))  # fmt: skip

    return live_html({"index": index_slider("review", index, n)}, compute, draw)


def _strongest(
    label: str, values: list[float], tokens: list[str], fmt: str = "{:+.2f}", sign: int = 1
) -> str:
    """HTML line "label: the 5 tokens of largest positive value (each value × sign)", or "none"."""
    top = [(v, t) for v, t in sorted(zip(values, tokens), reverse=True)[:5] if v > 0]
    words = ", ".join(f"{html.escape(t)} ({fmt.format(sign * v)})" for v, t in top)
    return f"{label}: {words or 'none'}<br>"
