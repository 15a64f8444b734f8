"""Pretrain a small BERT with masked language modelling (notebook 05's BERT + an MLM head), on the one
training loop, and save it in Hugging Face's format so that the fine-tuning lessons can load it.

    run = pretrain(MlmConfig(epochs=5), train_texts, eval_texts, "small-bert/")
    run.report["eval_perplexity"]      # one per epoch: exp(mean cross-entropy over the masked tokens)
    # python -m helpers.finetune --model small-bert/ ...   and   python -m helpers.minbert --model small-bert/ ...

The data: a WordPiece tokenizer trained on the training text (``helpers.tokenization.train``); every
line tokenised and the tokens packed end to end into sequences of ``seq_len``: [CLS] … [SEP]. Each
training epoch masks its batches afresh (BERT's 80/10/10 recipe, ``helpers.tokenization.mlm``) from a
seed of its own, so a resumed run sees the same masks; the held-out batches are masked once, with a
fixed seed, so every epoch's perplexity is measured on the very same masked tokens (``whole_words``:
whole words are chosen, every "##" piece with its word, for training and held-out batches alike).
"""

import copy
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING

import torch

from helpers.bert import BertConfig
from helpers.bert.mlm import BertForMaskedLM, mlm_outputs
from helpers.bert.save import save_pretrained
from helpers.config import Config, ConfigError, positive
from helpers.env import pick_device, seeded, synchronize, with_gradients
from helpers.files import json_digest, save_into, write_json
from helpers.source import code_digest
from helpers.tokenization.mlm import (
    IGNORE,
    continuation_ids,
    mask_tokens,
    non_special_ids,
    special_tokens_mask,
    whole_word_choice,
)
from helpers.tokenization.train import train_wordpiece

if TYPE_CHECKING:
    import transformers
from helpers.training import History, TrainConfig, fit, perplexity
from helpers.training.loop import make_optimizer
from helpers.training.precision import autocast, choose_precision

# inputs (B, T), attention mask (B, T), labels (B, T)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
# In the save folder: the model, optimizer and history after each epoch; what a resumed run must
# reuse (tokenizer, epochs chosen).
CHECKPOINT, STATE = "checkpoint.pt", "mlm-state.json"
# --minutes plans for epochs 10% slower than the probe (a busy machine, the last batch).
SAFETY = 1.1
EVAL_MASK_SEED = 1234  # the held-out masks: the same for every epoch and every run


class MlmConfig(Config):
    """A pretraining run: the small BERT's shape, the tokenizer, the masking and the optimisation.
    Give ``epochs`` or ``minutes`` (a time budget: as many whole epochs as fit, timed on a probe)."""

    layers: int = 4
    hidden: int = 128  # with 4 layers: 15 epochs of wiki.valid.tokens in ~8 min on one CPU thread
    heads: int = 4
    intermediate: int | None = None  # the feed-forward width; None: 4 × hidden, as BERT
    vocab_size: int = 8000  # the WordPiece vocabulary asked for (a small text may give fewer)
    seq_len: int = 128  # tokens per packed sequence, [CLS] and [SEP] included
    max_positions: int = 512  # position embeddings (fine-tuning may use longer inputs than seq_len)
    epochs: int | None = None
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 1e-3  # a small BERT from scratch takes a large rate (BERT-base used 1e-4)
    weight_decay: float = 0.01  # AdamW's, as BERT's pretraining; larger keeps the weights smaller
    warmup: float = 0.06  # fraction of the steps warming the rate up, then linear decay to 0
    mask_prob: float = 0.15
    whole_words: bool = False  # choose whole words (all their "##" pieces), not single tokens
    dropout: float = 0.1
    min_frequency: int = 2  # a WordPiece merge needs this many occurrences
    lowercase: bool = True
    seed: int = 0  # the model's initial weights, dropout, shuffling and the training masks
    precision: str = "auto"

    def __post_init__(self) -> None:
        positive(self, layers=self.layers, hidden=self.hidden, heads=self.heads,
                 intermediate=self.intermediate, vocab_size=self.vocab_size, seq_len=self.seq_len,
                 max_positions=self.max_positions, epochs=self.epochs, minutes=self.minutes,
                 batch_size=self.batch_size, lr=self.lr, min_frequency=self.min_frequency)  # fmt: skip
        if (self.epochs is None) == (self.minutes is None):
            raise ConfigError("MlmConfig needs epochs or minutes, not both and not neither")
        if self.hidden % self.heads:
            raise ConfigError(
                f"MlmConfig.hidden={self.hidden} is not divisible by heads={self.heads}: each head "
                f"takes an equal slice of the hidden vector (try heads={_divisor(self.hidden, self.heads)})"
            )
        if self.seq_len < 3:
            raise ConfigError(
                f"MlmConfig.seq_len must be at least 3 ([CLS], a token, [SEP]), not {self.seq_len}"
            )
        if self.seq_len > self.max_positions:
            raise ConfigError(
                f"MlmConfig.seq_len={self.seq_len} exceeds max_positions={self.max_positions}"
            )
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"MlmConfig.mask_prob must be in (0, 1), not {self.mask_prob!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"MlmConfig.dropout must be in [0, 1), not {self.dropout!r}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"MlmConfig.seed must be in [0, 2**63), not {self.seed!r}")
        self.train_config(1)  # warm-up and precision are checked there

    def bert_config(self, vocab_size: int) -> BertConfig:
        return BertConfig(vocab_size=vocab_size, hidden_size=self.hidden, num_hidden_layers=self.layers,
                          num_attention_heads=self.heads, intermediate_size=self.intermediate or 4 * self.hidden,
                          max_position_embeddings=self.max_positions, hidden_dropout_prob=self.dropout,
                          attention_probs_dropout_prob=self.dropout)  # fmt: skip

    def train_config(self, epochs: int) -> TrainConfig:
        """AdamW with ``weight_decay``, warm-up then linear decay to 0, gradients clipped at 1."""
        return TrainConfig(epochs=epochs, lr=self.lr, weight_decay=self.weight_decay, warmup=self.warmup,
                           schedule="linear", precision=self.precision, seed=self.seed)  # fmt: skip


def _divisor(hidden: int, heads: int) -> int:
    """The number of heads nearest ``heads`` that divides ``hidden``."""
    return min((h for h in range(1, hidden + 1) if hidden % h == 0), key=lambda h: abs(h - heads))


# --- data ------------------------------------------------------------------------------------------


@dataclass
class Packed:
    """Token sequences of one length: ids (N, T) and attention mask (N, T) (the last one may be padded)."""

    ids: torch.Tensor
    mask: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.mask.sum())

    def digest(self) -> str:
        return hashlib.sha256(self.ids.numpy().tobytes()).hexdigest()[:16]


def pack(
    tokenizer: "transformers.PreTrainedTokenizerBase", texts: Sequence[str], seq_len: int
) -> Packed:
    """Every text tokenised and the tokens laid end to end, cut into sequences of ``seq_len - 2``
    tokens, each framed as [CLS] … [SEP]; the last one is padded with [PAD] (mask 0)."""
    pieces = (
        tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        if texts
        else []
    )
    stream = [i for piece in pieces for i in piece]
    if not stream:
        raise ValueError("the text holds no tokens: nothing to pretrain on or to evaluate")
    body = seq_len - 2
    rows = math.ceil(len(stream) / body)
    ids = torch.full((rows, seq_len), tokenizer.pad_token_id, dtype=torch.long)  # (N, T)
    mask = torch.zeros(rows, seq_len, dtype=torch.long)
    for r in range(rows):
        chunk = stream[r * body : (r + 1) * body]
        ids[r, : len(chunk) + 2] = torch.tensor(
            [tokenizer.cls_token_id, *chunk, tokenizer.sep_token_id]
        )
        mask[r, : len(chunk) + 2] = 1
    return Packed(ids, mask)


def masked_batches(
    data: Packed, tokenizer: "transformers.PreTrainedTokenizerBase", batch_size: int, prob: float,
    seed: int, shuffle: bool, whole_words: bool = False,
) -> list[Batch]:  # fmt: skip
    """Batches ``(inputs, attention_mask, labels)``: the sequences (shuffled with ``seed`` if asked)
    masked with BERT's recipe from a generator seeded with ``seed``; the same seed, the same batches.
    ``whole_words``: words are chosen, each with all its pieces (``whole_word_choice``)."""
    generator = torch.Generator().manual_seed(seed)
    order = (
        torch.randperm(len(data.ids), generator=generator)
        if shuffle
        else torch.arange(len(data.ids))
    )
    specials = tokenizer.all_special_ids
    random_ids = non_special_ids(len(tokenizer), specials)
    continues = continuation_ids(tokenizer) if whole_words else None
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = data.ids[idx], data.mask[idx]  # (B, T)
        special = special_tokens_mask(ids, specials)
        chosen = (
            whole_word_choice(ids, special, continues, prob, generator) if whole_words else None
        )
        inputs, labels = mask_tokens(
            ids, special, tokenizer.mask_token_id, len(tokenizer),
            prob=prob, generator=generator, random_ids=random_ids, chosen=chosen,
        )  # fmt: skip
        batches.append((inputs, mask, labels))
    return batches


def split_eval(lines: Sequence[str], fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """(train, eval): the last ``fraction`` of the lines held out (a contiguous slice: no paragraph is
    on both sides except, at most, the one cut)."""
    if not 0 < fraction < 1:
        raise ValueError(
            f"the held-out fraction (--eval-fraction) must be between 0 and 1, not {fraction!r}"
        )
    cut = len(lines) - max(1, round(fraction * len(lines)))
    if cut < 1:
        raise ValueError(f"{len(lines)} line{'s' * (len(lines) != 1)} cannot be split into training and "
                         "held-out text; give more lines or an --eval-file")  # fmt: skip
    return list(lines[:cut]), list(lines[cut:])


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class MlmRun:
    """What ``pretrain`` returns: the history (per epoch: train_loss, eval_loss, eval_accuracy (masked
    tokens guessed right), seconds), the trained model, its tokenizer and the JSON report."""

    history: History
    model: BertForMaskedLM
    tokenizer: "transformers.PreTrainedTokenizerBase"
    report: dict = field(default_factory=dict)


@with_gradients  # whatever a notebook cell set before
def probe_epoch_seconds(
    model: BertForMaskedLM, train: list[Batch], held_out: list[Batch], cfg: MlmConfig,
    device: torch.device, min_steps: int = 8, max_steps: int = 40, min_seconds: float = 1.0,
) -> float:  # fmt: skip
    """Seconds one epoch should take (training steps + the evaluation), timed on a copy of the model
    (the run's own weights stay untouched). Two untimed AdamW steps warm up; then steps are timed one
    by one until ``min_steps`` and ``min_seconds`` are both reached (at most ``max_steps``), and the
    median is used, so one slow step (a first allocation, another process) cannot shrink the plan.
    The steps run in the run's precision (bf16/fp16 autocast on a GPU), and a GPU is synchronised
    around each, so that its queued work is timed too."""
    probe = copy.deepcopy(model).to(device).train()
    optimizer = make_optimizer(cfg.train_config(1), probe)
    precision = choose_precision(device, cfg.precision)

    def timed(run: Callable[[Batch], None], batch: Batch) -> float:
        synchronize(device)
        started = time.perf_counter()
        with autocast(device, precision):
            run(tuple(t.to(device) for t in batch))
        synchronize(device)
        return time.perf_counter() - started

    def step(batch: Batch) -> None:
        loss, _, _ = mlm_outputs(probe, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for i in range(2):  # warm-up, untimed
        timed(step, train[i % len(train)])
    steps: list[float] = []
    while len(steps) < max_steps and (len(steps) < min_steps or sum(steps) < min_seconds):
        steps.append(timed(step, train[(len(steps) + 2) % len(train)]))
    probe.eval()
    with torch.no_grad():
        evals = [timed(lambda b: mlm_outputs(probe, b), b) for b in held_out[:3]]
    return median(steps) * len(train) + median(evals) * len(held_out)


def read_state(folder: Path) -> dict:
    """The run's state in ``folder`` (tokenizer key, plan, settings, whether it finished); {} if none."""
    try:
        state = json.loads((Path(folder) / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(folder: Path, **changes) -> None:
    write_json(folder / STATE, {**read_state(folder), **changes})


def forget_settings(folder: Path) -> None:
    """A run that kept no epoch (its memory ran out) no longer holds ``folder`` for its settings: the
    smaller run the error asks for may use it (the tokenizer stays, reused if its settings match)."""
    state = read_state(folder)
    if "settings" in state and not (folder / CHECKPOINT).exists():
        del state["settings"]
        write_json(folder / STATE, state)


def texts_key(train_texts: Sequence[str], eval_texts: Sequence[str]) -> str:
    """A short digest of a run's training and held-out lines (kept in its state)."""
    return json_digest({"train": list(train_texts), "eval": list(eval_texts)})


def load_or_train_tokenizer(
    cfg: MlmConfig, texts: Sequence[str], folder: Path
) -> tuple["transformers.PreTrainedTokenizerBase", str | None]:
    """(tokenizer, None) for the one a run with the same text, tokenizer settings and training code
    (``train_wordpiece``) saved in ``folder`` (a resumed run must see the same ids, whatever version
    of ``tokenizers`` runs the resume), else
    (a new one trained on ``texts``, its key): ``pretrain`` saves it once the data is known to be good."""
    from transformers import AutoTokenizer

    key = json_digest({"texts": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
                   "vocab_size": cfg.vocab_size, "lowercase": cfg.lowercase,
                   "min_frequency": cfg.min_frequency, "code": code_digest(train_wordpiece)})  # fmt: skip
    if read_state(folder).get("tokenizer") == key:
        try:
            return AutoTokenizer.from_pretrained(str(folder)), None
        except Exception as err:  # the files are gone or damaged (in many ways): trained again
            # (deterministic: the same ids, so a checkpoint resumes; other ids retrain it, saying so)
            print(f"note: the tokenizer saved in {folder} cannot be read ({type(err).__name__}: "
                  f"{err}): training it again", file=sys.stderr)  # fmt: skip
    tokenizer = train_wordpiece(list(texts), cfg.vocab_size, lowercase=cfg.lowercase,
                                min_frequency=cfg.min_frequency)  # fmt: skip
    return tokenizer, key


def plan_epochs(
    cfg: MlmConfig, folder: Path, key: str, estimate: Callable[[], float], spent: float
) -> dict:
    """How many epochs ``cfg.minutes`` allows: read from the folder's state if a run with the same
    settings chose already (so a resumed run keeps its schedule), else timed now and written there."""
    plan = read_state(folder).get("plan")
    if isinstance(plan, dict) and plan.get("key") == key:
        return {**plan, "reused": True}
    seconds = estimate()
    budget = cfg.minutes * 60 - spent
    epochs = max(1, int(budget // (SAFETY * seconds)))
    plan = {"key": key, "minutes": cfg.minutes, "estimated_epoch_seconds": seconds,
            "seconds_before_training": spent, "epochs": epochs,
            "rule": "whole epochs that fit in the budget left after tokenising, at the probe's speed "
                    f"plus {SAFETY - 1:.0%} (at least 1); the learning rate decays to 0 at the last"}  # fmt: skip
    _write_state(folder, plan=plan)
    return {**plan, "reused": False}


def stop_if_diverged(cfg: MlmConfig) -> Callable[[History], None]:
    """A callback that stops training (a ValueError, before the epoch is checkpointed) once the training
    loss is nan or infinite or the held-out perplexity overflows: the run has diverged."""

    def check(history: History) -> None:
        train, held = history["train_loss"][-1], history["eval_loss"][-1]
        if not (math.isfinite(train) and math.isfinite(perplexity(held))):
            raise ValueError(f"training diverged: after epoch {len(history['eval_loss'])} the training "
                             f"loss was {train:.4g} and the held-out loss {held:.4g} (--lr {cfg.lr:g}); "
                             "start again with a smaller --lr and a new --save folder")  # fmt: skip

    return check


def pretrain(
    cfg: MlmConfig,
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    save_dir: str | Path,
    device: torch.device | None = None,
    progress: bool = True,
    *,
    callbacks: Sequence[Callable[[History], None]] = (),
) -> MlmRun:
    """Train a WordPiece tokenizer and a small BERT with MLM on ``train_texts``; score the held-out
    MLM perplexity on ``eval_texts`` after every epoch; checkpoint every epoch in ``save_dir`` (a
    second call with the same settings and text resumes); save the model and tokenizer there in
    Hugging Face's format."""
    started = time.perf_counter()
    device = pick_device() if device is None else device
    folder = Path(save_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not train_texts or not eval_texts:
        raise ValueError(f"the {'training' if not train_texts else 'held-out'} text is empty")
    seconds: dict = {}
    start = time.perf_counter()
    tokenizer, new_key = load_or_train_tokenizer(cfg, train_texts, folder)
    seconds["tokenizer"] = time.perf_counter() - start
    start = time.perf_counter()
    train, held = (
        pack(tokenizer, train_texts, cfg.seq_len),
        pack(tokenizer, eval_texts, cfg.seq_len),
    )
    eval_batches = masked_batches(held, tokenizer, 2 * cfg.batch_size, cfg.mask_prob,
                                  EVAL_MASK_SEED, shuffle=False, whole_words=cfg.whole_words)  # fmt: skip
    if not any((labels != IGNORE).any() for _, _, labels in eval_batches):
        raise ValueError(f"no token of the held-out text ({held.tokens} tokens, special tokens "
                         "included) was chosen for the perplexity; give a longer --eval-file, a larger "
                         "--eval-fraction or a larger --mask-prob")  # fmt: skip
    if new_key is not None:  # saved only now: a failed check leaves the folder as it was
        save_into(folder, lambda tmp: tokenizer.save_pretrained(str(tmp)))
        _write_state(folder, tokenizer=new_key)
    seconds["pack"] = time.perf_counter() - start
    bert_cfg = cfg.bert_config(len(tokenizer))

    def epoch_batches(epoch: int) -> list[Batch]:  # a seed per epoch: fresh masks, repeatable
        return masked_batches(train, tokenizer, cfg.batch_size, cfg.mask_prob,
                              (cfg.seed * 100_003 + epoch) % 2**63, shuffle=True, whole_words=cfg.whole_words)  # fmt: skip

    identity = {"model": bert_cfg.to_dict(), "train_data": train.digest(), "eval_data": held.digest(),
                "batch_size": cfg.batch_size, "mask_prob": cfg.mask_prob}  # fmt: skip
    if cfg.whole_words:  # only then: runs saved before the option keep their identity
        identity["whole_words"] = True
    with seeded(cfg.seed):
        model = BertForMaskedLM(bert_cfg)
    plan = None
    epochs = cfg.epochs
    if epochs is None:
        # whole_words is in identity when on; left out here, earlier runs keep their plan's key
        settings = {k: v for k, v in cfg.to_dict().items() if k != "whole_words"}
        key = json_digest({**identity, "cfg": settings})
        first = epoch_batches(0)
        plan = plan_epochs(cfg, folder, key,
                           lambda: probe_epoch_seconds(model, first, eval_batches, cfg, device),
                           time.perf_counter() - started)  # fmt: skip
        epochs = plan["epochs"]
    ran = []  # the epochs this call trained (the rest came from the checkpoint)
    _write_state(
        folder, settings=cfg.to_dict(), texts=texts_key(train_texts, eval_texts), finished=False
    )  # the command refuses other settings here; `compare`, an unfinished run
    start = time.perf_counter()
    with seeded(cfg.seed):
        history = fit(
            model, epoch_batches, cfg.train_config(epochs), device,
            eval_batches={"eval": eval_batches}, outputs=mlm_outputs,
            callbacks=[stop_if_diverged(cfg), lambda h: ran.append(len(h["epoch"])), *callbacks],
            checkpoint=folder / CHECKPOINT, identity=identity, progress=progress,
        )  # fmt: skip
    seconds["train"] = time.perf_counter() - start  # this call's: less when it resumed
    start = time.perf_counter()
    save_pretrained(model, folder, tokenizer)
    _write_state(folder, finished=True)
    seconds["save"] = time.perf_counter() - start
    seconds["per_epoch"] = history["seconds"]  # every epoch's, those of earlier calls too
    seconds["all_epochs"] = sum(history["seconds"])  # what tokens_seen took
    seconds["total"] = time.perf_counter() - started
    per_epoch = train.tokens
    report = {
        "eval_perplexity": [perplexity(x) for x in history["eval_loss"]],
        "eval_loss": history["eval_loss"],
        "eval_masked_accuracy": history["eval_accuracy"],
        "train_loss": history["train_loss"],
        "epochs": epochs,
        "resumed_after_epoch": epochs - len(ran),
        "tokenizer_reused": new_key is None,
        "tokens_seen": per_epoch * epochs,
        "tokens_seen_per_epoch": [per_epoch * (e + 1) for e in range(epochs)],  # cumulative
        "seconds": seconds,
        "data": {
            "train_lines": len(train_texts),
            "eval_lines": len(eval_texts),
            "train_sequences": len(train.ids),
            "eval_sequences": len(held.ids),
            "train_tokens": train.tokens,
            "eval_tokens": held.tokens,
            "eval_masked_tokens": sum(int((b[2] != IGNORE).sum()) for b in eval_batches),
            "vocab_size": len(tokenizer),
        },  # fmt: skip
        "model": bert_cfg.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "plan": plan,
        "config": cfg.to_dict(),
        "saved": str(folder),
        "checkpoint": str(folder / CHECKPOINT),
        "device": device.type,
        "precision": choose_precision(device, cfg.precision),  # "auto" resolved
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    return MlmRun(history, model, tokenizer, report)
