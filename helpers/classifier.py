"""A transformer sentence classifier built from notebook 02's modules, on GloVe vectors.

    token ids (B, T) -> GloVe embedding + positional encoding -> N blocks -> masked mean pooling -> logits (B, 2)

The blocks use helpers' self-attention and LayerNorm unless the caller passes its own: the notebook
switches in the student's ``MySelfAttention`` and ``MyLayerNorm`` with one argument.
"""

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from helpers.layers import LayerNorm, MultiHeadAttention, check_inputs


def sinusoidal_positions(max_len: int, dim: int) -> torch.Tensor:
    """The fixed positional encoding of "Attention is all you need": (max_len, dim)."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )  # (dim/2,)
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of x (B, T, d) over the real tokens only: (B, d). Padding does not dilute it."""
    weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class ClassifierBlock(nn.Module):
    """Pre-LN block: x + attention(LN(x), mask), then x + MLP(LN(x)), with dropout on both branches."""

    def __init__(
        self, attention: nn.Module, norm1: nn.Module, norm2: nn.Module, dim: int, dropout: float
    ):
        super().__init__()
        self.attention, self.norm1, self.norm2 = attention, norm1, norm2
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), mask))  # (B, T, d)
        return x + self.dropout(self.mlp(self.norm2(x)))  # (B, T, d)


class MyTransformer(nn.Module):
    """GloVe embeddings, positional encoding, ``blocks`` transformer blocks, masked pooling, a classifier."""

    def __init__(
        self,
        vectors: torch.Tensor,
        blocks: int = 1,
        heads: int = 1,
        max_len: int = 512,
        classes: int = 2,
        freeze_embeddings: bool = True,
        dropout: float = 0.1,
        attention: Callable[[int], nn.Module] | None = None,
        layer_norm: Callable[[int], nn.Module] | None = None,
    ):
        super().__init__()
        dim = vectors.shape[1]
        if attention is None and dim % heads:
            raise ValueError(
                f"{heads} heads do not divide the GloVe dimension {dim}; try 1, 2 or 5 (50d), 4 (100d)"
            )
        make_attention = attention or (lambda d: MultiHeadAttention(d, heads, fast=True))
        make_norm = layer_norm or (lambda d: LayerNorm(d, eps=1e-5, fast=True))
        self.embed = nn.Embedding.from_pretrained(
            vectors.float(), freeze=freeze_embeddings, padding_idx=0
        )
        self.register_buffer("positions", sinusoidal_positions(max_len, dim), persistent=False)
        self.blocks = nn.ModuleList(
            ClassifierBlock(make_attention(dim), make_norm(dim), make_norm(dim), dim, dropout)
            for _ in range(blocks)
        )
        self.norm = make_norm(dim)
        self.head = nn.Linear(dim, classes)
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(
                f"batch has {ids.shape[1]} tokens but max_len is {self.max_len}; truncate first"
            )
        x = self.embed(ids) + self.positions[: ids.shape[1]]  # (B, T, d)
        check_inputs(x, mask, x.shape[-1])
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, mask)  # (B, T, d)
        return self.head(masked_mean(self.norm(x), mask))  # (B, classes)

    @torch.no_grad()
    def token_attention(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """How much attention each token receives in the first block, averaged over queries and heads: (B, T)."""
        x = self.embed(ids) + self.positions[: ids.shape[1]]
        attention = self.blocks[0].attention
        h = self.blocks[0].norm1(x)
        heads = getattr(attention, "num_heads", 1)
        B, T, d = h.shape
        q = attention.query(h).view(B, T, heads, d // heads).transpose(1, 2)  # (B, h, T, hs)
        k = attention.key(h).view(B, T, heads, d // heads).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(d // heads)).masked_fill(
            ~mask[:, None, None, :], float("-inf")
        )
        weights = torch.softmax(scores, dim=-1)  # (B, h, T, T)
        received = (
            (weights * mask[:, None, :, None]).sum(dim=2).mean(dim=1)
        )  # (B, T): summed over real queries
        return received / mask.sum(dim=1, keepdim=True)  # share of the average query's attention
