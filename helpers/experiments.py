"""Notebook 04's experiments on top of ``helpers.finetune``: the overfitting sanity check, the largest
batch that fits, hyperparameter search chosen on dev, and a comparison across models."""

import math
import os
import random
from collections.abc import Callable
from pathlib import Path

import torch

from helpers import pretrained
from helpers.finetune import (
    HUB,
    Example,
    Task,
    fit,
    label_ids,
    load_classifier,
    load_hub,
    loader,
    make_collate,
    read_table,
    synthetic_pairs,
    tiny_bert,
)
from helpers.imdb import synthetic_reviews


def overfit_check(
    model, rows: list[Example], collate: Callable, device: torch.device, epochs: int = 20, lr=1e-4
):
    """Train on 10 examples and measure accuracy on the same 10: a working setup reaches 100%."""
    few = rows[:10]
    batches = loader(few, collate, 10, shuffle=False)
    return fit(model, batches, {"train": batches}, epochs, lr, device, warmup=0.0, decay=False)


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def largest_batch_size(
    step: Callable[[int], None], device: torch.device, start: int = 8, limit: int = 1024
) -> dict:
    """Double the batch size until ``step(batch_size)`` runs out of GPU memory, then halve back.

    On a CPU it does nothing and says why: there is no fixed memory to probe, and it would take long.
    """
    if device.type != "cuda":
        return {
            "batch_size": None,
            "reason": "skipped: on a CPU memory is not the limit (time is); run it on a GPU",
        }
    fits, size, tried = None, start, []
    while size <= limit:
        try:
            step(size)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if not is_out_of_memory(err):
                raise
            tried.append((size, "out of memory"))
            torch.cuda.empty_cache()
            break
        tried.append((size, "fits"))
        fits, size = size, size * 2
    if (
        fits is not None and size <= limit
    ):  # between the last fit and the first failure: halve the gap
        low, high = fits, size
        while high - low > max(1, low // 8):
            middle = (low + high) // 2
            try:
                step(middle)
                low = middle
                tried.append((middle, "fits"))
            except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
                if not is_out_of_memory(err):
                    raise
                high = middle
                tried.append((middle, "out of memory"))
                torch.cuda.empty_cache()
        fits = low
    reason = "fits" if fits else f"even {start} does not fit"
    return {"batch_size": fits, "tried": tried, "reason": reason}


def grid(lrs: list[float], epochs: list[int]) -> list[dict]:
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
    results = [{**config, **run(config)} for config in configs]
    return {"results": results, "chosen": select(results)}


def compare(names: list[str], run: Callable[[str], dict]) -> list[dict]:
    """Run each model; one that cannot load or does not fit gets accuracy 0 and the reason."""
    rows = []
    for name in names:
        try:
            rows.append({"model": name, **run(name), "reason": ""})
        except Exception as err:  # not downloadable, offline, out of memory: report, do not stop
            reason = (
                "out of memory"
                if is_out_of_memory(err)
                else f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
            )
            rows.append(
                {"model": name, "dev_accuracy": 0.0, "test_accuracy": 0.0, "reason": reason}
            )
    return rows


# --- what the notebook calls -------------------------------------------------------------------


def resolve_model(name: str) -> str:
    """ "minilm" means all-MiniLM-L6-v2 (the offline package if installed); anything else is passed on."""
    return pretrained.minilm_path() if name == "minilm" else name


def local_splits(task_name: str) -> tuple[dict[str, list[Example]], str] | None:
    """$HELPERS_DATA_DIR/sst2/{train,valid}.tsv or boolq/{train,valid}.jsonl, split like the hub's, if present."""
    folder = os.environ.get("HELPERS_DATA_DIR")
    suffix = ".tsv" if task_name == "sst2" else ".jsonl"
    train_file = Path(folder or ".") / task_name / f"train{suffix}"
    if not folder or not train_file.exists():
        return None
    train_rows, dev = read_table(train_file), read_table(train_file.with_name(f"valid{suffix}"))
    if task_name == "sst2":
        for row in train_rows + dev:
            row["label"] = int(row["label"])
    random.Random(42).shuffle(train_rows)
    cut = 8000 if task_name == "boolq" else len(train_rows) - 1000
    return {
        "train": train_rows[:cut],
        "test": train_rows[cut:],
        "dev": dev,
    }, f"$HELPERS_DATA_DIR ({folder})"


def explorer_data(task_name: str, sizes: dict) -> dict[str, tuple[dict, Task]]:
    """Both data sets for the explorer widget, leaving out (and saying so) one that cannot be loaded."""
    data = {}
    for name in dict.fromkeys([task_name, "sst2", "boolq"]):
        try:
            data[name] = notebook_data(name, sizes)[:2]
        except Exception as err:  # offline without that data set: the widget offers the others
            print(
                f"{name} is not available here ({type(err).__name__}); the explorer leaves it out"
            )
    return data


def notebook_data(task_name: str, sizes: dict) -> tuple[dict[str, list[Example]], Task, str]:
    """Train/dev/test rows of SST-2 or BoolQ for a profile's ``sizes``, the task's columns, and the source."""
    task = HUB[task_name][2]
    if sizes["synthetic"]:
        n = sizes["max_train"] + 2 * sizes["max_eval"]
        if task_name == "boolq":
            rows = synthetic_pairs(n)
        else:
            texts, labels = synthetic_reviews(n)
            rows = [
                {"sentence": t.replace("<br /><br />", ""), "label": y}
                for t, y in zip(texts, labels)
            ]
        splits = {"train": rows[: sizes["max_train"]], "dev": rows[sizes["max_train"] :][: sizes["max_eval"]],
                  "test": rows[sizes["max_train"] + sizes["max_eval"] :]}  # fmt: skip
        return splits, task, "synthetic examples (smoke profile: offline)"
    splits, source = local_splits(task_name) or (
        load_hub(task_name),
        f"Hugging Face hub ({HUB[task_name][0]})",
    )
    splits["train"] = splits["train"][: sizes["max_train"]]
    for name in ("dev", "test"):
        splits[name] = splits[name][: sizes["max_eval"]]
    return splits, task, source


def experiment(
    model_name: str,
    splits: dict[str, list[Example]],
    task: Task,
    device: torch.device,
    lr: float,
    epochs: int,
    batch_size: int = 32,
    max_length: int = 128,
    optimizer: str = "adamw",
    train_rows: int | None = None,
    watch: tuple[str, ...] = ("dev",),
) -> dict:
    """Fine-tune ``model_name`` ("tiny" for a small random BERT) and return its history and model.

    ``watch`` names the splits whose accuracy is measured every epoch ("train" uses 500 training rows).
    """
    torch.manual_seed(42)
    labels = label_ids(splits["train"], task)
    if model_name == "tiny":
        _, tokenizer = load_classifier(resolve_model("minilm"), len(labels))
        model = tiny_bert(tokenizer, len(labels))
    else:
        model, tokenizer = load_classifier(resolve_model(model_name), len(labels))
    collate = make_collate(tokenizer, task, labels, max_length)
    rows = splits["train"][:train_rows]
    watched = {
        "train": splits["train"][:500],
        **{name: splits[name] for name in watch if name != "train"},
    }
    eval_batches = {name: loader(watched[name], collate, 64, shuffle=False) for name in watch}
    history = fit(
        model,
        loader(rows, collate, batch_size, shuffle=True),
        eval_batches,
        epochs,
        lr,
        device,
        optimizer,
    )
    return {"history": history, "model": model, "tokenizer": tokenizer, "collate": collate}
