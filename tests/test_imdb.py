import io
import json
import tarfile

import numpy as np
import pytest
import torch

from helpers import imdb, layers, widgets
from helpers.classifier import MyTransformer, masked_mean
from helpers.download import DownloadError


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prepared():
    sizes = {"synthetic": True, "max_train": 400, "max_test": 100, "glove_dim": 16}
    splits, glove, _ = imdb.notebook_data(sizes)
    return imdb.prepare(splits, glove, progress=False)


SMALL = {**imdb.CONFIGS["course"], "epochs": 3, "max_len": 64, "lr": 3e-3}


# --- data --------------------------------------------------------------------------------------


def test_read_jsonl_and_its_errors(tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"text": "good", "label": 1}, {"text": "bad", "label": 0}]
    )
    assert imdb.read_jsonl(path) == (["good", "bad"], [1, 0])
    with pytest.raises(
        ValueError, match=r"line 1: needs fields 'text' and 'label'; found \['review'\]"
    ):
        imdb.read_jsonl(write_jsonl(tmp_path / "b.jsonl", [{"review": "x"}]))
    with pytest.raises(FileNotFoundError, match="expected a jsonl file"):
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


def test_offline_without_data_says_what_to_do(monkeypatch, cache):
    monkeypatch.delenv("HELPERS_DATA_DIR", raising=False)

    def no_hub():
        raise ConnectionError("offline")

    def no_tarball(name):
        raise DownloadError(f"could not download {name}")

    monkeypatch.setattr(imdb, "_from_hub", no_hub)
    monkeypatch.setattr(imdb, "fetch", no_tarball)
    with pytest.raises(RuntimeError, match="set HELPERS_DATA_DIR to that folder") as err:
        imdb.load_imdb()
    assert "offline" in str(err.value) and "aclImdb_v1.tar.gz" in str(err.value)


def tar_with(tmp_path, names):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            data = b"A fine film."
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tarball_extraction_refuses_paths_outside_the_target(tmp_path):
    with pytest.raises(ValueError, match="refusing to extract '../evil.txt'"):
        imdb.extract_tar_safely(tar_with(tmp_path, ["../evil.txt"]), tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    names = ["aclImdb/train/pos/1_9.txt", "aclImdb/train/neg/2_1.txt", "aclImdb/test/pos/3_8.txt"]
    imdb.extract_tar_safely(tar_with(tmp_path, names), tmp_path / "ok")
    data = imdb.read_aclimdb(tmp_path / "ok" / "aclImdb")
    assert data["train"] == (["A fine film.", "A fine film."], [0, 1]) and data["test"][1] == [1]


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


def test_model_messages():
    with pytest.raises(ValueError, match="3 heads do not divide the GloVe dimension 8"):
        MyTransformer(torch.randn(5, 8), heads=3)
    model = MyTransformer(torch.randn(5, 8), max_len=4)
    with pytest.raises(ValueError, match="batch has 6 tokens but max_len is 4"):
        model(torch.ones(1, 6, dtype=torch.long), torch.ones(1, 6, dtype=torch.bool))


def test_frozen_embeddings_stay_frozen(prepared):
    model = imdb.build_model(prepared, {**SMALL, "freeze_embeddings": True})
    assert not model.embed.weight.requires_grad
    assert imdb.build_model(
        prepared, {**SMALL, "freeze_embeddings": False}
    ).embed.weight.requires_grad


# --- training ----------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_learns(prepared):
    result = imdb.run(prepared, {**SMALL, "epochs": 6}, torch.device("cpu"), progress=False)
    losses = result["history"]["train_loss"]
    assert losses[-1] < losses[0] - 0.1
    assert result["test"]["accuracy"] > 0.8  # the synthetic labels are learnable


def test_checkpoint_resumes_after_the_last_epoch(prepared, cache, capsys):
    first = imdb.run(prepared, {**SMALL, "epochs": 2}, torch.device("cpu"), checkpoint=True)
    assert len(list((cache / "checkpoints").glob("*.pt"))) == 1
    again = imdb.run(prepared, {**SMALL, "epochs": 2}, torch.device("cpu"), checkpoint=True)
    assert "resuming" in capsys.readouterr().out
    assert again["history"] == first["history"]  # nothing retrained
    assert again["test"]["accuracy"] == first["test"]["accuracy"]


def test_students_modules_plug_in(prepared):
    result = imdb.run(
        prepared,
        SMALL,
        torch.device("cpu"),
        progress=False,
        attention=layers.SelfAttention,
        layer_norm=layers.LayerNorm,
    )
    assert isinstance(result["model"].blocks[0].attention, layers.SelfAttention)
    assert isinstance(result["model"].norm, layers.LayerNorm)
    assert len(result["history"]["epoch"]) == SMALL["epochs"]


# --- widgets and tables ------------------------------------------------------------------------


def test_hyperparameter_explorer_overlays_runs(prepared):
    explorer = widgets.hyperparameter_explorer(
        prepared, torch.device("cpu"), {**SMALL, "epochs": 1}
    )
    explorer.button.click()
    explorer.controls["blocks"].value = 2
    explorer.controls["epochs"].value = 2
    explorer.button.click()
    assert len(explorer.runs) == 2 and "blocks=2" in explorer.runs[1]["label"]
    assert len(explorer.runs[1]["history"]["epoch"]) == 2
    explorer.controls["heads"].value = 5  # 5 does not divide 16
    explorer.button.click()
    assert len(explorer.runs) == 2


def test_review_attention_and_mistakes(prepared):
    result = imdb.run(prepared, SMALL, torch.device("cpu"), progress=False)
    view = widgets.review_attention(prepared, result["model"], torch.device("cpu"))
    first = view.state
    assert len(first["tokens"]) == len(first["weights"]) and abs(sum(first["weights"]) - 1) < 1e-4
    view.controls["index"].value = 5
    assert view.state["label"] == int(prepared.labels["test"][5])
    table = imdb.misclassified(prepared, result["model"], torch.device("cpu"), k=3, max_len=64)
    assert len(table) <= 3 and list(table.columns) == ["confidence", "true", "review"]
    assert (table["confidence"].diff().dropna() <= 0).all()


# --- command line ------------------------------------------------------------------------------


def test_cli_writes_the_report(tmp_path, cache):
    texts, labels = imdb.synthetic_reviews(300)
    rows = [{"text": t, "label": y} for t, y in zip(texts, labels)]
    train_file = write_jsonl(tmp_path / "train.jsonl", rows[:240])
    test_file = write_jsonl(tmp_path / "test.jsonl", rows[240:])
    g = imdb.synthetic_glove(8)
    glove_file = tmp_path / "glove.txt"
    glove_file.write_text(
        "".join(w + " " + " ".join(map(str, v)) + "\n" for w, v in zip(g.words, g.vectors))
    )
    out = tmp_path / "report.json"
    args = [
        "--train-file",
        str(train_file),
        "--test-file",
        str(test_file),
        "--glove-file",
        str(glove_file),
    ]
    assert (
        imdb.main([*args, "--epochs", "2", "--lr", "3e-3", "--max-len", "48", "--json", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert report["config"]["epochs"] == 2 and report["config"]["max_len"] == 48
    assert len(report["history"]["valid_loss"]) == 2 and 0 <= report["test_accuracy"] <= 1
    assert {"read", "glove parse", "tokenise train", "epoch 1", "epoch 2", "test"} <= set(
        report["seconds"]
    )
    assert report["examples"] == {"train": 216, "valid": 24, "test": 60}


def test_cli_bad_file_is_a_clear_error(tmp_path, capsys):
    args = ["--train-file", str(tmp_path / "nope.jsonl"), "--test-file", "x", "--glove-file", "y"]
    assert imdb.main([*args, "--json", str(tmp_path / "o.json")]) == 2
    assert "nope.jsonl does not exist" in capsys.readouterr().err


def test_real_imdb_learns(shared_data, cache, monkeypatch):
    """Real reviews and real GloVe: 2,000 reviews, 2 epochs of the best config beat chance by far."""
    monkeypatch.setenv("HELPERS_DATA_DIR", str(shared_data))
    sizes = {"synthetic": False, "max_train": 2000, "max_test": 500, "glove_dim": 50}
    splits, glove, source = imdb.notebook_data(sizes)
    assert "HELPERS_DATA_DIR" in source and glove.dim == 50
    prepared = imdb.prepare(splits, glove, progress=False)
    assert prepared.coverage > 0.95
    config = {**imdb.CONFIGS["best"], "epochs": 2, "max_len": 256}
    result = imdb.run(prepared, config, torch.device("cpu"), progress=False)
    assert result["test"]["accuracy"] > 0.7, result["test"]
    assert np.isfinite(result["history"]["valid_loss"]).all()
