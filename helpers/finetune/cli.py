"""Notebook 04 from a terminal or a cluster: fine-tune a BERT-family classifier on local files.

    python -m helpers.finetune --model NAME_OR_DIR --train-file F --eval-file F [--test-file F] \\
        [--text-column C --text-pair-column C --label-column C --max-train-examples N \\
         --epochs N --lr X --batch-size N --accumulate N --max-length N --seed N --find-batch \\
         --checkpoint FILE.pt] --json OUT

Each finished epoch is kept in a checkpoint (default: beside OUT) until the report is written: the
same command resumes after Ctrl-C.

Under ``torchrun --nproc_per_node N`` (or ``accelerate launch``) it trains data-parallel; rank 0 writes.
"""

import argparse
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.cli import (
    Parser,
    add_quiet,
    check_input_files,
    lock_output,
    output_file,
    stops_cleanly,
)
from helpers.env import pick_device, seeded
from helpers.files import check_report, write_report
from helpers.finetune.data import Example, Task, loader, make_collate
from helpers.finetune.experiments import MADE_BY, FinetuneConfig, largest_batch_here, run_identity
from helpers.finetune.models import check_max_length, load_classifier
from helpers.pretrained import offline_miss, short_error
from helpers.tables import (
    SHOWN,
    check_label_values,
    check_labels,
    check_texts,
    label_index,
    read_rows_and_lines,
)
from helpers.training import choose_precision, distributed, evaluate, fit
from helpers.training.checkpoints import report_checkpoint
from helpers.training.loop import check_finite_losses

if TYPE_CHECKING:
    import transformers

COMMAND = "python -m helpers.finetune"  # named in its reports: no other command replaces one
# the keys of its reports from before that field
SHAPE = ("accuracy_per_epoch", "final_accuracy")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="python -m helpers.finetune",
        description="Fine-tune a BERT-family classifier.",
        epilog="Also: python -m helpers.finetune compare (see its --help), notebook 06's pretrained "
        "model against its random twin and MiniLM.",
    )
    parser.add_argument("--model", required=True,
                        help="a hub name, a local folder, or minilm (offline), tiny or t5-tiny (random, tests)")  # fmt: skip
    parser.add_argument("--train-file", required=True, help=".csv, .tsv or .jsonl")
    parser.add_argument(
        "--eval-file", required=True, help=".csv, .tsv or .jsonl: scored every epoch"
    )
    parser.add_argument("--test-file", help="scored once, after training (never used to choose)")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--text-pair-column")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--max-train-examples", type=int)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)  # chosen on a proxy: see README
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accumulate", type=int, default=1,
                        help="batches per optimizer step, over all processes")  # fmt: skip
    parser.add_argument(
        "--max-length", "--max-len", type=int, default=128, help="tokens kept per example"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--precision", default="auto", help="auto (by hardware), fp32, bf16 or fp16"
    )
    add_quiet(parser)
    parser.add_argument("--find-batch", action="store_true",
                        help="first, each process prints the largest batch that fits on its GPU")  # fmt: skip
    parser.add_argument("--hide-test", action="store_true",
                        help="write the --test-file accuracy to --json without printing it (a grid's "
                             "task: `scaling collect` shows test for the run dev chose alone)")  # fmt: skip
    parser.add_argument(
        "--json", type=output_file, required=True, help="where to write the results"
    )
    parser.add_argument(
        "--checkpoint", type=output_file,
        help="where the finished epochs are kept until the report is written, so that the same "
        "command resumes after Ctrl-C (default: beside --json, named after it: OUT-checkpoint.pt)",
    )  # fmt: skip
    return parser.parse_args(argv)


def check_json(args: argparse.Namespace) -> None:
    """``--json`` and the checkpoint are files of their own: not one of the inputs, which they would
    replace, nor each other (``args.checkpoint`` becomes the checkpoint's path)."""
    inputs = {
        "--train-file": args.train_file,
        "--eval-file": args.eval_file,
        "--test-file": args.test_file,
    }
    args.checkpoint = report_checkpoint(args.checkpoint, args.json, inputs, MADE_BY)


def check_first_texts(tokenizer: "transformers.PreTrainedTokenizerBase", task: Task,
                      files: list[tuple[str | Path, list[Example], list[int]]], max_length: int,
                      positions: int | None, model_name: str) -> None:  # fmt: skip
    """Text pairs: the first text (the question) is never cut, only the second (the passage), so
    each first text must fit whole with the special tokens and at least one token of the second;
    else the tokenizer fails mid-training. ``files``: (name, rows, each row's line) of each file."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    too_long = []  # (tokens, file's position in files, line, file)
    for order, (where, rows, lines) in enumerate(files):
        if not rows:
            continue
        ids = tokenizer([r[task.text] for r in rows], add_special_tokens=False)["input_ids"]
        too_long += [(len(x), order, line, where) for x, line in zip(ids, lines)
                     if len(x) + specials + 1 > max_length]  # fmt: skip
    if not too_long:
        return
    tokens, _, line, where = min(too_long, key=lambda t: (-t[0], t[1], t[2]))  # the longest, first
    # a file given twice (train = eval) counts once
    too_long = {(str(t[3]), t[2]) for t in too_long}
    need = tokens + specials + 1
    more = (
        f"; {len(too_long)} rows need more than {max_length}, this is the longest"
        if len(too_long) > 1
        else ""
    )
    fix = (
        f"give --max-length {need} or more"
        if positions is None or need <= positions
        else f"--model {model_name} has only {positions} positions, so shorten that text or drop the row"
    )
    raise ValueError(
        f"{where}, line {line}: the {task.text!r} text alone is {tokens} tokens; whole, with "
        f"{specials} special tokens and one token of {task.pair!r}, it needs {need}, more than "
        f"--max-length {max_length} (only {task.pair!r} is cut, never {task.text!r}{more}); {fix}"
    )


SAME_LABELS = (
    "give both files one format, or write the .jsonl file's labels as the other file has them"
)


def train_labels(args: argparse.Namespace, task: Task, rows: list, lines: list,
                 every: list) -> dict:  # fmt: skip
    """The class index of each label of the rows it trains on (``every``: the file's rows, line
    and row): the file's faults name the file; too few classes left by --max-train-examples name it."""
    if len(rows) == len(every):
        return label_index([r[task.label] for r in rows], args.train_file, lines)
    label_index([r[task.label] for _, r in every], args.train_file, [n for n, _ in every])
    kept = sorted({repr(r[task.label]) for r in rows})
    if len(kept) < 2:
        raise ValueError(f"--max-train-examples {args.max_train_examples} keeps {len(rows)} of "
                         f"{args.train_file}'s {len(every)} rows, and their labels are all {kept[0]}; "
                         "a classifier needs at least two classes: give a larger "
                         "--max-train-examples")  # fmt: skip
    return label_index([r[task.label] for r in rows], args.train_file, lines)


def lone_label_notes(task: Task, every: list[tuple[int, Example]], labels: dict,
                     train_file: str) -> list[str]:  # fmt: skip
    """Notes on the classes that only one row of a training file of 10 or more rows holds (``every``:
    its (line, row) pairs; ``labels``: the classes trained): most likely a typo, which would otherwise
    become a class of its own without a word. Many such classes get one note: the wrong column?"""
    if len(every) < 10:
        return []
    counts = Counter(r[task.label] for _, r in every)
    lone = sorted((n, r[task.label]) for n, r in every
                  if counts[r[task.label]] == 1 and r[task.label] in labels)  # fmt: skip
    if not lone:
        return []
    if len(lone) > 3 or 2 * len(lone) > len(labels):
        lines = ", ".join(str(n) for n, _ in lone[:SHOWN]) + (", ..." if len(lone) > SHOWN else "")
        return [f"note: {len(lone)} of the {len(labels)} classes have one row each in {train_file} "
                f"(lines {lines}): is --label-column {task.label} the column of classes?"]  # fmt: skip
    return [f"note: class {label!r} has 1 of the {len(every)} rows of {train_file} (line {n}): if it "
            "is a typo, fix that line; as it is, it trains as a class of its own"
            for n, label in lone]  # fmt: skip


@stops_cleanly(
    "each finished epoch is kept in --checkpoint (default: beside --json, OUT-checkpoint.pt): the "
    "same command resumes after the last one (or starts again if none finished)",
    smaller="--batch-size (--accumulate keeps the batch an optimizer step sees) or --max-length",
)
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    task = Task(args.text_column, args.label_column, args.text_pair_column)
    try:
        lock_output(args.json, "--json")  # before the checks: a second run on either is refused
        if args.checkpoint is not None:
            lock_output(args.checkpoint, "--checkpoint")
        check_json(args)
        check_input_files({"--train-file": args.train_file, "--eval-file": args.eval_file,
                           "--test-file": args.test_file})  # fmt: skip
        if args.label_column in (args.text_column, args.text_pair_column):
            raise ValueError(f"--label-column {args.label_column} is also a text column: the model "
                             "would read the answer; give the column that holds the text")  # fmt: skip
        device = pick_device()  # under torchrun: this process's GPU (an error if it has none)
        cfg = FinetuneConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                             max_length=args.max_length, precision=args.precision,
                             accumulate=args.accumulate)  # fmt: skip
        if args.max_length < 3:  # shorter: [CLS] [SEP] alone, or (1) not cut at all
            raise ValueError(
                f"--max-length must be at least 3 ([CLS], a token, [SEP]), not {args.max_length}"
            )
        # bf16 or fp16 without a GPU fails here, before any work
        choose_precision(device, cfg.precision)
        # its folders are made when it is written
        check_report(args.json, command=COMMAND, shape=SHAPE)
        if not 0 <= args.seed < 2**63:
            raise ValueError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
        if args.max_train_examples is not None and args.max_train_examples < 1:
            raise ValueError(
                f"--max-train-examples must be at least 1, got {args.max_train_examples}"
            )
        train_rows, train_lines = read_rows_and_lines(args.train_file)
        eval_rows, eval_lines = read_rows_and_lines(args.eval_file)
        test_rows, test_lines = read_rows_and_lines(args.test_file) if args.test_file else ([], [])
        texts = [task.text] + ([task.pair] if task.pair else [])
        files = [
            (args.train_file, train_rows, train_lines),
            (args.eval_file, eval_rows, eval_lines),
        ]
        files += [(args.test_file, test_rows, test_lines)] if args.test_file else []
        for where, rows, lines in files:
            task.check(rows, where)
            check_texts(rows, texts, where, lines)  # a JSON null would be the text "None"
        numbered = list(zip(train_lines, train_rows))
        random.Random(args.seed).shuffle(numbered)  # the same order as shuffling the rows
        numbered_all, numbered = numbered, numbered[: args.max_train_examples]
        train_rows, train_lines = [r for _, r in numbered], [n for n, _ in numbered]
        files[0] = (args.train_file, train_rows, train_lines)  # the rows it trains on
        place = distributed.current()  # under torchrun: each process needs a batch of its own
        if -(-len(train_rows) // args.batch_size) < place.world:
            raise ValueError(f"{len(train_rows)} training rows make fewer batches of {args.batch_size} than "
                             f"the {place.world} processes; use a smaller --batch-size or fewer processes")  # fmt: skip
        labels = train_labels(args, task, train_rows, train_lines, numbered_all)
        in_file = {r[task.label] for _, r in numbered_all}  # the labels before --max-train-examples
        for where, rows, lines in files[1:]:
            # hashable from here
            check_label_values([r[task.label] for r in rows], str(where), lines)
            if dropped := [(n, r[task.label]) for n, r in sorted(zip(lines, rows), key=lambda p: p[0])
                           if r[task.label] not in labels and r[task.label] in in_file]:  # fmt: skip
                raise ValueError(f"{where} has label {dropped[0][1]!r} (first at line {dropped[0][0]}) that "
                                 f"{args.train_file} has but none of the {len(train_rows)} rows "
                                 f"--max-train-examples {args.max_train_examples} keeps; give a larger "
                                 "--max-train-examples")  # fmt: skip
            check_labels(labels, [r[task.label] for r in rows], str(where), lines,
                         train=str(args.train_file), fix=SAME_LABELS)  # fmt: skip
        start = time.perf_counter()
        with seeded(args.seed):
            try:
                model, tokenizer = load_classifier(args.model, len(labels))
            except (OSError, ValueError):
                raise
            except Exception as err:  # a damaged weights file
                raise ValueError(f"--model {args.model}: its weights cannot be read ({short_error(err)}); "
                                 "save or download the model again") from None  # fmt: skip
        check_max_length(model, args.max_length, f"--model {args.model}")
        if task.pair:
            positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
            check_first_texts(tokenizer, task, files, args.max_length, positions, args.model)
    except (
        OSError,
        ValueError,
    ) as err:  # files, columns, labels, settings, a model that is not there
        message = offline_miss(args.model, err) or re.sub(
            r"(?:FinetuneConfig|TrainConfig)\.(\w+)",
            lambda m: "--" + m.group(1).replace("_", "-"),
            str(err),
        )
        print(f"error: {message}", file=sys.stderr)
        return 2
    load_seconds = time.perf_counter() - start
    if distributed.current().main:  # which label is which class (a stray label is a class too)
        shown = [f"{label!r} -> {index}" for label, index in list(labels.items())[:10]]
        more = f" and {len(labels) - 10} more" if len(labels) > 10 else ""
        print(f"{len(labels)} classes from {args.train_file}'s labels: {', '.join(shown)}{more}",
              flush=True)  # fmt: skip
        for note in lone_label_notes(task, numbered_all, labels, args.train_file):
            print(note, file=sys.stderr)
    collate = make_collate(tokenizer, task, labels, args.max_length)
    largest = None
    if args.find_batch:  # on each GPU of the job: every process probes its own
        place = distributed.start(device)
        found = largest_batch_here(model, train_rows, collate, device, cfg.precision)
        print(f"rank {place.rank} on {found['name']} ({found['device']}): largest batch "
              f"{found['batch_size'] or '-'} ({found['reason']})", flush=True)  # fmt: skip
        largest = distributed.gather(found)
    start = time.perf_counter()
    with seeded(args.seed):
        history = fit(
            model,
            loader(train_rows, collate, args.batch_size, shuffle=True, seed=args.seed),
            cfg.train_config(args.seed),
            device,
            eval_batches={"eval": loader(eval_rows, collate, 2 * args.batch_size, shuffle=False)},
            checkpoint=args.checkpoint,
            progress=not args.quiet,
            identity={
                **run_identity(args.model, cfg, task, [train_rows, eval_rows]),
                "labels": list(labels),
            },  # fmt: skip
        )
    distributed.barrier()  # every process has read the checkpoint before rank 0 deletes it
    train_seconds = time.perf_counter() - start
    try:
        check_finite_losses(history, args.lr)
    except ValueError as err:
        args.checkpoint.unlink(missing_ok=True)  # a diverged run: nothing to resume
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not distributed.current().main:
        return 0  # rank 0 scores the test file and writes the report
    test = None
    if test_rows:
        batches = loader(test_rows, collate, 2 * args.batch_size, shuffle=False)
        test = evaluate(model, batches, device, cfg.precision).accuracy
    report = {
        "model": args.model,
        "accuracy_per_epoch": history["eval_accuracy"],
        "final_accuracy": history.last("eval_accuracy"),
        "test_accuracy": test,
        "train_loss_per_epoch": history["train_loss"],
        "seconds": {
            "load": load_seconds,
            "train_and_eval": sum(history["seconds"]),  # every epoch's, resumed ones too
            "test": time.perf_counter() - start - train_seconds,
            "per_epoch": history["seconds"],
        },  # fmt: skip
        "examples": {"train": len(train_rows), "eval": len(eval_rows), "test": len(test_rows)},
        "classes": list(labels),  # the labels of class 0, 1, ...
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "device": device.type,
        "precision": choose_precision(device, cfg.precision),  # "auto" resolved
        "processes": distributed.current().world,
        "largest_batch": largest,
    }
    write_report(args.json, COMMAND, report)
    args.checkpoint.unlink(missing_ok=True)  # its work is in the report now
    tested = "" if test is None else f"; test accuracy {test:.4f}"
    if test is not None and args.hide_test:  # scored once all the same: a cluster leaves no rerun
        tested = "; test accuracy written to --json, not shown (--hide-test: choose on dev first)"
    print(
        f"--eval-file accuracy per epoch (choose by it) {[round(a, 4) for a in history['eval_accuracy']]}{tested}; wrote {args.json}"
    )
    return 0
