"""Notebook 04's checkers: the collate function with dynamic padding, one training step with a schedule
and clipping, and the evaluation pass with precision, recall and F1.

As in notebook 02's checkers, a wrong answer is compared with what each known mistake would produce,
and the match names the mistake. ``yours_if_passed`` lets a later cell use the student's function once
its checker passes, and the helpers' own until then.
"""

from collections.abc import Callable

from helpers.checks.finetune.collate import check_collate, reference_collate
from helpers.checks.finetune.evaluate import check_evaluate, reference_evaluate
from helpers.checks.finetune.train_step import check_train_step, reference_train_step
from helpers.feedback import CheckResult

__all__ = [
    "check_collate",
    "check_evaluate",
    "check_train_step",
    "reference_collate",
    "reference_evaluate",
    "reference_train_step",
    "yours_if_passed",
]


def yours_if_passed(result: CheckResult, yours: Callable, ours: Callable, what: str) -> Callable:
    """``yours`` once its checker passed, else ``ours``, saying which is used."""
    if result.passed:
        print(f"{what}: yours")
        return yours
    state = (f"is {result.verdict}" if result.not_implemented
             else f"does not pass its check yet: {result.verdict}")  # fmt: skip
    print(f"{what}: helpers' version (yours {state}; it takes over once its check passes)")
    return ours
