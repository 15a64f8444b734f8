"""GPT-2's weights in the course's GPT (``GPT.from_pretrained``): the logits equal
``transformers.GPT2LMHeadModel``'s on a small random GPT-2 saved and reloaded offline."""

import pytest
import torch

from helpers.gpt import GPT
from helpers.gpt.pretrained import config_from_gpt2

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def saved_gpt2(tmp_path_factory):
    config = transformers.GPT2Config(vocab_size=97, n_positions=24, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(folder)
    return hf, folder


def test_from_pretrained_gives_the_same_logits_as_transformers(saved_gpt2):
    hf, folder = saved_gpt2
    ours = GPT.from_pretrained(str(folder))
    idx = torch.randint(97, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = hf(idx).logits
        mine = ours(idx)
    assert mine.shape == (3, 24, 97)
    assert (mine - theirs).abs().max().item() < 1e-4


def test_teaching_path_matches_too(saved_gpt2):
    hf, folder = saved_gpt2
    ours = GPT.from_pretrained(str(folder))
    slow = GPT(ours.config.replace(fast=False)).eval()
    slow.load_state_dict(ours.state_dict())
    idx = torch.randint(97, (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (slow(idx) - hf(idx).logits).abs().max().item() < 1e-4


def test_config_names_an_unsupported_activation():
    config = transformers.GPT2Config(activation_function="relu")
    with pytest.raises(ValueError, match="not supported"):
        config_from_gpt2(config)


@pytest.mark.parametrize(
    "setting",
    [{"scale_attn_weights": False}, {"scale_attn_by_inverse_layer_idx": True},
     {"tie_word_embeddings": False}],
    ids=lambda s: next(iter(s)),
)  # fmt: skip
def test_config_refuses_gpt2_settings_gpt_does_not_have(setting):
    """They were ignored: logits 0.26 to 20 away from GPT2LMHeadModel's on a small random GPT-2."""
    config = transformers.GPT2Config(**setting)
    with pytest.raises(
        ValueError, match=f"this GPT-2 sets {next(iter(setting))}=.*GPT2LMHeadModel"
    ):
        config_from_gpt2(config)


def test_greedy_generation_equals_transformers_generate(saved_gpt2):
    from helpers.training import generate

    hf, folder = saved_gpt2
    ours = GPT.from_pretrained(str(folder))
    idx = torch.randint(97, (2, 5), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=12,
                             do_sample=False, pad_token_id=0)  # fmt: skip
    for cache in (False, True):
        assert torch.equal(
            generate(ours, idx, 12, ours.config.block_size, 0.0, cache=cache), theirs
        )


def test_tiny_gpt2_is_a_whole_offline_stand_in(tmp_path):
    from helpers.corpora import synthetic_text
    from helpers.gpt.pretrained import tiny_gpt2

    state = torch.get_rng_state()
    folder = tiny_gpt2(tmp_path / "tiny", synthetic_text(5000).splitlines())
    assert torch.equal(
        torch.get_rng_state(), state
    )  # the first load leaves the notebook's generator alone
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    text = "the cat sat on the zebra's mat. Ünïcode!"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text  # byte level: nothing is unknown, the text comes back
    model = GPT.from_pretrained(str(folder))
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    idx = torch.tensor([ids])
    with torch.no_grad():
        assert (model(idx) - hf(idx).logits).abs().max().item() < 1e-4
    assert model.config.vocab_size == len(tokenizer) <= 400


def test_byte_level_bpe_names_a_vocabulary_too_small():
    from helpers.tokenization.train import train_byte_level_bpe

    with pytest.raises(ValueError, match="at least 257"):
        train_byte_level_bpe(["some text"], 100)


def test_from_pretrained_matches_transformers_with_trained_like_weights(tmp_path):
    """Catches ln1 used in place of ln2 (identical at init), and gelu_tanh dropped (differs < 1e-4
    on init-sized activations). Every parameter is perturbed before saving."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=97, n_positions=24, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "ln" in name:  # LayerNorms that differ from each other and from (1, 0)
                noise = torch.randn_like(p)
                p.copy_(1 + 0.5 * noise if name.endswith("weight") else noise)
            else:  # weights the size training gives them: activations reach GELU's curved part
                p.mul_(10)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    idx = torch.randint(97, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, rtol=1e-4, atol=1e-4)
