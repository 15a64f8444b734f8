"""The masking lesson: -inf before the softmax versus zeros after it.

Zeroing weights after the softmax leaves the softmax's denominator summing over the masked keys, so
(1) the kept weights no longer sum to one, and (2) with a causal mask, every output depends on future
tokens through that denominator: a language model trained this way can read the answer and reports a
loss that is too good to be true.
"""

import math
import re

import torch
import torch.nn as nn

from helpers.corpora import windows
from helpers.env import current_seed, seeded
from helpers.layers import Block, MultiHeadAttention, allowed_keys, register_attention
from helpers.training import TrainConfig, fit, generate

STYLES = ("-inf before softmax", "zeros after softmax")


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor, style: str) -> torch.Tensor:
    """Attention weights from ``scores`` (..., T, T), keeping only ``allowed`` keys, masked the ``style`` way."""
    if style == STYLES[0]:
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    if style == STYLES[1]:
        # the bug: the denominator still sums over all keys
        return torch.softmax(scores, dim=-1) * allowed
    raise ValueError(f"style must be one of {STYLES}, not {style!r}")


def causal_mask(T: int) -> torch.Tensor:
    """(T, T) boolean: query i may see keys j <= i."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def future_influence(style: str, T: int = 8, d: int = 16, seed: int = 42) -> torch.Tensor:
    """How much each position's output changes when only the last token changes: (T,). Zero at every
    position before the last = no leak (the last position sees its own token change)."""
    g = torch.Generator().manual_seed(seed)
    q_proj, k_proj, v_proj = (torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(3))
    x = torch.randn(T, d, generator=g)
    changed = x.clone()
    changed[-1] = torch.randn(d, generator=g)  # only the future (the last token) differs

    def outputs(inp: torch.Tensor) -> torch.Tensor:
        scores = (inp @ q_proj) @ (inp @ k_proj).T / math.sqrt(d)  # (T, T)
        return masked_softmax(scores, causal_mask(T), style) @ (inp @ v_proj)  # (T, d)

    return (outputs(changed) - outputs(x)).norm(dim=-1)


@register_attention("zeros after softmax")
class ZerosAfterSoftmax(MultiHeadAttention):
    """Multi-head attention with the bug: the softmax runs over every key, then masked weights are zeroed."""

    def mix(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, T)
        allowed = allowed_keys(mask, self.causal, q.shape[-2], q.dim(), q.device)
        if allowed is None:  # nothing masked: nothing to zero
            return torch.softmax(scores, dim=-1) @ v  # (B, h, T, hs)
        return masked_softmax(scores, allowed, STYLES[1]) @ v  # (B, h, T, hs)


VARIANT = {STYLES[0]: "dot", STYLES[1]: "zeros after softmax"}  # style -> attention variant


class CharLM(nn.Module):
    """A causal character model (one block unless told) whose attention masks the future in the given
    ``style``; ``norm`` is "pre" (GPT-2) or "post" (BERT's add & norm)."""

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        embed_dim: int,
        num_heads: int,
        style: str,
        depth: int = 1,
        norm: str = "pre",
    ) -> None:
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {style!r}")
        self.tok = nn.Embedding(vocab_size, embed_dim)
        self.pos = nn.Embedding(block_size, embed_dim)
        self.blocks = nn.Sequential(
            *(
                Block(
                    embed_dim,
                    num_heads,
                    norm=norm,
                    causal=True,
                    attention=VARIANT[style],
                    fast=True,
                )
                for _ in range(depth)
            )
        )
        # pre-LN leaves the residual stream unnormalised, so it ends with a LayerNorm; post-LN's
        # stream is already normalised by its last block's add & norm
        self.ln_f = nn.LayerNorm(embed_dim) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(embed_dim, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))  # (B, T, d)
        return self.head(self.ln_f(self.blocks(x)))  # (B, T, vocab)


def train_char_lm(
    text: str,
    style: str,
    steps: int,
    block_size: int = 32,
    embed_dim: int = 64,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    depth: int = 1,
    norm: str = "pre",
    warmup: float = 0.0,
    clip: float | None = 1.0,
) -> dict:
    """Train a CharLM on the first 90% of ``text``; return its train and validation losses (nats/char)
    at 20 points along the way (the one training loop, ``helpers.training.fit``, does the work), the
    model, its characters and its context length (for ``sample_text``)."""
    need = 10 * (block_size + 1)  # the last 10% must fill a validation window and its target
    if len(text) < need:
        raise ValueError(f"the text has {len(text)} characters; give at least {need}")
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    split = int(0.9 * len(data))
    seed = current_seed() if seed is None else seed
    rounds = min(20, steps)  # evaluate this often
    per_round = [steps // rounds + (r < steps % rounds) for r in range(rounds)]
    config = TrainConfig(
        epochs=rounds, lr=lr, schedule="constant", warmup=warmup, clip=clip, seed=seed
    )
    with seeded(seed):
        model = CharLM(len(chars), block_size, embed_dim, 4, style, depth, norm)
        g = torch.Generator().manual_seed(seed)
        valid = windows(data[split:], 4, block_size, batch_size, g)
        history = fit(
            model,
            lambda r: windows(data[:split], per_round[r], block_size, batch_size, g),
            config,
            torch.device(device),
            eval_batches={"valid": valid},
            progress=progress,
            epoch_lines=False,  # 20 evaluation rounds, not epochs: the plot shows them
            total_steps=steps,  # rounds may differ by a step: the warm-up's share is of these
        )
    return {
        "step": [sum(per_round[:e]) for e in history["epoch"]],
        "train": history["train_loss"],
        "valid": history["valid_loss"],
        "model": model,
        "chars": chars,
        "block_size": block_size,
    }


def sample_text(
    run: dict, prompt: str, length: int, temperature: float = 1.0, seed: int = 0
) -> str:
    """``length`` characters that the model of ``run`` (from ``train_char_lm``) writes after
    ``prompt``, one at a time: the model sees only what it has written so far, as a language model
    must."""
    chars = run["chars"]
    unknown = sorted({c for c in prompt if c not in chars})
    if not prompt or unknown:
        raise ValueError(
            f"the prompt must be non-empty characters of the training text; {unknown} are not"
        )
    model = run["model"]
    device = next(model.parameters()).device
    idx = torch.tensor([[chars.index(c) for c in prompt]], device=device)  # (1, T)
    g = torch.Generator().manual_seed(seed)
    out = generate(model, idx, length, run["block_size"], temperature, g)[0, len(prompt) :]
    return "".join(chars[i] for i in out.tolist())


def real_word_share(sample: str, text: str) -> float:
    """The share of ``sample``'s words (runs of letters, any case) that occur in ``text``."""
    known = set(re.findall(r"[a-z]+", text.lower()))
    words = re.findall(r"[a-z]+", sample.lower())
    return sum(w in known for w in words) / len(words) if words else 0.0
