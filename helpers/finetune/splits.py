"""Leak-free splits of phrase-level data such as GLUE SST-2 train.

SST-2's training rows are every phrase of every training sentence: "the lord of the rings", "grand as the
lord of the rings" and the whole sentence are three rows. A dev row taken out of train at random leaves
its own sub-phrases and its sentence behind in train, and the model is scored on text it was trained on.
The rule here: a held-out row takes out of train every row that **contains it or is contained in it**,
word for word (whole words of the space-separated, lowercased text). Containment is found through an
inverted index by each row's rarest word, never by scanning every pair.
"""

import random
from collections import Counter, defaultdict
from collections.abc import Iterable

# A "complete sentence" (what dev and test hold): a row no other row contains, ending like a sentence.
SENTENCE_ENDS = (".", "!", "?", "''")
MIN_SENTENCE_WORDS = 5


def words(text: str) -> tuple[str, ...]:
    return tuple(text.lower().split())


def _padded(ws: tuple[str, ...]) -> str:
    return " " + " ".join(ws) + " "


def _index(rows: list[tuple[str, ...]]) -> tuple[dict[str, list[int]], Counter]:
    """word -> the rows holding it, and how many rows hold each word."""
    index: dict[str, list[int]] = defaultdict(list)
    for i, ws in enumerate(rows):
        for word in set(ws):
            index[word].append(i)
    return index, Counter({word: len(ids) for word, ids in index.items()})


def contained_in_any(small: list[tuple[str, ...]], big: list[tuple[str, ...]]) -> list[bool]:
    """For each row of ``small``: is it, word for word, inside some row of ``big`` (itself included)?"""
    index, df = _index(big)
    padded_big: dict[int, str] = {}
    found = []
    for ws in small:
        if not ws:
            found.append(False)
            continue
        rarest = min(ws, key=lambda word: df.get(word, 0))
        needle = _padded(ws)
        hit = False
        for j in index.get(rarest, ()):
            if len(big[j]) >= len(ws):
                haystack = padded_big.get(j) or padded_big.setdefault(j, _padded(big[j]))
                if needle in haystack:
                    hit = True
                    break
        found.append(hit)
    return found


def leaking_rows(train: list[str], held_out: Iterable[str]) -> set[int]:
    """Indices of ``train`` rows that equal, contain or are contained in a ``held_out`` row."""
    train_words = [words(t) for t in train]
    held_words = list({words(h) for h in held_out if words(h)})
    inside = contained_in_any(train_words, held_words)  # a sub-phrase of a held-out row
    bad = {i for i, hit in enumerate(inside) if hit}
    # a train row that contains a held-out row: look each held-out row up among the train rows
    index, df = _index(train_words)
    for ws in held_words:
        rarest = min(ws, key=lambda word: df.get(word, 0))
        needle = _padded(ws)
        for j in index.get(rarest, ()):
            if (
                j not in bad
                and len(train_words[j]) >= len(ws)
                and needle in _padded(train_words[j])
            ):
                bad.add(j)
    return bad


def complete_sentences(texts: list[str]) -> list[int]:
    """Indices of rows that are whole sentences: no other row contains them, they have at least
    ``MIN_SENTENCE_WORDS`` words and end with ., !, ? or a closing quote. (SST-2's test sentences are
    whole sentences; its training rows are mostly short phrases.)"""
    unique = list(dict.fromkeys(words(t) for t in texts))
    longer_than = {ws: i for i, ws in enumerate(unique)}
    # a row is maximal if the only row containing it is itself: look in the other rows only
    maximal = set()
    index, df = _index(unique)
    for ws in unique:
        if len(ws) < MIN_SENTENCE_WORDS or not ws[-1].endswith(SENTENCE_ENDS):
            continue
        rarest = min(ws, key=lambda word: df[word])
        needle = _padded(ws)
        me = longer_than[ws]
        if not any(
            j != me and len(unique[j]) > len(ws) and needle in _padded(unique[j])
            for j in index[rarest]
        ):
            maximal.add(ws)
    return [i for i, t in enumerate(texts) if words(t) in maximal]


def hold_out(
    rows: list[dict], text: str, n: int, rng: random.Random
) -> tuple[list[dict], list[dict], int]:
    """(kept, held, dropped): ``n`` complete sentences drawn with ``rng`` become ``held``; ``kept`` is
    every other row that does not leak into them; ``dropped`` counts the rows removed besides the held
    ones (their duplicates, sub-phrases and super-phrases)."""
    texts = [str(r[text]) for r in rows]
    # a sentence in several rows once (its first row): drawn twice, dev would score it twice
    pool = sorted({words(texts[i]): i for i in reversed(complete_sentences(texts))}.values())
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} complete sentences to hold {n} out from")
    chosen = sorted(rng.sample(pool, n))
    held = [rows[i] for i in chosen]
    bad = leaking_rows(texts, [texts[i] for i in chosen])
    kept = [r for i, r in enumerate(rows) if i not in bad]
    return kept, held, len(bad) - len(chosen)


def drop_leaks(rows: list[dict], text: str, held: list[dict]) -> tuple[list[dict], int]:
    """``rows`` without every row that equals, contains or is contained in a row of ``held``."""
    bad = leaking_rows([str(r[text]) for r in rows], [str(h[text]) for h in held])
    return [r for i, r in enumerate(rows) if i not in bad], len(bad)
