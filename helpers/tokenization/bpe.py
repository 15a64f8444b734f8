"""Byte-pair encoding written out: start from characters, count adjacent pairs, merge the most frequent,
repeat (Sennrich et al. 2016).

A corpus is a dict from a word, as a tuple of its current pieces, to how often it occurs:
``{("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2}``. Merges never cross words.

``learn_bpe`` gives the same merges, in the same order, as the ``tokenizers`` library's
``BpeTrainer`` with matching settings (``train.train_bpe`` uses them; a test compares the two):

- pre-tokeniser: ``tokenizers.pre_tokenizers.Whitespace`` itself (``words``): runs of word characters
  or runs of other non-space characters (the regex ``\\w+|[^\\w\\s]+`` in Rust's Unicode classes,
  where combining accents and connectors such as "‿" are word characters and "²" is not: Python's
  ``re`` differs on those three); ``lowercase=True`` adds the ``Lowercase`` normaliser;
- no word-end marker (``end_of_word_suffix``) and no continuing prefix ("##"): with either, the trainer
  numbers the marked characters in hash-map order, so it breaks ties differently from run to run;
- it stops when the most frequent pair occurs fewer than ``min_frequency`` times;
- ties: among pairs with the same count, the trainer takes the one whose token ids are smallest, first
  comparing the left token, then the right. Its ids are the single characters in code-point order
  ("A" < "a" < "b"), then the merged tokens in the order they were made. So a tie goes to the pair
  whose left token entered the vocabulary first (any character before any merged token), then the
  pair whose right token did. ``learn_bpe`` keeps the same order (``rank``).
"""

from collections import Counter
from collections.abc import Iterable, Mapping

from tokenizers.pre_tokenizers import Whitespace

Word = tuple[str, ...]
Pair = tuple[str, str]
_WHITESPACE = Whitespace()


def words(text: str) -> list[str]:
    """``text`` cut into words as ``tokenizers``' Whitespace pre-tokeniser cuts them ("don't": don ' t)."""
    return [word for word, _ in _WHITESPACE.pre_tokenize_str(text)]


def word_counts(texts: Iterable[str], lowercase: bool = False) -> Counter:
    """How often each word occurs in ``texts``, words cut as ``tokenizers``' Whitespace pre-tokeniser does."""
    if isinstance(texts, str):  # each character would count as a text
        raise TypeError("texts must be a list of strings, not one string: wrap it as [text]")
    counts: Counter = Counter()
    for text in texts:
        counts.update(words(text.lower() if lowercase else text))
    return counts


def is_word(text: str) -> bool:
    """Whether ``text`` is one word as the pre-tokeniser cuts them ("don't" is three: don ' t)."""
    return words(text) == [text]


def alphabet(texts: Iterable[str], lowercase: bool = False) -> set[str]:
    """The characters of the words of ``texts``: the pieces BPE starts from, before any merge."""
    return {ch for word in word_counts(texts, lowercase) for ch in word}


def pair_counts(words: Mapping[Word, int]) -> Counter:
    """How often each adjacent pair of pieces occurs, each word counted as often as it occurs."""
    counts: Counter = Counter()
    for word, n in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] += n
    return counts


def merge_word(word: Word, pair: Pair) -> Word:
    """``word`` with every occurrence of ``pair`` joined into one piece, left to right."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def merge(words: Mapping[Word, int], pair: Pair) -> dict[Word, int]:
    """A new corpus with ``pair`` merged in every word (the counts are unchanged)."""
    merged: dict[Word, int] = {}
    for word, n in words.items():
        new = merge_word(word, pair) if pair[0] in word else word
        merged[new] = merged.get(new, 0) + n
    return merged


def as_corpus(
    corpus: Mapping[str, int] | Iterable[str], lowercase: bool = False
) -> dict[Word, int]:
    """Each word split into characters: from {word: count}, or from texts (pre-tokenised first)."""
    counts = corpus if isinstance(corpus, Mapping) else word_counts(corpus, lowercase)
    return {tuple(word): n for word, n in counts.items() if word}


def learn_bpe(
    corpus: Mapping[str, int] | Iterable[str],
    num_merges: int,
    *,
    min_frequency: int = 2,
    lowercase: bool = False,
) -> list[Pair]:
    """Up to ``num_merges`` merges learnt from ``corpus`` ({word: count} or texts), in order.

    Ties between equally frequent pairs are broken as the ``tokenizers`` trainer does (see the module
    doc): the pair whose left, then right, token has the smaller ``rank``."""
    words = as_corpus(corpus, lowercase)
    alphabet = sorted({ch for word in words for ch in word})
    rank = {ch: i for i, ch in enumerate(alphabet)}  # characters by code point, then merged tokens
    merges: list[Pair] = []
    for _ in range(num_merges):
        counts = pair_counts(words)
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -rank[p[0]], -rank[p[1]]))
        if counts[best] < max(min_frequency, 1):
            break
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        words = merge(words, best)
    return merges


def segment(word: str, merges: list[Pair]) -> list[str]:
    """``word`` cut into pieces: start from its characters and apply ``merges`` in the order learnt."""
    pieces: Word = tuple(word)
    for pair in merges:
        if len(pieces) == 1:
            break
        pieces = merge_word(pieces, pair)
    return list(pieces)


def segmentations_by_step(words: Iterable[str], merges: list[Pair]) -> list[dict[str, list[str]]]:
    """For the slider: entry k holds each word's pieces after the first k merges (k = 0 … len(merges))."""
    current = {word: tuple(word) for word in words}
    steps = [{w: list(p) for w, p in current.items()}]
    for pair in merges:
        current = {w: merge_word(p, pair) for w, p in current.items()}
        steps.append({w: list(p) for w, p in current.items()})
    return steps
