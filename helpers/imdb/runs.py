"""Notebook 03's runs: prepare the reviews (tokens, vocabulary, vectors), train the GloVe transformer
with the one training loop, test it once, and look inside it."""

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from helpers.classifier import POOLINGS, MyTransformer
from helpers.config import Config, ConfigError, positive
from helpers.download import cache_dir
from helpers.env import current_seed, seeded
from helpers.glove import Glove, align
from helpers.imdb.data import Split
from helpers.layers import ModuleFactory
from helpers.text import bucketed_batches, pad_batch, tokenize_cached
from helpers.training import History, Metrics, TrainConfig, evaluate, fit, predict
from helpers.training.loop import check_finite_losses, evaluating

if TYPE_CHECKING:
    import pandas as pd


class ImdbConfig(Config):
    """One training run of notebook 03: the model's shape and how it is trained."""

    blocks: int = 1
    heads: int = 1
    epochs: int = 5
    lr: float = 1e-4
    max_len: int = 256  # tokens kept per review
    freeze_embeddings: bool = False  # keep GloVe fixed, or fine-tune it
    batch_size: int = 16
    dropout: float = 0.1
    word_dropout: float = 0.0  # training: share of words whose vector is zeroed (0 = off)
    schedule: str = "constant"  # learning rate: constant | linear or cosine decay to 0
    pooling: str = "mean"  # mean over the real tokens | "mean+max": their mean and their max
    precision: str = "auto"  # auto (by hardware) | fp32 | bf16 | fp16
    accumulate: int = 1  # batches per optimizer step, over all processes

    def __post_init__(self) -> None:
        positive(self, blocks=self.blocks, heads=self.heads, epochs=self.epochs, lr=self.lr,
                 max_len=self.max_len, batch_size=self.batch_size, accumulate=self.accumulate)  # fmt: skip
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(
                    f"ImdbConfig.{name} must be in [0, 1), got {getattr(self, name)!r}"
                )
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"ImdbConfig.pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}"
            )
        self.train_config(0)  # the precision is checked there

    def train_config(self, seed: int) -> TrainConfig:
        """AdamW with gradient clipping; the course keeps the rate constant."""
        return TrainConfig(epochs=self.epochs, lr=self.lr, schedule=self.schedule,
                           precision=self.precision, accumulate=self.accumulate, seed=seed)  # fmt: skip


def as_flags(message: str) -> str:
    """An ``ImdbConfig`` error with each field named as the commands' flag (``ImdbConfig.max_len`` ->
    ``--max-len``; ``TrainConfig.precision``, checked there, -> ``--precision``)."""
    pattern = r"ImdbConfig\.(\w+)|TrainConfig\.(precision)\b"
    return re.sub(pattern, lambda m: "--" + (m.group(1) or m.group(2)).replace("_", "-"), message)


# "course": the course's 1 block, 5 epochs, lr 1e-4 (with GloVe fine-tuned, in batches of 16).
# "best": chosen on validation (README: the ablation, and the runs behind each choice).
CONFIGS: dict[str, ImdbConfig] = {
    "course": ImdbConfig(),
    "best": ImdbConfig(
        heads=2, epochs=6, lr=1e-3, max_len=512, dropout=0.2, word_dropout=0.1, pooling="mean+max"
    ),
}


@dataclass
class Prepared:
    """Everything a training run needs: the aligned vocabulary and vectors, and encoded splits."""

    vectors: torch.Tensor
    itos: list[str]
    docs: dict[str, list[np.ndarray]]
    labels: dict[str, torch.Tensor]
    texts: dict[str, list[str]]
    coverage: float
    seconds: dict[str, float] = field(default_factory=dict)

    def batch_indices(
        self, split: str, batch_size: int, max_len: int, shuffle: bool, seed: int = 42
    ) -> list[list[int]]:
        """Which examples of ``split`` go in each batch: similar lengths together."""
        lengths = [min(len(d), max_len) for d in self.docs[split]]
        return bucketed_batches(lengths, batch_size, shuffle, seed)

    def batches(
        self, split: str, batch_size: int, max_len: int, shuffle: bool, seed: int = 42
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Length-bucketed, padded batches of one split: (ids (B, T), mask (B, T), labels (B,))."""
        docs, labels = self.docs[split], self.labels[split]
        return [
            (*pad_batch([docs[i] for i in idx], max_len), labels[idx])
            for idx in self.batch_indices(split, batch_size, max_len, shuffle, seed)
        ]

    def fingerprint(self) -> str:
        """A digest of the encoded reviews and labels: a checkpoint is reused only on the same data."""
        digest = hashlib.sha256()
        for split in sorted(self.docs):
            digest.update(np.concatenate([*self.docs[split], np.zeros(1, np.int64)]).tobytes())
            digest.update(self.labels[split].numpy().tobytes())
        digest.update(self.vectors.numpy().tobytes())
        return digest.hexdigest()[:16]


def prepare(splits: dict[str, Split], glove: Glove, progress: bool = True) -> Prepared:
    """Tokenise every split (cached), build the vocabulary of corpus words that GloVe knows, encode."""
    seconds: dict[str, float] = {}
    tokens = {}
    for name, (texts, _) in splits.items():
        start = time.perf_counter()
        tokens[name], cached = tokenize_cached(texts, progress=progress)
        seconds[f"tokenise {name}" + (" (cached)" if cached else "")] = time.perf_counter() - start
    start = time.perf_counter()
    counts: dict[str, int] = {}
    for t in tokens.values():
        for word, c in t.counts().items():
            counts[word] = counts.get(word, 0) + c
    aligned = align(glove, counts)
    docs = {name: aligned.vocab.encode(t) for name, t in tokens.items()}
    seconds["vocabulary and encoding"] = time.perf_counter() - start
    return Prepared(
        vectors=aligned.vectors,
        itos=aligned.vocab.itos,
        docs=docs,
        labels={name: torch.tensor(labels) for name, (_, labels) in splits.items()},
        texts={name: texts for name, (texts, _) in splits.items()},
        coverage=aligned.coverage,
        seconds=seconds,
    )


def build_model(
    prepared: Prepared,
    cfg: ImdbConfig,
    attention: ModuleFactory | None = None,
    layer_norm: ModuleFactory | None = None,
) -> MyTransformer:
    """A MyTransformer for ``cfg`` on the prepared vectors (optionally with the student's modules)."""
    return MyTransformer(prepared.vectors, blocks=cfg.blocks, heads=cfg.heads, max_len=cfg.max_len,
                         freeze_embeddings=cfg.freeze_embeddings, dropout=cfg.dropout,
                         word_dropout=cfg.word_dropout, attention=attention, layer_norm=layer_norm,
                         pooling=cfg.pooling)  # fmt: skip


def my_modules(names: dict) -> tuple[ModuleFactory, ModuleFactory]:
    """The student's MySelfAttention and MyLayerNorm from ``names`` (the notebook's globals), for
    ``USE_MY_MODULES = True``; a NameError saying where to paste them when either is missing."""
    missing = [name for name in ("MySelfAttention", "MyLayerNorm") if name not in names]
    if missing:
        raise NameError(f"USE_MY_MODULES = True, but {' and '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} not defined: paste your classes from "
                        "notebook 02 into the cell above and run it (or set USE_MY_MODULES = False)")  # fmt: skip
    return names["MySelfAttention"], names["MyLayerNorm"]


@dataclass
class ImdbRun:
    """What ``run`` returns: the per-epoch history (training loss, validation scores), the model, the seconds."""

    history: History
    model: MyTransformer
    seconds: dict[str, float]


def checkpoint_path(prepared: Prepared, cfg: ImdbConfig, custom: bool, seed: int) -> str:
    """Where a run with ``cfg`` and ``seed`` on these data keeps its checkpoint (the student's modules
    separately): runs that differ only in their seed never replace each other's."""
    key = hashlib.sha256(
        repr(sorted(cfg.to_dict().items())).encode()
        + prepared.fingerprint().encode()
        + f"|seed {seed}".encode()
    )
    return str(
        cache_dir() / "checkpoints" / f"imdb-{key.hexdigest()[:16]}{'-custom' if custom else ''}.pt"
    )


def run(
    prepared: Prepared,
    cfg: ImdbConfig,
    device: torch.device,
    *,
    seed: int | None = None,
    checkpoint: bool = False,
    progress: bool = True,
    attention: ModuleFactory | None = None,
    layer_norm: ModuleFactory | None = None,
    callbacks: Sequence[Callable[[History], None]] = (),
    lr_flag: str = "lr",
) -> ImdbRun:
    """Train on "train" and validate each epoch on "valid". The test split is never touched here:
    choose settings on validation, then call ``score_test`` once, for the settings chosen.

    ``seed`` (default: the one ``helpers.setup`` was given) fixes the initial weights, dropout and the
    shuffling; the caller's random generators are left as they were. With ``checkpoint``, training
    resumes from the last epoch saved for this config, data and code, and retrains if any changed.
    A NaN or infinite loss (training or validation) stops the run with a ``Diverged`` error that
    names the rate as ``lr_flag``.
    """
    seed = current_seed() if seed is None else seed
    size, max_len = cfg.batch_size, cfg.max_len
    path = (
        checkpoint_path(prepared, cfg, bool(attention or layer_norm), seed) if checkpoint else None
    )
    start = time.perf_counter()
    with seeded(seed):
        model = build_model(prepared, cfg, attention, layer_norm)
        history = fit(
            model,
            lambda epoch: prepared.batches("train", size, max_len, shuffle=True, seed=seed + epoch),
            cfg.train_config(seed),
            device,
            eval_batches={"valid": prepared.batches("valid", size, max_len, shuffle=False)},
            checkpoint=path,
            identity={"model": cfg.to_dict(), "data": prepared.fingerprint()},
            # stops at the first NaN loss: its validation accuracy would look like a model's
            callbacks=[lambda h: check_finite_losses(h, cfg.lr, lr_flag), *callbacks],
            progress=progress,
        )
    check_finite_losses(history, cfg.lr, lr_flag)  # also when it resumed a finished run
    return ImdbRun(history, model, {"train": time.perf_counter() - start})


def score_test(
    prepared: Prepared, model: MyTransformer, device: torch.device, split: str = "test",
    precision: str = "auto",
) -> Metrics:  # fmt: skip
    """The test split's loss and accuracy: once, for the model whose settings validation chose (or
    another held-out ``split``'s, such as the ablation's choose file), in the run's ``precision``."""
    batches = prepared.batches(split, 64, model.max_len, shuffle=False)
    return evaluate(model, batches, device, precision=precision)


def misclassified(
    prepared: Prepared, model: MyTransformer, device: torch.device, k: int = 10,
    split: str = "valid", chars: int = 1500, precision: str = "auto",
) -> "pd.DataFrame":  # fmt: skip
    """The ``k`` reviews of ``split`` the model gets wrong most confidently, as a DataFrame (each
    review's first ``chars`` characters)."""
    import pandas as pd

    batches = prepared.batch_indices(split, 64, model.max_len, shuffle=False)
    order = [i for idx in batches for i in idx]
    probs = predict(
        model, prepared.batches(split, 64, model.max_len, shuffle=False), device, precision
    )  # (N, 2)
    labels = prepared.labels[split][order]
    wrong = (probs.argmax(dim=1) != labels).nonzero().flatten()
    confidence = probs[wrong].max(dim=1).values
    rows = []
    for j in confidence.argsort(descending=True)[:k].tolist():
        text = prepared.texts[split][order[wrong[j]]]
        rows.append({"confidence": round(confidence[j].item(), 3), "true": "pos" if labels[wrong[j]] else "neg",
                     "review": text[:chars] + ("…" if len(text) > chars else "")})  # fmt: skip
    return pd.DataFrame(rows)


@torch.no_grad()
def token_attention(
    prepared: Prepared, model: MyTransformer, device: torch.device, split: str, index: int
) -> dict:
    """One review's tokens, the attention each receives, and the model's prediction."""
    doc = prepared.docs[split][index][: model.max_len]
    ids, mask = pad_batch([doc], model.max_len)
    ids, mask = ids.to(device), mask.to(device)
    with evaluating(model):  # then the mode it had
        probs = torch.softmax(model(ids, mask).float(), dim=-1)[0].cpu()
        weights = model.token_attention(ids, mask)[0].cpu()
    return {
        "tokens": [prepared.itos[i] for i in ids[0].tolist()],
        "weights": weights.tolist(),
        "label": int(prepared.labels[split][index]),
        "predicted": int(probs.argmax()),
        "confidence": float(probs.max()),
    }


@torch.no_grad()
def token_occlusion(
    prepared: Prepared, model: MyTransformer, device: torch.device, split: str, index: int
) -> list[float]:
    """Leave one token out: for each token, how much the probability of the predicted class drops
    when that token alone is masked out (of attention and of the pooling). Positive: it supported
    the prediction; negative: it argued against it."""
    doc = prepared.docs[split][index][: model.max_len]
    ids, mask = pad_batch([doc], model.max_len)  # (1, T)
    ids, mask, T = ids.to(device), mask.to(device), ids.shape[1]
    if T == 1:
        return [0.0]  # nothing is left without the only token
    without = ~torch.eye(T, dtype=torch.bool, device=device)  # (T, T): row t drops token t
    drops = []
    with evaluating(model):  # then the mode it had
        full = torch.softmax(model(ids, mask).float(), dim=-1)[0]  # (2,)
        predicted = int(full.argmax())
        for rows in without.split(64):  # (≤64, T) reviews at a time
            probs = torch.softmax(model(ids.expand(len(rows), T), rows).float(), dim=-1)
            drops.append(full[predicted] - probs[:, predicted])
    return torch.cat(drops).cpu().tolist()
