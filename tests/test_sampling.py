"""The one sampler: next_token's greedy, temperature, top-k and top-p, and generate with a KV cache
giving the same tokens as without one."""

import pytest
import torch

from helpers.gpt import GPT, GPTConfig
from helpers.training import generate
from helpers.training.generate import filter_logits, next_token


def model_of(**changes) -> GPT:
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=30, block_size=16, layers=2, heads=2, embd=16, **changes)
    ).eval()


@pytest.mark.parametrize("attention", ["dot", "additive", "shared-qk", "shared-qkv"])
@pytest.mark.parametrize("fast", [True, False])
def test_kv_cache_gives_the_same_greedy_tokens(attention, fast):
    model = model_of(attention=attention, fast=fast)
    with torch.no_grad():
        model.tok.weight.mul_(20)  # peaked predictions: the greedy path is well defined
    idx = torch.randint(30, (3, 5), generator=torch.Generator().manual_seed(1))
    for steps in (1, 8, 25):  # 25: past the 16-token window, where the cache starts again
        plain = generate(model, idx, steps, 16, temperature=0.0)
        cached = generate(model, idx, steps, 16, temperature=0.0, cache=True)
        assert torch.equal(plain, cached), steps


def test_a_model_whose_mask_leaks_refuses_the_cache():
    """With mask="zero" earlier positions see later tokens through the softmax's denominator, so
    cached keys and values go stale: the cache gave other tokens than a full recompute."""
    model = model_of(mask="zero").train()
    idx = torch.randint(30, (3, 5), generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="a KV cache needs mask='inf'.*generate without the cache"):
        generate(model, idx, 10, 16, temperature=0.0, cache=True)
    assert model.training  # its mode as it was
    assert generate(model, idx, 10, 16, temperature=0.0).shape == (3, 15)
    assert model.blocks[0].attn.cache is None


def test_kv_cache_logits_match_a_full_forward():
    model = model_of()
    idx = torch.randint(30, (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(idx)
        with model.kv_cache():
            first = model(idx[:, :6])
            rest = [model(idx[:, t : t + 1], start=t) for t in range(6, 10)]
    assert torch.allclose(torch.cat([first, *rest], dim=1), full, atol=1e-5)
    assert all(b.attn.cache is None for b in model.blocks)  # the cache is gone afterwards
    with torch.no_grad(), model.kv_cache():
        model(idx[:, :6])
        with pytest.raises(
            ValueError,
            match="the cache holds 6 tokens, so the new tokens start at position 6, not start=0",
        ):
            model(idx[:, 6:7])  # start forgotten: position 0 again, beside 6 cached keys


def test_sampled_tokens_match_with_and_without_cache():
    model = model_of()
    idx = torch.zeros(4, 1, dtype=torch.long)
    a = generate(model, idx, 12, 16, 1.0, torch.Generator().manual_seed(3), cache=True)
    b = generate(model, idx, 12, 16, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_next_token_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))

    def draws(**kw) -> set[int]:
        rows = logits.expand(2000, 4)  # 2,000 draws at once
        return set(
            next_token(rows, generator=torch.Generator().manual_seed(0), **kw).flatten().tolist()
        )

    assert draws() == {0, 1, 2, 3}
    assert draws(top_k=2) == {0, 1}
    assert draws(top_p=0.5) == {0}  # 0.5 reached by the first token
    assert draws(top_p=0.6) == {0, 1}  # the token that crosses 0.6 is kept
    assert draws(top_p=0.81) == {0, 1, 2}
    assert next_token(logits, temperature=0).item() == 0
    with pytest.raises(ValueError, match="top_p"):
        generate(model_of(), torch.zeros(1, 1, dtype=torch.long), 1, 16, top_p=0)


def captured_probs(monkeypatch, logits, **kw) -> torch.Tensor:
    seen = []
    real = torch.multinomial

    def spy(probs, *args, **kwargs):
        seen.append(probs.clone())
        return real(probs, *args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", spy)
    next_token(logits, generator=torch.Generator().manual_seed(0), **kw)
    return seen[-1]


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_divides_the_logits_once(monkeypatch, temperature):
    """Catches the temperature applied twice (invisible at the tested 1.0, 1e-45, 1e30)."""
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    probs = captured_probs(monkeypatch, logits, temperature=temperature)
    torch.testing.assert_close(probs, torch.softmax(logits / temperature, -1))


def test_top_p_keeps_the_most_likely_tokens_whatever_their_ids():
    """Catches top-p's drop mask left in sorted order (not scattered back to the token ids): with
    logits already sorted, as in test_next_token_filters, the two agree."""
    p = torch.tensor([[0.05, 0.3, 0.15, 0.5]])  # most likely: id 3, then 1
    z = torch.log(p)
    kept = filter_logits(z, top_p=0.6).isfinite()
    assert kept.tolist() == [[False, True, False, True]]
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(filter_logits(z[:, perm], top_p=0.6), filter_logits(z, top_p=0.6)[:, perm])


def test_top_p_among_equal_probabilities_keeps_the_lower_ids():
    """The sort was not stable: which of several equally likely tokens top-p kept was up to torch."""
    kept = filter_logits(torch.zeros(1, 100), top_p=0.025).isfinite()[0]  # 0.01 each: 3 reach it
    assert kept.nonzero().flatten().tolist() == [0, 1, 2]
    tied_k = filter_logits(torch.tensor([[3.0, 1.0, 1.0, 0.0]]), top_k=2).isfinite()[0]
    assert tied_k.tolist() == [True, True, True, False]  # ties with the k-th are kept


@pytest.mark.parametrize(
    "options, said",
    [({"top_k": 0}, "top_k must be ≥ 1"), ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
     ({"temperature": -1.0}, "temperature must be a number ≥ 0")],
)  # fmt: skip
def test_next_token_alone_checks_its_settings_as_generate_does(options, said):
    """Called alone (notebook 08 shows it), top_k=0 and top_p=0 failed inside torch, and a negative
    temperature favoured the least likely token."""
    with pytest.raises(ValueError, match=said):
        next_token(torch.tensor([[0.0, 5.0]]), **{"temperature": 1.0, **options})
    with pytest.raises(ValueError, match=r"logits must be \(B, vocab\), not of shape \(2,\)"):
        next_token(torch.tensor([0.0, 5.0]))
