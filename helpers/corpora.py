"""Small text corpora for the language-model demos."""

import random

from helpers.download import fetch

WORDS = "the a cat dog sat ran on under mat tree and then it was happy tired big small".split()


def tiny_shakespeare() -> str:
    """Tiny Shakespeare (1.1 MB, 65 distinct characters), downloaded once and checksum-verified."""
    return fetch("tinyshakespeare.txt").read_text(encoding="utf-8")


def synthetic_text(n_chars: int = 20_000, seed: int = 42) -> str:
    """Random sentences over a 17-word vocabulary: offline text for the smoke profile's tests."""
    rng = random.Random(seed)
    sentences: list[str] = []
    while sum(map(len, sentences)) < n_chars:
        sentences.append(" ".join(rng.choices(WORDS, k=rng.randint(4, 9))) + ".\n")
    return "".join(sentences)[:n_chars]


def char_corpus(profile: str) -> tuple[str, str]:
    """(name, text): synthetic text in the smoke profile (offline), Tiny Shakespeare otherwise."""
    if profile == "smoke":
        return "synthetic sentences (smoke profile: offline)", synthetic_text()
    return "Tiny Shakespeare", tiny_shakespeare()
