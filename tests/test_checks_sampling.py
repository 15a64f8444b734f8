"""The sampling checkers (notebook 08's exercises): greedy, temperature, top-k and top-p. Right
answers written several ways pass; each named mistake gets its own hint."""

import pytest
import torch

from helpers.checks.sampling import (
    check_greedy,
    check_temperature,
    check_top_k,
    check_top_p,
    top_k_probs,
    top_p_probs,
)


def hints(result) -> str:
    return " ".join([result.verdict, *result.hints])


@pytest.mark.parametrize(
    "fn",
    [lambda z: z.argmax(-1, keepdim=True), lambda z: z.topk(1, dim=-1).indices,
     lambda z: torch.max(z, dim=1).indices.unsqueeze(1)],
)  # fmt: skip
def test_greedy_right(fn):
    assert check_greedy(fn).passed


@pytest.mark.parametrize(
    ("fn", "named"),
    [(lambda z: z.argmax(-1), "keep a column"), (lambda z: z.argmin(-1, keepdim=True), "argmin"),
     (lambda z: z.argsort(-1)[:, -2:-1], "not the most likely"),
     (lambda z: z.argmax(-1, keepdim=True).float(), "not integers"),
     (lambda z: z.max(-1, keepdim=True).values, "not their positions"),
     (lambda z: z.argmax(0, keepdim=True), "it returned (1, 10); expected (3, 1)")],
)  # fmt: skip
def test_greedy_mistakes(fn, named):
    result = check_greedy(fn)
    assert not result.passed and named in hints(result), hints(result)


def greedy_sampled(z):  # samples (seeded, at a high temperature) where greedy takes the argmax
    g = torch.Generator().manual_seed(0)
    return torch.multinomial(torch.softmax(z / 10, -1), 1, generator=g)


def test_greedy_sampling_is_named():
    result = check_greedy(greedy_sampled)
    assert not result.passed and "no sampling" in hints(result), hints(result)
    assert "dim=0" not in hints(result), hints(result)


@pytest.mark.parametrize(
    "fn",
    [lambda z, t: torch.softmax(z / t, dim=-1), lambda z, t: torch.nn.functional.softmax(z * (1 / t), -1),
     lambda z, t: (e := torch.exp((z - z.max(-1, keepdim=True).values) / t)) / e.sum(-1, keepdim=True),
     lambda z, t: torch.log_softmax(z / t, -1).exp(),
     lambda z, t: (q := torch.softmax(z, -1) ** (1 / t)) / q.sum(-1, keepdim=True)],
)  # fmt: skip
def test_temperature_right(fn):
    assert check_temperature(fn).passed


def temperature_no_return(z, t):
    probs = torch.softmax(z / t, dim=-1)  # noqa: F841


@pytest.mark.parametrize(
    ("fn", "named"),
    [(lambda z, t: torch.softmax(z, -1) / t, "after the softmax"),
     (lambda z, t: (q := torch.softmax(z, -1) ** 1) / q.sum(-1, keepdim=True), "after the softmax and renormalised"),
     (lambda z, t: torch.softmax(z * t, -1), "multiplied"), (lambda z, t: torch.softmax(z / t, 0), "over the batch"),
     (lambda z, t: z / t, "logits, not probabilities"),
     (lambda z, t: torch.softmax(z, -1) ** (1 / t), "wrong probabilities at temperature 0.5"),
     (temperature_no_return, "returned None: did you forget `return`?")],
)  # fmt: skip
def test_temperature_mistakes(fn, named):
    result = check_temperature(fn)
    assert not result.passed and named in hints(result), hints(result)


def top_k_sort(z, k):
    values, order = z.sort(-1, descending=True)
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, order[:, :k], True)
    probs = torch.softmax(z, -1) * keep
    return probs / probs.sum(-1, keepdim=True)


@pytest.mark.parametrize("fn", [top_k_probs, top_k_sort])
def test_top_k_right(fn):
    assert check_top_k(fn).passed


def top_k_unnormalised(z, k):
    return torch.softmax(z, -1) * (z >= z.topk(k, -1).values[:, -1:])


def top_k_one_more(z, k):
    return top_k_probs(z, min(k + 1, z.shape[-1]))


def top_k_values(z, k):  # the k largest logits' probabilities: k columns, not the vocabulary
    return torch.softmax(z.topk(k, dim=-1).values, -1)


def top_k_batch_min(z, k):  # .min() over the whole batch, not each row's k-th largest
    return torch.softmax(z.masked_fill(z < z.topk(k).values.min(), float("-inf")), -1)


def top_k_logits(z, k):  # the masked logits, without the softmax
    return z.masked_fill(z < z.topk(k).values[:, -1:], float("-inf"))


@pytest.mark.parametrize(
    ("fn", "named"),
    [
        (top_k_unnormalised, "not renormalised"),
        (top_k_one_more, "one token too many"),
        (top_k_logits, "logits, not probabilities"),
        (top_k_values, "shape (3, 3); expected (3, 10)"),
        (top_k_batch_min, "wrong probabilities for k = 3"),
    ],
)
def test_top_k_mistakes(fn, named):
    result = check_top_k(fn)
    assert not result.passed and named in hints(result), hints(result)


def top_p_loop(z, p):
    probs = torch.softmax(z, -1)
    out = torch.zeros_like(probs)
    for row in range(len(z)):
        total = 0.0
        for i in probs[row].argsort(descending=True).tolist():
            out[row, i] = probs[row, i]
            total += probs[row, i].item()
            if total >= p:
                break
    return out / out.sum(-1, keepdim=True)


def top_p_ascending(z, p):  # transformers' TopPLogitsWarper: drop the low tail summing to <= 1 - p
    sorted_z, order = z.sort(-1)
    drop = sorted_z.softmax(-1).cumsum(-1) <= 1 - p
    drop[:, -1] = False
    return torch.softmax(z.masked_fill(drop.scatter(1, order, drop), float("-inf")), -1)


def top_p_shifted(z, p):  # the classic shift right of `cumsum > p`
    sorted_z, order = z.sort(-1, descending=True)
    drop = torch.softmax(sorted_z, -1).cumsum(-1) > p
    drop[:, 1:] = drop[:, :-1].clone()
    drop[:, 0] = False
    return torch.softmax(z.masked_fill(drop.scatter(1, order, drop), float("-inf")), -1)


def top_p_scatter_probs(z, p):  # renormalise in sorted order, then scatter the probabilities back
    probs, order = torch.softmax(z, -1).sort(-1, descending=True)
    probs = probs * (probs.cumsum(-1) - probs < p)
    return torch.zeros_like(z).scatter(-1, order, probs / probs.sum(-1, keepdim=True))


def top_p_inverse_gather(z, p):  # gather with the inverse permutation is as good as scatter
    probs = torch.softmax(z, -1)
    order = probs.argsort(-1, descending=True)
    sorted_probs = probs.gather(-1, order)
    keep = (sorted_probs.cumsum(-1) - sorted_probs < p).gather(-1, order.argsort(-1))
    kept = probs * keep
    return kept / kept.sum(-1, keepdim=True)


@pytest.mark.parametrize(
    "fn",
    [
        top_p_probs,
        top_p_loop,
        top_p_ascending,
        top_p_shifted,
        top_p_scatter_probs,
        top_p_inverse_gather,
    ],
)
def test_top_p_right(fn):
    assert check_top_p(fn).passed


def top_p_strict(z, p):
    probs, order = torch.softmax(z, -1).sort(-1, descending=True)
    drop = torch.zeros_like(z, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) > p)
    return torch.softmax(z.masked_fill(drop, float("-inf")), -1)


def top_p_strict_kept_first(z, p):
    probs, order = torch.softmax(z, -1).sort(-1, descending=True)
    crossed = probs.cumsum(-1) > p
    crossed[:, 0] = False
    drop = torch.zeros_like(z, dtype=torch.bool).scatter(-1, order, crossed)
    return torch.softmax(z.masked_fill(drop, float("-inf")), -1)


def top_p_unsorted(z, p):
    probs = torch.softmax(z, -1)
    return torch.softmax(z.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf")), -1)


def top_p_gather(z, p):  # the sorted mask put back with gather instead of scatter
    probs, order = torch.softmax(z, -1).sort(-1, descending=True)
    drop = (probs.cumsum(-1) - probs >= p).gather(-1, order)
    return torch.softmax(z.masked_fill(drop, float("-inf")), -1)


def top_p_zero(z, p):  # the dropped logits set to 0
    return torch.softmax(z.masked_fill(top_p_probs(z, p) == 0, 0.0), -1)


def top_p_logits(z, p):  # the masked logits, without the softmax
    return z.masked_fill(top_p_probs(z, p) == 0, float("-inf"))


@pytest.mark.parametrize(
    ("fn", "named"),
    [
        (top_p_strict, "most likely token is always kept"),
        (top_p_strict_kept_first, "crosses p is dropped"),
        (top_p_unsorted, "sort first"),
        (top_p_gather, "put back with gather"),
        (top_p_zero, "set to 0, not -inf"),
        (top_p_logits, "logits, not probabilities"),
    ],
)
def test_top_p_mistakes(fn, named):
    result = check_top_p(fn)
    assert not result.passed and named in hints(result), hints(result)
