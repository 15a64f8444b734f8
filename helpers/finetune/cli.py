"""Notebook 04 from a terminal or a cluster: fine-tune a BERT-family classifier on local files.

    python -m helpers.finetune --model NAME_OR_DIR --train-file F --eval-file F [--test-file F] \\
        [--text-column C --text-pair-column C --label-column C --max-train-examples N \\
         --epochs N --lr X --batch-size N --accumulate N --max-length N --seed N --find-batch] --json OUT

Under ``torchrun --nproc_per_node N`` (or ``accelerate launch``) it trains data-parallel; rank 0 writes.
"""

import argparse
import random
import re
import sys
import time
from pathlib import Path

from helpers.env import pick_device, seeded
from helpers.files import check_writable, write_json
from helpers.finetune.data import Task, loader, make_collate
from helpers.finetune.experiments import FinetuneConfig, largest_batch_here
from helpers.finetune.models import check_max_length, load_classifier
from helpers.tables import check_labels, label_index, read_rows
from helpers.training import choose_precision, distributed, evaluate, fit


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.finetune", description="Fine-tune a BERT-family classifier."
    )
    parser.add_argument("--model", required=True, help="a hub name or a local folder")
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
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--precision", default="auto", help="auto (by hardware), fp32, bf16 or fp16"
    )
    parser.add_argument("--find-batch", action="store_true",
                        help="first, each process prints the largest batch that fits on its GPU")  # fmt: skip
    parser.add_argument("--json", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    task = Task(args.text_column, args.label_column, args.text_pair_column)
    try:
        device = pick_device()  # under torchrun: this process's GPU (an error if it has none)
        cfg = FinetuneConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                             max_length=args.max_length, precision=args.precision,
                             accumulate=args.accumulate)  # fmt: skip
        choose_precision(device, cfg.precision)  # fp16 on a CPU fails here, before any work
        check_writable(args.json)
        if not 0 <= args.seed < 2**63:
            raise ValueError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
        if args.max_train_examples is not None and args.max_train_examples < 1:
            raise ValueError(
                f"--max-train-examples must be at least 1, got {args.max_train_examples}"
            )
        train_rows, eval_rows = read_rows(args.train_file), read_rows(args.eval_file)
        test_rows = read_rows(args.test_file) if args.test_file else []
        task.check(train_rows, args.train_file)
        task.check(eval_rows, args.eval_file)
        if args.test_file:
            task.check(test_rows, args.test_file)
        random.Random(args.seed).shuffle(train_rows)
        train_rows = train_rows[: args.max_train_examples]
        place = distributed.current()  # under torchrun: each process needs a batch of its own
        if -(-len(train_rows) // args.batch_size) < place.world:
            raise ValueError(f"{len(train_rows)} training rows make fewer batches of {args.batch_size} than "
                             f"the {place.world} processes; use a smaller --batch-size or fewer processes")  # fmt: skip
        labels = label_index([r[task.label] for r in train_rows], args.train_file)
        check_labels(labels, [r[task.label] for r in eval_rows], args.eval_file)
        if args.test_file:
            check_labels(labels, [r[task.label] for r in test_rows], args.test_file)
        start = time.perf_counter()
        with seeded(args.seed):
            model, tokenizer = load_classifier(args.model, len(labels))
        check_max_length(model, args.max_length, f"--model {args.model}")
    except (
        OSError,
        ValueError,
    ) as err:  # files, columns, labels, settings, a model that is not there
        message = re.sub(
            r"FinetuneConfig\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(err)
        )
        print(f"error: {message}", file=sys.stderr)
        return 2
    load_seconds = time.perf_counter() - start
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
        )
    train_seconds = time.perf_counter() - start
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
            "train_and_eval": train_seconds,
            "test": time.perf_counter() - start - train_seconds,
            "per_epoch": history["seconds"],
        },  # fmt: skip
        "examples": {"train": len(train_rows), "eval": len(eval_rows), "test": len(test_rows)},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "device": device.type,
        "processes": distributed.current().world,
        "largest_batch": largest,
    }
    write_json(args.json, report)
    tested = f"; test accuracy {test:.4f}" if test is not None else ""
    print(
        f"--eval-file accuracy per epoch (choose by it) {[round(a, 4) for a in history['eval_accuracy']]}{tested}; wrote {args.json}"
    )
    return 0
