"""The small GPT of notebook 07: the model, its attention variants, its data and its runs.

``python -m helpers.gpt train|sample`` is the command line (``helpers.gpt.cli``)."""

from helpers.corpora import windows
from helpers.gpt.attention import MASKS, VARIANTS, CausalSelfAttention, causal_softmax
from helpers.gpt.data import Corpus, Vocab, build_corpus
from helpers.gpt.model import GPT, GPTConfig
from helpers.gpt.runs import GPTRun, GPTRunConfig, load_model, sample, save_model, train

__all__ = [
    "GPT", "MASKS", "VARIANTS", "CausalSelfAttention", "Corpus", "GPTConfig", "GPTRun",
    "GPTRunConfig", "Vocab", "build_corpus", "causal_softmax", "load_model", "sample",
    "save_model", "train", "windows",
]  # fmt: skip
