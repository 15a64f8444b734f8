"""BERT from the inside (notebook 05): the encoder built from ``helpers.layers``, real weights loaded into it,
and its parameters counted from a config alone."""

from helpers.bert.count import count_parameters, head_parameters, parameter_breakdown
from helpers.bert.model import (
    BertClassifier,
    BertConfig,
    BertEmbeddings,
    BertModel,
    BertOutput,
    BertPooler,
)

__all__ = [
    "BertClassifier",
    "BertConfig",
    "BertEmbeddings",
    "BertModel",
    "BertOutput",
    "BertPooler",
    "count_parameters",
    "head_parameters",
    "parameter_breakdown",
]
