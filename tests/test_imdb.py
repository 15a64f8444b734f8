import html
import io
import itertools
import json
import linecache
import math
import os
import random
import tarfile
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from ctrl_c_support import ctrl_c_at

from helpers import env, imdb, layers, text
from helpers.classifier import MyTransformer, masked_mean
from helpers.config import ConfigError
from helpers.download import DownloadError, cache_dir
from helpers.files import extract_tar
from helpers.imdb import ablation, cli
from helpers.imdb import data as imdb_data
from helpers.profiles import Sizes03
from helpers.synthetic import synthetic_glove, synthetic_reviews
from helpers.training import History, predict
from helpers.training.loop import Diverged

CPU = torch.device("cpu")
SMALL = imdb.CONFIGS["course"].replace(epochs=3, max_len=64, lr=3e-3)

pytestmark = pytest.mark.usefixtures("one_thread")


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def numbers(history):
    """A history without its timings (which differ between two runs of the same training)."""
    return {k: v for k, v in history.items() if k not in ("seconds", "train_seconds")}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    sizes = Sizes03(
        synthetic=True, max_train=400, max_test=100, glove_dim=16, epochs=None, max_len=None
    )
    with pytest.MonkeyPatch.context() as patch:  # the token cache goes to a temporary folder
        patch.setenv("HELPERS_CACHE", str(tmp_path_factory.mktemp("cache")))
        splits, glove, _ = imdb.notebook_data(sizes)
        return imdb.prepare(splits, glove, progress=False)


# --- configs -----------------------------------------------------------------------------------


def test_a_misspelt_config_field_names_the_right_one():
    with pytest.raises(ConfigError, match=r"ImdbConfig has no field 'lrr' \(did you mean 'lr'\?\)"):
        imdb.ImdbConfig(lrr=1)
    with pytest.raises(ConfigError, match="its fields: blocks, heads, epochs, lr, max_len"):
        SMALL.replace(max_length=32)
    with pytest.raises(ConfigError, match="ImdbConfig.epochs must be > 0 and finite, got 0"):
        SMALL.replace(epochs=0)
    assert SMALL.epochs == 3 and SMALL.to_dict()["max_len"] == 64
    assert imdb.CONFIGS["course"].epochs == 5  # replace made a copy


# --- data --------------------------------------------------------------------------------------


def test_read_jsonl_and_its_errors(tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"text": "good", "label": 1}, {"text": "bad", "label": "0"}]
    )
    assert imdb.read_jsonl(path) == (["good", "bad"], [1, 0])
    with pytest.raises(ValueError, match=r"b.jsonl has no column 'text'.*its columns are 'review'"):
        imdb.read_jsonl(write_jsonl(tmp_path / "b.jsonl", [{"review": "x", "label": 1}]))
    with pytest.raises(
        ValueError, match=r"labels must be one of 0, 1.*found 2 \(1 row, first row 2\)"
    ):
        imdb.read_jsonl(
            write_jsonl(
                tmp_path / "c.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 2}]
            )
        )
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        imdb.read_jsonl(tmp_path / "missing.jsonl")


def test_validation_split_is_fixed_and_disjoint():
    data = ([f"review {i}" for i in range(100)], [i % 2 for i in range(100)])
    rest, held = imdb.split_off(data, 0.1)
    assert len(held[0]) == 10 and len(rest[0]) == 90 and not set(held[0]) & set(rest[0])
    assert imdb.split_off(data, 0.1) == (rest, held)
    assert len(imdb.subsample(data, 30)[0]) == 30 and imdb.subsample(data, None) == data


def test_local_folder_is_used_first(tmp_path, monkeypatch):
    rows = [{"text": f"r{i}", "label": i % 2} for i in range(50)]
    write_jsonl(tmp_path / "imdb" / "train.jsonl", rows)
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    data, source = imdb.load_imdb()
    assert (
        "HELPERS_DATA_DIR" in source and len(data["train"][0]) == 40 and len(data["test"][0]) == 10
    )
    write_jsonl(tmp_path / "imdb" / "test.jsonl", rows[:5])
    assert len(imdb.load_imdb()[0]["test"][0]) == 5


def test_notebook_splits_hold_each_review_once(tmp_path, monkeypatch):
    """aclImdb repeats some reviews; a repeat in train and test would score memory. The notebook's
    splits drop repeats first (the first copy stays), whatever the source."""
    rows = [{"text": f"r{i % 40}", "label": i % 40 % 2} for i in range(50)]  # r0..r9 twice
    write_jsonl(tmp_path / "imdb" / "train.jsonl", rows)
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(imdb_data, "local_glove", lambda dim: None)
    monkeypatch.setattr(imdb_data, "download_glove", lambda dim: "vectors")
    sizes = Sizes03(
        synthetic=False, max_train=None, max_test=None, glove_dim=16, epochs=None, max_len=None
    )
    for test_rows in (None, rows[:5] + [{"text": "new", "label": 1}, {"text": "new", "label": 1}]):
        if test_rows:
            write_jsonl(tmp_path / "imdb" / "test.jsonl", test_rows)
        splits, _, _ = imdb.notebook_data(sizes)
        texts = [t for split in splits.values() for t in split[0]]
        assert len(texts) == len(set(texts)), test_rows
    assert splits["test"] == (["new"], [1])  # the test rows that train holds are dropped
    assert len(splits["train"][0]) + len(splits["valid"][0]) == 40
    assert imdb_data.drop_repeats((["a", "b", "a", "c"], [1, 0, 0, 1]), seen=(["c"], [1])) == (
        ["a", "b"], [1, 0])  # fmt: skip


def test_offline_without_data_says_what_to_do(monkeypatch, cache):
    monkeypatch.delenv("HELPERS_DATA_DIR", raising=False)

    def no_hub():
        raise ConnectionError("offline")

    def no_tarball(name):
        raise DownloadError(f"could not download {name}")

    monkeypatch.setattr(imdb_data, "_from_hub", no_hub)
    monkeypatch.setattr(imdb_data, "fetch", no_tarball)
    with pytest.raises(RuntimeError, match="set HELPERS_DATA_DIR to that folder") as err:
        imdb.load_imdb()
    assert "offline" in str(err.value) and "aclImdb_v1.tar.gz" in str(err.value)


def tar_with(tmp_path, names, kind=tarfile.REGTYPE, mode=0o644):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            data = b"A fine film." if kind == tarfile.REGTYPE else b""
            info = tarfile.TarInfo(name)
            info.size, info.type, info.mode = len(data), kind, mode
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("data_filter", [True, False])
def test_tarball_extraction_keeps_plain_files_only(tmp_path, monkeypatch, data_filter):
    """Without tarfile's data filter (Python 3.11.0 to 3.11.3) a pipe or device was extracted, and a
    setuid, world-writable mode kept."""
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    for kind, name in ((tarfile.FIFOTYPE, "pipe"), (tarfile.CHRTYPE, "device"),
                       (tarfile.SYMTYPE, "link")):  # fmt: skip
        with pytest.raises(ValueError, match=f"'{name}' .*: it is a link, a device or a pipe"):
            extract_tar(tar_with(tmp_path, [name], kind), tmp_path / "out")
        assert not (tmp_path / "out" / name).exists()
    extract_tar(tar_with(tmp_path, ["film.txt"], mode=0o4777), tmp_path / "out")
    assert (tmp_path / "out" / "film.txt").stat().st_mode & 0o7777 == 0o755
    # an unreadable folder or file (0o000) would leave a cache one cannot read or delete
    umask = os.umask(0o022)
    os.umask(umask)
    for kind, name, mode, want in ((tarfile.DIRTYPE, "shut", 0o000, 0o777 & ~umask),
                                   (tarfile.REGTYPE, "closed.txt", 0o000, 0o600),
                                   (tarfile.REGTYPE, "read-only.txt", 0o444, 0o644)):  # fmt: skip
        extract_tar(tar_with(tmp_path, [name], kind, mode), tmp_path / "out")
        assert (tmp_path / "out" / name).stat().st_mode & 0o7777 == want, name


def test_tarball_extraction_refuses_paths_outside_the_target(tmp_path):
    with pytest.raises(
        ValueError, match="refusing to extract '../evil.txt' .*: it would land outside"
    ):
        extract_tar(tar_with(tmp_path, ["../evil.txt"]), tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    names = ["aclImdb/train/pos/1_9.txt", "aclImdb/train/neg/2_1.txt", "aclImdb/test/pos/3_8.txt"]
    extract_tar(tar_with(tmp_path, names), tmp_path / "ok")
    data = imdb_data.read_aclimdb(tmp_path / "ok" / "aclImdb")
    assert data["train"] == (["A fine film.", "A fine film."], [0, 1]) and data["test"][1] == [1]


def test_a_second_process_extracting_the_reviews_uses_the_first_ones_copy(
    tmp_path, cache, monkeypatch
):
    """Two tabs on one cache, offline from the hub: both extract Stanford's archive; the second rename
    meets the first one's folder. It used shutil.move, which put a second copy inside the first (and
    a third process failed: "Destination path ... already exists")."""
    names = ["aclImdb/train/pos/1_9.txt", "aclImdb/train/neg/2_1.txt", "aclImdb/test/pos/3_8.txt"]
    archive = tar_with(tmp_path, names)
    monkeypatch.setattr(imdb_data, "fetch", lambda name: archive)
    real = imdb_data.extract_tar

    def meanwhile(path, target):  # the other process finishes while this one extracts
        real(path, target)
        if not (cache_dir() / "aclImdb").exists():
            real(path, cache_dir())

    monkeypatch.setattr(imdb_data, "extract_tar", meanwhile)
    data = imdb_data._from_tarball()
    assert data["train"] == (["A fine film.", "A fine film."], [0, 1])
    assert sorted(p.name for p in (cache_dir() / "aclImdb").iterdir()) == [
        "test",
        "train",
    ]  # one copy
    assert [p.name for p in cache_dir().iterdir()] == ["aclImdb"]  # the extraction's folder removed


def test_a_killed_extractions_folder_is_hidden_and_removed_after_a_day(
    tmp_path, cache, monkeypatch
):
    """A kernel restart mid-extraction left a visible tmpXXXXXXXX folder (hundreds of MB for the real
    archive) in the cache for good."""
    archive = tar_with(tmp_path, ["aclImdb/train/pos/1_9.txt", "aclImdb/test/neg/2_1.txt"])
    monkeypatch.setattr(imdb_data, "fetch", lambda name: archive)
    made = []
    real = imdb_data.extract_tar
    monkeypatch.setattr(
        imdb_data, "extract_tar", lambda path, target: made.append(target) or real(path, target)
    )
    killed = cache_dir() / ".saving-k1lled00"
    (killed / "aclImdb").mkdir(parents=True)
    os.utime(killed, (time.time() - 2 * 86400,) * 2)
    imdb_data._from_tarball()
    assert made[0].name.startswith(".saving-") and not killed.exists()
    assert [p.name for p in cache_dir().iterdir()] == ["aclImdb"]


# --- model -------------------------------------------------------------------------------------


def test_masked_mean_ignores_padding():
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    changed = x.clone()
    changed[0, 2:] = 1000.0
    assert torch.allclose(masked_mean(changed, mask)[0], x[0, :2].mean(0))
    assert torch.allclose(masked_mean(x, mask)[1], x[1].mean(0))


def test_padding_does_not_change_the_prediction():
    torch.manual_seed(0)
    model = MyTransformer(torch.randn(20, 8), blocks=2, heads=2, max_len=32).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(model(ids, ids != 0), model(padded, padded != 0), atol=1e-5)


def test_word_dropout_zeroes_whole_words_in_training_only():
    torch.manual_seed(0)
    vectors = torch.randn(20, 8)
    model = MyTransformer(vectors, max_len=32, dropout=0.0, word_dropout=0.5)
    ids, mask = torch.randint(1, 20, (4, 30)), torch.ones(4, 30, dtype=torch.bool)
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    model.train()(ids, mask)
    words = seen[-1] - model.positions[:30]  # (B, T, d): what the embedding layer passed on
    zeroed = (words.abs().amax(-1) < 1e-6).float().mean().item()
    assert 0.35 < zeroed < 0.65  # about half of the words, each zeroed as a whole vector
    plain = MyTransformer(vectors, max_len=32, dropout=0.0).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model.eval()(ids, mask), plain(ids, mask))  # evaluation: every word
    with pytest.raises(ConfigError, match=r"ImdbConfig.word_dropout must be in \[0, 1\), got 1.0"):
        imdb.ImdbConfig(word_dropout=1.0)


def test_model_messages():
    with pytest.raises(ValueError, match="3 heads do not divide the GloVe dimension 8"):
        MyTransformer(torch.randn(5, 8), heads=3)
    model = MyTransformer(torch.randn(5, 8), max_len=4)
    with pytest.raises(ValueError, match="batch has 6 tokens but max_len is 4"):
        model(torch.ones(1, 6, dtype=torch.long), torch.ones(1, 6, dtype=torch.bool))


def test_frozen_embeddings_stay_frozen(prepared):
    model = imdb.build_model(prepared, SMALL.replace(freeze_embeddings=True))
    assert not model.embed.weight.requires_grad
    assert imdb.build_model(
        prepared, SMALL.replace(freeze_embeddings=False)
    ).embed.weight.requires_grad


# --- training ----------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_learns(prepared):
    result = imdb.run(prepared, SMALL.replace(epochs=6), CPU, progress=False)
    losses = result.history["train_loss"]
    assert losses[-1] < losses[0] - 0.1
    assert len(result.history["valid_accuracy"]) == 6 and set(result.seconds) == {"train"}
    test = imdb.score_test(prepared, result.model, CPU)  # once, after choosing on validation
    assert test.accuracy > 0.8 and test.count == 100  # the labels are learnable


def test_training_leaves_the_prepared_vectors_alone(prepared):
    """Fine-tuning the embeddings must change the model's copy, not GloVe's: otherwise every later
    run starts from the last run's vectors, and the data's fingerprint (the checkpoint key)
    changes."""
    vectors, fingerprint = prepared.vectors.clone(), prepared.fingerprint()
    result = imdb.run(prepared, SMALL.replace(epochs=1), CPU, progress=False)
    assert not torch.equal(result.model.embed.weight.detach(), vectors)  # fine-tuned
    assert torch.equal(prepared.vectors, vectors) and prepared.fingerprint() == fingerprint


def test_checkpoint_resumes_after_the_last_epoch(prepared, cache, capsys):
    first = imdb.run(prepared, SMALL.replace(epochs=2), CPU, checkpoint=True)
    assert len(list((cache / "checkpoints").glob("*.pt"))) == 1
    again = imdb.run(prepared, SMALL.replace(epochs=2), CPU, checkpoint=True)
    assert "resuming" in capsys.readouterr().out
    assert again.history == first.history  # nothing retrained: even the timings are the saved ones
    assert torch.equal(again.model.head.weight, first.model.head.weight)


def test_students_modules_plug_in(prepared):
    result = imdb.run(
        prepared,
        SMALL,
        CPU,
        progress=False,
        attention=layers.SelfAttention,
        layer_norm=layers.LayerNorm,
    )
    assert isinstance(result.model.blocks[0].attn, layers.SelfAttention)
    assert isinstance(result.model.norm, layers.LayerNorm)
    assert len(result.history["epoch"]) == SMALL.epochs


# A student's attention as a notebook cell holds it: first with a bug (no 1/√d), then fixed.
ATTENTION_CELL = """
class MySelfAttention(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, x, mask):
        q, k, v = (f(x) for f in (self.query, self.key, self.value))
        scores = q @ k.transpose(-2, -1){scale}
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1) @ v
"""
BUGGY = ATTENTION_CELL.format(scale="")
FIXED = ATTENTION_CELL.format(scale=" / math.sqrt(q.shape[-1])")
_cells = itertools.count(1)


def run_cell(source: str, keep_source: bool) -> type:
    """Define MySelfAttention as running a notebook cell does: IPython compiles each run of a cell
    under a new file name and keeps its source in linecache (``keep_source``; a bare ``exec`` keeps
    none); the class's module is no file."""
    name = f"<ipython-input-{next(_cells)}-0123456789ab>" if keep_source else "<string>"
    if keep_source:
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace = {"__name__": "notebook_cell", "math": math, "nn": nn, "torch": torch}
    exec(compile(source, name, "exec"), namespace)
    return namespace["MySelfAttention"]


@pytest.mark.parametrize("keep_source", [True, False], ids=["ipython-cell", "bare-exec"])
def test_a_checkpoint_of_the_buggy_attention_is_not_reused_after_the_fix(
    prepared, cache, capsys, keep_source
):
    def cell(source):
        return run_cell(source, keep_source)

    cfg = SMALL.replace(epochs=2)
    buggy = imdb.run(prepared, cfg, CPU, checkpoint=True, progress=False, attention=cell(BUGGY))
    assert type(buggy.model.blocks[0].attn).__name__ == "MySelfAttention"
    capsys.readouterr()

    fixed = imdb.run(prepared, cfg, CPU, checkpoint=True, progress=False, attention=cell(FIXED))
    out = capsys.readouterr().out  # said even with progress=False: never retrain silently
    assert "trained differently" in out and "training again" in out, out
    assert "the code of MySelfAttention changed" in out, out
    assert "resuming" not in out
    assert numbers(fixed.history) != numbers(buggy.history)
    fresh = imdb.run(prepared, cfg, CPU, progress=False, attention=cell(FIXED))
    assert numbers(fixed.history) == numbers(fresh.history)  # a whole new training, not the old one

    again = imdb.run(prepared, cfg, CPU, checkpoint=True, attention=cell(FIXED))  # the cell re-run
    out = capsys.readouterr().out
    assert "resuming from" in out and "after epoch 2" in out and "training again" not in out, out
    assert again.history == fixed.history
    assert torch.equal(again.model.head.weight, fixed.model.head.weight)
    assert len(list((cache / "checkpoints").glob("*.pt"))) == 1


def test_seed_defaults_to_the_last_one_set_and_the_callers_generators_are_left_alone(
    prepared, monkeypatch
):
    monkeypatch.setattr(env, "_current_seed", env.current_seed())  # restored after the test
    cfg = SMALL.replace(epochs=2)
    env.seed_everything(7)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    default = imdb.run(prepared, cfg, CPU, progress=False)
    assert torch.equal(torch.get_rng_state(), before[0])
    assert random.getstate() == before[1] and np.array_equal(np.random.get_state()[1], before[2])
    seven = imdb.run(prepared, cfg, CPU, progress=False, seed=7)
    eight = imdb.run(prepared, cfg, CPU, progress=False, seed=8)
    assert numbers(default.history) == numbers(seven.history)
    assert all(
        torch.equal(a, b)
        for a, b in zip(default.model.state_dict().values(), seven.model.state_dict().values())
    )
    assert numbers(eight.history) != numbers(seven.history)


# --- widgets and mistakes ----------------------------------------------------------------------


def test_hyperparameter_explorer_overlays_runs(prepared):
    from helpers.widgets.imdb import hyperparameter_explorer

    explorer = hyperparameter_explorer(prepared, CPU, SMALL.replace(epochs=1))
    explorer.button.click()
    explorer.controls["blocks"].value = 2
    explorer.controls["epochs"].value = 2
    explorer.button.click()
    # each run's legend line names only what differs from the starting settings
    assert [run["label"] for run in explorer.runs] == [
        "run 1: the starting settings",
        "run 2: blocks=2, epochs=2",
    ]
    assert len(explorer.runs[1]["history"]["epoch"]) == 2
    explorer.controls["heads"].value = 5  # 5 does not divide 16
    explorer.button.click()
    assert len(explorer.runs) == 2


def test_review_attention(prepared):
    from helpers.widgets.imdb import review_attention

    result = imdb.run(prepared, SMALL, CPU, progress=False)
    view = review_attention(prepared, result.model, CPU)
    first = view.state
    assert len(first["tokens"]) == len(first["weights"]) and abs(sum(first["weights"]) - 1) < 1e-4
    view.controls["index"].value = 5
    assert view.state["label"] == int(prepared.labels["valid"][5])
    assert len(view.state["occlusion"]) == len(view.state["tokens"])
    # each shading's strongest tokens in words, not in colour alone, the tokens escaped
    page, state = view.children[-1].children[0].value, view.state
    rises = sorted(zip([-d for d in state["occlusion"]], state["tokens"]), reverse=True)
    against = [f"{html.escape(t)} ({-r:+.2f})" for r, t in rises[:5] if r > 0]
    assert f"argued against most: {', '.join(against) or 'none'}<br>" in page
    drops = sorted(zip(state["occlusion"], state["tokens"]), reverse=True)
    supported = [f"{html.escape(t)} ({d:+.2f})" for d, t in drops[:5] if d > 0]
    assert f"supported most: {', '.join(supported) or 'none'}<br>" in page
    looked = sorted(zip(state["weights"], state["tokens"]), reverse=True)[:5]
    assert "most attention: " + ", ".join(f"{html.escape(t)} ({v:.3f})" for v, t in looked) in page
    assert ("✅ right" in page) == (state["predicted"] == state["label"])


def test_misclassified_lists_the_most_confident_mistakes_first(prepared):
    result = imdb.run(prepared, SMALL.replace(epochs=1), CPU, progress=False)
    table = imdb.misclassified(prepared, result.model, CPU, k=3)
    assert len(table) <= 3 and list(table.columns) == ["confidence", "true", "review"]
    assert (table["confidence"].diff().dropna() <= 0).all()


def test_misclassified_lists_only_mistakes_with_the_models_confidence(prepared):
    """The test above held whatever rows it got: listing right answers passed."""
    torch.manual_seed(0)
    model = imdb.build_model(prepared, SMALL).eval()  # untrained: many wrong answers to list
    table = imdb.misclassified(prepared, model, CPU, k=5, chars=10**6)
    order = [
        i for idx in prepared.batch_indices("valid", 64, model.max_len, shuffle=False) for i in idx
    ]
    probs = predict(model, prepared.batches("valid", 64, model.max_len, shuffle=False), CPU)
    guessed = {prepared.texts["valid"][i]: p for i, p in zip(order, probs)}
    assert len(table) == 5
    for row in table.itertuples():
        p = guessed[row.review]
        assert ("pos" if p.argmax() else "neg") != row.true and 0.5 <= row.confidence <= 1
        assert row.confidence == pytest.approx(p.max().item(), abs=1e-3)


def test_token_attention_shares_sum_to_one(prepared):
    model = imdb.build_model(prepared, SMALL)
    state = imdb.token_attention(prepared, model, CPU, "test", 3)
    assert len(state["tokens"]) == len(state["weights"]) and abs(sum(state["weights"]) - 1) < 1e-4
    assert state["label"] == int(prepared.labels["test"][3]) and 0.5 <= state["confidence"] <= 1
    # a model the notebook goes on training keeps its mode (both views left it in eval mode)
    imdb.token_occlusion(prepared, model.train(), CPU, "test", 3)
    assert (
        model.training and imdb.token_attention(prepared, model, CPU, "test", 3) and model.training
    )


# --- command line ------------------------------------------------------------------------------


@pytest.fixture
def cli_files(tmp_path, cache):
    """Valid train, test and GloVe files for the command line (synthetic reviews)."""
    texts, labels = synthetic_reviews(300)
    rows = [{"text": t, "label": y} for t, y in zip(texts, labels)]
    g = synthetic_glove(8)
    glove = tmp_path / "glove.txt"
    glove.write_text(
        "".join(w + " " + " ".join(map(str, v)) + "\n" for w, v in zip(g.words, g.vectors))
    )
    return {
        "--train-file": write_jsonl(tmp_path / "train.jsonl", rows[:240]),
        "--test-file": write_jsonl(tmp_path / "test.jsonl", rows[240:]),
        "--glove-file": glove,
        "--json": tmp_path / "report.json",
    }


def call(files, *extra):
    return cli.main([str(a) for pair in files.items() for a in pair] + list(extra))


def test_cli_writes_the_report(cli_files):
    assert call(cli_files, "--epochs", "2", "--lr", "3e-3", "--max-len", "48") == 0
    report = json.loads(cli_files["--json"].read_text())
    assert report["config"]["epochs"] == 2 and report["config"]["max_len"] == 48
    assert report["config"]["lr"] == 3e-3 and report["seed"] == 42
    assert len(report["history"]["valid_loss"]) == 2 and 0 <= report["test_accuracy"] <= 1
    assert {"read", "glove", "tokenise train", "epoch 1", "epoch 2", "test"} <= set(
        report["seconds"]
    )
    assert call(cli_files, "--epochs", "2", "--lr", "3e-3", "--max-len", "48") == 0  # now cached
    again = json.loads(cli_files["--json"].read_text())
    assert set(again["seconds"]) == set(
        report["seconds"]
    )  # one set of keys: "glove (cached)" was new
    assert {"glove", "tokenise train", "tokenise test"} <= set(again["cached"])
    assert report["examples"] == {"train": 216, "valid": 24, "test": 60}


def test_cli_quiet_shows_no_progress_bar_or_epoch_lines(cli_files, capsys):
    assert call(cli_files, "--epochs", "1", "--max-len", "32") == 0
    loud = capsys.readouterr()
    cli_files["--json"].unlink()
    assert call(cli_files, "--epochs", "1", "--max-len", "32", "--seed", "7", "--quiet") == 0
    quiet = capsys.readouterr()
    assert "epoch 1/1:" in loud.out + loud.err and "training:" in loud.err
    assert "epoch 1/1:" not in quiet.out + quiet.err and "%|" not in quiet.err
    assert "test accuracy" in quiet.out  # the final lines stay


def test_cli_scores_the_test_file_in_the_precision_it_trained_in(cli_files, monkeypatch):
    """`--precision fp32` trained in float32 and scored the test file in "auto": float16 on a T4
    (a helper session's mixed-precision audit)."""
    from helpers.imdb import runs

    asked = []
    scored = runs.evaluate
    monkeypatch.setattr(runs, "evaluate", lambda *a, **k: asked.append(k) or scored(*a, **k))
    assert call(cli_files, "--epochs", "1", "--max-len", "48", "--precision", "fp32") == 0
    assert asked == [{"precision": "fp32"}]


def test_cli_scores_no_test_review_the_train_file_holds(cli_files, capsys):
    """A review in both files was scored on what the model trained on (7 of the 2,000 held-out
    reviews README's figures used; a helper session's evaluation audit). The baseline too."""
    from helpers.imdb import baseline

    train = [json.loads(line) for line in cli_files["--train-file"].read_text().splitlines()]
    test = [json.loads(line) for line in cli_files["--test-file"].read_text().splitlines()]
    write_jsonl(cli_files["--test-file"], train[:3] + test + test[:1])  # 3 copies and a repeat
    assert call(cli_files, "--epochs", "1", "--max-len", "48") == 0
    assert json.loads(cli_files["--json"].read_text())["examples"]["test"] == len(test)
    assert f"note: 4 of the {len(test) + 4} reviews in --test-file" in capsys.readouterr().err
    report = cli_files["--json"].with_name("baseline.json")
    assert baseline.main(["--train-file", str(cli_files["--train-file"]), "--test-file",
                          str(cli_files["--test-file"]), "--json", str(report)]) == 0  # fmt: skip
    assert json.loads(report.read_text())["examples"]["test"] == len(test)


def test_cli_a_diverged_run_exits_2_naming_the_flag(cli_files, capsys):
    assert call(cli_files, "--epochs", "1", "--lr", "1e30", "--max-len", "48") == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bars
    assert (
        last
        == "error: training diverged: the training loss was nan in epoch 1 at --lr 1e+30; give a smaller --lr"
    )
    assert not cli_files["--json"].exists()


def test_cli_a_cache_whose_checkpoints_cannot_be_written_exits_2_before_training(
    cli_files, cache, capsys
):
    """A shared cache made read-only (here: checkpoints/ is a file) trained an epoch, then crashed;
    since stop 55 it is named before GloVe is read and the reviews tokenised (minutes on real data),
    whose caches in a read-only cache are only a note."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "checkpoints").write_text("")
    assert call(cli_files, "--epochs", "1", "--max-len", "48") == 2
    out, err = capsys.readouterr()
    last = err.splitlines()[-1]
    assert last.startswith("error: cannot write ") and "point HELPERS_CACHE at a folder" in last
    assert "epoch 1/1" not in err and "Traceback" not in err
    assert (
        "not cached" not in err and "words in the vocabulary" not in out
    )  # before the data's work


def test_ablation_names_the_run_that_diverged_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    runs_done = []

    def run(prepared, cfg, device, seed, progress):
        if len(runs_done) == 1:
            raise Diverged("training diverged: the training loss was nan in epoch 1 at lr 0.1")
        runs_done.append(seed)
        history = History()
        history.log(epoch=1, train_loss=0.5, valid_loss=0.6, valid_accuracy=0.7, seconds=1.0)
        return SimpleNamespace(history=history, model=None)

    monkeypatch.setattr(ablation, "run", run)
    saved = []
    with pytest.raises(Diverged, match=r"the run of 'lr 1e-3' with seed 43: training diverged"):
        ablation.ablation(SimpleNamespace(docs={}), imdb.CONFIGS["course"], [42, 43], CPU, {"lr 1e-3": {"lr": 1e-3}},
                          save=saved.append)  # fmt: skip
    assert len(saved[-1]) == 1 and saved[-1][0]["seed"] == 42


def test_ablation_runs_again_the_saved_runs_of_other_code(monkeypatch, capsys):
    """A --json of runs from an older helpers was resumed as it was: its runs and the new ones were
    summarised together, without a word."""
    trained = []

    def run(prepared, cfg, device, seed, progress):
        trained.append(seed)
        history = History()
        history.log(epoch=1, train_loss=0.5, valid_loss=0.6, valid_accuracy=0.7, seconds=1.0)
        return SimpleNamespace(history=history, model=None)

    monkeypatch.setattr(ablation, "run", run)
    digested = []  # (this run stand-in's digest would change with the list it fills)
    monkeypatch.setattr(ablation, "code_digest", lambda *fns: digested.append(fns) or "this code")
    course, prepared = imdb.CONFIGS["course"], SimpleNamespace(docs={})
    rows = ablation.ablation(prepared, course, [42, 43], CPU, {"course": {}})
    assert digested[0] == (run, ablation.score_test)  # what trains and scores a run
    assert trained == [42, 43] and all(r["code"] == "this code" for r in rows)
    assert ablation.ablation(prepared, course, [42, 43], CPU, {"course": {}}, done=rows) == rows
    assert trained == [42, 43] and "note:" not in capsys.readouterr().out  # the same code: kept
    older = [{k: v for k, v in r.items() if k != "code"} for r in rows]  # rows before the digest
    older[1]["code"] = "0" * 16  # a row of an edited trainer
    again = ablation.ablation(prepared, course, [42, 43], CPU, {"course": {}}, done=older)
    assert trained == [42, 43, 42, 43] and [r["seed"] for r in again] == [42, 43]
    assert "note: 2 of the 2 saved runs were trained by other code" in capsys.readouterr().out


def test_cli_resumes_after_ctrl_c_with_the_run_that_never_stopped(
    cli_files, capsys, monkeypatch, tmp_path
):
    """Ctrl-C lost every finished epoch; they are kept in the cache and the same command resumes."""
    args = ("--epochs", "3", "--lr", "3e-3", "--max-len", "48")
    from helpers.training import loop  # fit's module: its evaluation of each epoch

    evaluate = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", ctrl_c_at(3, evaluate))  # in epoch 3
    assert call(cli_files, *args) == 130
    assert (
        "each finished epoch is kept in the cache's checkpoints/ folder" in capsys.readouterr().err
    )
    monkeypatch.setattr(loop, "evaluate", evaluate)
    assert call(cli_files, *args) == 0
    assert "after epoch 2" in capsys.readouterr().out
    resumed = json.loads(cli_files["--json"].read_text())
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path / "fresh-cache"))  # no checkpoint: a whole run
    cli_files["--json"].unlink()
    assert call(cli_files, *args) == 0
    never_stopped = json.loads(cli_files["--json"].read_text())
    for key in ("valid_loss", "valid_accuracy", "train_loss"):
        assert resumed["history"][key] == pytest.approx(never_stopped["history"][key], rel=1e-6), (
            key
        )
    assert resumed["test_accuracy"] == never_stopped["test_accuracy"]


def test_cli_runs_of_other_seeds_keep_checkpoints_of_their_own(cli_files, capsys):
    """The checkpoint's name left the seed out: --seed 2 replaced --seed 1's finished run, which then
    trained again."""
    reports = {
        seed: {**cli_files, "--json": cli_files["--json"].with_name(f"seed{seed}.json")}
        for seed in "12"
    }
    for seed in "12":
        assert call(reports[seed], "--epochs", "1", "--max-len", "48", "--seed", seed) == 0
    assert len(list((cache_dir() / "checkpoints").glob("imdb-*.pt"))) == 2
    capsys.readouterr()
    assert call(reports["1"], "--epochs", "1", "--max-len", "48", "--seed", "1") == 0
    said = capsys.readouterr().out
    assert "after epoch 1" in said and "training again" not in said, said


def test_cli_refuses_a_report_named_like_a_saved_models_file(cli_files, capsys, tmp_path):
    assert call({**cli_files, "--json": tmp_path / "model" / "config.json"}) == 2
    assert "config.json is the name of a saved model's or run's file" in capsys.readouterr().err


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_cli_missing_file(cli_files, tmp_path, capsys):
    assert call({**cli_files, "--train-file": tmp_path / "nope.jsonl"}) == 2
    assert "nope.jsonl does not exist" in error_line(capsys)


def test_cli_malformed_json_line_names_the_file_and_line(cli_files, capsys):
    path = cli_files["--train-file"]
    lines = path.read_text().splitlines(True)
    lines[4] = '{"text": "no closing brace", "label": 1\n'
    path.write_text("".join(lines))
    assert call(cli_files) == 2
    err = error_line(capsys)
    assert f"{path}, line 5" in err and "not valid JSON" in err, err


def test_cli_train_file_that_is_not_utf8(cli_files, capsys):
    path = cli_files["--train-file"]
    path.write_bytes(path.read_bytes() + '{"text": "caf\u00e9", "label": 1}\n'.encode("latin-1"))
    assert call(cli_files) == 2
    err = error_line(capsys)
    assert f"{path} is not UTF-8 text" in err and "line 241" in err and "iconv" in err, err


def test_cli_string_labels_are_named(cli_files, capsys):
    write_jsonl(
        cli_files["--train-file"],
        [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}] * 3,
    )
    assert call(cli_files) == 2
    err = error_line(capsys)
    assert "train.jsonl: labels must be one of 0, 1" in err, err
    assert "'pos' (3 rows, first row 1)" in err and "'neg' (3 rows, first row 2)" in err, err


def test_cli_file_that_is_not_glove(cli_files, capsys):
    cli_files["--glove-file"].write_text("word,0.1,0.2\nfilm,0.3,0.4\n")
    assert call(cli_files) == 2
    err = error_line(capsys)
    assert "glove.txt is not a GloVe text file" in err and "commas" in err, err


@pytest.mark.parametrize(
    "flag, value, said",
    [
        ("--epochs", "0", "error: --epochs must be > 0 and finite, got 0"),
        ("--lr", "-1", "error: --lr must be > 0 and finite, got -1.0"),
        ("--max-len", "0", "error: --max-len must be > 0 and finite, got 0"),
    ],
)
def test_cli_settings_out_of_range(cli_files, capsys, flag, value, said):
    assert call(cli_files, flag, value) == 2
    assert said in error_line(capsys)
    assert not cli_files["--json"].exists()


def test_real_imdb_learns(shared_data, cache, monkeypatch):
    """Real reviews and GloVe: 2,000 reviews, 2 epochs of the best config beat chance by far."""
    monkeypatch.setenv("HELPERS_DATA_DIR", str(shared_data))
    sizes = Sizes03(
        synthetic=False, max_train=2000, max_test=500, glove_dim=50, epochs=None, max_len=None
    )
    splits, glove, source = imdb.notebook_data(sizes)
    assert "HELPERS_DATA_DIR" in source and glove.dim == 50
    prepared = imdb.prepare(splits, glove, progress=False)
    assert prepared.coverage > 0.95
    result = imdb.run(
        prepared, imdb.CONFIGS["best"].replace(epochs=2, max_len=256), CPU, progress=False
    )
    test = imdb.score_test(prepared, result.model, CPU)
    assert test.accuracy > 0.7, test
    assert np.isfinite(result.history["valid_loss"]).all()


def test_cli_refuses_one_class_and_an_unwritable_report_before_training(tmp_path, capsys):
    texts, _ = synthetic_reviews(40)
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": t, "label": 1} for t in texts])
    args = ["--train-file", str(one), "--test-file", str(one), "--glove-file", str(one)]
    assert cli.main([*args, "--json", str(tmp_path / "o.json")]) == 2
    assert "labels are all 1" in capsys.readouterr().err
    assert cli.main([*args, "--json", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err


def test_leaving_out_a_token_measures_its_effect_on_the_prediction(prepared):
    """Each token's score is the drop in P(predicted class) when the model runs with that one token
    masked out (the other tokens keep their positions)."""
    result = imdb.run(prepared, SMALL.replace(epochs=2), CPU, progress=False)
    model = result.model.eval()
    drops = imdb.token_occlusion(prepared, model, CPU, "valid", 3)
    doc = prepared.docs["valid"][3][: model.max_len]
    assert len(drops) == len(doc)
    ids, mask = text.pad_batch([doc], model.max_len)
    with torch.no_grad():
        full = torch.softmax(model(ids, mask), -1)[0]
        c = int(full.argmax())
        for t in (0, len(doc) // 2):
            dropped = mask.clone()
            dropped[0, t] = False
            assert abs(drops[t] - (full[c] - torch.softmax(model(ids, dropped), -1)[0, c])) < 1e-5
    assert any(abs(d) > 1e-4 for d in drops)  # some tokens matter


# --- the ablation and the baseline commands ---------------------------------------------------------


def test_ablation_runs_every_change_and_seed_resumes_and_summarises(cli_files, capsys):
    from helpers.imdb import ablation

    args = ["--train-file", str(cli_files["--train-file"]), "--glove-file",
            str(cli_files["--glove-file"]), "--json", str(cli_files["--json"])]  # fmt: skip
    changes = {"course": {}, "lr 3e-3": {"lr": 3e-3}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ablation, "CHANGES", changes)
        assert ablation.main([*args, "--seeds", "2", "--epochs", "1"]) == 0
        saved = json.loads(cli_files["--json"].read_text())
        assert [(r["change"], r["seed"]) for r in saved["runs"]] == [
            ("course", 42), ("course", 43), ("lr 3e-3", 42), ("lr 3e-3", 43)]  # fmt: skip
        assert saved["setting"]["examples"] == {"train": 216, "valid": 24}  # no test split at all
        out = capsys.readouterr().out
        assert "validation accuracy over seeds" in out and "one seed gives none" not in out
        assert ablation.main([*args, "--seeds", "3", "--epochs", "1"]) == 0  # resumes: 2 runs more
    again = json.loads(cli_files["--json"].read_text())["runs"]
    assert again[:4] == saved["runs"] and len(again) == 6
    table = ablation.summary(again)
    assert list(table.index) == ["course", "lr 3e-3"] and table.loc["course", "vs course"] == 0
    assert (
        table.loc["course", "runs"] == 3
        and table.loc["course", "low"] <= table.loc["course", "mean"]
    )


def test_ablation_stopped_by_a_full_disk_keeps_its_saved_runs_and_says_so(cli_files, capsys):
    """It was the one training command without a full disk's one line: a chained traceback."""
    from helpers.files import DiskFull, write_report
    from helpers.imdb import ablation

    args = ["--train-file", str(cli_files["--train-file"]), "--glove-file",
            str(cli_files["--glove-file"]), "--json", str(cli_files["--json"])]  # fmt: skip
    writes = []

    def second_write_fails(path, command, report):
        writes.append(len(report["runs"]))
        if len(writes) > 1:
            raise DiskFull(
                f"the disk holding {path.parent} is full: {path.name} could not be written"
            )
        return write_report(path, command, report)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ablation, "CHANGES", {"course": {}})
        patch.setattr(ablation, "write_report", second_write_fails)
        assert ablation.main([*args, "--seeds", "2", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].endswith(f"is full: {cli_files['--json'].name} could not be written; 1 run saved "
                            f"in {cli_files['--json']}; the same command runs the rest"), err  # fmt: skip
    assert err[-1].startswith("error: the disk holding") and "Traceback" not in "\n".join(err)
    assert len(json.loads(cli_files["--json"].read_text())["runs"]) == 1


@pytest.mark.parametrize(
    "extra, words",
    [(["--seeds", "0"], "--seeds must be between 1 and 20"),
     (["--valid-fraction", "1.5"], "--valid-fraction must be between 0 and 1")],
)  # fmt: skip
def test_ablation_refuses_bad_settings(cli_files, capsys, extra, words):
    from helpers.imdb import ablation

    args = ["--train-file", str(cli_files["--train-file"]), "--glove-file",
            str(cli_files["--glove-file"]), "--json", str(cli_files["--json"])]  # fmt: skip
    assert ablation.main([*args, *extra]) == 2
    assert words in capsys.readouterr().err


def test_ablation_from_best_scores_a_choose_file_as_the_command_scores_its_test_file(
    cli_files, capsys
):
    """--base best --choose-file F: each run's final model is scored on F, exactly as
    `python -m helpers.imdb --config best --test-file F` scores it, and the summary ranks by it."""
    from helpers.imdb import ablation

    files = {k: str(v) for k, v in cli_files.items()}
    args = ["--train-file", files["--train-file"], "--glove-file", files["--glove-file"],
            "--json", files["--json"], "--seeds", "1", "--epochs", "1"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ablation, "BEST_CHANGES", {"best": {}, "1 head": {"heads": 1}})
        assert ablation.main([*args, "--base", "best", "--choose-file", files["--test-file"]]) == 0
    runs = json.loads(cli_files["--json"].read_text())["runs"]
    assert [(r["change"], r["config"]["heads"], r["config"]["pooling"]) for r in runs] == [
        ("best", 2, "mean+max"), ("1 head", 1, "mean+max")]  # fmt: skip
    table = ablation.summary(runs)
    assert list(table.columns[:5]) == ["runs", "mean", "sd", "low", "high"]
    assert table.loc["1 head", "mean"] == runs[1]["choose_accuracy"] != runs[1]["valid_accuracy"]
    assert table.loc["best", "vs best"] == 0
    out = capsys.readouterr().out
    assert "vs best" in out and "--choose-file's accuracy over seeds" in out  # which split, said
    assert "NaN" not in out and "sample sd; - where one seed gives none" in out  # said so
    tmp = cli_files["--json"].with_name("cli.json")
    assert call({**cli_files, "--test-file": cli_files["--test-file"], "--json": tmp},
                "--config", "best", "--epochs", "1") == 0  # fmt: skip
    report = json.loads(tmp.read_text())
    assert report["test_accuracy"] == runs[0]["choose_accuracy"]


def test_ablation_refuses_the_train_file_as_choose_file(cli_files, capsys):
    from helpers.imdb import ablation

    train = str(cli_files["--train-file"])
    args = ["--train-file", train, "--glove-file", str(cli_files["--glove-file"]),
            "--json", str(cli_files["--json"]), "--choose-file", train]  # fmt: skip
    assert ablation.main(args) == 2
    assert "is the --train-file; give reviews kept apart from training" in capsys.readouterr().err
    assert not cli_files["--json"].exists()


def test_ablation_refuses_a_json_of_other_settings_or_of_another_tool(cli_files, capsys):
    """Runs of another setting (here --base best after the course ablation) are kept, not thrown away."""
    from helpers.imdb import ablation

    out = cli_files["--json"]
    args = ["--train-file", str(cli_files["--train-file"]), "--glove-file",
            str(cli_files["--glove-file"]), "--json", str(out), "--seeds", "1", "--epochs", "1"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ablation, "CHANGES", {"course": {}})
        assert ablation.main(args) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert ablation.main([*args, "--base", "best"]) == 2
    err = capsys.readouterr().err
    assert "holds 1 run with other settings (heads 1 (now 2), lr 0.0001 (now 0.001)," in err, err
    assert "changed); give another --json, or delete it to start again" in err, err
    assert out.read_bytes() == before
    out.write_text("[1, 2]")
    assert ablation.main(args) == 2
    assert "is not a file this command wrote" in capsys.readouterr().err


def test_cli_never_writes_its_report_over_an_input_or_other_work(cli_files, capsys):
    """--json naming an input (by a hard link too), another tool's file or the report of a run with
    other settings exits 2 and leaves the file as it was; the same command again rewrites its own."""
    os_link = __import__("os").link
    hard = cli_files["--train-file"].with_name("hard.jsonl")
    os_link(cli_files["--train-file"], hard)
    other = cli_files["--json"].with_name("ablation.json")
    other.write_text(json.dumps({"setting": {}, "runs": []}))
    for target, said in ((cli_files["--train-file"], "is the --train-file"), (hard, "is the --train-file"),
                         (cli_files["--glove-file"], "is the --glove-file"),
                         (other, "holds JSON that python -m helpers.imdb did not write")):  # fmt: skip
        before = target.read_bytes()
        assert call({**cli_files, "--json": target}, "--epochs", "1") == 2
        assert said in error_line(capsys) and target.read_bytes() == before
    assert call(cli_files, "--epochs", "1") == 0
    assert call(cli_files, "--epochs", "1") == 0  # the same run again: its own report, rewritten
    before = cli_files["--json"].read_bytes()
    capsys.readouterr()
    assert call(cli_files, "--epochs", "1", "--seed", "7") == 2
    assert "holds the report of a run with other settings" in error_line(capsys)
    assert cli_files["--json"].read_bytes() == before


def ablation_args(files: dict, **changes) -> list[str]:
    flags = {"--train-file": files["--train-file"], "--glove-file": files["--glove-file"],
             "--json": files["--json"], "--seeds": 1, "--epochs": 1, **changes}  # fmt: skip
    return [str(x) for kv in flags.items() for x in kv]


def test_ablation_and_cli_refuse_evaluation_reviews_that_are_training_reviews(cli_files, capsys):
    from helpers.imdb import ablation

    train = cli_files["--train-file"]
    copy = train.with_name("copy.jsonl")
    copy.write_bytes(train.read_bytes())
    link = train.with_name("link.jsonl")
    link.symlink_to(train)
    for choose, said in (
        (copy, "of its 240 reviews are in the --train-file"),
        (link, "is the --train-file"),
    ):
        assert ablation.main(ablation_args(cli_files, **{"--choose-file": choose})) == 2
        assert said in error_line(capsys)
    assert call({**cli_files, "--test-file": link}, "--epochs", "1") == 2
    assert "--test-file" in error_line(capsys)
    assert not cli_files["--json"].exists()


def test_a_one_class_evaluation_file_is_noted_not_refused(capsys):
    """A test file of positives only is a fair question (the recall of one class), so it runs, but
    the note says what its accuracy measures; two classes, no note."""
    from helpers.imdb.data import check_apart

    train = (["a good film", "a bad film"], [1, 0])
    check_apart(train, "train.jsonl", (["great", "fine"], [1, 1]), "pos.jsonl", "--choose-file")
    assert capsys.readouterr().err == (
        "note: every review in --choose-file pos.jsonl is labelled 1, so its accuracy is the recall "
        "of class 1 alone; a model that always says 1 scores 100%\n"
    )
    check_apart(train, "train.jsonl", (["great", "awful"], [1, 0]), "both.jsonl", "--test-file")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("changes", "said"),
    [({"--epochs": 0}, "error: --epochs must be > 0"),
     ({"--valid-fraction": 0.999}, "the train split of"),
     ({"--train-file": "ONE_CLASS"}, "a classifier needs at least two classes"),
     ({"--choose-file": "NULL_TEXT"}, "is null (no text)")],
)  # fmt: skip
def test_ablation_refuses_what_the_imdb_command_refuses(cli_files, capsys, changes, said):
    """No silent fallback to the base's epochs, no traceback on an empty split, no one-class
    training, no JSON null read as the word "None"."""
    from helpers.imdb import ablation

    rows = [json.loads(line) for line in cli_files["--train-file"].read_text().splitlines()]
    special = {
        "ONE_CLASS": write_jsonl(cli_files["--json"].with_name("one.jsonl"), [{**r, "label": 1} for r in rows]),
        "NULL_TEXT": write_jsonl(cli_files["--json"].with_name("null.jsonl"), [{"text": None, "label": 1}]),
    }  # fmt: skip
    changes = {k: special.get(v, v) if isinstance(v, str) else v for k, v in changes.items()}
    assert ablation.main(ablation_args(cli_files, **changes)) == 2
    err = error_line(capsys)
    assert said in err, err
    assert not cli_files["--json"].exists()


def test_ablation_interrupted_says_so_in_one_line_and_resumes(cli_files, capsys, monkeypatch):
    from helpers.imdb import ablation

    real = ablation.run
    monkeypatch.setattr(ablation, "run", ctrl_c_at(2, real))
    monkeypatch.setattr(ablation, "CHANGES", {"course": {}, "lr 3e-3": {"lr": 3e-3}})
    assert ablation.main(ablation_args(cli_files)) == 130
    err = capsys.readouterr().err
    last = err.splitlines()[-1]  # after the progress bars
    assert last.startswith("stopped: 1 run saved in") and "Traceback" not in err, err
    monkeypatch.setattr(ablation, "run", real)
    assert ablation.main(ablation_args(cli_files)) == 0
    runs = json.loads(cli_files["--json"].read_text())["runs"]
    assert [r["change"] for r in runs] == ["course", "lr 3e-3"]


def test_ablation_names_a_json_whose_runs_are_not_its_own(cli_files, capsys):
    from helpers.imdb import ablation

    cli_files["--json"].write_text(json.dumps({"setting": {}, "runs": [{"seed": 42}]}))
    assert ablation.main(ablation_args(cli_files)) == 2
    assert "is not a file this command wrote" in error_line(capsys)


def test_baseline_refuses_its_input_as_json_and_the_train_file_as_test_file(cli_files, capsys):
    from helpers.imdb import baseline

    train, test = str(cli_files["--train-file"]), str(cli_files["--test-file"])
    args = ["--train-file", train, "--test-file", test, "--json", str(cli_files["--json"])]
    before = cli_files["--train-file"].read_bytes()
    assert baseline.main([*args[:4], "--json", train]) == 2
    assert "--json" in error_line(capsys) and cli_files["--train-file"].read_bytes() == before
    assert baseline.main([*args[:2], "--test-file", train, *args[4:]]) == 2
    assert "--test-file" in error_line(capsys) and not cli_files["--json"].exists()


def test_baseline_bad_input_leaves_no_folder_behind(cli_files, tmp_path, capsys):
    """A missing --train-file exited 2 but left --json's new folders behind."""
    from helpers.imdb import baseline

    out = tmp_path / "fresh dir" / "a" / "b.json"
    args = [
        "--train-file",
        str(tmp_path / "missing.jsonl"),
        "--test-file",
        str(cli_files["--test-file"]),
    ]
    assert baseline.main([*args, "--json", str(out)]) == 2
    assert "missing.jsonl" in error_line(capsys) and not (tmp_path / "fresh dir").exists()


def test_the_measured_ablation_ships_with_the_package():
    from helpers.imdb import ablation

    measured = ablation.measured()
    seeds = {r["seed"] for r in measured["runs"]}
    assert len(seeds) >= 3 and {r["change"] for r in measured["runs"]} == set(ablation.CHANGES)
    assert measured["setting"]["examples"]["valid"] >= 500


def test_baseline_chooses_c_on_validation_and_scores_test_once(cli_files, capsys):
    from helpers.imdb import baseline

    args = [f"{k}={v}" for k, v in cli_files.items() if k != "--glove-file"]
    assert baseline.main(args) == 0
    report = json.loads(cli_files["--json"].read_text())
    by_c = {float(c): accuracy for c, accuracy in report["valid_accuracy_by_C"].items()}
    assert report["chosen_C"] == max(by_c, key=by_c.get)
    assert report["test_accuracy"] > 0.8  # the synthetic labels follow the words
    assert report["examples"] == {"train": 216, "valid": 24, "test": 60}
    missing = {**cli_files, "--test-file": cli_files["--json"].parent / "nope.jsonl"}
    assert baseline.main([f"{k}={v}" for k, v in missing.items() if k != "--glove-file"]) == 2
    assert "nope.jsonl does not exist" in capsys.readouterr().err


def test_the_students_pipeline_scores_the_trained_model_as_fit_did(prepared):
    from helpers.checks.pipeline import check_pipeline_on_model

    cfg = SMALL.replace(epochs=1)
    result = imdb.run(prepared, cfg, CPU, progress=False)
    items = list(zip(prepared.docs["valid"], prepared.labels["valid"].tolist()))

    def collate(examples, max_len):
        ids, mask = text.pad_batch([d for d, _ in examples], max_len)
        return ids, mask, torch.tensor([y for _, y in examples])

    def loaders(train, valid, batch_size, collate):
        make = torch.utils.data.DataLoader
        return make(train, batch_size, shuffle=True, collate_fn=collate), make(
            valid, batch_size, collate_fn=collate
        )

    @torch.no_grad()
    def evaluate(model, batches):
        model.eval()
        hits = [(model(i, m).argmax(-1) == y).float() for i, m, y in batches]
        return torch.cat(hits).mean()

    reference = result.history.last("valid_accuracy")
    ok = check_pipeline_on_model(
        collate, loaders, evaluate, result.model, items, cfg.max_len, reference
    )
    assert ok.passed, ok
    off = check_pipeline_on_model(collate, loaders, evaluate, result.model, items, cfg.max_len, 0.0)
    assert not off.passed and "the course's loop measured 0.0%" in off.verdict, off
    for returned in (0.0, float("nan"), None):  # functions that fail their own check above
        bad = check_pipeline_on_model(
            collate,
            loaders,
            lambda m, b, r=returned: r,
            result.model,
            items,
            cfg.max_len,
            reference,
        )
        assert not bad.passed and "evaluation pass does not yet pass its check" in bad.verdict, bad


def test_mean_and_max_pooling_ignores_padding_and_own_modules_need_one_head(prepared):
    model = imdb.build_model(prepared, SMALL.replace(pooling="mean+max")).eval()
    ids, mask = text.pad_batch([prepared.docs["valid"][0][:20]], 64)
    wide = [torch.cat([t, torch.zeros(1, 10, dtype=t.dtype)], dim=1) for t in (ids, mask)]
    with torch.no_grad():
        assert torch.allclose(model(ids, mask), model(*wide), atol=1e-6)
    assert model.head.in_features == 2 * prepared.vectors.shape[1]
    with pytest.raises(ConfigError, match="pooling must be one of mean, mean\\+max"):
        SMALL.replace(pooling="max")
    with pytest.raises(ValueError, match="single-head, but the config asks for 2 heads"):
        imdb.build_model(prepared, SMALL.replace(heads=2), attention=layers.SelfAttention)


def test_hyperparameter_explorer_starts_at_the_notebooks_own_settings(prepared):
    """EPOCHS = 12 or MAX_LEN = 100 in the parameters cell: the controls start there, not at the
    nearest value of their usual range."""
    from helpers.widgets.imdb import hyperparameter_explorer

    explorer = hyperparameter_explorer(prepared, CPU, SMALL.replace(epochs=12, max_len=100))
    assert explorer.controls["epochs"].value == 12 and explorer.controls["max_len"].value == 100


def test_a_review_index_beyond_the_validation_reviews_is_refused(prepared):
    from helpers.widgets.imdb import review_attention

    result = imdb.run(prepared, SMALL.replace(epochs=1), CPU, progress=False)
    with pytest.raises(ValueError, match="starts at 10000, but it takes numbers from 0 to"):
        review_attention(prepared, result.model, CPU, index=10_000)


def test_use_my_modules_without_the_classes_says_where_to_paste_them():
    with pytest.raises(
        NameError, match="MyLayerNorm is not defined: paste your classes from notebook 02"
    ):
        imdb.my_modules({"MySelfAttention": object})
    assert imdb.my_modules({"MySelfAttention": int, "MyLayerNorm": float}) == (int, float)


@pytest.mark.parametrize("field", ["max_train", "max_test"])
def test_synthetic_reviews_name_a_count_left_as_none_all_instead_of_a_type_error(field):
    from helpers.profiles import sizes_for

    sizes = sizes_for("03", "smoke").replace(**{field: None})  # None means all 25k real reviews
    with pytest.raises(ConfigError, match=f"{field} is None .* synthetic examples are made to"):
        imdb_data.notebook_data(sizes)


def test_a_run_whose_loss_turned_nan_stops_instead_of_reporting_scores(prepared):
    """Its validation accuracy (the majority class) looked like a model's. It stops after the first
    such epoch, before the epoch's other callbacks and its checkpoint."""
    seen = []
    with pytest.raises(
        Diverged, match=r"training loss was nan in epoch 1 at lr 1e\+30; give a smaller lr"
    ):
        imdb.run(
            prepared, SMALL.replace(epochs=3, lr=1e30), CPU, progress=False, callbacks=[seen.append]
        )
    assert seen == []


def test_a_test_file_left_with_one_class_after_its_repeats_go_says_so(capsys):
    from helpers.imdb.data import kept_apart

    train = (["p1", "p2", "n1", "n2"], [1, 1, 0, 0])
    kept = kept_apart(train, "train.jsonl", (["p1", "p2", "x1", "x2", "x3"], [1, 1, 0, 0, 0]),
                      "test.jsonl", "--test-file")  # fmt: skip
    assert kept == (["x1", "x2", "x3"], [0, 0, 0])
    err = capsys.readouterr().err
    assert "2 of the 5 reviews in --test-file test.jsonl repeat" in err
    assert "every review in --test-file test.jsonl is labelled 0" in err


def test_training_splits_drop_repeats_before_splitting(tmp_path, capsys):
    """A repeated review is trained on or validated on, never both (a copy on each side of the split
    was validated on memory: 4 of the 1,000 validation reviews of the shared 10,000)."""
    from helpers.imdb.data import training_splits

    texts, labels = synthetic_reviews(200)
    rows = [{"text": t, "label": y} for t, y in zip(texts, labels)]
    path = write_jsonl(tmp_path / "train.jsonl", rows + rows[:50])
    everything, train, valid = training_splits(path, 0.2)
    assert len(everything[0]) == len(set(everything[0])) == 200
    assert len(train[0]) + len(valid[0]) == 200 and not set(train[0]) & set(valid[0])
    assert dict(zip(*everything)) == dict(zip(texts, labels))  # labels stay with their texts
    assert capsys.readouterr().err == (
        f"note: 50 of the 250 reviews in --train-file {path} repeat an earlier one; training and "
        "validating on the other 200\n"
    )
    training_splits(write_jsonl(tmp_path / "once.jsonl", rows), 0.2)
    assert capsys.readouterr().err == ""


def test_every_imdb_command_trains_and_validates_without_repeats(cli_files, capsys, monkeypatch):
    from helpers.imdb import ablation, baseline

    train = cli_files["--train-file"]
    rows = train.read_text().splitlines()
    train.write_text("\n".join(rows + rows[:40]) + "\n")
    args = [f"{k}={v}" for k, v in cli_files.items() if k != "--glove-file"]
    assert baseline.main(args) == 0
    assert "40 of the 280 reviews in --train-file" in capsys.readouterr().err
    report = json.loads(cli_files["--json"].read_text())
    assert report["examples"]["train"] + report["examples"]["valid"] == 240
    cli_files["--json"].unlink()
    assert call(cli_files, "--epochs", "1", "--max-len", "32") == 0
    assert "40 of the 280 reviews in --train-file" in capsys.readouterr().err
    report = json.loads(cli_files["--json"].read_text())
    assert report["examples"]["train"] + report["examples"]["valid"] == 240
    cli_files["--json"].unlink()
    read = []  # the ablation reads its splits the same way (its runs are tested above)

    def spy(file, fraction):
        read.append(file)
        raise ValueError("read")

    monkeypatch.setattr(ablation, "training_splits", spy)
    assert ablation.main(ablation_args(cli_files)) == 2 and read == [str(train)]


def test_cli_never_replaces_the_report_of_a_run_on_other_data(cli_files, capsys):
    """Only the config and the seed were compared: the same flags on another --train-file or with
    another --valid-fraction replaced the report (450/50 reviews -> 210/90), exit 0."""
    assert call(cli_files, "--epochs", "1", "--max-len", "32", "--quiet") == 0
    report = json.loads(cli_files["--json"].read_text())
    assert report["valid_fraction"] == 0.1 and len(report["data"]) == 16
    assert report["files"]["train"] == str(cli_files["--train-file"].resolve())
    before = cli_files["--json"].read_bytes()
    capsys.readouterr()
    assert (
        call(cli_files, "--epochs", "1", "--max-len", "32", "--quiet", "--valid-fraction", "0.3")
        == 2
    )
    assert "holds the report of a run on other data" in error_line(capsys)
    rows = cli_files["--train-file"].read_text().splitlines()
    other = cli_files["--train-file"].with_name("other.jsonl")
    other.write_text("\n".join(rows[:200]) + "\n")
    assert (
        call({**cli_files, "--train-file": other}, "--epochs", "1", "--max-len", "32", "--quiet")
        == 2
    )
    assert "holds the report of a run on other data" in error_line(capsys)
    assert cli_files["--json"].read_bytes() == before
    assert (
        call(cli_files, "--epochs", "1", "--max-len", "32", "--quiet") == 0
    )  # the same run rewrites its own
