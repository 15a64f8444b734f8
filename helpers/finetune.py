"""Fine-tuning pretrained encoders (the BERT family) for sentence and sentence-pair classification.

    python -m helpers.finetune --model NAME_OR_DIR --train-file F --eval-file F \\
        [--text-column C --text-pair-column C --label-column C --max-train-examples N \\
         --epochs N --lr X --batch-size N] --json OUT

The notebook (04) and the command share every function here.
"""

import argparse
import csv
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from helpers.training import autocast, grad_scaler

Example = dict  # one row: a text column, maybe a text-pair column, and a label column


@dataclass(frozen=True)
class Task:
    """Which columns hold the text, the optional second text, and the label."""

    text: str
    label: str
    pair: str | None = None


# Parquet-backed hub ids (no loading scripts), so they load with datasets 3 and 4.
HUB = {
    "sst2": ("nyu-mll/glue", "sst2", Task("sentence", "label")),
    "boolq": ("google/boolq", None, Task("question", "answer", pair="passage")),
}


# --- data --------------------------------------------------------------------------------------


def read_table(path: str | Path) -> list[Example]:
    """Rows of a .csv, .tsv or .jsonl file, as dicts."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if path.suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    raise ValueError(f"{path}: unknown extension {path.suffix!r}; use .csv, .tsv or .jsonl")


def check_columns(rows: list[Example], task: Task, where: str) -> None:
    """Say which column is missing, and which columns there are."""
    if not rows:
        raise ValueError(f"{where} has no rows")
    needed = [task.text, task.label] + ([task.pair] if task.pair else [])
    missing = [c for c in needed if c not in rows[0]]
    if missing:
        raise ValueError(
            f"{where} has no column {', '.join(map(repr, missing))}; its columns are {sorted(rows[0])}. "
            "Name them with --text-column, --text-pair-column and --label-column."
        )


def label_ids(rows: list[Example], task: Task) -> dict:
    """Label value -> class index, sorted (so "0"/"1", False/True and strings all work)."""
    return {value: i for i, value in enumerate(sorted({r[task.label] for r in rows}, key=str))}


def load_hub(name: str) -> dict[str, list[Example]]:
    """SST-2 or BoolQ from the Hugging Face hub, split as the course does.

    SST-2: GLUE's train for training (less 1,000 held out as test, seed 42), GLUE's validation as dev.
    BoolQ: 8,000 train examples for training, the rest of train as test, the validation split as dev.
    """
    from datasets import load_dataset

    hub_id, config, _ = HUB[name]
    data = load_dataset(hub_id, config) if config else load_dataset(hub_id)
    train_rows = [dict(r) for r in data["train"]]
    random.Random(42).shuffle(train_rows)
    dev = [dict(r) for r in data["validation"]]
    cut = 8000 if name == "boolq" else len(train_rows) - 1000
    return {"train": train_rows[:cut], "test": train_rows[cut:], "dev": dev}


def synthetic_pairs(n: int, seed: int = 42) -> list[Example]:
    """Offline stand-in for BoolQ in the smoke profile: is the question's word in the passage?"""
    rng = random.Random(seed)
    words = "river mountain city forest castle island desert valley harbor bridge".split()
    rows = []
    for _ in range(n):
        passage = rng.sample(words, 4)
        word = rng.choice(words)
        rows.append({"question": f"is there a {word}?", "passage": "there is a " + ", a ".join(passage),
                     "answer": word in passage})  # fmt: skip
    return rows


# --- tokenising and batching -------------------------------------------------------------------


def make_collate(tokenizer, task: Task, labels: dict, max_length: int = 128) -> Callable:
    """A DataLoader collate function: tokenise a batch and pad it to its own longest example only."""

    def collate(rows: list[Example]) -> dict[str, torch.Tensor]:
        texts = [str(r[task.text]) for r in rows]
        pairs = [str(r[task.pair]) for r in rows] if task.pair else None
        batch = tokenizer(
            texts,
            pairs,
            padding=True,  # dynamic padding: to the longest in this batch, not to max_length
            truncation="only_second" if pairs else True,  # cut the passage, never the question
            max_length=max_length,
            return_tensors="pt",
        )
        batch["labels"] = torch.tensor([labels[r[task.label]] for r in rows])
        return dict(batch)

    return collate


def loader(rows: list[Example], collate: Callable, batch_size: int, shuffle: bool, seed: int = 42):
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        rows, batch_size, shuffle=shuffle, collate_fn=collate, generator=generator
    )


# --- models ------------------------------------------------------------------------------------


def load_classifier(name_or_dir: str, num_labels: int):
    """(model, tokenizer): a pretrained encoder with a new, randomly initialised classification head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()  # "some weights are newly initialized" is expected: it is the new head
    tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
    model = AutoModelForSequenceClassification.from_pretrained(name_or_dir, num_labels=num_labels)
    return model, tokenizer


def tiny_bert(tokenizer, num_labels: int = 2, seed: int = 42):
    """A 2-layer, 64-wide BERT from a config (random weights): for tests where speed matters."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, num_labels=num_labels)  # fmt: skip
    return BertForSequenceClassification(config)


# --- the training loop -------------------------------------------------------------------------


def make_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW (weight decay 0.01), SGD (momentum 0.9) or RMSprop."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise ValueError(f"optimizer must be adamw, sgd or rmsprop, not {name!r}")


def train_epoch(
    model, batches, optimizer, scheduler, device: torch.device, clip: float = 1.0
) -> float:
    """One pass over the training batches; returns the mean loss."""
    model.train()  # dropout on
    scaler = grad_scaler(device)
    total, count = 0.0, 0
    for batch in tqdm(batches, desc="train", leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device):  # bfloat16 on a GPU, nothing on a CPU
            loss = model(**batch).loss  # the model computes the cross-entropy from batch["labels"]
        optimizer.zero_grad(set_to_none=True)  # gradients accumulate unless cleared
        scaler.scale(loss).backward()  # d loss / d every parameter
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(
            model.parameters(), clip
        )  # one bad batch cannot blow up the weights
        scaler.step(optimizer)  # the update
        scaler.update()
        scheduler.step()  # the learning rate for the next step
        total, count = total + loss.item() * len(batch["labels"]), count + len(batch["labels"])
    return total / max(count, 1)


@torch.no_grad()  # no graph, less memory, faster
def evaluate(model, batches, device: torch.device) -> float:
    """Accuracy over the batches."""
    model.eval()  # dropout off
    correct, count = 0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device):
            logits = model(**batch).logits
        correct += (logits.argmax(dim=-1) == batch["labels"]).sum().item()
        count += len(batch["labels"])
    return correct / max(count, 1)


def fit(
    model,
    train_batches,
    eval_batches: dict,
    epochs: int,
    lr: float,
    device: torch.device,
    optimizer: str = "adamw",
    warmup: float = 0.1,
    decay: bool = True,
) -> dict[str, list[float]]:
    """Train for ``epochs`` with a linear warm-up and decay (or a constant rate when ``decay`` is False);
    accuracy on each of ``eval_batches`` per epoch."""
    from transformers import get_constant_schedule, get_linear_schedule_with_warmup

    model.to(device)
    opt = make_optimizer(optimizer, model, lr)
    steps = epochs * len(train_batches)
    scheduler = (
        get_linear_schedule_with_warmup(opt, int(warmup * steps), steps)
        if decay
        else get_constant_schedule(opt)
    )
    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "seconds": []}
    history |= {f"{name}_accuracy": [] for name in eval_batches}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        history["train_loss"].append(train_epoch(model, train_batches, opt, scheduler, device))
        for name, batches in eval_batches.items():
            history[f"{name}_accuracy"].append(evaluate(model, batches, device))
        history["epoch"].append(epoch)
        history["seconds"].append(time.perf_counter() - start)
        scores = ", ".join(
            f"{name} accuracy {history[f'{name}_accuracy'][-1]:.1%}" for name in eval_batches
        )
        print(
            f"epoch {epoch}: train loss {history['train_loss'][-1]:.3f}, {scores} ({history['seconds'][-1]:.0f} s)"
        )
    return history


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.finetune", description="Fine-tune a BERT-family classifier."
    )
    parser.add_argument("--model", required=True, help="a hub name or a local folder")
    parser.add_argument("--train-file", required=True, help=".csv, .tsv or .jsonl")
    parser.add_argument("--eval-file", required=True, help=".csv, .tsv or .jsonl")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--text-pair-column")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--max-train-examples", type=int)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    task = Task(args.text_column, args.label_column, args.text_pair_column)
    try:
        train_rows, eval_rows = read_table(args.train_file), read_table(args.eval_file)
        check_columns(train_rows, task, args.train_file)
        check_columns(eval_rows, task, args.eval_file)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.max_train_examples:
        random.Random(42).shuffle(train_rows)
        train_rows = train_rows[: args.max_train_examples]
    labels = label_ids(train_rows, task)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(42)
    start = time.perf_counter()
    model, tokenizer = load_classifier(args.model, len(labels))
    load_seconds = time.perf_counter() - start
    collate = make_collate(tokenizer, task, labels, args.max_length)
    train_batches = loader(train_rows, collate, args.batch_size, shuffle=True)
    eval_batches = loader(eval_rows, collate, 2 * args.batch_size, shuffle=False)
    start = time.perf_counter()
    history = fit(model, train_batches, {"eval": eval_batches}, args.epochs, args.lr, device)
    report = {
        "model": args.model,
        "accuracy_per_epoch": history["eval_accuracy"],
        "final_accuracy": history["eval_accuracy"][-1],
        "train_loss_per_epoch": history["train_loss"],
        "seconds": {
            "load": load_seconds,
            "train_and_eval": time.perf_counter() - start,
            "per_epoch": history["seconds"],
        },  # fmt: skip
        "examples": {"train": len(train_rows), "eval": len(eval_rows)},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "device": device.type,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"accuracy per epoch {[round(a, 4) for a in history['eval_accuracy']]}; wrote {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
