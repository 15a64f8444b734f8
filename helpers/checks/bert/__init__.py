"""Notebook 05's checkers: BERT's embeddings, its multi-head attention with the extended attention mask,
add & norm, the [CLS] classifier, AdamW written out, the per-layer parameter count, and the whole
model against ``transformers.BertModel`` on real weights (minBERT's ``sanity_check.py``).

As in notebook 02's checkers, a wrong output is compared with what each known mistake would produce
from the student's own weights, and the match names the mistake. Dropout is checked in training mode
under a fixed seed: the same seed draws the same dropout mask for the same shape, so the reference and
the student's module drop the same numbers if they drop them from the same tensor; in evaluation mode
two calls under different seeds must agree (``F.dropout(x, p)`` without ``training=`` drops even then).
The checkers hand the student copies of their inputs where an in-place change would be a bug autograd
trips on later (add & norm's x, attention's x), and say so when one changed.
"""

from helpers.checks.bert.adamw import check_adamw
from helpers.checks.bert.add_norm import check_add_norm
from helpers.checks.bert.attention import check_bert_attention, extended_attention_mask
from helpers.checks.bert.classifier import check_classifier
from helpers.checks.bert.count import COUNT_CASES, check_layer_count, layer_parameters
from helpers.checks.bert.embeddings import check_embeddings
from helpers.checks.bert.sanity import check_bert
from helpers.checks.bert.shared import CORRECT

__all__ = [
    "CORRECT",
    "COUNT_CASES",
    "check_adamw",
    "check_add_norm",
    "check_bert",
    "check_bert_attention",
    "check_classifier",
    "check_embeddings",
    "check_layer_count",
    "extended_attention_mask",
    "layer_parameters",
]
