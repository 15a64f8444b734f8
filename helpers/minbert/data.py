"""Notebook 05's data: minBERT's ``LABEL ||| SENTENCE`` files, checked line by line, and a dev split
carved out of a training file (stratified, seeded, no sentence on both sides).

    3 ||| The Rock is destined to be the 21st Century 's new `` Conan '' ...

A test file may hide its labels: a label field that is empty, ``?`` or ``-1`` is hidden. Either every
line of a file hides its label or none does.
"""

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from helpers.download import fetch, local_data
from helpers.tables import read_utf8, split_lines

SEPARATOR = "|||"
# label fields that mean "not given" (a test file whose answers are held back)
HIDDEN = ("", "?", "-1")


@dataclass(frozen=True)
class Example:
    """One line: its class number (None when the file hides it) and its sentence."""

    label: int | None
    text: str
    line: int = field(default=0, compare=False)  # where it was read (0: not from a file)


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; check the path (relative to {Path.cwd()})")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; give the path of a LABEL ||| SENTENCE text file")
    return split_lines(read_utf8(path))  # a byte-order mark dropped; not UTF-8: line and byte named


def read_examples(path: str | Path) -> list[Example]:
    """Every non-blank line of ``path`` as an Example; a bad line raises ValueError naming file:line."""
    path = Path(path)
    examples: list[Example] = []
    lines = _read_lines(path)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue  # a blank line (often the last one) is not an example
        where = f"{path}:{number}"
        if SEPARATOR not in line:
            raise ValueError(
                f"{where}: no '{SEPARATOR}' separator in {_short(line)}; every line must be "
                f"LABEL {SEPARATOR} SENTENCE, e.g. '3 {SEPARATOR} A gorgeous film .'"
            )
        field_, text = (part.strip() for part in line.split(SEPARATOR, 1))
        if field_ in HIDDEN:
            label = None
        else:
            digits = field_.removeprefix("-")
            if not (digits.isascii() and digits.isdigit()):  # int() would read "1_0" as 10
                raise ValueError(
                    f"{where}: the label {field_!r} is not a whole number; labels are class numbers "
                    f"0, 1, 2, ... (or '?', '-1' or nothing for a hidden test label)"
                )
            label = int(field_)
            if label < 0:
                raise ValueError(
                    f"{where}: the label {label} is negative; classes are numbered from 0"
                )
        if not text:
            raise ValueError(f"{where}: the sentence after '{SEPARATOR}' is empty")
        examples.append(Example(label, text, number))
    if not examples:
        raise ValueError(
            f"{path} holds no examples ({len(lines)} line{'s' * (len(lines) != 1)}, all blank); "
            f"give a file with one LABEL {SEPARATOR} SENTENCE per line"
        )
    hidden = [e.label is None for e in examples]
    if any(hidden) and not all(hidden):
        first = _line_of(lines, hidden.index(True))
        known = _line_of(lines, hidden.index(False))
        raise ValueError(
            f"{path}:{first}: this label is hidden but {path}:{known}'s is not; a file gives every "
            f"label or hides every one ({sum(hidden)} of {len(hidden)} hidden). Fill in or hide them all"
        )
    return examples


def _line_of(lines: list[str], index: int) -> int:
    """The 1-based line number of the ``index``-th non-blank line."""
    seen = -1
    for number, line in enumerate(lines, 1):
        seen += bool(line.strip())
        if seen == index:
            return number
    raise IndexError(index)


def _short(line: str, width: int = 60) -> str:
    return repr(line if len(line) <= width else line[: width - 3] + "...")


def labels_hidden(examples: list[Example]) -> bool:
    """True when the examples hide their labels (``read_examples`` allows all or none)."""
    return bool(examples) and examples[0].label is None


def num_classes(train: list[Example], where: str = "the training file") -> int:
    """The number of classes: the largest training label + 1 (SST-5: 5, CFIMDB: 2)."""
    if labels_hidden(train):
        raise ValueError(f"{where} hides its labels; training needs every label")
    count = max(e.label for e in train) + 1
    if count < 2:
        raise ValueError(
            f"{where}'s labels are all 0; a classifier needs at least two classes (0 and 1)"
        )
    used = {e.label for e in train}
    if count > 1000 and 2 * len(used) < count:  # {0, 1, 5000}: a stray label, not a huge head
        stray = max(used)
        line = next(e.line for e in train if e.label == stray)
        raise ValueError(f"{where}{f':{line}' if line else ''}: label {stray}, but only {len(used)} of the classes 0-{stray} "
                         "occur; classes are numbered 0, 1, 2, ... Is this label a typo?")  # fmt: skip
    return count


def check_labels(examples: list[Example], classes: int, where: str, train: str = "train") -> None:
    """Raise ValueError if a label of ``examples`` is outside 0..classes-1 (naming file:line)."""
    for i, example in enumerate(examples):
        if example.label is not None and example.label >= classes:
            line = f"{where}:{example.line}" if example.line else f"{where}, example {i + 1}"
            raise ValueError(
                f"{line}: label {example.label}, but {train}'s labels go up to {classes - 1} "
                f"({classes} classes); the files must number the same classes. Check that the "
                "files belong to the same task"
            )


def write_examples(path: str | Path, examples: list[Example]) -> Path:
    """Write ``examples`` as ``LABEL ||| SENTENCE`` lines (atomically; a hidden label as ``?``). A
    sentence ``read_examples`` could not read back (empty, or holding a line break) is a ValueError."""
    from helpers.files import write_text

    for i, e in enumerate(examples):
        if not e.text.strip() or "\n" in e.text or "\r" in e.text:  # split_lines' breaks
            problem = "is empty" if not e.text.strip() else "holds a line break"
            read = f" (read from line {e.line})" if e.line else ""
            raise ValueError(
                f"example {i}{read} of the {len(examples)} to write to {path}: its sentence "
                f"{problem}, but each line of the file is one LABEL {SEPARATOR} SENTENCE; give it one "
                "line of text (e.g. ' '.join(text.split()))"
            )
    lines = [f"{'?' if e.label is None else e.label} {SEPARATOR} {e.text}\n" for e in examples]
    return write_text(path, "".join(lines))


# --- a dev split carved out of train ---------------------------------------------------------------


def same_text(text: str) -> str:
    """What "the same sentence" means: equal after lowercasing and collapsing whitespace."""
    return " ".join(text.lower().split())


@dataclass
class Carved:
    """(train, dev) out of one file; unpacks as two: ``train, dev = carve_dev(examples)``.

    ``repeats``: examples whose sentence occurs earlier in the file; ``dropped``: copies of a dev
    sentence left out of train (so no sentence is on both sides); ``note``: both, in words."""

    train: list[Example]
    dev: list[Example]
    repeats: int = 0
    dropped: int = 0
    note: str = field(default="")

    def __iter__(self) -> Iterator[list[Example]]:
        return iter((self.train, self.dev))


def carve_dev(examples: list[Example], fraction: float = 0.1, seed: int = 0) -> Carved:
    """Hold ``fraction`` of ``examples`` out as dev: the same share of every class (stratified), drawn
    with ``seed``; a class of one sentence stays in train. A sentence that occurs more than once goes
    to one side only: if it is chosen for dev, dev keeps one copy and its other copies leave train
    (counted in ``dropped``)."""
    if not 0 < fraction < 1:
        raise ValueError(f"the dev fraction must be between 0 and 1, not {fraction!r}")
    if labels_hidden(examples):
        raise ValueError("cannot carve a dev split out of examples whose labels are hidden")
    copies: dict[str, list[int]] = defaultdict(list)  # sentence -> its positions
    for i, example in enumerate(examples):
        copies[same_text(example.text)].append(i)
    by_label: dict[int, list[str]] = defaultdict(list)  # label -> sentences (first copy's label)
    for text, positions in copies.items():
        by_label[examples[positions[0]].label].append(text)
    rng = random.Random(seed)
    chosen: set[str] = set()
    totals = Counter(e.label for e in examples)
    # a class of one sentence stays in train: taken for dev, no model could learn it
    lone = [label for label in sorted(by_label) if len(by_label[label]) == 1]
    for label in sorted(set(by_label) - set(lone)):
        # sorted first: the draw does not depend on the file's order
        texts = sorted(by_label[label])
        rng.shuffle(texts)
        want = max(1, round(fraction * totals[label]))
        taken = 0
        for text in texts:
            if taken >= want:
                break
            chosen.add(text)
            taken += 1
    dev = [examples[copies[t][0]] for t in sorted(chosen, key=lambda t: copies[t][0])]
    train = [e for e in examples if same_text(e.text) not in chosen]
    repeats = len(examples) - len(copies)
    dropped = len(examples) - len(train) - len(dev)
    if not train:
        raise ValueError(
            f"carving {fraction:.0%} for dev left no training examples ({len(examples)} in all)"
        )
    if not dev:
        raise ValueError(
            f"no class has two different sentences to hold one out for dev ({len(examples)} "
            "examples): add examples, or give --dev-file"
        )
    note = (
        f"dev: {len(dev):,} of {len(examples):,} examples ({fraction:.0%} of each class, seed {seed}); "
        f"{repeats:,} example{'s' * (repeats != 1)} repeat an earlier sentence; "
        f"{dropped:,} cop{'ies' if dropped != 1 else 'y'} of dev sentences left out of train"
    )
    if lone:
        classes = f"class{'es' * (len(lone) > 1)} {', '.join(map(str, lone))}"
        note += f"; {classes}: one sentence, kept in train"
    return Carved(train, dev, repeats, dropped, note)


# what minBERT publishes with labels
FILES = ("sst-train.txt", "cfimdb-train.txt", "cfimdb-dev.txt")


def data_file(name: str) -> Path:
    """minBERT's file ``name``: $HELPERS_DATA_DIR/minbert/<name> if it is there, else downloaded once
    from minBERT's repository into the cache (checksum-verified)."""
    if name not in FILES:
        raise ValueError(f"minBERT has no labelled file {name!r}; its files: {', '.join(FILES)}")
    return local_data("minbert", name) or fetch(f"minbert-{name}")
