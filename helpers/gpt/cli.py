"""The small GPT from a terminal (notebook 07's runs).

    python -m helpers.gpt train --data FILE --level char|word --attention dot|additive|shared-qk|shared-qkv \\
        --mask inf|zero [--minutes M | --iters N] [--layers N --heads N --embd N --block-size N \\
        --batch-size N --accumulate N --lr X --dropout P --additive-dim N --evals N --seed S --quiet] \\
        --save DIR --json OUT
    python -m helpers.gpt sample --load DIR --prompt TEXT [--tokens N --temperature T --top-k K --seed S]

``train`` splits FILE 90/10 (characters, or lines at word level), trains with the course's one trainer
(AdamW, warm-up then cosine decay) and evaluates on the same dev windows every run uses; DIR receives
``model.pt``, ``checkpoint.pt`` and ``plan.json`` (the same command again resumes; a folder holding a run
with other flags or another --data, or files no run of this command wrote, is refused, never written
over). The JSON holds ``dev_loss`` (nats per token, final), ``dev_losses`` per evaluation,
``tokens_per_second`` and ``seconds``. Bad input exits 2 and leaves no file behind.
Under ``torchrun --nproc_per_node N`` (or ``accelerate launch``) it trains data-parallel; rank 0 writes.
"""

import argparse
import contextlib
import json
import math
import re
import sys
import time
from pathlib import Path

from helpers.cli import (
    DefaultsHelp,
    Parser,
    allocator_said,
    lock_output,
    out_of_memory,
    output_file,
    stops_cleanly,
)
from helpers.env import pick_device
from helpers.files import check_report, check_writable, visible_files, write_report
from helpers.gpt.attention import MASKS, VARIANTS
from helpers.gpt.data import LEVELS, Corpus, build_corpus
from helpers.gpt.runs import (
    PLAN,
    WRITER,
    GPTRunConfig,
    load_model,
    read_plan,
    run_key,
    sample,
    train,
)
from helpers.tables import read_utf8
from helpers.training import distributed

COMMAND = "python -m helpers.gpt train"  # named in its reports: no other command replaces one
SHAPE = ("dev_losses", "train_losses")  # the keys of its reports from before that field

FLAGS = {  # GPTRunConfig field -> its flag, for error messages
    "level": "--level", "attention": "--attention", "mask": "--mask", "minutes": "--minutes",
    "iters": "--iters", "layers": "--layers", "heads": "--heads", "embd": "--embd",
    "block_size": "--block-size", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed",
    "additive_dim": "--additive-dim", "dropout": "--dropout", "evals": "--evals",
    "accumulate": "--accumulate",
}  # fmt: skip


def parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="python -m helpers.gpt",
                    description="Train a small GPT on a text file, or sample from one.")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = commands.add_parser("train", help="train a GPT and save it",
                            formatter_class=DefaultsHelp)  # fmt: skip
    t.add_argument("--data", type=Path, required=True, help="a UTF-8 text file")
    t.add_argument("--level", choices=LEVELS, default="char")
    t.add_argument("--attention", choices=VARIANTS, default="dot")
    t.add_argument("--mask", choices=MASKS, default="inf")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="as many steps as fit in this many minutes")
    budget.add_argument("--iters", type=int, help="optimizer steps (default: 2000)")
    defaults = GPTRunConfig(iters=1)
    for name in (
        "layers",
        "heads",
        "embd",
        "block_size",
        "batch_size",
        "accumulate",
        "seed",
    ):
        t.add_argument(FLAGS[name], type=int, default=getattr(defaults, name))
    t.add_argument(
        "--evals", type=int, help=f"dev evaluations along the run (default: {defaults.evals})"
    )
    t.add_argument("--additive-dim", type=int, default=defaults.additive_dim)
    t.add_argument("--lr", type=float, default=defaults.lr)
    t.add_argument("--dropout", type=float, default=defaults.dropout)
    t.add_argument(
        "--save", type=Path, required=True, help="folder for model.pt and the checkpoint"
    )
    t.add_argument("--json", type=output_file, required=True, help="where to write the results")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    s = commands.add_parser("sample", help="write text with a saved GPT",
                            formatter_class=DefaultsHelp)  # fmt: skip
    s.add_argument("--load", type=Path, required=True, help="a folder written by train --save")
    s.add_argument("--prompt", required=True)
    s.add_argument("--tokens", type=int, default=300)
    s.add_argument("--temperature", type=float, default=1.0,
                   help="0 (or less than float32 can hold, ~1e-45): always the most likely token")  # fmt: skip
    s.add_argument("--top-k", type=int)
    s.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def flagged(message: str) -> str:
    """An error about a config field, reworded with its flag: "GPTRunConfig.embd=100" -> "--embd=100"
    (every field a message names is written with its class)."""
    message = re.sub(r"(?:GPTRunConfig|GPTConfig|TrainConfig)\.(\w+)",
                     lambda m: FLAGS.get(m.group(1), m.group(1)), message)  # fmt: skip
    return message.replace("GPTRunConfig needs iters or minutes", "give --iters or --minutes")


def read_text(path: Path) -> str:
    if not path.exists():
        raise ValueError(f"--data {path} does not exist; check the path (relative to {Path.cwd()})")
    if not path.is_file():
        raise ValueError(f"--data {path} is not a file; give a UTF-8 text file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not a character of it
    except UnicodeDecodeError:
        try:
            read_utf8(path)  # reads it again to name the line and byte
        except ValueError as err:
            raise ValueError(f"--data {err}") from None
        raise
    if not text.strip():
        raise ValueError(f"--data {path} holds no text")
    return text


SAVED = ("model.pt", "checkpoint.pt", "plan.json")  # what train --save writes in its folder


def check_paths(args: argparse.Namespace) -> None:
    """--save and --json must be writable and must not overwrite the data or each other's files;
    nothing is created yet."""
    if str(args.save) in ("", ".") or not str(args.json).strip():
        raise ValueError("--save and --json need a folder and a file name; give both")
    if args.save.exists() and not args.save.is_dir():
        raise ValueError(f"--save {args.save} is a file; give a folder (it is created if missing)")
    try:
        check_writable(args.save / SAVED[0], create=False)
    except ValueError as err:
        raise ValueError(f"--save {args.save}: {err}") from None
    json_path = args.json.resolve()
    if json_path == args.data.resolve():
        raise ValueError(f"--json {args.json} is the --data file: writing it would overwrite the "
                         "text; choose another name")  # fmt: skip
    if json_path in {(args.save / name).resolve() for name in SAVED}:
        raise ValueError(f"--json {args.json} would overwrite {json_path.name} in --save; "
                         "choose another name")  # fmt: skip
    save = args.save.resolve()
    if json_path == save or save in json_path.parents:
        raise ValueError(f"--json {args.json} is inside --save {args.save}; write it elsewhere")
    lock_output(args.save, "--save")  # a second run on either meanwhile is refused
    lock_output(args.json, "--json")
    check_report(args.json, command=COMMAND, shape=SHAPE)


def shown(value: object) -> str:
    return "not given" if value is None else str(value)


def _damaged(plan: Path) -> bool:
    """Whether ``plan`` is this command's plan.json cut short or edited, not another tool's file: JSON
    this command wrote, or text that starts as its plans do (``{"key": ...``) but is not JSON."""
    try:
        text = plan.read_text(encoding="utf-8")
    except (OSError, ValueError):  # a folder, unreadable, not UTF-8: not one of ours
        return False
    try:
        plan_data = json.loads(text)
    except ValueError:  # how write_json starts a plan, or a part of that (an empty file too)
        start, text = '{\n  "key": ', text.lstrip()
        return text.startswith(start) or start.startswith(text)
    return isinstance(plan_data, dict) and plan_data.get("written_by") == WRITER


def check_save(folder: Path, cfg: GPTRunConfig, corpus: Corpus) -> None:
    """``--save`` is new, empty, or this command's run with the same flags and data (which resumes):
    a ValueError otherwise, before anything is written, so no run and no other tool's files are lost."""
    if not folder.is_dir():
        return
    files = [f.name for f in visible_files(folder)]
    if not files:
        return
    plan = read_plan(folder)
    if not plan:  # every run writes plan.json before anything else
        if PLAN in files and _damaged(folder / PLAN):  # not "files no run of this command wrote"
            raise ValueError(f"--save {folder}/{PLAN} cannot be read as a plan this command wrote "
                             "(cut short or edited?); give a new --save, or delete the folder to "
                             "train again")  # fmt: skip
        listed = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
        raise ValueError(f"--save {folder} holds files ({listed}) that no run of this command wrote; "
                         "give a new or empty folder, so they are not written over")  # fmt: skip
    if plan["key"] == run_key(cfg, corpus):
        return  # this run: it resumes
    if files == [SAVED[2]]:
        return  # only the plan of a run stopped before its first checkpoint: nothing trained to lose
    ending = "give the same flags to resume it, or a new --save"
    old = plan.get("settings")
    if not isinstance(old, dict):  # a plan.json from before the settings were recorded
        raise ValueError(f"--save {folder} holds a run with other settings or another --data (its "
                         f"plan.json, from an older version, does not say which); {ending}")  # fmt: skip
    new = cfg.to_dict()
    changed = [f"{FLAGS.get(k, k)} {shown(old.get(k))} (now {shown(new.get(k))})"
               for k in {**old, **new} if old.get(k) != new.get(k)]  # fmt: skip
    if plan.get("data") != corpus.digest():
        changed.append("--data: another text")
    if not changed:  # same settings and data, another key: an older version's plan
        changed.append("its plan.json is from another version of this command")
    raise ValueError(
        f"--save {folder} holds a run with other settings: {', '.join(changed)}; {ending}"
    )


def discard_new(folder: Path, existed: bool) -> None:
    """After a failed start: remove the plan.json a new run wrote (and the folder it made) if it
    trained nothing, so the next command with corrected flags is not refused."""
    if any((folder / name).exists() for name in SAVED[:2]):
        return  # it saved something: a run to resume
    (folder / SAVED[2]).unlink(missing_ok=True)
    if not existed:
        with contextlib.suppress(OSError):  # not empty: another run has written there meanwhile
            folder.rmdir()


@stops_cleanly(
    "the same command resumes from the last evaluation checkpointed in --save (or starts again if none was)"
)
def run_train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    values = {name: getattr(args, name) for name in FLAGS}
    if values["iters"] is None and values["minutes"] is None:
        values["iters"] = 2000
    if values["evals"] is None:
        values["evals"] = GPTRunConfig.evals
    existed, fresh = args.save.exists(), False
    try:
        text = read_text(args.data)
        cfg = GPTRunConfig(**values)
        check_paths(args)
        corpus = build_corpus(text, cfg.level)
        check_save(args.save, cfg, corpus)
        fresh = not read_plan(args.save)  # a new run: what it writes goes if it cannot start
        run = train(corpus, cfg, pick_device(), save=args.save, progress=not args.quiet)
    except (OSError, ValueError) as err:  # ConfigError is a ValueError
        if fresh:
            discard_new(args.save, existed)
        one_line = " ".join(line.strip() for line in str(err).splitlines())  # spaces in paths kept
        message = flagged(one_line)
        message = message.replace("; the text has", "; --data has")
        print(f"error: {message}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:  # the allocator's "can't allocate" / "out of memory"
        if not out_of_memory(err):
            raise
        if fresh:
            discard_new(args.save, existed)
        print(f"error: the model or a batch does not fit in memory: make --embd, --layers, "
              f"--batch-size or --block-size smaller ({allocator_said(err)})",
              file=sys.stderr)  # fmt: skip
        return 2
    if not distributed.current().main:
        return 0  # rank 0 writes the report
    report = {
        "data": str(args.data),
        **run.report,
        "command_seconds": time.perf_counter() - started,
    }
    write_report(args.json, COMMAND, report)
    if (
        args.minutes is not None
        and report["iters"] == 1
        and report["command_seconds"] > 60 * args.minutes
    ):
        print(f"note: --minutes {args.minutes:g} was spent before training (reading the text and timing "
              f"steps); trained 1 step, {report['command_seconds']:.0f} s in all", file=sys.stderr)  # fmt: skip
    if args.evals is not None and len(report["dev_losses"]) < args.evals:
        print(f"note: --evals {args.evals}: the run has {report['iters']:,} steps, so "
              f"{len(report['dev_losses'])} evaluations", file=sys.stderr)  # fmt: skip
    print(f"dev loss {report['dev_loss']:.3f} nats/token (perplexity {report['dev_perplexity']:.2f}) "
          f"after {report['iters']:,} steps; {report['tokens_per_second']:,.0f} tokens/s; "
          f"saved {args.save}; wrote {args.json}")  # fmt: skip
    return 0


@stops_cleanly("sampling keeps nothing; the model in --load is as it was")
def run_sample(args: argparse.Namespace) -> int:
    try:
        if args.tokens < 0:
            raise ValueError(f"--tokens must be ≥ 0, not {args.tokens}")
        if not (math.isfinite(args.temperature) and args.temperature >= 0):
            raise ValueError(f"--temperature must be a finite number ≥ 0 (0: always the most "
                             f"likely), not {args.temperature}")  # fmt: skip
        if args.top_k is not None and args.top_k < 1:
            raise ValueError(f"--top-k must be ≥ 1, not {args.top_k}")
        if not 0 <= args.seed < 2**63:
            raise ValueError(f"--seed must be between 0 and 2**63 - 1, not {args.seed}")
        if args.load.is_file():
            raise ValueError(
                f"--load {args.load} is a file; give the folder that train --save wrote"
            )
        model, vocab = load_model(args.load, pick_device())
        if args.top_k is not None and args.top_k > len(vocab):
            print(f"note: --top-k {args.top_k} is more than the vocabulary's {len(vocab)} tokens; "
                  f"every token stays in the draw", file=sys.stderr)  # fmt: skip
        unknown = vocab.unknown(args.prompt)
        if unknown and vocab.level == "word":
            print(f"note: {unknown} are not in the vocabulary; read as <unk>", file=sys.stderr)
        text = sample(
            model, vocab, args.prompt, args.tokens, args.temperature, args.top_k, args.seed
        )
    except (OSError, ValueError) as err:
        message = " ".join(str(err).split()).replace("the prompt", "--prompt")
        print(
            f"error: {message.replace('characters [', '--prompt: characters [')}",
            file=sys.stderr,
        )
        return 2
    print(args.prompt + ("" if vocab.level == "char" or not text else " ") + text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    return run_train(args) if args.command == "train" else run_sample(args)
