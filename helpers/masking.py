"""The masking lesson: -inf before the softmax versus zeros after it.

Zeroing weights after the softmax leaves the softmax's denominator summing over the masked keys, so
(1) the kept weights no longer sum to one, and (2) with a causal mask, every output depends on future
tokens through that denominator: a language model trained this way can read the answer and reports a
loss that is too good to be true.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from helpers.layers import merge_heads, split_heads

STYLES = ("-inf before softmax", "zeros after softmax")


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor, style: str) -> torch.Tensor:
    """Attention weights from ``scores`` (..., T, T), keeping only ``allowed`` keys, masked the ``style`` way."""
    if style == STYLES[0]:
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    if style == STYLES[1]:
        return (
            torch.softmax(scores, dim=-1) * allowed
        )  # the bug: the denominator still sums over all keys
    raise ValueError(f"style must be one of {STYLES}, not {style!r}")


def causal_mask(T: int) -> torch.Tensor:
    """(T, T) boolean: query i may see keys j <= i."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def future_influence(style: str, T: int = 8, d: int = 16, seed: int = 42) -> torch.Tensor:
    """How much each position's output changes when only the last token changes: (T,). Zero = no leak."""
    g = torch.Generator().manual_seed(seed)
    q_proj, k_proj, v_proj = (torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(3))
    x = torch.randn(T, d, generator=g)
    changed = x.clone()
    changed[-1] = torch.randn(d, generator=g)  # only the future (the last token) differs

    def outputs(inp: torch.Tensor) -> torch.Tensor:
        scores = (inp @ q_proj) @ (inp @ k_proj).T / math.sqrt(d)  # (T, T)
        return masked_softmax(scores, causal_mask(T), style) @ (inp @ v_proj)  # (T, d)

    return (outputs(changed) - outputs(x)).norm(dim=-1)


class CharLM(nn.Module):
    """A one-block causal character model whose attention masks the future in the given ``style``."""

    def __init__(
        self, vocab_size: int, block_size: int, embed_dim: int, num_heads: int, style: str
    ):
        super().__init__()
        self.style, self.num_heads = style, num_heads
        self.tok = nn.Embedding(vocab_size, embed_dim)
        self.pos = nn.Embedding(block_size, embed_dim)
        self.ln1, self.ln2, self.ln_f = (nn.LayerNorm(embed_dim) for _ in range(3))
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, 4 * embed_dim), nn.GELU(), nn.Linear(4 * embed_dim, embed_dim)
        )
        self.head = nn.Linear(embed_dim, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, d)
        q, k, v = (
            split_heads(t, self.num_heads) for t in self.qkv(self.ln1(x)).chunk(3, dim=-1)
        )  # (B, h, T, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, T)
        weights = masked_softmax(scores, causal_mask(T).to(idx.device), self.style)
        x = x + self.proj(merge_heads(weights @ v))
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln_f(x))  # (B, T, vocab)


def train_char_lm(
    text: str,
    style: str,
    steps: int,
    block_size: int = 32,
    embed_dim: int = 64,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 42,
    device: str | torch.device = "cpu",
) -> dict[str, list[float]]:
    """Train a CharLM on the first 90% of ``text``; return its train and validation losses (nats/char)."""
    chars = sorted(set(text))
    if len(text) < 10 * block_size:
        raise ValueError(f"the text has {len(text)} characters; give at least {10 * block_size}")
    data = torch.tensor([chars.index(c) for c in text])
    split = int(0.9 * len(data))
    torch.manual_seed(seed)
    model = CharLM(len(chars), block_size, embed_dim, 4, style).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)

    def batch(part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(part) - block_size - 1, (batch_size,), generator=g)
        x = torch.stack([part[s : s + block_size] for s in starts])  # (B, T)
        y = torch.stack(
            [part[s + 1 : s + block_size + 1] for s in starts]
        )  # (B, T): the next characters
        return x.to(device), y.to(device)

    def loss_on(part: torch.Tensor) -> torch.Tensor:
        x, y = batch(part)
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    history: dict[str, list[float]] = {"step": [], "train": [], "valid": []}
    every = max(1, steps // 20)
    for step in tqdm(range(1, steps + 1), desc=style, leave=False):
        loss = loss_on(data[:split])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            with torch.no_grad():
                model.eval()
                valid = sum(loss_on(data[split:]).item() for _ in range(4)) / 4
                model.train()
            history["step"].append(step)
            history["train"].append(loss.item())
            history["valid"].append(valid)
    return history
