"""Notebook 04's data: SST-2 and BoolQ (hub, local files or synthetic), and batches a BERT can read."""

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers.synthetic import synthetic_pairs, synthetic_reviews
from helpers.tables import check_columns, read_rows

Example = dict  # one row: a text column, maybe a text-pair column, and a label column


@dataclass(frozen=True)
class Task:
    """Which columns hold the text, the optional second text, and the label."""

    text: str
    label: str
    pair: str | None = None

    def columns(self) -> list[str]:
        return [self.text, self.label] + ([self.pair] if self.pair else [])

    def check(self, rows: list[Example], where: str) -> None:
        """Say which column is missing, and which columns the rows have."""
        hint = "Name them with --text-column, --text-pair-column and --label-column."
        check_columns(rows, self.columns(), where, hint)


# Parquet-backed hub ids (no loading scripts), so they load with datasets 3 and 4.
HUB = {
    "sst2": ("nyu-mll/glue", "sst2", Task("sentence", "label")),
    "boolq": ("google/boolq", None, Task("question", "answer", pair="passage")),
}


def course_splits(
    train_rows: list[Example], dev: list[Example], name: str
) -> dict[str, list[Example]]:
    """The course's splits: SST-2 holds 1,000 training rows out as test; BoolQ trains on 8,000 and tests
    on the rest. The published validation split is dev (for choosing), so test is never peeked at."""
    rows = list(train_rows)
    random.Random(42).shuffle(rows)
    cut = 8000 if name == "boolq" else len(rows) - 1000
    return {"train": rows[:cut], "test": rows[cut:], "dev": dev}


def load_hub(name: str) -> dict[str, list[Example]]:
    """SST-2 or BoolQ from the Hugging Face hub, split as the course does."""
    from datasets import load_dataset

    hub_id, subset, _ = HUB[name]
    data = load_dataset(hub_id, subset) if subset else load_dataset(hub_id)
    return course_splits(
        [dict(r) for r in data["train"]], [dict(r) for r in data["validation"]], name
    )


def local_splits(name: str) -> tuple[dict[str, list[Example]], str] | None:
    """$HELPERS_DATA_DIR/sst2/{train,valid}.tsv or boolq/{train,valid}.jsonl, split like the hub's."""
    folder = os.environ.get("HELPERS_DATA_DIR")
    suffix = ".tsv" if name == "sst2" else ".jsonl"
    train_file = Path(folder or ".") / name / f"train{suffix}"
    if not folder or not train_file.exists():
        return None
    train_rows, dev = read_rows(train_file), read_rows(train_file.with_name(f"valid{suffix}"))
    if name == "sst2":  # a tsv's labels are text: GLUE's are 0/1
        for row in train_rows + dev:
            row["label"] = int(row["label"])
    return course_splits(train_rows, dev, name), f"$HELPERS_DATA_DIR ({folder})"


def notebook_data(name: str, sizes) -> tuple[dict[str, list[Example]], Task, str]:
    """Train/dev/test rows of SST-2 or BoolQ for a profile's ``sizes`` (``helpers.profiles.Sizes04``),
    the task's columns, and where the rows came from."""
    task = HUB[name][2]
    if sizes.synthetic:
        n = sizes.max_train + 2 * sizes.max_eval
        if name == "boolq":
            rows = synthetic_pairs(n)
        else:
            texts, labels = synthetic_reviews(n)
            rows = [
                {"sentence": t.replace("<br /><br />", ""), "label": y}
                for t, y in zip(texts, labels)
            ]
        a, b = sizes.max_train, sizes.max_train + sizes.max_eval
        splits = {"train": rows[:a], "dev": rows[a:b], "test": rows[b:]}
        return splits, task, "synthetic examples (smoke profile: offline)"
    splits, source = local_splits(name) or (load_hub(name), f"Hugging Face hub ({HUB[name][0]})")
    splits["train"] = splits["train"][: sizes.max_train]
    for split in ("dev", "test"):
        splits[split] = splits[split][: sizes.max_eval]
    return splits, task, source


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
    """A DataLoader over ``rows`` (shuffled with ``seed``, so a run is repeatable)."""
    if not rows:
        raise ValueError("no examples to batch: the split is empty")
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        rows, batch_size, shuffle=shuffle, collate_fn=collate, generator=generator
    )
