"""Notebook 02's widget: where a pretrained encoder's heads look, and what padding does to it.

It is given the model and tokenizer, so it never imports transformers itself.
"""

import ipywidgets as w

from helpers.plots.layers import plot_attention_heatmap
from helpers.pretrained import attention_map
from helpers.widgets.live import index_slider, live_plot, slider


def attention_heatmap(model, tokenizer, sentence: str, layer: int = 2, head: int = 0) -> w.VBox:
    """A pretrained encoder's attention over ``sentence``: sliders for layer, head, temperature,
    padding length, and a mask on/off switch."""
    config = model.config
    controls = {
        "layer": index_slider("layer", layer, config.num_hidden_layers),
        "head": index_slider("head", head, config.num_attention_heads),
        "temperature": slider("temperature", 1.0, 0.1, 5.0),
        "pad": index_slider("padding tokens", 0, 9),
        "use_mask": w.Checkbox(value=True, description="mask the padding"),
    }

    def compute(**settings) -> dict:
        return attention_map(model, tokenizer, sentence, **settings)

    def draw(state: dict):
        on_padding = state["on_padding"]
        leak = float(on_padding[on_padding > 0].mean()) if on_padding.any() else 0.0
        title = (
            f"weight on padding: {leak:.1%} per query" if leak else "rows: queries, columns: keys"
        )
        return plot_attention_heatmap(state["tokens"], state["weights"], title)

    return live_plot(controls, compute, draw)
