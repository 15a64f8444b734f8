"""BERT built from the course's one layer family: embeddings, N post-LN blocks, a pooler.

    input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)
      -> word + position + token-type embeddings -> LayerNorm -> dropout     (B, T, H)
      -> num_hidden_layers x Block(norm="post")                              (B, T, H)
      -> last_hidden_state; pooler_output = tanh(W h[:, 0] + b)              (B, H)

The names of the fields follow Hugging Face's ``BertConfig`` so a checkpoint's config.json loads as is;
``helpers.bert.weights`` maps a checkpoint's tensors onto these modules.
"""

import difflib
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn as nn

from helpers.config import Config, ConfigError, positive
from helpers.layers import Block, LayerNorm


class BertConfig(Config):
    """The shape of a BERT (defaults: bert-base-uncased)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1

    def __post_init__(self) -> None:
        positive(self, vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                 num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
                 intermediate_size=self.intermediate_size, max_position_embeddings=self.max_position_embeddings,
                 type_vocab_size=self.type_vocab_size, layer_norm_eps=self.layer_norm_eps)  # fmt: skip
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"BertConfig.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}: each head needs an equal slice"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(
                    f"BertConfig.{name} must be in [0, 1), not {getattr(self, name)!r}"
                )

    @classmethod
    def of(cls, source: "BertConfig | Mapping[str, Any] | Any") -> "BertConfig":
        """A BertConfig from ours, a dict of Hugging Face config fields, or a ``transformers.BertConfig``
        (fields we do not use, like ``pad_token_id``, are ignored; missing ones take bert-base's value)."""
        if isinstance(source, BertConfig):
            return source
        # a model's name or a number is no config: say where weights come from
        if not (isinstance(source, Mapping) or hasattr(source, "to_dict")):
            raise TypeError(f"a BERT config is a BertConfig, a dict or a transformers config, not "
                            f"{source!r}; for a checkpoint's weights: BertModel.from_pretrained(name)")  # fmt: skip
        values = source if isinstance(source, Mapping) else source.to_dict()
        act = values.get("hidden_act", "gelu")
        if act != "gelu":
            raise ConfigError(
                f"hidden_act {act!r} is not supported: this BERT uses GELU (erf) only"
            )
        if values.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError("only absolute position embeddings are supported")
        names = {f.name for f in fields(cls)}
        if isinstance(source, Mapping):
            _refuse_typos(source, names)
        return cls(**{k: v for k, v in values.items() if k in names})


# Hugging Face config fields that look like ours (transformers 4 and 5): a config.json may hold them.
HF_LOOKALIKES = {"cross_attention_hidden_size", "hidden_act", "output_attentions", "output_hidden_states",
                 "position_embedding_type", "tie_word_embeddings"}  # fmt: skip


def _refuse_typos(values: Mapping[str, Any], names: set[str]) -> None:
    """A key that is none of ours but close to one of ours ("num_hidden_layer") is a typo: ignored like
    Hugging Face's other fields, it would leave bert-base's value in place."""
    for key in values:
        if isinstance(key, str) and key not in names and key not in HF_LOOKALIKES:
            if match := difflib.get_close_matches(key, names, n=1, cutoff=0.6):
                raise ConfigError(f"BertConfig has no field {key!r}; did you mean {match[0]!r}?")


@dataclass
class BertOutput:
    """What ``BertModel`` returns; also readable as ``out["last_hidden_state"]``."""

    last_hidden_state: torch.Tensor  # (B, T, H)
    pooler_output: torch.Tensor  # (B, H)

    def __getitem__(self, key: str) -> torch.Tensor:
        return getattr(self, key)


class BertEmbeddings(nn.Module):
    """Each token's vector: its word's, plus its position's, plus its segment's (sentence A or B)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        H = cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, H, padding_idx=0)
        self.position = nn.Embedding(cfg.max_position_embeddings, H)
        self.token_type = nn.Embedding(cfg.type_vocab_size, H)
        self.norm = LayerNorm(H, eps=cfg.layer_norm_eps, fast=True)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, T = input_ids.shape
        if T > self.position.num_embeddings:
            raise ValueError(
                f"the batch has {T} tokens but this BERT knows {self.position.num_embeddings} positions; "
                "truncate the inputs (tokenizer(..., truncation=True))"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # everything is sentence A
        positions = torch.arange(T, device=input_ids.device)  # (T,): the same for every row
        x = (
            self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        )  # (B, T, H)
        return self.dropout(self.norm(x))


class BertPooler(nn.Module):
    """The [CLS] token's final vector through a dense layer and tanh (trained on next-sentence prediction)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, H)


class BertModel(nn.Module):
    """The BERT encoder. ``BertModel.from_pretrained("bert-base-uncased")`` or a local folder loads real weights."""

    def __init__(self, cfg: BertConfig | Mapping[str, Any] | Any) -> None:
        super().__init__()
        self.config = cfg = BertConfig.of(cfg)
        self.embeddings = BertEmbeddings(cfg)
        self.blocks = nn.ModuleList(
            Block(
                cfg.hidden_size,
                cfg.num_attention_heads,
                norm="post",
                hidden_dim=cfg.intermediate_size,
                dropout=cfg.hidden_dropout_prob,
                attention_dropout=cfg.attention_probs_dropout_prob,
                norm_eps=cfg.layer_norm_eps,
                fast=True,
            )  # fmt: skip
            for _ in range(cfg.num_hidden_layers)
        )
        self.pooler = BertPooler(cfg)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> BertOutput:
        mask = (
            None if attention_mask is None else attention_mask.bool()
        )  # (B, T): True = real token
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        for block in self.blocks:
            x = block(x, mask)  # (B, T, H)
        return BertOutput(last_hidden_state=x, pooler_output=self.pooler(x))

    @classmethod
    def from_pretrained(cls, name_or_dir: "str | os.PathLike") -> "BertModel":
        """Our BertModel holding a Hugging Face BERT checkpoint's weights (a hub id or a local folder)."""
        from helpers.bert.weights import load_pretrained

        return load_pretrained(cls, name_or_dir)


def check_num_labels(num_labels: int) -> None:
    """A ValueError unless ``num_labels`` is an int >= 2: a classifier's classes."""
    if (
        isinstance(num_labels, bool)
        or not isinstance(num_labels, numbers.Integral)
        or num_labels < 2
    ):
        raise ValueError(f"num_labels must be an int >= 2 (the classes), not {num_labels!r}")


class BertClassifier(nn.Module):
    """A sentence classifier on BERT: dropout and a linear layer on the pooled [CLS] vector -> logits (B, C).

    ``freeze=True`` is minBERT's ``pretrain`` option: the encoder stays as loaded, only the head trains.
    """

    def __init__(
        self, bert: BertModel, num_labels: int, dropout: float | None = None, freeze: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(bert, BertModel):
            raise TypeError(f"BertClassifier wraps a BertModel, not {type(bert).__name__}: "
                            "BertClassifier(BertModel(config), num_labels)")  # fmt: skip
        check_num_labels(num_labels)
        self.bert = bert
        self.dropout = nn.Dropout(bert.config.hidden_dropout_prob if dropout is None else dropout)
        self.head = nn.Linear(bert.config.hidden_size, num_labels)
        for p in self.bert.parameters():
            p.requires_grad = not freeze

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        pooled = self.bert(input_ids, attention_mask, token_type_ids).pooler_output  # (B, H)
        return self.head(self.dropout(pooled))  # (B, C) logits; log_softmax + NLL = cross-entropy
