"""Notebook 05's widget: how BERT's parameters split between its parts, for any shape."""

import ipywidgets as w
from matplotlib.figure import Figure

from helpers.bert import BertConfig, count_parameters
from helpers.plots.bert import plot_parameter_breakdown
from helpers.widgets.live import SLIDER_LAYOUT, STYLE, live_plot

MINILM = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def _int(description: str, value: int, lo: int, hi: int, step: int = 1) -> w.IntSlider:
    # a redraw is a count and a bar chart (0.04-0.2 s): it follows the slider while dragged
    return w.IntSlider(value=value, min=lo, max=hi, step=step, description=description,
                       continuous_update=True, layout=SLIDER_LAYOUT, style=STYLE)  # fmt: skip


def parameter_state(
    layers: int, hidden: int, heads: int, intermediate: int, vocab: int, positions: int
) -> dict:
    """The shape chosen on the sliders as a config, its count, and what the heads do to it."""
    shape = dict(num_hidden_layers=layers, hidden_size=hidden, intermediate_size=intermediate,
                 vocab_size=vocab, max_position_embeddings=positions,
                 num_attention_heads=heads if hidden % heads == 0 else 1)  # fmt: skip
    total = count_parameters(shape)  # the heads do not appear: they split H, they add nothing
    if hidden % heads:
        note = f"{heads} heads do not divide H = {hidden}: not a valid BERT"
    else:
        note = f"{heads} heads of {hidden // heads} (the heads change no count)"
    return {
        "config": BertConfig(**shape),
        "total": total,
        "note": note,
        "valid": hidden % heads == 0,
    }


def parameter_explorer(layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int = 3072,
                       vocab: int = 30522, positions: int = 512) -> w.VBox:  # fmt: skip
    """Sliders for a BERT's shape; a stacked bar of its parameters beside MiniLM's and bert-base's."""
    controls = {
        "layers": _int("layers L", layers, 1, 48),
        "hidden": _int("hidden size H", hidden, 64, 2048, 64),
        "heads": _int("heads", heads, 1, 32),
        "intermediate": _int("feed-forward size I", intermediate, 256, 8192, 256),
        "vocab": _int("vocabulary V", vocab, 1000, 250_000),
        "positions": _int("max positions P", positions, 128, 4096, 128),
    }

    def draw(state: dict) -> Figure:
        configs = {"all-MiniLM-L6-v2": MINILM, "bert-base": {}, "yours": state["config"]}
        title = f"yours: {state['total']:,} parameters; {state['note']}"
        return plot_parameter_breakdown(configs, title)

    return live_plot(controls, parameter_state, draw)
