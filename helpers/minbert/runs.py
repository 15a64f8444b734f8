"""Notebook 05's runs: minBERT's sentence classifier, frozen (``pretrain``) or fine-tuned (``finetune``),
on the project's own BERT (``helpers.bert``) and the one training loop (``helpers.training.fit``).

    train, dev = carve_dev(read_examples("sst-train.txt"))
    run = train_classifier("minilm", MinbertConfig(option="finetune"), train, dev)
    run.history["dev_accuracy"], run.dev_accuracy, score(run, test)   # test: once, at the very end

The model kept is the epoch with the best dev accuracy (minBERT's rule): its weights are restored before
``train_classifier`` returns, so ``score`` and ``predict_labels`` use the epoch dev chose.
"""

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from helpers import pretrained
from helpers.bert import BertClassifier, BertModel
from helpers.config import Config, ConfigError, positive
from helpers.env import pick_device, seeded
from helpers.files import json_digest
from helpers.minbert.data import (
    Carved,
    Example,
    carve_dev,
    check_labels,
    labels_hidden,
    num_classes,
    read_examples,
)
from helpers.text import bucketed_batches
from helpers.training import History, TrainConfig, evaluate, fit, predict

if TYPE_CHECKING:
    import transformers

OPTIONS = ("pretrain", "finetune")
# input_ids (B, T), attention_mask (B, T), labels (B,)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

__all__ = [
    "DEFAULTS",
    "OPTIONS",
    "Carved",
    "Example",
    "MinbertConfig",
    "MinbertRun",
    "carve_dev",
    "load_bert",
    "make_batches",
    "predict_labels",
    "read_examples",
    "score",
    "train_classifier",
]


class MinbertConfig(Config):
    """One run of minBERT's classifier: the course's hyperparameter table, plus the tokens kept."""

    option: str = (
        "finetune"  # pretrain: the encoder frozen, only the head trains | finetune: all of it
    )
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    hidden_dropout_prob: float = (
        0.1  # every dropout in the encoder (not attention's) and the head's
    )
    seed: int = 42  # the head's initial weights, dropout, shuffling
    max_len: int = 128  # tokens kept per sentence ([CLS] and [SEP] included)
    warmup: float = 0.1  # fraction of the steps warming the rate up, then linear decay to 0
    precision: str = "auto"  # auto (bf16 / fp16 / fp32 by hardware) | fp32 | bf16 | fp16

    def __post_init__(self) -> None:
        if self.option not in OPTIONS:
            raise ConfigError(
                f"MinbertConfig.option must be one of {', '.join(OPTIONS)}, not {self.option!r}"
            )
        positive(self, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                 max_len=self.max_len)  # fmt: skip
        if not 0 <= self.hidden_dropout_prob < 1:
            raise ConfigError(
                f"MinbertConfig.hidden_dropout_prob must be in [0, 1), not {self.hidden_dropout_prob!r}"
            )
        if self.max_len < 3:
            raise ConfigError(
                f"MinbertConfig.max_len must be at least 3 ([CLS], a token, [SEP]), not {self.max_len}"
            )
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"MinbertConfig.seed must be in [0, 2**63), not {self.seed!r}")
        self.train_config()  # warm-up and precision are checked there

    def train_config(self) -> TrainConfig:
        """AdamW (weight decay 0.01), warm-up then linear decay, gradients clipped at 1."""
        return TrainConfig(epochs=self.epochs, lr=self.lr, warmup=self.warmup, schedule="linear",
                           precision=self.precision, seed=self.seed)  # fmt: skip


# The command's defaults, for MiniLM on a 2-core CPU (≤ 15 min a run; README, notebook 05 section):
# finetune as notebook 04 chose for MiniLM (lr 1e-4, 3 epochs); pretrain's lr chosen on SST-5 dev
# among 1e-3, 3e-3 and 1e-2 (a frozen encoder trains only the head: cheap epochs, a larger rate).
DEFAULTS: dict[str, MinbertConfig] = {
    "finetune": MinbertConfig(option="finetune", epochs=3, lr=1e-4, batch_size=32, max_len=128),
    "pretrain": MinbertConfig(option="pretrain", epochs=5, lr=1e-2, batch_size=32, max_len=128),
}


def load_bert(model_name_or_dir: str) -> tuple[BertModel, "transformers.PreTrainedTokenizerBase"]:
    """(our BertModel with the checkpoint's weights, its tokenizer). "minilm" is the offline
    all-MiniLM-L6-v2; a folder must hold config.json, the weights and the tokenizer's files."""
    from transformers import AutoTokenizer

    source = pretrained.resolve_model(model_name_or_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained.require_tokenizer(source))
    except FileNotFoundError:  # a folder without a tokenizer: named as such
        raise
    except (OSError, ValueError) as err:  # damaged tokenizer files, or offline with nothing cached
        missing = pretrained.offline_miss(model_name_or_dir, err)
        if missing:
            raise OSError(missing) from None
        said = textwrap.shorten(" ".join(str(err).split()), 200, placeholder=" ...")
        raise OSError(
            f"could not load a tokenizer from {source} ({type(err).__name__}: {said}); a "
            "model folder needs vocab.txt or tokenizer.json beside config.json"
        ) from None
    try:
        return BertModel.from_pretrained(source), tokenizer
    except (OSError, ValueError):
        raise
    except Exception as err:  # a damaged weights file
        raise OSError(f"the weights in {source} cannot be read ({pretrained.short_error(err)}); save or "
                      "download the model again") from None  # fmt: skip


def set_hidden_dropout(model: nn.Module, p: float) -> None:
    """Every dropout of ``model`` but the attention weights' to ``p`` (minBERT's hidden_dropout_prob)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout) and ".attn." not in f".{name}.":
            module.p = p


def encode(
    tokenizer: "transformers.PreTrainedTokenizerBase", examples: Sequence[Example], max_len: int
) -> list[list[int]]:
    """Token ids of every sentence: [CLS] sentence [SEP], cut to ``max_len`` tokens."""
    texts = [e.text for e in examples]
    return tokenizer(texts, truncation=True, max_length=max_len)["input_ids"] if texts else []


def make_batches(
    ids: list[list[int]], labels: Sequence[int | None], batch_size: int, shuffle: bool,
    seed: int = 0, pad_id: int = 0,
) -> tuple[list[Batch], list[int]]:  # fmt: skip
    """Batches of similar lengths, each padded to its own longest sentence, and the order of the
    examples in them (to put predictions back in file order). A hidden label becomes -1 (never scored)."""
    order_batches = bucketed_batches([len(x) for x in ids], batch_size, shuffle, seed)
    batches = []
    for idx in order_batches:
        T = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), T), pad_id, dtype=torch.long)  # (B, T)
        for row, i in enumerate(idx):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
        mask = torch.zeros(len(idx), T, dtype=torch.long)  # (B, T): 1 = real token
        for row, i in enumerate(idx):
            mask[row, : len(ids[i])] = 1
        targets = torch.tensor([-1 if labels[i] is None else labels[i] for i in idx])  # (B,)
        batches.append((input_ids, mask, targets))
    return batches, [i for idx in order_batches for i in idx]


@dataclass
class MinbertRun:
    """What ``train_classifier`` returns. ``history``: per epoch, train_loss, dev_accuracy, seconds.
    ``model`` holds the weights of ``best_epoch``, whose dev accuracy is ``dev_accuracy``."""

    history: History
    model: BertClassifier
    tokenizer: "transformers.PreTrainedTokenizerBase"
    cfg: MinbertConfig
    classes: int
    best_epoch: int
    dev_accuracy: float
    device: torch.device
    seconds: dict[str, float] = field(default_factory=dict)


class KeepBest:
    """A ``fit`` callback: after each epoch, keep a copy of the weights if ``key`` is the best so far
    (the first of equal scores); ``restore`` puts the best copy back."""

    def __init__(self, model: nn.Module, key: str = "dev_accuracy") -> None:
        self.model, self.key = model, key
        self.best, self.epoch, self.state = -1.0, 0, None

    def __call__(self, history: History) -> None:
        value = history.last(self.key)
        if value > self.best:
            self.best, self.epoch = value, len(history[self.key])
            # only what training changes: the trainable parameters (a frozen encoder stays as is)
            self.state = {
                name: p.detach().clone()
                for name, p in self.model.named_parameters()
                if p.requires_grad
            }

    def restore(self) -> None:
        if self.state is not None:  # strict=False: the frozen encoder's weights are not in the copy
            self.model.load_state_dict(self.state, strict=False)

    def state_dict(self) -> dict:  # kept in fit's checkpoint: a resumed run knows its best epoch
        return {"best": self.best, "epoch": self.epoch, "state": self.state}

    def load_state_dict(self, kept: dict) -> None:
        self.best, self.epoch, self.state = kept["best"], kept["epoch"], kept["state"]


MADE_BY = "helpers.minbert"  # in the fingerprint of its checkpoints


def run_identity(
    model_name_or_dir: str, cfg: "MinbertConfig", examples: dict, classes: int
) -> dict:
    """What a checkpoint of ``train_classifier`` must match besides the model's code and the training
    settings (``fit`` checks those): the model's own files (a digest; a hub id by name), the examples
    of each split (a digest) and the config."""
    rows = {name: [(e.label, e.text) for e in split] for name, split in examples.items()}
    return {"made_by": MADE_BY, "model": pretrained.model_digest(pretrained.resolve_model(model_name_or_dir)),
            "data": json_digest(rows), "config": cfg.to_dict(), "classes": classes}  # fmt: skip


def train_classifier(
    model_name_or_dir: str,
    cfg: MinbertConfig,
    train: Sequence[Example],
    dev: Sequence[Example],
    device: torch.device | None = None,
    progress: bool = True,
    *,
    callbacks: Sequence[Callable[[History], None]] = (),
    loaded: tuple[BertModel, "transformers.PreTrainedTokenizerBase"] | None = None,
    checkpoint: str | Path | None = None,
) -> MinbertRun:
    """Train a classifier on ``train`` (frozen encoder or fine-tuned, as ``cfg.option`` says), score
    ``dev`` after every epoch, and keep the epoch with the best dev accuracy.

    The test set is not scored here: ``score`` it once, with the weights dev chose. ``loaded`` is a
    (BertModel, tokenizer) already loaded (the command line loads it first, to report a missing model
    before any work). With ``checkpoint``, each finished
    epoch (and the best one's weights) is saved there, and a later call with the same model files,
    examples and settings resumes after it."""
    device = pick_device() if device is None else device
    classes = num_classes(list(train), "the training examples")
    splits = {"dev": list(dev)}
    if not splits["dev"] or labels_hidden(splits["dev"]):
        raise ValueError(f"the dev examples are {'empty' if not dev else 'unlabelled'}; "
                         "scoring them every epoch needs labels")  # fmt: skip
    check_labels(splits["dev"], classes, "the dev examples", "the training examples")
    start = time.perf_counter()
    bert, tokenizer = load_bert(model_name_or_dir) if loaded is None else loaded
    seconds = {"load": time.perf_counter() - start}
    start = time.perf_counter()
    pad = tokenizer.pad_token_id or 0
    train_ids = encode(tokenizer, train, cfg.max_len)
    train_labels = [e.label for e in train]
    held = {
        name: make_batches(encode(tokenizer, rows, cfg.max_len), [e.label for e in rows],
                           2 * cfg.batch_size, shuffle=False, pad_id=pad)[0]
        for name, rows in splits.items()
    }  # fmt: skip
    seconds["tokenize"] = time.perf_counter() - start
    start = time.perf_counter()
    with seeded(cfg.seed):
        model = BertClassifier(bert, classes, dropout=cfg.hidden_dropout_prob,
                               freeze=cfg.option == "pretrain")  # fmt: skip
        set_hidden_dropout(model, cfg.hidden_dropout_prob)
        best = KeepBest(model, "dev_accuracy")
        history = fit(
            model,
            lambda epoch: make_batches(
                train_ids,
                train_labels,
                cfg.batch_size,
                shuffle=True,
                seed=cfg.seed + epoch,
                pad_id=pad,
            )[0],  # fmt: skip
            cfg.train_config(),
            device,
            eval_batches=held,
            callbacks=[best, *callbacks],
            checkpoint=checkpoint,
            identity=run_identity(model_name_or_dir, cfg, splits | {"train": list(train)}, classes)
            if checkpoint
            else None,
            progress=progress,
        )
    best.restore()
    seconds["train"] = time.perf_counter() - start
    return MinbertRun(
        history, model, tokenizer, cfg, classes, best.epoch, best.best, device, seconds
    )


def _batches(run: MinbertRun, examples: Sequence[Example]) -> tuple[list[Batch], list[int]]:
    if not examples:
        raise ValueError("there are no examples to score")
    ids = encode(run.tokenizer, examples, run.cfg.max_len)
    return make_batches(ids, [e.label for e in examples], 2 * run.cfg.batch_size, shuffle=False,
                        pad_id=run.tokenizer.pad_token_id or 0)  # fmt: skip


def score(run: MinbertRun, examples: Sequence[Example]) -> float:
    """Accuracy of the run's model (the epoch dev chose) on labelled ``examples``: for the test set,
    call it once, at the very end."""
    if labels_hidden(list(examples)):
        raise ValueError("these examples hide their labels; use predict_labels instead of score")
    check_labels(list(examples), run.classes, "the scored examples")
    batches, _ = _batches(run, examples)
    return evaluate(run.model, batches, run.device, run.cfg.precision).accuracy


def predict_labels(run: MinbertRun, examples: Sequence[Example]) -> list[int]:
    """The predicted class of every example, in the examples' order (labels may be hidden)."""
    batches, order = _batches(run, examples)
    unlabelled = [(ids, mask, torch.zeros_like(y)) for ids, mask, y in batches]  # targets unused
    predicted = predict(run.model, unlabelled, run.device, run.cfg.precision).argmax(dim=-1)
    result = [0] * len(order)
    for position, i in enumerate(order):
        result[i] = int(predicted[position])
    return result
