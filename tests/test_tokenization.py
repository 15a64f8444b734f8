"""helpers.tokenization: BERT's masking (rates, specials, labels, same as transformers' collator), tokenizers
trained with `tokenizers` that save and load through transformers, and BPE written out equal to the
`tokenizers` BPE trainer."""

import ast
import unicodedata
from pathlib import Path

import pytest
import torch

from helpers.tokenization import bpe
from helpers.tokenization.mlm import (
    IGNORE,
    continuation_ids,
    mask_tokens,
    non_special_ids,
    special_tokens_mask,
    whole_word_choice,
)

PAD, UNK, CLS, SEP, MASK = range(5)
SPECIALS = [PAD, UNK, CLS, SEP, MASK]
V = 60

TEXTS = [
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles",
    "And by opposing end them. To die: to sleep;",
    "No more; and by a sleep to say we end",
] * 3


def batch(B: int = 64, T: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] words [SEP] [PAD]…, rows of different lengths; (ids, special mask)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    lengths = torch.randint(T // 3, T + 1, (B,), generator=g)
    for row, n in enumerate(lengths.tolist()):
        ids[row, 0], ids[row, n - 1], ids[row, n:] = CLS, SEP, PAD
    return ids, special_tokens_mask(ids, SPECIALS)


# --- masking -----------------------------------------------------------------------------------


def test_the_ignored_label_is_one_constant():
    """-100 (cross-entropy's "no target") is written once, as ``tokenization.mlm.IGNORE``; every
    other module imports it, so no copy can drift."""
    import helpers

    root = Path(helpers.__file__).parent
    written = [
        f"{path.relative_to(root).as_posix()}:{node.lineno}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant) and node.operand.value == 100
    ]  # fmt: skip
    assert [w.split(":")[0] for w in written] == ["tokenization/mlm.py"] and IGNORE == -100, written


def test_special_tokens_mask_and_non_special_ids():
    ids = torch.tensor([[CLS, 7, 8, SEP, PAD]])
    assert special_tokens_mask(ids, SPECIALS).tolist() == [[True, False, False, True, True]]
    assert non_special_ids(8, SPECIALS).tolist() == [5, 6, 7]


def test_masking_rates_specials_and_labels():
    ids, special = batch(B=256)
    original = ids.clone()
    allowed = non_special_ids(V, SPECIALS)
    g = torch.Generator().manual_seed(1)
    inputs, labels = mask_tokens(ids, special, MASK, V, generator=g, random_ids=allowed)
    assert torch.equal(ids, original), "input_ids must not change"
    chosen = labels != IGNORE
    assert not chosen[special].any() and torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[chosen], ids[chosen])  # the originals, at the chosen positions only
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    rate = chosen.sum() / (~special).sum()
    assert abs(rate - 0.15) < 0.02, rate  # ~15,000 real tokens: sd 0.003
    n = chosen.sum()
    masked = (inputs[chosen] == MASK).sum() / n
    kept = (inputs[chosen] == ids[chosen]).sum() / n
    assert abs(masked - 0.8) < 0.04 and abs(kept - 0.1) < 0.04, (masked, kept)  # sd ~0.008
    replaced = chosen & (inputs != MASK) & (inputs != ids)
    assert abs(replaced.sum() / n - 0.1 * (1 - 1 / (V - 5))) < 0.04
    assert not torch.isin(inputs[replaced], torch.tensor(SPECIALS)).any()


def test_masking_is_deterministic_with_a_generator_and_draws_from_random_ids():
    ids, special = batch()
    first = mask_tokens(ids, special, MASK, V, generator=torch.Generator().manual_seed(3))
    again = mask_tokens(ids, special, MASK, V, generator=torch.Generator().manual_seed(3))
    other = mask_tokens(ids, special, MASK, V, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])
    inputs, _ = mask_tokens(
        ids, special, MASK, V, prob=1.0
    )  # default: not [MASK], not the batch's specials
    replaced = (inputs != MASK) & (inputs != ids)
    assert not torch.isin(inputs[replaced], torch.tensor([MASK, CLS, SEP, PAD])).any()
    only = torch.tensor([42])
    inputs, labels = mask_tokens(ids, special, MASK, V, prob=1.0, random_ids=only)
    replaced = (inputs != MASK) & (inputs != ids)
    assert replaced.any() and (inputs[replaced] == 42).all()
    assert (labels[~special] == ids[~special]).all()  # prob=1: every real token chosen


def test_masking_is_transformers_collator_exactly():
    from transformers import DataCollatorForLanguageModeling

    from helpers.tokenization.train import train_wordpiece

    tok = train_wordpiece(TEXTS, 60, min_frequency=1)
    ids, _ = batch(B=8, T=32)
    ids = ids % len(tok)
    special = special_tokens_mask(ids, tok.all_special_ids)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    torch.manual_seed(0)
    theirs = collator.torch_mask_tokens(ids.clone(), special.long())
    torch.manual_seed(0)
    ours = mask_tokens(ids, special, tok.mask_token_id, len(tok), random_ids=torch.arange(len(tok)))
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_masking_says_what_is_wrong_with_its_inputs():
    ids, special = batch(B=2, T=8)
    with pytest.raises(ValueError, match="one entry per token"):
        mask_tokens(ids, special[:, :4], MASK, V)
    with pytest.raises(ValueError, match="between 0 and 1"):
        mask_tokens(ids, special, MASK, V, prob=15)


def test_whole_words_are_chosen_with_all_their_pieces_at_the_rate():
    ids, special = batch(B=256)
    continues = torch.arange(V) >= 40  # ids 40..59 continue a word ("##...")
    chosen = whole_word_choice(ids, special, continues, 0.15, torch.Generator().manual_seed(2))
    assert not chosen[special].any()
    starts = ~continues[ids] | special
    words = 0
    for row in range(len(ids)):
        cuts = starts[row].nonzero().flatten().tolist() + [ids.shape[1]]
        for a, b in zip(cuts, cuts[1:]):
            if not special[row, a]:
                words += 1
                assert chosen[row, a:b].all() or not chosen[row, a:b].any(), (row, a, b)
    picked = sum(
        int(chosen[row, a])
        for row in range(len(ids))
        for a in starts[row].nonzero().flatten().tolist()
    )
    assert abs(picked / words - 0.15) < 0.02, picked / words  # ~10,000 words: sd 0.004
    assert chosen[
        continues[ids] & ~special
    ].any()  # pieces are chosen with their word, not left out
    inputs, labels = mask_tokens(ids, special, MASK, V, chosen=chosen, generator=torch.Generator())
    assert torch.equal(labels != IGNORE, chosen) and torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_whole_word_pieces_come_from_the_tokenizer_and_a_bad_choice_is_named():
    from helpers.tokenization.train import train_wordpiece

    tok = train_wordpiece(TEXTS, 60, min_frequency=1)
    continues = continuation_ids(tok)
    ids = tok("outrageous troubles", add_special_tokens=False)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert any(p.startswith("##") for p in pieces), pieces  # a small vocabulary splits these words
    assert continues[ids].tolist() == [p.startswith("##") for p in pieces]
    assert not continues[tok.all_special_ids].any()
    ids, special = batch(B=2, T=8)
    with pytest.raises(ValueError, match="chooses a special token"):
        mask_tokens(ids, special, MASK, V, chosen=special)
    with pytest.raises(ValueError, match="one entry per token"):
        mask_tokens(ids, special, MASK, V, chosen=special[:, :4])


def test_a_piece_opening_a_row_or_following_cls_is_a_word_of_its_own():
    """Packing can cut a word in two: its pieces at a row's start, or after [CLS], form a word."""
    continues = torch.arange(V) >= 40
    rows = torch.tensor([[41, 42, 7, 43, SEP], [CLS, 44, 45, 8, SEP]]).repeat(500, 1)  # (1000, 5)
    special = special_tokens_mask(rows, SPECIALS)
    chosen = whole_word_choice(rows, special, continues, 0.5, torch.Generator().manual_seed(0))
    opening, after_cls = chosen[::2], chosen[1::2]  # (500, 5) each
    assert torch.equal(opening[:, 0], opening[:, 1]) and torch.equal(opening[:, 2], opening[:, 3])
    assert torch.equal(after_cls[:, 1], after_cls[:, 2]) and not after_cls[:, 0].any()
    for first, word in ((opening[:, 0], opening[:, 2]), (after_cls[:, 1], after_cls[:, 3])):
        apart = (first != word).float().mean()  # independent draws differ half the time
        assert 0.4 < apart < 0.6, apart


# --- trained tokenizers ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
@pytest.mark.parametrize("lowercase", [True, False])
def test_trained_tokenizer_saves_and_loads_through_transformers(kind, lowercase, tmp_path):
    from transformers import AutoTokenizer

    from helpers.tokenization import train

    make = train.train_wordpiece if kind == "wordpiece" else train.train_bpe
    tok = make(TEXTS, 120, lowercase=lowercase, min_frequency=1)
    assert tok.convert_ids_to_tokens(list(range(5))) == train.SPECIAL_TOKENS
    assert (tok.pad_token_id, tok.mask_token_id) == (0, 4)
    pair = (["To be, or NOT to be", "a sea"], ["that is the question", "of troubles"])
    enc = tok(*pair, padding=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    assert enc["token_type_ids"][0][-1] == 1 and enc["input_ids"][1][-1] == 0  # B is type 1; padded
    assert ("not" in tokens) == lowercase
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(*pair, padding=True) == enc


def test_fertility_and_read_lines(tmp_path):
    from helpers.tokenization.train import fertility, read_lines, train_wordpiece

    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS[:6]) + "\n\n   \n", encoding="utf-8")
    lines = read_lines(path)
    assert lines == TEXTS[:6]
    tok = train_wordpiece(lines, 400, min_frequency=1)  # every word becomes a piece of its own
    words = sum(len(t.split()) for t in lines)
    punctuation = sum(t.count(c) for t in lines for c in ",:.;'")
    assert fertility(tok, lines) == pytest.approx((words + punctuation) / words)
    with pytest.raises(ValueError, match="empty"):
        fertility(tok, ["", " "])


def test_wordpiece_training_is_deterministic_and_its_pieces_are_not_special():
    """The bare `tokenizers` trainer numbers "##" pieces in hash-map order; train_wordpiece does not."""
    import random

    from helpers.tokenization.train import SPECIAL_TOKENS, train_wordpiece

    rng = random.Random(0)
    words = ["".join(rng.choices("abcdefghijklmnop", k=rng.randint(2, 7))) for _ in range(300)]
    texts = [" ".join(rng.choices(words, k=12)) for _ in range(400)]  # many equally frequent pairs
    vocabs = [train_wordpiece(texts, 300).get_vocab() for _ in range(4)]
    assert all(v == vocabs[0] for v in vocabs[1:])
    tok = train_wordpiece(texts, 300)
    assert sorted(tok.all_special_tokens) == sorted(SPECIAL_TOKENS)
    pieces = tok.tokenize(texts[0])
    assert any(p.startswith("##") for p in pieces) and "[UNK]" not in pieces
    assert tok.decode(tok(texts[0])["input_ids"], skip_special_tokens=True) == texts[0]


def test_vocab_size_is_checked():
    from helpers.tokenization.train import train_bpe

    with pytest.raises(ValueError, match="at least 32"):
        train_bpe(TEXTS, 10)


# --- BPE written out ---------------------------------------------------------------------------


def tokenizers_bpe(texts, num_merges: int, lowercase: bool = False):
    """The `tokenizers` BPE trainer with bpe's settings: Whitespace pre-tokeniser, no word marker."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = {ch for word in bpe.word_counts(texts, lowercase) for ch in word}
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + num_merges, min_frequency=2, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def test_pair_counts_and_merge():
    words = {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("a", "a", "a"): 1}
    assert bpe.pair_counts(words) == {("l", "o"): 7, ("o", "w"): 7, ("w", "e"): 2, ("e", "r"): 2,
                                      ("a", "a"): 2}  # fmt: skip
    assert bpe.merge(words, ("a", "a")) == {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2,
                                            ("aa", "a"): 1}  # fmt: skip
    assert bpe.learn_bpe({"low": 5, "lower": 2, "aaa": 1}, 10) == [("l", "o"), ("lo", "w"), ("a", "a"), ("e", "r"), ("low", "er")]  # fmt: skip


def test_ties_go_to_the_tokens_that_entered_the_vocabulary_first():
    # ties: "B" < "a" < "c" by code point; the character "x" before the merged token "ab"
    assert bpe.learn_bpe(["ab ab Ba Ba ca ca"], 3) == [("B", "a"), ("a", "b"), ("c", "a")]
    assert bpe.learn_bpe(["abx abx abx xab xab xab"], 3) == [("a", "b"), ("x", "ab"), ("ab", "x")]


@pytest.mark.parametrize("lowercase", [False, True])
def test_learn_bpe_equals_the_tokenizers_trainer_on_a_small_corpus(lowercase):
    from helpers.tokenization.train import bpe_merges

    theirs = bpe_merges(tokenizers_bpe(TEXTS, 200, lowercase))
    assert len(theirs) > 50
    assert bpe.learn_bpe(TEXTS, 200, lowercase=lowercase) == theirs


@pytest.mark.parametrize(
    "text, lowercase",
    [("café café naïve naïve résumé résumé", False),  # written as letter + combining accent (NFD)
     ("x² x² m³ m³ x2 x2", False),  # a superscript digit is no word character in Rust's classes
     ("a‿b a‿b a‿b a_b a_b", False),  # nor is only "_" a connector
     ("İstanbul İstanbul ISTANBUL ISTANBUL", True)],  # İ lowercases to i + a combining dot
    ids=["combining-accents", "superscripts", "connectors", "dotted-capital-i"],
)  # fmt: skip
def test_learn_bpe_cuts_words_as_the_library_does_beyond_ascii(text, lowercase):
    """Python's \\w differs from the Rust regex behind the Whitespace pre-tokeniser on combining
    marks, superscripts and connectors: cut with `re`, the merges differed from the first one."""
    from helpers.tokenization.train import bpe_merges

    texts = [unicodedata.normalize("NFD", text)]
    assert bpe.learn_bpe(texts, 30, lowercase=lowercase) == bpe_merges(
        tokenizers_bpe(texts, 30, lowercase)
    )


def test_learn_bpe_equals_the_tokenizers_trainer_on_tiny_shakespeare(shared_data):
    from helpers.tokenization.train import bpe_merges, read_lines

    texts = read_lines(shared_data / "corpus" / "tinyshakespeare.txt")[:300]
    tok = tokenizers_bpe(texts, 300)
    ours = bpe.learn_bpe(texts, 300)
    assert ours == bpe_merges(tok) and len(ours) == 300
    words = list(bpe.word_counts(texts))[:200] + ["questioning", "Shakespeare", "unkindness"]
    for word in words:  # segment = the BPE model's tokenisation with these merges
        assert bpe.segment(word, ours) == [t.value for t in tok.model.tokenize(word)], word


def test_train_bpe_learns_the_same_merges():
    from helpers.tokenization.train import bpe_merges, train_bpe

    tok = train_bpe(TEXTS, 150)
    assert bpe_merges(tok) == bpe.learn_bpe(TEXTS, 1000, lowercase=True)[: len(bpe_merges(tok))]


def test_segmentations_by_step():
    merges = bpe.learn_bpe(TEXTS, 40)
    steps = bpe.segmentations_by_step(["question", "nobler"], merges)
    assert len(steps) == len(merges) + 1
    assert steps[0]["nobler"] == list("nobler")
    for k in (0, 7, len(merges)):
        assert steps[k]["question"] == bpe.segment("question", merges[:k])
    assert len(steps[-1]["question"]) < len("question")


def test_read_lines_names_the_line_that_is_not_utf8_and_drops_a_bom(tmp_path):
    """The byte offset came from one 8 KiB decode chunk (7,272 for a byte at 89,192), with no line."""
    from helpers.tokenization.train import read_lines

    path = tmp_path / "latin.txt"
    path.write_bytes("\ufeffone\n".encode() + b"two\n" * 3000 + b"caf\xe9\n")
    with pytest.raises(ValueError, match=r"byte 0xe9 at line 3002, byte 4 \(offset 12010\)"):
        read_lines(path)
    path.write_bytes("\ufeffone\ntwo\n".encode())
    assert read_lines(path) == ["one", "two"]
    path.write_bytes(
        "a review\x85 still one line\r\nnext\rlast\n".encode()
    )  # 127 IMDB reviews hold \x85
    assert read_lines(path) == ["a review\x85 still one line", "next", "last"]


def test_default_random_replacements_never_draw_the_mask_token():
    """Catches the default random ids forgetting to leave out [MASK] (replacements would then add
    to the 80% masked). Ids 0-3 are real tokens, 4 is [MASK], 5 is [PAD]."""
    ids = torch.randint(0, 4, (400, 250), generator=torch.Generator().manual_seed(0))
    ids[:, -1] = 5
    special = ids == 5
    g = torch.Generator().manual_seed(1)
    inputs, labels = mask_tokens(ids, special, 4, 6, prob=1.0, generator=g)
    chosen = labels != -100
    masked = (inputs[chosen] == 4).float().mean().item()
    assert abs(masked - 0.8) < 0.006, masked  # ~100,000 chosen: sd 0.0013; the bug gives 0.82
