"""Notebook 03, exercise (b): masked mean pooling (padding left out of the mean)."""

import re
from collections.abc import Callable

import torch

from helpers.checks.code import _close, find_loop
from helpers.feedback import CheckResult, failed, passed, run_check


def check_masked_mean(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """``fn(x, mask)``: x (B, T, d), mask (B, T) with True/1 at real tokens -> (B, d), the mean over
    each row's real tokens only."""
    name = "masked mean"
    return run_check(name, lambda: _masked_mean(name, fn))


def _pooling_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 5, 4, generator=gen)  # (B, T, d): T != d != B, so a bad broadcast fails
    lengths = torch.tensor([5, 2, 3])
    mask = (torch.arange(5)[None, :] < lengths[:, None]).to(dtype)  # (B, T)
    x = x.masked_fill(~mask.bool()[..., None], 100.0)  # padding far from the real tokens
    return x, mask


def _masked_mean(name: str, fn) -> CheckResult:
    x, mask = _pooling_case(torch.bool)
    m = mask[..., None].float()  # (B, T, 1)
    want = (x * m).sum(1) / m.sum(1)
    mistakes = {
        "averaged over the padding too (x.mean(dim=1))": (
            x.mean(1), "multiply by the mask before summing, and divide by the number of real "
            "tokens"),
        "divided the masked sum by the padded length T, not by each row's number of real tokens": (
            (x * m).sum(1) / x.shape[1], "divide by mask.sum(dim=1): the count of real tokens"),
        "used the mask upside down (averaged the padding)": (
            (x * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1), "True = a real token"),
        "divided by the batch size B, not by each row's number of real tokens": (
            (x * m).sum(1) / x.shape[0], "divide by mask.sum(dim=1), one count per row"),
        "divided by the real tokens of the whole batch, not of each row": (
            (x * m).sum(1) / m.sum(), "sum the mask over dim 1 only: one count per row"),
        "returned the masked sum, not the mean": ((x * m).sum(1), "divide by the number of real tokens"),
    }  # fmt: skip
    try:
        got = fn(x.clone(), mask.clone())
    except RuntimeError as err:
        if "must match the size" not in str(err):
            raise
        return _broadcast_failure(name, str(err), *x.shape)
    if got is None:
        return failed(name, "returned None: did you forget `return`?", "return the (B, d) means")
    if isinstance(got, torch.Tensor) and got.dtype != x.dtype:
        return failed(name, f"float32 in, {got.dtype} out", "keep x's dtype: convert the mask "
                      "with mask.to(x.dtype), not .double()")  # fmt: skip
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return failed(name, f"x (B, T, d) = (3, 5, 4) gave {shape}, expected (3, 4)",
                      "sum over dim 1, the tokens; the mask needs a last axis to meet x: "
                      "mask.unsqueeze(-1) is (B, T, 1)")  # fmt: skip
    if not _close(got, want):
        for verdict, (wrong, hint) in mistakes.items():
            if _close(got, wrong):
                return failed(name, verdict, hint)
        return failed(name, "not the mean of each row's real tokens",
                      "padded positions must add 0 to the sum and 0 to the count: print both for "
                      "one row and compare with its real tokens",
                      "(x · m).sum over tokens / m.sum over tokens, with m = mask (B, T, 1)")  # fmt: skip
    for dtype, label in ((torch.long, "an integer 0/1 mask, as tokenizers return it"),
                         (torch.float32, "a float 0/1 mask")):  # fmt: skip
        x, mask = _pooling_case(dtype)
        try:
            got = fn(x.clone(), mask.clone())
        except RuntimeError as err:
            got = str(err).splitlines()[0]
        if not isinstance(got, torch.Tensor) or not _close(got, want):
            crash = f" (it raised: {got})" if isinstance(got, str) else ""
            return failed(name, f"right with a boolean mask, wrong with {label}{crash}",
                          "an integer mask is not a boolean one: ~mask flips bits (~1 = -2) and "
                          "x[mask] picks rows 0 and 1 by number; convert it first, with mask.bool() "
                          "or mask.to(x.dtype)")  # fmt: skip
    empty = fn(torch.ones(2, 3, 4), torch.tensor([[True, True, False], [False, False, False]]))
    if not torch.isfinite(empty).all():
        return failed(name, "a row with no real token gives nan (0 / 0)",
                      "clamp the count of real tokens at 1: mask.sum(1).clamp(min=1)")  # fmt: skip
    x, mask = _pooling_case(torch.bool)
    try:
        half = fn(x.half(), mask)  # the statement: x's dtype back (float16: numpy has it too)
    except RuntimeError as err:  # einsum and matmul refuse a float32 mask with a float16 x
        half = f"raised: {str(err).splitlines()[0]}"
    if not isinstance(half, torch.Tensor) or half.dtype != torch.float16:
        said = f"comes back as {half.dtype}" if isinstance(half, torch.Tensor) else half
        return failed(name, f"right in float32, but with a float16 x it {said}",
                      "keep x's dtype: convert the mask with mask.to(x.dtype), not .float()")  # fmt: skip
    if loop := find_loop(fn):
        return failed(name, f"right values, but {loop}", "no loops: multiply by the (B, T, 1) mask, "
                      "sum over dim 1 and divide by the count, all rows at once")  # fmt: skip
    return passed(name, "the mean over real tokens only, for boolean, integer and float masks, in "
                  "x's dtype; padding does not dilute it")  # fmt: skip


def _broadcast_failure(name: str, error: str, batch: int, tokens: int, dim: int) -> CheckResult:
    """Which two shapes failed to meet, from torch's "The size of tensor a (4) must match the size
    of tensor b (5)": the check's B, T and d all differ, so the sizes name the operands."""
    sizes = {int(n) for n in re.findall(r"tensor [ab] \((\d+)\)", error)}
    if sizes == {batch, dim}:
        return failed(name, "a (B, d) sum divided by a (B,) count does not broadcast",
                      "keep the count's last axis: mask.sum(1, keepdim=True) is (B, 1), or sum "
                      "the (B, T, 1) mask you multiplied by")  # fmt: skip
    return failed(name, "x (B, T, d) times mask (B, T) does not broadcast",
                  "the mask needs a last axis to meet x: mask.unsqueeze(-1) is (B, T, 1)")  # fmt: skip
