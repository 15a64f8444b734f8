"""Notebook 07's runs: train the small GPT on a text with the one trainer, save and load it, sample
from it, and the measurements of the variant study (per-sentence loss, the future-token leak).

    run = train(text, GPTRunConfig(level="char", attention="additive", iters=2000), device)
    run.report["dev_loss"], sample(run.model, run.vocab, "ROMEO:", 200)
"""

import copy
import hashlib
import json
import math
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from helpers.config import Config, ConfigError, positive
from helpers.corpora import windows
from helpers.env import seeded, synchronize, with_gradients
from helpers.files import atomic_write, write_json
from helpers.gpt.data import LEVELS, Corpus, Vocab, build_corpus
from helpers.gpt.model import GPT, GPTConfig
from helpers.training import History, TrainConfig, distributed, fit, generate, perplexity
from helpers.training.checkpoints import not_the_files_fault
from helpers.training.loop import Diverged, check_finite_losses, evaluating, make_optimizer

SAFETY = 1.1  # --minutes plans for steps 10% slower than the probe (a busy machine)
DEV_SEED = 1234  # every run is scored on the same dev windows, whatever its own seed
MAX_ROUND = 2000  # batches between evaluations at most (a round's batches are drawn up front)


class GPTRunConfig(Config):
    """One training run: the data's level, the model, and the budget (``iters`` or ``minutes``)."""

    level: str = "char"  # char | word
    layers: int = 4
    heads: int = 4
    embd: int = 128
    block_size: int = 128
    attention: str = "dot"
    mask: str = "inf"
    additive_dim: int | None = (
        4  # the additive scorer's width: 4 keeps it within 3x dot's time on a CPU
    )
    dropout: float = 0.0
    iters: int | None = None  # optimizer steps (in one process)
    minutes: float | None = None  # or: as many steps as fit in this budget (timed on a probe)
    batch_size: int = 32
    accumulate: int = 1  # batches per optimizer step, over all processes
    lr: float = 2e-3
    warmup: float = 0.02  # then cosine decay to 0
    weight_decay: float = 0.1
    evals: int = 20  # dev evaluations along the run (the curve's points; more if a round would pass 2,000 batches)
    eval_batches: int = 20  # batches of dev windows per evaluation
    seed: int = 42

    def __post_init__(self) -> None:
        positive(self, iters=self.iters, minutes=self.minutes, batch_size=self.batch_size, lr=self.lr,
                 evals=self.evals, eval_batches=self.eval_batches, additive_dim=self.additive_dim,
                 accumulate=self.accumulate)  # fmt: skip
        if not 0 <= self.seed < 2**31:
            raise ConfigError(f"GPTRunConfig.seed must be between 0 and 2**31 - 1, not {self.seed}")
        if (self.iters is None) == (self.minutes is None):
            raise ConfigError("GPTRunConfig needs iters or minutes, not both and not neither")
        if self.level not in LEVELS:
            raise ConfigError(
                f"GPTRunConfig.level must be one of {', '.join(LEVELS)}, not {self.level!r}"
            )
        self.model_config(2)  # the model's own checks, now
        try:
            self.train_config(1)  # the warm-up and the weight decay, now
        except ConfigError as err:  # named as the student wrote them
            raise ConfigError(str(err).replace("TrainConfig.", "GPTRunConfig.")) from None

    def train_config(self, rounds: int) -> TrainConfig:
        return TrainConfig(epochs=rounds, lr=self.lr, schedule="cosine", warmup=self.warmup,
                           weight_decay=self.weight_decay, clip=1.0, precision="fp32",
                           accumulate=self.accumulate, seed=self.seed)  # fmt: skip

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size, layers=self.layers,
                         heads=self.heads, embd=self.embd, attention=self.attention, mask=self.mask,
                         additive_dim=self.additive_dim if self.attention == "additive" else None,
                         dropout=self.dropout)  # fmt: skip


@dataclass
class GPTRun:
    """What ``train`` returns: the history (per evaluation: step, train_loss, dev_loss, seconds), the
    model, its vocabulary and the JSON report."""

    history: History
    model: GPT
    vocab: Vocab
    report: dict = field(default_factory=dict)


@with_gradients  # whatever a notebook cell set before
def step_seconds(model: GPT, batch: tuple[torch.Tensor, torch.Tensor], cfg: GPTRunConfig,
                 device: torch.device, steps: int = 5) -> float:  # fmt: skip
    """Seconds per optimizer step, timed on a copy of ``model`` (its weights stay untouched)."""
    probe = copy.deepcopy(model).to(device).train()
    optimizer = make_optimizer(TrainConfig(lr=cfg.lr), probe)
    x, y = (t.to(device) for t in batch)
    for i in range(steps + 1):
        if i == 1:
            synchronize(device)
            started = time.perf_counter()
        F.cross_entropy(probe(x).flatten(0, 1), y.flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return (time.perf_counter() - started) / steps


def plan_iters(cfg: GPTRunConfig, per_step: float, spent: float = 0.0) -> int:
    """Steps that fit in ``cfg.minutes`` after the ``spent`` seconds of reading and probing: training
    at the probe's speed plus 10%, and the evaluations (a forward pass costs about a third of a step)."""
    eval_seconds = cfg.evals * cfg.eval_batches * per_step / 3
    return max(1, int((cfg.minutes * 60 - spent - eval_seconds) / (SAFETY * per_step)))


PLAN = "plan.json"  # written before anything else: the run's settings, data and length
WRITER = "helpers.gpt"  # plan.json's "written_by": a folder of this module's runs


def run_key(cfg: GPTRunConfig, corpus: Corpus) -> str:
    """The run's identity (its settings and its data): a folder with the same key resumes."""
    return hashlib.sha256(json.dumps([cfg.to_dict(), corpus.digest()]).encode()).hexdigest()[:16]


def read_plan(folder: str | Path | None) -> dict:
    """``folder``/plan.json as written by ``train`` (``key``, ``iters``, and since they were recorded
    ``settings`` and ``data``); {} if there is none or it is some other file."""
    try:
        plan = (
            json.loads((Path(folder) / PLAN).read_text(encoding="utf-8"))
            if folder is not None
            else {}
        )
    except (OSError, ValueError):
        return {}
    if not isinstance(plan, dict):
        return {}
    iters = plan.get("iters")  # a whole number, as written: not hand-edited to "20" or -5
    ours = isinstance(plan.get("key"), str) and type(iters) is int and iters > 0
    return plan if ours and plan.get("written_by", WRITER) == WRITER else {}


def train(
    text: str | Corpus,
    cfg: GPTRunConfig,
    device: torch.device | str,
    save: str | Path | None = None,
    progress: bool = True,
) -> GPTRun:
    """Train a GPT on ``text`` (split 90/10 by ``build_corpus``, or a ``Corpus`` already built at
    ``cfg.level``); with ``save``, checkpoint every evaluation (the same call again resumes; other
    settings train that folder again: ``python -m helpers.gpt train`` refuses instead) and write the
    model there for ``load_model``. Bad input raises before anything is written. Under torchrun the
    processes share each round's batches; rank 0 plans, evaluates and writes. The caller's random
    generator is given back as it was."""
    device = torch.device(device)  # "cpu" works too
    with seeded(cfg.seed):  # the weights and the dropout masks: from the run's seed
        return _train(text, cfg, device, save, progress)


def _train(text: str | Corpus, cfg: GPTRunConfig, device: torch.device, save: str | Path | None,
           progress: bool) -> GPTRun:  # fmt: skip
    started = time.perf_counter()
    place = distributed.start(device)
    corpus = text if isinstance(text, Corpus) else build_corpus(text, cfg.level)
    if corpus.vocab.level != cfg.level:
        raise ValueError(f"the corpus is at {corpus.vocab.level} level but GPTRunConfig.level is "
                         f"{cfg.level!r}; build it with build_corpus(text, {cfg.level!r})")  # fmt: skip
    if cfg.level == "word" and not len(corpus.train):  # cut = int(0.9 * lines) is 0: one line
        raise ValueError("word level splits the text 90/10 by lines; the text has 1 line, so the "
                         "training split is empty (a smaller block size cannot help); give a text "
                         "of several lines, or GPTRunConfig.level 'char'")  # fmt: skip
    for name, part in (("training", corpus.train), ("dev", corpus.dev)):
        if len(part) < cfg.block_size + 1:
            raise ValueError(f"the {name} split has {len(part)} tokens, fewer than "
                             f"GPTRunConfig.block_size + 1 = "
                             f"{cfg.block_size + 1} (a window and its target); give a longer text or a "
                             "smaller block size")  # fmt: skip
    model = GPT(cfg.model_config(len(corpus.vocab)))
    g = torch.Generator().manual_seed(cfg.seed)
    first = windows(corpus.train, 1, cfg.block_size, cfg.batch_size, g)[0]  # fails here if too big
    dev = windows(corpus.dev, cfg.eval_batches, cfg.block_size, cfg.batch_size,
                  torch.Generator().manual_seed(DEV_SEED))  # fmt: skip
    folder = Path(save) if save is not None else None
    key = run_key(cfg, corpus)
    plan = read_plan(folder)
    if plan.get("key") != key:  # a new run: decide its length now (a resumed one keeps its plan)
        per_step = step_seconds(model, first, cfg, device) if cfg.minutes else None
        batches = (cfg.iters * cfg.accumulate if cfg.iters else  # N processes share the batches
                   plan_iters(cfg, per_step, time.perf_counter() - started) * place.world)  # fmt: skip
        plan = {"key": key, "iters": batches, "probe_step_seconds": per_step, "written_by": WRITER,
                "settings": cfg.to_dict(), "data": corpus.digest()}  # fmt: skip
        if folder is not None and place.main:
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / PLAN, plan)
    iters = distributed.agree(plan["iters"])  # batches in all: rank 0's plan
    share = distributed.per_process(cfg.accumulate, place.world)  # batches per step per process
    group = share * place.world  # batches per optimizer step, all processes together
    # rounds end on whole steps; batches short of a step join the first round
    steps, rest = divmod(iters, group)
    rounds = max(1, min(steps, max(cfg.evals, math.ceil(iters / MAX_ROUND))))
    per_round = [(steps // rounds + (r < steps % rounds)) * group for r in range(rounds)]
    per_round[0] += rest

    def round_batches(r: int) -> list:  # a seed per round: the same batches after a resume
        g = torch.Generator().manual_seed(cfg.seed * 1000 + r)
        return windows(corpus.train, per_round[r], cfg.block_size, cfg.batch_size, g)

    round_steps = [math.ceil(n // place.world / share) for n in per_round]  # optimizer steps
    # the first round may be a step longer: the schedule spans the steps the rounds take
    history = fit(model, round_batches, cfg.train_config(rounds), device, eval_batches={"dev": dev},
                  checkpoint=folder / "checkpoint.pt" if folder else None,
                  identity={"run": cfg.to_dict(), "data": corpus.digest(), "rounds": per_round},
                  progress=progress, total_steps=sum(round_steps))  # fmt: skip
    history["step"] = [sum(round_steps[:e]) for e in history["epoch"]]
    if not place.main:  # the other processes trained; rank 0 evaluated and reports
        return GPTRun(history, model, corpus.vocab)
    check_diverged(history, cfg.lr, len(corpus.vocab))
    report = make_report(cfg, corpus, model, history, per_round, time.perf_counter() - started)
    report.update(processes=place.world, batches=sum(per_round), accumulate=cfg.accumulate,
                  iters=sum(round_steps), device=device.type, precision="fp32")  # fmt: skip
    if folder is not None and place.main:
        save_model(model, corpus.vocab, folder)
    return GPTRun(history, model, corpus.vocab, report)


def check_diverged(history: History, lr: float, vocab_size: int) -> None:
    """A ``Diverged`` error if a loss is NaN, infinite or over three times a uniform guess's (ln V
    nats per token; a model starts near it): such a run's curve and samples are no result."""
    uniform = math.log(vocab_size)
    check_finite_losses(history, lr, "GPTRunConfig.lr")
    for name in ("train_loss", "dev_loss"):
        if (worst := max(history[name])) > 3 * uniform:
            raise Diverged(f"training diverged: the {name.replace('_', ' ')} reached {worst:.3g} nats "
                           f"per token, over three times a uniform guess's {uniform:.2f} (ln of "
                           f"{vocab_size} tokens), at GPTRunConfig.lr {lr:g}; give a smaller "
                           "GPTRunConfig.lr")  # fmt: skip


def make_report(cfg: GPTRunConfig, corpus: Corpus, model: GPT, history: History,
                per_round: list[int], seconds: float) -> dict:  # fmt: skip
    tokens = sum(per_round) * cfg.batch_size * cfg.block_size
    train_seconds = sum(history["train_seconds"])
    per_token = train_seconds / tokens
    return {
        "config": cfg.to_dict(), "model": model.config.to_dict(),
        "parameters": model.num_parameters(), "vocab_size": len(corpus.vocab),
        "train_tokens": len(corpus.train), "dev_tokens": len(corpus.dev),
        "iters": sum(per_round), "tokens_seen": tokens,
        "dev_loss": history["dev_loss"][-1], "dev_perplexity": perplexity(history["dev_loss"][-1]),
        "dev_losses": history["dev_loss"], "train_losses": history["train_loss"], "steps": history["step"],
        "tokens_per_second": 1 / per_token, "seconds_per_epoch": per_token * len(corpus.train),
        "train_seconds": train_seconds, "seconds": seconds,
        "note": "losses in nats per token; an epoch is one pass's worth of training tokens; "
                "tokens_per_second counts training steps only (the dev evaluations excluded)",
    }  # fmt: skip


def save_model(model: GPT, vocab: Vocab, folder: str | Path) -> Path:
    """``folder``/model.pt: the config, the vocabulary and the weights, written atomically."""
    state = {
        "config": model.config.to_dict(),
        "vocab": vocab.to_dict(),
        "weights": model.state_dict(),
    }
    return atomic_write(Path(folder) / "model.pt", lambda tmp: torch.save(state, tmp))


def load_model(folder: str | Path, device: torch.device | str = "cpu") -> tuple[GPT, Vocab]:
    """The model and vocabulary ``save_model`` (or ``python -m helpers.gpt train --save``) wrote."""
    path = Path(folder) / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; train a model there first: python -m "
                                f"helpers.gpt train ... --save {folder}")  # fmt: skip
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # moved once built
        model = GPT(GPTConfig(**state["config"]))
        model.load_state_dict(state["weights"])
        vocab = Vocab(**state["vocab"])
        if len(vocab) != model.config.vocab_size:
            raise ValueError(
                f"{len(vocab)} tokens in the vocabulary, {model.config.vocab_size} in the model"
            )
    except Exception as e:  # a truncated or foreign file: say which, not torch's traceback
        if not_the_files_fault(e):  # permissions, a disk error, memory: the file may be good
            e.add_note(f"(while reading the saved model {path})")
            raise
        detail = " ".join(str(e).split())[:200]
        if isinstance(e, pickle.UnpicklingError):  # not torch's advice to load it unsafely
            detail = "not a file torch.save wrote"
        raise ValueError(f"{path} is not a model saved by helpers.gpt ({type(e).__name__}: {detail}); "
                         f"train it again with --save {folder}") from None  # fmt: skip
    return model.to(device).eval(), vocab


def _same_vocab(model: GPT, vocab: Vocab) -> None:
    if len(vocab) != model.config.vocab_size:  # another corpus's: wrong text, or an IndexError
        raise ValueError(f"the vocabulary has {len(vocab)} tokens but the model was built for "
                         f"{model.config.vocab_size}: pass the vocabulary it was trained with "
                         "(run.vocab)")  # fmt: skip


def _prompt_ids(vocab: Vocab, prompt: str) -> list[int]:
    """``prompt``'s ids to go on from: at word level without the ``<eos>`` that ``Vocab.tokens`` puts
    after the last line (unless the prompt ends a line), so the model continues its last word."""
    ids = vocab.encode(prompt)
    if vocab.level == "word" and ids and not prompt.rstrip(" \t").endswith("\n"):
        ids = ids[:-1]
    if not ids:
        raise ValueError("the prompt is empty; give at least one character or word")
    return ids


def sample(model: GPT, vocab: Vocab, prompt: str, tokens: int, temperature: float = 1.0,
           top_k: int | None = None, seed: int = 0) -> str:  # fmt: skip
    """The ``tokens`` tokens the model writes after ``prompt`` (decoded to text), one at a time.
    ``temperature`` 0 (or one that is 0 in float32) takes the most likely token each time."""
    _same_vocab(model, vocab)
    ids = _prompt_ids(vocab, prompt)
    device = next(model.parameters()).device
    idx = torch.tensor([ids], device=device)  # (1, T)
    g = torch.Generator().manual_seed(seed)
    out = generate(model, idx, tokens, model.config.block_size, temperature, g, top_k)
    return vocab.decode(out[0, len(ids) :].tolist())


@torch.no_grad()
def sentence_losses(model: GPT, vocab: Vocab, sentences: Sequence[str]) -> list[float]:
    """Each sentence's mean loss (nats per token) when the model reads it from its first token."""
    _same_vocab(model, vocab)
    device = next(model.parameters()).device
    losses = []
    with evaluating(model):
        for sentence in sentences:
            ids = torch.tensor(
                [vocab.encode(sentence)[: model.config.block_size + 1]], device=device
            )
            if ids.shape[1] < 2:
                raise ValueError(f"{sentence!r} has fewer than 2 tokens: nothing to predict")
            logits = model(ids[:, :-1])  # (1, T, vocab)
            losses.append(F.cross_entropy(logits[0], ids[0, 1:]).item())
    return losses


@torch.no_grad()
def future_leak(model: GPT, ids: torch.Tensor, position: int, seed: int = 0) -> float:
    """How much the predictions at positions before ``position`` change when only the tokens from
    ``position`` on are replaced (max |Δ logit|). 0 for a causal model; > 0 means it sees the future."""
    if not 1 <= position < ids.shape[-1]:  # 0 compares nothing; past the end changes nothing: "0.0"
        raise ValueError(f"position must be between 1 and {ids.shape[-1] - 1} (the tokens before it "
                         f"are compared, the rest replaced), not {position}")  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    changed = ids.clone()  # (1, T)
    changed[:, position:] = torch.randint(
        model.config.vocab_size, changed[:, position:].shape, generator=g
    )
    with evaluating(model):
        before, after = model(ids)[:, :position], model(changed)[:, :position]
    return (before - after).abs().max().item()


@torch.no_grad()
def inspect(model: GPT, vocab: Vocab, prompt: str) -> dict:
    """What the model does with ``prompt``: its tokens, the vocabulary (itos), every layer's
    attention weights (L, h, T, T) and the next-token probabilities (vocab,)."""
    _same_vocab(model, vocab)
    ids = _prompt_ids(vocab, prompt)[-model.config.block_size :]
    inputs: list[torch.Tensor] = []
    hooks = [block.attn.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
             for block in model.blocks]  # fmt: skip
    with evaluating(model):
        try:
            logits = model(torch.tensor([ids], device=next(model.parameters()).device))
        finally:
            for hook in hooks:
                hook.remove()
        weights = torch.stack([b.attn.weights(x)[0] for b, x in zip(model.blocks, inputs)])
    return {"tokens": [vocab.itos[i] for i in ids], "itos": vocab.itos, "weights": weights.cpu(),
            "probs": torch.softmax(logits[0, -1].float(), dim=-1).cpu()}  # fmt: skip
