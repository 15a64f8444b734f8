"""Interactive widgets, core ipywidgets only (7.7 in Colab, 8.x in JupyterLab), matplotlib redrawn inline.

Each function builds one widget from plain inputs and returns it. The numbers it draws come from a
plain function in another module; after every change the widget keeps them in ``widget.state``, so a
test can set ``widget.controls[name].value`` and read the recomputed state.
"""

import html
from collections.abc import Callable

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display

from helpers import attention as att
from helpers import experiments, imdb, plots, pretrained
from helpers.quiz import grade, load_quiz

SLIDER_LAYOUT = w.Layout(width="420px")
STYLE = {"description_width": "150px"}


def live_plot(
    controls: dict[str, w.ValueWidget], compute: Callable[..., dict], draw: Callable
) -> w.VBox:
    """A VBox of ``controls`` above a plot; on any change: state = compute(**values), then draw(state)."""
    out = w.Output()
    box = w.VBox([*controls.values(), out])
    box.controls, box.state = controls, {}

    def redraw(_change=None) -> None:
        box.state = compute(**{name: c.value for name, c in controls.items()})
        with out:
            out.clear_output(wait=True)
            fig = draw(box.state)
            display(fig)
            plt.close(fig)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return box


def _slider(
    description: str, value: float, lo: float, hi: float, step: float = 0.1
) -> w.FloatSlider:
    return w.FloatSlider(
        value=value, min=lo, max=hi, step=step, description=description,
        continuous_update=False, layout=SLIDER_LAYOUT, style=STYLE,
    )  # fmt: skip


def _index(description: str, value: int, n: int) -> w.IntSlider:
    return w.IntSlider(
        value=value, min=0, max=n - 1, description=description,
        continuous_update=False, layout=SLIDER_LAYOUT, style=STYLE,
    )  # fmt: skip


def attention_explorer(keys, values, query=None, scale: float = 1.0) -> w.VBox:
    """A slider per query component, a scale (inverse temperature) slider and a softmax/argmax toggle."""
    k, v = att.as_float(keys), att.as_float(values)
    q = att.as_float(query) if query is not None else k.new_zeros(k.shape[1])
    controls: dict[str, w.ValueWidget] = {
        f"q{i}": _slider(f"query[{i}]", float(q[i]), -3.0, 3.0) for i in range(k.shape[1])
    }
    controls["scale"] = _slider("scale (1/temperature)", scale, 0.0, 5.0)
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
        return plots.plot_lookup(state["weights"], state["output"], title=title)

    return live_plot(controls, compute, draw)


def selection_explorer(keys, values, strength: float = 1.0, j: int = 0) -> w.VBox:
    """Part c: sliders for S and j; the lookup with q = S·k_j, its weights and distance from v_j."""
    k, v = att.as_float(keys), att.as_float(values)
    controls = {
        "strength": _slider("strength S", strength, 0.0, 20.0, 0.5),
        "j": _index("index j (0 = k1)", j, len(k)),
    }

    def compute(strength: float, j: int) -> dict:
        return att.lookup_state(att.selection_query(k, j, strength), k, v, v[j])

    def draw(state: dict):
        title = f"q = S·k_j: distance from v_j = {state['distance']:.3f}"
        return plots.plot_lookup(state["weights"], state["output"], state["target"], title)

    return live_plot(controls, compute, draw)


def averaging_explorer(keys, values, strength: float = 1.0, a: int = 0, b: int = 1) -> w.VBox:
    """Part d: sliders for C, a and b; the lookup with q = C·(k_a + k_b) against (v_a + v_b)/2."""
    k, v = att.as_float(keys), att.as_float(values)
    controls = {
        "strength": _slider("strength C", strength, 0.0, 20.0, 0.5),
        "a": _index("index a (0 = k1)", a, len(k)),
        "b": _index("index b (0 = k1)", b, len(k)),
    }

    def compute(strength: float, a: int, b: int) -> dict:
        return att.lookup_state(att.averaging_query(k, a, b, strength), k, v, (v[a] + v[b]) / 2)

    def draw(state: dict):
        title = f"q = C·(k_a + k_b): distance from (v_a + v_b)/2 = {state['distance']:.3f}"
        return plots.plot_lookup(state["weights"], state["output"], state["target"], title)

    return live_plot(controls, compute, draw)


def quiz(name: str) -> w.VBox:
    """The quiz data/quiz_<name>.json: one radio group and a Check button per question."""
    title, questions = load_quiz(name)
    box = w.VBox([w.HTML(f"<h3>{title}</h3>")])
    box.questions, box.results = [], {}
    for number, question in enumerate(questions, 1):
        choices = w.RadioButtons(
            options=question.options, index=None, layout=w.Layout(width="auto")
        )
        button = w.Button(description="Check", button_style="info")
        feedback = w.HTML()

        def on_click(_button, question=question, choices=choices, feedback=feedback) -> None:
            result = grade(question, choices.index)
            box.results[question.id] = result
            feedback.value = result._repr_html_()

        button.on_click(on_click)
        box.questions.append(
            {"id": question.id, "choices": choices, "button": button, "feedback": feedback}
        )
        box.children += (w.HTML(f"<b>{number}. {question.question}</b>"), choices, button, feedback)
    return box


def attention_heatmap(model, tokenizer, sentence: str, layer: int = 2, head: int = 0) -> w.VBox:
    """A pretrained encoder's attention over ``sentence``: sliders for layer, head, temperature,
    padding length, and a mask on/off switch."""
    config = model.config
    controls = {
        "layer": _index("layer", layer, config.num_hidden_layers),
        "head": _index("head", head, config.num_attention_heads),
        "temperature": _slider("temperature", 1.0, 0.1, 5.0),
        "pad": w.IntSlider(
            value=0,
            min=0,
            max=8,
            description="padding tokens",
            continuous_update=False,
            layout=SLIDER_LAYOUT,
            style=STYLE,
        ),  # fmt: skip
        "use_mask": w.Checkbox(value=True, description="mask the padding"),
    }

    def compute(**settings) -> dict:
        return pretrained.attention_map(model, tokenizer, sentence, **settings)

    def draw(state: dict):
        leak = (
            float(state["on_padding"][state["on_padding"] > 0].mean())
            if state["on_padding"].any()
            else 0.0
        )
        title = (
            f"weight on padding: {leak:.1%} per query" if leak else "rows: queries, columns: keys"
        )
        return plots.plot_attention_heatmap(state["tokens"], state["weights"], title)

    return live_plot(controls, compute, draw)


def hyperparameter_explorer(prepared, device, base: dict) -> w.VBox:
    """Controls for blocks, heads, lr, epochs, max length and frozen embeddings; "train" runs a quick
    training with them and overlays its validation loss on every earlier run's."""
    controls = {
        "blocks": w.IntSlider(
            value=base["blocks"], min=1, max=4, description="blocks", style=STYLE
        ),
        "heads": w.Dropdown(
            options=[1, 2, 4, 5], value=base["heads"], description="heads", style=STYLE
        ),
        "lr": w.Dropdown(
            options=[1e-4, 3e-4, 1e-3, 3e-3],
            value=base["lr"],
            description="learning rate",
            style=STYLE,
        ),
        "epochs": w.IntSlider(
            value=base["epochs"], min=1, max=10, description="epochs", style=STYLE
        ),
        "max_len": w.Dropdown(
            options=[32, 64, 128, 256, 512],
            value=base["max_len"],
            description="max length",
            style=STYLE,
        ),  # fmt: skip
        "freeze_embeddings": w.Checkbox(
            value=base["freeze_embeddings"], description="freeze GloVe"
        ),
    }
    button = w.Button(description="train", button_style="success")
    status, out = w.HTML(), w.Output()
    box = w.VBox([*controls.values(), button, status, out])
    box.controls, box.button, box.runs = controls, button, []

    def on_click(_button=None) -> None:
        config = {**base, **{name: c.value for name, c in controls.items()}}
        status.value = "training…"
        try:
            result = imdb.run(prepared, config, device, progress=False)
        except ValueError as err:  # e.g. heads that do not divide the GloVe size
            status.value = f"<span style='color:#cf222e'>{html.escape(str(err))}</span>"
            return
        label = ", ".join(f"{k}={v}" for k, v in config.items() if k in controls)
        box.runs.append(
            {
                "label": label,
                "history": result["history"],
                "test_accuracy": result["test"]["accuracy"],
            }
        )
        status.value = f"run {len(box.runs)}: test accuracy {result['test']['accuracy']:.1%}"
        with out:
            out.clear_output(wait=True)
            fig = plots.plot_runs(box.runs)
            display(fig)
            plt.close(fig)

    button.on_click(on_click)
    return box


def review_attention(prepared, model, device, split: str = "test", index: int = 0) -> w.VBox:
    """A review with each token shaded by the attention it receives in the model's first block."""
    n = len(prepared.docs[split])

    def compute(index: int) -> dict:
        return imdb.token_attention(prepared, model, device, split, index)

    def draw(state: dict) -> w.HTML:
        verdict = "✅" if state["predicted"] == state["label"] else "❌"
        head = (f"<b>true: {'pos' if state['label'] else 'neg'} · predicted: "
                f"{'pos' if state['predicted'] else 'neg'} ({state['confidence']:.0%}) {verdict}</b><br>")  # fmt: skip
        return w.HTML(head + plots.highlight_tokens(state["tokens"], state["weights"]))

    return live_html({"index": _index("review", index, n)}, compute, draw)


def live_html(
    controls: dict[str, w.ValueWidget], compute: Callable[..., dict], draw: Callable
) -> w.VBox:
    """Like ``live_plot`` for widgets that draw HTML: state = compute(**values), then show draw(state)."""
    view = w.Box()
    box = w.VBox([*controls.values(), view])
    box.controls, box.state = controls, {}

    def redraw(_change=None) -> None:
        box.state = compute(**{name: c.value for name, c in controls.items()})
        view.children = (draw(box.state),)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return box


def finetune_explorer(models: list[str], data: dict, device, sizes: dict) -> w.VBox:
    """Choose a model, a data set, lr, epochs and batch size; "run" fine-tunes and adds a dev curve.

    ``data`` maps a data-set name to (splits, task) as ``experiments.notebook_data`` returns them.
    """
    controls = {
        "model": w.Dropdown(options=models, description="model", style=STYLE),
        "dataset": w.Dropdown(options=list(data), description="data set", style=STYLE),
        "lr": w.Dropdown(
            options=[2e-5, 5e-5, 1e-4, 5e-4], value=5e-5, description="learning rate", style=STYLE
        ),
        "epochs": w.IntSlider(
            value=sizes["epochs"], min=1, max=10, description="epochs", style=STYLE
        ),
        "batch_size": w.Dropdown(
            options=[8, 16, 32, 64], value=32, description="batch size", style=STYLE
        ),
    }
    button, status, out = w.Button(description="run", button_style="success"), w.HTML(), w.Output()
    box = w.VBox([*controls.values(), button, status, out])
    box.controls, box.button, box.runs = controls, button, {}

    def on_click(_button=None) -> None:
        values = {name: c.value for name, c in controls.items()}
        splits, task = data[values["dataset"]]
        status.value = "fine-tuning…"
        try:
            result = experiments.experiment(values["model"], splits, task, device, values["lr"], values["epochs"],
                                            values["batch_size"], train_rows=sizes["max_train"])  # fmt: skip
        except Exception as err:  # a model that cannot load: say so in the widget
            status.value = f"<span style='color:#cf222e'>{html.escape(type(err).__name__ + ': ' + str(err))[:300]}</span>"
            return
        label = f"{values['model']} on {values['dataset']}, lr {values['lr']}, batch {values['batch_size']}"
        box.runs[label] = result["history"]
        status.value = f"{label}: dev accuracy {result['history']['dev_accuracy'][-1]:.1%}"
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(8, 3.5))
            for name, history in box.runs.items():
                ax.plot(history["epoch"], history["dev_accuracy"], "o-", label=name)
            ax.set(title="dev accuracy of every run", xlabel="epoch", ylabel="dev accuracy")
            ax.legend(loc="best", fontsize="small")
            display(fig)
            plt.close(fig)

    button.on_click(on_click)
    return box
