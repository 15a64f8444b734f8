"""Notebook 01's checkers: right answers pass, each known mistake fails with its own hint."""

import pytest
import torch

from helpers import checks

# --- part a ------------------------------------------------------------------------------------


def right(q, k, v):
    w = torch.softmax(q @ k.T, dim=-1)
    return w @ v, w


def right_by_hand(q, k, v):  # a stable hand-written softmax is right too
    s = q @ k.T
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
    w = e / e.sum(dim=-1, keepdim=True)
    return torch.einsum("...n,nd->...d", w, v), w


def right_numpy(q, k, v):  # and so is numpy
    s = (q @ k.T).numpy()
    e = __import__("numpy").exp(s - s.max(axis=-1, keepdims=True))
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v.numpy(), w


SOFTMAX_BUGS = {
    "scaled by sqrt(d)": (
        lambda q, k, v: right(q / k.shape[1] ** 0.5, k, v),
        "divided the scores by √d",
    ),
    "argmax": (
        lambda q, k, v: (
            torch.nn.functional.one_hot((q @ k.T).argmax(-1), k.shape[0]).double() @ v,
            torch.nn.functional.one_hot((q @ k.T).argmax(-1), k.shape[0]).double(),
        ),
        "argmax attention",
    ),
    "no normalisation": (
        lambda q, k, v: (torch.exp(q @ k.T) @ v, torch.exp(q @ k.T)),
        "did not normalise",
    ),
    "softmax over queries": (
        lambda q, k, v: (torch.softmax(q @ k.T, dim=0) @ v, torch.softmax(q @ k.T, dim=0)),
        "runs over the queries",
    ),
    "scores with values": (
        lambda q, k, v: (torch.softmax(q @ v.T, dim=-1) @ v, torch.softmax(q @ v.T, dim=-1)),
        "compare the query with the keys, not with the values",
    ),
    "mixes keys": (
        lambda q, k, v: (right(q, k, v)[1] @ k, right(q, k, v)[1]),
        "you mixed the keys",
    ),
    "overflows": (
        lambda q, k, v: (
            (torch.exp(q @ k.T) / torch.exp(q @ k.T).sum(-1, keepdim=True)) @ v,
            torch.exp(q @ k.T) / torch.exp(q @ k.T).sum(-1, keepdim=True),
        ),
        "subtract the largest score",
    ),
    "returns only the output": (lambda q, k, v: right(q, k, v)[0], "return a pair"),
    "forgot return": (lambda q, k, v: None, "return a pair"),
}


@pytest.mark.parametrize("fn", [right, right_by_hand, right_numpy])
def test_softmax_attention_accepts_right_answers(fn):
    result = checks.check_softmax_attention(fn)
    assert result.passed, str(result)


@pytest.mark.parametrize("bug", SOFTMAX_BUGS)
def test_softmax_attention_names_each_mistake(bug):
    fn, hint = SOFTMAX_BUGS[bug]
    result = checks.check_softmax_attention(fn)
    assert not result.passed
    assert hint in str(result), str(result)


def test_a_stub_is_not_implemented_yet():
    def stub(*args):
        raise NotImplementedError("scores first")

    for check in (
        checks.check_softmax_attention,
        checks.check_query_gradients,
        checks.check_selection_query,
        checks.check_averaging_query,
        checks.check_recovery_matrix,
    ):
        result = check(stub)
        assert (
            not result.passed
            and result.verdict == "not implemented yet"
            and result.hints == ["scores first"]
        )


# --- part b ------------------------------------------------------------------------------------


def gradients(attend, q, k, v, t, reduce=torch.sum, sign=1.0, values_grad=True):
    q, k = q.clone().requires_grad_(), k.clone().requires_grad_()
    if values_grad:
        v = v.clone().requires_grad_()
    loss = reduce((attend(q, k, v) - t) ** 2)
    grads = torch.autograd.grad(loss, [q, k], allow_unused=True)
    return tuple(sign * (torch.zeros_like(x) if g is None else g) for g, x in zip(grads, (q, k)))


def test_gradients_accept_the_right_answer():
    assert checks.check_query_gradients(gradients).passed


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (lambda *a: gradients(*a, values_grad=False), "make values require grad"),
        (lambda *a: gradients(*a, reduce=torch.mean), "sum of squares, not the mean"),
        (lambda *a: gradients(*a, sign=-1.0), "wrong sign"),
        (lambda a, q, k, v, t: (torch.zeros_like(q), torch.zeros_like(k)), "did you detach"),
        (lambda a, q, k, v, t: (None, None), "None means 'no path"),
        (lambda a, q, k, v, t: (torch.zeros(2), torch.zeros(2)), "shape of the tensor"),
    ],
)
def test_gradients_name_each_mistake(fn, hint):
    result = checks.check_query_gradients(fn)
    assert not result.passed and hint in str(result), str(result)


def test_gradients_without_allow_unused():
    def strict(attend, q, k, v, t):
        q, k, v = (x.clone().requires_grad_() for x in (q, k, v))
        return torch.autograd.grad(((attend(q, k, v) - t) ** 2).sum(), [q, k])

    result = checks.check_query_gradients(strict)
    assert not result.passed and "allow_unused=True" in str(result)


# --- parts c and d -----------------------------------------------------------------------------


def test_selection_query():
    assert checks.check_selection_query(lambda k, j, s: s * k[j]).passed
    assert "sign is flipped" in str(checks.check_selection_query(lambda k, j, s: -s * k[j]))
    assert "should be key" in str(checks.check_selection_query(lambda k, j, s: s * k[(j + 1) % 4]))
    assert "shape" in str(checks.check_selection_query(lambda k, j, s: s * k[:, 0]))
    assert "grow with the strength" in str(checks.check_selection_query(lambda k, j, s: 30 * k[j]))


def test_averaging_query():
    assert checks.check_averaging_query(lambda k, a, b, c: c * (k[a] + k[b])).passed
    assert "add both keys" in str(checks.check_averaging_query(lambda k, a, b, c: c * k[a]))
    assert "uniform" in str(checks.check_averaging_query(lambda k, a, b, c: 0 * k[a]))
    assert "add both keys" in str(
        checks.check_averaging_query(lambda k, a, b, c: c * (k[a] - k[b]))
    )
    assert "q = C·(k_a + k_b)" in str(checks.check_averaging_query(third_key_too))


def third_key_too(k, a, b, c):
    other = next(i for i in range(len(k)) if i not in (a, b))
    return c * (k[a] + k[b] + k[other])


# --- part e ------------------------------------------------------------------------------------


def test_recovery_matrix():
    assert checks.check_recovery_matrix(lambda a: 2 * a @ a.T).passed
    cases = {
        "scale the projector by 2": lambda a: a @ a.T,
        "you recovered v_b": lambda a: 2 * (torch.eye(a.shape[0], dtype=a.dtype) - a @ a.T),
        "leaves the average unchanged": lambda a: torch.eye(a.shape[0], dtype=a.dtype),
        "AᵀA is the (m, m) identity": lambda a: 2 * a.T @ a,
        "undoes the 1/2": lambda a: 3 * a @ a.T,
    }
    for hint, fn in cases.items():
        result = checks.check_recovery_matrix(fn)
        assert not result.passed and hint in str(result), (hint, str(result))
