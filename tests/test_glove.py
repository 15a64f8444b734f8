import zipfile

import numpy as np
import pytest
import torch

from helpers import glove

TEXT = 'the 0.1 0.2 0.3\n, 0.4 0.5 0.6\nnull 1 2 3\n" 7 8 9\nnan -1 -2 -3.5e-05\n'


@pytest.fixture
def glove_file(tmp_path):
    path = tmp_path / "glove.6B.3d.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_parse_keeps_awkward_words_as_words(glove_file):
    g = glove.parse_glove_text(glove_file)
    assert g.words == ["the", ",", "null", '"', "nan"] and g.dim == 3
    assert g.vectors.dtype == np.float32 and g.vectors[4, 2] == np.float32(-3.5e-05)


def test_load_caches_arrays(glove_file, cache):
    first, cached = glove.load_glove(glove_file)
    assert not cached
    again, cached = glove.load_glove(glove_file)
    assert cached and again.words == first.words and np.array_equal(again.vectors, first.vectors)


def test_arrays_an_older_parser_cached_are_parsed_again(glove_file, cache, monkeypatch):
    """The cache was keyed by the file alone: arrays written before the parser refused nan were loaded
    without that check (a nan vector reached training as a "diverged" run)."""
    real = glove.code_digest
    monkeypatch.setattr(glove, "code_digest", lambda fn: "an older parser")
    assert glove.load_glove(glove_file)[1] is False
    assert glove.load_glove(glove_file)[1] is True
    monkeypatch.setattr(glove, "code_digest", real)
    assert glove.load_glove(glove_file)[1] is False  # this parser's own arrays
    assert glove.load_glove(glove_file)[1] is True


def test_load_from_zip_with_member(tmp_path, cache):
    archive = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("glove.6B.50d.txt", "a 1 1\n")
        z.writestr("glove.6B.3d.txt", TEXT)
    assert glove.load_glove(archive, member="glove.6B.3d.txt")[0].words[0] == "the"
    with pytest.raises(ValueError, match="holds no glove.6B.9d.txt"):
        glove.load_glove(archive, member="glove.6B.9d.txt")


def test_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="GloVe file .*nope.txt does not exist"):
        glove.load_glove(tmp_path / "nope.txt")


def test_numeric_words_stay_as_written(tmp_path):
    path = tmp_path / "numbers.txt"
    path.write_text("1.50 1 2\n007 3 4\nnull 5 6\n", encoding="utf-8")
    assert glove.parse_glove_text(path).words == ["1.50", "007", "null"]


FORMAT = "every line must be 'word v1 v2 ... vd', separated by single spaces"


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"the,0.1,0.2\nof,0.3,0.4\n", "line 1 ('the,0.1,0.2') separates its values by commas"),
        (b"the\t0.1\t0.2\n", "separates its values by tabs"),
        (b'{"the": [0.1, 0.2]}\n', "line 1 starts with '{': this looks like JSON"),
        (b"the 0.1 0.2\nof 0.3 0.4 0.5\n", "line 2 has 3 numbers after its word, but line 1 has 2"),
        (b"the 0.1 0.2\n\nof 0.3\n", "line 3 has 1 number after its word, but line 1 has 2"),
        (
            b"the 0.1 0.2\nof 0.3 abc\n",
            "line 2, value 2 after the word 'of' is 'abc', not a number",
        ),
        (b"the 0.1 0.2\nat home 0.3 0.4\n", "is 'home', not a number (a word that holds a space?)"),
        (b"the  0.1 0.2\n", "line 1 has two spaces in a row at character 4"),
        (b"the 0.1 0.2 \n", "line 1 ('the 0.1 0.2 ') ends with a space"),
        (b"the\n", "line 1 ('the') is a word with no numbers after it"),
        (b"2 2\nthe 0.1 0.2\n", "but line 1 is only 2 numbers, like word2vec's header 'count dim'"),
        (b"the 0.1 0.2\nof nan 0.4\n", "value 1 of the vector of 'of' is nan, not a finite number"),
        (b"the 0.1 -inf\n", "value 2 of the vector of 'the' is -inf, not a finite number"),
        (b"", "it is empty"),
        (b"\n\n", "it is empty"),
        (
            b"the 0.1 0.2\n\x80\x03]q\x00 1 2\n",
            "line 2 holds byte 0x80 (offset 12), which is not UTF-8",
        ),
    ],
)
def test_a_file_that_is_not_glove_names_the_line_and_what_it_holds(tmp_path, content, problem):
    path = tmp_path / "vectors.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        glove.parse_glove_text(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a GloVe text file: ")
    assert problem in message and FORMAT in message


def test_a_bad_line_inside_a_zip_names_the_member(tmp_path, cache):
    archive = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("glove.6B.3d.txt", TEXT + "oops 1 2\n")
    with pytest.raises(ValueError, match=r"glove\.6B\.3d\.txt in .*glove\.6B\.zip is not a GloVe "):
        glove.load_glove(archive)
    with pytest.raises(ValueError, match="line 6 has 2 numbers after its word, but line 1 has 3"):
        glove.load_glove(archive)


def test_a_zip_that_is_not_a_zip(tmp_path, cache):
    archive = tmp_path / "glove.6B.zip"
    archive.write_bytes(b"<html>Service unavailable</html>")
    with pytest.raises(ValueError, match=r"glove\.6B\.zip ends in \.zip but is not a zip archive"):
        glove.load_glove(archive)


def test_align_restricts_vocabulary_to_corpus_words(glove_file):
    g = glove.parse_glove_text(glove_file)
    aligned = glove.align(g, {"the": 10, "null": 3, "zebra": 2, ",": 5})
    assert aligned.vocab.itos == ["<pad>", "<unk>", "the", ",", "null"]
    assert torch.equal(aligned.vectors[0], torch.zeros(3))
    assert torch.allclose(aligned.vectors[1], torch.from_numpy(g.vectors.mean(axis=0)))
    assert torch.equal(aligned.vectors[4], torch.tensor([1.0, 2.0, 3.0]))
    assert aligned.coverage == pytest.approx(18 / 20) and aligned.types_covered == pytest.approx(
        3 / 4
    )


def test_real_glove_50d(shared_data, cache):
    g, _ = glove.load_glove(shared_data / "glove" / "glove.6B.50d.top50k.txt")
    assert len(g.words) == 50_000 and g.dim == 50 and len(set(g.words)) == 50_000
    assert g.words[0] == "the" and np.allclose(g.vectors[0, :4], [0.418, 0.24968, -0.41242, 0.1217])
    assert {"n't", "'s", '"'} <= set(g.words)


def test_unmirrored_size_is_refused():
    with pytest.raises(ValueError, match="GloVe 6B 300d is not mirrored here"):
        glove.download_glove(300)


def test_coverage_and_types_covered_both_ignore_min_count():
    """Both say how much of the corpus GloVe knows; min_count only decides the vocabulary."""
    g = glove.Glove(["a", "b"], np.ones((2, 3), dtype=np.float32))
    aligned = glove.align(g, {"a": 1, "b": 5, "c": 4}, min_count=2)
    assert aligned.vocab.itos[2:] == ["b"]
    assert aligned.coverage == pytest.approx(6 / 10) and aligned.types_covered == pytest.approx(
        2 / 3
    )


def test_a_cached_copy_cut_short_is_parsed_again(glove_file, cache, capsys):
    first, _ = glove.load_glove(glove_file)
    (cached,) = (cache / "glove").iterdir()
    cached.write_bytes(cached.read_bytes()[:100])
    again, from_cache = glove.load_glove(glove_file)
    assert (
        not from_cache
        and again.words == first.words
        and "could not be read" in capsys.readouterr().out
    )
    assert glove.load_glove(glove_file)[1]  # and cached again


def test_offline_both_sources_fail_and_the_message_names_the_mirrors_file(monkeypatch):
    """Stanford's error named its 822 MB glove.6B.zip, which `download --all` does not fetch."""

    def mirror(name):
        raise glove.DownloadError(
            f"could not download {name} (offline). If you are offline, copy it"
        )

    def stanford(url, check=None):
        raise glove.DownloadError("could not download glove.6B.zip (offline)")

    monkeypatch.setattr(glove, "fetch", mirror)
    monkeypatch.setattr(glove, "download", stanford)
    with pytest.raises(glove.DownloadError) as err:
        glove.download_glove(50)
    assert "glove.6B.50d.zip" in str(err.value) and "glove.6B.zip" not in str(err.value)
    assert str(err.value).endswith("(Stanford's server failed too)")
