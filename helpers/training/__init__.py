"""Training: the one loop (``fit``, ``evaluate``), its config, mixed precision, checkpoints, and
sampling from a trained language model (``generate``), and AdamW written out (notebook 05)."""

from helpers.training import distributed
from helpers.training.adamw import AdamW
from helpers.training.checkpoints import code_fingerprint, fingerprint
from helpers.training.generate import generate
from helpers.training.loop import (
    History,
    Metrics,
    TrainConfig,
    batch_outputs,
    evaluate,
    fit,
    perplexity,
    predict,
    run_epoch,
)
from helpers.training.precision import autocast, choose_precision, grad_scaler

__all__ = [
    "AdamW",
    "History",
    "Metrics",
    "TrainConfig",
    "autocast",
    "batch_outputs",
    "choose_precision",
    "distributed",
    "code_fingerprint",
    "evaluate",
    "fingerprint",
    "fit",
    "generate",
    "grad_scaler",
    "perplexity",
    "predict",
    "run_epoch",
]
