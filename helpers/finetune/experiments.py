"""Notebook 04's experiments, all on the one training loop: the overfitting sanity check, the largest
batch that fits, hyperparameter search chosen on dev, and a comparison across models."""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from helpers.config import config, positive
from helpers.env import current_seed, seeded
from helpers.finetune.data import Example, Task, loader, make_collate, notebook_data
from helpers.finetune.models import load_classifier
from helpers.tables import label_index
from helpers.training import History, TrainConfig, fit


@config
class FinetuneConfig:
    """One fine-tuning run: AdamW (or another optimizer) with linear warm-up and decay."""

    lr: float = 5e-5
    epochs: int = 3
    batch_size: int = 32
    max_length: int = 128  # tokens per example (pairs: the passage is cut, never the question)
    optimizer: str = "adamw"  # adamw | sgd | rmsprop
    warmup: float = 0.1  # fraction of the steps
    schedule: str = "linear"  # constant | linear | cosine
    precision: str = "auto"  # auto (by hardware) | fp32 | bf16 | fp16

    def __post_init__(self) -> None:
        positive(self, lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
                 max_length=self.max_length)  # fmt: skip
        self.train_config(0)  # the optimizer, warm-up and schedule are checked there

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, optimizer=self.optimizer,
                           warmup=self.warmup, schedule=self.schedule, precision=self.precision, seed=seed)  # fmt: skip


@dataclass
class FinetuneRun:
    history: History
    model: torch.nn.Module
    tokenizer: object
    collate: Callable


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
) -> FinetuneRun:
    """Fine-tune ``model_name`` ("minilm", "tiny", a hub id or a folder) on ``splits["train"]``.

    ``watch`` names the splits whose accuracy is measured every epoch ("train" uses 500 training rows).
    ``seed`` (default: the one ``helpers.setup`` was given) fixes the new head, dropout and shuffling.
    """
    seed = current_seed() if seed is None else seed
    labels = label_index([r[task.label] for r in splits["train"]], "the training rows")
    with seeded(seed):
        model, tokenizer = load_classifier(model_name, len(labels))
        collate = make_collate(tokenizer, task, labels, cfg.max_length)
        watched = {"train": splits["train"][:500], **{n: splits[n] for n in watch if n != "train"}}
        history = fit(
            model,
            loader(splits["train"][:train_rows], collate, cfg.batch_size, shuffle=True, seed=seed),
            cfg.train_config(seed),
            device,
            eval_batches={n: loader(watched[n], collate, 64, shuffle=False) for n in watch},
            progress=progress,
        )
    return FinetuneRun(history, model, tokenizer, collate)


def overfit_check(
    model, rows: list[Example], collate: Callable, device: torch.device, epochs: int = 20,
    lr: float = 1e-4, seed: int | None = None,
) -> History:  # fmt: skip
    """Train on 10 examples and measure accuracy on the same 10: a working setup reaches 100%."""
    few = loader(rows[:10], collate, 10, shuffle=False)
    cfg = TrainConfig(
        epochs=epochs, lr=lr, schedule="constant", seed=current_seed() if seed is None else seed
    )
    with seeded(cfg.seed):
        return fit(model, few, cfg, device, eval_batches={"train": few}, progress=False)


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


def grid(lrs, epochs) -> list[dict]:
    """Every (lr, epochs) pair."""
    return [{"lr": lr, "epochs": e} for lr in lrs for e in epochs]


def random_configs(n: int, lr_range=(1e-5, 1e-3), epochs=(2, 3, 4), seed: int = 42) -> list[dict]:
    """``n`` configurations: lr log-uniform in ``lr_range``, epochs from ``epochs``."""
    rng = random.Random(seed)
    low, high = math.log10(lr_range[0]), math.log10(lr_range[1])
    return [
        {"lr": float(f"{10 ** rng.uniform(low, high):.2e}"), "epochs": rng.choice(epochs)}
        for _ in range(n)
    ]


def select(results: list[dict]) -> dict:
    """The run with the best dev accuracy (its test accuracy is what we report; test never chooses)."""
    return max(results, key=lambda r: r["dev_accuracy"])


def search(configs: list[dict], run: Callable[[dict], dict]) -> dict:
    """Run every config (run returns dev and test accuracy), choose on dev, report the chosen one's test."""
    results = [{**c, **run(c)} for c in configs]
    return {"results": results, "chosen": select(results)}


def compare(names: list[str], run: Callable[[str], dict]) -> list[dict]:
    """Run each model; one that cannot be loaded or does not fit gets accuracy 0 and the reason."""
    rows = []
    for name in names:
        try:
            rows.append({"model": name, **run(name), "reason": ""})
        except (OSError, RuntimeError) as err:  # not downloadable, offline, out of memory
            reason = (
                "out of memory"
                if is_out_of_memory(err)
                else f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
            )
            rows.append(
                {"model": name, "dev_accuracy": 0.0, "test_accuracy": 0.0, "reason": reason}
            )
    return rows


def explorer_data(name: str, sizes) -> dict[str, tuple[dict, Task]]:
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
