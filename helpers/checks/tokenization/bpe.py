"""Notebook 06's BPE checkers (pair counts, one merge, the learning loop): each compares with
``helpers.tokenization.bpe`` on a corpus built so that each classic mistake gives a different answer,
and rebuilds the mistaken answer to name it."""

from collections import Counter
from collections.abc import Callable, Mapping

from helpers.feedback import CheckResult, failed, passed, returned, returned_not, run_check
from helpers.tokenization import bpe

# --- BPE: pair counts --------------------------------------------------------------------------

# Pieces longer than a character (a corpus after some merges), repeated pairs ("a a a a"), counts.
WORDS = {
    ("l", "o", "w"): 5,
    ("l", "o", "w", "e", "r"): 2,
    ("n", "e", "w", "e", "s", "t"): 6,
    ("w", "i", "d", "e", "s", "t"): 3,
    ("b", "a", "a", "a", "a"): 2,
    ("th", "e"): 4,
    ("b", "an", "an", "a"): 1,
    ("x",): 7,
}


def _nonzero(counts: Mapping) -> dict:
    return {k: v for k, v in counts.items() if v}


def check_pair_counts(fn: Callable) -> CheckResult:
    """``fn(words) -> {(left, right): count}``: words maps a tuple of pieces to how often it occurs."""
    name = "pair counts"
    return run_check(name, lambda: _pair_counts(name, fn))


def _pair_counts(name: str, fn: Callable) -> CheckResult:
    words = dict(WORDS)
    got = fn(words)
    if words != WORDS:
        return failed(name, "your function changed the words it was given",
                      "count into a new Counter; leave `words` as it is")  # fmt: skip
    if not isinstance(got, Mapping):
        return failed(name, f"it returned {returned_not(got, 'a dict or Counter')}",
                      "return a Counter whose keys are pairs (left, right) and values their counts")  # fmt: skip
    got = _nonzero(got)
    want = bpe.pair_counts(WORDS)
    if got == want:
        return passed(name, f"all {len(want)} pairs counted, each word as often as it occurs")
    if any(not (isinstance(k, tuple) and len(k) == 2) for k in got):
        key = next(k for k in got if not (isinstance(k, tuple) and len(k) == 2))
        return failed(name, f"a key is {key!r}: the keys must be pairs of pieces (left, right)",
                      "for each word, zip(word, word[1:]) gives its adjacent pairs")  # fmt: skip
    once = Counter()
    for word in WORDS:
        once.update(zip(word, word[1:]))
    per_word = Counter()
    for word, n in WORDS.items():
        per_word.update({pair: n for pair in set(zip(word, word[1:]))})
    chars = Counter()
    for word, n in WORDS.items():
        text = "".join(word)
        for pair in zip(text, text[1:]):
            chars[pair] += n
    short = Counter()
    for word, n in WORDS.items():
        for pair in zip(word[:-1], word[1:-1]):  # range(len(word) - 2): the last pair left out
            short[pair] += n
    mistakes = {
        "the last pair of each word is missing (range(len(word) - 2)?): a word of k pieces has "
        "k - 1 pairs": short,
        "each word counted once: a word that occurs n times adds n to each of its pairs "
        "(counts[pair] += n)": once,
        "a pair that occurs twice in one word is counted once (a set of pairs per word?): "
        '("b", "a", "a", "a", "a") has the pair ("a", "a") three times': per_word,
        "the pairs are over characters, not pieces: after a merge a word holds longer pieces "
        '("th", "e"), and the pairs are between neighbouring pieces, zip(word, word[1:])': chars,
    }
    for hint, output in mistakes.items():
        if got == _nonzero(output):
            return failed(name, "wrong counts", hint)
    extra = [k for k in got if k not in want]
    apart = {(w[i], w[j]) for w in WORDS for i in range(len(w)) for j in range(i + 2, len(w))}
    if extra and all(k in apart for k in extra):
        return failed(name, f"{len(extra)} pairs of pieces that are not neighbours, e.g. {extra[0]!r}",
                      "pair each piece with the next one: zip(word, word[1:])")  # fmt: skip
    if extra:
        return failed(name, f"{len(extra)} pairs that occur in no word, e.g. {extra[0]!r}",
                      "pair only neighbours inside one word: a pair never spans two words")  # fmt: skip
    wrong = next(k for k in want if got.get(k) != want[k])
    return failed(name, f"the pair {wrong!r} counted {got.get(wrong, 0)} times; expected {want[wrong]}",
                  "each piece and the next one in a word form a pair, counted as often as the word "
                  "occurs", "for word, n in words.items(): for pair in zip(word, word[1:]): "
                  "counts[pair] += n")  # fmt: skip


# --- BPE: one merge ----------------------------------------------------------------------------

MERGE_WORDS = {
    ("x", "a", "b"): 5,
    ("a", "b", "a", "b"): 3,
    ("ca", "b"): 2,  # " ".join gives "ca b", which holds "a b"
    ("a", "bc"): 4,  # "a bc" holds "a b" too
    ("b", "a"): 6,
    ("a", "a", "a"): 2,
}


def check_merge(fn: Callable) -> CheckResult:
    """``fn(words, pair) -> new words``: every occurrence of ``pair`` joined into one piece, counts kept."""
    name = "merge"
    return run_check(name, lambda: _merge(name, fn))


def _first_only(word: tuple, pair: tuple) -> tuple:
    for i in range(len(word) - 1):
        if (word[i], word[i + 1]) == pair:
            return word[:i] + (word[i] + word[i + 1],) + word[i + 2 :]
    return word


def _no_skip(word: tuple, pair: tuple) -> tuple:
    """Merging without stepping past the pair: ("x", "a", "b") -> ("x", "ab", "b")."""
    return tuple(a + b if (a, b) == pair else a for a, b in zip(word, word[1:])) + word[-1:]


def _drops_last(word: tuple, pair: tuple) -> tuple:
    """A walk that stops at len(word) - 1: a last piece not merged is lost ("c", "a") -> ("c",)."""
    new, i = [], 0
    while i < len(word) - 1:
        merged = (word[i], word[i + 1]) == pair
        new.append(word[i] + word[i + 1] if merged else word[i])
        i += 2 if merged else 1
    return tuple(new)


def _string_replace(word: tuple, pair: tuple) -> tuple:
    return tuple(" ".join(word).replace(" ".join(pair), "".join(pair)).split(" "))


def _merge(name: str, fn: Callable) -> CheckResult:
    for pair in (("a", "b"), ("a", "a")):
        words = dict(MERGE_WORDS)
        got = fn(words, pair)
        if words != MERGE_WORDS:
            return failed(name, "your function changed the words it was given",
                          "build a new dict: merged[new_word] = count")  # fmt: skip
        if not isinstance(got, Mapping):
            return failed(name, f"it returned {returned_not(got, 'a dict')}",
                          "return a dict from each merged word (a tuple of pieces) to its count")  # fmt: skip
        got = {tuple(k) if isinstance(k, list) else k: v for k, v in got.items()}
        want = bpe.merge(MERGE_WORDS, pair)
        if got == want:
            continue
        mistakes = {
            "only the first occurrence in a word is merged: ('a', 'b', 'a', 'b') must become "
            "('ab', 'ab'); keep going after a merge": {_first_only(w, pair): n for w, n in MERGE_WORDS.items()},
            "a string replace on ' '.join(word) merges across piece boundaries: ('ca', 'b') is "
            "'ca b', which holds 'a b'; walk the pieces and compare (word[i], word[i + 1]) with the "
            "pair": {_string_replace(w, pair): n for w, n in MERGE_WORDS.items()},
            "after a merge the second piece is kept too ('x', 'a', 'b') became ('x', 'ab', 'b'): "
            "after merging word[i] and word[i + 1], go on from i + 2": {_no_skip(w, pair): n for w, n in MERGE_WORDS.items()},
            "a word's last piece is lost when no merge takes it: the walk stops at len(word) - 1, "
            "so after the loop append word[i] when i == len(word) - 1": {_drops_last(w, pair): n for w, n in MERGE_WORDS.items()},
            "the counts changed: each merged word keeps its count": {w: 1 for w in want},
        }  # fmt: skip
        for hint, output in mistakes.items():
            if got == output:
                return failed(name, f"wrong result for the pair {pair!r}", hint)
        wrong = next((w for w in MERGE_WORDS if bpe.merge_word(w, pair) not in got), None)
        where = f": {wrong!r} should become {bpe.merge_word(wrong, pair)!r}" if wrong else ""
        if wrong and bpe.merge_word(wrong, pair) == wrong:
            return failed(name, f"{wrong!r} is missing from your result, though it does not hold "
                          f"{pair!r}", "keep every word, merged or not, with its count")  # fmt: skip
        return failed(name, f"wrong result for the pair {pair!r}{where}",
                      "walk each word once, left to right: are the next two pieces the pair? after a "
                      "merge, where does the walk go on?",
                      "walk the word: where (word[i], word[i + 1]) == pair append word[i] + "
                      "word[i + 1] and step 2, else append word[i] and step 1")  # fmt: skip
    return passed(name, "every occurrence merged, left to right, within pieces only, counts kept")


# --- BPE: the learning loop --------------------------------------------------------------------

LEARN_TEXT = (
    "low low low low low lower lower newest newest newest newest newest newest "
    "widest widest widest the the then there where here banana banana bananas aaaa aaaa "
    + "st " * 14
    + "es " * 12
)  # a pair twice in one word (banana, aaaa); after "st", a string replace of "e s" glues "e st"


def check_learn_bpe(fn: Callable) -> CheckResult:
    """``fn(words, num_merges) -> [pair, …]``: count, merge the most frequent pair, repeat; stop early when
    no pair occurs twice. Any tie-breaking passes; the verdict says whether it equals the ``tokenizers``
    trainer's."""
    name = "learn BPE"
    return run_check(name, lambda: _learn_twice(name, fn))


def _learn_twice(name: str, fn: Callable) -> CheckResult:
    """Fewer merges than the text allows (the loop's count), then more (the stopping rule), then a
    corpus whose words all become one piece (no pair left to count)."""
    for num_merges in (12, 100):
        try:
            result = _learn(name, fn, [LEARN_TEXT], num_merges)
        except (ValueError, IndexError) as err:
            if num_merges == 12 or not _out_of_pairs(err):  # 12 merges never run out of pairs here
                raise
            return failed(name, f"asked for {num_merges} merges, your loop ran out of pairs: the "
                          f"most frequent of no pairs ({type(err).__name__}: {err})",
                          "when should the loop stop early?",
                          "stop when the most frequent pair occurs fewer than 2 times, and when there "
                          "is no pair left at all: if not counts: break")  # fmt: skip
        if not result.passed:
            return result
    try:
        last = fn({("a", "b"): 3}, 5)
    except (ValueError, IndexError, RuntimeError) as err:
        if not _out_of_pairs(err):
            raise
        return failed(name, "on {('a', 'b'): 3} with 5 merges your loop crashed after the one merge "
                      "there is: every word is one piece, and it asked for the most frequent of no "
                      f"pairs ({type(err).__name__}: {err})",
                      "stop when there is no pair left too: if not counts: break")  # fmt: skip
    if [tuple(pair) for pair in last] != [("a", "b")]:
        return failed(name, f"on {{('a', 'b'): 3}} with 5 merges it returned {last!r}; expected "
                      "[('a', 'b')]", "one merge, then no pair is left: stop")  # fmt: skip
    return result


def _out_of_pairs(err: Exception) -> bool:
    """The crash of taking the most frequent pair when none is left, however it is taken: max() of
    nothing, [0] of an empty list (most_common(1)[0], sorted(...)[0]), unpacking one, or the max of
    an empty numpy array or torch tensor."""
    if isinstance(err, IndexError):
        return "list index out of range" in str(err)
    if isinstance(err, RuntimeError):
        return "numel() == 0" in str(err)  # torch: max() of an empty tensor
    return any(sign in str(err) for sign in ("empty", "got 0)", "zero-size array"))


def _once_per_word(words: Mapping) -> Counter:
    return Counter(pair for word in words for pair in set(zip(word, word[1:])))


def _top(counts: Counter) -> tuple | None:
    return max(counts, key=counts.get) if counts else None


def check_bpe_on_corpus(fn: Callable, texts: list[str], num_merges: int) -> CheckResult:
    """``check_learn_bpe`` on a real corpus: ``fn`` learns ``num_merges`` merges from ``texts``' words;
    the verdict counts the steps where they equal the ``tokenizers`` trainer's."""
    name = f"your BPE on {len(texts):,} lines"
    return run_check(name, lambda: _learn(name, fn, texts, num_merges))


def _learn(name: str, fn: Callable, texts: list[str], num_merges: int) -> CheckResult:
    from helpers.tokenization.train import trainer_merges

    start = bpe.as_corpus(bpe.word_counts(texts))
    want = trainer_merges(texts, num_merges)
    given = dict(start)
    got = fn(given, num_merges)
    if given != start:
        return failed(name, "your function changed the words it was given",
                      "keep the merged corpus in a new variable: words = my_merge(words, pair) makes a "
                      "new dict each step")  # fmt: skip
    if not isinstance(got, list | tuple) or any(
        not (isinstance(p, tuple | list) and len(p) == 2 and all(isinstance(x, str) for x in p))
        for p in got
    ):
        return failed(name, f"it returned {returned(got)}: return the list of merged pairs, in order: "
                      "[('e', 's'), ('es', 't'), …]",
                      "append the pair you merge at each step (not the merged string, not (pair, count))")  # fmt: skip
    got = [tuple(p) for p in got]
    if len(got) > num_merges:
        return failed(name, f"{len(got)} merges returned when num_merges={num_merges}",
                      "stop after num_merges merges: for _ in range(num_merges)")  # fmt: skip
    words = dict(start)
    for step, pair in enumerate(got):
        counts = bpe.pair_counts(words)
        top = max(counts.values(), default=0)
        if counts.get(pair, 0) != top and _top(_once_per_word(words)) == pair:
            return failed(name, f"step {step + 1} merged {pair!r}: each word counted once, or each pair "
                          "once per word", "a word that occurs n times adds n to each of its pairs, and a "
                          "pair twice in one word (banana: an, an) counts twice")  # fmt: skip
        if counts.get(pair, 0) != top:
            if step and pair == got[step - 1]:
                return failed(name, f"the pair {pair!r} is merged twice in a row",
                              "after each merge, go on with the merged words: words = my_merge(words, pair)")  # fmt: skip
            if counts.get(pair, 0) == 0:
                return failed(name, f"step {step + 1} merged {pair!r}, which is not two adjacent pieces of "
                              "any word after the earlier merges", "count pairs inside each word only, and "
                              "apply every merge to every occurrence: words = my_merge(words, pair)")  # fmt: skip
            if counts.get(pair, 0) == min(counts.values()):
                return failed(name, f"step {step + 1} merged {pair!r}, a least frequent pair",
                              "merge the most frequent pair: max(counts, key=counts.get)")  # fmt: skip
            return failed(name, f"step {step + 1} merged {pair!r} ({counts.get(pair, 0)} times) but "
                          f"the most frequent pair occurs {top} times",
                          "count the pairs again after every merge, and take the most frequent")  # fmt: skip
        if top < 2:
            return failed(name, f"step {step + 1} merged {pair!r}, which occurs only once",
                          "stop when the most frequent pair occurs fewer than 2 times: a merge that "
                          "helps one word only makes the vocabulary bigger")  # fmt: skip
        words = bpe.merge(words, pair)
    if len(got) < len(want):
        return failed(name, f"{len(got)} merges; the corpus allows {len(want)} (pairs occurring twice "
                      "or more)", "loop num_merges times and stop only when no pair occurs twice")  # fmt: skip
    agree = sum(a == b for a, b in zip(got, want))
    same = "equal to the tokenizers trainer's" if got == want else (
        f"a valid order, equal to the tokenizers trainer's at {agree} of {len(want)} steps: ties were "
        "broken differently from the trainer, which takes the pair whose tokens entered the vocabulary "
        "first (characters in code-point order, then merged tokens in the order they were made)")  # fmt: skip
    return passed(name, f"{len(got)} merges, each the most frequent pair at its step: {same}")
