"""BERT from the inside (notebook 05): the encoder built from ``helpers.layers``, real weights loaded into it,
and its parameters counted from a config alone."""

from helpers.bert.count import count_parameters, head_parameters, parameter_breakdown
from helpers.bert.mlm import BertForMaskedLM, MlmHead, mlm_outputs
from helpers.bert.model import (
    BertClassifier,
    BertConfig,
    BertEmbeddings,
    BertModel,
    BertOutput,
    BertPooler,
)
from helpers.bert.save import save_pretrained

__all__ = [
    "BertClassifier",
    "BertConfig",
    "BertEmbeddings",
    "BertForMaskedLM",
    "BertModel",
    "BertOutput",
    "BertPooler",
    "MlmHead",
    "count_parameters",
    "head_parameters",
    "mlm_outputs",
    "parameter_breakdown",
    "save_pretrained",
]
