"""Notebook 02's widgets: where a pretrained encoder's heads look, on a sentence the student types,
and what padding does to it.

They are given the model and tokenizer, so they never import transformers themselves.
"""

from typing import TYPE_CHECKING, Any

import ipywidgets as w
from matplotlib.figure import Figure

from helpers.plots.layers import plot_attention_heatmap, plot_heads_grid
from helpers.pretrained import attention_map, attention_maps
from helpers.widgets.live import index_slider, int_slider, live_plot, slider

if TYPE_CHECKING:
    import transformers


def sentence_box(sentence: str) -> w.Text:
    """A text box whose sentence is used when Enter is pressed or the box loses focus."""
    return w.Text(value=sentence, description="sentence", continuous_update=False,
                  layout=w.Layout(width="600px"))  # fmt: skip


def attention_heatmap(
    model: "transformers.BertModel",
    tokenizer: "transformers.PreTrainedTokenizerBase",
    sentence: str,
    layer: int = 2,
    head: int = 0,
) -> w.VBox:
    """A pretrained encoder's attention over a sentence (a text box): sliders for layer, head,
    temperature, padding length, and a mask on/off switch."""
    config = model.config
    controls = {
        "sentence": sentence_box(sentence),
        "layer": index_slider("layer", layer, config.num_hidden_layers),
        "head": index_slider("head", head, config.num_attention_heads),
        "temperature": slider("temperature", 1.0, 0.1, 5.0),
        "pad": int_slider("padding tokens", 0, 0, 8),
        "use_mask": w.Checkbox(value=True, description="mask the padding"),
    }

    def compute(sentence: str, **settings: Any) -> dict:
        return attention_map(model, tokenizer, sentence, **settings)

    def draw(state: dict) -> Figure:
        on_padding = state["on_padding"]  # each real token's weight on the padding
        leak = float(on_padding.mean()) if on_padding.any() else 0.0
        title = (
            f"weight on padding: {leak:.1%} per real token"
            if leak
            else "rows: queries, columns: keys"
        )
        return plot_attention_heatmap(state["tokens"], state["weights"], title)

    return live_plot(controls, compute, draw)


def heads_grid(
    model: "transformers.BertModel",
    tokenizer: "transformers.PreTrainedTokenizerBase",
    sentence: str,
    layer: int = 2,
) -> w.VBox:
    """Every head of one layer at once, over a sentence the student types."""
    controls = {
        "sentence": sentence_box(sentence),
        "layer": index_slider("layer", layer, model.config.num_hidden_layers),
    }

    def compute(sentence: str, layer: int) -> dict:
        return {**attention_maps(model, tokenizer, sentence, layer), "layer": layer}

    def draw(state: dict) -> Figure:
        return plot_heads_grid(
            state["tokens"], state["weights"], f"layer {state['layer']}: every head"
        )

    return live_plot(controls, compute, draw)
