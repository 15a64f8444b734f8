"""GloVe word vectors: download (checksum-verified), parse fast, cache as arrays, align with a vocabulary."""

import csv
import hashlib
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import torch

from helpers.download import DownloadError, cache_dir, download, fetch
from helpers.files import cache_arrays, load_arrays
from helpers.source import code_digest
from helpers.text import Vocab

STANFORD_GLOVE = "https://nlp.stanford.edu/data/glove.6B.zip"
FORMAT = "'word v1 v2 ... vd', separated by single spaces, the same number of values on every line"
SEPARATORS = {
    ",": "commas (a CSV file?), not spaces",
    "\t": "tabs, not spaces",
    ";": "semicolons, not spaces",
}


@dataclass
class Glove:
    words: list[str]
    vectors: np.ndarray  # (words, dim) float32

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


def parse_glove_text(source: str | Path | IO[bytes], name: str | None = None) -> Glove:
    """Parse GloVe's text format (``word v1 ... vd`` per line) with pandas' C parser, fast.

    ``source`` is a path or a binary file (a zip member); ``name`` names it in errors. A file not
    in this format raises ValueError naming the first line that breaks it and what it holds.
    """
    name = name or str(source)
    try:
        frame = pd.read_csv(
            source,
            sep=" ",
            header=None,
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            dtype={0: str},  # words such as "1.50" or "null" stay as written
            encoding="utf-8",
            engine="c",
        )
        vectors = frame.iloc[:, 1:].to_numpy(dtype=np.float32)
    # pandas' ParserError and EmptyDataError, UnicodeDecodeError, and a value that is not a number
    except ValueError as err:
        raise ValueError(_explain(source, name, str(err))) from None
    if frame.shape[1] < 2:
        raise ValueError(_explain(source, name, "one value per line"))
    bad = np.argwhere(~np.isfinite(vectors))
    if len(bad):  # "nan" or "inf" parse as numbers, then every review that holds the word is NaN
        row, column = bad[0]
        raise ValueError(f"{name} is not a GloVe text file: value {column + 1} of the vector of "
                         f"{frame[0][row]!r} is {vectors[row, column]}, not a finite number; "
                         f"every line must be {FORMAT}")  # fmt: skip
    return Glove(frame[0].tolist(), vectors)


def _explain(source: str | Path | IO[bytes], name: str, reason: str) -> str:
    """Why ``source`` is not GloVe's text format, for a person: its first bad line, found by
    reading it again line by line (slow, but only after the fast parser has failed)."""
    if isinstance(source, str | Path):
        with open(source, "rb") as f:
            problem = _first_problem(f)
    else:
        source.seek(0)
        problem = _first_problem(source)
    if problem is None:  # every line looks right to Python; say what pandas said
        problem = f"pandas could not parse it ({reason})"
    return f"{name} is not a GloVe text file: {problem}; every line must be {FORMAT}"


def _first_problem(lines: Iterable[bytes]) -> str | None:
    """The first line that breaks GloVe's format (or "it is empty"); None if none does."""
    first, head, offset = 0, [], 0  # the first line's number and its values
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            return (
                f"line {number} holds byte {raw[err.start]:#04x} (offset {offset + err.start}), "
                "which is not UTF-8 text. Is it a binary file (word2vec's .bin, a zip, a pickle)? "
                "GloVe files are plain text"
            )
        offset += len(raw)
        if not line:
            continue  # pandas skips blank lines too
        values = line.split(" ")
        if not first and line.lstrip()[:1] in ("{", "["):
            return f"line {number} starts with {line.lstrip()[0]!r}: this looks like JSON"
        if len(values) < 2:
            separator = next((s for s in SEPARATORS if s in line), None)
            if separator:
                by = SEPARATORS[separator]
                return f"line {number} ({_cut(line)!r}) separates its values by {by}"
            return f"line {number} ({_cut(line)!r}) is a word with no numbers after it"
        if line.startswith(" ") or line.endswith(" "):
            edge = "starts" if line.startswith(" ") else "ends"
            return f"line {number} ({_cut(line)!r}) {edge} with a space"
        if "  " in line:
            return f"line {number} has two spaces in a row at character {line.index('  ') + 1}"
        for column, value in enumerate(values[1:], 1):
            try:
                float(value)
            except ValueError:
                spaced = " (a word that holds a space?)" if column == 1 else ""
                return (
                    f"line {number}, value {column} after the word {values[0]!r} is "
                    f"{_cut(value)!r}, not a number{spaced}"
                )
        if not first:
            first, head = number, values
        elif len(values) != len(head):
            count = len(values) - 1
            found = f"line {number} has {count} number{'s' * (count != 1)} after its word"
            found += f", but line {first}"
            if len(head) == 2 and head[0].isdigit():  # "400000 50": a word2vec header
                return (
                    f"{found} is only 2 numbers, like word2vec's header 'count dim': delete that "
                    "line, e.g. `tail -n +2 in.txt > out.txt`"
                )
            return f"{found} has {len(head) - 1}"
    return None if first else "it is empty"


def _cut(text: str, width: int = 50) -> str:
    """``text``, cut to ``width`` characters."""
    return text if len(text) <= width else text[: width - 3] + "..."


def load_glove(path: str | Path, member: str | None = None) -> tuple[Glove, bool]:
    """GloVe from a .txt (or a .zip holding one), cached as arrays keyed by the file's size and mtime.

    ``member`` picks the .txt inside a zip that holds several. Returns (vectors, True if from the cache).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"GloVe file {path} does not exist; pass a glove.6B.*d.txt or .zip")
    if path.is_dir():
        raise ValueError(f"GloVe file {path} is a folder; pass a glove.6B.*d.txt or .zip")
    stat = path.stat()
    # the parser's code too: arrays an older parser wrote (before its checks for nan) are parsed again
    parser = code_digest(parse_glove_text)
    key = hashlib.sha256(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{parser}".encode()
    ).hexdigest()[:20]
    cached = cache_dir() / "glove" / f"{member or path.stem}.{key}.npz"
    if (arrays := load_arrays(cached, "words", "vectors")) is not None:
        words, vectors = arrays
        return Glove(json.loads(str(words)), vectors), True
    if path.suffix == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise ValueError(
                f"{path} ends in .zip but is not a zip archive (a download cut short?); delete it "
                "and download it again"
            ) from None
        with archive:
            names = [n for n in archive.namelist() if n.endswith(member or ".txt")]
            if not names:
                raise ValueError(f"{path} holds no {member or '.txt file of vectors'}")
            with archive.open(names[0]) as f:
                glove = parse_glove_text(f, name=f"{names[0]} in {path}")
    else:
        glove = parse_glove_text(path)
    cache_arrays(cached, f"{path.name}'s vectors", words=np.array(json.dumps(glove.words)),
                 vectors=glove.vectors)  # fmt: skip
    return glove, False


def not_a_zip(path: Path) -> str | None:
    """What is wrong with ``path`` as a zip archive, or None: a file with no checksum to check (a
    login portal's HTML page was saved as Stanford's zip, and kept)."""
    if zipfile.is_zipfile(path):
        return None
    with open(path, "rb") as f:
        start = f.read(512).lstrip().lower()
    page = start.startswith(b"<")  # <!doctype, <html, <?xml, ...
    return f"is not a zip archive{' but a web page (a login portal, or an error page?)' if page else ''}"


def download_glove(dim: int) -> Glove:
    """GloVe 6B <dim>d: from d2l's mirror (sha1-verified), else Stanford's 822 MB zip of all sizes."""
    if dim not in (50, 100):
        raise ValueError(f"GloVe 6B {dim}d is not mirrored here; use 50 or 100")
    try:
        return load_glove(fetch(f"glove.6B.{dim}d.zip"))[0]
    except DownloadError as mirror_error:
        print(f"d2l's mirror failed ({mirror_error}); trying Stanford's server")
        try:
            stanford = download(STANFORD_GLOVE, check=not_a_zip)  # no published checksum
        except DownloadError as err:  # name the mirror's small file, the one to copy
            said = f": {err.answer}" if err.answer else ""  # a server that answered: what it sent
            raise DownloadError(f"{mirror_error} (Stanford's server failed too{said})") from None
        return load_glove(stanford, member=f"glove.6B.{dim}d.txt")[0]


@dataclass
class Alignment:
    vocab: Vocab
    vectors: (
        torch.Tensor
    )  # (len(vocab), dim): row 0 (padding) zeros, row 1 (unknown) the mean vector
    coverage: float  # share of corpus tokens that have a GloVe vector
    types_covered: float  # share of distinct corpus words that have one


def align(glove: Glove, counts: dict[str, int], min_count: int = 1) -> Alignment:
    """A vocabulary of the corpus words GloVe knows (seen at least ``min_count`` times), with their vectors."""
    index = {w: i for i, w in enumerate(glove.words)}
    known = [
        w for w, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c >= min_count and w in index
    ]
    vocab = Vocab(known)
    vectors = np.zeros((len(vocab), glove.dim), dtype=np.float32)
    rows = [index[w] for w in vocab.itos[2:]]
    vectors[2:] = glove.vectors[rows]
    vectors[1] = glove.vectors.mean(axis=0)  # <unk>: the average word
    total = sum(counts.values())
    covered = sum(c for w, c in counts.items() if w in index)
    types = sum(w in index for w in counts)  # as coverage: whatever min_count keeps out
    return Alignment(
        vocab, torch.from_numpy(vectors), covered / max(total, 1), types / max(len(counts), 1)
    )
