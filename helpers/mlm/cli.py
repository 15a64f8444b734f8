"""Pretraining from a terminal: a small BERT with masked language modelling, saved for fine-tuning.

    python -m helpers.mlm --train-file F [--eval-file F | --eval-fraction 0.1] [--epochs N | --minutes M] \\
        [--layers N --hidden N --heads N --vocab-size N --seq-len N --batch-size N --lr X --weight-decay X \\
        --seed S --mask-prob P --whole-words] --save DIR --json OUT

Text files hold one document or line per line (blank lines are skipped). Without ``--eval-file`` the
last 10% of the training file's lines are held out. ``--minutes M`` times a few training steps on a copy
of the model and runs as many whole epochs as fit in M minutes. ``DIR`` receives the model and tokenizer
in Hugging Face's format (``python -m helpers.finetune --model DIR`` and ``python -m helpers.minbert
--model DIR`` fine-tune it) and ``checkpoint.pt``: the same command again resumes after the last epoch.

    python -m helpers.finetune compare --pretrained DIR --sst-file sst2/train.tsv [--seeds 3] --json OUT

then fine-tunes the pretrained model, its randomly initialised twin and MiniLM on SST-2 (``helpers.finetune.twin``).
"""

import argparse
import re
import sys
import time
from pathlib import Path

from helpers.cli import (
    Parser,
    disk_full,
    lock_output,
    no_memory,
    out_of_memory,
    output_file,
    refuses_non_finite,
    running,
    stopped,
)
from helpers.config import ConfigError
from helpers.env import pick_device
from helpers.files import (
    DiskFull,
    check_not_an_input,
    check_report,
    check_writable,
    visible_files,
    write_report,
)
from helpers.mlm.runs import (
    CHECKPOINT,
    SAFETY,
    STATE,
    MlmConfig,
    forget_settings,
    pretrain,
    read_state,
    split_eval,
    texts_key,
)
from helpers.training import choose_precision

COMMAND = "python -m helpers.mlm"  # named in its reports: no other command replaces one
SHAPE = ("eval_perplexity", "tokens_seen")  # the keys of its reports from before that field

FLAGS = {  # MlmConfig field -> its flag, for error messages
    "layers": "--layers", "hidden": "--hidden", "heads": "--heads", "vocab_size": "--vocab-size",
    "seq_len": "--seq-len", "epochs": "--epochs", "minutes": "--minutes", "batch_size": "--batch-size",
    "lr": "--lr", "weight_decay": "--weight-decay", "seed": "--seed", "warmup": "--warmup",
    "mask_prob": "--mask-prob", "precision": "--precision", "max_positions": "--max-positions",
    "whole_words": "--whole-words", "dropout": "--dropout",
}  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="python -m helpers.mlm",
        description="Pretrain a small BERT with masked language modelling and save it in Hugging Face's "
        "format (python -m helpers.finetune compare ...: the SST-2 comparison).",
    )
    parser.add_argument(
        "--train-file", type=Path, required=True, help="text, one document or line per line"
    )
    parser.add_argument("--eval-file", type=Path, help="held-out text (default: the last --eval-fraction "
                        "of the training file's lines)")  # fmt: skip
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="default 3")
    budget.add_argument(
        "--minutes", type=float, help="as many whole epochs as fit in this many minutes"
    )
    defaults = MlmConfig(epochs=1)
    for name in (
        "layers",
        "hidden",
        "heads",
        "vocab_size",
        "seq_len",
        "max_positions",
        "batch_size",
        "seed",
    ):
        parser.add_argument(FLAGS[name], type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                        help="AdamW's weight decay (default %(default)s, BERT's)")  # fmt: skip
    parser.add_argument("--warmup", type=float, default=defaults.warmup,
                        help="the fraction of the steps warming the rate up, then linear decay to 0")  # fmt: skip
    parser.add_argument("--mask-prob", type=float, default=defaults.mask_prob)
    parser.add_argument("--dropout", type=float, default=defaults.dropout,
                        help="dropout while pretraining (default %(default)s, BERT's; 0 turns it off); "
                        "the saved config keeps it: compare --dropout sets fine-tuning's")  # fmt: skip
    parser.add_argument("--whole-words", action="store_true",
                        help="choose whole words to mask (every '##' piece with its word), not tokens")  # fmt: skip
    parser.add_argument(
        "--precision", default="auto", help="auto (by hardware), fp32, bf16 or fp16"
    )
    parser.add_argument(
        "--save", type=Path, required=True, help="folder for the model, tokenizer and checkpoint"
    )
    parser.add_argument(
        "--json", type=output_file, required=True, help="where to write the results"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> MlmConfig:
    """MlmConfig from the flags; an error names the flag ("--hidden=100 is not divisible by --heads=3")."""
    epochs = args.epochs if args.epochs is not None or args.minutes is not None else 3
    values = {
        name: getattr(args, name) for name in FLAGS if hasattr(args, name) and name != "epochs"
    }
    try:
        return MlmConfig(**{**values, "epochs": epochs})
    except ConfigError as err:
        raise ValueError(
            flagged(str(err)).replace(
                "MlmConfig needs epochs or minutes", "give --epochs or --minutes"
            )
        ) from None


def flagged(message: str) -> str:
    """An error about a config field, reworded with its flag: "MlmConfig.hidden=100" -> "--hidden=100"."""
    message = re.sub(
        r"(?:MlmConfig|TrainConfig)\.(\w+)", lambda m: FLAGS.get(m.group(1), m.group(1)), message
    )
    return re.sub(r"\b(heads|max_positions|vocab_size)\b", lambda m: FLAGS[m.group(1)], message)


def read_text(path: Path, what: str) -> list[str]:
    """The non-blank lines of ``path``; a missing, unreadable or empty file is a ValueError naming it."""
    from helpers.tokenization.train import read_lines

    if not path.exists():
        raise ValueError(f"{what} {path} does not exist; check the path (relative to {Path.cwd()})")
    if not path.is_file():
        raise ValueError(
            f"{what} {path} is not a file; give a text file, one document or line per line"
        )
    try:
        lines = read_lines(path)
    except ValueError as err:  # not UTF-8: the line and byte
        raise ValueError(f"{what} {err}") from None
    if not lines:
        raise ValueError(f"{what} {path} holds no text (every line is blank)")
    return lines


def check_save(folder: Path, cfg: MlmConfig, train: list[str], held: list[str]) -> None:
    """``--save`` is new, empty, or this run's own folder: a ValueError before it could be written over
    (a model saved some other way, or a run with other flags or text, which only resumes unchanged)."""
    if not folder.is_dir():
        return
    state = read_state(folder)
    if not state:  # every run of this command writes its state before anything else
        files = [f.name for f in visible_files(folder)]
        if STATE in files:  # cut short or edited: not "files no run of this command wrote"
            raise ValueError(f"--save {folder}/{STATE} cannot be read as the state this command "
                             "wrote (cut short or edited?); give a new --save, or delete the folder "
                             "to train again")  # fmt: skip
        if files:
            shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
            raise ValueError(f"--save {folder} holds files ({shown}) that no run of this command "
                             "wrote; give a new or empty folder, so they are not written over")  # fmt: skip
        return
    old = state.get("settings")
    if isinstance(old, dict) and old != cfg.to_dict():
        changed = [f"{FLAGS.get(k, k)} {old.get(k)} (now {v})" for k, v in cfg.to_dict().items()
                   if old.get(k) != v]  # fmt: skip
        raise ValueError(f"--save {folder} holds a run with other settings: {'; '.join(changed)}; give "
                         "the same flags to resume it, or a new --save to train anew")  # fmt: skip
    if state.get("texts") not in (None, texts_key(train, held)):
        raise ValueError(f"--save {folder} holds a run on other text (--train-file, --eval-file or "
                         "--eval-fraction differ); give the same to resume it, or a new --save")  # fmt: skip


def check_json(args: argparse.Namespace) -> None:
    """``--json`` is a file of its own: not an input, not inside ``--save``."""
    out, save = args.json.resolve(), args.save.resolve()
    if out == save or save in out.parents:
        raise ValueError(f"--json {args.json} is inside --save {args.save}; write it elsewhere")
    check_not_an_input(args.json, {"--train-file": args.train_file, "--eval-file": args.eval_file})


@refuses_non_finite
def main(argv: list[str] | None = None) -> int:
    with running():  # SIGTERM as Ctrl-C; the --save and --json it locks freed at the end
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    started = time.perf_counter()
    args = parse(argv)
    try:
        device = pick_device()
        cfg = config_of(args)
        choose_precision(device, cfg.precision)  # fp16 on a CPU fails here, before any work
        lock_output(args.save, "--save")  # before the checks: a second run on either is refused
        lock_output(args.json, "--json")
        check_json(args)
        # its folder is made when it is written
        check_report(args.json, command=COMMAND, shape=SHAPE)
        if args.save.exists() and not args.save.is_dir():
            raise ValueError(
                f"--save {args.save} is a file; give a folder (it is created if missing)"
            )
        train = read_text(args.train_file, "--train-file")
        if args.eval_file is not None:
            if args.eval_file.resolve() == args.train_file.resolve():
                raise ValueError(f"--eval-file {args.eval_file} is the --train-file: its perplexity "
                                 "would not be held out; give another file or leave --eval-file out")  # fmt: skip
            held = read_text(args.eval_file, "--eval-file")
            split = f"held out: {args.eval_file}"
        else:
            train, held = split_eval(train, args.eval_fraction)
            split = f"held out: the last {len(held):,} of {len(train) + len(held):,} lines of {args.train_file}"
        check_save(args.save, cfg, train, held)
        new_folder = not args.save.exists()
        check_writable(args.save / ".probe")  # creates the folder: only once the inputs are good
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kept = (f"the same command resumes after the last whole epoch, checkpointed in "
            f"{args.save / CHECKPOINT} (or starts again if none finished)")  # fmt: skip
    try:
        run = pretrain(cfg, train, held, args.save, device, progress=not args.quiet)
    except ValueError as err:  # e.g. a text too small to hold a token, a run that diverged
        if new_folder and not any(args.save.iterdir()):
            args.save.rmdir()  # nothing was written: leave no empty folder behind
        print(f"error: {flagged(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return stopped(kept)
    except DiskFull as err:
        return disk_full(err, kept)
    except (MemoryError, RuntimeError) as err:
        if not out_of_memory(err):
            raise
        forget_settings(args.save)  # no epoch kept: the smaller run may use this --save
        return no_memory(err, "--hidden, --layers, --seq-len or --batch-size", kept)
    report = {"train_file": str(args.train_file), "eval_file": str(args.eval_file or ""), "split": split,
              **run.report}  # fmt: skip
    report["seconds"]["command"] = time.perf_counter() - started
    try:
        write_report(args.json, COMMAND, report)
    except DiskFull as err:
        return disk_full(err, kept)
    plan = report["plan"]
    if plan and plan["epochs"] == 1 and plan["estimated_epoch_seconds"] * SAFETY > 60 * cfg.minutes:
        print(f"note: --minutes {cfg.minutes:g} fits no whole epoch (one takes about "
              f"{plan['estimated_epoch_seconds']:.0f} s here); trained 1", file=sys.stderr)  # fmt: skip
    curve = ", ".join(f"{p:.1f}" for p in report["eval_perplexity"])
    print(f"held-out MLM perplexity per epoch: {curve}; {report['tokens_seen']:,} tokens seen in "
          f"{report['seconds']['all_epochs']:.0f} s; saved {args.save}; wrote {args.json}")  # fmt: skip
    return 0
