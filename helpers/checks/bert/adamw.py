"""Notebook 05, exercise 5: one AdamW update, written out, against each named mistake."""

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from helpers.checks.code import _close
from helpers.feedback import CheckResult, failed, passed, run_check

ADAMW = dict(lr=0.05, betas=(0.9, 0.99), eps=0.1, weight_decay=0.5)
STEPS = 12


def _problem(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Start values of two parameters and the fixed 'gradients' of each step (from a linear model)."""
    g = torch.Generator().manual_seed(seed)
    start = [torch.randn(3, 4, generator=g), torch.randn(4, generator=g)]
    inputs = [torch.randn(5, 4, generator=g) for _ in range(STEPS)]
    return start, inputs


def _loss(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    w, b = params
    return ((x @ w.T).tanh().sum(-1) + (x * b).sum(-1)).pow(2).mean()


def _trajectory(
    make_optimizer: Callable, seed: int = 0, steps: int | None = None
) -> list[torch.Tensor]:
    start, inputs = _problem(seed)
    params = [nn.Parameter(p.clone()) for p in start]
    idle = nn.Parameter(torch.ones(2))  # never gets a gradient: a step must leave it alone
    opt = make_optimizer([{"params": params}, {"params": [idle]}])
    for x in inputs[:steps]:
        opt.zero_grad()
        _loss(params, x).backward()
        opt.step()
    return [p.detach().clone() for p in (*params, idle)]


def _variant(mistake: str) -> Callable:
    """An AdamW with one known mistake, as an optimizer class for ``_trajectory``."""

    class Variant(torch.optim.Optimizer):
        def __init__(
            self,
            params: list[dict],
            lr: float,
            betas: tuple[float, float],
            eps: float,
            weight_decay: float,
        ) -> None:
            super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

        @torch.no_grad()
        def step(self) -> None:
            for group in self.param_groups:
                (b1, b2), lr, eps, wd = (
                    group["betas"],
                    group["lr"],
                    group["eps"],
                    group["weight_decay"],
                )
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    s = self.state[p]
                    if not s:
                        s.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                    s["t"] += 1
                    g = p.grad + wd * p if mistake == "l2" else p.grad
                    c1, c2 = (b2, b1) if mistake == "betas swapped" else (b1, b2)
                    m = c1 * s["m"] + (1 - c1) * g
                    v = c2 * s["v"] + (1 - c2) * (g if mistake == "v of g" else g * g)
                    if mistake != "not stored":  # the running means live in the state
                        s["m"], s["v"] = m, v
                    t = s["t"] + 1 if mistake == "t from 2" else s["t"]
                    if mistake not in ("no correction", "efficient", "efficient, decay after"):
                        m, v = m / (1 - c1**t), v / (1 - c2**t)
                    if mistake == "m only":
                        v = s["v"]
                    if mistake == "v only":
                        m = s["m"]
                    if mistake == "corrected in place":  # the state keeps the corrected values
                        s["m"], s["v"] = m, v
                    if mistake == "eps inside":
                        step = m / (v + eps).sqrt()
                    elif mistake == "no sqrt":
                        step = m / (v + eps)
                    elif mistake == "eps after division":
                        step = m / v.sqrt() + eps
                    else:
                        step = m / (v.sqrt() + eps)
                    if mistake.startswith("efficient"):  # α·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε)
                        step = math.sqrt(1 - b2**t) / (1 - b1**t) * step
                    if mistake == "decay without lr":
                        p.mul_(1 - wd)
                    elif mistake not in ("l2", "no decay", "decay after", "efficient, decay after"):
                        p.mul_(1 - lr * wd)
                    p.sub_(lr * step)
                    if mistake in ("decay after", "efficient, decay after"):
                        p.mul_(1 - lr * wd)

    return lambda groups: Variant(groups, **ADAMW)


EFFICIENT = (
    "you folded the bias correction into the step size, α·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε), the Adam "
    "paper's 'efficient' form: it adds ε to √v, not to √v̂, as if ε were 1/√(1-β2ᵗ) times larger (10× "
    "at t = 1 here). With ε = 1e-8 that changes nothing, but this check's ε = 0.1 shows it: divide m̂ "
    "by √v̂ + ε, as the formula above and torch.optim.AdamW do"
)

ADAMW_MISTAKES = {
    "no correction": "no bias correction: m and v start at 0, so early steps are too small; divide by "
    "(1 - β1ᵗ) and (1 - β2ᵗ), t counting steps from 1",
    "m only": "only m is bias-corrected: v̂ = v / (1 - β2ᵗ) too",
    "l2": "the weight decay is added to the gradient (L2, as in Adam): AdamW decays the weights "
    "directly, θ ← θ - α·λ·θ, apart from the adaptive step",
    "decay without lr": "the weight decay is not scaled by the learning rate: θ ← θ - α·λ·θ",
    "decay after": "the weights are decayed after the Adam update: decay θ first (as torch does), "
    "then take the step",
    "no decay": "there is no weight decay: θ ← θ - α·λ·θ each step",
    "eps inside": "ε is inside the square root: divide by √v̂ + ε",
    "eps after division": "ε is added after the division, m̂ / √v̂ + ε: it belongs in the denominator, "
    "m̂ / (√v̂ + ε), brackets included",
    "no sqrt": "the denominator is v̂ + ε: take the square root of v̂, m̂ / (√v̂ + ε)",
    "v only": "only v is bias-corrected: m̂ = m / (1 - β1ᵗ) too",
    "corrected in place": "the bias-corrected m̂ and v̂ were stored back as m and v: keep the running "
    "means in the state and compute m̂ = m / (1 - β1ᵗ), v̂ = v / (1 - β2ᵗ) as new tensors each step",
    "betas swapped": "β1 and β2 are swapped: m (the mean of g) decays with β1, v (the mean of g²) with β2",
    "t from 2": "the bias correction is one step ahead: t must be 1 at the first step (a step "
    "count that starts at 1 and is then increased before correcting is 2 there)",
    "not stored": "m and v are computed but never stored back in the parameter's state: each step "
    "starts again from zeros; keep the running means in the state (state['m'] = …, or update them "
    "in place with mul_ and add_) so the next step continues them",
    "efficient": EFFICIENT,
    "efficient, decay after": EFFICIENT + "; and decay θ before the step, not after it (minBERT's "
    "handout decays after; torch.optim.AdamW, the reference here, decays first)",
}


def check_adamw(cls: type) -> CheckResult:
    """``cls(params, lr, betas, eps, weight_decay)``, a torch.optim.Optimizer whose ``step()`` is AdamW's,
    compared with ``torch.optim.AdamW`` over 12 steps (minBERT's ``optimizer_test.py``)."""
    name = "AdamW"
    return run_check(name, lambda: _adamw(name, cls))


def _adamw(name: str, cls: type) -> CheckResult:
    want = _trajectory(lambda groups: torch.optim.AdamW(groups, **ADAMW))
    got = _trajectory(lambda groups: cls(groups, **ADAMW))
    if not torch.equal(got[-1], want[-1]):
        return failed(name, "a parameter without a gradient changed",
                      "skip parameters whose .grad is None (frozen layers, an unused head)")  # fmt: skip
    if all(_close(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(got, want)):
        return passed(name, f"equal to torch.optim.AdamW after {STEPS} steps (lr {ADAMW['lr']}, betas "
                      f"{ADAMW['betas']}, eps {ADAMW['eps']}, weight decay {ADAMW['weight_decay']})")  # fmt: skip
    where = f"after {STEPS} steps the weights differ from torch.optim.AdamW's"
    start, _ = _problem()
    if all(torch.equal(a, b) for a, b in zip(got, start)):
        return failed(name, f"after {STEPS} steps the weights have not changed at all",
                      "update p in place: p.mul_(…), p.sub_(…) or p -= …; `p = p - …` makes a new tensor "
                      "and only rebinds the local name p")  # fmt: skip
    if any(not torch.isfinite(p).all() for p in got):
        # after one step, a v of g (not g²) is NaN only where g < 0; a t from 0 is inf everywhere
        first = [
            ~torch.isfinite(p) for p in _trajectory(lambda groups: cls(groups, **ADAMW), steps=1)
        ]
        v_of_g = [~torch.isfinite(p) for p in _trajectory(_variant("v of g"), steps=1)]
        if any(a.any() for a in first) and all(torch.equal(a, b) for a, b in zip(first, v_of_g)):
            return failed(name, f"{where}: some hold NaN, where v went below 0",
                          "v is the running mean of g², never negative: with g in its place it can "
                          "go below 0, and √v is NaN there (g * g, or g**2)")  # fmt: skip
        return failed(name, f"{where}: they hold inf or NaN",
                      "where can inf or NaN come from: a division by 0, or the square root of a "
                      "negative number?", "t counts steps from 1: at t = 0, 1 - β1⁰ = 0 and the bias "
                      "correction divides by 0; and v, the mean of g², is never negative")  # fmt: skip
    for mistake, hint in ADAMW_MISTAKES.items():
        if all(
            _close(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(got, _trajectory(_variant(mistake)))
        ):
            return failed(name, where, hint)
    return failed(name, where,
                  "per parameter: m and v running means of g and g², bias-corrected, decoupled decay",
                  "p.mul_(1 - lr·λ); then p -= lr · m̂ / (√v̂ + ε), m̂ = m/(1-β1ᵗ), v̂ = v/(1-β2ᵗ)")  # fmt: skip
