"""Text for the small GPT: a character or word vocabulary and the train/dev split (its random windows:
``helpers.corpora.windows``, which notebook 02's character models draw too).

- ``char``: every distinct character is a token (Tiny Shakespeare: 65); the split is nanoGPT's, the
  first 90% of the characters for training and the last 10% for dev.
- ``word``: whitespace-separated words plus ``<eos>`` at each line's end (WikiText-2 is tokenised
  already, rare words written ``<unk>``); the first 90% of the lines train, the rest are dev, and dev
  words never seen in training become ``<unk>`` too.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from helpers.tables import split_lines

LEVELS = ("char", "word")
UNK, EOS = "<unk>", "<eos>"


@dataclass
class Vocab:
    """Token strings by id (``itos``) and the way text becomes tokens (``level``)."""

    level: str
    itos: list[str]
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def tokens(self, text: str) -> list[str]:
        """Characters, or words with ``<eos>`` after every non-blank line."""
        if self.level == "char":
            return list(text)
        return [w for line in split_lines(text) if line.split() for w in [*line.split(), EOS]]

    def unknown(self, text: str) -> list[str]:
        """The tokens of ``text`` that are not in the vocabulary (sorted, each once)."""
        return sorted({t for t in self.tokens(text) if t not in self.stoi})

    def encode(self, text: str) -> list[int]:
        """Token ids; unknown words become ``<unk>`` (word level); unknown characters raise."""
        if self.level == "char":
            missing = self.unknown(text)
            if any("\udc80" <= c <= "\udcff" for c in missing):  # bytes the locale could not decode
                raise ValueError("the text arrived as bytes Python could not decode (UTF-8 mode off, "
                                 "PYTHONUTF8=0, under an ASCII locale): set PYTHONUTF8=1 or a UTF-8 "
                                 "locale, then run again")  # fmt: skip
            if missing:
                raise ValueError(f"characters {missing} are not in the model's vocabulary "
                                 f"of {len(self)}; leave them out")  # fmt: skip
            return [self.stoi[c] for c in text]
        return [self.stoi.get(t, self.stoi[UNK]) for t in self.tokens(text)]

    def decode(self, ids: Sequence[int]) -> str:
        if self.level == "char":
            return "".join(self.itos[i] for i in ids)
        out: list[str] = []
        for word in (self.itos[i] for i in ids):  # words spaced, <eos> ends the line
            out.append("\n" if word == EOS else word if not out or out[-1] == "\n" else " " + word)
        return "".join(out)

    def to_dict(self) -> dict:
        return {"level": self.level, "itos": self.itos}


@dataclass
class Corpus:
    """A vocabulary and the train and dev token ids (1-D tensors)."""

    vocab: Vocab
    train: torch.Tensor
    dev: torch.Tensor

    def digest(self) -> str:
        h = hashlib.sha256(str(self.vocab.itos).encode())
        for part in (self.train, self.dev):
            h.update(part.numpy().tobytes())
        return h.hexdigest()[:16]


def build_corpus(text: str, level: str, dev_fraction: float = 0.1) -> Corpus:
    """Split ``text`` (characters at the 90% mark, or whole lines) and number its tokens."""
    if not isinstance(text, str):  # a list of lines would make each line one "character"
        many = f"a list of {len(text)} strings" if isinstance(text, list) else type(text).__name__
        raise TypeError(f"text must be one string, not {many}: join lines with '\\n'.join(lines)")
    if not 0 < dev_fraction < 1:
        raise ValueError(
            f"dev_fraction must be between 0 and 1 (0.1: the last 10%), not {dev_fraction}"
        )
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if level == "char":
        vocab = Vocab("char", sorted(set(text)))
        cut = int(len(text) * (1 - dev_fraction))
        train, dev = text[:cut], text[cut:]
    else:
        lines = [line for line in split_lines(text) if line.split()]
        cut = int(len(lines) * (1 - dev_fraction))
        train, dev = "\n".join(lines[:cut]), "\n".join(lines[cut:])
        words = sorted({w for line in lines[:cut] for w in line.split()} - {UNK, EOS})
        vocab = Vocab("word", [UNK, EOS, *words])
    # on the CPU whatever torch.set_default_device a cell chose (batches move to the device later)
    ids = [
        torch.tensor(vocab.encode(part), dtype=torch.long, device="cpu") for part in (train, dev)
    ]
    return Corpus(vocab, *ids)
