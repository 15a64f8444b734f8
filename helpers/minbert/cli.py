"""Notebook 05 from a terminal: minBERT's classifier, frozen or fine-tuned, on ``LABEL ||| SENTENCE`` files.

    python -m helpers.minbert --model NAME_OR_DIR --train-file F [--dev-file F] [--test-file F] \\
        --option pretrain|finetune [--epochs N --lr X --batch-size N --hidden-dropout-prob P \\
        --max-len N --seed S] --json OUT

Without ``--dev-file``, 10% of the training file (``--dev-fraction``, stratified, ``--split-seed``) is
dev. Dev is scored after every epoch and chooses the epoch kept; the test file, if given, is scored
once, at the end, with the chosen epoch's weights. A test file whose labels are all hidden (``?``,
``-1`` or nothing before ``|||``) gets predictions instead of an accuracy.
"""

import argparse
import re
import sys
import time

import torch

from helpers.bert import BertModel
from helpers.cli import (
    Parser,
    add_quiet,
    check_input_files,
    lock_output,
    output_file,
    per_config,
    stops_cleanly,
)
from helpers.config import ConfigError
from helpers.env import pick_device
from helpers.files import check_report, same_file, write_report
from helpers.finetune.models import check_max_length
from helpers.minbert.data import carve_dev, check_labels, labels_hidden, num_classes, read_examples
from helpers.minbert.runs import (
    DEFAULTS,
    MADE_BY,
    OPTIONS,
    MinbertConfig,
    load_bert,
    predict_labels,
    score,
    train_classifier,
)
from helpers.training import choose_precision
from helpers.training.checkpoints import report_checkpoint
from helpers.training.loop import check_finite_losses

COMMAND = "python -m helpers.minbert"  # named in its reports: no other command replaces one
SHAPE = ("best_epoch", "chosen_by")  # the keys of its reports from before that field

SETTINGS = ("epochs", "lr", "batch_size", "hidden_dropout_prob", "max_len", "precision")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="python -m helpers.minbert",
        description="Train minBERT's sentence classifier: a frozen encoder (pretrain) or all of it "
        "(finetune).",
    )
    parser.add_argument("--model", required=True,
                        help="minilm (offline all-MiniLM-L6-v2), a hub id such as bert-base-uncased, or a folder")  # fmt: skip
    parser.add_argument("--train-file", required=True, help="LABEL ||| SENTENCE lines")
    parser.add_argument("--dev-file", help="scored every epoch; chooses the epoch kept (default: "
                        "carved out of the training file)")  # fmt: skip
    parser.add_argument("--dev-fraction", type=float, default=0.1,
                        help="of the training file, held out as dev when there is no --dev-file")  # fmt: skip
    parser.add_argument("--split-seed", type=int, default=0, help="the seed of that split")
    parser.add_argument("--test-file", help="scored at the end with the epoch dev chose; its labels "
                        "may all be hidden (then: predictions)")  # fmt: skip
    parser.add_argument("--option", choices=OPTIONS, default="finetune",
                        help="pretrain: the encoder frozen, only the head trains; finetune: everything trains")  # fmt: skip

    def options(field: str) -> str:
        return per_config("--option", DEFAULTS, field)

    parser.add_argument("--epochs", type=int, help=options("epochs"))
    parser.add_argument("--lr", type=float, help=options("lr"))
    parser.add_argument("--batch-size", type=int, help=options("batch_size"))
    parser.add_argument("--hidden-dropout-prob", "--dropout", type=float,
                        help=f"every dropout of the encoder and the head; default {MinbertConfig.hidden_dropout_prob}")  # fmt: skip
    parser.add_argument("--max-len", "--max-length", type=int,
                        help=f"tokens kept per sentence; {options('max_len')}")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", help="auto (by hardware), fp32, bf16 or fp16")
    add_quiet(parser)
    parser.add_argument(
        "--json", type=output_file, required=True, help="where to write the results"
    )
    parser.add_argument(
        "--checkpoint", type=output_file,
        help="where the finished epochs are kept until the report is written, so that the same "
        "command resumes after Ctrl-C (default: beside --json, named after it: OUT-checkpoint.pt)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.unset = [k for k in SETTINGS if getattr(args, k) is None]
    return args


def config_of(args: argparse.Namespace) -> MinbertConfig:
    """The option's defaults with every setting given on the command line; errors name the flag."""
    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    try:
        return DEFAULTS[args.option].replace(seed=args.seed, **given)
    except ConfigError as err:  # "MinbertConfig.lr must be > 0" -> "--lr must be > 0"
        raise ValueError(
            re.sub(
                r"(?:MinbertConfig|TrainConfig)\.(\w+)",
                lambda m: "--" + m.group(1).replace("_", "-"),
                str(err),
            )  # fmt: skip
        ) from None


def check_json(args: argparse.Namespace) -> None:
    """``--json`` and the checkpoint are files of their own: not one of the inputs, which they would
    replace, nor each other (``args.checkpoint`` becomes the checkpoint's path)."""
    inputs = {
        "--train-file": args.train_file,
        "--dev-file": args.dev_file,
        "--test-file": args.test_file,
    }
    args.checkpoint = report_checkpoint(args.checkpoint, args.json, inputs, MADE_BY)


def check_max_len(cfg: MinbertConfig, bert: BertModel, args: argparse.Namespace) -> None:
    """``--max-len`` (given or the default) within the model's position table, before training
    (a longer batch would fail inside the model)."""
    try:
        check_max_length(bert, cfg.max_len, f"--model {args.model}")
    except ValueError as err:  # its message names finetune's --max-length
        given = f"--max-len {cfg.max_len}" + (" (the default)" if "max_len" in args.unset else "")
        said = str(err).replace(f"--max-length {cfg.max_len}", given, 1)
        raise ValueError(said.replace("--max-length", "--max-len")) from None


@stops_cleanly(
    "each finished epoch is kept in --checkpoint (default: beside --json, OUT-checkpoint.pt): the "
    "same command resumes after the last one (or starts again if none finished)",
    smaller="--batch-size or --max-len",
)
def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse(argv)
    try:
        lock_output(args.json, "--json")  # before the checks: a second run on either is refused
        if args.checkpoint is not None:
            lock_output(args.checkpoint, "--checkpoint")
        device = pick_device()
        check_json(args)
        cfg = config_of(args)
        choose_precision(device, cfg.precision)  # fp16 on a CPU fails here, before any work
        # its folders are made when it is written
        check_report(args.json, command=COMMAND, shape=SHAPE)
        if args.dev_file is None and not 0 < args.dev_fraction < 1:
            raise ValueError(f"--dev-fraction must be between 0 and 1 (the share of --train-file "
                             f"held out as dev), not {args.dev_fraction}")  # fmt: skip
        check_input_files({"--train-file": args.train_file, "--dev-file": args.dev_file,
                           "--test-file": args.test_file})  # fmt: skip
        train = read_examples(args.train_file)
        if labels_hidden(train):
            raise ValueError(f"{args.train_file} hides its labels; training needs every label")
        if args.dev_file and same_file(args.dev_file, args.train_file):
            raise ValueError(f"--dev-file {args.dev_file} is the --train-file: its accuracy would "
                             "not be held out; give another file, or none to carve dev out of train")  # fmt: skip
        if args.dev_file:
            dev, split_note = read_examples(args.dev_file), f"dev: {args.dev_file}"
            if labels_hidden(dev):
                raise ValueError(
                    f"{args.dev_file} hides its labels; dev is scored every epoch, so it needs them"
                )
        else:
            carved = carve_dev(train, args.dev_fraction, args.split_seed)
            train, dev, split_note = carved.train, carved.dev, carved.note
        test = read_examples(args.test_file) if args.test_file else []
        classes = num_classes(train, str(args.train_file))
        for path, rows in ((args.dev_file, dev), (args.test_file, test)):
            check_labels(rows, classes, str(path or "dev"), str(args.train_file))
        start = time.perf_counter()
        loaded = load_bert(args.model)
        load_seconds = time.perf_counter() - start
        check_max_len(cfg, loaded[0], args)
    except (
        OSError,
        ValueError,
    ) as err:  # files, lines, labels, settings, a model that is not there
        print(f"error: {err}", file=sys.stderr)
        return 2
    hidden = bool(test) and labels_hidden(test)
    run = train_classifier(args.model, cfg, train, dev, device, not args.quiet, loaded=loaded,
                           checkpoint=args.checkpoint)  # fmt: skip
    try:
        check_finite_losses(run.history, cfg.lr)
    except ValueError as err:
        args.checkpoint.unlink(missing_ok=True)  # a diverged run: nothing to resume
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    report: dict = {
        "model": args.model,
        "option": cfg.option,
        "dev_accuracy": run.dev_accuracy,
        "test_accuracy": None,
        "best_epoch": run.best_epoch,
        "chosen_by": "the epoch with the best dev accuracy (its weights are the ones tested)",
        "dev_accuracy_per_epoch": run.history["dev_accuracy"],
        "train_loss_per_epoch": run.history["train_loss"],
    }
    if hidden:
        report["predictions"] = predict_labels(run, test)
        report["note"] = (f"{args.test_file}'s labels are hidden: test_accuracy is null and "
                          "predictions holds the predicted class of each line, in order")  # fmt: skip
    elif test:
        report["test_accuracy"] = score(run, test)  # once, with the weights dev chose
    else:
        report["note"] = "no --test-file: test_accuracy is null"
    report.update({
        "classes": run.classes,
        "config": cfg.to_dict(),
        "settings_from_defaults": args.unset,
        "split": split_note,
        # how dev was carved out of train (null with a --dev-file)
        "dev_fraction": None if args.dev_file else args.dev_fraction,
        "split_seed": None if args.dev_file else args.split_seed,
        "examples": {"train": len(train), "dev": len(dev), "test": len(test)},
        "seconds": {
            "load": load_seconds, "tokenize": run.seconds["tokenize"], "train": sum(run.history["seconds"]),
            "per_epoch": run.history["seconds"], "test": time.perf_counter() - start,
            "total": time.perf_counter() - started,
        },
        "device": device.type,
        "precision": choose_precision(device, cfg.precision),  # "auto" resolved
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    })  # fmt: skip
    write_report(args.json, COMMAND, report)
    args.checkpoint.unlink(missing_ok=True)  # its work is in the report now
    tested = (
        "test labels hidden: predictions written"
        if hidden
        else "no test file"
        if not test
        else f"test accuracy {report['test_accuracy']:.4f}"
    )
    print(f"{cfg.option}: dev accuracy {run.dev_accuracy:.4f} (epoch {run.best_epoch} of "
          f"{cfg.epochs}); {tested}; {report['seconds']['total']:.0f} s; wrote {args.json}")  # fmt: skip
    return 0
