"""The baseline a transformer has to beat: TF-IDF word and bigram counts with logistic regression
(scikit-learn), its regularisation chosen on the same validation split, the test scored once.

    python -m helpers.imdb.baseline --train-file train.jsonl --test-file test.jsonl --json out.json
"""

import argparse
import sys
import time
from typing import TYPE_CHECKING

from helpers.cli import Parser, check_input_files, output_file, stops_cleanly
from helpers.files import check_not_an_input, check_report, write_report
from helpers.imdb.data import Split, kept_apart, read_jsonl, training_splits
from helpers.text import clean

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline  # noqa: F401 (vulture: used only in string annotations)

COMMAND = "python -m helpers.imdb.baseline"  # named in its reports: no other command replaces one
SHAPE = ("valid_accuracy_by_C", "chosen_C")  # the keys of its reports from before that field

C_GRID: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)  # inverse regularisation, tried


def fit_baseline(
    train: Split, valid: Split, c_grid: tuple[float, ...] = C_GRID
) -> "tuple[Pipeline, dict[float, float]]":
    """(the pipeline refit with the chosen C, validation accuracy of every C)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def pipeline(c: float) -> "Pipeline":
        vectorizer = TfidfVectorizer(preprocessor=clean, ngram_range=(1, 2), min_df=2,
                                     sublinear_tf=True)  # fmt: skip
        return make_pipeline(vectorizer, LogisticRegression(C=c, max_iter=1000))

    scores = {c: pipeline(c).fit(*train).score(*valid) for c in c_grid}
    best = max(scores, key=scores.get)
    return pipeline(best).fit(*train), scores


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m helpers.imdb.baseline",
                                     description="TF-IDF + logistic regression on IMDB.")  # fmt: skip
    parser.add_argument("--train-file", required=True, help="jsonl with fields text and label")
    parser.add_argument("--test-file", required=True, help="jsonl with fields text and label")
    parser.add_argument(
        "--valid-fraction", type=float, default=0.1, help="as python -m helpers.imdb"
    )
    parser.add_argument(
        "--json", type=output_file, required=True, help="where to write the results"
    )
    return parser.parse_args(argv)


@stops_cleanly("no report is written; run it again")
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        check_input_files({"--train-file": args.train_file, "--test-file": args.test_file})
        if not 0 < args.valid_fraction < 1:
            raise ValueError(f"--valid-fraction must be between 0 and 1, got {args.valid_fraction}")
        check_not_an_input(
            args.json, {"--train-file": args.train_file, "--test-file": args.test_file}
        )
        # its folders are made when it is written: bad input leaves none behind
        check_report(args.json, command=COMMAND, shape=SHAPE)
        everything, train, valid = training_splits(args.train_file, args.valid_fraction)
        test = kept_apart(everything, args.train_file, read_jsonl(args.test_file), args.test_file,
                          "--test-file")  # fmt: skip
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    model, scores = fit_baseline(train, valid)
    chosen = max(scores, key=scores.get)
    report = {"model": "tf-idf (1-2 grams, min_df 2, sublinear tf) + logistic regression",
              "valid_accuracy_by_C": scores, "chosen_C": chosen, "test_accuracy": model.score(*test),
              "examples": {"train": len(train[0]), "valid": len(valid[0]), "test": len(test[0])},
              "seconds": time.perf_counter() - start}  # fmt: skip
    write_report(args.json, COMMAND, report)
    print(f"C = {chosen} (validation {scores[chosen]:.2%}); test accuracy "
          f"{report['test_accuracy']:.2%}; wrote {args.json}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
