"""Notebook 07's widgets: a trained variant's attention and next-token distribution on a prompt the
student types, and its samples at a temperature the student drags.

They are given the trained models: ``{label: (model, vocab)}``.
"""

import html

import ipywidgets as w
from matplotlib.figure import Figure

from helpers.gpt.runs import inspect, sample
from helpers.plots.gpt import plot_attention_and_next
from helpers.widgets.live import STYLE, index_slider, live_html, live_plot, slider


def _models_dropdown(models: dict) -> w.Dropdown:
    return w.Dropdown(options=list(models), description="model", style=STYLE)


def _prompt_box(prompt: str) -> w.Text:
    return w.Text(value=prompt, description="prompt", continuous_update=False,
                  layout=w.Layout(width="600px"), style=STYLE)  # fmt: skip


def attention_explorer(models: dict, prompt: str) -> w.VBox:
    """Pick a model (a variant) and type a prompt: one head's attention pattern (layer and head
    sliders) beside the next-token distribution's top 10."""
    first = next(iter(models.values()))[0].config
    controls = {
        "name": _models_dropdown(models),
        "prompt": _prompt_box(prompt),
        # redrawn on release: a two-panel figure takes 0.4-0.5 s at the quick profile's sizes
        "layer": index_slider("layer", 0, first.layers),
        "head": index_slider("head", 0, first.heads),
    }

    def compute(name: str, prompt: str, layer: int, head: int) -> dict:
        model, vocab = models[name]
        unknown = vocab.unknown(prompt) if vocab.level == "char" else []
        text = "".join(c for c in prompt if c not in unknown)
        if unknown and not text:
            raise ValueError(f"the model knows none of the prompt's characters {unknown}: type "
                             "characters of its training text")  # fmt: skip
        state = inspect(model, vocab, text)
        cfg = model.config
        return {**state, "name": name, "layer": min(layer, cfg.layers - 1),
                "head": min(head, cfg.heads - 1), "dropped": unknown}  # fmt: skip

    def draw(state: dict) -> Figure:
        note = f" (left out: {state['dropped']})" if state["dropped"] else ""
        return plot_attention_and_next(
            state, state["layer"], state["head"], title=state["name"] + note
        )

    return live_plot(controls, compute, draw)


def sample_explorer(models: dict, prompt: str, tokens: int = 200) -> w.VBox:
    """Pick a model, a temperature and a seed: the text it writes after ``prompt``."""
    controls = {
        "name": _models_dropdown(models),
        "temperature": slider("temperature", 1.0, 0.1, 2.0),
        # bounded as GPTRunConfig's seeds: a 20-digit number overflowed torch's manual_seed
        "seed": w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed", style=STYLE),
    }

    def compute(name: str, temperature: float, seed: int) -> dict:
        model, vocab = models[name]
        return {"name": name, "temperature": temperature,
                "text": sample(model, vocab, prompt, tokens, temperature, seed=seed)}  # fmt: skip

    def draw(state: dict) -> w.HTML:
        text = html.escape(prompt) + "<b>" + html.escape(state["text"]) + "</b>"
        return w.HTML(f"<div>{html.escape(state['name'])} at temperature {state['temperature']:.1f} "
                      f"(prompt plain, its text bold):</div><pre style='white-space:pre-wrap'>{text}</pre>")  # fmt: skip

    return live_html(controls, compute, draw)
