"""Notebook 09's Slurm runs from a terminal.

    python -m helpers.scaling write --out DIR --models minilm[,t5-small,...] --lrs 2e-5,5e-5 --epochs 2,3 \\
        --train-file F --eval-file F [--test-file F --batch-size N --max-train-examples N --max-length N \\
        --seed S --gpus N --time HH:MM:SS --partition P --parallel N --cpus N]
    python -m helpers.scaling task DIR/plan.json INDEX      # run array task INDEX (its fine-tuning)
    python -m helpers.scaling collect DIR [--json OUT --plot PNG]
    python -m helpers.scaling compare --data TEXT --json OUT [--processes 1,2 --iters N --accumulate N \\
        --dropout P]                                       # the same GPT run in 1 and N processes

``write`` makes DIR/plan.json (every model × lr × epochs), DIR/job.sh (the first run, data-parallel on
all the GPUs of a node) and DIR/array.sh (one array task per run); ``sbatch DIR/array.sh`` submits. It
refuses a DIR that holds another plan or results without a plan (the same flags again only rewrite the
scripts), and settings every task would fail on (files, columns, labels, --seed, model folders).
``collect`` prints the dev-accuracy grid, the run dev chose and its test accuracy, and draws each
model's dev and test accuracy. Bad input exits 2.
"""

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from helpers.cli import Parser, check_magnitude, check_plain, output_file, stops_cleanly
from helpers.files import atomic_write, check_report, check_writable, write_report
from helpers.scaling.runs import compare_processes
from helpers.scaling.slurm import (
    MAX_ARRAY,
    best_on_dev,
    collect,
    grid_table,
    make_plan,
    per_model,
    plan_key,
    read_plan,
    task_command,
    task_result,
    write_jobs,
)

COMMAND = "python -m helpers.scaling"  # named in its reports: no other command replaces one


def numbers(kind: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        pieces = [v.strip() for v in text.split(",") if v.strip()]
        try:
            values = [kind(v) for v in pieces]
            for piece in pieces:
                check_plain(piece, kind)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of {kind.__name__}s"
            ) from None
        for piece, value in zip(pieces, values):
            check_magnitude(value, kind, piece)
        return values

    return parse


def parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(
        prog="python -m helpers.scaling", description="Slurm job scripts and their results."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    w = commands.add_parser("write", help="write plan.json, job.sh and array.sh")
    w.add_argument("--out", type=Path, required=True, help="the folder for the scripts and results")
    names = lambda t: [m.strip() for m in t.split(",") if m.strip()]  # noqa: E731 ("a, b" too)
    w.add_argument("--models", type=names, required=True,
                   help="comma-separated: hub names, local folders, minilm, tiny or t5-tiny")  # fmt: skip
    w.add_argument("--lrs", type=numbers(float), default=[5e-5],
                   help="comma-separated fine-tuning rates (default: 5e-05, the largest the BERT "
                   "paper suggests; `finetune` alone defaults to 1e-4, chosen for MiniLM on a CPU)")  # fmt: skip
    w.add_argument("--epochs", type=numbers(int), default=[3], help="comma-separated")
    for flag in ("--train-file", "--eval-file", "--test-file", "--text-column", "--label-column"):
        w.add_argument(flag, required=flag in ("--train-file", "--eval-file"))
    for flag in ("--max-train-examples", "--batch-size", "--max-length", "--seed"):
        w.add_argument(flag, *(["--max-len"] if flag == "--max-length" else []), type=int)
    w.add_argument("--gpus", type=int, default=1, help="GPUs per node (0: a CPU-only cluster)")
    w.add_argument("--time", default="01:00:00", help="each task's time limit, HH:MM:SS")
    w.add_argument("--partition")
    w.add_argument("--parallel", type=int, default=4, help="array tasks running at once at most")
    w.add_argument("--cpus", type=int, default=4, help="CPU cores per task")
    t = commands.add_parser(
        "task", help="run one array task (array.sh calls this); a finished task says so and stops"
    )
    t.add_argument("plan", type=Path, help="the plan.json `write` wrote")
    t.add_argument("index", type=int, help="the task's row in the plan ($SLURM_ARRAY_TASK_ID)")
    t.add_argument("--plan-key", help="the plan's key when array.sh was written: a plan rewritten "
                   "since is refused")  # fmt: skip
    c = commands.add_parser("collect", help="the grid table and the chart from the results")
    c.add_argument("folder", type=Path, help="the --out folder of `write`, its tasks run")
    c.add_argument("--json", type=output_file, help="where to write the table as JSON")
    c.add_argument("--plot", type=output_file, help="a .png of each model's dev and test accuracy")
    m = commands.add_parser("compare", help="the same GPT training in 1 and N processes")
    m.add_argument("--data", type=Path, required=True, help="a UTF-8 text file")
    m.add_argument("--json", type=output_file, required=True, help="where to write the results")
    m.add_argument("--processes", type=numbers(int), default=[1, 2], help="comma-separated")
    m.add_argument("--iters", type=int, default=200)
    m.add_argument("--accumulate", type=int, default=2)
    m.add_argument("--dropout", type=float, default=0.0)
    m.add_argument("--folder", type=Path, help="where the runs save (default: beside --json)")
    return parser.parse_args(argv)


def run_write(args: argparse.Namespace) -> int:
    files = {k: getattr(args, k) for k in ("train_file", "eval_file", "test_file", "text_column",
                                           "label_column", "max_train_examples", "batch_size",
                                           "max_length", "seed")}  # fmt: skip
    plan = make_plan(args.out, models=args.models, lrs=args.lrs, epochs=args.epochs, files=files,
                     gpus=args.gpus, time=args.time, partition=args.partition,
                     parallel=args.parallel, cpus=args.cpus)  # fmt: skip
    check_writable(args.out / "plan.json")
    paths = write_jobs(plan)
    count = len(plan["runs"])
    print(f"{count} run{'s' * (count != 1)}; wrote {paths['plan']}, {paths['job']} and "
          f"{paths['array']}; submit with: sbatch {shlex.quote(str(paths['array']))}")  # fmt: skip
    if count > MAX_ARRAY:
        print(f"note: an array of {count} tasks is more than Slurm's default MaxArraySize "
              f"({MAX_ARRAY}), which sbatch refuses; see `scontrol show config | grep "
              "MaxArraySize`, or split the grid", file=sys.stderr)  # fmt: skip
    return 0


def check_outside_grid(flag: str, path: Path, folder: Path) -> None:
    """Refuse an output path that is the grid's plan or scripts, or lies in its results/ or logs/:
    the summary would replace what collect (and the next collect) reads."""
    target, grid = path.resolve(), folder.resolve()
    kept = {grid / name: f"the grid's {name}" for name in ("plan.json", "job.sh", "array.sh")}
    inside = [
        f"inside the grid's {sub}/" for sub in ("results", "logs") if grid / sub in target.parents
    ]
    what = kept.get(target) or (inside[0] if inside else None)
    if what:
        raise ValueError(f"{flag} {path} is {what} ({folder}): writing it would replace what collect "
                         "reads; give a file outside plan.json, job.sh, array.sh, results/ and logs/")  # fmt: skip


STARTS = {".png": (b"\x89PNG",), ".pdf": (b"%PDF",), ".svg": (b"<",), ".svgz": (b"\x1f\x8b",),
          ".jpg": (b"\xff\xd8",), ".jpeg": (b"\xff\xd8",), ".eps": (b"%!PS",), ".ps": (b"%!PS",),
          ".tif": (b"II*", b"MM\x00*"), ".tiff": (b"II*", b"MM\x00*"), ".webp": (b"RIFF",), ".gif": (b"GIF8",)}  # fmt: skip


def check_plot(path: Path, report: Path | None) -> None:
    """``--plot`` is an image file of its own: a format matplotlib writes (by its suffix), not the
    report, and, if it exists, an image of that format (a chart drawn before), never another file."""
    from matplotlib.backend_bases import FigureCanvasBase

    if report is not None and path.resolve() == report.resolve():
        raise ValueError(f"--plot {path} is the --json report; give each its own file")
    formats = sorted(f".{name}" for name in FigureCanvasBase.get_supported_filetypes())
    if path.suffix.lower() not in formats:
        raise ValueError(f"--plot {path}: give a file ending in one of matplotlib's formats "
                         f"({', '.join(formats)}), such as .png")  # fmt: skip
    check_writable(path)
    if path.is_file():
        with path.open("rb") as f:
            head = f.read(64).lstrip()
        if not head.startswith(STARTS.get(path.suffix.lower(), ())):
            raise ValueError(f"--plot {path} exists and is not a {path.suffix} image: writing would "
                             "replace it; give another --plot, or delete the file")  # fmt: skip


def run_collect(args: argparse.Namespace) -> int:
    for flag, path in (("--json", args.json), ("--plot", args.plot)):  # before any work
        if path is not None:
            check_outside_grid(flag, path, args.folder)
            if flag == "--json":
                check_report(path, flag, create=True, command=f"{COMMAND} collect",
                             shape=("runs", "missing", "best_on_dev"))  # fmt: skip
            else:
                check_plot(path, args.json)
    rows, missing = collect(args.folder)
    for line in missing:
        print(f"missing: {line}", file=sys.stderr)
    if missing:  # the tasks left, as one command (a whole array resubmitted skips finished tasks)
        done = {row["task"] for row in rows}  # collect gives each task a row or a missing line
        tasks = ",".join(str(i) for i in range(len(rows) + len(missing)) if i not in done)
        array = shlex.quote(str(Path(args.folder) / "array.sh"))
        print(f"to run just those once more: sbatch --array={tasks} {array}", file=sys.stderr)
    if not rows:
        raise ValueError(f"no run in {args.folder} has finished (no results/*.json); wait for "
                         "squeue to empty, then read the logs")  # fmt: skip
    print(grid_table(rows).to_string())
    best = best_on_dev(rows)
    print(f"chosen on dev: {best['model']}, lr {best['lr']}, {best['epochs']} epochs: dev "
          f"{best['dev']:.4f}, test {best['test']}")  # fmt: skip
    if args.json:
        plan = read_plan(Path(args.folder) / "plan.json")  # what every row ran on, as written
        grid = {"key": plan_key(plan), "common": plan["common"],
                "data_sha256": plan.get("data_sha256")}  # fmt: skip
        report = {"runs": rows, "missing": missing, "best_on_dev": best, "plan": grid}
        write_report(args.json, f"{COMMAND} collect", report)
        print(f"wrote {args.json}")
    if args.plot:
        from helpers.plots.scaling import dev_test_bars

        figure = dev_test_bars(per_model(rows), best)
        form = args.plot.suffix.lower()[1:]  # the temporary file's name ends in .part
        atomic_write(
            args.plot, lambda tmp: figure.savefig(tmp, format=form, dpi=120, bbox_inches="tight")
        )
        print(f"wrote {args.plot}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    if not args.data.is_file():
        raise ValueError(f"--data {args.data} is not a file; give a UTF-8 text file")
    check_report(args.json, create=True, command=f"{COMMAND} compare", shape=("rows", "cpus"))
    folder = args.folder or args.json.with_suffix("")
    if folder.resolve() == args.json.resolve():  # found only after every run had trained
        raise ValueError(f"--json {args.json} has no suffix, so the runs' folder (--json without its "
                         "suffix) would be the report itself: name it like compare.json, or give "
                         "--folder")  # fmt: skip
    runs = {(folder / f"{n}.json").resolve() for n in args.processes}  # each run's report
    if args.json.resolve() in runs:
        raise ValueError(f"--json {args.json} is where the run in {args.json.stem} process(es) writes its "
                         "own report; give a --json outside --folder's N.json files")  # fmt: skip
    rows = compare_processes(args.data, folder, tuple(args.processes), iters=args.iters,
                             accumulate=args.accumulate, dropout=args.dropout)  # fmt: skip
    write_report(
        args.json,
        f"{COMMAND} compare",
        {"data": str(args.data), "rows": rows, "cpus": os.cpu_count()},
    )
    for r in rows:
        print(f"{r['processes']} process(es): dev loss {r['dev_loss']:.4f}, {r['steps']} steps, "
              f"training {r['train_seconds']:.1f} s, wall {r['wall_seconds']:.1f} s")  # fmt: skip
    print(f"wrote {args.json}; each run's model and report are in {folder}")
    return 0


@stops_cleanly(
    "each file is written whole or not at all; compare's gpt runs keep what they saved in its "
    "--folder, and the same command resumes them"
)
def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "write":
            return run_write(args)
        if args.command == "collect":
            return run_collect(args)
        if args.command == "compare":
            return run_compare(args)
        plan = read_plan(args.plan)
        if args.plan_key is not None and args.plan_key != plan_key(plan):
            raise ValueError(f"{args.plan} changed since this array.sh was written (another plan was "
                             "written there): scancel the array, then sbatch the new array.sh")  # fmt: skip
        command = task_command(plan, args.index)
        done = task_result(Path(plan["folder"]), plan, args.index)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    # A whole array resubmitted: its finished tasks are not trained again.
    if isinstance(done, dict):
        print(f"task {args.index} has finished: {plan['folder']}/results/{args.index}.json holds its "
              f"dev accuracy {done['dev']:.4f}; delete that file to run it again")  # fmt: skip
        return 0
    print(shlex.join(command), flush=True)  # the log says what ran, as a shell would read it
    os.execv(command[0], command)  # the task becomes that command (its exit status is the task's)
