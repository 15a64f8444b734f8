"""Notebook 07's exercises: the causal softmax, additive attention scores and the sampling loop. Right
answers written several ways pass; each named mistake gets its own hint."""

import functools
import sys

import pytest
import torch
from torch import nn

from helpers.checks.gpt import (
    ADDITIVE_RECIPE,
    check_additive_scores,
    check_causal_softmax,
    check_generate,
)
from helpers.gpt.attention import additive_scores, causal_softmax
from helpers.training import generate


def hints(result) -> str:
    return " ".join([result.verdict, *result.hints])


def tril(T: int, diagonal: int = 0) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool).tril(diagonal)


def r1(s):  # masked_fill with -inf
    return torch.softmax(s.masked_fill(~tril(s.shape[-1]), float("-inf")), -1)


def r2(s):  # add a mask of -inf above the diagonal
    T = s.shape[-1]
    return torch.softmax(s + torch.full((T, T), float("-inf")).triu(1), -1)


def r3(s):  # softmax, zero the future, renormalise: the same weights
    w = torch.softmax(s, -1) * tril(s.shape[-1])
    return w / w.sum(-1, keepdim=True)


def r4(s):  # a large negative number instead of -inf
    return torch.softmax(torch.where(tril(s.shape[-1]), s, -1e9), -1)


def m_after(s):
    return torch.softmax(s, -1) * tril(s.shape[-1])


def m_triu(s):
    T = s.shape[-1]
    return torch.softmax(
        s.masked_fill(~torch.ones(T, T, dtype=torch.bool).triu(), float("-inf")), -1
    )


def m_off(s):
    return torch.softmax(s.masked_fill(~tril(s.shape[-1], -1), float("-inf")), -1)


def m_off2(s):
    return torch.softmax(s.masked_fill(~tril(s.shape[-1], 1), float("-inf")), -1)


def m_zero(s):
    return torch.softmax(s.masked_fill(~tril(s.shape[-1]), 0.0), -1)


def m_inplace(s):
    return torch.softmax(s.masked_fill_(~tril(s.shape[-1]), float("-inf")), -1)


def project(q, k, wq, wk):
    return torch.einsum("bhtd,hde->bhte", q, wq), torch.einsum("bhtd,hde->bhte", k, wk)


def a1(q, k, wq, wk, w2):  # broadcasting, then a weighted sum
    a, b = project(q, k, wq, wk)
    return (torch.tanh(a[:, :, :, None] + b[:, :, None]) * w2[None, :, None, None]).sum(-1)


def a2(
    q, k, wq, wk, w2
):  # the concatenation [q; k] built for every pair (more memory, same numbers)
    B, h, T, hs = q.shape
    w1 = torch.cat([wq, wk], 1)  # (h, 2hs, da)
    pairs = torch.cat(
        [q.unsqueeze(3).expand(B, h, T, T, hs), k.unsqueeze(2).expand(B, h, T, T, hs)], -1
    )
    return torch.einsum(
        "bhije,he->bhij", torch.tanh(torch.einsum("bhijc,hce->bhije", pairs, w1)), w2
    )


def a3(q, k, wq, wk, w2):  # a loop over heads with matrix products
    B, h, T, _ = q.shape
    out = torch.zeros(B, h, T, T)
    for i in range(h):
        a, b = q[:, i] @ wq[i], k[:, i] @ wk[i]
        out[:, i] = torch.tanh(a[:, :, None] + b[:, None]) @ w2[i]
    return out


def am_notanh(q, k, wq, wk, w2):
    a, b = project(q, k, wq, wk)
    return ((a[:, :, :, None] + b[:, :, None]) * w2[None, :, None, None]).sum(-1)


def am_swap(q, k, wq, wk, w2):
    return a1(q, k, wq, wk, w2).transpose(-1, -2)


def am_sum(q, k, wq, wk, w2):
    a, b = project(q, k, wq, wk)
    return torch.tanh(a[:, :, :, None] + b[:, :, None]).sum(-1)


def g1(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        logits = model(idx[:, -bs:])[:, -1, :]
        p = torch.softmax(logits / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def g2(model, idx, steps, bs, t, gen):
    out = idx
    for _ in range(steps):
        ctx = out if out.shape[1] <= bs else out[:, out.shape[1] - bs :]
        p = torch.nn.functional.softmax(model(ctx)[:, -1] / t, -1)
        out = torch.cat((out, p.multinomial(1, generator=gen)), dim=-1)
    return out


def gm_nocrop(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx)[:, -1, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def gm_after(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :], dim=-1) / t
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def gm_logits(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = model(idx[:, -bs:])[:, -1, :] / t
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def gm_greedy(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        idx = torch.cat([idx, model(idx[:, -bs:])[:, -1, :].argmax(-1, keepdim=True)], 1)
    return idx


def gm_nogen(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1)], 1)
    return idx


def gm_mult(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :] * t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def gm_first(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, 0, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


@pytest.mark.parametrize("fn", [r1, r2, r3, r4])
def test_causal_checker_accepts_right_answers(fn):
    assert check_causal_softmax(fn).passed


@pytest.mark.parametrize(
    ("fn", "named"),
    [(m_after, "after the softmax"), (m_triu, "wrong orientation"), (m_off, "diagonal"),
     (m_off2, "off by one"), (m_zero, "not -inf"), (m_inplace, "changed the scores")],
)  # fmt: skip
def test_causal_checker_names_each_mistake(fn, named):
    result = check_causal_softmax(fn)
    assert not result.passed and named in hints(result), hints(result)


def m_nan(s):  # multiplying a mask by -inf: 0 * -inf is NaN
    return torch.softmax(s + (1 - tril(s.shape[-1]).float()) * float("-inf"), -1)


def m_small_fill(s):
    return torch.softmax(s.masked_fill(~tril(s.shape[-1]), -20.0), -1)


def m_last_row(s):
    return r1(s)[..., -1, :]


@pytest.mark.parametrize(
    ("fn", "named"),
    [(m_nan, "0 × (-inf)"), (m_small_fill, "tiny weight"), (m_last_row, "shape (2, 3, 6)"),
     (lambda s: r1(s).tolist(), "returned a list")],
)  # fmt: skip
def test_causal_checker_names_shapes_nan_and_weak_fills(fn, named):
    result = check_causal_softmax(fn)
    assert not result.passed and named in hints(result), hints(result)


def m_inverted(s):  # the allowed triangle itself given to masked_fill, as the task's hint reads
    return torch.softmax(s.masked_fill(tril(s.shape[-1]), float("-inf")), -1)


def m_inverted_finite(s):
    return torch.softmax(s.masked_fill(tril(s.shape[-1]), -1e9), -1)


def m_inverted_triu(s):  # ~triu(1) is the same lower triangle
    T = s.shape[-1]
    return torch.softmax(
        s.masked_fill(~torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")), -1
    )


@pytest.mark.parametrize("fn", [m_inverted, m_inverted_finite, m_inverted_triu])
def test_causal_checker_names_an_inverted_mask_not_a_nan_product(fn):
    result = check_causal_softmax(fn)
    assert not result.passed and "the mask is inverted" in result.verdict, hints(result)
    assert "0 × (-inf)" not in hints(result)


def m_dim2(s):  # dim=2 is the last dimension of a (B, T, T) tensor, not of (B, h, T, T)
    return torch.softmax(s.masked_fill(~tril(s.shape[-1]), float("-inf")), dim=2)


def m_scaled_again(s):  # the scores come already scaled: this scales them a second time
    return r1(s / s.shape[-1] ** 0.5)


@pytest.mark.parametrize(
    ("fn", "named"),
    [(m_dim2, "do not sum to 1"), (m_scaled_again, "wrong weights")],
)
def test_causal_checker_names_a_softmax_over_the_queries_and_other_wrong_weights(fn, named):
    result = check_causal_softmax(fn)
    assert not result.passed and named in result.verdict, hints(result)


@pytest.mark.parametrize(("fill", "named"), [(-10.0, "(-10) is not"), (-20.0, "(-20) is not")])
def test_causal_checker_names_a_finite_fill_and_its_value(fill, named):
    def weak(s):
        return torch.softmax(s.masked_fill(~tril(s.shape[-1]), fill), -1)

    result = check_causal_softmax(weak)
    assert not result.passed and "the future keeps" in result.verdict and named in result.verdict
    assert "not negative enough" in result.verdict, hints(result)


def test_causal_checker_names_a_fill_that_underflows_only_part_of_the_future():
    """-104 is a large finite fill: exp(-104 - max) is a subnormal float32, so some future weights
    round to 0 and others keep a tiny weight; no single fill value reproduces that, so none is named."""

    def weak(s):
        return torch.softmax(s.masked_fill(~tril(s.shape[-1]), -104.0), -1)

    result = check_causal_softmax(weak)
    assert not result.passed, hints(result)
    assert result.verdict.startswith("the future keeps a tiny weight: the fill value is not")
    assert "float('-inf')" in hints(result), hints(result)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_causal_checker_names_weights_computed_in_half_precision(dtype):
    """Right in float16 or bfloat16, the rows sum to 1 only to 3 digits: the precision is named,
    not a softmax over the wrong dimension."""

    def low(s):
        return torch.softmax(s.to(dtype).masked_fill(~tril(s.shape[-1]), float("-inf")), -1)

    result = check_causal_softmax(low)
    assert not result.passed and f"they are {dtype}" in result.verdict, hints(result)
    assert "do not sum to 1" not in result.verdict and "float32" in hints(result), hints(result)


def test_causal_checker_stub_and_crash():
    def stub(s):
        raise NotImplementedError

    def crash(s):
        return s @ torch.ones(3)

    assert check_causal_softmax(stub).not_implemented
    assert "raised RuntimeError" in check_causal_softmax(crash).verdict


@pytest.mark.parametrize("fn", [a1, a2, a3])
def test_additive_checker_accepts_right_answers(fn):
    assert check_additive_scores(fn).passed


@pytest.mark.parametrize(
    ("fn", "named"),
    [(am_notanh, "no tanh"), (am_swap, "swapped"), (am_sum, "summed instead")],
)
def test_additive_checker_names_each_mistake(fn, named):
    result = check_additive_scores(fn)
    assert not result.passed and named in hints(result), hints(result)


@pytest.mark.parametrize(
    ("fn", "named"),
    [(lambda *a: a1(*a).unsqueeze(-1), "shape (2, 3, 5, 5, 1)"), (lambda *a: a1(*a)[0], "shape (3, 5, 5)"),
     (lambda *a: torch.softmax(a1(*a), -1), "returned weights"),
     (lambda *a: a1(*a).masked_fill(tril(5, -1).T, float("-inf")), "-inf in the scores"),
     (lambda *a: a1(*a).masked_fill(tril(5, -1).T, -1e9), "masked here"),
     (lambda *a: a1(*a) / a[0].shape[-1] ** 0.5, "scaled by √d_h"),
     (lambda q, k, wq, wk, w2: a1(q, k, wq, wq, w2), "w_q applied to the keys too")],
)  # fmt: skip
def test_additive_checker_names_shapes_weights_and_masking(fn, named):
    result = check_additive_scores(fn)
    assert not result.passed and named in hints(result), hints(result)


def am_relu(q, k, wq, wk, w2):  # relu where the formula has tanh
    a, b = project(q, k, wq, wk)
    return (torch.relu(a[:, :, :, None] + b[:, :, None]) * w2[None, :, None, None]).sum(-1)


def test_additive_checker_names_other_wrong_scores():
    result = check_additive_scores(am_relu)
    assert not result.passed and "wrong scores" in result.verdict, hints(result)


def test_the_last_hint_for_other_wrong_scores_is_code_that_passes():
    """The hint was `tanh(a.unsqueeze(3) + b.unsqueeze(2)) @ w2`, which raises (w2 is (h, d_a)); and
    it came first, before any idea-level hint."""
    assert "einsum" not in check_additive_scores(am_relu).hints[0]  # the idea first, then code
    assert check_additive_scores(am_relu).hints[1] == ADDITIVE_RECIPE
    steps = ADDITIVE_RECIPE.split(" is (B, h, T, T)")[0].split("; ")
    assert steps[1] == "b likewise with k, w_k"

    def typed_from_the_hint(q, k, w_q, w_k, w2):
        a = eval(steps[0].removeprefix("a = "))
        b = eval(steps[0].removeprefix("a = ").replace("q, w_q", "k, w_k"))
        return eval(steps[2], {"torch": torch, "a": a, "b": b, "w2": w2})

    assert check_additive_scores(typed_from_the_hint).passed


def gm_crop_short(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs + 1 :])[:, -1, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def gm_no_temperature(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :], dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def gm_float(model, idx, steps, bs, t, gen):
    return g1(model, idx, steps, bs, t, gen).float()


def gm_new_only(model, idx, steps, bs, t, gen):
    return g1(model, idx, steps, bs, t, gen)[:, idx.shape[1] :]


def gm_global_seed(model, idx, steps, bs, t, gen):
    torch.manual_seed(0)
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1)], 1)
    return idx


@pytest.mark.parametrize(
    ("fn", "named"),
    [(gm_crop_short, "block_size - 1"), (gm_no_temperature, "no effect"), (gm_float, "not integers"),
     (gm_new_only, "only the new tokens"), (gm_global_seed, "different tokens")],
)  # fmt: skip
def test_sampling_checker_catches_subtler_mistakes(fn, named):
    result = check_generate(fn)
    assert not result.passed and named in hints(result), hints(result)


def gm_no_return(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)


def gm_prepend(model, idx, steps, bs, t, gen):  # the new token put before the sequence
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :] / t, dim=-1)
        idx = torch.cat([torch.multinomial(p, 1, generator=gen), idx], 1)
    return idx


def gm_cat_dim0(model, idx, steps, bs, t, gen):  # appended as a new row, not a new column
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)])
    return idx


def gm_unpack(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        logits = model(idx[:, -bs:])[:, -1, :]
        B, T, C = logits.shape  # (B, vocab) after [:, -1, :]: two sizes, not three
        p = torch.softmax(logits / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


@pytest.mark.parametrize(
    ("fn", "named"),
    [(gm_no_return, "did you forget `return`?"), (gm_prepend, "prompt is not at the start"),
     (gm_cat_dim0, "raised RuntimeError"), (gm_unpack, "raised ValueError")],
)  # fmt: skip
def test_sampling_checker_names_a_missing_return_a_prepended_token_and_crashes(fn, named):
    result = check_generate(fn)
    assert not result.passed and named in result.verdict, hints(result)


def gen_reference(model, idx, steps, bs, t, gen):
    return generate(model, idx, steps, bs, t, gen)


def gm_crop_start(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, :bs])[:, -1, :] / t, dim=-1)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


def gm_dim0(model, idx, steps, bs, t, gen):
    for _ in range(steps):
        p = torch.softmax(model(idx[:, -bs:])[:, -1, :] / t, dim=0)
        idx = torch.cat([idx, torch.multinomial(p, 1, generator=gen)], 1)
    return idx


@pytest.mark.parametrize(
    ("fn", "named"),
    [(gm_crop_start, "keeps the first block_size tokens, not the last"),
     (gm_dim0, "over dim=0, the batch")],
)  # fmt: skip
def test_sampling_checker_names_a_crop_from_the_start_and_a_softmax_over_the_batch(fn, named):
    result = check_generate(fn)
    assert not result.passed and named in result.verdict, hints(result)


def cs_wrapper(s):
    return causal_softmax(s)


def cs_import_inside(s):  # no global name to read before it runs: seen while it runs
    from helpers.gpt.attention import causal_softmax as mine

    return mine(s)


def add_getattr(*a):
    import importlib

    return getattr(importlib.import_module("helpers.gpt.attention"), "additive_" + "scores")(*a)


def gen_import_inside(model, idx, steps, block_size, temperature, generator):
    from helpers import training

    return training.generate(model, idx, steps, block_size, temperature, generator)


@pytest.mark.parametrize(
    ("check", "fn", "verdict"),
    [(check_causal_softmax, causal_softmax, "this is the course's own function"),
     (check_causal_softmax, lambda s: causal_softmax(s, "inf"), "calls the course's own causal_softmax"),
     (check_causal_softmax, cs_wrapper, "calls the course's own causal_softmax"),
     (check_additive_scores, additive_scores, "this is the course's own function"),
     (check_additive_scores, lambda *a: additive_scores(*a), "calls the course's own additive_scores"),
     (check_generate, generate, "this is the course's own function"),
     (check_generate, gen_reference, "calls the course's own generate"),
     (check_causal_softmax, cs_import_inside, "calls the course's own causal_softmax"),
     (check_additive_scores, add_getattr, "calls the course's own additive_scores"),
     (check_generate, gen_import_inside, "calls the course's own generate")],
)  # fmt: skip
def test_checkers_refuse_the_course_s_own_function(check, fn, verdict):
    result = check(fn)
    assert not result.passed and verdict in result.verdict and "write it yourself" in result.verdict


def masked_softmax(s, fill):
    return torch.softmax(s.masked_fill(~tril(s.shape[-1]), fill), -1)


class CausalSoftmax(nn.Module):
    def forward(self, s):
        return r1(s)


class CourseSoftmax(nn.Module):
    def forward(self, s):
        return causal_softmax(s)


def course_in_a_closure():
    from helpers.gpt.attention import causal_softmax as theirs

    def mine(s):
        return theirs(s)

    return mine


def test_right_answers_written_as_a_partial_or_a_module_pass():
    assert check_causal_softmax(functools.partial(masked_softmax, fill=float("-inf"))).passed
    assert check_causal_softmax(CausalSoftmax()).passed


@pytest.mark.parametrize(
    ("fn", "verdict"),
    [(functools.partial(causal_softmax, mask="inf"), "this is the course's own function"),
     (CourseSoftmax(), "calls the course's own causal_softmax"),
     (course_in_a_closure(), "calls the course's own causal_softmax")],
    ids=["partial", "module", "closure"],
)  # fmt: skip
def test_the_course_s_function_is_refused_through_a_partial_a_module_or_a_closure(fn, verdict):
    result = check_causal_softmax(fn)
    assert not result.passed and verdict in result.verdict, hints(result)


@pytest.mark.parametrize("fn", [g1, g2])
def test_sampling_checker_accepts_right_answers(fn):
    assert check_generate(fn).passed


@pytest.mark.parametrize(
    ("fn", "named"),
    [(gm_nocrop, "block_size"), (gm_after, "no effect"), (gm_logits, "logits, not"),
     (gm_greedy, "most likely token"), (gm_nogen, "generator"), (gm_mult, "multiplied"),
     (gm_first, "first position")],
)  # fmt: skip
def test_sampling_checker_names_each_mistake(fn, named):
    result = check_generate(fn)
    assert not result.passed and named in hints(result), hints(result)


def test_the_watch_on_course_functions_is_removed_after_a_crash():
    def crashes(s):
        from helpers.gpt.attention import causal_softmax as mine

        mine(s)
        raise ZeroDivisionError("boom")

    before = sys.getprofile()
    result = check_causal_softmax(crashes)
    assert (
        sys.getprofile() is before and not result.passed and "ZeroDivisionError" in result.verdict
    )


def test_the_watch_leaves_a_running_profiler_recording():
    """Up to Python 3.11 cProfile is the profile hook the watch would replace (it stands aside); from
    3.12 cProfile records through sys.monitoring, beside it. Either way the profiler records on."""
    import cProfile
    import pstats

    def after_the_check():
        return 1

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        result = check_causal_softmax(lambda s: torch.softmax(s.masked_fill(
            torch.ones_like(s, dtype=torch.bool).triu(1), float("-inf")), dim=-1))  # fmt: skip
        after_the_check()
    finally:
        profiler.disable()
    recorded = {name for _, _, name in pstats.Stats(profiler).stats}
    assert result.passed and "after_the_check" in recorded, str(result)
