"""Sampling from a causal language model: one token at a time, each drawn from the model's
next-token distribution (the one sampler every notebook uses).

``next_token`` turns the last position's logits into the next token (greedy, temperature, top-k,
top-p); ``generate`` runs the loop, with or without a KV cache (a model that has ``kv_cache()``,
such as ``helpers.gpt.GPT``, then reads each new token once instead of the whole context again).
"""

import torch
from torch import nn


def next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """(B, vocab) scores -> (B, 1) token ids. Temperature 0 takes the most likely token (so does one
    too small for float32, below about 1e-45, which the logits could not be divided by); otherwise
    softmax(logits / temperature) restricted to the ``top_k`` most likely tokens and to the smallest
    set whose probability reaches ``top_p`` (the token that crosses it included), then one draw."""
    _check_sampling(temperature, top_k, top_p)  # called alone too (notebook 08 shows it)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, vocab), not of shape {tuple(logits.shape)}: for a "
                         "model's (B, T, vocab) output, take the last position, logits[:, -1, :]")  # fmt: skip
    if torch.tensor(temperature, dtype=torch.float32).item() == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    z = (
        logits.float() - logits.float().amax(-1, keepdim=True)
    ) / temperature  # max 0: no inf - inf
    probs = torch.softmax(filter_logits(z, top_k, top_p), dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).to(logits.device)  # (B, 1)


def filter_logits(
    z: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """(B, vocab) scores with -inf on every token outside the ``top_k`` most likely (tokens tied with
    the k-th kept too, as transformers does) and outside the smallest set whose probability reaches
    ``top_p`` (the token that crosses it included; among equal probabilities the lower ids first)."""
    if top_k is not None and top_k < z.shape[-1]:
        kth = z.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest score
        z = z.masked_fill(z < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        probs, order = torch.softmax(z, dim=-1).sort(
            dim=-1, descending=True, stable=True
        )  # (B, vocab)
        before = probs.cumsum(-1) - probs  # probability of the tokens ranked above each one
        drop = torch.zeros_like(z, dtype=torch.bool).scatter(-1, order, before >= top_p)
        z = z.masked_fill(drop, float("-inf"))
    return z


def _numbers(**values: object) -> None:
    for name, value in values.items():
        if isinstance(value, str):  # from a text box: "0.8" >= 0 fails with a TypeError about str
            raise TypeError(f"{name} must be a number, not the string {value!r}: float({value!r})")


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    _numbers(temperature=temperature, top_k=top_k, top_p=top_p)
    if not temperature >= 0:  # nan too
        raise ValueError(f"temperature must be a number ≥ 0, not {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be ≥ 1 (or None: every token), not {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (or None: every token), not {top_p}")


def _check(
    steps: int, block_size: int, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    _numbers(steps=steps, block_size=block_size)  # the sampling settings: _check_sampling's
    if steps < 0 or block_size < 1:
        raise ValueError(f"steps must be ≥ 0 and block_size ≥ 1, not {steps} and {block_size}")
    _check_sampling(temperature, top_k, top_p)


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    steps: int,
    block_size: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    cache: bool = False,
) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``steps`` tokens. ``model(idx)`` returns logits (B, T, vocab); the
    context is cropped to the last ``block_size`` tokens. ``cache=True`` keeps every layer's keys and
    values (``model.kv_cache()``) and feeds the model only the newest token; once the window is full it
    starts again from the last ``block_size`` tokens. Both give the same tokens."""
    _check(steps, block_size, temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    try:
        if not cache:
            for _ in range(steps):
                logits = model(idx[:, -block_size:])[:, -1, :]  # (B, vocab): next token's
                nxt = next_token(logits, temperature, generator, top_k, top_p)  # (B, 1)
                idx = torch.cat([idx, nxt], dim=1)
        elif steps:
            with model.kv_cache():
                context = idx[:, -block_size:]
                logits, start = model(context)[:, -1, :], context.shape[1]  # the prompt, once
                for step in range(steps):
                    nxt = next_token(logits, temperature, generator, top_k, top_p)  # (B, 1)
                    idx = torch.cat([idx, nxt], dim=1)  # (B, T + 1)
                    if step == steps - 1:
                        break
                    if start == block_size:  # the window is full: positions would run out
                        model.reset_cache()
                        context = idx[:, -block_size:]
                        logits = model(context)[:, -1, :]
                    else:
                        logits, start = model(nxt, start=start)[:, -1, :], start + 1
    finally:  # an error (a refused cache, an interrupt) leaves the model's mode as it was
        model.train(was_training)
    return idx
