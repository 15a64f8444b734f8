"""A transformer sentence classifier built from notebook 02's modules, on GloVe vectors.

    token ids (B, T) -> GloVe embedding + positional encoding -> N blocks -> masked mean pooling -> logits (B, 2)

The blocks are ``helpers.layers.Block`` (pre-LN, with dropout), built from helpers' multi-head attention
and LayerNorm unless the caller passes its own: the notebook switches in the student's
``MySelfAttention`` and ``MyLayerNorm`` with one argument.
"""

import math

import torch
import torch.nn as nn

from helpers.layers import Block, LayerNorm, ModuleFactory, attention_weights, check_inputs


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


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The largest value of each feature over the real tokens only: (B, d)."""
    return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)  # (B, d)


POOLINGS = ("mean", "mean+max")


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
        word_dropout: float = 0.0,
        attention: ModuleFactory | None = None,
        layer_norm: ModuleFactory | None = None,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        dim = vectors.shape[1]
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        if attention is not None and heads != 1:
            raise ValueError(
                f"your attention module is single-head, but the config asks for {heads} heads: "
                "use heads=1 (CONFIG='course') with your own modules"
            )
        if attention is None and dim % heads:
            raise ValueError(
                f"{heads} heads do not divide the GloVe dimension {dim}; try 1, 2 or 5 (50d), 4 (100d)"
            )
        make_norm = layer_norm or (lambda d: LayerNorm(d, eps=1e-5, fast=True))
        self.embed = nn.Embedding.from_pretrained(
            vectors.detach().float().clone(), freeze=freeze_embeddings, padding_idx=0
        )
        self.register_buffer("positions", sinusoidal_positions(max_len, dim), persistent=False)
        self.blocks = nn.ModuleList(
            Block(
                dim,
                heads,
                attention=attention or "dot",
                layer_norm=make_norm,
                dropout=dropout,
                fast=True,
            )  # fmt: skip
            for _ in range(blocks)
        )
        self.norm = make_norm(dim)
        self.pooling = pooling
        self.head = nn.Linear(dim * len(pooling.split("+")), classes)
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len
        self.word_dropout = word_dropout  # training only: the share of words whose vector is zeroed

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(
                f"batch has {ids.shape[1]} tokens but max_len is {self.max_len}; truncate first"
            )
        x = self.embed(ids)  # (B, T, d)
        if self.training and self.word_dropout > 0:  # drop whole words: judge by the rest
            x = x * (torch.rand(ids.shape, device=ids.device) >= self.word_dropout).unsqueeze(-1)
        x = x + self.positions[: ids.shape[1]]
        check_inputs(x, mask, x.shape[-1])
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, mask)  # (B, T, d)
        x = self.norm(x)
        pooled = masked_mean(x, mask)  # (B, d)
        if self.pooling == "mean+max":  # the average token, and each feature's strongest token
            pooled = torch.cat([pooled, masked_max(x, mask)], dim=-1)  # (B, 2d)
        return self.head(pooled)  # (B, classes)

    @torch.no_grad()
    def token_attention(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """How much attention each token receives in the first block, averaged over queries and heads: (B, T)."""
        x = self.embed(ids) + self.positions[: ids.shape[1]]  # (B, T, d)
        block = self.blocks[0]
        weights = attention_weights(block.attn, block.ln1(x), mask)  # (B, h, T, T)
        received = (
            (weights * mask[:, None, :, None]).sum(dim=2).mean(dim=1)
        )  # (B, T): over real queries
        return received / mask.sum(dim=1, keepdim=True)  # share of the average query's attention
