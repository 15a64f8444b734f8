"""What notebook 05's checkers share: minBERT's verdict, seeded training-mode outputs, the
mistake matcher and the dropout-in-eval verdict."""

from collections.abc import Callable

import torch
import torch.nn as nn

from helpers.checks.code import _close
from helpers.env import seeded
from helpers.layers import LayerNorm

CORRECT = "Your BERT implementation is correct!"  # minBERT's sanity_check.py says this
SANITY_ATOL = 1e-5


def _randomise(module: nn.Module) -> None:
    """Random γ and β in every LayerNorm, so a missing or misplaced LayerNorm shows."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, LayerNorm | nn.LayerNorm):
                m.weight.normal_(1.0, 0.5)
                m.bias.normal_(0.0, 0.5)


def _train_output(
    module: nn.Module, call: Callable[[], torch.Tensor], seed: int = 7
) -> torch.Tensor:
    """``call()`` with ``module`` in training mode (dropout on), the random generators seeded."""
    module.train()
    try:
        with seeded(seed), torch.no_grad():
            return call()
    finally:
        module.eval()


def _first_match(got: torch.Tensor, mistakes: dict[str, torch.Tensor], rows=None) -> str | None:
    for hint, output in mistakes.items():
        if _close(got, output) if rows is None else _close(got[rows], output[rows]):
            return hint
    return None


def _varies_in_eval(module: nn.Module, call: Callable[[], torch.Tensor]) -> bool:
    """True when ``call()`` in evaluation mode gives different outputs under different seeds: dropout that
    ignores ``.eval()`` (``F.dropout(x, p)`` defaults to training=True)."""
    module.eval()
    with torch.no_grad():
        with seeded(1):
            first = call()
        with seeded(2):
            second = call()
    return not _close(first, second)


EVAL_DROPOUT = (
    "in evaluation mode (.eval()) the output changes from call to call: dropout is on when it should be off",
    "use the module's nn.Dropout, self.dropout(...), which .eval() switches off; F.dropout(x, p) drops "
    "even in eval mode unless given training=self.training",
)
