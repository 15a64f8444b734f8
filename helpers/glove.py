"""GloVe word vectors: download (checksum-verified), parse fast, cache as arrays, align with a vocabulary."""

import csv
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers.download import DownloadError, cache_dir, download, fetch
from helpers.text import Vocab, save_atomic

STANFORD_GLOVE = "https://nlp.stanford.edu/data/glove.6B.zip"


@dataclass
class Glove:
    words: list[str]
    vectors: np.ndarray  # (words, dim) float32

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


def parse_glove_text(path) -> Glove:
    """Parse GloVe's text format (``word v1 ... vd`` per line) with pandas' C parser, not a Python loop."""
    frame = pd.read_csv(
        path,
        sep=" ",
        header=None,
        quoting=csv.QUOTE_NONE,
        na_filter=False,
        encoding="utf-8",
        engine="c",
    )
    if frame.shape[1] < 2:
        raise ValueError(
            f"{path} is not in GloVe's text format: expected 'word v1 v2 ...' on every line"
        )
    return Glove(frame[0].astype(str).tolist(), frame.iloc[:, 1:].to_numpy(dtype=np.float32))


def load_glove(path: str | Path, member: str | None = None) -> tuple[Glove, bool]:
    """GloVe from a .txt (or a .zip holding one), cached as arrays keyed by the file's size and mtime.

    ``member`` picks the .txt inside a zip that holds several. Returns (vectors, True if from the cache).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"GloVe file {path} does not exist; pass a glove.6B.*d.txt or .zip")
    stat = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    ).hexdigest()[:20]
    cached = cache_dir() / "glove" / f"{member or path.stem}.{key}.npz"
    if cached.exists():
        with np.load(cached) as f:
            return Glove(json.loads(str(f["words"])), f["vectors"]), True
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(member or ".txt")]
            if not names:
                raise ValueError(f"{path} holds no {member or '.txt file of vectors'}")
            with archive.open(names[0]) as f:
                glove = parse_glove_text(f)
    else:
        glove = parse_glove_text(path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(cached, words=np.array(json.dumps(glove.words)), vectors=glove.vectors)
    return glove, False


def download_glove(dim: int) -> Glove:
    """GloVe 6B <dim>d: from d2l's mirror (sha1-verified), else Stanford's 822 MB zip of all sizes."""
    if dim not in (50, 100):
        raise ValueError(f"GloVe 6B {dim}d is not mirrored here; use 50 or 100")
    try:
        return load_glove(fetch(f"glove.6B.{dim}d.zip"))[0]
    except DownloadError as mirror_error:
        print(f"d2l's mirror failed ({mirror_error}); trying Stanford's server")
        stanford = download(STANFORD_GLOVE)  # no published checksum
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
    return Alignment(
        vocab, torch.from_numpy(vectors), covered / max(total, 1), len(known) / max(len(counts), 1)
    )
