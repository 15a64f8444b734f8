"""Loop-by-loop reference implementations: slow, but each line is one step of the formula.

A student writes these first, as a tester for the vectorised versions; the checkers compare against them.
"""

import math

import torch


def loop_self_attention(
    query: torch.nn.Linear,
    key: torch.nn.Linear,
    value: torch.nn.Linear,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Self-attention one sequence, one query token and one key token at a time. x (B, T, d)."""
    B, T, d = x.shape
    out = torch.zeros_like(x)
    for b in range(B):
        real = [j for j in range(T) if mask is None or mask[b, j]]  # keys that may be attended to
        for i in range(T):
            q = query(x[b, i])  # (d,)
            scores = torch.stack([q @ key(x[b, j]) / math.sqrt(d) for j in real])  # (n_real,)
            weights = torch.exp(scores - scores.max())
            weights = weights / weights.sum()
            for w, j in zip(weights, real):
                out[b, i] += w * value(x[b, j])
    return out


def loop_layer_norm(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...],
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """LayerNorm over the trailing ``normalized_shape`` dims, one group of numbers at a time."""
    n = len(normalized_shape)
    groups = x.reshape(-1, math.prod(normalized_shape))  # (number of groups, N)
    out = torch.empty_like(groups)
    for g, row in enumerate(groups):
        mean = sum(row.tolist()) / len(row)
        var = sum((value - mean) ** 2 for value in row.tolist()) / len(row)  # biased: divide by N
        out[g] = (row - mean) / math.sqrt(var + eps)
    return out.reshape(x.shape) * weight.reshape(x.shape[-n:]) + bias.reshape(x.shape[-n:])
