"""Notebook 03, IMDB sentiment with a GloVe transformer: ``data`` (reviews and vectors from local files,
the hub or Stanford's tarball), ``runs`` (preparation, training runs, looking inside), ``cli``
(``python -m helpers.imdb``)."""

from helpers.imdb.data import load_imdb, notebook_data, read_jsonl, split_off, subsample
from helpers.imdb.runs import (
    CONFIGS,
    ImdbConfig,
    ImdbRun,
    Prepared,
    build_model,
    misclassified,
    my_modules,
    prepare,
    run,
    score_test,
    token_attention,
    token_occlusion,
)

__all__ = [
    "CONFIGS",
    "ImdbConfig",
    "ImdbRun",
    "Prepared",
    "build_model",
    "load_imdb",
    "misclassified",
    "my_modules",
    "notebook_data",
    "prepare",
    "read_jsonl",
    "run",
    "score_test",
    "split_off",
    "subsample",
    "token_attention",
    "token_occlusion",
]
