"""Notebook 03 from a terminal or a cluster: the same functions and configs as the notebook.

    python -m helpers.imdb --train-file train.jsonl --test-file test.jsonl --glove-file glove.6B.50d.txt \\
        [--config course|best --epochs N --blocks N --lr X --max-len N --accumulate N --seed N] --json out.json

Under ``torchrun --nproc_per_node N`` (or ``accelerate launch``) it trains data-parallel; rank 0 writes.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from helpers.cli import (
    Parser,
    add_quiet,
    check_input_files,
    lock_output,
    output_file,
    per_config,
    stops_cleanly,
)
from helpers.download import cache_dir
from helpers.env import pick_device
from helpers.files import check_not_an_input, check_report, check_writable, write_report
from helpers.glove import load_glove
from helpers.imdb.data import kept_apart, read_jsonl, training_splits
from helpers.imdb.runs import CONFIGS, as_flags, prepare, run, score_test
from helpers.training import choose_precision, distributed

COMMAND = "python -m helpers.imdb"  # named in its reports: no other command replaces one


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="python -m helpers.imdb", description="Train notebook 03's IMDB transformer."
    )
    parser.add_argument("--train-file", required=True, help="jsonl with fields text and label")
    parser.add_argument("--test-file", required=True, help="jsonl with fields text and label")
    parser.add_argument(
        "--glove-file", required=True, help="GloVe in its text format (.txt or .zip)"
    )
    parser.add_argument("--config", choices=sorted(CONFIGS), default="course")

    def configs(field: str) -> str:
        return per_config("--config", CONFIGS, field)

    parser.add_argument("--epochs", type=int, help=configs("epochs"))
    parser.add_argument("--blocks", type=int, help=configs("blocks"))
    parser.add_argument("--lr", type=float, help=configs("lr"))
    parser.add_argument("--max-len", "--max-length", type=int,
                        help=f"tokens kept per review; {configs('max_len')}")  # fmt: skip
    parser.add_argument("--accumulate", type=int,
                        help="batches per optimizer step, over all processes (default: 1)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--precision", default="auto", help="auto (by hardware), fp32, bf16 or fp16"
    )
    add_quiet(parser)
    parser.add_argument(
        "--valid-fraction", type=float, default=0.1, help="of the train file, held out (seed 42)"
    )
    parser.add_argument(
        "--json", type=output_file, required=True, help="where to write the results"
    )
    return parser.parse_args(argv)


def check_earlier_report(path: Path, config: dict, seed: int) -> None:
    """A ValueError if ``path`` is named like a saved model's file, or exists and is not this
    command's report of a run with the same config and seed (a rerun of one command writes its report
    again; nothing else is written over)."""
    lock_output(path, "--json")  # a second run on it meanwhile is refused
    check_report(path, command=COMMAND, shape=("test_accuracy", "config", "seed"))
    if not path.exists():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("config") != config or saved.get("seed") != seed:
        raise ValueError(f"--json {path} holds the report of a run with other settings; give another "
                         "--json, or delete it to replace it")  # fmt: skip


def check_earlier_data(path: Path, data: str, valid_fraction: float) -> None:
    """A ValueError if ``path`` holds this command's report of a run on other data (another file, or
    another --valid-fraction): a rerun on other reviews replaced it without a word."""
    if not path.exists():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    if (
        saved.get("data", data) != data
        or saved.get("valid_fraction", valid_fraction) != valid_fraction
    ):
        raise ValueError(f"--json {path} holds the report of a run on other data (other files or "
                         "another --valid-fraction); give another --json, or delete it to replace it")  # fmt: skip


CHECKPOINTS_NOTE = (
    "(checkpoints go to $HELPERS_CACHE/checkpoints: point HELPERS_CACHE at a folder you can write)"
)


@stops_cleanly(
    "each finished epoch is kept in the cache's checkpoints/ folder ($HELPERS_CACHE, by default "
    "~/.cache/attention-lab): the same command resumes after the last one (or starts again if none "
    "finished)",
    smaller="--max-len (or --blocks)",
)
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        device = pick_device()  # under torchrun: this process's GPU (an error if it has none)
        overrides = {
            k: getattr(args, k)
            for k in ("epochs", "blocks", "lr", "max_len", "precision", "accumulate")
        }
        cfg = CONFIGS[args.config].replace(**{k: v for k, v in overrides.items() if v is not None})
        # bf16 or fp16 without a GPU fails here, before any work
        choose_precision(device, cfg.precision)
        check_not_an_input(args.json, {"--train-file": args.train_file, "--test-file": args.test_file,
                                       "--glove-file": args.glove_file})  # fmt: skip
        check_earlier_report(args.json, cfg.to_dict(), args.seed)
        distributed.current()  # the launcher's variables, if any, are sound
        if not 0 <= args.seed < 2**63:
            raise ValueError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
        if not 0 < args.valid_fraction < 1:
            raise ValueError(f"--valid-fraction must be between 0 and 1, got {args.valid_fraction}")
        try:  # the checkpoints' place, named before minutes of reading and tokenising, not after
            check_writable(cache_dir() / "checkpoints" / "imdb.pt")
        except ValueError as err:
            raise ValueError(f"{err} {CHECKPOINTS_NOTE}") from None
        start = time.perf_counter()
        check_input_files({"--train-file": args.train_file, "--test-file": args.test_file,
                           "--glove-file": args.glove_file})  # fmt: skip
        everything, train_data, valid_data = training_splits(args.train_file, args.valid_fraction)
        test_data = kept_apart(everything, args.train_file, read_jsonl(args.test_file),
                               args.test_file, "--test-file")  # fmt: skip
        read_seconds = time.perf_counter() - start
        start = time.perf_counter()
        glove, cached = load_glove(args.glove_file)
        glove_seconds = time.perf_counter() - start
    except (OSError, ValueError) as err:
        print(f"error: {as_flags(str(err))}", file=sys.stderr)
        return 2
    main_rank = distributed.current().main  # under torchrun, only rank 0 shows progress
    prepared = prepare(
        {"train": train_data, "valid": valid_data, "test": test_data},
        glove,
        main_rank and not args.quiet,
    )
    try:
        check_earlier_data(args.json, prepared.fingerprint(), args.valid_fraction)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if main_rank:
        print(f"{len(prepared.itos)} words in the vocabulary; "
              f"GloVe covers {prepared.coverage:.1%} of the tokens")  # fmt: skip
    try:
        # resumes after Ctrl-C; a diverged run's error names the --lr flag
        result = run(prepared, cfg, device, seed=args.seed, checkpoint=True, lr_flag="--lr",
                     progress=not args.quiet)  # fmt: skip
    except ValueError as err:  # a diverged run, or a checkpoint place it cannot write
        message = str(err)
        if message.startswith("cannot write"):  # the cache's checkpoints/ folder
            message += f" {CHECKPOINTS_NOTE}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    history = result.history
    if not main_rank:
        return 0  # rank 0 scores the test file and writes the report
    start = time.perf_counter()
    test = score_test(prepared, result.model, device, precision=cfg.precision)  # once, at the end
    test_seconds = time.perf_counter() - start
    report = {
        "config": cfg.to_dict(),
        "seed": args.seed,
        "precision": choose_precision(device, cfg.precision),
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "history": dict(history),
        # the same keys whether or not a step came from the cache ("cached" lists those that did)
        "seconds": {
            "read": read_seconds,
            "glove": glove_seconds,
            **{step.removesuffix(" (cached)"): s for step, s in prepared.seconds.items()},
            **{f"epoch {e}": s for e, s in zip(history["epoch"], history["seconds"])},
            "test": test_seconds,
        },
        "cached": ["glove"] * cached
        + [
            step.removesuffix(" (cached)") for step in prepared.seconds if step.endswith("(cached)")
        ],
        "examples": {name: len(d) for name, d in prepared.docs.items()},
        "vocabulary": len(prepared.itos),
        "glove_dim": glove.dim,
        "token_coverage": prepared.coverage,
        "device": device.type,
        "processes": distributed.current().world,
        "torch": torch.__version__,
        "valid_fraction": args.valid_fraction,
        "files": {
            flag: str(Path(path).resolve())
            for flag, path in (
                ("train", args.train_file),
                ("test", args.test_file),
                ("glove", args.glove_file),
            )
        },
        "data": prepared.fingerprint(),  # the encoded reviews, labels and vectors
    }
    write_report(args.json, COMMAND, report)
    print(f"test accuracy {report['test_accuracy']:.2%}; wrote {args.json}")
    return 0
