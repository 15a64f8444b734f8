"""Notebook 01's explorers: one query looking up keys and values, redrawn while its sliders are
dragged (a lookup over a few keys and one small figure: cheap enough to follow the mouse)."""

import ipywidgets as w

from helpers import attention as att
from helpers.plots.lookup import plot_lookup
from helpers.widgets.live import index_slider, live_plot, slider


def attention_explorer(keys, values, query=None, scale: float = 1.0) -> w.VBox:
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
        return {**att.lookup(query, k, v, scale=scale, mode=mode), "mode": mode}

    def draw(state: dict):
        title = "weights = " + (
            "softmax(scale · q·k)" if state["mode"] == "softmax" else "one-hot(argmax q·k)"
        )
        return plot_lookup(state["weights"], state["output"], title=title)

    return live_plot(controls, compute, draw)


def selection_explorer(keys, values, strength: float = 1.0, j: int = 0) -> w.VBox:
    """Part c: sliders for S and j; the lookup with q = S·k_j, its weights and distance from v_j."""
    k, v = att.as_float(keys), att.as_float(values)
    controls = {
        "strength": slider("strength S", strength, 0.0, 20.0, 0.5, continuous_update=True),
        "j": index_slider("index j (0 = k1)", j, len(k), continuous_update=True),
    }

    def compute(strength: float, j: int) -> dict:
        return att.lookup_state(att.selection_query(k, j, strength), k, v, v[j])

    def draw(state: dict):
        title = f"q = S·k_j: distance from v_j = {state['distance']:.3f}"
        return plot_lookup(state["weights"], state["output"], state["target"], title)

    return live_plot(controls, compute, draw)


def averaging_explorer(keys, values, strength: float = 1.0, a: int = 0, b: int = 1) -> w.VBox:
    """Part d: sliders for C, a and b; the lookup with q = C·(k_a + k_b) against (v_a + v_b)/2."""
    k, v = att.as_float(keys), att.as_float(values)
    controls = {
        "strength": slider("strength C", strength, 0.0, 20.0, 0.5, continuous_update=True),
        "a": index_slider("index a (0 = k1)", a, len(k), continuous_update=True),
        "b": index_slider("index b (0 = k1)", b, len(k), continuous_update=True),
    }

    def compute(strength: float, a: int, b: int) -> dict:
        return att.lookup_state(att.averaging_query(k, a, b, strength), k, v, (v[a] + v[b]) / 2)

    def draw(state: dict):
        title = f"q = C·(k_a + k_b): distance from (v_a + v_b)/2 = {state['distance']:.3f}"
        return plot_lookup(state["weights"], state["output"], state["target"], title)

    return live_plot(controls, compute, draw)
