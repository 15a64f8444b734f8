"""Sampling from a causal language model: one token at a time, each drawn from the model's
next-token distribution (the one sampler every notebook uses)."""

import torch
from torch import nn


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    steps: int,
    block_size: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    top_k: int | None = None,
) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``steps`` tokens. ``model(idx)`` returns logits (B, T, vocab); the
    context is cropped to the last ``block_size`` tokens. Temperature 0 takes the most likely token;
    ``top_k`` draws only among the k most likely."""
    if steps < 0 or block_size < 1:
        raise ValueError(f"steps must be ≥ 0 and block_size ≥ 1, not {steps} and {block_size}")
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, not {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be ≥ 1 (or None: every token), not {top_k}")
    was_training = model.training
    model.eval()
    for _ in range(steps):
        logits = model(idx[:, -block_size:])[:, -1, :]  # (B, vocab): the next token's scores
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            z = (
                logits.float() - logits.float().amax(-1, keepdim=True)
            ) / temperature  # max 0: no inf - inf
            if top_k is not None and top_k < z.shape[-1]:
                kth = z.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest score
                z = z.masked_fill(z < kth, float("-inf"))
            probs = torch.softmax(z, dim=-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device)  # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)  # (B, T + 1)
    model.train(was_training)
    return idx
