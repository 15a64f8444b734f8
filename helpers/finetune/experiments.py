"""Notebook 04's experiments, all on the one training loop: the overfitting sanity check, the largest
batch that fits, hyperparameter search chosen on dev, and a comparison across models."""

import copy
import errno
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn as nn

from helpers.config import Config, positive
from helpers.env import current_seed, seeded, with_gradients
from helpers.files import json_digest
from helpers.finetune.data import Example, Task, loader, make_collate, notebook_data
from helpers.finetune.models import load_classifier
from helpers.pretrained import STAND_INS, model_digest, resolve_model
from helpers.profiles import Sizes04
from helpers.tables import label_index
from helpers.training import History, TrainConfig, autocast, choose_precision, fit, grad_scaler
from helpers.training.loop import evaluating, lr_factor, to_device

if TYPE_CHECKING:
    import transformers

T = TypeVar("T")


class FinetuneConfig(Config):
    """One fine-tuning run: AdamW (or another optimizer) with linear warm-up and decay."""

    lr: float = 5e-5
    epochs: int = 3
    batch_size: int = 32
    max_length: int = 128  # tokens per example (pairs: the passage is cut, never the question)
    optimizer: str = "adamw"  # adamw | sgd | rmsprop
    warmup: float = 0.1  # fraction of the steps
    schedule: str = "linear"  # constant | linear | cosine
    precision: str = "auto"  # auto (by hardware) | fp32 | bf16 | fp16
    accumulate: int = 1  # batches per optimizer step, over all processes

    def __post_init__(self) -> None:
        positive(self, lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
                 max_length=self.max_length, accumulate=self.accumulate)  # fmt: skip
        self.train_config(0)  # the optimizer, warm-up and schedule are checked there

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, optimizer=self.optimizer,
                           warmup=self.warmup, schedule=self.schedule, precision=self.precision,
                           accumulate=self.accumulate, seed=seed)  # fmt: skip


@dataclass
class FinetuneRun:
    history: History
    model: torch.nn.Module
    tokenizer: "transformers.PreTrainedTokenizerBase"
    collate: Callable


MADE_BY = "helpers.finetune"  # in the fingerprint of every fine-tuning checkpoint


def run_identity(
    model_name: str, cfg: FinetuneConfig, task: Task, data: object, dropout: float | None = None
) -> dict:
    """What a fine-tuning checkpoint must match besides the model's code and the training settings
    (``fit`` checks those): the files the model starts from (a digest; for a stand-in or a hub id, its
    name), the rows (a digest of ``data``) and the settings ``fit`` does not see."""
    stand_in = model_name in STAND_INS  # built from a config: its name says it all
    return {"made_by": MADE_BY,
            "model": model_name if stand_in else model_digest(resolve_model(model_name)),
            "data": json_digest(data), "finetune": cfg.to_dict(), "task": task.columns(),
            "dropout": dropout}  # fmt: skip


def experiment(
    model_name: str,
    splits: dict[str, list[Example]],
    task: Task,
    device: torch.device,
    cfg: FinetuneConfig,
    *,
    train_rows: int | None = None,
    watch: tuple[str, ...] = ("dev",),
    seed: int | None = None,
    progress: bool = False,
    dropout: float | None = None,
    checkpoint: str | Path | None = None,
) -> FinetuneRun:
    """Fine-tune ``model_name`` ("minilm", "tiny", a hub id or a folder) on ``splits["train"]``.

    ``watch`` names the splits whose accuracy is measured every epoch ("train" uses 500 training rows).
    ``seed`` (default: the one ``helpers.setup`` was given) fixes the new head, dropout and shuffling;
    ``dropout`` replaces the one in the model's config (``load_classifier``). With ``checkpoint``, each
    finished epoch is saved there and a later call with the same model files, rows and settings
    resumes after it (a finished run only reloads).
    """
    seed = current_seed() if seed is None else seed
    labels = label_index([r[task.label] for r in splits["train"]], "the training rows")
    with seeded(seed):
        model, tokenizer = load_classifier(model_name, len(labels), dropout)
        collate = make_collate(tokenizer, task, labels, cfg.max_length)
        watched = {"train": splits["train"][:500], **{n: splits[n] for n in watch if n != "train"}}
        data = [splits["train"][:train_rows], {n: watched[n] for n in watch}]
        history = fit(
            model,
            loader(splits["train"][:train_rows], collate, cfg.batch_size, shuffle=True, seed=seed),
            cfg.train_config(seed),
            device,
            eval_batches={n: loader(watched[n], collate, 64, shuffle=False) for n in watch},
            checkpoint=checkpoint,
            identity=run_identity(model_name, cfg, task, data, dropout) if checkpoint else None,
            progress=progress,
        )
    return FinetuneRun(history, model, tokenizer, collate)


def train_step(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    clip: float = 1.0,
) -> float:
    """One optimizer step on one batch (the exercise's answer; ``training.run_epoch`` adds precision
    and accumulation): train mode, clear, forward, backward, clip, step, schedule."""
    model.train()  # dropout on (evaluate switched it off)
    optimizer.zero_grad()  # gradients add up until cleared
    loss = model(**batch).loss
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)  # before the step, or it clips nothing
    optimizer.step()
    scheduler.step()  # after the optimizer: this step used the current rate
    return loss.item()


@torch.no_grad()  # no graph: evaluation never calls backward
def classification_scores(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], device: torch.device | str
) -> dict[str, float]:
    """Accuracy over all examples, and precision, recall and F1 of the positive class (label 1),
    with scikit-learn; the model in eval mode (dropout off), then in the mode it had."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    predicted, true = [], []
    with evaluating(model):
        for batch in batches:
            batch = to_device(batch, device)
            predicted += model(**batch).logits.argmax(-1).tolist()
            true += batch["labels"].tolist()
    p, r, f1, _ = precision_recall_fscore_support(
        true, predicted, average="binary", zero_division=0
    )
    return {"accuracy": accuracy_score(true, predicted), "precision": p, "recall": r, "f1": f1}


def overfit_check(
    model: nn.Module, rows: list[Example], collate: Callable, device: torch.device,
    epochs: int = 20, lr: float = 1e-4, seed: int | None = None, step: Callable = train_step,
    evaluate: Callable = classification_scores,
) -> History:  # fmt: skip
    """Train on 10 examples and measure accuracy on the same 10: a working setup reaches 100%.

    ``collate(rows)`` makes the batch, ``step`` is one training step and ``evaluate`` the scores (the
    notebook passes the student's own three once their checks pass)."""
    model.to(device)
    batch = to_device(collate(rows[:10]), device)
    history = History()
    with seeded(current_seed() if seed is None else seed):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, epochs, 0, "constant")
        )
        for epoch in range(epochs):
            loss = step(model, batch, optimizer, scheduler, 1.0)
            scores = evaluate(model, [batch], device)
            history.log(epoch=epoch + 1, train_loss=float(loss), train_accuracy=scores["accuracy"])
    return history


@with_gradients  # real training steps, whatever a notebook cell set before
def training_probe(
    model: nn.Module,
    rows: list[Example],
    collate: Callable,
    device: torch.device,
    precision: str = "auto",
    lr: float = 5e-5,
) -> Callable[[int], None]:
    """``probe(batch_size)``: one real training step at that batch size, as ``fit`` takes it: autocast
    in the hardware's precision, the loss scaled (fp16), AdamW stepped (so its two moment buffers, twice
    the model's size, exist), gradients cleared. It trains ``model``: give it one you can spare."""
    precision = choose_precision(device, precision)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scaler = grad_scaler(device, precision)

    def probe(batch_size: int) -> None:
        longest = sorted(rows, key=lambda r: len(str(r)), reverse=True)  # the worst case fits
        batch = to_device(collate([longest[i % len(longest)] for i in range(batch_size)]), device)
        with autocast(device, precision):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    probe.optimizer = optimizer  # for tests: its state exists after one probe
    probe.precision = precision
    return probe


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def largest_batch_size(
    step: Callable[[int], None], device: torch.device, start: int = 8, limit: int = 1024
) -> dict:
    """Double the batch size until ``step(batch_size)`` runs out of GPU memory, then bisect back.

    On a CPU it does nothing and says why: there is no fixed memory to probe, and it would take long.
    """
    if device.type != "cuda":
        return {
            "batch_size": None,
            "reason": "skipped: on a CPU memory is not the limit (time is); run it on a GPU",
        }

    def fits(size: int) -> bool:
        try:
            step(size)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if not is_out_of_memory(err):
                raise
            torch.cuda.empty_cache()
            tried.append((size, "out of memory"))
            return False
        tried.append((size, "fits"))
        return True

    tried: list[tuple[int, str]] = []
    low, size = None, start
    while size <= limit and fits(size):
        low, size = size, size * 2
    if low is not None and size <= limit:  # between the last fit and the first failure: bisect
        high = size
        while high - low > max(1, low // 8):
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle) else (low, middle)
    return {
        "batch_size": low,
        "tried": tried,
        "reason": "fits" if low else f"even {start} does not fit",
    }


def grid(lrs: Sequence[float], epochs: Sequence[int]) -> list[dict]:
    """Every (lr, epochs) pair."""
    return [{"lr": lr, "epochs": e} for lr in lrs for e in epochs]


def random_configs(
    n: int,
    lr_range: tuple[float, float] = (1e-5, 1e-3),
    epochs: Sequence[int] = (2, 3, 4),
    seed: int = 42,
) -> list[dict]:
    """``n`` configurations: lr log-uniform in ``lr_range``, epochs from ``epochs``."""
    rng = random.Random(seed)
    low, high = math.log10(lr_range[0]), math.log10(lr_range[1])
    return [
        {"lr": float(f"{10 ** rng.uniform(low, high):.2e}"), "epochs": rng.choice(epochs)}
        for _ in range(n)
    ]


def select(results: list[dict]) -> dict:
    """The run with the best dev accuracy (test never chooses, and the search never sees it)."""
    return max(results, key=lambda r: r["dev_accuracy"])


def search(configs: list[dict], run: Callable[[dict], dict]) -> dict:
    """Run every config (``run`` returns its dev accuracy) and choose the best on dev."""
    results = [{**c, **run(c)} for c in configs]
    return {"results": results, "chosen": select(results)}


def compare(names: list[str], run: Callable[[str], dict]) -> list[dict]:
    """Run each model; one that cannot be loaded or does not fit gets accuracy 0 and the reason. Any
    other error (a full disk, no permission, a disk error, a fault in the code) stops the comparison:
    it is not the model's."""
    rows = []
    for name in names:
        try:
            rows.append({"model": name, **run(name), "reason": ""})
        except (OSError, RuntimeError) as err:  # not downloadable, offline, out of memory
            # a full disk, no permission, a disk error: not the model's
            if isinstance(err, OSError):
                if isinstance(err, PermissionError) or err.errno in (errno.ENOSPC, errno.EIO):
                    raise
            elif not is_out_of_memory(err):
                raise
            reason = (
                "out of memory"
                if is_out_of_memory(err)
                else f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
            )
            rows.append({"model": name, "dev_accuracy": 0.0, "reason": reason})
    return rows


def explorer_data(name: str, sizes: Sizes04) -> dict[str, tuple[dict, Task]]:
    """Both data sets for the explorer widget; one that cannot be loaded is left out, and it says so."""
    data = {}
    for each in dict.fromkeys([name, "sst2", "boolq"]):
        try:
            data[each] = notebook_data(each, sizes)[:2]
        except (OSError, ValueError) as err:  # offline without that data set: offer the others
            print(
                f"{each} is not available here ({type(err).__name__}: {err}); the explorer leaves it out"
            )
    return data


# --- several seeds, and what the homework will cost ----------------------------------------------


def seeded_runs(
    model_name: str, splits: dict[str, list[Example]], task: Task, device: torch.device,
    cfg: FinetuneConfig, seeds: int, first_seed: int | None = None, **options: Any,
) -> list[FinetuneRun]:  # fmt: skip
    """The same run with ``seeds`` seeds (``first_seed``, +1, …): the spread shows what is luck."""
    first = current_seed() if first_seed is None else first_seed
    return [
        experiment(model_name, splits, task, device, cfg, seed=first + i, **options)
        for i in range(seeds)
    ]


def spread(values: list[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation) of ``values``; one value has none (None, not 0: one run
    says nothing of how much the next would differ)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def plus_minus(mean: float, sd: float | None) -> str:
    """ "0.871 ± 0.004", or "0.871 (no spread: 1 seed)" where there is no sd."""
    return f"{mean:.3f} (no spread: 1 seed)" if sd is None else f"{mean:.3f} ± {sd:.3f}"


def summarize(scores: list[dict[str, float]]) -> dict[str, str]:
    """{"accuracy": "0.871 ± 0.004 (3 seeds)", …}: mean ± standard deviation of each score."""
    out = {}
    for key in scores[0]:
        mean, sd = spread([s[key] for s in scores])
        out[key] = plus_minus(mean, sd) + (f" ({len(scores)} seeds)" if sd is not None else "")
    return out


def score_runs(
    runs: list[FinetuneRun],
    rows: list[Example],
    device: torch.device,
    evaluate: Callable = classification_scores,
) -> list[dict]:
    """``evaluate`` of every run's model on ``rows`` (batched by the run's own collate)."""
    return [
        evaluate(run.model, loader(rows, run.collate, 64, shuffle=False), device) for run in runs
    ]


def seconds_per_example_epoch(runs: list[FinetuneRun], train_rows: int) -> float:
    """Measured training (and per-epoch evaluation) seconds per training example and epoch."""
    total = sum(sum(run.history["seconds"]) for run in runs)
    epochs = sum(len(run.history["seconds"]) for run in runs)
    return total / (epochs * train_rows)


def homework_cost(configs: list[dict], models: list[str], cfg: FinetuneConfig, search_rows: int,
                  train_rows: int, per_example_epoch: float) -> str:  # fmt: skip
    """One line: how many runs the homework makes and how long they should take, from the speed of
    this notebook's own runs (other models in the comparison run at their own speed)."""
    grid = sum(c.get("epochs", cfg.epochs) for c in configs) * search_rows * per_example_epoch
    compare = len(models) * cfg.epochs * train_rows * per_example_epoch
    return (f"homework: {len(configs)} search runs + {len(models)} models = {len(configs) + len(models)} runs; "
            f"at the speed measured above ({1000 * per_example_epoch:.1f} ms per example and epoch) about "
            f"{format_seconds(grid)} for the search and {format_seconds(compare)} for the comparison, if "
            "every model were as fast as this one (larger models are slower)")  # fmt: skip


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours} h {minutes} min"
        if hours
        else f"{minutes} min {secs} s"
        if minutes
        else f"{secs} s"
    )


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """(result, seconds) of ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def baselines(splits: dict[str, list[Example]], task: Task, split: str = "dev") -> dict[str, float]:
    """What no learning scores on ``split``: guessing a class uniformly at random (its expected
    accuracy), and always answering the most common training label."""
    train = [r[task.label] for r in splits["train"]]
    classes = sorted(set(train), key=str)
    majority = max(classes, key=train.count)
    held = [r[task.label] for r in splits[split]]
    return {
        "chance": 1 / len(classes),
        "majority": sum(label == majority for label in held) / len(held),
        "majority_label": majority,
    }


def largest_batch_here(model: nn.Module, rows: list[Example], collate: Callable,
                       device: torch.device, precision: str = "auto") -> dict:  # fmt: skip
    """The largest training batch that fits on this process's GPU, probed on a copy of ``model``;
    with the GPU's name (``--find-batch`` prints it in every process of a job)."""
    found = largest_batch_size(
        training_probe(copy.deepcopy(model), rows, collate, device, precision), device
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    found.pop("tried", None)  # only the answer travels; notebook 04 shows the search
    return {"device": str(device), "name": name, **found}
