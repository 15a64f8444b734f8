"""Numbers students see in notebooks 01-07 that the other tests left unpinned: the GloVe vocabulary's
singletons, held-out splits that must not share a line or a sentence, the per-sentence loss, the dev
windows and masks fixed or renewed where they should be, positional encodings, max pooling, word
dropout, and the whole-word rule of the SST-2 leak search."""

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from helpers import attention as att
from helpers import masking
from helpers.classifier import MyTransformer, masked_max, sinusoidal_positions
from helpers.corpora import synthetic_text
from helpers.finetune.splits import complete_sentences, hold_out, leaking_rows
from helpers.glove import Glove, align
from helpers.gpt import GPTRunConfig, Vocab, build_corpus, train
from helpers.gpt import runs as gpt_runs
from helpers.gpt.runs import sentence_losses
from helpers.minbert.data import Example, carve_dev, same_text
from helpers.mlm import MlmConfig, pack, pretrain, split_eval
from helpers.mlm import runs as mlm_runs

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


# --- notebook 01-02 ---------------------------------------------------------------------------------


def test_loss_along_query_at_offset_zero_is_the_squared_error_of_part_b():
    """Catches the curve's loss averaged over the output's components instead of summed: the plot
    would disagree with ``squared_error`` at the query itself."""
    q, k, v = att.COURSE_QUERY, att.COURSE_KEYS, att.COURSE_VALUES
    offsets, losses = att.loss_along_query(att.raw_softmax_attention, q, k, v, v[1], 0, 1.0, 5)
    assert offsets[2] == 0
    want = att.squared_error(att.raw_softmax_attention(q, k, v), v[1])
    torch.testing.assert_close(losses[2], want)


def test_real_word_share_reads_the_training_text_in_any_case():
    """Catches the training text's words taken in their own case: "ROMEO" and "Speaks" would not
    count as real words, and the share of real words would come out too low."""
    assert masking.real_word_share("romeo speaks", "ROMEO:\nSpeaks softly.") == 1.0


def test_char_lm_validates_on_the_last_tenth_only(monkeypatch):
    """Catches validation windows cut from the training text: the validation loss would measure
    memory, not generalisation."""
    seen = []
    real = masking.windows

    def spy(data, count, *args):
        seen.append((count, data.clone()))
        return real(data, count, *args)

    monkeypatch.setattr(masking, "windows", spy)
    text = "ab" * 180 + "cd" * 20  # training text: a and b only; the last tenth: c and d only
    masking.train_char_lm(
        text, masking.STYLES[0], steps=2, block_size=8, embed_dim=16, batch_size=4, progress=False
    )
    valid = [data for count, data in seen if count == 4]  # 4 validation batches; 1 per round
    trained = [data for count, data in seen if count != 4]
    assert len(valid) == 1 and set(valid[0].tolist()) == {2, 3}  # ids of c and d
    assert trained and all(set(d.tolist()) <= {0, 1} for d in trained)


# --- notebook 03 ------------------------------------------------------------------------------------


def test_align_keeps_words_seen_exactly_min_count_times():
    """Catches the frequency cut made strict: with the default min_count=1 every word seen once
    would lose its GloVe vector (and the vocabulary and coverage would shrink)."""
    glove = Glove(["a", "b", "c"], np.eye(3, dtype=np.float32))
    counts = {"a": 1, "b": 2, "zz": 5}
    assert align(glove, counts).vocab.itos[2:] == ["b", "a"]
    assert align(glove, counts, min_count=2).vocab.itos[2:] == ["b"]


@pytest.mark.parametrize("dim", [6, 5])
def test_sinusoidal_positions_follow_the_paper(dim):
    """Catches a wrong frequency (i instead of 2i in the exponent) or sine in the odd columns:
    PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d))."""
    want = torch.zeros(4, dim)
    for p in range(4):
        for c in range(dim):
            angle = p / 10000 ** ((c - c % 2) / dim)
            want[p, c] = math.sin(angle) if c % 2 == 0 else math.cos(angle)
    torch.testing.assert_close(sinusoidal_positions(4, dim), want)


def test_masked_max_of_negative_features_ignores_padding():
    """Catches padding filled with 0 instead of -inf before the max: a feature negative on every
    real token would pool to 0."""
    x = torch.tensor([[[-3.0, 2.0], [-1.0, -5.0], [9.0, 9.0]]])  # (1, 3, 2); the last is padding
    mask = torch.tensor([[True, True, False]])
    assert masked_max(x, mask).tolist() == [[-1.0, 2.0]]


def test_word_dropout_drops_the_given_share_of_words():
    """Catches the keep test flipped (words kept with probability p, not 1 - p): invisible at
    p = 0.5, where the other test looks."""
    torch.manual_seed(0)
    model = MyTransformer(torch.randn(20, 8), max_len=64, dropout=0.0, word_dropout=0.2)
    ids, mask = torch.randint(1, 20, (8, 64)), torch.ones(8, 64, dtype=torch.bool)
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    model.train()(ids, mask)
    words = seen[-1] - model.positions[:64]  # what the embedding layer passed on
    zeroed = (words.abs().amax(-1) < 1e-6).float().mean().item()
    assert 0.1 < zeroed < 0.3


# --- notebook 04: the leak-free SST-2 splits --------------------------------------------------------


def test_leak_search_matches_whole_words_only():
    """Catches the text matched without word boundaries: "he cat" inside "the cat", or "cat sat"
    inside "bobcat sat", would drop training rows that share no phrase with dev."""
    held = ["the cat sat .", "he is here .", "he was ."]  # "he" is common, "cat" rare
    assert leaking_rows(["he cat"], held) == set()
    assert leaking_rows(["the cat and the bobcat sat ."], ["cat sat"]) == set()
    assert leaking_rows(["the cat sat on it ."], ["cat sat"]) == {0}


def test_a_sentence_of_exactly_five_words_is_complete():
    """Catches the length rule off by one: "at least 5 words" must keep a five-word sentence."""
    assert complete_sentences(["it is very good .", "too short ."]) == [0]


def test_hold_out_draws_its_sentences_with_the_generator_it_is_given():
    """Catches the generator ignored (the first n complete sentences held out): dev would be the
    same rows whatever the seed, and the start of the file."""
    rows = [{"sentence": f"film number {i} is good ."} for i in range(20)]
    draws = {
        tuple(r["sentence"] for r in hold_out(rows, "sentence", 3, random.Random(s))[1])
        for s in range(5)
    }
    assert len(draws) > 1
    again = hold_out(rows, "sentence", 3, random.Random(1))[1]
    assert again == hold_out(rows, "sentence", 3, random.Random(1))[1]


def test_hold_out_holds_a_repeated_sentence_out_once():
    """Every row of a repeated sentence was in the pool: 2 held out could be one sentence twice."""
    rows = [{"sentence": "a b c d e ."}, {"sentence": "a b c d e ."}, {"sentence": "f g h i j ."}]
    for seed in range(20):
        kept, held, dropped = hold_out(rows, "sentence", 2, random.Random(seed))
        assert sorted(r["sentence"] for r in held) == ["a b c d e .", "f g h i j ."]
        assert kept == [] and dropped == 1  # the second copy leaks into dev: dropped
    with pytest.raises(ValueError, match="only 2 complete sentences to hold 3 out from"):
        hold_out(rows, "sentence", 3, random.Random(0))


# --- notebook 05: minBERT's dev split ---------------------------------------------------------------


def test_carve_dev_keeps_copies_in_another_case_or_label_out_of_train():
    """Catches train filtered by equal examples instead of the same sentence: a copy that differs
    in case, spacing or label would stay in train while its sentence is in dev."""
    examples = [Example(i % 2, f"sentence {i}") for i in range(20)]
    examples += [Example((i + 1) % 2, f"SENTENCE  {i}") for i in range(20)]
    train_rows, dev = carve_dev(examples, 0.25, seed=0)
    assert dev and not {same_text(e.text) for e in train_rows} & {same_text(e.text) for e in dev}


def test_carve_dev_does_not_depend_on_the_files_order():
    """Catches the draw made in file order: the same examples in another order would give another
    dev split for the same seed."""
    examples = [Example(i % 3, f"sentence {i}") for i in range(60)]
    forward = {e.text for e in carve_dev(examples, 0.2, seed=5).dev}
    backward = {e.text for e in carve_dev(examples[::-1], 0.2, seed=5).dev}
    assert forward == backward


# --- notebook 06: MLM pretraining -------------------------------------------------------------------


def test_split_eval_holds_out_the_last_lines_with_no_line_on_both_sides():
    """Catches the cut off by one: the first held-out line would also be trained on."""
    lines = [f"line {i}" for i in range(10)]
    train_lines, held = split_eval(lines, 0.2)
    assert train_lines == lines[:8] and held == lines[8:]


class Letters:
    """A tokenizer for ``pack``: each letter a token (ids from 3); [PAD] 0, [CLS] 1, [SEP] 2."""

    pad_token_id, cls_token_id, sep_token_id = 0, 1, 2

    def __call__(self, texts, add_special_tokens=False, verbose=False):
        return {"input_ids": [[3 + ord(c) - ord("a") for c in t] for t in texts]}


def test_pack_masks_the_padding_of_the_last_sequence():
    """Catches the attention mask set on the padding too: the model would attend to [PAD] and the
    report would count padding as training tokens."""
    data = pack(Letters(), ["abcd"], seq_len=5)
    assert data.ids.tolist() == [[1, 3, 4, 5, 2], [1, 6, 2, 0, 0]]
    assert data.mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]] and data.tokens == 8


def test_every_training_epoch_masks_afresh(tmp_path, monkeypatch):
    """Catches the epoch left out of the training batches' seed: every epoch would mask (and order)
    the same tokens, and the model would see a fraction of the possible masks."""
    seen = []
    real = mlm_runs.masked_batches

    def spy(data, tokenizer, batch_size, prob, seed, shuffle, whole_words=False):
        batches = real(data, tokenizer, batch_size, prob, seed, shuffle, whole_words)
        if shuffle:  # training batches (the held-out ones are not shuffled)
            seen.append(torch.cat([inputs for inputs, _, _ in batches]))
        return batches

    monkeypatch.setattr(mlm_runs, "masked_batches", spy)
    words = ["the cat", "a dog", "my friend"], ["sees", "likes"], ["the book", "a ball"]
    lines = [f"{a} {b} {c} ." for a in words[0] for b in words[1] for c in words[2]]
    cfg = MlmConfig(epochs=2, layers=1, hidden=16, heads=2, vocab_size=60, seq_len=16, batch_size=8)
    pretrain(cfg, lines[:-4], lines[-4:], tmp_path, CPU, progress=False)
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])


# --- notebook 07: the small GPT ---------------------------------------------------------------------


class NextLetter(nn.Module):
    """A model sure that each token is followed by the next id (a -> b -> c ...)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(block_size=8, vocab_size=vocab_size)
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        size = self.config.vocab_size
        return 20.0 * nn.functional.one_hot((ids + 1) % size, size).float()


def test_sentence_loss_scores_each_token_against_the_next_one():
    """Catches the targets taken at the inputs' own positions (not one later): a model that knows
    every next letter would get a high loss on "abcd" and a low one on "aaaa"."""
    vocab = Vocab("char", list("abcde"))
    ordered, repeated = sentence_losses(NextLetter(5), vocab, ["abcd", "aaaa"])
    assert ordered < 1e-3 and repeated > 10


def test_gpt_dev_windows_are_the_same_for_every_seed_and_rounds_draw_new_batches(monkeypatch):
    """Catches the dev windows drawn from the run's seed (two seeds would be scored on different
    text) and the same training batches drawn in every round (a seed without the round)."""
    corpus = build_corpus(synthetic_text(2000), "char")
    seen: dict[str, list] = {"dev": [], "train": []}
    real = gpt_runs.windows

    def spy(data, count, *args):
        batches = real(data, count, *args)
        if count > 1:  # the probe's single batch aside
            seen["dev" if data is corpus.dev else "train"].append(
                torch.cat([x for x, _ in batches])
            )
        return batches

    monkeypatch.setattr(gpt_runs, "windows", spy)
    tiny = dict(layers=1, heads=2, embd=16, block_size=16, batch_size=4, evals=2, eval_batches=2)
    for seed in (1, 2):
        train(corpus, GPTRunConfig(**tiny, iters=6, seed=seed), CPU, progress=False)
    assert len(seen["dev"]) == 2 and torch.equal(seen["dev"][0], seen["dev"][1])
    first_run = seen["train"][:2]  # its two rounds of three batches
    assert len(seen["train"]) == 4 and not torch.equal(first_run[0], first_run[1])
