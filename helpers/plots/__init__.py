"""Plots and tables, one module per topic: ``lookup`` (notebook 01), ``layers`` (02), ``imdb`` (03), ``training``
(03 and 04), ``bert`` (05), ``pretraining`` (06), ``gpt`` (07), ``generation`` (08), ``scaling`` (09); here, the
helpers they share and two every notebook uses.

Each plot function returns a matplotlib Figure, drawn with ``COLORS``. Only ``training`` and ``bert`` import
pandas.
"""

import inspect
from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import torch
from IPython.display import Code
from matplotlib import cycler
from matplotlib.figure import Figure

# Shaded tokens (HTML) sit on a panel of their own: black text on white, readable in a dark theme.
PANEL = "line-height: 1.8; background: #fff; color: #000; padding: 2px 4px"
# Okabe and Ito's palette: its colours stay apart for the common colour-vision deficiencies (matplotlib's
# default cycle puts a red beside a green)
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots`` whose axes cycle through ``COLORS``; matplotlib's own settings are left alone.

    Each axis gets the cycle itself: a figure made inside ``plt.rc_context`` as a kernel's first one
    left every later figure of the kernel undrawn under Jupyter's inline backend (the context's exit
    turns interactive mode back off: matplotlib#24351, ipython/matplotlib-inline#22)."""
    fig, axes = plt.subplots(*args, **kwargs)
    for ax in fig.axes:
        ax.set_prop_cycle(cycler(color=COLORS))
    return fig, axes


def plain(text: str) -> str:
    """``text`` for a title or tick label as typed: matplotlib reads a pair of $ as math ("$5 and $6"
    lost its dollars and spacing; "$\\foo$" raised a parser error)."""
    return text.replace("$", r"\$")


def token_ticks(ax: Any, labels: list[str], most: int, fontsize: float = 8) -> None:
    """Tokens on both axes of a (T, T) map, about ``most`` of them labelled (every k-th past that,
    so a long sentence's labels stay readable, and the last: [SEP], or the token predicted after),
    each as typed."""
    ticks = list(range(0, len(labels), max(1, -(-len(labels) // most))))
    if ticks and ticks[-1] != len(labels) - 1:
        ticks.append(len(labels) - 1)
    ax.set_xticks(ticks, [plain(labels[i]) for i in ticks], rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, [plain(labels[i]) for i in ticks], fontsize=fontsize)


def number(value: float, digits: int = 2) -> str:
    """``value`` rounded for a label, without the "-0.00" of a tiny negative."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def count(n: int, noun: str) -> str:
    """A count with its noun: 1 seed, 2 seeds, 1 batch, 2 batches."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith(('s', 'ch')) else 's'}"


def show_source(obj: type | Callable) -> Code:
    """The source code of a helpers function or class, highlighted in the notebook."""
    return Code(inspect.getsource(obj), language="python")


def rounded(t: torch.Tensor, digits: int = 3) -> list[float]:
    """A tensor as a flat list of rounded floats, for printing."""
    return [round(float(x), digits) for x in t.detach().flatten()]
