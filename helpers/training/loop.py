"""The one training loop: ``fit`` and ``evaluate`` for every model in the course.

    history = fit(model, train_batches, TrainConfig(epochs=3, lr=1e-3), device,
                  eval_batches={"valid": valid_batches}, checkpoint=path)

A batch is either a dict of tensors for a Hugging Face model (``model(**batch)`` returns ``.loss`` and
``.logits``; ``batch["labels"]`` are the targets) or a tuple ``(*inputs, targets)`` for our own models
(``model(*inputs)`` returns logits (B, C) or (B, T, C); the loss is the cross-entropy with ``targets``).
``outputs=`` swaps in any other way of turning a batch into (loss, logits, targets).
"""

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from helpers.config import Config, ConfigError, positive
from helpers.env import with_gradients
from helpers.files import check_writable
from helpers.source import code_digest
from helpers.tokenization.mlm import IGNORE  # -100: cross-entropy's "no target"
from helpers.training import distributed
from helpers.training.checkpoints import fingerprint, load_checkpoint, save_checkpoint
from helpers.training.precision import (
    PRECISIONS,
    GradScaler,
    autocast,
    choose_precision,
    grad_scaler,
)

Batch = Mapping[str, torch.Tensor] | Sequence[torch.Tensor]
Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # loss (), logits (N, C), targets (N,)
OPTIMIZERS = ("adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "linear", "cosine")


class TrainConfig(Config):
    """How to train: optimizer, learning-rate schedule, clipping, accumulation, precision, seed."""

    epochs: int = 3
    lr: float = 1e-3
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9) | rmsprop
    weight_decay: float = 0.01  # AdamW only
    schedule: str = "linear"  # after warm-up: constant | linear decay to 0 | cosine decay to 0
    # fraction of the optimizer steps spent warming the rate up (over w steps, from 1/w of it)
    warmup: float = 0.0
    clip: float | None = 1.0  # max gradient norm; None = no clipping
    # batches per optimizer step, over all processes: one batch that many times larger, same memory
    accumulate: int = 1
    precision: str = "auto"  # auto (bf16 / fp16 / fp32 by hardware) | fp32 | bf16 | fp16
    # kept with each checkpoint; fit seeds nothing: build the model and call fit under env.seeded
    seed: int = 42

    def __post_init__(self) -> None:
        positive(self, epochs=self.epochs, lr=self.lr, accumulate=self.accumulate, clip=self.clip)
        for name, value, allowed in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"TrainConfig.{name} must be one of {', '.join(allowed)}, not {value!r}"
                )
        if not 0 <= self.warmup < 1:
            raise ConfigError(
                f"TrainConfig.warmup is a fraction of the steps in [0, 1), not {self.warmup!r}"
            )
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(
                f"TrainConfig.weight_decay must be >= 0 and finite, not {self.weight_decay!r}"
            )


@dataclass
class Metrics:
    """Mean loss and accuracy over ``count`` predictions."""

    loss: float
    accuracy: float
    count: int


class History(dict):
    """Per-epoch numbers, one list per column: epoch, train_loss, lr, seconds (train_seconds of them
    training), and for each evaluated split ``<name>_loss`` and ``<name>_accuracy``. A dict, so it
    plots, pickles and dumps as JSON."""

    def log(self, **values: float) -> None:
        for key, value in values.items():
            self.setdefault(key, []).append(value)

    def last(self, key: str) -> float:
        return self[key][-1]


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    if isinstance(batch, Mapping):
        return {k: v.to(device) for k, v in batch.items()}
    return tuple(t.to(device) for t in batch)


def batch_size(batch: Batch) -> int:
    """How many examples a batch holds (its targets' first dimension)."""
    targets = batch["labels"] if isinstance(batch, Mapping) else batch[-1]
    return len(targets)


def _all_outputs(model: nn.Module, batch: Batch) -> Outputs:
    """(loss, logits, targets) with logits flattened to (N, C) over tokens, every position kept."""
    if isinstance(batch, Mapping):
        out = model(**batch)  # a Hugging Face model computes the loss from batch["labels"]
        return out.loss, out.logits.flatten(0, -2), batch["labels"].flatten()
    *inputs, targets = batch
    logits = model(*inputs).flatten(0, -2).float()  # (N, C): N examples, or N = B·T tokens
    targets = targets.flatten()
    # what torch would say from deep inside cross_entropy, said of the batch (shapes only: no sync)
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise ValueError(f"a batch's targets (its last element) are {targets.dtype}: cross-entropy "
                         "takes class indices, whole numbers (torch.long, e.g. torch.tensor([0, 1]))")  # fmt: skip
    if len(targets) != len(logits):
        raise ValueError(f"the model gave {len(logits)} predictions but the batch holds {len(targets)} "
                         "targets (its last element): one target per example, or per token")  # fmt: skip
    try:
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE)
    except IndexError as error:  # at once on the CPU only (a GPU asserts inside its kernel)
        if "out of bounds" not in str(error):
            raise
        real = targets[targets != IGNORE]  # (N',)
        raise ValueError(f"a batch's targets (its last element) run from {int(real.min())} to "
                         f"{int(real.max())}, but the model gives {logits.shape[-1]} classes: targets "
                         f"are 0 to {logits.shape[-1] - 1} (or {IGNORE}, no target)") from error  # fmt: skip
    return loss, logits, targets


def batch_outputs(model: nn.Module, batch: Batch) -> Outputs:
    """(loss, logits, targets) of ``model`` on ``batch``, with logits flattened to (N, C) over tokens;
    targets of -100 (cross-entropy's "no target") are left out of the loss and of what is returned,
    so accuracy and the loss's weight count real targets only."""
    loss, logits, targets = _all_outputs(model, batch)
    real = targets != IGNORE  # (N,)
    return loss, logits[real], targets[real]


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
    return torch.optim.RMSprop(params, lr=cfg.lr)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The multiple of the base learning rate at optimizer ``step`` of ``total``."""
    if step < warmup:
        return (step + 1) / warmup  # linear warm-up: the first step at 1/warmup of the rate
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)  # 0 -> 1 over the rest of training
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy): how many tokens the model hesitates between; inf when that
    overflows, nan for a nan loss."""
    loss = float(loss)
    return math.nan if math.isnan(loss) else math.exp(loss) if loss < 700 else math.inf


class Diverged(ValueError):
    """A run whose training or evaluation loss became NaN or infinite."""


def check_finite_losses(
    history: Mapping[str, Sequence[float]], lr: float, flag: str = "--lr"
) -> None:
    """A ``Diverged`` error naming the first loss column (train_loss, then each evaluated split's) and
    epoch that is NaN or infinite: the run diverged (an update after the last training batch shows
    only in the evaluations), and its scores would look like a model's."""
    evaluated = sorted(k for k in history if k.endswith("_loss") and k != "train_loss")
    for key in ["train_loss", *evaluated]:
        for epoch, loss in enumerate(history.get(key, ()), 1):
            if not math.isfinite(loss):
                split = key.removesuffix("_loss")
                split = {"train": "training", "valid": "validation"}.get(split, split)
                raise Diverged(f"training diverged: the {split} loss was {loss} in epoch {epoch} at "
                               f"{flag} {lr:g}; give a smaller {flag}")  # fmt: skip


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode (dropout off), then in the mode it had: a student's model left in
    train mode stays so after a helper looked at it."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


@torch.no_grad()  # no graph: less memory, faster
def evaluate(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    precision: str = "auto",
    outputs: Callable[[nn.Module, Batch], Outputs] = batch_outputs,
) -> Metrics:
    """Mean loss and accuracy of ``model`` over ``batches`` (dropout off, then the mode it had)."""
    device = torch.device(device)  # "cpu" works too
    precision = choose_precision(device, precision)
    loss_sum, correct, count = 0.0, 0, 0
    with evaluating(model):  # a caller's training loop keeps its dropout
        for batch in batches:
            _nonempty(batch, "an evaluation batch")
            with autocast(device, precision):
                loss, logits, targets = outputs(model, to_device(batch, device))
            n = targets.numel()  # predictions: one per example, or one per token
            if n:  # a batch whose targets are all ignored has no loss (NaN), and adds nothing
                loss_sum += loss.float().item() * n
            correct += (logits.argmax(dim=-1) == targets).sum().item()
            count += n
    if count == 0:
        raise ValueError("nothing to evaluate: the evaluation batches are empty")
    return Metrics(loss_sum / count, correct / count, count)


@torch.no_grad()
def predict(
    model: nn.Module, batches: Iterable[Batch], device: torch.device | str, precision: str = "auto"
) -> torch.Tensor:
    """Class probabilities for every example, in batch order: (N, C) (dropout off, then the mode it
    had)."""
    device = torch.device(device)  # "cpu" works too
    precision = choose_precision(device, precision)
    probs = []
    with evaluating(model):
        for batch in batches:
            with autocast(device, precision):
                _, logits, _ = _all_outputs(model, to_device(batch, device))  # a row per example
            probs.append(torch.softmax(logits.float(), dim=-1).cpu())
    return torch.cat(probs)


def _nonempty(batch: Batch, what: str) -> int:
    n = batch_size(batch)
    if n == 0:
        raise ValueError(
            f"{what} is empty (0 examples); check that every split has examples and that the "
            "batching does not produce an empty last batch"
        )
    return n


def run_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: GradScaler,
    cfg: TrainConfig,
    device: torch.device,
    precision: str,
    outputs: Callable[[nn.Module, Batch], Outputs],
    bar: tqdm,
    accumulate: int | None = None,
) -> tuple[float, int]:
    """One pass over the training batches, an optimizer step every ``accumulate`` batches (default
    ``cfg.accumulate``). Returns the sum of the losses and the number of predictions they cover.

    A step's batches (over all processes) count by the predictions each holds, as one batch that size
    would: a short last batch, or one with fewer real tokens, weighs less, not as much as a full one.
    The gradients hold the mean over the step's predictions so far (sizes of one batch's, so fp16's
    loss scale fits them all); a step with no predictions at all changes nothing."""
    model.train()  # dropout on
    accumulate = accumulate or cfg.accumulate
    world = distributed.current().world
    total, count = 0.0, 0
    seen = 0  # predictions in this step's batches so far, in this process
    batches = list(batches)
    for i, batch in enumerate(batches):
        _nonempty(batch, f"training batch {i}")
        stepping = (i + 1) % accumulate == 0 or i + 1 == len(batches)  # the last group may be short
        # DDP all-reduces the gradients in backward: only on the batch that ends an accumulation
        sync = model.no_sync() if not stepping and hasattr(model, "no_sync") else nullcontext()
        with sync:
            with autocast(device, precision):  # bf16/fp16 on a GPU, nothing on a CPU
                loss, logits, targets = outputs(model, to_device(batch, device))
            n = targets.numel()  # predictions: one per example, or one per real token
            if n == 0:  # every target ignored: no mean (0/0 is NaN); nothing to learn, graph kept
                loss = logits.sum() * 0.0
            # running mean: the mean so far weighs seen / (seen + n), this batch's mean n / (seen + n)
            weight, kept = (n / (seen + n), seen / (seen + n)) if n else (0.0, 1.0)
            seen += n
            if stepping and world > 1:  # DDP averages the processes: weigh each by its predictions
                everyone = distributed.total(seen)[0]
                mine = world * seen / everyone if everyone else 0.0
                weight, kept, seen = weight * mine, kept * mine, int(everyone)
            if kept != 1.0:
                for p in model.parameters():
                    if p.grad is not None:
                        p.grad.mul_(kept)
            scaler.scale(loss * weight).backward()  # d loss / d every parameter, added up
        if stepping:
            if seen == 0:  # no predictions anywhere in this step: no update, the schedule waits
                optimizer.zero_grad(set_to_none=True)
            else:
                scaler.unscale_(optimizer)  # fp16: back to true gradient sizes before clipping
                if cfg.clip is not None:  # one bad batch cannot blow up the weights
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                scale = scaler.get_scale()  # fp16: a step with inf gradients is skipped, scale cut
                scaler.step(optimizer)  # the update
                scaler.update()
                optimizer.zero_grad(set_to_none=True)  # gradients add up until cleared
                # a skipped step spends none of the warm-up or decay
                if scaler.get_scale() >= scale:
                    scheduler.step()  # the learning rate for the next step
            seen = 0
        total, count = total + loss.item() * n, count + n
        bar.update(1)
        if n:  # a batch with nothing to predict has no loss to show
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return total, count


def _kind(callback: object) -> str | None:
    """A callback's class name if ``fit`` keeps its state (it has ``state_dict`` and
    ``load_state_dict``), else None."""
    stateful = hasattr(callback, "state_dict") and hasattr(callback, "load_state_dict")
    return type(callback).__qualname__ if stateful else None


def _progress_bar(**options: Any) -> tqdm:
    """``tqdm(**options)``; interrupted while it is built (in a notebook, while its widget is made),
    the half-built bar is taken out of tqdm's list of bars: left there, every later bar's line failed
    on it ("'tqdm' object has no attribute 'container'") until the kernel was restarted."""
    before = set(tqdm._instances)
    try:
        return tqdm(**options)
    except BaseException:
        with tqdm.get_lock():
            for stray in set(tqdm._instances) - before:
                stray.disable = True  # its close(), when it is collected, does nothing
                tqdm._instances.discard(stray)
        raise


@with_gradients  # whatever a notebook cell set before (torch.set_grad_enabled(False))
def fit(
    model: nn.Module,
    train_batches: Iterable[Batch] | Callable[[int], Iterable[Batch]],
    cfg: TrainConfig,
    device: torch.device | str,
    *,
    eval_batches: Mapping[str, Iterable[Batch]] | None = None,
    outputs: Callable[[nn.Module, Batch], Outputs] = batch_outputs,
    callbacks: Sequence[Callable[[History], None]] = (),
    checkpoint: str | Path | None = None,
    identity: Mapping[str, object] | None = None,
    progress: bool = True,
    epoch_lines: bool = True,
    total_steps: int | None = None,
) -> History:
    """Train ``model`` for ``cfg.epochs``; evaluate each of ``eval_batches`` after every epoch.

    ``train_batches`` is a list of batches or a DataLoader (read anew every epoch), or ``f(epoch)``
    giving each epoch's (reshuffled) batches. The schedule spans the first epoch's optimizer steps
    times ``cfg.epochs``, or ``total_steps`` where epochs differ in length.
    ``progress`` shows a bar and, with ``epoch_lines``, one line of scores per epoch (off where the
    "epochs" are only evaluation rounds and a plot shows the curve).
    ``callbacks`` are called with the history after every epoch (live plots); a callback with
    ``state_dict``/``load_state_dict`` has its state checkpointed too. With ``checkpoint``, the
    model, optimizer, schedule and history are saved after every epoch, and a later call resumes after
    the last saved epoch (a DataLoader's shuffling generator too: the same orders as a run never
    stopped), but only if the model's code, the training code (the loop's step, optimizer and
    schedule, ``outputs``, and the batches' making: ``train_batches``' function or collate_fn, and
    what they reach), ``cfg`` and ``identity`` (the model's config, a digest of the data, ...) are
    what they were; otherwise it says what changed and trains again.
    Started by torchrun or accelerate launch, it trains data-parallel (``training.distributed``): the
    history's evaluations, the callbacks, the printing and the checkpoint are rank 0's alone.
    """
    device = torch.device(device)  # "cpu" works too
    place = distributed.start(device)
    model.to(device)
    trained = distributed.wrap(model, device, place)  # DDP(model) in several processes, else model
    precision = choose_precision(device, cfg.precision)
    epoch_batches = train_batches if callable(train_batches) else (lambda _epoch: train_batches)
    first = list(epoch_batches(0))
    if not first:
        raise ValueError("there are no training batches: the training split is empty")
    first = distributed.shard(first, place)
    accumulate = distributed.per_process(cfg.accumulate, place.world)
    if place.world > 1 and place.main and progress:
        print(f"{place.world} processes, each taking 1 batch in {place.world}: an optimizer step "
              f"sees {accumulate * place.world} batches (TrainConfig.accumulate={cfg.accumulate})")  # fmt: skip
    steps = total_steps or math.ceil(len(first) / accumulate) * cfg.epochs  # in the whole run
    warmup = int(cfg.warmup * steps + 1e-9)  # 0.29 * 100 is 28.999999999999996 in floats
    optimizer = make_optimizer(cfg, model)
    # gradients a caller left (a probe's backward) are no step's
    optimizer.zero_grad(set_to_none=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps, warmup, cfg.schedule)
    )
    scaler = grad_scaler(device, precision)
    history, start = History(), 0
    shuffler = getattr(train_batches, "generator", None)  # a DataLoader's: each epoch's order
    if checkpoint is not None:  # the batches per step, not the process count, decide a resume
        train = {**cfg.to_dict(), "accumulate": accumulate * place.world, "precision": precision,
                 "steps": steps}  # fmt: skip
        code = code_digest(run_epoch, make_optimizer, lr_factor, outputs, train_batches,
                           getattr(train_batches, "collate_fn", None))  # fmt: skip
        identity = fingerprint(model, train=train, **{"training code": code}, **(identity or {}))
        state, reason = load_checkpoint(checkpoint, identity)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history, start = History(state["history"]), state["epoch"]
            torch.set_rng_state(state["rng"].cpu())
            if device.type == "cuda" and state.get("cuda_rng") is not None:  # GPU dropout's stream
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
            if shuffler is not None and state.get("shuffler") is not None:  # the next epoch's order
                shuffler.set_state(state["shuffler"].cpu())
            for callback, kept in zip(callbacks, state.get("callbacks") or ()):
                if kept is not None and kept["type"] == _kind(callback):  # KeepBest's best epoch
                    callback.load_state_dict(kept["state"])
        if place.main and start < cfg.epochs:  # epochs to save: refused now, not after the first
            check_writable(checkpoint)
        if place.main and (progress or Path(checkpoint).exists()):
            print(reason)  # never resume or retrain silently
    # no disable= when shown: given, it overrode TQDM_DISABLE (which tqdm's notebook bars ignore)
    shown = {} if progress and place.main else {"disable": True}
    bar = _progress_bar(total=len(first) * cfg.epochs, initial=len(first) * start, desc="training",
                        unit="batch", **shown)  # fmt: skip
    with bar:  # closed on an error too: its last line before the error's
        for epoch in range(start, cfg.epochs):
            started = time.perf_counter()
            batches = first if epoch == 0 else distributed.shard(list(epoch_batches(epoch)), place)
            bar.total = bar.n + len(batches) * (cfg.epochs - epoch)  # rounds may differ in length
            lr = optimizer.param_groups[0]["lr"]
            loss_sum, count = run_epoch(trained, batches, optimizer, scheduler, scaler, cfg, device,
                                        precision, outputs, bar, accumulate)  # fmt: skip
            loss_sum, count = distributed.total(loss_sum, count)  # over all processes' batches
            if count == 0:  # every rank sees the same total, so every rank stops here
                raise ValueError(f"epoch {epoch + 1} had nothing to predict: every target of every "
                                 f"training batch is the ignored {IGNORE}; give more training text "
                                 "(masked language modelling: or a larger mask rate, python -m helpers.mlm's --mask-prob)")  # fmt: skip
            history.log(epoch=epoch + 1, train_loss=loss_sum / count, lr=lr,
                        train_seconds=time.perf_counter() - started)  # fmt: skip
            if place.main and eval_batches:
                for name, held_out in eval_batches.items():
                    metrics = evaluate(model, held_out, device, precision, outputs)
                    history.log(
                        **{f"{name}_loss": metrics.loss, f"{name}_accuracy": metrics.accuracy}
                    )
                model.eval()  # callbacks (live plots, samples) and the caller see it dropout off
            history.log(seconds=time.perf_counter() - started)
            if not place.main:
                continue
            for callback in callbacks:
                callback(history)
            if checkpoint is not None:
                save_checkpoint(checkpoint, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "history": dict(history), "epoch": epoch + 1, "rng": torch.get_rng_state(),
                    "shuffler": shuffler.get_state() if shuffler is not None else None,
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "callbacks": [{"type": _kind(c), "state": c.state_dict()} if _kind(c) else None
                                  for c in callbacks],  # fmt: skip
                    "fingerprint": identity,
                })  # fmt: skip
            if progress and epoch_lines:  # after the save: an epoch shown is an epoch kept
                scores = ", ".join(
                    f"{k} {v[-1]:.3f}"
                    for k, v in history.items()
                    if k.endswith(("_loss", "_accuracy"))
                )
                bar.write(
                    f"epoch {epoch + 1}/{cfg.epochs}: {scores} ({history.last('seconds'):.0f} s)"
                )
    return history
