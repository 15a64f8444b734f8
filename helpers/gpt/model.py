"""A small GPT: token + position embeddings, causal pre-LN blocks from ``helpers.layers``, a final
LayerNorm and a head that shares the token embedding's weights (notebook 07).

    model = GPT(GPTConfig(vocab_size=65, attention="additive"))
    logits = model(idx)  # idx (B, T) token ids -> (B, T, vocab) next-token scores
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn as nn

from helpers.config import Config, ConfigError, positive
from helpers.gpt.attention import MASKS, VARIANTS, CausalSelfAttention, KVCache
from helpers.layers import ACTIVATIONS, Block, LayerNorm


class GPTConfig(Config):
    """The architecture: sizes, the attention variant and how the future is masked."""

    vocab_size: int
    block_size: int = 128  # the longest context the model reads (position embeddings)
    layers: int = 4
    heads: int = 4
    embd: int = 128
    attention: str = "dot"  # dot | additive | shared-qk | shared-qkv
    mask: str = "inf"  # inf (-inf before the softmax) | zero (weights zeroed after it: leaks)
    additive_dim: int | None = None  # width da of the additive scorer (None: the head size)
    dropout: float = 0.0
    fast: bool = True  # PyTorch's fused kernels where they compute the same thing
    hidden: int | None = None  # the feed-forward's width (None: 4 * embd)
    activation: str = "gelu"  # gelu (erf) | gelu_tanh (GPT-2's approximation)
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        positive(self, vocab_size=self.vocab_size, block_size=self.block_size, layers=self.layers,
                 heads=self.heads, embd=self.embd, additive_dim=self.additive_dim)  # fmt: skip
        if self.attention not in VARIANTS:
            raise ConfigError(f"GPTConfig.attention must be one of {', '.join(VARIANTS)}, "
                              f"not {self.attention!r}")  # fmt: skip
        if self.mask not in MASKS:
            raise ConfigError(
                f"GPTConfig.mask must be one of {', '.join(MASKS)}, not {self.mask!r}"
            )
        if self.embd % self.heads:
            raise ConfigError(f"GPTConfig.embd={self.embd} is not divisible by GPTConfig.heads={self.heads}; "
                              "each head needs an equal slice")  # fmt: skip
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"GPTConfig.activation must be one of {', '.join(ACTIVATIONS)}, "
                              f"not {self.activation!r}")  # fmt: skip
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"GPTConfig.dropout must be in [0, 1), not {self.dropout!r}")


class GPT(nn.Module):
    """A decoder-only transformer language model (nanoGPT's shape) built from the course's one block."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if not isinstance(cfg, GPTConfig):  # a run's settings, or a dict
            raise TypeError(f"GPT takes a GPTConfig, not {type(cfg).__name__}; from a GPTRunConfig: "
                            "GPT(run_cfg.model_config(len(vocab)))")  # fmt: skip
        self.config = cfg
        d = cfg.embd
        self.tok = nn.Embedding(cfg.vocab_size, d)
        self.pos = nn.Embedding(cfg.block_size, d)
        self.drop = nn.Dropout(cfg.dropout)
        attention = partial(CausalSelfAttention, num_heads=cfg.heads, variant=cfg.attention,
                            mask=cfg.mask, dropout=cfg.dropout, fast=cfg.fast,
                            additive_dim=cfg.additive_dim)  # fmt: skip
        self.blocks = nn.ModuleList(
            Block(
                d,
                cfg.heads,
                norm="pre",
                attention=attention,
                hidden_dim=cfg.hidden,
                dropout=cfg.dropout,
                norm_eps=cfg.norm_eps,
                fast=cfg.fast,
                activation=cfg.activation,
            )
            for _ in range(cfg.layers)
        )
        self.ln_f = LayerNorm(d, eps=cfg.norm_eps, fast=cfg.fast)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied: a token's input and output vectors are one
        self.apply(self._init)
        for name, p in self.named_parameters():  # residual branches start small (GPT-2)
            if name.endswith(("attn.out.weight", "ff.down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T) at positions start, start + 1, ... (start > 0 only
        inside ``kv_cache()``, where the earlier tokens' keys and values are kept)."""
        T = idx.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(f"the input has {start + T} tokens; this model reads at most "
                             f"block_size={self.config.block_size} (crop the context)")  # fmt: skip
        cache = self.blocks[0].attn.cache if self.blocks else None
        held = 0 if cache is None or cache.k is None else cache.k.shape[2]
        if cache is not None and start != held:
            raise ValueError(f"inside kv_cache() the cache holds {held} tokens, so the new tokens "
                             f"start at position {held}, not start={start}")  # fmt: skip
        x = self.tok(idx) + self.pos(torch.arange(start, start + T, device=idx.device))  # (B, T, d)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)  # (B, T, d)
        return self.head(self.ln_f(x))  # (B, T, vocab)

    @contextmanager
    def kv_cache(self) -> Iterator[None]:
        """Inside, every attention layer keeps its keys and values: call the model on the prompt,
        then on each new token alone with ``start`` = the number of tokens before it. Refused for
        ``mask="zero"``: there each output depends on later tokens (the softmax sums over them), so
        what was cached would go stale."""
        if self.config.mask != "inf":
            raise ValueError(f"a KV cache needs mask='inf': with mask={self.config.mask!r} every "
                             "position's output changes as later tokens arrive (the softmax's "
                             "denominator sums over them); generate without the cache")  # fmt: skip
        self.reset_cache()
        try:
            yield
        finally:
            for block in self.blocks:
                block.attn.cache = None

    def reset_cache(self) -> None:
        for block in self.blocks:
            block.attn.cache = KVCache()

    @classmethod
    def from_pretrained(cls, name_or_dir: str) -> "GPT":
        """A Hugging Face GPT-2 checkpoint (``gpt2``, ``distilgpt2``, or a folder written by
        ``GPT2LMHeadModel.save_pretrained``) loaded into this class (``helpers.gpt.pretrained``)."""
        from helpers.gpt.pretrained import load_gpt2

        return load_gpt2(name_or_dir)

    def num_parameters(self) -> int:
        """Parameters, the tied head counted once."""
        return sum(p.numel() for p in self.parameters())
