"""Notebook 06's checkers: BPE written out (pair counts, one merge, the learning loop) and BERT's masking.

The BPE checkers compare with ``helpers.tokenization.bpe`` on a corpus built so that each classic
mistake gives a different answer, and rebuild the mistaken answer to name it. The masking checker runs
the student's function on a large batch (256 sequences of up to 128 tokens, padded) under fixed
generators and measures the rates; the tolerances are six standard deviations or more from the
expected rates, so a right answer never fails by chance and the named mistakes are far outside them.
"""

from helpers.checks.tokenization.bpe import (
    LEARN_TEXT,
    check_bpe_on_corpus,
    check_learn_bpe,
    check_merge,
    check_pair_counts,
)
from helpers.checks.tokenization.masking import check_masking

__all__ = [
    "LEARN_TEXT",
    "check_bpe_on_corpus",
    "check_learn_bpe",
    "check_masking",
    "check_merge",
    "check_pair_counts",
]
