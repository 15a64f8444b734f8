"""Attention arithmetic: scores, soft and hard lookups, and the worked examples of notebook 01.

Shapes: a query is (d,) or (m, d); keys are (n, d); values are (n, d_v).
An argument typed ``Array`` takes a tensor, a numpy array or nested lists (``squared_error`` takes
tensors); results are float tensors (a margin is a float, and a few return a tuple of them).
"""

from collections.abc import Callable
from typing import TypeAlias

import torch
from numpy.typing import ArrayLike

from helpers.env import with_gradients

Array: TypeAlias = torch.Tensor | ArrayLike  # a tensor, a numpy array or nested lists
Attend: TypeAlias = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]  # (q, K, V) -> out

# Part a of notebook 01: the course's worked example.
COURSE_KEYS = torch.tensor([[0.0, 1, 2], [1, 1, 2], [-1, 1, -2], [0, -1, -2]])  # (4, 3)
COURSE_VALUES = torch.tensor([[3.0, 2, -4], [3, -2, 4], [3, 2, 0], [3, 2, 4]])  # (4, 3)
COURSE_QUERY = torch.tensor([-2.0, 1, 1])  # (3,)
# Part c: four nearly unit-length keys that are not orthogonal.
SELECTION_KEYS = torch.tensor(
    [[0.47, 0.65, 0.60], [0.64, 0.50, -0.59], [-0.03, -0.48, -0.88], [0.43, -0.83, 0.35]]
)  # (4, 3)


def as_float(x: Array) -> torch.Tensor:
    """``x`` as a floating-point tensor (float32 unless it already is floating point)."""
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def validate(
    query: Array, keys: Array, values: Array | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check the shapes of a lookup and say exactly what is wrong if they do not fit."""
    q, k = as_float(query), as_float(keys)
    if k.dim() != 2:
        raise ValueError(
            f"keys must be a matrix of shape (n, d), one key per row; got {tuple(k.shape)}"
        )
    if q.dim() not in (1, 2):
        raise ValueError(f"query must have shape (d,) or (m, d); got {tuple(q.shape)}")
    if q.shape[-1] != k.shape[1]:
        raise ValueError(
            f"query has {q.shape[-1]} components but keys have {k.shape[1]}: a query needs one "
            f"number per key dimension, shape ({k.shape[1]},) or (m, {k.shape[1]})"
        )
    if values is None:  # one dtype (a float64 query against float32 keys: a dot product refuses it)
        dtype = torch.promote_types(q.dtype, k.dtype)
        return q.to(dtype), k.to(dtype), None
    v = as_float(values)
    if v.dim() != 2 or v.shape[0] != k.shape[0]:
        raise ValueError(
            f"values have shape {tuple(v.shape)} but there are {k.shape[0]} keys: values need one "
            f"row per key, shape ({k.shape[0]}, d_v)"
        )
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def attention_scores(query: Array, keys: Array) -> torch.Tensor:
    """Dot products q·k_i: (n,) for one query, (m, n) for m queries."""
    q, k, _ = validate(query, keys)
    return q @ k.T  # (m, n) or (n,)


def softmax_attention(
    query: Array,
    keys: Array,
    values: Array,
    scale: float | None = None,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Soft lookup: weights softmax(scale · q·k_i) over the keys, output Σ_i weight_i v_i.

    ``scale=None`` divides by √d, as transformers and ``F.scaled_dot_product_attention`` do;
    ``scale=1.0`` uses the raw dot products of the by-hand examples. A larger scale is a lower
    temperature: sharper weights.
    """
    q, k, v = validate(query, keys, values)
    scale = k.shape[1] ** -0.5 if scale is None else scale
    weights = torch.softmax(scale * (q @ k.T), dim=-1)  # (m, n) or (n,); softmax subtracts the max
    output = weights @ v  # (m, d_v) or (d_v,)
    return (output, weights) if return_weights else output


def raw_softmax_attention(query: Array, keys: Array, values: Array) -> torch.Tensor:
    """Softmax attention on the raw dot products (scale 1), as in the by-hand examples."""
    return softmax_attention(query, keys, values, scale=1.0)


def argmax_attention(
    query: Array, keys: Array, values: Array, return_weights: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Hard lookup: the value of the key with the largest score (the first one on a tie)."""
    q, k, v = validate(query, keys, values)
    best = (q @ k.T).argmax(dim=-1)  # (m,) or ()
    weights = torch.nn.functional.one_hot(best, k.shape[0]).to(v.dtype)  # no gradient flows here
    output = weights @ v
    return (output, weights) if return_weights else output


def squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of part b: Σ (output - target)²."""
    return ((output - target) ** 2).sum()


@with_gradients  # whatever a notebook cell set before (torch.set_grad_enabled(False))
def gradients(
    attend: Attend, query: Array, keys: Array, values: Array, target: Array
) -> tuple[torch.Tensor, ...]:
    """Gradients of ``squared_error(attend(q, K, V), target)`` with respect to q, K and V.

    All three require grad, so the loss always has a graph; where it does not depend on one of them
    at all (q and K through argmax), that gradient is zeros.
    """
    q, k, v = validate(query, keys, values)
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    loss = squared_error(attend(q, k, v), as_float(target))
    grads = torch.autograd.grad(loss, [q, k, v], allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, (q, k, v)))


def query_key_gradients(
    attend: Attend, query: Array, keys: Array, values: Array, target: Array
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of ``gradients`` with respect to q and K only."""
    grad_q, grad_k, _ = gradients(attend, query, keys, values, target)
    return grad_q, grad_k


def loss_along_query(
    attend: Attend,
    query: Array,
    keys: Array,
    values: Array,
    target: Array,
    component: int,
    span: float,
    points: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss as one query component moves over [q_c - span, q_c + span]: (offsets, losses)."""
    q, k, v = validate(query, keys, values)
    offsets = torch.linspace(-span, span, points)  # (P,)
    queries = q.repeat(points, 1)  # (P, d)
    queries[:, component] += offsets
    outputs = attend(queries, k, v)  # (P, d_v)
    losses = ((outputs - as_float(target)) ** 2).sum(dim=-1)  # (P,)
    return offsets, losses


def key_indices(keys: torch.Tensor, **indices: int) -> None:
    """A ValueError naming an index that is not a key's (they count from 0; -1 would wrap round)."""
    n = keys.shape[0]
    for name, i in indices.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise ValueError(f"{name} must be a key's index, counted from 0: 0 to {n - 1} for {n} "
                             f"keys, not {i!r}")  # fmt: skip


def selection_query(keys: Array, j: int, strength: float) -> torch.Tensor:
    """Part c: q = S·k_j, a query that selects value j as the strength S grows."""
    k = as_float(keys)
    key_indices(k, j=j)
    return strength * k[j]


def copy_queries(keys: Array, strength: float) -> torch.Tensor:
    """Part c: Q = S·K (n, d): query i points at key i, so every position copies its own value
    once S is large (as long as each key is more similar to itself than to any other key)."""
    return strength * as_float(keys)


def averaging_query(keys: Array, a: int, b: int, strength: float) -> torch.Tensor:
    """Part d: q = C·(k_a + k_b), a query that averages values a and b (for orthonormal keys)."""
    k = as_float(keys)
    key_indices(k, a=a, b=b)
    return strength * (k[a] + k[b])


def score_margin(query: Array, keys: Array, a: int, b: int) -> float:
    """By how much k_a's score beats every key but k_a and k_b, for ``query`` scaled to length 1
    (negative: another key scores higher)."""
    q, k, _ = validate(query, keys)
    key_indices(k, a=a, b=b)
    q = q / q.norm()
    others = [i for i in range(k.shape[0]) if i not in (a, b)]
    return float(q @ k[a] - (k[others] @ q).max()) if others else float("inf")


def balanced_query(
    keys: Array, a: int, b: int, strength: float, candidates: int = 20_000
) -> torch.Tensor:
    """Part d, keys that are not orthogonal: a query that gives k_a and k_b the same score, above
    every other key by the widest margin found, times the strength C.

    Equal scores: q·(k_a - k_b) = 0, so q lies in the subspace orthogonal to k_a - k_b. Among
    ``candidates`` random unit directions of that subspace, the one whose worst margin is largest.
    """
    _, k, _ = validate(torch.zeros(as_float(keys).shape[1]), keys)
    key_indices(k, a=a, b=b)
    if a == b:
        raise ValueError(f"a and b are both {a}: averaging a value with itself is copying (part c)")
    k = k.double()
    plane = torch.linalg.svd((k[a] - k[b])[None]).Vh[1:]  # (d - 1, d): every q with q·k_a = q·k_b
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(candidates, plane.shape[0], generator=g, dtype=k.dtype) @ plane
    directions = directions / directions.norm(dim=1, keepdim=True)  # (N, d)
    others = [i for i in range(k.shape[0]) if i not in (a, b)]
    if not others:
        return strength * directions[0].to(as_float(keys).dtype)
    margins = (directions @ k[a])[:, None] - directions @ k[others].T  # (N, n - 2)
    worst = margins.min(dim=1).values  # (N,)
    if worst.max() <= 0:
        raise ValueError(
            f"no query gives k{a + 1} and k{b + 1} equal scores above every other key: "
            "another key lies between them"
        )
    return strength * directions[worst.argmax()].to(as_float(keys).dtype)


def lookup_state(
    query: Array, keys: Array, values: Array, target: Array
) -> dict[str, torch.Tensor]:
    """Scores, weights and output of a raw-dot-product softmax lookup, and its distance from
    ``target``."""
    output, weights = softmax_attention(query, keys, values, scale=1.0, return_weights=True)
    target = as_float(target)
    return {
        "scores": attention_scores(query, keys),
        "weights": weights,
        "output": output,
        "target": target,
        "distance": (output - target).norm(),
    }


def random_orthonormal(d: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n orthonormal vectors in R^d, as the columns of a (d, n) matrix (needs n ≤ d)."""
    if n > d:
        raise ValueError(f"cannot have {n} orthonormal vectors in {d} dimensions; need n ≤ d")
    q, r = torch.linalg.qr(torch.randn(d, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # (d, n), a unique, uniformly random choice


def orthogonal_subspaces(
    d: int, dim_a: int, dim_b: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Part e: orthonormal bases A (d, dim_a) and B (d, dim_b) of two orthogonal subspaces."""
    basis = random_orthonormal(d, dim_a + dim_b, generator)  # (d, dim_a + dim_b)
    return basis[:, :dim_a], basis[:, dim_a:]


def lookup(
    query: Array, keys: Array, values: Array, scale: float = 1.0, mode: str = "softmax"
) -> dict[str, torch.Tensor]:
    """Scores, weights and output of one lookup; ``mode`` is "softmax" or "argmax"."""
    if mode not in ("softmax", "argmax"):
        raise ValueError(f"mode must be 'softmax' or 'argmax', not {mode!r}")
    scores = attention_scores(query, keys)
    if mode == "softmax":
        output, weights = softmax_attention(query, keys, values, scale=scale, return_weights=True)
    else:
        output, weights = argmax_attention(query, keys, values, return_weights=True)
    return {"scores": scores, "weights": weights, "output": output}
