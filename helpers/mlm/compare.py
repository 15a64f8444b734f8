"""Does pretraining pay? Fine-tune on SST-2 the small BERT that ``python -m helpers.mlm`` pretrained,
the same architecture from random initialisation (its "twin": same config, same tokenizer), and MiniLM,
a few seeds each, and score dev accuracy, precision, recall and F1.

    python -m helpers.mlm compare --pretrained small-bert/ --sst-file ../shared/data/sst2/train.tsv \\
        [--train-rows 4000 --seeds 3 --minilm-seeds 3 --epochs 3 --lr 1e-4 --small-lr 3e-4] --json OUT [--chart PNG]

The splits are notebook 04's (``helpers.finetune.data.sst2_splits``): dev (and a test slice) are whole
sentences of SST-2 train, and every training row that equals, contains or is contained in one of them
is dropped. The fine-tuning is notebook 04's ``experiment`` on the one training loop.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from helpers.bert.mlm import BertForMaskedLM
from helpers.bert.save import save_pretrained
from helpers.env import pick_device, seeded
from helpers.files import check_writable, write_json
from helpers.finetune.data import Task, loader, sst2_splits
from helpers.finetune.experiments import FinetuneConfig, classification_scores, experiment, spread
from helpers.tables import read_rows

TASK = Task("sentence", "label")
METRICS = ("accuracy", "precision", "recall", "f1")


def random_twin(pretrained_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """The pretrained model's architecture and tokenizer with fresh random weights (BERT's init), saved
    in Hugging Face's format in ``out_dir``: the control that says what the pretraining added."""
    from transformers import AutoTokenizer

    hf_config = json.loads((Path(pretrained_dir) / "config.json").read_text())
    with seeded(seed):
        model = BertForMaskedLM(hf_config)
    return save_pretrained(model, out_dir, AutoTokenizer.from_pretrained(str(pretrained_dir)))


def sst2_data(
    path: str | Path, train_rows: int = 4000, dev_size: int = 872, seed: int = 42
) -> dict:
    """Notebook 04's leak-free SST-2 splits from GLUE's train file, training rows cut to ``train_rows``."""
    rows = read_rows(path)
    for row in rows:
        row["label"] = int(row["label"])
    result = sst2_splits(rows, None, dev_size, seed)
    splits = dict(result.rows)
    splits["train"] = splits["train"][:train_rows]
    return {"splits": splits, "notes": result.notes}


def finetune_runs(
    models: dict[str, str], splits: dict, seeds: dict[str, int], configs: dict[str, FinetuneConfig],
    device: torch.device, progress: bool = False,
) -> list[dict]:  # fmt: skip
    """Fine-tune every model (name -> folder or "minilm") with ``seeds[name]`` seeds (0, 1, ...); one
    row per run: dev accuracy, precision, recall, F1 (positive class 1), the curve and the seconds."""
    rows = []
    for name, source in models.items():
        for seed in range(seeds[name]):
            start = time.perf_counter()
            run = experiment(
                source, splits, TASK, device, configs[name], seed=seed, progress=progress
            )
            scores = classification_scores(
                run.model, loader(splits["dev"], run.collate, 64, False), device
            )
            rows.append({"model": name, "seed": seed, **scores,
                         "dev_accuracy_per_epoch": run.history["dev_accuracy"],
                         "seconds": time.perf_counter() - start})  # fmt: skip
            print(f"{name} seed {seed}: dev accuracy {scores['accuracy']:.4f}, F1 {scores['f1']:.4f} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)  # fmt: skip
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per model: mean and standard deviation of each metric over its seeds."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        out[name] = {"seeds": len(mine)}
        for metric in METRICS:
            mean, sd = spread([r[metric] for r in mine])
            out[name][metric] = {"mean": mean, "sd": sd}
    return out


def plot_comparison(summary: dict[str, dict], title: str = "SST-2 dev, fine-tuned"):
    """One bar chart: each metric (groups) for each model (bars), mean over seeds with ±1 sd."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    width = 0.8 / max(1, len(summary))
    for i, (name, s) in enumerate(summary.items()):
        x = [m + (i - (len(summary) - 1) / 2) * width for m in range(len(METRICS))]
        ax.bar(x, [s[k]["mean"] for k in METRICS], width, yerr=[s[k]["sd"] for k in METRICS],
               capsize=3, label=f"{name} ({s['seeds']} seed{'s' * (s['seeds'] > 1)})")  # fmt: skip
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(METRICS)), METRICS)
    ax.set(title=title, ylabel="score (mean ± sd)", ylim=(0, 1.05))
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m helpers.mlm compare",
                                     description="Fine-tune the pretrained small BERT, its random twin and "
                                     "MiniLM on SST-2; dev accuracy, precision, recall, F1.")  # fmt: skip
    parser.add_argument(
        "--pretrained", type=Path, required=True, help="a folder saved by python -m helpers.mlm"
    )
    parser.add_argument(
        "--sst-file", type=Path, required=True, help="GLUE SST-2 train.tsv (sentence, label)"
    )
    parser.add_argument("--train-rows", type=int, default=4000)
    parser.add_argument("--dev-size", type=int, default=872)
    parser.add_argument("--seeds", type=int, default=3, help="per small model")
    parser.add_argument("--minilm-seeds", type=int, default=3, help="0: leave MiniLM out")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4, help="MiniLM's (notebook 04's choice)")
    parser.add_argument(
        "--small-lr", type=float, default=3e-4, help="the small BERT's and its twin's"
    )
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--twin", type=Path, help="where to save the random twin (default: beside --pretrained)"
    )
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--chart", type=Path, help="the bar chart as PNG")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse(argv)
    device = pick_device()
    try:
        check_writable(args.json)
        if args.chart:
            check_writable(args.chart)
        if not (args.pretrained / "config.json").is_file():
            raise ValueError(f"--pretrained {args.pretrained} holds no config.json; give a folder saved "
                             "by python -m helpers.mlm --save")  # fmt: skip
        if not args.sst_file.is_file():
            raise ValueError(f"--sst-file {args.sst_file} does not exist")
        for flag in ("train_rows", "seeds", "epochs", "dev_size"):
            if getattr(args, flag) < 1:
                raise ValueError(
                    f"--{flag.replace('_', '-')} must be at least 1, not {getattr(args, flag)}"
                )
        small = FinetuneConfig(lr=args.small_lr, epochs=args.epochs, max_length=args.max_length)
        minilm = FinetuneConfig(lr=args.lr, epochs=args.epochs, max_length=args.max_length)
        data = sst2_data(args.sst_file, args.train_rows, args.dev_size)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    twin = args.twin or args.pretrained.with_name(args.pretrained.name + "-random-twin")
    random_twin(args.pretrained, twin)
    models = {"pretrained": str(args.pretrained), "random init": str(twin)}
    seeds = {"pretrained": args.seeds, "random init": args.seeds}
    configs = {"pretrained": small, "random init": small, "minilm": minilm}
    if args.minilm_seeds > 0:
        models["minilm"], seeds["minilm"] = "minilm", args.minilm_seeds
    rows = finetune_runs(models, data["splits"], seeds, configs, device)
    summary = summarize(rows)
    gap = summary["pretrained"]["accuracy"]["mean"] - summary["random init"]["accuracy"]["mean"]
    report = {
        "summary": summary,
        "pretrained_minus_random_accuracy": gap,
        "runs": rows,
        "splits": {k: len(v) for k, v in data["splits"].items()},
        "split_notes": data["notes"],
        "settings": {k: str(v) for k, v in vars(args).items()},
        "configs": {k: v.to_dict() for k, v in configs.items() if k in models},
        "seconds": time.perf_counter() - started,
        "device": device.type,
        "threads": torch.get_num_threads(),
    }
    write_json(args.json, report)
    if args.chart:
        plot_comparison(summary).savefig(args.chart, dpi=120)
    for name, s in summary.items():
        print(
            f"{name:12s} "
            + "  ".join(f"{k} {s[k]['mean']:.3f} ± {s[k]['sd']:.3f}" for k in METRICS)
        )
    print(
        f"pretrained - random init: {100 * gap:+.1f} accuracy points (mean of {args.seeds} seeds); wrote {args.json}"
    )
    return 0
