"""Notebook 02's LayerNorm checker: the student's class against ``F.layer_norm`` on inputs built to
expose each classic mistake (N - 1, normalising over tokens or the batch, eps outside the root, ...)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.checks.code import _close, find_loop, guarded
from helpers.env import seeded
from helpers.feedback import (
    CheckResult,
    failed,
    passed,
    run_check,
)
from helpers.loops import loop_layer_norm


def check_layer_norm(cls: type) -> CheckResult:
    """``cls(normalized_shape, eps=1e-8)`` with the contract of ``nn.LayerNorm``."""
    name = "LayerNorm"
    with seeded(0):
        return run_check(name, lambda: _layer_norm(name, cls))


def _build(cls: type, shape, eps: float) -> nn.Module:
    m = guarded(cls(shape, eps=eps))
    with torch.no_grad():  # random γ and β, so forgetting either shows
        for attr in ("weight", "bias"):
            if isinstance(getattr(m, attr, None), torch.Tensor):
                getattr(m, attr).copy_(torch.randn_like(getattr(m, attr)))
    return m


def _norm_mistakes(
    m: nn.Module, x: torch.Tensor, shape: tuple[int, ...], eps: float
) -> dict[str, torch.Tensor]:
    """What each known LayerNorm mistake would output, with the student's own γ and β."""
    dims = tuple(range(-len(shape), 0))
    w, b = m.weight, m.bias
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=0)
    centred = x - mean
    last = F.layer_norm(x, shape[-1:], None, None, eps)
    rms2 = (x**2).mean(dim=dims, keepdim=True)  # the mean square of x itself, not of x - mean
    over_tokens = (x - x.mean(1, keepdim=True)) / torch.sqrt(
        x.var(1, keepdim=True, correction=0) + eps
    )
    batch = (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, keepdim=True, correction=0) + eps)
    return {
        "unbiased variance: LayerNorm divides by N, not N - 1 (correction=0 or unbiased=False)": centred
        / torch.sqrt(x.var(dim=dims, keepdim=True, correction=1) + eps)
        * w
        + b,
        "ε is outside the square root: use (x - mean) / sqrt(var + eps)": centred
        / (torch.sqrt(var) + eps)
        * w
        + b,
        "ε is ignored or hard-coded: use the eps passed to __init__ (self.eps)": centred
        / torch.sqrt(var)
        * w
        + b,
        "γ (self.weight) is not applied: multiply by it after normalising": centred
        / torch.sqrt(var + eps)
        + b,
        "β (self.bias) is not applied: add it after scaling": centred / torch.sqrt(var + eps) * w,
        "γ and β are not applied: scale by self.weight and shift by self.bias": centred
        / torch.sqrt(var + eps),
        f"you normalised over the last dimension only; normalise over all of normalized_shape = {shape}, "
        f"the last {len(shape)} dimensions": last * w + b,
        "you normalised across the batch (dim 0); normalise each example over its last dimensions": batch
        * w
        + b,
        "you divided by the variance; divide by the standard deviation, sqrt(var + eps)": centred
        / (var + eps)
        * w
        + b,
        "x is not centred: subtract the mean before dividing by the standard deviation": x
        / torch.sqrt(var + eps)
        * w
        + b,
        "you divided by the root mean square of x, not of x - mean: the variance is the mean of "
        "(x - mean)²": centred / torch.sqrt(rms2 + eps) * w + b,
        "that is RMSNorm (nothing subtracted): LayerNorm subtracts the mean first": x
        / torch.sqrt(rms2 + eps)
        * w
        + b,
        "γ and β are swapped: scale by self.weight (γ), shift by self.bias (β)": centred
        / torch.sqrt(var + eps)
        * b
        + w,
        "β is added before scaling by γ: scale first, then shift": (
            centred / torch.sqrt(var + eps) + b
        )
        * w,
        "you divided by the mean absolute deviation; LayerNorm divides by the standard deviation": centred
        / (centred.abs().mean(dim=dims, keepdim=True) + eps)
        * w
        + b,
        "you normalised over the tokens (dim 1) for each feature; normalise each token over its "
        "features": over_tokens * w + b,
    }


def _layer_norm(name: str, cls: type) -> CheckResult:
    torch.manual_seed(0)
    try:
        cls(8, eps=1e-5)
    except TypeError as err:
        return failed(
            name,
            f"cls(8, eps=1e-5) fails: {err}",
            "the signature is __init__(self, normalized_shape, eps=1e-8)",
        )
    for shape in ((8,), (4, 8)):
        m = _build(cls, shape if len(shape) > 1 else shape[0], 1e-5)
        for attr, label in (("weight", "γ (self.weight)"), ("bias", "β (self.bias)")):
            p = getattr(m, attr, None)
            if (
                isinstance(p, torch.Tensor)
                and tuple(p.shape) == shape
                and not isinstance(p, nn.Parameter)
            ):
                return failed(
                    name,
                    f"{label} has the right shape {shape} but is a plain tensor, so it is not learned",
                    "wrap it in nn.Parameter(...): the optimiser only sees a module's parameters",
                )
            if not isinstance(p, nn.Parameter) or tuple(p.shape) != shape:
                got = "missing" if p is None else f"shape {tuple(p.shape)}"
                return failed(
                    name,
                    f"{label} is {got} for normalized_shape={shape}",
                    f"make it nn.Parameter of shape normalized_shape = {shape}, so it is learned and "
                    "has one entry per normalised element",
                )
    if loop := find_loop(cls):
        return failed(
            name,
            loop,
            "normalise with tensor ops: x.mean(dim=..., keepdim=True) over a tuple of the last "
            "len(normalized_shape) dimensions",
        )
    with torch.no_grad():
        for shape, eps in (((8,), 1e-5), ((4, 8), 1e-5), ((8,), 0.1), ((4, 8), 0.3)):
            m = _build(cls, shape if len(shape) > 1 else shape[0], eps)
            x = 2 * torch.randn(3, 4, 8) + 1
            want = F.layer_norm(x, shape, m.weight, m.bias, eps)
            got = m(x)
            if shape == (4, 8) and eps == 1e-5:
                want_loop = loop_layer_norm(x, shape, m.weight, m.bias, eps)
                assert _close(want, want_loop), "helpers' loop reference disagrees with torch"
            if not _close(got, want):
                where = f"normalized_shape={shape}, eps={eps}"
                for hint, output in _norm_mistakes(m, x, shape, eps).items():
                    if _close(got, output):
                        return failed(name, f"wrong output for {where}", hint)
                return failed(
                    name,
                    f"wrong output for {where}",
                    "compare with torch's nn.LayerNorm(normalized_shape, eps=eps) on one example: "
                    "which of the mean, the variance, eps or the affine step differs?",
                )
            other = x.clone()
            other[1:] = 5 * torch.randn_like(other[1:])
            if not _close(m(other)[0], got[0]):
                return failed(
                    name,
                    "example 0's output changed when only the other examples did",
                    "normalise each example over its own last dimensions, never across the batch",
                )
        m = _build(cls, 8, 1e-5)
        x = torch.randn(3, 4, 8) + 1e4  # a large mean: float32 keeps only ~3 digits of x²
        got = m(x)
        if not torch.isfinite(got).all() or not _close(
            got, F.layer_norm(x, (8,), m.weight, m.bias, 1e-5), atol=2e-2
        ):
            return failed(
                name,
                "wrong when the inputs have a large mean (1e4): precision is lost",
                "E[x²] - E[x]² subtracts two huge, nearly equal numbers; compute the mean first, then "
                "the mean of (x - mean)² (or torch.var_mean)",
            )
    return passed(
        name,
        "matches nn.LayerNorm and the loop reference for per-token and per-sentence shapes, several ε, "
        "random γ and β, and inputs with a large mean",
    )
