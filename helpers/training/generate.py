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
) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``steps`` tokens. ``model(idx)`` returns logits (B, T, vocab); the
    context is cropped to the last ``block_size`` tokens. Temperature 0 takes the most likely token."""
    if steps < 0 or block_size < 1:
        raise ValueError(f"steps must be ≥ 0 and block_size ≥ 1, not {steps} and {block_size}")
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, not {temperature}")
    was_training = model.training
    model.eval()
    for _ in range(steps):
        logits = model(idx[:, -block_size:])[:, -1, :]  # (B, vocab): the next token's scores
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device)  # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)  # (B, T + 1)
    model.train(was_training)
    return idx
