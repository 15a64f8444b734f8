"""Does pretraining pay? Fine-tune on SST-2 the small BERT that ``python -m helpers.mlm`` pretrained,
the same architecture from random initialisation (its "twin": same config, same tokenizer), and MiniLM,
a few seeds each, and score dev accuracy, precision, recall and F1.

    python -m helpers.finetune compare --pretrained small-bert/ --sst-file ../shared/data/sst2/train.tsv \\
        [--train-rows 4000 --seeds 3 --minilm-seeds 3 --epochs 3 --lr 1e-4 --small-lr 3e-4 --rescaled \\
         --checkpoints DIR] --json OUT

Every run keeps its finished epochs in DIR (default: beside OUT) until the report is written, so the
same command resumes after Ctrl-C: finished runs reload, the one stopped goes on.

Several ``--small-lr`` rates (``--small-lr 3e-4 1e-3``) fine-tune each small model at each and keep, per
model, the rate with the best mean dev accuracy: one fixed rate can favour one model (a narrow model
fresh from its initialisation learns less at 3e-4 than at 1e-3). The test slice is then scored at the
chosen rate.

The splits are notebook 04's (``helpers.finetune.data.sst2_splits``): dev (and a test slice) are whole
sentences of SST-2 train, and every training row that equals, contains or is contained in one of them
is dropped. The fine-tuning is notebook 04's ``experiment`` on the one training loop. Notebook 06 draws
the chart (``helpers.plots.pretraining.plot_comparison``).
"""

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from helpers.bert import BertModel
from helpers.bert.mlm import BertForMaskedLM, rescale_embeddings
from helpers.bert.save import save_pretrained
from helpers.cli import Parser, lock_output, output_file, stops_cleanly
from helpers.env import pick_device, seeded
from helpers.files import check_report, check_writable, visible_files, write_json, write_report
from helpers.finetune.data import Task, loader, notebook_data, sst2_splits
from helpers.finetune.experiments import (
    MADE_BY,
    FinetuneConfig,
    FinetuneRun,
    classification_scores,
    experiment,
    plus_minus,
    spread,
)
from helpers.finetune.models import check_max_length
from helpers.mlm.runs import read_state
from helpers.pretrained import TOKENIZER_FILES, has_tokenizer, minilm_path, short_error
from helpers.profiles import made_to_order
from helpers.tables import read_rows
from helpers.training import choose_precision
from helpers.training.checkpoints import check_own_checkpoint
from helpers.training.loop import Diverged, check_finite_losses

# Named in its reports (no other command replaces one); the keys of its reports from before that.
COMMAND = "python -m helpers.finetune compare"
SHAPE = ("pretrained_minus_random_accuracy", "summary")

TASK = Task("sentence", "label")
RESCALED = "pretrained, rescaled"  # the pretrained model with its embeddings at BERT's initial size
METRICS = ("accuracy", "precision", "recall", "f1")


def _tokenizer_of(folder: str | Path):
    """The tokenizer saved in ``folder``, or None where it holds none (the copy then holds none)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder)) if has_tokenizer(folder) else None


MADE = "made-by-compare.json"  # in every copy this module writes: a later run may write over it


def _mark(folder: Path, kind: str, pretrained_dir: str | Path) -> None:
    write_json(folder / MADE, {"kind": kind, "from": str(pretrained_dir)})


def random_twin(pretrained_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """The pretrained model's architecture and tokenizer with fresh random weights (BERT's init), saved
    in Hugging Face's format in ``out_dir``: the control that says what the pretraining added."""
    hf_config = json.loads((Path(pretrained_dir) / "config.json").read_text(encoding="utf-8"))
    with seeded(seed):
        model = BertForMaskedLM(hf_config)
    _mark(Path(out_dir), "twin", pretrained_dir)  # first: a save cut off is still this command's
    return save_pretrained(model, out_dir, _tokenizer_of(pretrained_dir))


def weight_sizes(folder: str | Path) -> dict[str, float]:
    """The standard deviation of each weight matrix of the encoder in ``folder`` (BERT starts every one
    at 0.02); LayerNorms and biases left out."""
    model = BertModel.from_pretrained(folder)
    return {name.removesuffix(".weight"): p.std().item()
            for name, p in model.named_parameters() if p.dim() == 2}  # fmt: skip


def rescaled_embeddings(
    pretrained_dir: str | Path, out_dir: str | Path, std: float = 0.02
) -> tuple[Path, float]:
    """A copy of the pretrained model with its embedding tables divided by one factor, the one that
    brings the word table to ``std`` (``helpers.bert.mlm.rescale_embeddings``): the same function, but
    an AdamW step moves the tables more relative to their size. The folder and the factor. (The MLM
    head shares the word table, so its logits shrink too: the copy is for fine-tuning; a folder without
    the head gives a copy without one, and one without a tokenizer a copy without one.)"""
    if Path(out_dir).resolve() == Path(pretrained_dir).resolve():
        raise ValueError(f"out_dir {out_dir} is pretrained_dir: the rescaled copy would overwrite the "
                         "pretrained model; give another folder")  # fmt: skip
    try:
        model = BertForMaskedLM.from_pretrained(pretrained_dir)
    except ValueError:  # saved without the MLM head: the copy has none either
        model = BertModel.from_pretrained(pretrained_dir)
    encoder = model.bert if isinstance(model, BertForMaskedLM) else model
    factor = rescale_embeddings(encoder.embeddings, std)
    # first: a save cut off is still this command's
    _mark(Path(out_dir), "rescaled", pretrained_dir)
    return save_pretrained(model, out_dir, _tokenizer_of(pretrained_dir)), factor


def sst2_data(
    path: str | Path, train_rows: int = 4000, dev_size: int = 872, seed: int = 42
) -> dict:
    """Notebook 04's leak-free SST-2 splits from GLUE's train file, training rows cut to ``train_rows``.
    A file without the columns ``sentence`` and ``label``, or a label other than 0 or 1, is a ValueError
    naming the file and the row."""
    rows = read_rows(path)
    if rows and not {"sentence", "label"} <= set(rows[0]):
        raise ValueError(f"{path} has the columns {sorted(rows[0])}; it needs 'sentence' and 'label' "
                         "(GLUE SST-2's train.tsv)")  # fmt: skip
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if str(row["label"]).strip() not in ("0", "1"):
            raise ValueError(f"{path}, line {number}: label {row['label']!r}; SST-2's labels are 0 "
                             "(negative) and 1 (positive)")  # fmt: skip
        row["label"] = int(row["label"])
    if len(rows) < 2 * dev_size:
        raise ValueError(f"{path} holds {len(rows):,} rows; dev and test take --dev-size {dev_size} whole "
                         f"sentences each, so give a smaller --dev-size or a larger file")  # fmt: skip
    try:
        result = sst2_splits(rows, None, dev_size, seed)
    except ValueError as err:  # too few whole sentences (5+ words ending in . ! ? or a quote)
        raise ValueError(f"{path}: {err} (whole sentences: 5 or more words ending in . ! ? or a "
                         "quote); give a smaller --dev-size or GLUE SST-2's train.tsv") from None  # fmt: skip
    splits = dict(result.rows)
    splits["train"] = splits["train"][:train_rows]
    labels = {row["label"] for row in splits["train"]}
    if len(labels) < 2:
        held = f"--dev-size {dev_size} twice"
        what = f"only label {labels.pop()}" if labels else "no rows"
        raise ValueError(f"{path}: the training rows (after {held} held out and --train-rows "
                         f"{train_rows}) hold {what}; fine-tuning needs both labels: give more rows, a "
                         "smaller --dev-size or a larger --train-rows")  # fmt: skip
    return {"splits": splits, "notes": result.notes}


def sst2_notebook_rows(synthetic: bool, train_rows: int, eval_rows: int | None) -> tuple[dict, str]:
    """Notebook 06's SST-2 with notebook 04's leak-free splits (``notebook_data``: GLUE from the hub, its
    validation set as test, or ``$HELPERS_DATA_DIR/sst2/``) or made-up sentences; (rows per split, where
    they came from)."""
    if synthetic:
        made_to_order(SST_TRAIN=train_rows, SST_EVAL=eval_rows)  # the notebook's names
    sizes = SimpleNamespace(synthetic=synthetic, max_train=train_rows, max_eval=eval_rows)
    rows, _, source = notebook_data("sst2", sizes)
    return rows, source.splitlines()[0]


def frozen_probe(
    folder: str | Path, splits: dict, device: torch.device, batch_size: int = 64
) -> dict[str, float]:
    """Dev accuracy of a logistic regression trained on frozen features of the encoder in ``folder``:
    the mean over the real tokens of the word embeddings, and of the last layer's vectors. Does the
    encoder, untouched, already separate the classes?"""
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = BertModel.from_pretrained(folder).to(device).eval()

    def features(rows: list[dict]) -> dict[str, "np.ndarray"]:
        out: dict[str, list] = {"word embeddings": [], "last layer": []}
        for start in range(0, len(rows), batch_size):
            text = [r[TASK.text] for r in rows[start : start + batch_size]]
            batch = tokenizer(
                text, padding=True, truncation=True, max_length=128, return_tensors="pt"
            ).to(device)
            real = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            with torch.no_grad():
                last = model(
                    batch["input_ids"], batch["attention_mask"]
                ).last_hidden_state  # (B, T, H)
                words = model.embeddings.word(batch["input_ids"])  # (B, T, H)
            for name, x in (("word embeddings", words), ("last layer", last)):
                out[name].append(((x * real).sum(1) / real.sum(1)).cpu())  # (B, H)
        return {name: torch.cat(parts).numpy() for name, parts in out.items()}

    train, dev = features(splits["train"]), features(splits["dev"])
    y_train = [r[TASK.label] for r in splits["train"]]
    y_dev = [r[TASK.label] for r in splits["dev"]]
    return {name: float(LogisticRegression(max_iter=2000).fit(train[name], y_train).score(dev[name], y_dev))
            for name in train}  # fmt: skip


def run_checkpoint(folder: Path, name: str, lr: float, seed: int) -> Path:
    """Where one fine-tuning run (model ``name`` at rate ``lr``, ``seed``) keeps its finished epochs."""
    return folder / f"{name.replace(',', '').replace(' ', '-')}-lr{lr:g}-seed{seed}.pt"


RUN_CHECKPOINT = re.compile(r"[a-z-]+-lr[0-9.e+-]+-seed[0-9]+\.pt")  # run_checkpoint's names


def finetune_runs(
    models: dict[str, str], splits: dict, seeds: dict[str, int], configs: dict[str, FinetuneConfig],
    device: torch.device, progress: bool = False, trained: list[FinetuneRun] | None = None,
    dropout: float | None = None, checkpoints: Path | None = None,
) -> list[dict]:  # fmt: skip
    """Fine-tune every model (name -> folder or "minilm") with ``seeds[name]`` seeds (0, 1, ...); one
    row per run: dev accuracy, precision, recall, F1 (positive class 1), its curves (dev accuracy, dev
    and training loss per epoch) and the seconds of its epochs (training and dev scoring; those of a
    run resumed included).
    ``trained``: a list that gets each run (model, collate), in the rows' order, to score later;
    ``dropout``: every model's in fine-tuning (default: each one's config); ``checkpoints``: a folder
    where each run keeps its finished epochs (``run_checkpoint``), so that a run stopped resumes."""
    rows = []
    for name, source in models.items():
        for seed in range(seeds[name]):
            run = experiment(
                source,
                splits,
                TASK,
                device,
                configs[name],
                seed=seed,
                progress=progress,
                dropout=dropout,
                checkpoint=checkpoints
                and run_checkpoint(checkpoints, name, configs[name].lr, seed),
            )
            flag = "--lr" if name == "minilm" else "--small-lr"
            try:
                # before a score
                check_finite_losses(run.history, configs[name].lr, flag)
            except Diverged:
                if checkpoints is not None:  # nothing to resume: a later run would only reload NaN
                    diverged = run_checkpoint(checkpoints, name, configs[name].lr, seed)
                    diverged.unlink(missing_ok=True)
                    if not any(checkpoints.iterdir()):
                        checkpoints.rmdir()
                raise
            scores = classification_scores(
                run.model, loader(splits["dev"], run.collate, 64, False), device
            )
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    **scores,
                    "dev_accuracy_per_epoch": run.history["dev_accuracy"],
                    "dev_loss_per_epoch": run.history["dev_loss"],
                    "train_loss_per_epoch": run.history["train_loss"],
                    "seconds": sum(run.history["seconds"]),
                }
            )  # every epoch's, resumed ones too
            if trained is not None:
                trained.append(run)
            print(f"{name} seed {seed}: dev accuracy {scores['accuracy']:.4f}, F1 {scores['f1']:.4f} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)  # fmt: skip
    return rows


def rate_means(rows: list[dict]) -> dict[str, dict[float, float]]:
    """Per model fine-tuned at several rates (rows with an ``lr``): each rate's mean dev accuracy over
    its seeds, rounded to 9 places so that equal numbers of right answers tie exactly."""
    by_rate: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        if "lr" in r:
            by_rate.setdefault(r["model"], {}).setdefault(r["lr"], []).append(r["accuracy"])
    return {name: {lr: round(statistics.fmean(accs), 9) for lr, accs in rates.items()}
            for name, rates in by_rate.items()}  # fmt: skip


def chosen_rates(rows: list[dict]) -> dict[str, float]:
    """Per model, the rate with the best mean dev accuracy (on a tie, the first tried)."""
    return {name: max(means, key=means.get) for name, means in rate_means(rows).items()}


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


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m helpers.finetune compare",
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
        "--small-lr", type=float, nargs="+", default=[3e-4],
        help="the small BERT's and its twin's (default: 3e-4); several: each small model at each, its "
        "rate chosen on dev, test scored at it",
    )  # fmt: skip
    parser.add_argument(
        "--max-length", "--max-len", type=int, default=128, help="tokens kept per sentence"
    )
    parser.add_argument(
        "--dropout", type=float,
        help="the small models' dropout in fine-tuning (default: their config's, the one pretraining "
        "used: 0.1 unless python -m helpers.mlm got another --dropout)",
    )  # fmt: skip
    parser.add_argument(
        "--twin", type=Path, help="where to save the random twin (default: beside --pretrained)"
    )
    parser.add_argument(
        "--rescaled", action="store_true",
        help="also fine-tune a copy of --pretrained with its embeddings brought to BERT's initial size "
        "(saved beside it as NAME-rescaled)",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=output_file, required=True, help="where to write the results"
    )
    parser.add_argument(
        "--checkpoints", type=Path,
        help="where each run keeps its finished epochs until the report is written, so that the same "
        "command resumes after Ctrl-C (default: beside --json, named after it: OUT-runs/)",
    )  # fmt: skip
    return parser.parse_args(argv)


def remove_checkpoints(folder: Path, plan: list[tuple[str, float, int]]) -> None:
    """Once the report is written: delete the checkpoints of the runs in ``plan`` (model, rate, seed),
    and the folder if nothing else is left in it (else say what is)."""
    for name, lr, seed in plan:
        run_checkpoint(folder, name, lr, seed).unlink(missing_ok=True)
    if not folder.is_dir():
        return
    left = sorted(f.name for f in folder.iterdir())
    if not left:
        folder.rmdir()
    else:
        print(f"note: {folder} still holds {len(left)} checkpoint{'s' * (len(left) != 1)} of runs with "
              f"other settings ({', '.join(left[:3])}{', ...' * (len(left) > 3)}); delete the folder "
              "when no run needs them")  # fmt: skip


def checkpoint_folder(args: argparse.Namespace) -> Path:
    """--checkpoints, or beside --json: ``compare.json`` keeps its runs in ``compare-runs/``."""
    return (args.checkpoints or args.json.with_name(args.json.stem + "-runs")).resolve()


def check_output_folder(flag: str, folder: Path, where: str) -> None:
    """``folder`` (where ``flag`` writes a model) can be written and holds no pretraining run, and no
    files but this command's (marked by ``MADE``; a copy from a version before the marker is refused
    too, with that said)."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} writes the folder {folder}, but that is a file; move it")
    # a pretraining run
    run = [f for f in ("checkpoint.pt", "mlm-state.json") if (folder / f).exists()]
    if run:
        raise ValueError(f"{flag} writes {folder}, which holds a pretraining run ({', '.join(run)}); "
                         f"move or delete it, {where}")  # fmt: skip
    others = [f.name for f in visible_files(folder)]
    if others and MADE not in others:
        raise ValueError(f"{flag} writes {folder}, which holds files ({', '.join(others[:5])}) and no "
                         f"{MADE}, so this command did not write them (or a version before it did); "
                         f"move or delete them, {where}")  # fmt: skip
    try:
        # no empty folder left if a check fails
        check_writable(folder / "config.json", create=False)
    except ValueError as err:
        raise ValueError(f"{flag}: {err}") from None


def finetune_config(flag: str, lr: float, args: argparse.Namespace) -> FinetuneConfig:
    """The fine-tuning settings at rate ``lr``; an error names ``flag`` (the rate's) or --max-length."""
    try:
        return FinetuneConfig(lr=lr, epochs=args.epochs, max_length=args.max_length)
    except ValueError as err:
        message = str(err).replace("FinetuneConfig.lr", flag)
        raise ValueError(message.replace("FinetuneConfig.max_length", "--max-length")) from None


def check_inputs(
    args: argparse.Namespace, pretrained: Path, twin: Path, rescaled: Path | None = None
) -> None:
    """Every flag and folder checked before any work; a ValueError names the flag and what to do."""
    from transformers import AutoTokenizer

    state = read_state(pretrained)  # first: an unfinished run has no config.json yet
    if state.get("finished") is False:
        raise ValueError(f"--pretrained {args.pretrained}: its pretraining run has not finished (the "
                         "weights there are an older run's, if any); run the same python -m helpers.mlm "
                         "command again to finish it")  # fmt: skip
    if not (pretrained / "config.json").is_file():
        raise ValueError(f"--pretrained {args.pretrained} holds no config.json; give a folder saved "
                         "by python -m helpers.mlm --save")  # fmt: skip
    try:
        json.loads((pretrained / "config.json").read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"--pretrained {args.pretrained}: config.json is not valid JSON ({err}); "
                         "save the model again with python -m helpers.mlm") from None  # fmt: skip
    try:
        model = BertModel.from_pretrained(pretrained)  # the weights are readable and fit the config
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"--pretrained {args.pretrained}: its weights cannot be read ({short_error(err)}); "
                         "save the model again with python -m helpers.mlm") from None  # fmt: skip
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise ValueError(f"--pretrained {args.pretrained}: its weights hold nan or inf (did its "
                         "pretraining diverge?); pretrain again with a smaller --lr")  # fmt: skip
    if args.max_length < 3:  # shorter: [CLS] [SEP] alone, every sentence the same
        raise ValueError(
            f"--max-length must be at least 3 ([CLS], a token, [SEP]), not {args.max_length}"
        )
    check_max_length(model, args.max_length, f"--pretrained {args.pretrained}")
    if not has_tokenizer(pretrained):
        raise ValueError(f"--pretrained {args.pretrained} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                         "python -m helpers.mlm --save writes both model and tokenizer")  # fmt: skip
    try:
        AutoTokenizer.from_pretrained(str(pretrained))
    except Exception as err:  # a damaged tokenizer file
        raise ValueError(f"--pretrained {args.pretrained}: its tokenizer cannot be read ({short_error(err)}); "
                         "save the model again with python -m helpers.mlm") from None  # fmt: skip
    if twin == pretrained:
        raise ValueError(f"--twin {args.twin} is the --pretrained folder: the random weights would "
                         "overwrite the pretrained ones; give another folder")  # fmt: skip
    if twin.exists() and not twin.is_dir():
        raise ValueError(f"--twin {args.twin} is a file; give a folder (it is created if missing)")
    check_output_folder("--twin", twin, "or give --twin another folder")
    if rescaled is not None:
        if rescaled == pretrained:
            raise ValueError(f"--rescaled writes {pretrained.with_name(pretrained.name + '-rescaled')}, a "
                             "link to the --pretrained folder: the copy would overwrite the pretrained "
                             "model; remove the link")  # fmt: skip
        if rescaled == twin:
            raise ValueError(f"--twin {args.twin} is where --rescaled writes its copy; give --twin "
                             "another folder")  # fmt: skip
        check_output_folder("--rescaled", rescaled, "or copy --pretrained to another folder")
    if args.sst_file.is_dir() or not args.sst_file.exists():
        what = "is a folder" if args.sst_file.is_dir() else "does not exist"
        raise ValueError(f"--sst-file {args.sst_file} {what}; give GLUE SST-2's train.tsv")
    for flag in ("train_rows", "seeds", "epochs", "dev_size"):
        if getattr(args, flag) < 1:
            raise ValueError(
                f"--{flag.replace('_', '-')} must be at least 1, not {getattr(args, flag)}"
            )
    if len({f"{lr:g}" for lr in args.small_lr}) < len(args.small_lr):
        raise ValueError(f"--small-lr {' '.join(f'{lr:g}' for lr in args.small_lr)} names a rate twice; "
                         "give each rate once")  # fmt: skip
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1), not {args.dropout:g}")
    if args.minilm_seeds < 0:
        raise ValueError(f"--minilm-seeds must be 0 (no MiniLM) or more, not {args.minilm_seeds}")
    out = args.json.resolve()
    for flag, folder in (("--pretrained", pretrained), ("--twin", twin), ("--rescaled", rescaled)):
        if folder is not None and (out == folder or folder in out.parents):
            raise ValueError(
                f"--json {args.json} is inside the {flag} folder {folder}; write it elsewhere"
            )
    if out == args.sst_file.resolve():
        raise ValueError(
            f"--json {args.json} is the --sst-file: it would be written over; give another path"
        )
    check_checkpoint_folder(checkpoint_folder(args), {"--pretrained": pretrained, "--twin": twin,
                                                      "--rescaled": rescaled, "--json": out})  # fmt: skip


def check_checkpoint_folder(folder: Path, others: dict[str, Path | None]) -> None:
    """The --checkpoints folder is none of the other folders and files, and holds nothing but
    this command's run checkpoints (the command deletes them once the report is written)."""
    for flag, path in others.items():
        if path is not None and (
            folder == path or path in folder.parents or folder in path.parents
        ):
            raise ValueError(f"--checkpoints {folder} and the {flag} {path} overlap; give "
                             "--checkpoints a folder of its own")  # fmt: skip
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"--checkpoints {folder} is a file; give a folder (it is created if missing)"
        )
    files = visible_files(folder)
    foreign = [f.name for f in files if not RUN_CHECKPOINT.fullmatch(f.name)]
    if foreign:
        raise ValueError(f"--checkpoints {folder} holds files this command did not write "
                         f"({', '.join(foreign[:5])}); give --checkpoints a folder of its own")  # fmt: skip
    for file in files:  # named like a run's checkpoint: it must be one
        check_own_checkpoint(file, MADE_BY, "--checkpoints: the file")
    try:
        check_writable(folder / ".probe", create=False)
    except ValueError as err:
        raise ValueError(f"--checkpoints: {err}") from None


@stops_cleanly(
    "each run's finished epochs are kept in the --checkpoints folder (default: beside --json, "
    "OUT-runs/): the same command resumes from them",
    smaller="--max-length",
)
def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse(argv)
    pretrained = args.pretrained.resolve()
    twin = (args.twin or pretrained.with_name(pretrained.name + "-random-twin")).resolve()
    rescaled = (
        pretrained.with_name(pretrained.name + "-rescaled").resolve() if args.rescaled else None
    )
    try:
        device = pick_device()
        lock_output(args.json, "--json")  # before the checks: a second run on either is refused
        lock_output(checkpoint_folder(args), "--checkpoints")
        check_inputs(args, pretrained, twin, rescaled)
        # its folder is made when it is written
        check_report(args.json, command=COMMAND, shape=SHAPE)
        small = {lr: finetune_config("--small-lr", lr, args) for lr in args.small_lr}
        minilm = finetune_config("--lr", args.lr, args)
        data = sst2_data(args.sst_file, args.train_rows, args.dev_size)
        random_twin(pretrained, twin)
        if rescaled is not None:
            rescaled, factor = rescaled_embeddings(pretrained, rescaled)
            print(f"embeddings divided by {factor:.2f}: wrote {rescaled}")
    except (OSError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    checkpoints = checkpoint_folder(args)
    models = {"pretrained": str(pretrained), "random init": str(twin)}
    if rescaled is not None:
        models[RESCALED] = str(rescaled)
    seeds = dict.fromkeys(models, args.seeds)
    several = len(small) > 1
    rows, trained, diverged = [], [], []
    try:
        for lr, config in small.items():
            if several:
                print(f"fine-tuning rate {lr:g}", flush=True)
            done = len(trained)
            try:
                runs = finetune_runs(models, data["splits"], seeds, dict.fromkeys(models, config),
                                     device, trained=trained if several else None, dropout=args.dropout,
                                     checkpoints=checkpoints)  # fmt: skip
            except Diverged as err:
                if not several:
                    raise
                del trained[done:]  # this rate's finished runs: left out with it
                diverged.append(lr)
                print(f"rate {lr:g} left out of the choice: {err}", flush=True)
                continue
            rows += [{**run, "lr": lr} for run in runs]
        if several and len(diverged) == len(small):
            raise Diverged(f"training diverged at every --small-lr ({', '.join(f'{lr:g}' for lr in small)}); "
                           "give smaller rates")  # fmt: skip
        if args.minilm_seeds > 0:
            rows += finetune_runs({"minilm": minilm_path()}, data["splits"], {"minilm": args.minilm_seeds},
                                  {"minilm": minilm}, device, checkpoints=checkpoints)  # fmt: skip
            models["minilm"] = "minilm"
    except Diverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chosen = chosen_rates(rows)
    kept = [r for r in rows if "lr" not in r or r["lr"] == chosen[r["model"]]]
    if several:  # the test slice: each model at its chosen rate only, scored once
        for row, run in zip(rows, trained):
            if row["lr"] == chosen[row["model"]]:
                test = loader(data["splits"]["test"], run.collate, 64, False)
                row["test_accuracy"] = classification_scores(run.model, test, device)["accuracy"]
    summary = summarize(kept)
    gap = summary["pretrained"]["accuracy"]["mean"] - summary["random init"]["accuracy"]["mean"]
    report = {
        "summary": summary,
        "pretrained_minus_random_accuracy": gap,
        "runs": rows,
        "splits": {k: len(v) for k, v in data["splits"].items()},
        "split_notes": data["notes"],
        # as JSON has them (40, null, false, [0.0003, 0.001]): paths as text, nothing else stringified
        "settings": json.loads(json.dumps(vars(args), default=str)),
        "diverged_rates": diverged,  # left out of the choice
        "configs": {
            name: (minilm if name == "minilm" else small[chosen[name]]).to_dict() for name in models
        },
        "seconds": time.perf_counter() - started,
        "device": device.type,
        "precision": choose_precision(device, minilm.precision),  # every run's, "auto" resolved
        "threads": torch.get_num_threads(),
    }
    if several:
        report["chosen_lr"] = {name: f"{lr:g}" for name, lr in chosen.items()}
        report["dev_accuracy_by_lr"] = {
            name: {f"{lr:g}": mean for lr, mean in means.items()}
            for name, means in rate_means(rows).items()
        }
        report["test_accuracy"] = {
            name: dict(zip(("mean", "sd"), spread([r["test_accuracy"] for r in kept
                                                    if r["model"] == name])))
            for name in chosen
        }  # fmt: skip
    if rescaled is not None:
        report["rescaled_minus_random_accuracy"] = (
            summary[RESCALED]["accuracy"]["mean"] - summary["random init"]["accuracy"]["mean"]
        )
        report["rescale_factor"] = factor
    write_report(args.json, COMMAND, report)
    plan = [(name, lr, seed) for lr in small for name in models if name != "minilm"
            for seed in range(args.seeds)] + [("minilm", args.lr, seed) for seed in range(args.minilm_seeds)]  # fmt: skip
    remove_checkpoints(checkpoints, plan)
    for name, s in summary.items():
        print(
            f"{name:20s} "
            + "  ".join(f"{k} {plus_minus(s[k]['mean'], s[k]['sd'])}" for k in METRICS)
        )
    if several:
        for name, rate in chosen.items():
            tried = ", ".join(
                f"{acc:.3f} at {lr}" for lr, acc in report["dev_accuracy_by_lr"][name].items()
            )
            test = report["test_accuracy"][name]
            print(f"{name}: mean dev accuracy {tried}; {rate:g} chosen on dev (the scores above); test "
                  f"accuracy at it {plus_minus(test['mean'], test['sd'])}")  # fmt: skip
    if rescaled is not None:
        print(
            f"{RESCALED} - random init: {100 * report['rescaled_minus_random_accuracy']:+.1f} points"
        )
    print(
        f"pretrained - random init: {100 * gap:+.1f} accuracy points (mean of {args.seeds} seeds"
        f"{', each at its rate chosen on dev' if several else ''}); wrote {args.json}"
    )
    return 0
