"""Pretraining a small BERT (notebook 05's encoder with an MLM head) and whether it pays: ``runs``
(``pretrain``: tokenizer, packing, masking, the one training loop, Hugging Face-format saving) and ``cli``
(``python -m helpers.mlm``). Whether it pays is fine-tuning's question: ``helpers.finetune.twin``."""

from helpers.mlm.runs import (
    MlmConfig,
    MlmRun,
    Packed,
    masked_batches,
    pack,
    perplexity,
    pretrain,
    split_eval,
)

__all__ = [
    "MlmConfig",
    "MlmRun",
    "Packed",
    "masked_batches",
    "pack",
    "perplexity",
    "pretrain",
    "split_eval",
]
