"""A sentence-level stand-in for GLUE SST-2's validation sentences, built from SST's training sentences.

GLUE SST-2's 872 validation sentences are the yardstick of ``python -m helpers.finetune``'s defaults, but
phrase-level rows held out of SST-2 train are not: their sub-phrases stay in train. SST's own training
sentences (``LABEL ||| SENTENCE``, 5 classes, PTB-tokenised and cased, as minBERT ships them) are whole
sentences like GLUE's validation ones. This command writes them in GLUE's form (binary, lowercased, PTB
escapes undone) as two slices, ``tune.tsv`` (for choosing settings) and ``confirm.tsv`` (scored once,
never chosen on), and a ``train.tsv`` of SST-2 rows with every row that contains or is contained in one
of those sentences removed:

    python -m helpers.finetune.proxy --sst-file ../shared/data/minbert/sst-train.txt \\
        --train-file ../shared/data/sst2/train.tsv --out proxy/ [--tune 1000 --confirm 1000 --seed 0]
"""

import json
import random
import sys
from pathlib import Path

from helpers.cli import Parser, check_input_files, stops_cleanly
from helpers.files import check_not_an_input, check_report, write_report, write_text
from helpers.finetune.splits import leaking_rows, words
from helpers.tables import read_rows, read_utf8, split_lines

COMMAND = "python -m helpers.finetune.proxy"  # named in proxy.json: no other command replaces it

BINARY = {"0": 0, "1": 0, "3": 1, "4": 1}  # SST's 5 classes; 2 (neutral) is not in SST-2
PTB = {"\\/": "/", "\\*": "*", "-lrb-": "(", "-rrb-": ")"}  # GLUE keeps `` and '' as they are
# Words SST spells the British way and GLUE SST-2 the American way (or tokenises apart), each found in
# a sentence of sst-train.txt whose GLUE copy differs by that word alone: left as they were, 8 of the
# 2,000 held-out sentences kept a same-label twin in train.tsv.
GLUE_WORDS = {
    "behaviour": "behavior", "centre": "center", "colour": "color", "coloured": "colored",
    "endeavour": "endeavor", "favour": "favor", "favourite": "favorite", "flavour": "flavor",
    "flavours": "flavors", "grey": "gray", "humour": "humor", "labelled": "labeled", "labour": "labor",
    "labours": "labors", "recognise": "recognize", "savour": "savor", "splendour": "splendor",
    "theatre": "theater", "theatres": "theaters", "gonna": "gon na", "wanna": "wan na",
}  # fmt: skip


def glue_form(sentence: str) -> str:
    """A PTB-tokenised SST sentence written the way GLUE SST-2 writes it (lowercased, escapes undone,
    American spellings)."""
    text = sentence.strip().lower()
    for escaped, plain in PTB.items():
        text = text.replace(escaped, plain)
    return american(" ".join(text.split())) + " "  # GLUE's rows end with a space


def american(sentence: str) -> str:
    """``sentence`` with ``GLUE_WORDS``' American spellings (its spaces as they were)."""
    return " ".join(GLUE_WORDS.get(word, word) for word in sentence.split(" "))


def read_sst(path: Path) -> list[dict]:
    """Binary rows ``{"sentence", "label"}`` from a minBERT-style ``LABEL ||| SENTENCE`` file."""
    rows = []
    for number, line in enumerate(split_lines(read_utf8(path)), 1):
        if not line.strip():
            continue
        label, sep, sentence = line.partition("|||")
        if not sep or label.strip() not in ("0", "1", "2", "3", "4"):
            raise ValueError(
                f"{path}, line {number}: expected 'LABEL ||| SENTENCE' with a label 0-4"
            )
        if label.strip() in BINARY:
            rows.append({"sentence": glue_form(sentence), "label": BINARY[label.strip()]})
    return rows


def write_tsv(path: Path, rows: list[dict]) -> None:
    """GLUE's form: a ``sentence<TAB>label`` header, then one row a line."""
    lines = ["sentence\tlabel", *(f"{r['sentence']}\t{r['label']}" for r in rows)]
    write_text(path, "\n".join(lines) + "\n")


def build(sst_file: Path, train_file: Path, out: Path, tune: int, confirm: int, seed: int) -> dict:
    sentences = list({r["sentence"]: r for r in read_sst(sst_file)}.values())
    train = read_rows(train_file)
    train_words = {words(str(r["sentence"])) for r in train}
    found = sum(words(s["sentence"]) in train_words for s in sentences)
    random.Random(seed).shuffle(sentences)
    if tune + confirm > len(sentences):
        raise ValueError(f"only {len(sentences)} sentences for --tune {tune} + --confirm {confirm}")
    held = {"tune": sentences[:tune], "confirm": sentences[tune : tune + confirm]}
    # both sides in American spelling: GLUE kept a few British ones ("the grey zone", a title)
    bad = leaking_rows(
        [american(str(r["sentence"])) for r in train],
        [american(s["sentence"]) for s in sentences[: tune + confirm]],
    )
    kept = [r for i, r in enumerate(train) if i not in bad]
    out.mkdir(parents=True, exist_ok=True)
    write_tsv(out / "train.tsv", kept)
    for name, rows in held.items():
        write_tsv(out / f"{name}.tsv", rows)
    return {
        "sentences": len(sentences),
        "sentences_found_verbatim_in_train": found,
        "tune": tune,
        "confirm": confirm,
        "train_rows": len(train),
        "train_rows_dropped": len(bad),
        "train_rows_kept": len(kept),
        "seed": seed,
    }


@stops_cleanly("each file is written whole or not at all; run it again for all of them")
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m helpers.finetune.proxy", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--sst-file", type=Path, required=True, help="minBERT's sst-train.txt")
    parser.add_argument("--train-file", type=Path, required=True, help="SST-2 train.tsv")
    parser.add_argument("--out", type=Path, required=True, help="folder for train/tune/confirm.tsv")
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--confirm", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        check_input_files({"--sst-file": args.sst_file, "--train-file": args.train_file})
        for flag, count in (("--tune", args.tune), ("--confirm", args.confirm)):
            if count < 1:  # a negative count sliced from the end: tune.tsv held all but 5
                raise ValueError(f"{flag} must be at least 1 sentence, got {count}")
        check_report(
            args.out / "proxy.json",
            "--out",
            command=COMMAND,
            shape=("sentences", "train_rows_kept"),
        )
        for name in ("train.tsv", "tune.tsv", "confirm.tsv"):  # written over: never an input
            check_not_an_input(args.out / name, {"--sst-file": args.sst_file, "--train-file": args.train_file},
                               "--out")  # fmt: skip
        report = build(args.sst_file, args.train_file, args.out, args.tune, args.confirm, args.seed)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_report(args.out / "proxy.json", COMMAND, report)
    print(json.dumps(report))
    print(f"wrote train.tsv, tune.tsv, confirm.tsv and proxy.json in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
