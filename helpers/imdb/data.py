"""IMDB reviews and GloVe vectors for notebook 03: local files, the Hugging Face hub, or Stanford's
tarball, split into train / validation / test."""

import os
import random
import sys
import tempfile
from pathlib import Path

from helpers.download import DATA_ENV, DownloadError, cache_dir, fetch, local_data
from helpers.files import expand_home, extract_tar, remove_stale_saves, same_file
from helpers.glove import Glove, download_glove, load_glove
from helpers.profiles import Sizes03, made_to_order
from helpers.synthetic import synthetic_glove, synthetic_reviews
from helpers.tables import check_columns, check_texts, int_labels, label_index, read_rows

HUB_ID = "stanfordnlp/imdb"

Split = tuple[list[str], list[int]]  # texts, labels (0 = negative, 1 = positive)


def read_jsonl(path: str | Path) -> Split:
    """Texts and labels from a jsonl file with fields ``text`` and ``label`` (0 or 1)."""
    rows = read_rows(path)
    check_columns(rows, ["text", "label"], str(path))
    check_texts(rows, ["text"], str(path))  # a null would be read as the word "None"
    labels = int_labels([r["label"] for r in rows], str(path), allowed={0, 1})
    return [r["text"] for r in rows], labels


def training_splits(train_file: str | Path, fraction: float) -> tuple[Split, Split, Split]:
    """(all reviews, train, validation) of ``train_file``, its repeats dropped before the split (a
    note on stderr says how many: a copy on each side would be validated on memory), then checked."""
    read = read_jsonl(train_file)
    everything = drop_repeats(read)
    if dropped := len(read[0]) - len(everything[0]):
        print(f"note: {dropped} of the {len(read[0])} reviews in --train-file {train_file} repeat an "
              f"earlier one; training and validating on the other {len(everything[0])}",
              file=sys.stderr)  # fmt: skip
    train, valid = split_off(everything, fraction)
    check_splits(train, valid, train_file, fraction)
    return everything, train, valid


def check_splits(train: Split, valid: Split, train_file: str | Path, fraction: float) -> None:
    """A ValueError if the training or the validation split of ``train_file`` is empty, or if they
    hold one class only (nothing to classify)."""
    for name, (texts, _) in (("train", train), ("validation", valid)):
        if not texts:
            raise ValueError(f"the {name} split of {train_file} is empty (--valid-fraction "
                             f"{fraction}); use more reviews or another fraction")  # fmt: skip
    label_index(train[1] + valid[1], str(train_file))


def check_apart(train: Split, train_file: str | Path, other: Split, other_file: str | Path,
                flag: str) -> None:  # fmt: skip
    """A ValueError if ``other_file`` (given as ``flag``) is the training file, by any path or link,
    or if most of its reviews are training reviews (a copy): scores on it would measure memory. A
    note on stderr if it holds one class only: its accuracy is then that class's recall."""
    if same_file(train_file, other_file):
        raise ValueError(
            f"{flag} {other_file} is the --train-file; give reviews kept apart from training"
        )
    seen = set(train[0])
    shared = sum(text in seen for text in other[0])
    if shared > len(other[0]) / 2:
        raise ValueError(f"{flag} {other_file}: {shared} of its {len(other[0])} reviews are in the "
                         "--train-file; give reviews kept apart from training")  # fmt: skip
    _one_class_note(other, other_file, flag)


def _one_class_note(data: Split, file: str | Path, flag: str) -> None:
    """A note on stderr if ``data`` holds one class only: its accuracy is then that class's recall."""
    classes = set(data[1])
    if len(classes) == 1:
        (label,) = classes
        print(f"note: every review in {flag} {file} is labelled {label}, so its accuracy is the "
              f"recall of class {label} alone; a model that always says {label} scores 100%",
              file=sys.stderr)  # fmt: skip


def kept_apart(train: Split, train_file: str | Path, other: Split, other_file: str | Path,
               flag: str) -> Split:  # fmt: skip
    """``check_apart``, then ``other`` without the reviews the training file holds and without its
    own repeats, with a note on stderr saying how many went: each would be scored on memory."""
    check_apart(train, train_file, other, other_file, flag)
    kept = drop_repeats(other, seen=train)
    if dropped := len(other[0]) - len(kept[0]):
        print(f"note: {dropped} of the {len(other[0])} reviews in {flag} {other_file} repeat a review "
              f"of the --train-file or an earlier one of its own; scoring the other {len(kept[0])}",
              file=sys.stderr)  # fmt: skip
        if len(set(other[1])) > 1:  # one class left only after the drop
            _one_class_note(kept, other_file, flag)
    return kept


def split_off(data: Split, fraction: float, seed: int = 42) -> tuple[Split, Split]:
    """(rest, held out): a random ``fraction`` of the examples held out, the same one for the same seed."""
    order = list(range(len(data[0])))
    random.Random(seed).shuffle(order)
    cut = int(round(len(order) * fraction))

    def pick(idx: list[int]) -> Split:
        return [data[0][i] for i in idx], [data[1][i] for i in idx]

    return pick(order[cut:]), pick(order[:cut])


def drop_repeats(data: Split, seen: Split | None = None) -> Split:
    """``data`` without repeated texts (the first copy stays) and without texts that ``seen`` holds:
    a review in two splits would be scored on what the model trained on."""
    known = set(seen[0]) if seen else set()
    keep = []
    for i, text in enumerate(data[0]):
        if text not in known:
            known.add(text)
            keep.append(i)
    return [data[0][i] for i in keep], [data[1][i] for i in keep]


def subsample(data: Split, n: int | None, seed: int = 42) -> Split:
    """At most ``n`` examples, chosen at random with ``seed`` (all of them when n is None)."""
    if n is None or n >= len(data[0]):
        return data
    return split_off(data, n / len(data[0]), seed)[1]


def _from_local() -> dict[str, Split] | None:
    folder = os.environ.get(DATA_ENV)
    if not folder:
        return None
    train_file = expand_home(folder, f"${DATA_ENV}=") / "imdb" / "train.jsonl"
    test_file = train_file.with_name("test.jsonl")
    if not train_file.exists():
        raise FileNotFoundError(
            f"${DATA_ENV} is {folder}, but {train_file} is missing; put the reviews there (jsonl with "
            f"fields 'text' and 'label') or unset {DATA_ENV} to download them"
        )
    train_data = read_jsonl(train_file)
    if test_file.exists():
        return {"train": train_data, "test": read_jsonl(test_file)}
    train_data, test_data = split_off(drop_repeats(train_data), 0.2, seed=7)  # 20% as test
    return {"train": train_data, "test": test_data}


def _from_hub() -> dict[str, Split]:
    from datasets import load_dataset

    data = load_dataset(HUB_ID)
    return {
        split: (list(data[split]["text"]), list(data[split]["label"]))
        for split in ("train", "test")
    }


def read_aclimdb(folder: Path) -> dict[str, Split]:
    """Stanford's aclImdb folder layout: {train,test}/{pos,neg}/<id>_<stars>.txt."""
    data = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label, sentiment in ((0, "neg"), (1, "pos")):
            for path in sorted((folder / split / sentiment).glob("*.txt")):
                texts.append(path.read_text(encoding="utf-8"))
                labels.append(label)
        data[split] = (texts, labels)
    return data


def _from_tarball() -> dict[str, Split]:
    folder = cache_dir() / "aclImdb"
    if not folder.exists():
        archive = fetch("aclImdb_v1.tar.gz")
        remove_stale_saves(cache_dir())  # a killed extraction's folder, after a day
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".saving-") as tmp:
            extract_tar(archive, Path(tmp))
            try:  # complete folders only: one rename, on the cache's own file system
                os.rename(Path(tmp) / "aclImdb", folder)
            except OSError:  # another process (a second tab) put its copy there first: use that
                if not folder.is_dir():
                    raise
    return read_aclimdb(folder)


def load_imdb() -> tuple[dict[str, Split], str]:
    """IMDB train and test reviews, and where they came from.

    Tries $HELPERS_DATA_DIR/imdb/*.jsonl, then the Hugging Face hub (stanfordnlp/imdb), then Stanford's
    tarball (via d2l's checksum-verified mirror). A source that fails is reported, never skipped silently.
    """
    local = _from_local()
    if local is not None:
        return local, f"${DATA_ENV} ({os.environ[DATA_ENV]})"
    errors = []
    try:
        return _from_hub(), f"Hugging Face hub ({HUB_ID})"
    except (OSError, ConnectionError, ValueError) as err:  # offline, or the hub is down
        errors.append(f"hub: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        print(f"IMDB from the hub failed ({errors[-1]}); trying Stanford's tarball")
    try:
        return _from_tarball(), "Stanford's aclImdb tarball"
    except DownloadError as err:
        errors.append(f"tarball: {err}")
    raise RuntimeError(
        "could not load IMDB from any source. Either connect to the internet, or put train.jsonl (and "
        f"test.jsonl) with fields 'text' and 'label' in a folder's imdb/ subfolder and set {DATA_ENV} to "
        "that folder.\n" + "\n".join(errors)
    )


def local_glove(dim: int) -> Path | None:
    """$HELPERS_DATA_DIR/glove/glove.6B.<dim>d*.txt if there is one (``helpers.download.local_data``)."""
    return local_data("glove", f"glove.6B.{dim}d*.txt")


def notebook_data(sizes: Sizes03) -> tuple[dict[str, Split], Glove, str]:
    """Notebook 03's train/valid/test splits and GloVe vectors for a profile's ``sizes``
    (``helpers.profiles.Sizes03``), and where they came from. Repeated real reviews are dropped, so
    each review is in one split once."""
    if sizes.synthetic:
        made_to_order(max_train=sizes.max_train, max_test=sizes.max_test)
        train_data = synthetic_reviews(sizes.max_train)
        test_data = synthetic_reviews(sizes.max_test, seed=7)
        glove = synthetic_glove(sizes.glove_dim)
        source = "synthetic reviews and vectors (smoke profile: offline)"
    else:
        data, source = load_imdb()
        train_all = drop_repeats(data["train"])
        train_data = subsample(train_all, sizes.max_train)
        test_data = subsample(drop_repeats(data["test"], seen=train_all), sizes.max_test)
        path = local_glove(sizes.glove_dim)
        glove = load_glove(path)[0] if path else download_glove(sizes.glove_dim)
    train_data, valid_data = split_off(train_data, 0.1)
    return {"train": train_data, "valid": valid_data, "test": test_data}, glove, source
