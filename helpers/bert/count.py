"""How many parameters a BERT has, from its config alone (notebook 05's formulas).

With V vocabulary, P positions, S segment types, H hidden, F feed-forward, L layers:

    embeddings   (V + P + S)·H            the three lookup tables
    attention    L · 4(H·H + H)           Q, K, V and output projections, each with a bias
    feed-forward L · (H·F + F + F·H + H)  up and down projections with biases
    LayerNorm    2H + L · 2·2H            γ and β: after the embeddings, and twice per layer
    pooler       H·H + H                  dense layer on [CLS]

bert-base-uncased (V 30522, P 512, S 2, H 768, F 3072, L 12) has 109,482,240.
"""

from collections.abc import Mapping
from typing import Any

from helpers.bert.model import BertConfig


def parameter_breakdown(config: BertConfig | Mapping[str, Any] | Any) -> dict[str, int]:
    """Parameters per component: embeddings, attention, feed-forward, LayerNorm, pooler."""
    c = BertConfig.of(config)
    H, F, L = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    return {
        "embeddings": (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * H,
        "attention": L * 4 * (H * H + H),
        "feed-forward": L * (H * F + F + F * H + H),
        "LayerNorm": 2 * H + L * 2 * 2 * H,
        "pooler": H * H + H,
    }


def count_parameters(config: BertConfig | Mapping[str, Any] | Any) -> int:
    """The number of parameters of ``BertModel(config)`` (a transformers.BertConfig or a dict of its fields)."""
    return sum(parameter_breakdown(config).values())


def head_parameters(hidden_size: int, num_labels: int) -> int:
    """What a classification head on the pooled vector adds: a H x C weight and C biases."""
    for name, value in (("hidden_size", hidden_size), ("num_labels", num_labels)):
        if not value >= 1:
            raise ValueError(f"{name} must be at least 1, not {value!r}")
    return hidden_size * num_labels + num_labels
