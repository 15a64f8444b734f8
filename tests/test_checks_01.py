"""Notebook 01's checkers: right answers pass, each known mistake fails with its own hint."""

import pytest
import torch

from helpers import attention as att
from helpers import checks
from helpers.feedback import forget_attempts

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
    "query as a (1, d) row": (
        lambda q, k, v: right(q.view(-1, q.shape[-1]), k, v),
        "one weight per (query, key) pair",
    ),
    "scaled by d": (
        lambda q, k, v: right(q / k.shape[1], k, v),
        "print your scores on the course example",
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


def test_a_pair_in_the_wrong_order_is_named():
    result = checks.check_softmax_attention(lambda q, k, v: right(q, k, v)[::-1])
    assert "the pair is in the wrong order" in str(result)


def test_balanced_query_with_a_small_margin_still_passes():
    """Any direction with equal scores above every other key is right: C does the rest."""

    def small_margin(k, a, b, c):
        best = att.balanced_query(k, a, b, 1.0).double()
        naive = (k[a] + k[b]) / (k[a] + k[b]).norm()
        for t in torch.linspace(
            0, 1, 201
        ):  # walk towards the naive query while the margin stays > 0
            q = (1 - t) * best + t * naive
            q = q - (q @ (k[a] - k[b])) / (k[a] - k[b]).norm() ** 2 * (k[a] - k[b])
            if att.score_margin(q, k, a, b) < 0.05:
                break
            last = q
        return c * last / last.norm()

    result = checks.check_balanced_query(small_margin)
    assert result.passed, str(result)


def test_a_stub_is_not_implemented_yet():
    def stub(*args):
        raise NotImplementedError("scores first")

    for check in (
        checks.check_softmax_attention,
        checks.check_query_gradients,
        checks.check_selection_query,
        checks.check_copy_queries,
        checks.check_averaging_query,
        checks.check_balanced_query,
        checks.check_recovery_matrix,
    ):
        result = check(stub)
        assert (
            not result.passed
            and result.verdict == "not implemented yet"
            and result.hints[0] == "scores first"
            and result.hints[1].startswith(
                "`test_a_stub_is_not_implemented_yet.<locals>.stub` still"
            )
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
        (lambda *a: gradients(*a, values_grad=False), "make the values require grad"),
        (lambda *a: gradients(*a, reduce=torch.mean), "not their mean"),
        (lambda *a: gradients(*a, sign=-1.0), "wrong sign"),
        (
            lambda *a: gradients(*a, reduce=lambda squares: squares.sum().sqrt()),  # the norm
            "loss = ((attend(q, k, values) - target) ** 2).sum()",
        ),
        (lambda *a: gradients(*a)[0], "return a pair (grad_query, grad_keys)"),
        (lambda a, q, k, v, t: (torch.zeros_like(q), torch.zeros_like(k)), "did you detach"),
        (lambda a, q, k, v, t: (None, None), "None means 'no path"),
        (lambda a, q, k, v, t: (torch.zeros(2), torch.zeros(2)), "shape of the tensor"),
    ],
)
def test_gradients_name_each_mistake(fn, hint):
    result = checks.check_query_gradients(fn)
    assert not result.passed and hint in " ".join([result.verdict, *result.hints]), str(result)


def test_gradients_that_leave_the_callers_tensors_requiring_grad_are_named():
    def in_place(attend, q, k, v, t):
        q.requires_grad_()
        k.requires_grad_()
        loss = ((attend(q, k, v) - t) ** 2).sum()
        if not loss.requires_grad:
            return torch.zeros_like(q), torch.zeros_like(k)
        loss.backward()
        return q.grad, k.grad

    result = checks.check_query_gradients(in_place)
    assert not result.passed and "require grad (requires_grad_ changes" in result.verdict


def test_gradients_without_allow_unused():
    def strict(attend, q, k, v, t):
        q, k, v = (x.clone().requires_grad_() for x in (q, k, v))
        return torch.autograd.grad(((attend(q, k, v) - t) ** 2).sum(), [q, k])

    result = checks.check_query_gradients(strict)
    # the checker's own words: torch's error also says "allow_unused=True"
    assert (
        not result.passed
        and "the loss does not depend on the query or the keys there" in result.verdict
    )
    assert "allow_unused=True" in str(result)


# --- parts c and d -----------------------------------------------------------------------------


def all_hints(result) -> str:
    """The verdict and every hint the checker has for this mistake (it prints the hints one failed
    attempt at a time)."""
    return " ".join([result.verdict, *result.hints])


def test_selection_query():
    for right_answer in (
        lambda k, j, s: s * k[j],
        lambda k, j, s: torch.einsum("d,->d", k[j], torch.tensor(s, dtype=k.dtype)),
        lambda k, j, s: s * torch.eye(len(k), dtype=k.dtype)[j] @ k,
    ):
        assert checks.check_selection_query(right_answer).passed
    flipped = checks.check_selection_query(lambda k, j, s: -s * k[j])
    assert "least like k1" in str(flipped) and "sign is flipped" in all_hints(flipped)
    forget_attempts()
    other = checks.check_selection_query(lambda k, j, s: s * k[(j + 1) % 4])
    assert "most weight on k2; it should be k1" in str(other)
    assert "q = S·k_j" not in str(other), "the answer is not the first hint"
    assert "q = S·k_j" in all_hints(other)
    column = checks.check_selection_query(lambda k, j, s: s * k[:, 0])
    assert column.verdict == "the query has shape (4,), expected (3,)"
    printed = checks.check_selection_query(lambda k, j, s: print(s * k[j]))  # printed, not returned
    assert "your code returned None for the query: did you forget `return`?" in all_hints(printed)
    short = checks.check_selection_query(lambda k, j, s: k[j])
    assert "the right key, but not enough" in str(short) and "should be" not in str(short)
    assert "grow with the strength" in str(checks.check_selection_query(lambda k, j, s: 30 * k[j]))


def test_copy_queries():
    for right_answer in (
        lambda k, s: s * k,
        lambda k, s: torch.stack([s * key for key in k]),
        lambda k, s: s * k / k.norm(dim=1, keepdim=True),  # unit keys first: still copies
    ):
        result = checks.check_copy_queries(right_answer)
        assert result.passed, str(result)
    mistakes = {
        "the sign is flipped": lambda k, s: -s * k,
        "the queries are transposed": lambda k, s: s * k.T,
        "the size of the weights": lambda k, s: torch.softmax(s * k @ k.T, dim=-1),
        "prefers its own key, but the weights are still spread": lambda k, s: k,
        "copies the same value, v1": lambda k, s: s * k[0].expand_as(k),
        "which query scores k_i highest": lambda k, s: s * k.roll(1, 0),
        "do not sharpen": lambda k, s: 30 * k,
    }
    for hint, fn in mistakes.items():
        result = checks.check_copy_queries(fn)
        assert not result.passed and hint in all_hints(result), (hint, str(result))


def test_averaging_query():
    assert checks.check_averaging_query(lambda k, a, b, c: c * (k[a] + k[b])).passed
    assert checks.check_averaging_query(lambda k, a, b, c: c * k[[a, b]].sum(0)).passed
    one = checks.check_averaging_query(lambda k, a, b, c: c * k[a])
    assert "score k1 and k2 equally high" in str(one) and "add both keys" in all_hints(one)
    assert "uniform" in str(checks.check_averaging_query(lambda k, a, b, c: 0 * k[a]))
    unsummed = checks.check_averaging_query(lambda k, a, b, c: c * k[[a, b]])
    assert "the query has shape (2, 6), expected (6,)" in str(unsummed)
    assert "add both keys" in all_hints(
        checks.check_averaging_query(lambda k, a, b, c: c * (k[a] - k[b]))
    )
    forget_attempts()
    short = checks.check_averaging_query(lambda k, a, b, c: k[a] + k[b])
    assert "too short: multiply it by the strength C" in str(short)
    assert "do not grow with the strength" in str(
        checks.check_averaging_query(lambda k, a, b, c: 20 * (k[a] + k[b]))
    )
    forget_attempts()
    third = checks.check_averaging_query(third_key_too)
    assert "q = C·(k_a + k_b)" in all_hints(third) and "q = C·(k_a + k_b)" not in str(third)


def third_key_too(k, a, b, c):
    other = next(i for i in range(len(k)) if i not in (a, b))
    return c * (k[a] + k[b] + k[other])


def balanced_by_search(keys, a, b, strength):
    """The notebook's answer: random directions with q·(k_a − k_b) = 0, the widest margin wins."""
    plane = torch.linalg.svd((keys[a] - keys[b])[None]).Vh[1:]
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(5000, plane.shape[0], generator=g, dtype=keys.dtype) @ plane
    directions = directions / directions.norm(dim=1, keepdim=True)
    others = [i for i in range(len(keys)) if i not in (a, b)]
    margins = (directions @ keys[a])[:, None] - directions @ keys[others].T
    return strength * directions[margins.min(dim=1).values.argmax()]


def balanced_unseeded(keys, a, b, strength):
    """The search without a seed: a good query each call, but another one each call."""
    plane = torch.linalg.svd((keys[a] - keys[b])[None]).Vh[1:]
    directions = torch.randn(5000, plane.shape[0], dtype=keys.dtype) @ plane
    directions = directions / directions.norm(dim=1, keepdim=True)
    others = [i for i in range(len(keys)) if i not in (a, b)]
    margins = (directions @ keys[a])[:, None] - directions @ keys[others].T
    return strength * directions[margins.min(dim=1).values.argmax()]


def balanced_by_linear_programming(keys, a, b, strength):
    """Another right answer: a linear programme. Maximise t with q·(k_a − k_i) ≥ t for every other
    key, q·(k_a − k_b) = 0 and every component of q in [-1, 1]."""
    from scipy.optimize import linprog

    k = keys.numpy()
    others = [i for i in range(len(k)) if i not in (a, b)]
    d = k.shape[1]
    cost = [0.0] * d + [-1.0]  # minimise -t
    upper = [[*(k[i] - k[a]), 1.0] for i in others]  # (k_i - k_a)·q + t ≤ 0
    equal = [[*(k[a] - k[b]), 0.0]]
    bounds = [(-1, 1)] * d + [(None, None)]
    solution = linprog(cost, A_ub=upper, b_ub=[0.0] * len(others), A_eq=equal, b_eq=[0.0],
                       bounds=bounds)  # fmt: skip
    q = torch.tensor(solution.x[:d], dtype=keys.dtype)
    return strength * q / q.norm()


def test_balanced_query_accepts_right_answers():
    for fn in (att.balanced_query, balanced_by_search, balanced_by_linear_programming):
        result = checks.check_balanced_query(fn)
        assert result.passed, (fn.__name__, str(result))


def least_squares(k, a, b, c):
    target = torch.zeros(k.shape[0], dtype=k.dtype)
    target[[a, b]] = 1.0
    return c * torch.linalg.lstsq(k, target[:, None]).solution[:, 0]


@pytest.mark.parametrize(
    ("fn", "first", "later"),
    [
        (lambda k, a, b, c: c * (k[a] + k[b]), "that is part d's query", "q·(k_a − k_b) = 0"),
        (least_squares, "least squares", "q·(k_a − k_b) = 0"),
        (lambda k, a, b, c: c * k[a], "their scores differ", "orthogonal to k_a − k_b"),
        (lambda k, a, b, c: -balanced_by_search(k, a, b, c), "turn away from k2", "largest"),
        (lambda k, a, b, c: balanced_by_search(k, a, b, 1.0), "is not 50 ×", "one fixed direction"),
        (balanced_unseeded, "is a good query but points another way", "seed your search"),
        (lambda k, a, b, c: torch.zeros(k.shape[1], dtype=k.dtype), "the query is zero", "uniform"),
        (lambda k, a, b, c: c * k[[a, b]], "shape (2, 3)", "one vector"),
        (
            lambda k, a, b, c: 10 * balanced_by_search(k, a, b, c),
            "has length 10, not 1",
            "normalise the direction",
        ),
    ],
    ids=[
        "naive sum",
        "least squares",
        "one key",
        "a third key wins",
        "no C",
        "unseeded",
        "zero",
        "shape",
        "not unit length",
    ],  # fmt: skip
)
def test_balanced_query_names_each_mistake(fn, first, later):
    result = checks.check_balanced_query(fn)
    assert not result.passed and first in str(result), str(result)
    assert later in all_hints(result), result.hints


def test_the_balanced_query_of_the_course():
    """k1 and k3 of part c: the naive query hands k2 almost all the weight; the balanced one splits
    it 0.50 / 0.00 / 0.50 / 0.00 at C = 20, with a score margin of about 0.36."""
    keys = att.SELECTION_KEYS
    naive = torch.softmax(keys @ att.averaging_query(keys, 0, 2, 20.0), dim=-1)
    assert naive.argmax() == 1 and naive[1] > 0.99
    q = att.balanced_query(keys, 0, 2, 20.0)
    weights = torch.softmax(keys @ q, dim=-1)
    assert torch.allclose(weights, torch.tensor([0.5, 0.0, 0.5, 0.0]), atol=1e-3)
    assert abs(att.score_margin(q, keys, 0, 2) - 0.36) < 0.01
    with pytest.raises(ValueError, match="a and b are both 1"):
        att.balanced_query(keys, 1, 1, 1.0)


# --- part e ------------------------------------------------------------------------------------


def test_recovery_matrix():
    assert checks.check_recovery_matrix(lambda a: 2 * a @ a.T).passed
    assert checks.check_recovery_matrix(lambda a: 2 * torch.einsum("im,jm->ij", a, a)).passed
    cases = {
        "scale the projector by 2": lambda a: a @ a.T,
        "you recovered v_b": lambda a: 2 * (torch.eye(a.shape[0], dtype=a.dtype) - a @ a.T),
        "leaves the average unchanged": lambda a: torch.eye(a.shape[0], dtype=a.dtype),
        "AᵀA is (m, m), but M acts on vectors in R^d": lambda a: 2 * a.T @ a,
        "keeps every vector of A": lambda a: 3 * a @ a.T,
    }
    for hint, fn in cases.items():
        forget_attempts()
        result = checks.check_recovery_matrix(fn)
        assert not result.passed and hint in str(result), (hint, str(result))
    assert "M = 2·A·Aᵀ" in all_hints(result) and "M = 2·A·Aᵀ" not in str(result)


# --- hints escalate ----------------------------------------------------------------------------


def test_hints_escalate_from_the_idea_to_the_answer_and_restart_after_a_pass():
    wrong = lambda a: 3 * a @ a.T  # noqa: E731
    shown = [str(checks.check_recovery_matrix(wrong)) for _ in range(4)]
    assert [s.count("hint:") for s in shown] == [1, 2, 3, 3]
    assert "check again after your next try" in shown[0] and "M = 2·A·Aᵀ" in shown[2]
    assert checks.check_recovery_matrix(lambda a: 2 * a @ a.T).passed
    assert str(checks.check_recovery_matrix(wrong)).count("hint:") == 1


def test_no_first_hint_gives_an_answer_away():
    wrong_answers = [
        (checks.check_softmax_attention, lambda q, k, v: (q @ k.T @ v, q @ k.T), "torch.softmax("),
        (checks.check_selection_query, lambda k, j, s: s * k[(j + 1) % 4], "S·k_j"),
        (checks.check_copy_queries, lambda k, s: s * k.roll(1, 0), "S·K"),
        (checks.check_averaging_query, third_key_too, "C·(k_a + k_b)"),
        (
            checks.check_balanced_query,
            lambda k, a, b, c: c * (k[a] + k[b]),
            "search the directions",
        ),
        (checks.check_recovery_matrix, lambda a: 3 * a @ a.T, "2·A·Aᵀ"),
    ]
    for check, fn, answer in wrong_answers:
        result = check(fn)
        assert answer in all_hints(result) and answer not in str(result), str(result)


def test_one_largest_score_for_the_whole_batch_is_named():
    def global_max(q, k, v):
        s = q @ k.T
        e = torch.exp(s - s.max())  # one max for every query: a tiny query's row underflows
        w = e / e.sum(dim=-1, keepdim=True)
        return w @ v, w

    result = checks.check_softmax_attention(global_max)
    assert not result.passed and "subtracted for the whole batch" in result.verdict, str(result)


def test_a_loop_over_the_queries_is_named():
    def per_query(q, k, v):
        if q.dim() == 1:
            return right(q, k, v)
        pairs = [right(q[i], k, v) for i in range(q.shape[0])]
        return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])

    result = checks.check_softmax_attention(per_query)
    assert not result.passed and "loops over `range(q.shape[0])`" in result.verdict, str(result)


def test_a_loop_over_a_list_spreading_the_queries_is_named():
    def per_query(query, keys, values):  # [*query] is written as a list, but holds every row
        rows = [*query.reshape(-1, query.shape[-1])]
        w = torch.stack([torch.softmax(r @ keys.T, dim=-1) for r in rows])
        w = w.reshape(*query.shape[:-1], -1)
        return w @ values, w

    result = checks.check_softmax_attention(per_query)
    assert not result.passed and "loops over `rows`" in result.verdict, str(result)


def test_a_loop_over_a_copy_of_the_query_is_named():
    def per_row(query, keys, values):
        rows = query if query.dim() == 2 else query[None]  # a new name: no parameter is looped over
        pairs = [right(r, keys, values) for r in rows]
        out, weights = torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])
        return (out, weights) if query.dim() == 2 else (out[0], weights[0])

    result = checks.check_softmax_attention(per_row)
    assert not result.passed and "loops over `rows`" in result.verdict, str(result)
