"""Notebook 03's ablation: the course config (or `best`) against one change at a time, several seeds
each, scored on validation only (the test split is not even loaded), or on a choose file of other
reviews kept for choosing (say, other films' reviews).

    python -m helpers.imdb.ablation --train-file train.jsonl --glove-file glove.6B.50d.txt \\
        [--base course|best --choose-file F --seeds 3 --valid-fraction 0.1 --epochs N] --json ablation.json

The JSON is rewritten after every run, so a killed command resumes where it stopped.
"""

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from helpers.cli import (
    Parser,
    check_input_files,
    disk_full,
    lock_output,
    output_file,
    refuses_non_finite,
    running,
    stopped,
)
from helpers.download import project_file
from helpers.env import pick_device
from helpers.files import DiskFull, check_report, write_report
from helpers.glove import load_glove
from helpers.imdb.data import kept_apart, read_jsonl, training_splits
from helpers.imdb.runs import CONFIGS, ImdbConfig, Prepared, as_flags, prepare, run, score_test
from helpers.source import code_digest
from helpers.training.loop import Diverged

if TYPE_CHECKING:
    import pandas as pd

COMMAND = "python -m helpers.imdb.ablation"  # named in its file: no other command replaces it

# One change from the course config per row; "course" itself is the reference.
CHANGES: dict[str, dict] = {
    "course": {},
    "frozen GloVe": {"freeze_embeddings": True},
    "batch 32": {"batch_size": 32},
    "2 blocks": {"blocks": 2},
    "2 heads": {"heads": 2},
    "max 512 tokens": {"max_len": 512},
    "lr 1e-3": {"lr": 1e-3},
}
# `best` against each of its choices put back to the course's value (pooling: the course's mean).
BEST_CHANGES: dict[str, dict] = {
    "best": {},
    "1 head": {"heads": 1},
    "max 256 tokens": {"max_len": 256},
    "dropout 0.1": {"dropout": 0.1},
    "5 epochs": {"epochs": 5},
    "mean pooling": {"pooling": "mean"},
    "no word dropout": {"word_dropout": 0.0},
}


def ablation(
    prepared: Prepared,
    base: ImdbConfig,
    seeds: list[int],
    device: torch.device,
    changes: dict[str, dict] = CHANGES,
    done: Sequence[dict] = (),
    save: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Train ``base`` with each change for each seed; one row per run with its validation scores (and
    its final model's accuracy on the "choose" split, if ``prepared`` has one). Rows already in
    ``done`` are kept, not retrained, if the code that trains and scores a run is the same (a row
    of an older helpers, or of an edited trainer, is run again); ``save(rows)`` is called after
    every run."""
    code = code_digest(run, score_test)  # and what they reach: the model, fit, the data's batches
    rows = [r for r in done if r.get("code") == code]
    if len(rows) < len(done):
        print(f"note: {len(done) - len(rows)} of the {len(done)} saved runs were trained by other code "
              "(an older helpers, or an edited trainer): running them again")  # fmt: skip
    todo = [(name, seed) for name in changes for seed in seeds
            if not any(r["change"] == name and r["seed"] == seed for r in rows)]  # fmt: skip
    for name, seed in tqdm(todo, desc="ablation", unit="run"):
        cfg = base.replace(**changes[name])
        try:
            result = run(prepared, cfg, device, seed=seed, progress=False)
        except Diverged as err:  # the runs before it are saved; say which one
            raise Diverged(f"the run of {name!r} with seed {seed}: {err}") from None
        history = result.history
        rows.append({
            "change": name, "seed": seed, "config": cfg.to_dict(),
            "valid_accuracy": history.last("valid_accuracy"), "valid_loss": history.last("valid_loss"),
            "best_epoch_valid_accuracy": max(history["valid_accuracy"]),
            "seconds_per_epoch": statistics.mean(history["seconds"]), "code": code,
        })  # fmt: skip
        if "choose" in prepared.docs:
            rows[-1]["choose_accuracy"] = score_test(
                prepared, result.model, device, "choose", cfg.precision
            ).accuracy
        if save is not None:
            save(rows)
    return rows


def summary(rows: list[dict], reference: str | None = None) -> "pd.DataFrame":
    """One line per change: the accuracy the choice is made on (the choose file's if the runs have
    one, else validation's) as mean, spread (sample sd) and range over seeds, and the mean difference
    from ``reference`` (default: the first change, the base itself)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    column = "choose_accuracy" if "choose_accuracy" in frame else "valid_accuracy"
    table = frame.groupby("change", sort=False)[column].agg(
        runs="count", mean="mean", sd="std", low="min", high="max"
    )
    reference = reference or table.index[0]
    table[f"vs {reference}"] = table["mean"] - table.loc[reference, "mean"]
    table["s / epoch"] = frame.groupby("change", sort=False)["seconds_per_epoch"].mean()
    return table


def measured() -> dict:
    """The ablation measured for the README (data/imdb_ablation.json): its setting and its runs."""
    return json.loads(project_file("imdb_ablation.json").read_text(encoding="utf-8"))


def read_saved(path: Path) -> tuple[dict | None, list[dict]]:
    """The setting and the runs this command saved at ``path`` earlier; (None, []) if there is none."""
    if not path.exists():
        return None, []
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        setting, runs = dict(saved["setting"]), list(saved["runs"])
        ours = all(isinstance(r, dict) and isinstance(r.get("change"), str)
                   and isinstance(r.get("seed"), int) and isinstance(r.get("valid_accuracy"), float)
                   for r in runs)  # fmt: skip
    except (ValueError, KeyError, TypeError):
        ours = False
    if not ours:
        raise ValueError(f"--json {path} exists but is not a file this command wrote (a setting and "
                         "runs of change, seed and scores); give another --json")  # fmt: skip
    return setting, runs


def what_changed(saved: dict, setting: dict) -> list[str]:
    """In words, how ``setting`` differs from the ``saved`` one: config fields with both values,
    splits with both sizes, the data."""
    said = [f"{field} {old!r} (now {setting['base'].get(field)!r})"
            for field, old in saved.get("base", {}).items() if setting["base"].get(field) != old]  # fmt: skip
    old_sizes, sizes = saved.get("examples", {}), setting["examples"]
    said += [f"{split} {old_sizes.get(split, 'none')} examples (now {sizes.get(split, 'none')})"
             for split in sorted(set(old_sizes) | set(sizes)) if old_sizes.get(split) != sizes.get(split)]  # fmt: skip
    if not said:
        said = [f"the {key}" for key in setting if saved.get(key) != setting[key]]
    return said


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m helpers.imdb.ablation",
                                     description="Notebook 03's ablation, on validation.")  # fmt: skip
    parser.add_argument("--train-file", required=True, help="jsonl with fields text and label")
    parser.add_argument("--glove-file", required=True, help="GloVe in its text format")
    parser.add_argument("--base", choices=sorted(CONFIGS), default="course",
                        help="the config the changes start from (default: course)")  # fmt: skip
    parser.add_argument("--choose-file", type=Path,
                        help="jsonl of other reviews: each run's final model is scored on it, and "
                             "the summary ranks by it")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="runs per change (seeds 42, 43, …)")
    parser.add_argument("--valid-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, help="override the base config's epochs (for a test)")
    parser.add_argument(
        "--json", type=output_file, required=True, help="results, rewritten after each run"
    )
    return parser.parse_args(argv)


@refuses_non_finite
def main(argv: list[str] | None = None) -> int:
    with running():  # SIGTERM as Ctrl-C; the --json it locks freed at the end
        return _run(parse(argv))


def _run(args: argparse.Namespace) -> int:
    try:
        device = pick_device()
        lock_output(args.json, "--json")  # before the checks: a second run on it is refused
        base = CONFIGS[args.base].replace(
            **({} if args.epochs is None else {"epochs": args.epochs})
        )
        if not 1 <= args.seeds <= 20:
            raise ValueError(f"--seeds must be between 1 and 20, got {args.seeds}")
        if not 0 < args.valid_fraction < 1:
            raise ValueError(f"--valid-fraction must be between 0 and 1, got {args.valid_fraction}")
        check_report(args.json)  # not a saved model's file; read_saved refuses another's JSON
        saved, done = read_saved(args.json)
        check_input_files({"--train-file": args.train_file, "--glove-file": args.glove_file,
                           "--choose-file": args.choose_file})  # fmt: skip
        everything, train, valid = training_splits(args.train_file, args.valid_fraction)
        splits = {"train": train, "valid": valid}
        if args.choose_file is not None:
            splits["choose"] = kept_apart(everything, args.train_file, read_jsonl(args.choose_file),
                                          args.choose_file, "--choose-file")  # fmt: skip
        glove, _ = load_glove(args.glove_file)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {as_flags(str(err))}", file=sys.stderr)
        return 2
    prepared = prepare(splits, glove)
    setting = {"base": base.to_dict(), "examples": {k: len(d) for k, d in prepared.docs.items()},
               "data": prepared.fingerprint(), "glove_dim": glove.dim}  # fmt: skip
    if saved is not None and saved != setting:
        changed = ", ".join(what_changed(saved, setting))
        runs = f"{len(done)} run{'s' * (len(done) != 1)}"
        print(f"error: --json {args.json} holds {runs} with other settings ({changed} "
              "changed); give another --json, or delete it to start again", file=sys.stderr)  # fmt: skip
        return 2

    def save(rows: list[dict]) -> None:
        write_report(args.json, COMMAND, {"setting": setting, "device": device.type,
                               "torch": torch.__version__, "runs": rows})  # fmt: skip

    seeds = list(range(42, 42 + args.seeds))
    changes = CHANGES if args.base == "course" else BEST_CHANGES
    try:
        rows = ablation(prepared, base, seeds, device, changes, done=done, save=save)
        save(rows)
    except KeyboardInterrupt:
        kept = len(read_saved(args.json)[1])
        return stopped(f"{kept} run{'s' * (kept != 1)} saved in {args.json}; the same command "
                       "runs the rest")  # fmt: skip
    except DiskFull as err:  # the report is written whole or not at all: the last one stands
        kept = len(read_saved(args.json)[1])
        return disk_full(err, f"{kept} run{'s' * (kept != 1)} saved in {args.json}; the same "
                              "command runs the rest")  # fmt: skip
    except Diverged as err:
        kept = len(read_saved(args.json)[1])
        print(f"error: {err}; {kept} run{'s' * (kept != 1)} saved in {args.json}", file=sys.stderr)
        return 2
    table = summary(rows)
    scored = "--choose-file's" if "choose_accuracy" in rows[0] else "validation"
    one_seed = "; - where one seed gives none" if table["runs"].min() == 1 else ""
    print(f"{scored} accuracy over seeds (mean, sample sd{one_seed}, range) and each change's mean "
          f"minus {table.index[0]}'s; seconds per epoch:")  # fmt: skip
    print(table.to_string(float_format=lambda x: f"{x:.4f}", na_rep="-"))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
