"""Offline stand-in data for the smoke profile and the tests: small, made here, learnable.

Reviews whose sentiment words decide the label (and GloVe-like vectors for their words), and
BoolQ-like question/passage pairs. Seeded, so every run sees the same examples.
"""

import random

import numpy as np

from helpers.glove import Glove

WORDS = {
    1: "great wonderful excellent superb moving brilliant loved enjoyable beautiful fun".split(),
    0: "awful boring terrible dull waste poor hated bad worst stupid".split(),
}
NEUTRAL = "the movie film plot actor story scene it was and a this of acting ending music".split()
PLACES = "river mountain city forest castle island desert valley harbor bridge".split()


def synthetic_reviews(n: int, seed: int = 42) -> tuple[list[str], list[int]]:
    """``n`` short reviews (with IMDB's ``<br />`` breaks) and their labels, 1 = positive."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.choices(NEUTRAL, k=rng.randint(8, 30)) + rng.choices(
            WORDS[label], k=rng.randint(1, 4)
        )
        words += rng.choices(WORDS[1 - label], k=rng.randint(0, 1))
        rng.shuffle(words)
        texts.append(" ".join(words) + " .<br /><br />")
        labels.append(label)
    return texts, labels


def synthetic_glove(dim: int = 16, seed: int = 42) -> Glove:
    """Random vectors for the synthetic reviews' words (sentiment words share a direction)."""
    g = np.random.default_rng(seed)
    words = NEUTRAL + WORDS[0] + WORDS[1] + ["."]
    vectors = g.normal(size=(len(words), dim))
    direction = g.normal(size=dim)
    for i, word in enumerate(words):
        vectors[i] += 2 * direction * ((word in WORDS[1]) - (word in WORDS[0]))
    return Glove(words, vectors.astype(np.float32))


def synthetic_pairs(n: int, seed: int = 42) -> list[dict]:
    """BoolQ-like rows: is the question's place in the passage? (question, passage, answer)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        passage = rng.sample(PLACES, 4)
        word = rng.choice(PLACES)
        rows.append({"question": f"is there a {word}?", "passage": "there is a " + ", a ".join(passage),
                     "answer": word in passage})  # fmt: skip
    return rows
