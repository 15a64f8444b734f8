"""Notebook 04's data: SST-2 and BoolQ (hub, local files or synthetic), and batches a BERT can read."""

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from helpers.download import hub_dataset, local_data
from helpers.finetune import splits
from helpers.profiles import Sizes04, made_to_order
from helpers.synthetic import synthetic_pairs, synthetic_reviews
from helpers.tables import check_columns, read_rows

if TYPE_CHECKING:
    import transformers

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
GLUE_TEST = 872  # GLUE SST-2's validation sentences: this course's SST-2 test set
BOOLQ_TRAIN = 8000  # BoolQ: train on 8,000 of its training questions, test on the rest


@dataclass
class Splits:
    """train/dev/test rows, where they came from, and how they were made (``notes``, printed)."""

    rows: dict[str, list[Example]]
    source: str
    notes: list[str]


def sst2_splits(
    pool: list[Example], test: list[Example] | None, dev_size: int, seed: int = 42
) -> Splits:
    """SST-2 without leaks. ``pool`` is GLUE SST-2 train (phrases and whole sentences); ``test`` is GLUE's
    validation sentences, or None to hold ``dev_size`` test sentences out of the pool the way dev is.

    Dev: ``dev_size`` complete sentences of the pool (``splits.complete_sentences``: no other row contains
    them; like the test, whole sentences, not phrases). Train: the rest of the pool, less every row that
    equals, contains or is contained in a dev or test sentence (word for word)."""
    rng, notes = random.Random(seed), []
    pool = list(pool)
    if test is None:
        pool, test, dropped = splits.hold_out(pool, "sentence", dev_size, rng)
        notes.append(f"test: {len(test):,} complete sentences held out of train (no GLUE validation "
                     f"file here); {dropped:,} more train rows equal, contain or are contained in one of them: dropped")  # fmt: skip
    else:
        pool, dropped = splits.drop_leaks(pool, "sentence", test)
        notes.append(f"test: GLUE's {len(test):,} validation sentences; {dropped:,} train rows equal, "
                     "contain or are contained in one of them: dropped")  # fmt: skip
    train, dev, dropped = splits.hold_out(pool, "sentence", dev_size, rng)
    notes.append(f"dev: {len(dev):,} complete sentences of train; {dropped:,} more train rows equal, "
                 "contain or are contained in one of them: dropped")  # fmt: skip
    rng.shuffle(train)
    return Splits({"train": train, "dev": dev, "test": list(test)}, "", notes)


def boolq_splits(
    train_rows: list[Example],
    validation: list[Example],
    seed: int = 42,
    train_size: int = BOOLQ_TRAIN,
) -> Splits:
    """BoolQ's test labels are not public, so its train is split: 8,000 training questions (after a
    seeded shuffle) to train on, the rest of train as test, the validation split as dev; a training
    row that also occurs in dev or test is dropped (counted)."""
    rows = list(train_rows)
    random.Random(seed).shuffle(rows)
    train, test = rows[:train_size], rows[train_size:]
    held = test + list(validation)
    columns = ["question", "passage"]
    seen = {tuple(str(r[c]).strip().lower() for c in columns) for r in held}
    kept = [r for r in train if tuple(str(r[c]).strip().lower() for c in columns) not in seen]
    notes = [f"BoolQ's test labels are not public (dev: its validation split; test: its training "
             f"questions after the first {train_size:,} of a seeded shuffle); {len(train) - len(kept)} "
             "training rows also in dev or test: dropped"]  # fmt: skip
    return Splits({"train": kept, "dev": list(validation), "test": test}, "", notes)


def _as_int_labels(rows: list[Example]) -> list[Example]:
    for row in rows:  # a tsv's labels are text: GLUE's are 0/1
        row["label"] = int(row["label"])
    return rows


@functools.lru_cache(maxsize=4)
def _real_splits(name: str, folder: str | None, dev_size: int) -> Splits:
    """(Cached: the leak search over 67k rows takes seconds, and the explorer asks again.)"""
    if folder:
        base = Path(folder) / name
        if name == "sst2":
            pool = _as_int_labels(read_rows(base / "train.tsv") + _optional(base / "valid.tsv"))
            test = (
                _as_int_labels(read_rows(base / "test.tsv"))
                if (base / "test.tsv").exists()
                else None
            )
            result = sst2_splits(pool, test, dev_size)
        else:
            result = boolq_splits(read_rows(base / "train.jsonl"), read_rows(base / "valid.jsonl"))
        result.source = f"$HELPERS_DATA_DIR ({folder})"
        return result
    hub_id, subset, _ = HUB[name]
    files = ("sst2/train.tsv (and valid.tsv, test.tsv; columns sentence, label)" if name == "sst2"
             else "boolq/train.jsonl and boolq/valid.jsonl")  # fmt: skip
    offline = (f"put a copy in $HELPERS_DATA_DIR as {files} and set HELPERS_DATA_DIR (README, "
               "notebook 04's data); HELPERS_PROFILE=smoke runs on made-up sentences, to try the "
               "code only")  # fmt: skip
    data = hub_dataset(hub_id, *([subset] if subset else []), offline=offline)
    train, validation = [dict(r) for r in data["train"]], [dict(r) for r in data["validation"]]
    result = (
        sst2_splits(train, validation, dev_size)
        if name == "sst2"
        else boolq_splits(train, validation)
    )
    result.source = f"Hugging Face hub ({hub_id})"
    return result


def _optional(path: Path) -> list[Example]:
    return read_rows(path) if path.exists() else []


def local_folder(name: str) -> str | None:
    """$HELPERS_DATA_DIR if it holds this data set: sst2/train.tsv (+ valid.tsv, more GLUE train rows,
    and optionally test.tsv, GLUE's validation sentences) or boolq/{train,valid}.jsonl."""
    first = local_data(name, "train.tsv" if name == "sst2" else "train.jsonl")
    return str(first.parent.parent) if first else None


def notebook_data(name: str, sizes: Sizes04) -> tuple[dict[str, list[Example]], Task, str]:
    """Train/dev/test rows of SST-2 or BoolQ for a profile's ``sizes`` (``helpers.profiles.Sizes04``),
    the task's columns, and where the rows came from and how they were split (several lines)."""
    task = HUB[name][2]
    if sizes.synthetic:
        made_to_order(max_train=sizes.max_train, max_eval=sizes.max_eval)
        n = sizes.max_train + 2 * sizes.max_eval
        if name == "boolq":
            rows = synthetic_pairs(n)
            cut = n - sizes.max_eval
            result = boolq_splits(rows[:cut], rows[cut:], train_size=sizes.max_train)
        else:
            texts, labels = synthetic_reviews(n)
            rows = [
                {"sentence": t.replace("<br /><br />", ""), "label": y}
                for t, y in zip(texts, labels)
            ]
            result = sst2_splits(rows, None, sizes.max_eval)
        source = "synthetic examples (smoke profile: offline)"
    else:
        dev_size = min(sizes.max_eval or GLUE_TEST, GLUE_TEST)
        result = _real_splits(name, local_folder(name), dev_size)
        source = result.source
    rows = dict(result.rows)
    rows["train"] = rows["train"][: sizes.max_train]
    for split in ("dev", "test"):
        rows[split] = rows[split][: sizes.max_eval]
    return rows, task, "\n".join([source, *result.notes])


def make_collate(
    tokenizer: "transformers.PreTrainedTokenizerBase",
    task: Task,
    labels: dict,
    max_length: int = 128,
) -> Callable[[list[Example]], dict]:
    """A DataLoader collate function: tokenise a batch and pad it to its own longest example only (a
    ``functools.partial`` of ``collate_rows``: it pickles, so DataLoader workers can take it)."""
    return functools.partial(
        collate_rows, tokenizer=tokenizer, task=task, labels=labels, max_length=max_length
    )


def collate_rows(
    rows: list[Example],
    tokenizer: "transformers.PreTrainedTokenizerBase",
    task: Task,
    labels: dict,
    max_length: int = 128,
) -> dict:
    """One batch of ``rows``: tokenised, padded to its longest example, with a ``labels`` tensor (the
    notebook exercise's signature: every setting an argument)."""
    if not rows:
        raise ValueError("no rows to collate: a batch needs at least one example")
    if missing := [column for column in task.columns() if column not in rows[0]]:
        raise ValueError(f"the rows have no column {missing[0]!r} (they have {', '.join(map(repr, rows[0]))}): "
                         "name the Task's columns as the data does")  # fmt: skip
    if unknown := {r[task.label] for r in rows} - set(labels):
        raise ValueError(f"label {sorted(unknown, key=str)[0]!r} is not in the label map {labels}: map "
                         "every label the data holds to a class number")  # fmt: skip
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


def loader(
    rows: list[Example], collate: Callable, batch_size: int, shuffle: bool, seed: int = 42
) -> DataLoader:
    """A DataLoader over ``rows`` (shuffled with ``seed``, so a run is repeatable)."""
    if not rows:
        raise ValueError("no examples to batch: the split is empty")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(rows, batch_size, shuffle=shuffle, collate_fn=collate, generator=generator)
