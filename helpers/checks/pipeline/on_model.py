"""Notebook 03: the student's collate, loaders and evaluation together on the trained model, and
the student's own modules of notebook 02 checked before a run uses them."""

import functools
import math

import torch.nn as nn

from helpers.checks.layer_norm import check_layer_norm
from helpers.checks.modules import check_self_attention
from helpers.checks.pipeline.collate import _collate
from helpers.checks.pipeline.shared import Collate, Evaluate, MakeLoaders
from helpers.checks.pipeline.training import _as_number, _evaluate, _loaders
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, returned, run_check
from helpers.imdb.runs import my_modules
from helpers.layers import ModuleFactory


def check_pipeline_on_model(
    collate: Collate, make_loaders: MakeLoaders, evaluate: Evaluate, model: nn.Module,
    valid_items: list, max_len: int, reference: float,
) -> CheckResult:  # fmt: skip
    """Score the trained ``model`` on the validation items with the student's collate, loaders and
    evaluation pass (on the CPU); it should match ``reference``, what the course's loop measured."""
    name = "your pipeline on the trained model"
    return run_check(name, lambda: _on_model(name, collate, make_loaders, evaluate, model,
                                             valid_items, max_len, reference))  # fmt: skip


def _on_model(name, collate, make_loaders, evaluate, model, valid_items, max_len, reference):
    with seeded(0):  # the three checks above, quietly: a pipeline that fails them is not scored
        for what, check, fn in (("collate", _collate, collate), ("loaders", _loaders, make_loaders),
                                ("evaluation pass", _evaluate, evaluate)):  # fmt: skip
            try:
                ok = check(what, fn).passed
            except Exception:  # a crash is a failure too; its check above says where
                ok = False
            if not ok:
                return failed(name, f"your {what} does not yet pass its check above",
                              "run the three checks above until each says passed")  # fmt: skip
    device = next(model.parameters()).device
    try:
        batch = functools.partial(collate, max_len=max_len)
        _, valid = make_loaders(valid_items[:1], valid_items, 64, batch)
        got = evaluate(model.cpu(), valid)
    finally:
        model.to(device)
    number = _as_number(got)
    if number is None:
        return failed(name, f"expected the accuracy from your evaluate; it returned {returned(got)}",
                      "run check_evaluate above first")  # fmt: skip
    got = number
    if not math.isfinite(got) or not math.isfinite(reference) or abs(got - reference) > 0.01:
        return failed(name, f"your pipeline scores {got:.1%} on validation; the course's loop "
                      f"measured {reference:.1%}", "run the three checks above first")  # fmt: skip
    return passed(name, f"{got:.1%} on {len(valid_items):,} validation reviews, as the course's "
                  f"loop measured ({reference:.1%})")  # fmt: skip


# --- your own modules --------------------------------------------------------------------------


def checked_modules(names: dict) -> tuple[ModuleFactory, ModuleFactory]:
    """``imdb.my_modules(names)`` once notebook 02's checks pass on both classes: a class they fail
    stops here with its verdict (a wrong module trained to NaN or chance without a word)."""
    attention, layer_norm = my_modules(names)
    for result in (check_self_attention(attention), check_layer_norm(layer_norm)):
        if not result.passed:
            raise ValueError(f"USE_MY_MODULES = True, but notebook 02's check says:\n{result}\nfix "
                             "the class in notebook 02 (its check names the mistake) and paste it "
                             "again, or set USE_MY_MODULES = False")  # fmt: skip
    return attention, layer_norm
