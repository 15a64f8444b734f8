"""Notebook 01, part a: softmax attention written by the student."""

from collections.abc import Callable

import torch

from helpers import attention as att
from helpers.checks.code import find_loop, guarded
from helpers.checks.lookup.shared import _close, _tensor
from helpers.feedback import CheckResult, failed, on_case, passed, returned, run_check


def check_softmax_attention(
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> CheckResult:
    """``fn(query, keys, values) -> (output, weights)`` with raw dot-product scores (no 1/√d)."""
    name = "softmax attention"
    return run_check(name, lambda: _softmax_attention(name, fn))


def _softmax_attention(name: str, fn) -> CheckResult:
    fn = guarded(fn, ("query", "keys", "values"))
    g = torch.Generator().manual_seed(0)
    cases = [
        ("the course example", att.COURSE_QUERY, att.COURSE_KEYS, att.COURSE_VALUES),
        ("one random query", torch.randn(4, generator=g), torch.randn(5, 4, generator=g), None),
        (
            "3 queries at once, (m, d)",
            torch.randn(3, 4, generator=g),
            torch.randn(6, 4, generator=g),
            None,
        ),
    ]
    for label, q, k, v in cases:
        q, k = q.double(), k.double()
        v = (
            torch.randn(k.shape[0], 2, generator=g, dtype=torch.float64)
            if v is None
            else v.double()
        )
        with on_case(label):
            result = fn(q, k, v)
        if not isinstance(result, tuple | list) or len(result) != 2:
            return failed(
                name,
                f"it returned {returned(result)}: return a pair (output, weights)",
                "two values come back from a function as one tuple: `return first, second`",
            )
        out, w = _tensor(result[0], "output"), _tensor(result[1], "weights")
        want_out, want_w = att.softmax_attention(q, k, v, scale=1.0, return_weights=True)
        if _close(out, want_w) and _close(w, want_out):
            return failed(name, "the pair is in the wrong order", "return (output, weights)")
        if torch.isnan(w).any():
            return failed(name, f"the weights on {label} hold NaN",
                          "NaN comes from 0 / 0, inf - inf or 0 · inf: print your scores and their "
                          "exponentials on the course example")  # fmt: skip
        if w.shape != want_w.shape:
            return failed(
                name,
                f"on {label} the weights have shape {tuple(w.shape)}, expected {tuple(want_w.shape)}",
                "one weight per (query, key) pair: scores = query @ keys.T",
            )
        if not _close(w, want_w):
            return failed(name, f"wrong weights on {label}", *_weights_hints(w, q, k, v))
        if not _close(out, want_out):
            hints = ["the output is a weighted average: which vectors does it average?"]
            if _close(out, w @ k):
                hints = ["you mixed the keys; the output mixes the values"]
            hints.append("output = weights @ values")
            return failed(name, f"right weights but wrong output on {label}", *hints)
    q, k, v = 300 * att.COURSE_QUERY.double(), att.COURSE_KEYS.double(), att.COURSE_VALUES.double()
    out, w = (_tensor(x, "result") for x in fn(q, k, v))
    if not torch.isfinite(w).all() or not _close(
        w, att.softmax_attention(q, k, v, scale=1.0, return_weights=True)[1]
    ):
        return failed(
            name,
            "the weights break when the scores are large (query × 300: scores up to 900 give NaN or inf)",
            "exp(900) overflows even in float64: subtract the largest score before exp (softmax does not change "
            "when you shift every score by the same number), or use torch.softmax",
        )
    q = torch.stack([300 * att.COURSE_QUERY.double(), 0.01 * att.COURSE_QUERY.double()])  # (2, d)
    out, w = (_tensor(x, "result") for x in fn(q, k, v))
    if not torch.isfinite(w).all() or not _close(
        w, att.softmax_attention(q, k, v, scale=1.0, return_weights=True)[1]
    ):
        return failed(
            name,
            "the weights break for a batch of a huge and a tiny query: one largest score was "
            "subtracted for the whole batch, and the tiny query's row underflowed to 0 / 0",
            "subtract each query's own largest score: scores.max(dim=-1, keepdim=True).values",
        )
    # strict: any loop counts (a loop over a copy of the query hides its name from the plain check)
    if loop := find_loop(fn.__wrapped__ if hasattr(fn, "__wrapped__") else fn, strict=True):
        return failed(name, f"right values, but {loop}", "the exercise asks for no Python loops: "
                      "query @ keys.T scores every query against every key at once")  # fmt: skip
    return passed(name, "right on the course example, random queries, batches and huge scores")


def _weights_hints(w: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> list[str]:
    """The named mistake first; the formula only after further failed attempts."""
    scores = q @ k.T
    answer = "weights = torch.softmax(query @ keys.T, dim=-1)"
    if _close(w, att.softmax_attention(q, k, v, return_weights=True)[1]):
        return ["you divided the scores by √d; in this exercise use the raw dot products q·k"]
    if _close(w, att.argmax_attention(q, k, v, return_weights=True)[1]):
        return ["that is argmax attention (one-hot weights); use a softmax of the scores", answer]
    if _close(w, torch.exp(scores)):
        return ["you took exp of the scores but did not normalise: divide by the sum over the keys"]
    if scores.dim() == 2 and _close(w, torch.softmax(scores, dim=0)):
        return [
            "the softmax runs over the queries (each key's column sums to 1): each query's weights over "
            "the keys must sum to 1, so normalise along the keys' axis, the last one: dim=-1"
        ]
    if scores.dim() == 2 and _close(w, torch.softmax(scores, dim=-1).T):
        return ["the weights are transposed: use scores = query @ keys.T, shape (m, n)"]
    if v.shape[1] == q.shape[-1] and _close(w, torch.softmax(q @ v.T, dim=-1)):
        return ["compare the query with the keys, not with the values", answer]
    if not torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)), atol=1e-5):
        return ["each query's weights should sum to 1: a softmax over the keys", answer]
    return [
        "print your scores on the course example: they should be (3, 1, 1, -3)",
        "one score per key, q·k_i, then a softmax over the keys",
        answer,
    ]
