import math

import pytest
import torch
import torch.nn.functional as F

from helpers import attention as att

K, V, Q = att.COURSE_KEYS, att.COURSE_VALUES, att.COURSE_QUERY


def test_course_example_by_hand():
    assert att.attention_scores(Q, K).tolist() == [3.0, 1.0, 1.0, -3.0]
    assert att.argmax_attention(Q, K, V).tolist() == [3.0, 2.0, -4.0]
    z = math.exp(3) + 2 * math.e + math.exp(-3)
    weights = torch.tensor([math.exp(3), math.e, math.e, math.exp(-3)]) / z
    out, w = att.softmax_attention(Q, K, V, scale=1.0, return_weights=True)
    assert torch.allclose(w, weights) and torch.allclose(out, weights @ V)
    assert torch.allclose(out, torch.tensor([3.0, 1.5748, -2.7088]), atol=1e-4)


def test_default_scale_matches_sdpa_and_batches():
    g = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(5, 8, generator=g),
        torch.randn(7, 8, generator=g),
        torch.randn(7, 3, generator=g),
    )
    expected = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
    assert torch.allclose(att.softmax_attention(q, k, v), expected, atol=1e-6)
    assert att.softmax_attention(q[0], k, v).shape == (3,)


def test_huge_scores_do_not_overflow():
    out = att.softmax_attention(1000 * Q, K, V, scale=1.0)
    assert torch.isfinite(out).all() and torch.allclose(out, V[0])


def test_accepts_lists_and_argmax_takes_the_first_on_ties():
    out, w = att.argmax_attention([1.0, 0.0], [[1, 0], [1, 0]], [[1.0], [2.0]], return_weights=True)
    assert w.tolist() == [1.0, 0.0] and out.tolist() == [1.0]


@pytest.mark.parametrize(
    ("query", "keys", "values", "message"),
    [
        (Q, K[0], V, r"keys must be a matrix of shape \(n, d\), one key per row; got \(3,\)"),
        (torch.ones(4), K, V, r"query has 4 components but keys have 3.*shape \(3,\) or \(m, 3\)"),
        (Q, K, V[:3], r"values have shape \(3, 3\) but there are 4 keys.*shape \(4, d_v\)"),
        (torch.ones(2, 2, 3), K, V, r"query must have shape \(d,\) or \(m, d\); got \(2, 2, 3\)"),
    ],
)
def test_shape_errors_say_what_is_wrong(query, keys, values, message):
    with pytest.raises(ValueError, match=message):
        att.softmax_attention(query, keys, values)


def test_a_float64_query_meets_float32_keys():
    """Under a float64 default (a student's earlier cell), a query made in the notebook against the
    course's float32 keys: score_margin and the scores stopped at torch's "dot : expected both
    vectors to have same dtype, but found Double and Float"."""
    q = torch.tensor([1.0, 0.2, 0.0], dtype=torch.float64)
    keys = torch.eye(3)
    assert att.score_margin(q, keys, 0, 1) == pytest.approx(att.score_margin(q.float(), keys, 0, 1))
    assert att.attention_scores(q, keys).dtype == torch.float64


def test_argmax_gives_no_gradient_softmax_does():
    target = V[1]
    grad_q, grad_k = att.query_key_gradients(att.argmax_attention, Q, K, V, target)
    assert not grad_q.any() and not grad_k.any()
    grad_q, grad_k = att.query_key_gradients(att.raw_softmax_attention, Q, K, V, target)
    assert grad_q.norm() > 1 and grad_k.norm() > 1
    # the softmax gradient is the real derivative: compare with a central difference
    eps, e0 = 1e-4, torch.tensor([1.0, 0, 0], dtype=torch.float64)

    def loss(q):
        return att.squared_error(
            att.raw_softmax_attention(q, K.double(), V.double()), target.double()
        )

    numeric = (loss(Q.double() + eps * e0) - loss(Q.double() - eps * e0)) / (2 * eps)
    assert abs(numeric.item() - grad_q[0].item()) < 1e-2


def test_loss_along_query_is_a_staircase_for_argmax():
    offsets, losses = att.loss_along_query(att.argmax_attention, Q, K, V, V[1], 0, 3.0, 61)
    assert offsets.shape == losses.shape == (61,)
    assert len(set(losses.tolist())) <= 4  # piecewise constant: one level per winning key
    _, smooth = att.loss_along_query(att.raw_softmax_attention, Q, K, V, V[1], 0, 3.0, 61)
    assert len(set(smooth.tolist())) > 50


def test_selection_sharpens_with_strength():
    k = att.SELECTION_KEYS
    for j in range(4):
        weak = att.lookup_state(att.selection_query(k, j, 1.0), k, V, V[j])
        strong = att.lookup_state(att.selection_query(k, j, 30.0), k, V, V[j])
        assert strong["weights"][j] > weak["weights"][j] and strong["distance"] < 1e-2


def test_averaging_query_averages_two_orthonormal_keys():
    k = att.random_orthonormal(5, 4, torch.Generator().manual_seed(0)).T
    assert torch.allclose(k @ k.T, torch.eye(4, dtype=k.dtype), atol=1e-10)
    state = att.lookup_state(
        att.averaging_query(k, 0, 2, 30.0), k, V.double(), (V[0] + V[2]).double() / 2
    )
    assert state["distance"] < 1e-6
    uniform = att.softmax_attention(torch.zeros(5, dtype=k.dtype), k, V.double(), scale=1.0)
    assert torch.allclose(uniform, V.double().mean(0))


def test_orthogonal_subspaces():
    a, b = att.orthogonal_subspaces(7, 3, 2, torch.Generator().manual_seed(0))
    assert a.shape == (7, 3) and b.shape == (7, 2)
    assert torch.allclose(a.T @ a, torch.eye(3, dtype=a.dtype)) and torch.allclose(
        a.T @ b, torch.zeros(3, 2, dtype=a.dtype)
    )
    with pytest.raises(ValueError, match="cannot have 5 orthonormal vectors in 4 dimensions"):
        att.random_orthonormal(4, 5)


def test_lookup_modes():
    assert att.lookup(Q, K, V, mode="argmax")["weights"].tolist() == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="mode must be 'softmax' or 'argmax'"):
        att.lookup(Q, K, V, mode="sparsemax")
