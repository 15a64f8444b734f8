"""Notebook 01's explorers: queries looking up keys and values, redrawn while their sliders are
dragged (a lookup over a few keys and one small figure: cheap enough to follow the mouse).

Keys are numbered k1 … kn here as in the text and the plots: a key slider runs from 1 to n.
"""

import ipywidgets as w
import torch
from matplotlib.figure import Figure

from helpers import attention as att
from helpers.plots.lookup import plot_lookup, plot_weight_matrix
from helpers.widgets.live import SLIDER_LAYOUT, STYLE, live_plot, slider


def key_slider(description: str, number: int, n: int) -> w.IntSlider:
    """Which key, numbered 1 … n as in the text (the code's row index is number - 1)."""
    if not 1 <= number <= n:
        raise ValueError(f"{description}: key number {number} is not one of k1 … k{n}")
    return w.IntSlider(
        value=number, min=1, max=n, description=description, continuous_update=True,
        layout=SLIDER_LAYOUT, style=STYLE,
    )  # fmt: skip


def attention_explorer(
    keys: att.Array, values: att.Array, query: att.Array | None = None, scale: float = 1.0
) -> w.VBox:
    """A slider per query component, a scale (inverse temperature) slider and a softmax/argmax toggle."""
    k, v = att.as_float(keys), att.as_float(values)
    q = att.as_float(query) if query is not None else k.new_zeros(k.shape[1])
    controls: dict[str, w.ValueWidget] = {
        f"q{i}": slider(f"query[{i}]", float(q[i]), -3.0, 3.0, continuous_update=True)
        for i in range(k.shape[1])
    }
    controls["scale"] = slider("scale (1/temperature)", scale, 0.0, 5.0, continuous_update=True)
    controls["mode"] = w.ToggleButtons(
        options=["softmax", "argmax"], value="softmax", description="lookup"
    )

    def compute(scale: float, mode: str, **components: float) -> dict:
        query = [components[f"q{i}"] for i in range(k.shape[1])]
        return {**att.lookup(query, k, v, scale=scale, mode=mode), "mode": mode, "scale": scale}

    def draw(state: dict) -> Figure:
        title = "weights = " + (
            "softmax(scale · q·k)" if state["mode"] == "softmax" else "one-hot(argmax q·k)"
        )
        return plot_lookup(state["weights"], state["output"], title=title, scores=state["scores"])

    return live_plot(controls, compute, draw)


def selection_explorer(
    keys: att.Array, values: att.Array, strength: float = 1.0, j: int = 1
) -> w.VBox:
    """Part c: sliders for S and the key number j; the lookup with q = S·k_j, its scores, weights
    and distance from v_j."""
    k, v = att.as_float(keys), att.as_float(values)
    controls = {
        "strength": slider("strength S", strength, 0.0, 20.0, 0.5, continuous_update=True),
        "j": key_slider("copy v_j, j =", j, len(k)),
    }

    def compute(strength: float, j: int) -> dict:
        return att.lookup_state(att.selection_query(k, j - 1, strength), k, v, v[j - 1])

    def draw(state: dict) -> Figure:
        title = f"q = S·k_j: distance from v_j = {state['distance']:.3f}"
        return plot_lookup(
            state["weights"], state["output"], state["target"], title, state["scores"]
        )

    return live_plot(controls, compute, draw)


def copy_explorer(keys: att.Array, strength: float = 1.0) -> w.VBox:
    """Part c, every position at once: Q = S·K, the (n, n) weights softmax(Q·Kᵀ) as a heatmap."""
    k = att.as_float(keys)
    controls = {"strength": slider("strength S", strength, 0.0, 20.0, 0.5, continuous_update=True)}

    def compute(strength: float) -> dict:
        weights = att.softmax_attention(att.copy_queries(k, strength), k, k, 1.0, True)[1]
        eye = torch.eye(len(k), dtype=weights.dtype)
        return {"weights": weights, "distance": float((weights - eye).abs().max())}

    def draw(state: dict) -> Figure:
        title = f"Q = S·K: largest gap from the identity = {state['distance']:.3f}"
        return plot_weight_matrix(state["weights"], title)

    return live_plot(controls, compute, draw)


def averaging_explorer(
    keys: att.Array, values: att.Array, strength: float = 1.0, a: int = 1, b: int = 2
) -> w.VBox:
    """Part d: sliders for C and the key numbers a and b; the lookup with q = C·(k_a + k_b)
    against (v_a + v_b)/2."""
    k, v = att.as_float(keys), att.as_float(values)
    controls = {
        "strength": slider("strength C", strength, 0.0, 20.0, 0.5, continuous_update=True),
        "a": key_slider("key a", a, len(k)),
        "b": key_slider("key b", b, len(k)),
    }

    def compute(strength: float, a: int, b: int) -> dict:
        query = att.averaging_query(k, a - 1, b - 1, strength)
        return att.lookup_state(query, k, v, (v[a - 1] + v[b - 1]) / 2)

    def draw(state: dict) -> Figure:
        title = f"q = C·(k_a + k_b): distance from (v_a + v_b)/2 = {state['distance']:.3f}"
        return plot_lookup(
            state["weights"], state["output"], state["target"], title, state["scores"]
        )

    return live_plot(controls, compute, draw)
