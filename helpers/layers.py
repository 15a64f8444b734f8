"""Transformer layers from scratch: self-attention, multi-head attention, LayerNorm and a block.

Every layer has a teaching path (the formula, written out) and a fast path (PyTorch's fused kernels:
``F.scaled_dot_product_attention``, ``F.layer_norm``) behind one switch, ``fast``. Both compute the same
thing; ``tests/test_layers.py`` checks that they agree.

Shapes: B batch, T tokens, d embedding, h heads, hs = d / h head size.
A padding ``mask`` is (B, T) and boolean: True for real tokens, False for padding.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def check_inputs(x: torch.Tensor, mask: torch.Tensor | None, embed_dim: int) -> None:
    """Raise a ValueError that says what is wrong with ``x`` (B, T, d) or ``mask`` (B, T)."""
    if x.dim() != 3 or x.shape[-1] != embed_dim:
        raise ValueError(
            f"x has shape {tuple(x.shape)}; expected (B, T, {embed_dim}): a batch of B sequences of "
            f"T tokens, each a vector of embed_dim={embed_dim} numbers"
        )
    if mask is None:
        return
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)} but x has {x.shape[0]} sequences of {x.shape[1]} "
            f"tokens; the mask needs one entry per token: shape {tuple(x.shape[:2])}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask has dtype {mask.dtype}; use a boolean mask (True = real token): mask.bool()"
        )
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"sequences {empty} of the batch are all padding (mask all False); every sequence needs at "
            "least one real token, or its attention weights are 0/0"
        )


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    fast: bool = False,
) -> torch.Tensor:
    """softmax(q kᵀ / √hs) v over (..., T, hs) tensors, ignoring padded keys (and future keys if causal)."""
    T, hs = q.shape[-2], q.shape[-1]
    allowed = None  # (B, 1, .., T) or (T, T) or their combination, broadcast against the (..., T, T) scores
    if mask is not None:
        allowed = mask.view(
            mask.shape[0], *([1] * (q.dim() - 2)), T
        )  # key mask: (B, 1, T) or (B, 1, 1, T)
    if causal:
        lower = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()  # (T, T): j <= i
        allowed = lower if allowed is None else allowed & lower
    if fast:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (..., T, T)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))  # zero weight after the softmax
    weights = torch.softmax(scores, dim=-1)  # (..., T, T), each row sums to 1
    return weights @ v  # (..., T, hs)


class SelfAttention(nn.Module):
    """Single-head self-attention: softmax(Q Kᵀ / √d) V with Q, K, V linear maps of x."""

    def __init__(self, embed_dim: int, fast: bool = False):
        super().__init__()
        self.embed_dim, self.fast = embed_dim, fast
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.embed_dim)
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, d) each
        return attend(q, k, v, mask, fast=self.fast)  # (B, T, d)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, d) -> (B, h, T, d/h): each head gets its own slice of the features."""
    B, T, d = x.shape
    return x.view(B, T, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, T, hs) -> (B, T, h·hs): the heads' outputs side by side."""
    B, h, T, hs = x.shape
    return x.transpose(1, 2).reshape(B, T, h * hs)


class MultiHeadAttention(nn.Module):
    """h heads of self-attention over d/h-dimensional slices, then an output projection."""

    def __init__(self, embed_dim: int, num_heads: int, fast: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.fast = embed_dim, num_heads, fast
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        check_inputs(x, mask, self.embed_dim)
        q, k, v = (
            split_heads(f(x), self.num_heads) for f in (self.query, self.key, self.value)
        )  # (B, h, T, hs)
        y = attend(q, k, v, mask, causal=causal, fast=self.fast)  # (B, h, T, hs)
        return self.out(merge_heads(y))  # (B, T, d)


def to_torch_multihead(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """An ``nn.MultiheadAttention`` holding the same weights as ``mha`` (to check one against the other)."""
    theirs = nn.MultiheadAttention(mha.embed_dim, mha.num_heads, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([mha.query.weight, mha.key.weight, mha.value.weight]))
        theirs.in_proj_bias.copy_(torch.cat([mha.query.bias, mha.key.bias, mha.value.bias]))
        theirs.out_proj.weight.copy_(mha.out.weight)
        theirs.out_proj.bias.copy_(mha.out.bias)
    return theirs


class LayerNorm(nn.Module):
    """Normalise over the last len(normalized_shape) dimensions, then scale by γ and shift by β."""

    def __init__(
        self, normalized_shape: int | tuple[int, ...], eps: float = 1e-8, fast: bool = False
    ):
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        self.normalized_shape, self.eps, self.fast = shape, eps, fast
        self.weight = nn.Parameter(torch.ones(shape))  # γ
        self.bias = nn.Parameter(torch.zeros(shape))  # β

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-len(self.normalized_shape) :]) != self.normalized_shape:
            raise ValueError(
                f"x has shape {tuple(x.shape)}, but this LayerNorm normalises trailing dimensions "
                f"{self.normalized_shape}; its last dimensions must match"
            )
        if self.fast:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        dims = tuple(range(-len(self.normalized_shape), 0))
        var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)  # biased: divide by N
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class Block(nn.Module):
    """A pre-LN transformer block: x + attention(LN(x)), then x + MLP(LN(x)).

    ``fast=False`` builds it from this module's from-scratch layers; ``fast=True`` from ``nn.LayerNorm``
    and SDPA. With the same weights both compute the same function.
    """

    def __init__(self, embed_dim: int, num_heads: int, mlp_ratio: int = 4, fast: bool = False):
        super().__init__()
        norm = nn.LayerNorm if fast else LayerNorm
        self.ln1, self.ln2 = norm(embed_dim, eps=1e-5), norm(embed_dim, eps=1e-5)
        self.attn = MultiHeadAttention(embed_dim, num_heads, fast=fast)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, mlp_ratio * embed_dim),
            nn.GELU(),
            nn.Linear(mlp_ratio * embed_dim, embed_dim),
        )

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, causal)  # (B, T, d)
        return x + self.mlp(self.ln2(x))  # (B, T, d)
