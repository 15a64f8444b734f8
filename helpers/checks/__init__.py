"""Exercise checkers. Each takes the student's function or class and returns a ``CheckResult``;
it never raises on the student's code (a setting the notebook passes, such as a head count of 0, is
refused with a ValueError; notebook 03's ``pipeline.checked_modules`` raises on purpose, to stop
a run with modules that fail notebook 02's checks): a stub reads "not implemented yet", a crash becomes a short verdict.

- ``lookup``: notebook 01 (attention by hand; a module per part)
- ``code``: what every checker reads of the student's code (the loop detector, the in-place guard)
- ``modules``: notebook 02 (the loop tester, self-attention from scratch); ``layer_norm``: its LayerNorm
- ``blocks``: notebook 02 (multi-head attention, BERT's post-LN block)
- ``pipeline``: notebook 03 (collate and mask, masked mean, loaders, training step, evaluation; a
  module per exercise)
- ``finetune``: notebook 04; ``bert``: notebook 05 (each a module per exercise)
- ``tokenization``: notebook 06 (BPE, masking: a module each); ``pretraining``: notebook 06 (rescaling the weights)
- ``gpt``: notebook 07 (the causal softmax, additive scores, the sampling loop)
- ``sampling``: notebook 08 (greedy, temperature, top-k, top-p)
- ``scaling``: notebook 09
"""

from helpers.checks.blocks import (
    check_multi_head_attention,
    check_post_ln_block,
    check_split_merge,
    same_as_torch_multihead,
)
from helpers.checks.layer_norm import check_layer_norm
from helpers.checks.lookup import (
    check_averaging_query,
    check_balanced_query,
    check_copy_queries,
    check_query_gradients,
    check_recovery_matrix,
    check_selection_query,
    check_softmax_attention,
)
from helpers.checks.modules import (
    check_loop_attention,
    check_self_attention,
    compare_with_reference,
)

__all__ = [
    "check_averaging_query",
    "check_balanced_query",
    "check_copy_queries",
    "check_layer_norm",
    "check_loop_attention",
    "check_multi_head_attention",
    "check_post_ln_block",
    "check_query_gradients",
    "check_recovery_matrix",
    "check_selection_query",
    "check_self_attention",
    "check_softmax_attention",
    "check_split_merge",
    "compare_with_reference",
    "same_as_torch_multihead",
]
