"""AdamW written out (notebook 05), step for step what ``torch.optim.AdamW`` computes.

For each parameter θ with gradient g, at step t (from 1), with rate α:

    m ← β1·m + (1 − β1)·g          running mean of the gradient
    v ← β2·v + (1 − β2)·g²         running mean of its square
    m̂ = m / (1 − β1ᵗ),  v̂ = v / (1 − β2ᵗ)      bias correction: both start at 0
    θ ← θ − α·λ·θ                  decoupled weight decay (not added to g, as L2 in Adam would)
    θ ← θ − α·m̂ / (√v̂ + ε)

The decay is torch's form, scaled by the rate α; the paper's Algorithm 2 subtracts η_t·λ·θ, with
η_t the schedule's multiplier, to keep the decay apart from the rate.
"""

from collections.abc import Callable, Iterable
from typing import Any

import torch


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019)."""

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:  # fmt: skip
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(
                f"AdamW needs lr > 0, eps > 0, weight_decay >= 0 and betas in [0, 1); got lr={lr}, "
                f"betas={betas}, eps={eps}, weight_decay={weight_decay}"
            )
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():  # the closure's loss.backward() needs a graph
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"], state["m"], state["v"] = (
                        0,
                        torch.zeros_like(p),
                        torch.zeros_like(p),
                    )
                state["step"] += 1
                t, m, v, g = state["step"], state["m"], state["v"], p.grad
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
        return loss
