import numpy as np
import pytest

from helpers import text


def test_clean_strips_line_breaks_and_lowercases():
    assert text.clean("Great film.<br /><br />Really<BR/>GOOD") == "great film. really good"


def test_spacy_rules_split_like_glove():
    tokens = text.tokenize(["I didn't like it.<br /><br />The END!"], progress=False)
    assert tokens.document(0) == ["i", "did", "n't", "like", "it", ".", "the", "end", "!"]


def test_tokens_are_cached_atomically(cache):
    texts = ["A good movie.", "A bad one!", ""]
    first, cached = text.tokenize_cached(texts, progress=False)
    assert not cached
    again, cached = text.tokenize_cached(texts, progress=False)
    assert cached and again.words == first.words and np.array_equal(again.ids, first.ids)
    assert [again.document(i) for i in range(3)] == [
        ["a", "good", "movie", "."],
        ["a", "bad", "one", "!"],
        [],
    ]
    files = list((cache / "tokens").iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".")  # no temporary file left behind
    assert not text.tokenize_cached(texts[:2], progress=False)[1]  # other texts, other cache entry


def test_cached_tokens_are_made_again_when_the_tokenising_code_changes(cache, monkeypatch):
    """The cache was keyed by a version string bumped by hand: `clean` without its lowercasing
    reused the old (lowercased) tokens, and every checkpoint trained on them."""
    texts = ["A Good movie."]
    assert text.tokenize_cached(texts, progress=False)[0].document(0) == ["a", "good", "movie", "."]

    def clean(review: str) -> str:  # an edit: keep the case
        return text.BREAKS.sub(" ", review)

    monkeypatch.setattr(text, "clean", clean)
    tokens, cached = text.tokenize_cached(texts, progress=False)
    assert not cached and tokens.document(0) == ["A", "Good", "movie", "."]


def test_vocab_maps_unknown_words_to_one_and_keeps_zero_for_padding():
    tokens = text.tokenize(["good movie", "good unknownword"], progress=False)
    vocab = text.Vocab(["good", "movie"])
    assert vocab.itos[:2] == [text.PAD, text.UNK] and len(vocab) == 4
    encoded = vocab.encode(tokens)
    assert encoded[0].tolist() == [2, 3] and encoded[1].tolist() == [2, 1]


def test_bucketed_batches_cover_everything_once_with_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 500, size=1000)
    batches = text.bucketed_batches(lengths, 32, shuffle=True, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.2 * np.ptp(lengths)  # batches hold similar lengths
    assert batches == text.bucketed_batches(lengths, 32, shuffle=True, seed=1)
    assert batches != text.bucketed_batches(lengths, 32, shuffle=True, seed=2)
    ordered = text.bucketed_batches(lengths, 32, shuffle=False)
    assert [lengths[b].max() for b in ordered] == sorted(lengths[b].max() for b in ordered)


def test_pad_batch_truncates_pads_and_masks():
    ids, mask = text.pad_batch(
        [np.array([5, 6, 7, 8]), np.array([9]), np.array([], dtype=np.int64)], max_len=3
    )
    assert ids.tolist() == [[5, 6, 7], [9, 0, 0], [1, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False], [True, False, False]]


@pytest.mark.parametrize("bad", [[np.array([3])]])
def test_pad_batch_of_one(bad):
    ids, mask = text.pad_batch(bad, max_len=10)
    assert ids.shape == (1, 1) and mask.all()


def test_pad_batch_of_nothing_says_the_batch_is_empty_and_why():
    with pytest.raises(ValueError, match=r"pad_batch got an empty batch \(no documents\)") as err:
        text.pad_batch([], max_len=10)
    assert "split they are cut from has no examples" in str(err.value)


def test_pad_batch_needs_room_for_one_token():
    with pytest.raises(ValueError, match="max_len must be at least 1 token, not 0"):
        text.pad_batch([np.array([3])], max_len=0)


@pytest.mark.parametrize("size", [0, -4, 2.5])
def test_bucketed_batches_refuses_a_batch_size_below_one(size):
    with pytest.raises(
        ValueError, match=f"batch_size must be a whole number of at least 1, not {size}"
    ):
        text.bucketed_batches([3, 1, 2], size, shuffle=True)


def test_bucketed_batches_refuses_an_empty_bucket():
    with pytest.raises(ValueError, match="bucket must be a whole number of at least 1, not 0"):
        text.bucketed_batches([3, 1, 2], 2, shuffle=True, bucket=0)
    assert text.bucketed_batches([3, 1, 2], np.int64(2), shuffle=False) == [[1, 2], [0]]


def test_a_cached_copy_cut_short_is_tokenized_again(cache, capsys):
    texts = ["A film, and a good one.", "Not good."]
    first, _ = text.tokenize_cached(texts, progress=False)
    (cached,) = (cache / "tokens").iterdir()
    cached.write_bytes(b"")
    again, from_cache = text.tokenize_cached(texts, progress=False)
    assert (
        not from_cache and again.words == first.words and again.ids.tolist() == first.ids.tolist()
    )
    assert "could not be read" in capsys.readouterr().out


def test_vocab_keeps_a_word_given_twice_once():
    """A repeated word took two ids (len counted both; stoi pointed at the second)."""
    vocab = text.Vocab(["a", "b", "a"])
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"] and len(vocab) == 4 and vocab.stoi["a"] == 2


def test_a_file_named_spacy_py_is_named(tmp_path, monkeypatch):
    """An empty spacy.py on the path (a student's scratch file) gave "module 'spacy' has no attribute
    'blank'" without saying where that module came from (an environment probe, stop 56)."""
    import sys

    from helpers.text import tokenize

    (tmp_path / "spacy.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spacy", raising=False)
    with pytest.raises(ImportError, match=r"`import spacy` found .*spacy\.py, not spaCy: rename"):
        tokenize(["a film"], progress=False)
