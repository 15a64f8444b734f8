"""Notebook 06's exercises: BPE's pair counts, one merge and the learning loop; BERT's masking. Right
answers written several ways pass; each named mistake gets its own hint."""

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from helpers.checks import tokenization as checks
from helpers.tokenization import bpe


def hints(result) -> str:
    return " ".join([result.verdict, *result.hints])


# --- pair counts -------------------------------------------------------------------------------


def counts_loop(words):
    counts = Counter()
    for word, n in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] += n
    return counts


def counts_defaultdict(words):
    counts = defaultdict(int)
    for word, n in words.items():
        for i in range(len(word) - 1):
            counts[word[i], word[i + 1]] += n
    return dict(counts)


def counts_sum(words):
    pairs = {p for w in words for p in zip(w, w[1:])}
    return Counter(
        {p: sum(n * list(zip(w, w[1:])).count(p) for w, n in words.items()) for p in pairs}
    )


@pytest.mark.parametrize("fn", [counts_loop, counts_defaultdict, counts_sum, bpe.pair_counts])
def test_pair_counts_checker_accepts_right_answers(fn):
    result = checks.check_pair_counts(fn)
    assert result.passed, str(result)


def counts_once(words):
    return Counter(p for w in words for p in zip(w, w[1:]))


def counts_set(words):
    counts = Counter()
    for word, n in words.items():
        for pair in set(zip(word, word[1:])):
            counts[pair] += n
    return counts


def counts_chars(words):
    counts = Counter()
    for word, n in words.items():
        text = "".join(word)
        for pair in zip(text, text[1:]):
            counts[pair] += n
    return counts


def counts_across(words):
    flat = [piece for word in words for piece in word]
    return Counter(zip(flat, flat[1:])) + counts_loop(words) - counts_once(words)


def counts_skipping(words):
    counts = Counter()
    for word, n in words.items():
        for pair in zip(word, word[2:]):  # every other piece: never a neighbour
            counts[pair] += n
    return counts


def counts_pieces(words):
    return Counter(piece for w, n in words.items() for piece in w for _ in range(n))


def counts_overwritten(words):
    counts = {}
    for word, n in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] = n  # = where += belongs: the last word's count wins
    return counts


def counts_last_pair_left_out(words):
    counts = Counter()
    for word, n in words.items():
        for i in range(len(word) - 2):  # one short: the last pair is never counted
            counts[word[i], word[i + 1]] += n
    return counts


def counts_in_place(words):
    counts = counts_loop(words)
    words.clear()
    return counts


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (counts_once, "each word counted once"),
        (counts_set, "counted once (a set of pairs"),
        (counts_chars, "over characters, not pieces"),
        (counts_across, "occur in no word"),
        (counts_skipping, "not neighbours"),
        (counts_pieces, "pairs of pieces"),
        (counts_in_place, "changed the words"),
        (counts_overwritten, "the pair ('l', 'o') counted 2 times; expected 7"),
        (counts_last_pair_left_out, "the last pair of each word is missing"),
        (lambda words: list(counts_loop(words).items()), "not a dict or Counter"),
    ],
)
def test_pair_counts_checker_names_each_mistake(fn, expected):
    result = checks.check_pair_counts(fn)
    assert not result.passed and expected in hints(result), str(result)


def test_an_unnamed_wrong_count_gets_the_idea_before_the_code():
    """Its only hint was the whole loop."""
    first = checks.check_pair_counts(counts_overwritten)
    assert first.shown == 1 and "for word, n in" not in first.hints[0]
    assert "for word, n in words.items()" in checks.check_pair_counts(counts_overwritten).hints[1]


# --- merge -------------------------------------------------------------------------------------


def merge_walk(words, pair, glue=True, stop=0):
    """Walk each word: a pair becomes one piece (``glue=False``: the pair tuple itself, a mistake);
    ``stop=1`` ends the walk one piece early, losing a last piece no merge took (a mistake)."""
    out = {}
    for word, n in words.items():
        new, i = [], 0
        while i < len(word) - stop:
            if word[i : i + 2] == pair:
                new.append(word[i] + word[i + 1] if glue else pair)
                i += 2
            else:
                new.append(word[i])
                i += 1
        out[tuple(new)] = n
    return out


def merge_while(words, pair):
    return merge_walk(words, pair)


def merge_skip(words, pair):
    out = {}
    for word, n in words.items():
        new, skip = [], False
        for i, piece in enumerate(word):
            if skip:
                skip = False
            elif i + 1 < len(word) and (piece, word[i + 1]) == pair:
                new.append(piece + word[i + 1])
                skip = True
            else:
                new.append(piece)
        out[tuple(new)] = out.get(tuple(new), 0) + n
    return out


@pytest.mark.parametrize("fn", [merge_while, merge_skip, bpe.merge])
def test_merge_checker_accepts_right_answers(fn):
    result = checks.check_merge(fn)
    assert result.passed, str(result)


def merge_first_only(words, pair):
    """Merges the first occurrence of the pair in each word, and no other."""
    merged = {}
    for word, n in words.items():
        pieces = list(word)
        for i in range(len(pieces) - 1):
            if (pieces[i], pieces[i + 1]) == pair:
                pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
                break
        merged[tuple(pieces)] = n
    return merged


def merge_replace(words, pair):
    return {tuple(" ".join(w).replace(" ".join(pair), "".join(pair)).split()): n for w, n in words.items()}  # fmt: skip


def merge_overlapping(words, pair):
    out = {}
    for word, n in words.items():
        new, i = [], 0
        while i < len(word):  # forgets to step past the second piece
            new.append(word[i] + word[i + 1] if word[i : i + 2] == pair else word[i])
            i += 1
        out[tuple(new)] = n
    return out


def merge_pair_as_piece(words, pair):  # the pair itself, ("a", "b"), not the piece "ab"
    return merge_walk(words, pair, glue=False)


def merge_drops_last(words, pair):  # stops before the last piece, merged or not
    return merge_walk(words, pair, stop=1)


def merge_counts_one(words, pair):
    return {w: 1 for w in merge_while(words, pair)}


def merge_only_words_with_the_pair(words, pair):
    return {w: n for w, n in merge_while(words, pair).items() if w not in words}


def merge_in_place(words, pair):
    merged = merge_while(words, pair)
    words.clear()
    words.update(merged)
    return words


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (merge_first_only, "only the first occurrence"),
        (merge_replace, "merges across piece boundaries"),
        (merge_overlapping, "go on from i + 2"),
        (merge_counts_one, "counts changed"),
        (merge_only_words_with_the_pair, "is missing from your result"),
        (merge_in_place, "changed the words"),
        (merge_pair_as_piece, "('x', 'a', 'b') should become ('x', 'ab')"),
        (merge_drops_last, "a word's last piece is lost when no merge takes it"),
        (lambda words, pair: list(merge_while(words, pair)), "not a dict"),
    ],
)
def test_merge_checker_names_each_mistake(fn, expected):
    result = checks.check_merge(fn)
    assert not result.passed and expected in hints(result), str(result)


# --- learning loop -----------------------------------------------------------------------------


def learn_first_max(words, num_merges):
    merges = []
    for _ in range(num_merges):
        counts = bpe.pair_counts(words)
        if not counts or max(counts.values()) < 2:
            break
        pair = max(counts, key=counts.get)  # ties: the first pair counted
        merges.append(pair)
        words = bpe.merge(words, pair)
    return merges


def learn_min(words, num_merges):
    counts = bpe.pair_counts(words)
    return [min(counts, key=counts.get)]


def learn_no_update(words, num_merges):
    counts = bpe.pair_counts(words)
    return [max(counts, key=counts.get)] * 3


def learn_no_stop(words, num_merges):
    merges = []
    for _ in range(num_merges):
        counts = bpe.pair_counts(words)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], p))
        merges.append(pair)
        words = bpe.merge(words, pair)
    return merges


def learn_no_stop_at_all(words, num_merges):  # no stop rule and no guard: max() of nothing
    merges = []
    for _ in range(num_merges):
        counts = bpe.pair_counts(words)
        pair = max(counts, key=counts.get)
        merges.append(pair)
        words = bpe.merge(words, pair)
    return merges


def learn_no_empty_guard(words, num_merges):  # the stop rule, but max() before it
    merges = []
    for _ in range(num_merges):
        counts = bpe.pair_counts(words)
        pair = max(counts, key=counts.get)
        if counts[pair] < 2:
            break
        merges.append(pair)
        words = bpe.merge(words, pair)
    return merges


def learn_array_max(make_array):
    """The stop rule on an array of the counts (numpy or torch): its max() of no pairs crashes."""

    def learn(words, num_merges):
        merges = []
        for _ in range(num_merges):
            counts = bpe.pair_counts(words)
            pairs = list(counts)
            freq = make_array([counts[p] for p in pairs])
            if freq.max() < 2:
                break
            pair = pairs[int(freq.argmax())]
            merges.append(pair)
            words = bpe.merge(words, pair)
        return merges

    return learn


TOP_PAIR = {  # ways to take the most frequent pair, none guarded against an empty count
    "most_common [0]": lambda counts: counts.most_common(1)[0],
    "sorted [0]": lambda counts: sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[0],
}


def learn_most_common(top: str, stop: bool = True, guard: bool = False):
    """The loop with one of TOP_PAIR; ``guard``: it stops on an empty count (right)."""

    def learn(words, num_merges):
        merges = []
        for _ in range(num_merges):
            counts = Counter(bpe.pair_counts(words))
            if guard and not counts:
                break
            if top == "unpack":
                [(pair, n)] = counts.most_common(1)
            else:
                pair, n = TOP_PAIR[top](counts)
            if stop and n < 2:
                break
            merges.append(pair)
            words = bpe.merge(words, pair)
        return merges

    return learn


def learn_forgot_index(words, num_merges):  # stops on an empty count, but unpacks the list itself
    merges = []
    for _ in range(num_merges):
        counts = Counter(bpe.pair_counts(words))
        if not counts:
            break
        pair, n = counts.most_common(1)  # a list of one (pair, n): [0] is missing
        if n < 2:
            break
        merges.append(pair)
        words = bpe.merge(words, pair)
    return merges


def learn_without_items(words, num_merges):  # loops over the Counter's keys, not its items
    merges = []
    for _ in range(num_merges):
        best, top = None, 1
        for (a, b), n in bpe.pair_counts(words):
            if n > top:
                best, top = (a, b), n
        if best is None:
            break
        merges.append(best)
        words = bpe.merge(words, best)
    return merges


def learn_stops_at_one_pair(words, num_merges):  # "fewer than 2" applied to the number of pairs
    merges = []
    for _ in range(num_merges):
        counts = bpe.pair_counts(words)
        if len(counts) < 2 or max(counts.values()) < 2:
            break
        pair = max(counts, key=counts.get)
        merges.append(pair)
        words = bpe.merge(words, pair)
    return merges


def learn_with(count=bpe.pair_counts, merge=merge_while, extra=0, pick=None, mutate=False):
    """learn_first_max with one part swapped for a mistaken one."""

    def learn(words, num_merges):
        merges = []
        for _ in range(num_merges + extra):
            counts = count(words)
            if not counts:
                break
            pair = max(counts, key=counts.get)
            if counts[pair] < 2:
                break
            new = merge(words, pair)
            if mutate:
                words.clear()
                words.update(new)
            else:
                words = new
            merges.append(pick(counts, pair) if pick else pair)
        return merges

    return learn


def once_per_word(words):
    return Counter(
        pair for word, n in words.items() for pair in set(zip(word, word[1:])) for _ in range(n)
    )


def test_learn_checker_accepts_any_tie_breaking_and_says_which():
    exact = checks.check_learn_bpe(lambda words, n: bpe.learn_bpe({"".join(w): c for w, c in words.items()}, n))  # fmt: skip
    assert exact.passed and "equal to the tokenizers trainer's" in exact.verdict, str(exact)
    first = checks.check_learn_bpe(learn_first_max)
    assert first.passed, str(first)


@pytest.mark.parametrize("top", ["most_common [0]", "unpack", "sorted [0]"])
def test_learn_checker_accepts_each_way_to_take_the_top_pair(top):
    result = checks.check_learn_bpe(learn_most_common(top, guard=True))
    assert result.passed, str(result)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (learn_min, "least frequent"),
        (learn_no_update, "merged twice in a row"),
        (learn_no_stop, "occurs only once"),
        (learn_no_stop_at_all, "your loop ran out of pairs"),
        (learn_no_empty_guard, "no pair left too"),
        (learn_array_max(np.array), "no pair left too"),
        (learn_array_max(torch.tensor), "no pair left too"),
        (learn_most_common("most_common [0]"), "no pair left too"),
        (learn_most_common("unpack"), "no pair left too"),
        (learn_most_common("sorted [0]"), "no pair left too"),
        (learn_most_common("most_common [0]", stop=False), "your loop ran out of pairs"),
        (learn_forgot_index, "your code raised ValueError"),
        (lambda words, n: ["es", "est"], "list of merged pairs"),
        (lambda words, n: learn_first_max(words, n)[:3], "the corpus allows"),
        (learn_with(extra=1), "merges returned when num_merges=12"),
        (learn_with(mutate=True), "changed the words it was given"),
        (learn_with(pick=lambda counts, pair: (pair, counts[pair])), "not (pair, count)"),
        (learn_with(count=once_per_word), "each pair once per word"),
        (learn_with(merge=merge_replace), "count the pairs again"),
        (learn_with(merge=merge_first_only), "not two adjacent pieces"),
        (learn_without_items, "raised ValueError"),
        (learn_stops_at_one_pair, "it returned []; expected [('a', 'b')]"),
    ],
)
def test_learn_checker_names_each_mistake(fn, expected):
    result = checks.check_learn_bpe(fn)
    assert not result.passed and expected in hints(result), str(result)


def learn_peeks_at_the_runner_up(words, num_merges):  # unpacks the top two pairs, to see ties
    merges = []
    for _ in range(num_merges):
        counts = Counter(bpe.pair_counts(words))
        if not counts:
            break
        (pair, n), (_, runner_up) = counts.most_common(2)
        if n < 2:
            break
        merges.append(pair)
        words = bpe.merge(words, pair)
    return merges


def test_learn_checker_shows_a_crash_on_one_pair_as_the_students_not_as_running_out():
    """{('a', 'b'): 3} has one pair: unpacking two crashes before any merge. That is the student's
    own line to fix, not the loop running out of pairs after the one merge there is."""
    result = checks.check_learn_bpe(learn_peeks_at_the_runner_up)
    assert not result.passed and "your code raised ValueError" in result.verdict, str(result)
    assert "most_common(2)" in result.verdict and "got 1" in hints(result), str(result)
    assert "every word is one piece" not in hints(result), str(result)


def test_bpe_on_a_corpus_counts_the_steps_equal_to_the_trainer():
    texts = [checks.LEARN_TEXT, "Then the Thane there, thither, then; whether the weather"] * 3
    exact = checks.check_bpe_on_corpus(lambda words, n: bpe.learn_bpe({"".join(w): c for w, c in words.items()}, n), texts, 40)  # fmt: skip
    assert exact.passed and "equal to the tokenizers trainer's" in exact.verdict, str(exact)
    first = checks.check_bpe_on_corpus(learn_first_max, texts, 40)
    want = bpe.learn_bpe(texts, 40)
    agree = sum(a == b for a, b in zip(learn_first_max(bpe.as_corpus(texts), 40), want))
    assert first.passed, str(first)
    if agree < len(want):
        assert f"at {agree} of {len(want)} steps" in first.verdict, str(first)
    wrong = checks.check_bpe_on_corpus(learn_min, texts, 40)
    assert not wrong.passed and "least frequent" in hints(wrong), str(wrong)


# --- masking -----------------------------------------------------------------------------------


def mask_bernoulli(ids, special, mask_id, random_ids, g, how="right"):
    """transformers' recipe, with a switch for each mistake."""
    inputs = ids if how == "in place" else ids.clone()
    labels = ids.clone()
    pick = torch.randint(len(random_ids), ids.shape, generator=g)  # drawn first: as good as last
    p = {"rate 0.5": 0.5, "rate 0.85": 0.85}.get(how, 0.15)
    chance = torch.full(ids.shape, p)
    if how == "special by id":  # the specials taken to be the smallest ids
        chance = chance.masked_fill(ids < 5, 0.0)
    elif how != "special chosen":
        chance = chance.masked_fill(special, 0.0)
    chosen = torch.bernoulli(chance, generator=g).bool()
    if how == "inverted labels":
        labels[chosen] = -100
    elif how != "labels everywhere":
        labels[~chosen] = -100
    to_mask = torch.bernoulli(torch.full(ids.shape, 0.8), generator=g).bool()
    if how != "split on all":
        to_mask &= chosen
    inputs[to_mask] = {"mask id 4": 4, "mask id 103": 103}.get(how, mask_id)
    if how == "labels after [MASK]":
        labels = torch.where(chosen, inputs, -100)
    rest = {"random 0.1": 0.1, "random rest": 1.0}.get(how, 0.5)
    to_random = torch.bernoulli(torch.full(ids.shape, rest), generator=g).bool() & ~to_mask
    if how not in ("split on all", "random anywhere"):
        to_random &= chosen
    if how == "random range":  # one range from the smallest to the largest allowed id
        pick = torch.randint(
            int(random_ids.min()), int(random_ids.max()) + 1, ids.shape, generator=g
        )
        inputs[to_random] = pick[to_random]
    else:
        inputs[to_random] = (
            pick[to_random] if how == "random positions" else random_ids[pick][to_random]
        )
    if how == "labels replaced":
        labels = torch.where(chosen, inputs, -100)
    if how == "labels only masked":
        labels[~to_mask] = -100
    return (labels, inputs) if how == "swapped" else (inputs, labels)


def mask_rand_where(ids, special, mask_id, random_ids, g):
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    u = torch.rand(ids.shape, generator=g)
    random = random_ids[torch.randint(len(random_ids), ids.shape, generator=g)]
    inputs = torch.where(chosen & (u < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random, inputs)
    return inputs, labels


def mask_masked_fill(ids, special, mask_id, random_ids, g):
    chosen = torch.bernoulli(torch.full(ids.shape, 0.15), generator=g).bool() & ~special
    labels = ids.masked_fill(~chosen, -100)
    masked = chosen & (torch.rand(ids.shape, generator=g) < 0.8)
    random = chosen & ~masked & (torch.rand(ids.shape, generator=g) < 0.5)
    inputs = ids.masked_fill(masked, mask_id)
    draws = random_ids[torch.randint(0, random_ids.numel(), ids.shape, generator=g)]
    return torch.where(random, draws, inputs), labels


def mask_global_rng(ids, special, mask_id, random_ids, g):
    return mask_bernoulli(ids, special, mask_id, random_ids, None)


def mask_own_generator(ids, special, mask_id, random_ids, g):
    g = torch.Generator().manual_seed(0)  # seeded here: the caller's generator is ignored
    return mask_bernoulli(ids, special, mask_id, random_ids, g)


def mask_float_labels(ids, special, mask_id, random_ids, g):
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & ~special
    labels = torch.where(chosen, ids, -100.0)  # a float -100.0 makes the labels float
    u = torch.rand(ids.shape, generator=g)
    random = random_ids[torch.randint(len(random_ids), ids.shape, generator=g)]
    inputs = torch.where(chosen & (u < 0.8), mask_id, ids)
    return torch.where(chosen & (u >= 0.8) & (u < 0.9), random, inputs), labels


def mask_whole_vocabulary(ids, special, mask_id, random_ids, g):
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & ~special
    labels = torch.where(chosen, ids, -100)
    u = torch.rand(ids.shape, generator=g)
    random = torch.randint(30522, ids.shape, generator=g)  # bert-base's vocabulary size
    inputs = torch.where(chosen & (u < 0.8), mask_id, ids)
    return torch.where(chosen & (u >= 0.8) & (u < 0.9), random, inputs), labels


def mask_inputs_only(*args):  # the labels are not returned
    return mask_bernoulli(*args)[0]


def mask_chosen_labels(*args):  # only the chosen positions' labels, flattened
    inputs, labels = mask_bernoulli(*args)
    return inputs, labels[labels != -100]


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (mask_own_generator, "a different generator gave the same result"),
        (mask_float_labels, "labels has dtype torch.float32"),
        (mask_whole_vocabulary, "some random tokens are not in random_ids"),
        (mask_inputs_only, "return two tensors, (inputs, labels)"),
        (mask_chosen_labels, "expected a tensor shaped like input_ids"),
    ],
)
def test_masking_checker_names_what_it_returns_and_where_it_draws(fn, expected):
    result = checks.check_masking(fn)
    assert not result.passed and expected in result.verdict, str(result)


def mask_reference(ids, special, mask_id, random_ids, g):
    from helpers.tokenization.mlm import mask_tokens

    return mask_tokens(ids, special, mask_id, 0, generator=g, random_ids=random_ids)


@pytest.mark.parametrize(
    "fn",
    [mask_bernoulli, mask_rand_where, mask_masked_fill, mask_reference],
    ids=lambda f: f.__name__,
)
def test_masking_checker_accepts_right_answers(fn):
    result = checks.check_masking(fn)
    assert result.passed, str(result)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("special chosen", "special or padding positions were chosen"),
        ("labels everywhere", "labels on every position"),
        ("inverted labels", "labels are inverted"),
        ("random positions", "random tokens drawn from special ids"),
        ("split on all", "80/10/10 split is applied to all tokens"),
        ("rate 0.5", "wrong rate"),
        ("labels replaced", "labels hold the replaced ids"),
        ("in place", "changed input_ids"),
        ("random 0.1", "too few random tokens"),
        ("labels only masked", "labels only at the [MASK]ed tokens"),
        ("rate 0.85", "probability 1 - 0.15"),
        ("swapped", "wrong order"),
        ("random anywhere", "replaced but have label -100"),
        ("mask id 4", "[MASK] written as a fixed id"),
        ("random range", "not in random_ids"),
        ("mask id 103", "became id 103, not mask_id (4): [MASK] written as a fixed id"),
        ("labels after [MASK]", "the label is not the original id"),
        ("random rest", "nothing is left unchanged"),
        ("special by id", "decide from special_mask, never from the id values"),
    ],
)
def test_masking_checker_names_each_mistake(how, expected):
    def fn(*args):
        return mask_bernoulli(*args, how=how)

    result = checks.check_masking(fn)
    assert not result.passed and expected in hints(result), str(result)


def test_masking_checker_names_a_missing_generator_and_a_stub():
    result = checks.check_masking(mask_global_rng)
    assert not result.passed and "generator=generator" in hints(result), str(result)

    def stub(*args):
        raise NotImplementedError("choose 15% of the positions")

    assert checks.check_masking(stub).not_implemented


# --- rescaling the embeddings ------------------------------------------------------------------

TABLES = ("word", "position", "token_type")


def rescale_div(emb, std):
    factor = emb.word.weight.std().item() / std
    with torch.no_grad():
        for table in (emb.word, emb.position, emb.token_type):
            table.weight.div_(factor)
    return factor


def rescale_data(emb, std):
    factor = emb.word.weight.detach().std() / std  # a 0-d tensor, returned as such
    for name in TABLES:
        table = getattr(emb, name)
        table.weight.data = table.weight.data / factor
    return factor


def rescale_copy_biased(emb, std):
    factor = (
        float(emb.word.weight.detach().std(unbiased=False)) / std
    )  # the population std: 0.1% off
    with torch.no_grad():
        for name in TABLES:
            w = getattr(emb, name).weight
            w.copy_(w / factor)
    return factor


def rescale_reference(emb, std):
    from helpers.bert.mlm import rescale_embeddings

    return rescale_embeddings(emb, std)


@pytest.mark.parametrize(
    "fn",
    [rescale_div, rescale_data, rescale_copy_biased, rescale_reference],
    ids=lambda f: f.__name__,
)
def test_rescale_checker_accepts_right_answers(fn):
    from helpers.checks import pretraining

    result = pretraining.check_rescale(fn)
    assert result.passed, str(result)


def rescale_wrong(emb, std, how):
    factor = emb.word.weight.std().item() / std
    tables = (
        ("word",) if how == "word only" else ("word", "position") if how == "no segment" else TABLES
    )
    with torch.no_grad():
        for name in tables:
            w = getattr(emb, name).weight
            if how == "multiplied":
                w.mul_(factor)
            elif how == "per table":
                w.div_(w.std().item() / std)
            elif how == "copies":
                w = w / factor  # a new tensor; the module keeps its table
            elif how == "factor in loop":
                w.div_(emb.word.weight.std().item() / std)  # 1 once the word table is divided
            elif how == "inverse":
                w.div_(1 / factor)  # std / std(word)
            elif how == "by std":
                w.div_(factor * std)  # divided by the old standard deviation: std 1
            else:
                w.div_(factor)
        if how == "norm too":
            emb.norm.weight.div_(factor)
    if how == "new parameter":
        emb.word.weight = torch.nn.Parameter(emb.word.weight.detach() * 1.0)
    if how == "no grad":
        emb.word.weight.div_(1.0)  # outside no_grad: autograd refuses
    return {"no return": None, "returns std": std}.get(how, factor)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("word only", "position (and perhaps segment) table was left"),
        ("factor in loop", "computed once before dividing any"),
        ("no segment", "segment table (token_type) was left"),
        ("per table", "each table was brought to the standard deviation on its own"),
        ("multiplied", "multiplied by the factor"),
        ("inverse", "divided by its inverse"),
        ("copies", "change the module's tables, not copies"),
        ("by std", "not 0.02"),
        ("norm too", "LayerNorm's weight or bias changed"),
        ("new parameter", "would keep the old, unscaled table"),
        ("no grad", "a weight that requires gradients"),
        ("no return", "returned None: did you forget `return`?"),
        ("returns std", "return the factor std(word) / std"),
    ],
)
def test_rescale_checker_names_each_mistake(how, expected):
    from helpers.checks import pretraining

    result = pretraining.check_rescale(lambda emb, std: rescale_wrong(emb, std, how))
    assert not result.passed and expected in hints(result), str(result)


def rescale_standardised(emb, std):
    """Standardised like a data column: each table's per-feature mean removed, then one factor."""
    with torch.no_grad():
        for name in TABLES:
            w = getattr(emb, name).weight
            w.sub_(w.mean(dim=0))
        factor = emb.word.weight.std().item() / std
        for name in TABLES:
            getattr(emb, name).weight.div_(factor)
    return factor


def test_rescale_checker_names_tables_changed_beyond_the_one_factor():
    """The word table reaches 0.02 and all three shrink by one factor, but the per-feature means
    removed first shift every token's vector: the LayerNorm's output changes."""
    from helpers.checks import pretraining

    result = pretraining.check_rescale(rescale_standardised)
    assert not result.passed and "the embeddings' output changed" in result.verdict, str(result)
    assert "by one factor, nothing else" in hints(result), str(result)


def test_a_tensor_factor_that_requires_grad_passes_without_a_warning():
    """`factor = emb.word.weight.std() / std` (no .item()) is a right answer: no PyTorch warning
    about converting a tensor that requires grad may appear under the pass."""
    import warnings

    from helpers.checks import pretraining

    def rescale_tensor(emb, std):
        factor = emb.word.weight.std() / std  # requires grad
        with torch.no_grad():
            for name in TABLES:
                getattr(emb, name).weight.div_(factor)
        return factor

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = pretraining.check_rescale(rescale_tensor)
    assert result.passed, str(result)


def test_rescale_checker_names_a_stub():
    from helpers.checks import pretraining

    def stub(emb, std):
        raise NotImplementedError("divide the three tables by one factor")

    assert pretraining.check_rescale(stub).not_implemented
