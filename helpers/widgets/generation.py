"""Notebook 08's widgets: samples for a few prefixes under sliders for temperature, top-k, top-p and
length, and the next-token distribution of a text the student types."""

import html
from typing import TYPE_CHECKING

import ipywidgets as w
from matplotlib.figure import Figure

from helpers.generation.runs import next_token_table, prefix_samples
from helpers.plots.generation import plot_next_tokens
from helpers.widgets.live import STYLE, int_slider, live_html, live_plot, slider

if TYPE_CHECKING:
    import transformers

    from helpers.gpt.model import GPT


def sampling_explorer(
    model: "GPT",
    tokenizer: "transformers.PreTrainedTokenizerBase",
    prefixes: list[str],
    seed: int = 42,
) -> w.VBox:
    """Sliders for temperature, top-k (0: off), top-p and length; one sample per prefix, redrawn on
    release with the same seed, so only the sliders change what is written."""
    controls = {
        "temperature": slider("temperature", 1.0, 0.1, 2.0),
        "top_k": int_slider("top-k (0: off)", 0, 0, 100),
        "top_p": slider("top-p", 1.0, 0.05, 1.0, step=0.05),
        "tokens": int_slider("new tokens", 20, 5, 60),
    }

    def compute(temperature: float, top_k: int, top_p: float, tokens: int) -> dict:
        table = prefix_samples(model, tokenizer, prefixes, samples=1, tokens=tokens, seed=seed,
                               temperature=temperature, top_k=top_k or None, top_p=top_p)  # fmt: skip
        return {
            "samples": {p: s[0] for p, s in table.items()},
            "settings": (temperature, top_k, top_p, tokens),
        }

    def draw(state: dict) -> w.HTML:
        t, k, p, n = state["settings"]
        rows = "".join(f"<tr><td><b>{html.escape(prefix)}</b></td><td>{html.escape(text)}</td></tr>"
                       for prefix, text in state["samples"].items())  # fmt: skip
        return w.HTML(f"<div>temperature {t:.2f}, top-k {k or 'off'}, top-p {p:.2f}, {n} tokens</div>"
                      f"<table>{rows}</table>")  # fmt: skip

    return live_html(controls, compute, draw)


def next_token_explorer(
    model: "GPT", tokenizer: "transformers.PreTrainedTokenizerBase", text: str
) -> w.VBox:
    """Type a text (Enter to apply): the ten most likely next tokens as bars."""
    controls = {"text": w.Text(value=text, description="text", continuous_update=False,
                               layout=w.Layout(width="600px"), style=STYLE)}  # fmt: skip

    def compute(text: str) -> dict:
        return {"text": text, "rows": next_token_table(model, tokenizer, text)}

    def draw(state: dict) -> Figure:
        return plot_next_tokens(state["rows"], f"after {state['text'][-40:]!r}")

    return live_plot(controls, compute, draw)
