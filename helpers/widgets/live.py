"""What every widget shares: controls in, a plain function computes, a figure or HTML out.

A widget is a VBox of controls above a view. On every change it calls ``compute(**values)``, keeps the
result in ``widget.state`` and redraws it, so a test can set ``widget.controls[name].value`` and read
``widget.state``. An error in a redraw is shown in red in the widget (Jupyter would only log it,
leaving the old view up unexplained) and raised again. Core ipywidgets only (7.7 in Colab, 8.x in
JupyterLab); matplotlib redrawn inline.
"""

import html
import numbers
from collections.abc import Callable
from time import perf_counter

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure

SLIDER_LAYOUT = w.Layout(width="420px")
STYLE = {"description_width": "150px"}


def slider(
    description: str,
    value: float,
    lo: float,
    hi: float,
    step: float = 0.1,
    continuous_update: bool = False,
) -> w.FloatSlider:
    """A float slider; ``continuous_update=True`` redraws while it is dragged, not only on release.
    A starting value outside lo … hi is refused (ipywidgets would move it to the nearest end)."""
    _in_range(description, value, lo, hi)
    return w.FloatSlider(
        value=value, min=lo, max=hi, step=step, description=description,
        continuous_update=continuous_update, layout=SLIDER_LAYOUT, style=STYLE,
    )  # fmt: skip


def int_slider(
    description: str, value: int, lo: int, hi: int, continuous_update: bool = False
) -> w.IntSlider:
    """An integer slider over lo … hi (a count, a length, an index); a starting value outside is
    refused."""
    _in_range(description, value, lo, hi)
    return w.IntSlider(
        value=value, min=lo, max=hi, description=description,
        continuous_update=continuous_update, layout=SLIDER_LAYOUT, style=STYLE,
    )  # fmt: skip


def _in_range(description: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
        raise ValueError(f"the slider {description!r} starts at {value!r}, but it takes numbers from "
                         f"{lo} to {hi}: change that knob in the parameters cell")  # fmt: skip


def index_slider(
    description: str, value: int, n: int, continuous_update: bool = False
) -> w.IntSlider:
    """An integer slider over 0 … n - 1, e.g. which key, layer or review; its description says that
    it counts from 0, as Python's indices and the figures' titles do."""
    return int_slider(f"{description} (from 0)", value, 0, n - 1, continuous_update)


def live_plot(
    controls: dict[str, w.ValueWidget], compute: Callable[..., dict], draw: Callable[[dict], Figure]
) -> w.VBox:
    """``controls`` above a plot; on any change: state = compute(**values), then draw(state)."""
    out = w.Output()
    return _live(controls, compute, out, lambda state: _show(out, draw(state)))


def live_html(
    controls: dict[str, w.ValueWidget], compute: Callable[..., dict], draw: Callable[[dict], w.HTML]
) -> w.VBox:
    """``controls`` above an HTML view; on any change: state = compute(**values), then draw(state)."""
    view = w.Box()

    def show(state: dict) -> None:
        old = view.children
        view.children = (draw(state),)
        for widget in old:  # closed, or each redraw left three widgets (and their comms) behind
            for part in (widget, getattr(widget, "layout", None), getattr(widget, "style", None)):
                if isinstance(part, w.Widget):
                    part.close()

    return _live(controls, compute, view, show)


def live_runs(
    controls: dict[str, w.ValueWidget],
    run: Callable[..., str],
    draw: Callable[..., Figure],
    runs: list | dict,
    action: str = "run",
    busy: str = "running…",
    errors: tuple[type[Exception], ...] = (ValueError,),
) -> w.VBox:
    """``controls``, an ``action`` button, a status line and a plot of every run so far.

    Each click calls ``run(**values)``, which adds its run to ``runs`` and returns a one-line summary,
    shown with the seconds it took (the busy line gives the last run's); then the plot shows
    ``draw(runs)``. An error in ``errors`` is shown in the status line, not raised.
    """
    button = w.Button(description=action, button_style="success")
    status, out = w.HTML(), w.Output()
    box = w.VBox([*controls.values(), button, status, out])
    box.controls, box.button, box.runs = controls, button, runs

    last: list[float] = []  # the seconds of the last run that finished

    def on_click(_button: w.Button | None = None) -> None:
        status.value = busy + (f" (the last run took {_seconds(last[0])})" if last else "")
        started = perf_counter()
        try:
            summary = run(**_values(controls))
        except errors as err:  # e.g. heads that do not divide the embedding size, a missing model
            status.value = _error(err)
            return
        except Exception as err:  # a fault: said here, not left at "running…", and raised
            status.value = _error(err, "(the run stopped)")
            raise
        last[:] = [perf_counter() - started]
        status.value = html.escape(f"{summary} ({_seconds(last[0])})")
        _show(out, draw(runs))

    button.on_click(on_click)
    return box


def _live(
    controls: dict[str, w.ValueWidget],
    compute: Callable[..., dict],
    view: w.Widget,
    show: Callable[[dict], None],
) -> w.VBox:
    status = w.HTML(layout=w.Layout(display="none"))  # shown only with an error: no empty row
    box = w.VBox([*controls.values(), status, view])
    box.controls, box.state, box.status = controls, {}, status

    def redraw(_change: dict | None = None) -> None:
        try:
            state = compute(**_values(controls))
            show(state)
        except Exception as err:
            status.value = _error(err, "(the view below is from the last values that worked)")
            status.layout.display = None
            raise
        box.state = state  # only once drawn: it is what the view shows
        status.value, status.layout.display = "", "none"

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return box


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _error(err: Exception, after: str = "") -> str:
    message = f"{type(err).__name__}: {err}"[:300]
    return f"<span style='color:#cf222e'>{html.escape(f'{message} {after}'.strip())}</span>"


def _values(controls: dict[str, w.ValueWidget]) -> dict:
    return {name: control.value for name, control in controls.items()}


def _show(out: w.Output, fig: Figure) -> None:
    with out:
        out.clear_output(wait=True)
        display(fig)
        plt.close(fig)
