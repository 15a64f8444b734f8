"""Text to token ids, without torchtext: spaCy's English rules, a cached token store, a vocabulary,
and length-bucketed batches with padding masks.
"""

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.download import cache_dir
from helpers.files import cache_arrays, load_arrays
from helpers.source import code_digest

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1 in every Vocab
BREAKS = re.compile(r"(?:<br\s*/?>\s*)+", re.IGNORECASE)


def clean(text: str) -> str:
    """Replace runs of HTML line breaks with a space and lowercase (GloVe's words are lowercase)."""
    return BREAKS.sub(" ", text).lower()


@dataclass
class Tokenized:
    """Many documents' tokens, stored flat: document i is words[ids[offsets[i]:offsets[i + 1]]]."""

    words: list[str]  # every distinct token, in order of first appearance
    ids: np.ndarray  # (total tokens,) int32 indices into words
    offsets: np.ndarray  # (documents + 1,) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def document(self, i: int) -> list[str]:
        return [self.words[j] for j in self.ids[self.offsets[i] : self.offsets[i + 1]]]

    def counts(self) -> Counter:
        """How often each token occurs."""
        return Counter(
            dict(zip(self.words, np.bincount(self.ids, minlength=len(self.words)).tolist()))
        )


def tokenize(texts: list[str], batch_size: int = 1000, progress: bool = True) -> Tokenized:
    """Tokenise with spaCy's rule-based English tokenizer (``spacy.blank("en")``: no model download)."""
    if isinstance(texts, str):  # it would tokenise each character as a document
        raise TypeError("texts must be a list of strings, not one string: wrap it as [text]")
    import spacy

    if not hasattr(spacy, "blank"):  # "module 'spacy' has no attribute 'blank'" named nothing
        raise ImportError(f"`import spacy` found {getattr(spacy, '__file__', None) or 'a module'}, "
                          "not spaCy: rename that file (it hides the installed spaCy), then run "
                          "again")  # fmt: skip
    tokenizer = spacy.blank("en").tokenizer
    index: dict[str, int] = {}
    ids: list[int] = []
    offsets = [0]
    docs = tokenizer.pipe((clean(t) for t in texts), batch_size=batch_size)
    # no disable= when shown: given, it overrode TQDM_DISABLE
    shown = {} if progress else {"disable": True}
    for doc in tqdm(docs, total=len(texts), desc="tokenising", unit="doc", **shown):
        ids.extend(index.setdefault(token.text, len(index)) for token in doc if not token.is_space)
        offsets.append(len(ids))
    return Tokenized(
        list(index), np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64)
    )


def _fingerprint(texts: list[str]) -> str:
    """The texts, the code that tokenises them (``clean`` included) and spaCy's version (its rules)."""
    digest = hashlib.sha256(f"{code_digest(tokenize)} spacy {version('spacy')}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def tokenize_cached(texts: list[str], progress: bool = True) -> tuple[Tokenized, bool]:
    """``tokenize(texts)``, stored on disk under a hash of the texts and of the tokenising code and
    spaCy version: a re-run loads it in a blink.

    Returns (tokens, True if it came from the cache).
    """
    path = cache_dir() / "tokens" / f"{_fingerprint(texts)}.npz"
    if (arrays := load_arrays(path, "words", "ids", "offsets")) is not None:
        words, ids, offsets = arrays
        return Tokenized(json.loads(str(words)), ids, offsets), True
    tokens = tokenize(texts, progress=progress)
    cache_arrays(path, "the tokens", words=np.array(json.dumps(tokens.words)), ids=tokens.ids,
                 offsets=tokens.offsets)  # fmt: skip
    return tokens, False


class Vocab:
    """Token <-> id. Id 0 is padding, id 1 stands for every token outside the vocabulary."""

    def __init__(self, words: list[str]) -> None:
        once = dict.fromkeys(words)  # a word given twice gets one id
        self.itos = [PAD, UNK] + [w for w in once if w not in (PAD, UNK)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Tokenized) -> list[np.ndarray]:
        """Each document of ``tokens`` as an int64 array of vocabulary ids (unknown words -> 1)."""
        # corpus id -> vocab id
        remap = np.array([self.stoi.get(w, 1) for w in tokens.words], dtype=np.int64)
        ids = remap[tokens.ids] if len(tokens.ids) else tokens.ids.astype(np.int64)
        return [ids[a:b] for a, b in zip(tokens.offsets[:-1], tokens.offsets[1:])]


def bucketed_batches(
    lengths: list[int] | np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int = 42,
    bucket: int = 50,
) -> list[list[int]]:
    """Batches of indices of similar length, so little compute is spent on padding.

    Shuffled: indices are shuffled, cut into pools of ``bucket`` batches, each pool sorted by length and
    cut into batches, and the batches shuffled. Not shuffled: sorted by length throughout.
    """
    for name, value in (("batch_size", batch_size), ("bucket", bucket)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if not shuffle:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    pool = batch_size * bucket
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def pad_batch(docs: list[np.ndarray], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncate each document to ``max_len`` and pad with 0: ids (B, T) and mask (B, T), True = real."""
    if len(docs) == 0:
        raise ValueError(
            "pad_batch got an empty batch (no documents). Batches come out empty when the split "
            "they are cut from has no examples (an empty file, a filter that kept nothing, a "
            "valid_fraction that rounds to 0 examples) or when slicing runs past its end "
            "(docs[i : i + batch_size] with i >= len(docs)); check the split's size, and cut "
            "batches with bucketed_batches"
        )
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1 token, not {max_len!r}")
    T = max(1, min(max_len, max(len(d) for d in docs)))
    ids = torch.zeros(len(docs), T, dtype=torch.long)
    for row, doc in enumerate(docs):
        doc = doc[:T] if len(doc) else np.array([1])  # an empty document becomes one <unk>
        ids[row, : len(doc)] = torch.from_numpy(np.asarray(doc, dtype=np.int64))
    return ids, ids != 0
