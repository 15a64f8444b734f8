"""Small text corpora for the language-model demos, and random windows of a token stream to train
on."""

import random
from pathlib import Path

import torch

from helpers.download import fetch, hub_dataset, local_data

WORDS = "the a cat dog sat ran on under mat tree and then it was happy tired big small".split()


def tiny_shakespeare() -> str:
    """Tiny Shakespeare (1.1 MB, 65 distinct characters), downloaded once and checksum-verified."""
    return fetch("tinyshakespeare.txt").read_text(encoding="utf-8")


def synthetic_text(n_chars: int = 20_000, seed: int = 42) -> str:
    """Random sentences over an 18-word vocabulary: offline text for the smoke profile's tests."""
    rng = random.Random(seed)
    sentences: list[str] = []
    while sum(map(len, sentences)) < n_chars:
        sentences.append(" ".join(rng.choices(WORDS, k=rng.randint(4, 9))) + ".\n")
    return "".join(sentences)[:n_chars]


def char_corpus(synthetic: bool) -> tuple[str, str]:
    """(name, text): made-up sentences if ``synthetic`` (the smoke profile's offline stand-in, as its
    sizes say), else Tiny Shakespeare."""
    if synthetic:
        return "synthetic sentences (smoke profile: offline)", synthetic_text()
    return "Tiny Shakespeare", tiny_shakespeare()


# The tokenised WikiText-2 (as in wiki.*.tokens): hub id and config.
WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-v1")


def wikitext2_lines(split: str = "validation", path: str | None = None) -> list[str]:
    """WikiText-2's non-blank lines (headings and paragraphs, tokenised, rare words as <unk>): from
    ``path`` (a local copy such as ``wiki.valid.tokens``) if given, else
    ``$HELPERS_DATA_DIR/corpus/wikitext-2/wiki.<train|valid|test>.tokens`` if there, else the hub."""
    from helpers.tokenization.train import read_lines

    if split not in ("train", "validation", "test"):
        raise ValueError(f"WikiText-2's splits are train, validation and test, not {split!r}")
    if path is None:
        local = local_data(
            "corpus", "wikitext-2", f"wiki.{'valid' if split == 'validation' else split}.tokens"
        )
        path = str(local) if local else None
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"{path} does not exist; give a WikiText-2 file such as wiki.valid.tokens, or path=None "
                f"to download {WIKITEXT_HUB[0]} ({WIKITEXT_HUB[1]}) from the hub"
            )
        return read_lines(path)
    name = f"wiki.{'valid' if split == 'validation' else split}.tokens"
    offline = (f"put {name} in $HELPERS_DATA_DIR/corpus/wikitext-2/ and set HELPERS_DATA_DIR, or "
               "give its path (the notebooks' WIKITEXT_FILE)")  # fmt: skip
    rows = hub_dataset(*WIKITEXT_HUB, split=split, offline=offline)["text"]
    return [line.strip() for line in rows if line.strip()]


def windows(
    data: torch.Tensor, count: int, block_size: int, batch_size: int, generator: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` batches of random windows: inputs (B, T) and targets (B, T), the tokens one later."""
    if len(data) < block_size + 1:  # a window starting at 0 and its targets, one later, fit
        raise ValueError(f"{len(data)} tokens cannot fill a window of block_size={block_size} "
                         "(plus one target); use a longer text or a smaller block size")  # fmt: skip
    batches = []
    for _ in range(count):
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        offsets = starts[:, None] + torch.arange(block_size)  # (B, T)
        batches.append((data[offsets], data[offsets + 1]))
    return batches
