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
