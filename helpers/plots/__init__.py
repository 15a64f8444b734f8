"""Plots and tables, one module per topic: ``lookup`` (notebook 01), ``layers`` (02), ``imdb`` (03), ``training``
(03 and 04), ``bert`` (05), ``pretraining`` (06), ``gpt`` (07), ``generation`` (08), ``scaling`` (09); here, two small helpers every notebook uses.

Each plot function returns a matplotlib Figure. Only ``training`` and ``bert`` import pandas.
"""

import inspect
from collections.abc import Callable

import torch
from IPython.display import Code


def show_source(obj: type | Callable) -> Code:
    """The source code of a helpers function or class, highlighted in the notebook."""
    return Code(inspect.getsource(obj), language="python")


def rounded(t: torch.Tensor, digits: int = 3) -> list[float]:
    """A tensor as a flat list of rounded floats, for printing."""
    return [round(float(x), digits) for x in t.detach().flatten()]
