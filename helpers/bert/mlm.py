"""BERT's masked-language-model head, and the encoder with it: what BERT was pretrained on.

    input_ids (B, T) with some tokens replaced by [MASK]
      -> BertModel                                             (B, T, H)
      -> the masked positions only                             (N, H)
      -> dense -> GELU -> LayerNorm                            (N, H)   "the transform"
      -> · word embeddingsᵀ + bias                             (N, V)   the decoder, tied to the input

The decoder reuses the input word embeddings (one matrix, read in and written out), as BERT does, so
the head adds only H² + 3H + V parameters. The names follow ``transformers.BertForMaskedLM``'s
``cls.predictions.*`` (``helpers.bert.save`` writes them, ``from_pretrained`` reads them).
"""

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.bert.model import BertConfig, BertEmbeddings, BertModel
from helpers.layers import LayerNorm
from helpers.tokenization.mlm import IGNORE  # the label of a position not chosen for prediction

# Hugging Face name -> ours, for the MLM head (the decoder's weight is the word embeddings: tied).
HEAD_RENAMES = {
    "cls.predictions.transform.dense.weight": "head.dense.weight",
    "cls.predictions.transform.dense.bias": "head.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "head.norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "head.norm.bias",
    "cls.predictions.bias": "head.bias",
}


def init_bert_weights(model: nn.Module, std: float = 0.02) -> nn.Module:
    """BERT's initialisation: every linear and embedding weight from N(0, std²), biases 0, LayerNorms
    1 and 0, the padding row 0. (PyTorch's defaults give embeddings of size ~√H, and a tied decoder
    would start with logits in the tens: a loss far above log V.)"""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm | LayerNorm):
            for name, p in module.named_parameters(recurse=False):
                (nn.init.ones_ if name == "weight" else nn.init.zeros_)(p)
    return model


def rescale_embeddings(embeddings: BertEmbeddings, std: float = 0.02) -> float:
    """Divide the word, position and segment tables, in place, by the one factor that brings the word
    table's standard deviation to ``std`` (BERT's initial size); return the factor. The LayerNorm
    after their sum gives the same vectors (up to its epsilon); an AdamW step, about the learning rate
    per weight whatever the weight's size, now moves the tables ``factor`` times more relative to it."""
    if not (isinstance(std, numbers.Real) and math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive finite number, not {std!r}")
    size = embeddings.word.weight.std().item()
    if not (math.isfinite(size) and size > 0):
        raise ValueError(f"the word table's standard deviation is {size}: its weights hold NaN or "
                         "inf, or are all zero, so they cannot be rescaled")  # fmt: skip
    factor = size / std
    with torch.no_grad():  # in place: whatever holds these Parameters sees the change
        for table in (embeddings.word, embeddings.position, embeddings.token_type):
            table.weight.div_(factor)
    return factor


class MlmHead(nn.Module):
    """Hidden vectors -> a score for every word of the vocabulary (the decoder tied to ``word``)."""

    def __init__(self, cfg: BertConfig, word: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.norm = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, fast=True)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.word = [word]  # a list: the embedding stays registered once, under bert.embeddings

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.norm(F.gelu(self.dense(hidden)))  # (..., H), GELU with erf as BERT's
        return F.linear(x, self.word[0].weight, self.bias)  # (..., V)


class BertForMaskedLM(nn.Module):
    """The BERT encoder with the MLM head. ``model(ids, mask)`` gives logits (B, T, V);
    ``model(ids, mask, positions=chosen)`` only at the chosen positions (N, V), which is all the loss
    needs and (V ≫ H) most of the head's cost saved."""

    def __init__(self, cfg: BertConfig | Mapping[str, Any] | Any, *, init: bool = True) -> None:
        super().__init__()
        self.bert = BertModel(cfg)
        self.config = self.bert.config
        self.head = MlmHead(self.config, self.bert.embeddings.word)
        if init:
            init_bert_weights(self)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, T, H)
        if positions is not None:
            hidden = hidden[positions]  # (N, H): the N positions where positions is True
        return self.head(hidden)

    @classmethod
    def from_pretrained(cls, name_or_dir: "str | os.PathLike") -> "BertForMaskedLM":
        """The encoder and the MLM head of a Hugging Face BERT checkpoint (one saved by
        ``BertForMaskedLM`` or by ``helpers.bert.save``; the head's tensors must be there)."""
        from helpers.bert.weights import checkpoint_folder, read_state

        bert = BertModel.from_pretrained(name_or_dir)
        model = cls(bert.config, init=False)
        model.bert.load_state_dict(bert.state_dict())
        folder = checkpoint_folder(str(name_or_dir))
        state = {
            k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
            for k, v in read_state(folder).items()
        }  # fmt: skip
        missing = [theirs for theirs in HEAD_RENAMES if theirs not in state]
        if missing:
            raise ValueError(
                f"{folder} holds no MLM head (no {missing[0]}); it was saved without one. "
                "Load the encoder alone with BertModel.from_pretrained"
            )
        head = {ours.removeprefix("head."): state[theirs] for theirs, ours in HEAD_RENAMES.items()}
        model.head.load_state_dict(head)
        return model.eval()


def mlm_outputs(
    model: BertForMaskedLM, batch: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``fit``'s ``outputs=`` for a batch ``(input_ids, attention_mask, labels)``: the cross-entropy
    over the masked positions only (labels != IGNORE), with their logits (N, V) and labels (N,), so the
    trainer's accuracy is the share of masked tokens guessed right and its mean loss, weighted by N, is
    the mean over every masked token (exp of it: the perplexity)."""
    input_ids, attention_mask, labels = batch
    chosen = labels != IGNORE  # (B, T)
    logits = model(input_ids, attention_mask, positions=chosen).float()  # (N, V)
    targets = labels[chosen]  # (N,)
    if targets.numel() == 0:  # nothing masked in this batch: a zero loss that still backpropagates
        return logits.sum() * 0.0, logits, targets
    return F.cross_entropy(logits, targets), logits, targets
