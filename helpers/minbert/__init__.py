"""Notebook 05, frozen vs fine-tuned BERT (minBERT's classifier): ``data`` (``LABEL ||| SENTENCE``
files, a dev split carved out of train), ``runs`` (``train_classifier`` on ``helpers.bert`` and the one
training loop, ``score``, ``predict_labels``) and ``cli`` (``python -m helpers.minbert``)."""

from helpers.minbert.data import (
    Carved,
    Example,
    carve_dev,
    data_file,
    read_examples,
    write_examples,
)
from helpers.minbert.runs import (
    DEFAULTS,
    MinbertConfig,
    MinbertRun,
    load_bert,
    predict_labels,
    score,
    train_classifier,
)

__all__ = [
    "DEFAULTS",
    "Carved",
    "Example",
    "MinbertConfig",
    "MinbertRun",
    "carve_dev",
    "data_file",
    "load_bert",
    "predict_labels",
    "read_examples",
    "score",
    "train_classifier",
    "write_examples",
]
