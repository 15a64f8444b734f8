"""Exercise checkers. Each takes the student's function or class and returns a ``CheckResult``;
it never raises: a stub reads "not implemented yet", a crash becomes a short verdict.

- ``lookup``: notebook 01 (attention by hand)
- ``modules``: notebook 02 (self-attention and LayerNorm from scratch)
"""

from helpers.checks.lookup import (
    check_averaging_query,
    check_balanced_query,
    check_copy_queries,
    check_query_gradients,
    check_recovery_matrix,
    check_selection_query,
    check_softmax_attention,
)
from helpers.checks.modules import check_layer_norm, check_self_attention

__all__ = [
    "check_averaging_query",
    "check_balanced_query",
    "check_copy_queries",
    "check_layer_norm",
    "check_query_gradients",
    "check_recovery_matrix",
    "check_selection_query",
    "check_self_attention",
    "check_softmax_attention",
]
