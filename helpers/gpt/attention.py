"""Causal self-attention for the small GPT (notebook 07), its variants behind one switch.

- ``variant``: ``dot`` (scaled dot-product), ``additive`` (Bahdanau: a learnt MLP scores each pair),
  ``shared-qk`` (the keys are the queries: K = Q) or ``shared-qkv`` (Q = K = V: one projection).
- ``mask``: ``inf`` (future scores set to -inf before the softmax: the right way) or ``zero`` (the
  softmax over every key, then the future weights zeroed: the leak of notebook 02).

Shapes: B batch, T tokens, d embedding, h heads, hs = d / h head size, da the additive scorer's width.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.layers import check_inputs, merge_heads, split_heads

VARIANTS = ("dot", "additive", "shared-qk", "shared-qkv")
MASKS = ("inf", "zero")


def future(T: int, S: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """(T, S) boolean: True where a key is in a query's future. The T queries are the last T of the
    S positions (S = T without a KV cache): query i sits at position S - T + i."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).triu(S - T + 1)


@dataclass
class KVCache:
    """One layer's keys and values so far, each (B, h, S, hs): what a new token attends to."""

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None


def causal_softmax(scores: torch.Tensor, mask: str = "inf") -> torch.Tensor:
    """Attention weights from scores (..., T, S), each query seeing only keys at or before it."""
    if scores.dim() < 2 or scores.shape[-1] < scores.shape[-2]:  # (T,) would broadcast to (T, T)
        raise ValueError(f"scores must be (..., T, S) with S >= T (a query per row, a key per column), "
                         f"not {tuple(scores.shape)}")  # fmt: skip
    hidden = future(*scores.shape[-2:], device=scores.device)
    if mask == "inf":
        return torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
    if mask == "zero":  # the bug: the softmax's denominator still sums over the future keys
        return torch.softmax(scores, dim=-1).masked_fill(hidden, 0.0)
    raise ValueError(f"mask must be one of {', '.join(MASKS)}, not {mask!r}")


def additive_scores(
    q: torch.Tensor,
    k: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w2: torch.Tensor,
    past_only: bool = False,
) -> torch.Tensor:
    """score[i, j] = w2ᵀ tanh(W1 [q_i; k_j]) for every pair, per head: (B, h, T, S) for T queries
    and S keys (S = T, or more with a KV cache).

    W1 [q; k] = W1q q + W1k k, so each side is projected once, (B, h, T, da), and the pairs are formed
    by broadcasting: memory O(T² da), never the (T, T, 2 hs) concatenations. ``past_only`` scores only
    the pairs j <= i (half the work) and puts -inf on the future ones."""
    a = torch.einsum("bhtd,hde->bhte", q, w_q)  # (B, h, T, da): W1q q for each query
    b = torch.einsum("bhtd,hde->bhte", k, w_k)  # (B, h, T, da): W1k k for each key
    if not past_only:
        pairs = torch.tanh(a.unsqueeze(3) + b.unsqueeze(2))  # (B, h, T, T, da)
        return torch.einsum("bhije,he->bhij", pairs, w2)  # (B, h, T, T)
    T = q.shape[-2]
    # the P = T(T+1)/2 pairs with j <= i (made on the CPU: Apple's mps lacked tril_indices)
    i, j = torch.tril_indices(T, T).to(q.device)
    pairs = torch.tanh(a[:, :, i] + b[:, :, j])  # (B, h, P, da)
    scores = q.new_full((*q.shape[:2], T, T), float("-inf"))  # (B, h, T, T)
    scores[:, :, i, j] = torch.einsum("bhpe,he->bhp", pairs, w2)
    return scores


class CausalSelfAttention(nn.Module):
    """h heads of causal self-attention, then an output projection; ``variant`` and ``mask`` above.

    ``fast=True`` takes PyTorch's fused kernel (``scaled_dot_product_attention(is_causal=True)``) where
    it computes the same thing: dot-product scores masked with -inf, no weights asked for.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 1,
        variant: str = "dot",
        mask: str = "inf",
        dropout: float = 0.0,
        fast: bool = False,
        additive_dim: int | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}, not {mask!r}")
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}; choose a divisor"
            )
        self.embed_dim, self.num_heads, self.variant, self.mask = (
            embed_dim,
            num_heads,
            variant,
            mask,
        )
        self.dropout, self.fast = dropout, fast
        self.query = nn.Linear(embed_dim, embed_dim)
        if variant in ("dot", "additive"):
            self.key = nn.Linear(embed_dim, embed_dim)
        if variant != "shared-qkv":
            self.value = nn.Linear(embed_dim, embed_dim)
        if variant == "additive":
            hs, da = embed_dim // num_heads, additive_dim or embed_dim // num_heads
            # W1 = [W1q W1k]
            self.w_q = nn.Parameter(torch.randn(num_heads, hs, da) / math.sqrt(2 * hs))
            self.w_k = nn.Parameter(torch.randn(num_heads, hs, da) / math.sqrt(2 * hs))
            self.w2 = nn.Parameter(torch.randn(num_heads, da) / math.sqrt(da))
        self.out = nn.Linear(embed_dim, embed_dim)
        self.cache: KVCache | None = None  # set by GPT.kv_cache() while generating

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values, each (B, h, T, hs); shared projections give the same tensor."""
        q = split_heads(self.query(x), self.num_heads)
        k = split_heads(self.key(x), self.num_heads) if hasattr(self, "key") else q
        v = split_heads(self.value(x), self.num_heads) if hasattr(self, "value") else q
        return q, k, v

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, h, T, S): how well each query matches each key (additive with -inf masking scores only
        the past pairs and puts -inf on the future ones)."""
        if self.variant == "additive":
            past_only = self.mask == "inf" and q.shape[-2] == k.shape[-2]
            return additive_scores(q, k, self.w_q, self.w_k, self.w2, past_only)
        return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, h, T, T) attention weights on input ``x`` (B, T, d) (what the widget draws)."""
        q, k, _ = self.qkv(x)
        return causal_softmax(self.scores(q, k), self.mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, None, self.embed_dim)
        if mask is not None:
            raise ValueError(
                "a GPT's attention takes no padding mask: its batches are unpadded text"
            )
        q, k, v = self.qkv(x)  # (B, h, T, hs) each
        if self.cache is not None:  # generating: the keys and values of earlier tokens are kept
            if self.cache.k is not None:
                k, v = torch.cat([self.cache.k, k], dim=2), torch.cat([self.cache.v, v], dim=2)
            self.cache.k, self.cache.v = k, v  # (B, h, S, hs)
        p = self.dropout if self.training else 0.0
        T, S = q.shape[2], k.shape[2]
        if self.fast and self.variant != "additive" and self.mask == "inf":
            allowed = (
                None if S == T else ~future(T, S, q.device)
            )  # (T, S): new queries see the past
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, dropout_p=p, is_causal=S == T
            )
        else:
            w = causal_softmax(self.scores(q, k), self.mask)  # (B, h, T, S)
            y = F.dropout(w, p, training=p > 0) @ v  # (B, h, T, hs)
        return self.out(merge_heads(y))  # (B, T, d)
