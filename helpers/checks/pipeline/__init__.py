"""Notebook 03's checkers for the pipeline around the model: the collate function that pads a batch
and builds its mask, masked mean pooling, the data loaders, one training step and the evaluation
pass. Each runs the student's code on small cases where every classic mistake gives a different
answer, and names the mistake it sees.
"""

from helpers.checks.pipeline.collate import check_collate
from helpers.checks.pipeline.on_model import check_pipeline_on_model, checked_modules
from helpers.checks.pipeline.pooling import check_masked_mean
from helpers.checks.pipeline.training import check_evaluate, check_loaders, check_train_step

__all__ = [
    "check_collate",
    "check_evaluate",
    "check_loaders",
    "check_masked_mean",
    "check_pipeline_on_model",
    "check_train_step",
    "checked_modules",
]
