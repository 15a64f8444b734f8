"""Notebook 05, exercise 3: add & norm, ``norm(x + dropout(sublayer_output))``."""

from collections.abc import Callable

import torch
import torch.nn as nn

from helpers.checks.bert.shared import _first_match, _randomise
from helpers.checks.code import _close, not_a_tensor
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, run_check
from helpers.layers import LayerNorm


def check_add_norm(add_norm: Callable) -> CheckResult:
    """``add_norm(x, sublayer_output, dropout, norm)`` -> norm(x + dropout(sublayer_output))."""
    name = "add & norm"
    with seeded(0):
        return run_check(name, lambda: _add_norm(name, add_norm))


def _add_norm(name: str, add_norm: Callable) -> CheckResult:
    x, y = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    norm, dropout = LayerNorm(16, eps=1e-12), nn.Dropout(0.5)
    _randomise(norm)

    def run(f: Callable) -> torch.Tensor:
        with seeded(3), torch.no_grad():
            return f()

    want = run(lambda: norm(x + dropout(y)))
    # the student's own copies: an in-place change shows, and spoils nothing
    mine = x.clone(), y.clone()
    got = run(lambda: add_norm(*mine, dropout, norm))
    if wrong := not_a_tensor(got, tuple(x.shape), "LN(x + dropout(y))"):
        return failed(name, wrong, "return the normalised sum, the same shape as x")
    if not torch.equal(mine[0], x):
        return failed(name, "your function changed x in place (x += … or x.add_(…))",
                      "write x + dropout(sublayer_output), a new tensor: x is the previous layer's "
                      "output, and autograd needs it unchanged for the backward pass")  # fmt: skip
    if not _close(got, want):
        mistakes = {
            "the residual is added after the norm, x + LN(dropout(y)): BERT (post-LN) normalises "
            "the sum, LN(x + dropout(y))": run(lambda: x + norm(dropout(y))),
            "the sublayer's output is normalised before the residual is added, x + dropout(LN(y)) "
            "(pre-LN style): BERT is post-LN and normalises the sum, LN(x + dropout(y))": run(
                lambda: x + dropout(norm(y))
            ),
            "dropout is applied to the sum: drop only the sublayer's output, then add x, "
            "LN(x + dropout(y))": run(lambda: norm(dropout(x + y))),
            "dropout is applied to the residual x: drop the sublayer's output y instead": run(
                lambda: norm(dropout(x) + y)
            ),
            "dropout is applied after the norm: drop y before adding, LN(x + dropout(y))": run(
                lambda: dropout(norm(x + y))
            ),
            "dropout is missing: LN(x + dropout(y))": run(lambda: norm(x + y)),
            "the residual connection is missing: add the sublayer's input x before normalising": run(
                lambda: norm(dropout(y))
            ),
            "the LayerNorm is missing: normalise the sum, norm(x + dropout(y))": run(
                lambda: x + dropout(y)
            ),
        }
        hint = _first_match(got, mistakes)
        return failed(name, "wrong output (checked in training mode: dropout 0.5, a fixed seed)",
                      *([hint] if hint else ["add the sublayer's input x to its dropped-out output, then "
                        "normalise", "return norm(x + dropout(sublayer_output))"]))  # fmt: skip
    dropout.eval()  # as in model.eval(): no dropout, LN(x + y)
    evaluated = run(lambda: add_norm(x.clone(), y.clone(), dropout, norm))
    if not _close(evaluated, run(lambda: norm(x + y))):
        return failed(name, "with the dropout module in eval mode your output still drops numbers",
                      "call the module you are given, dropout(sublayer_output): it follows .train() and "
                      ".eval(); F.dropout(y, p) drops even in eval mode unless given "
                      "training=dropout.training")  # fmt: skip
    return passed(
        name, "LN(x + dropout(y)), dropout on the sublayer's output only, none in eval mode"
    )
