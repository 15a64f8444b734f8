"""Notebook 01, part b: the gradients of a loss through argmax and through softmax attention."""

from collections.abc import Callable

import torch

from helpers import attention as att
from helpers.checks.lookup.shared import _close, _tensor
from helpers.feedback import CheckResult, failed, passed, returned, run_check


def check_query_gradients(
    fn: Callable[
        [att.Attend, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        tuple[torch.Tensor, torch.Tensor],
    ],
) -> CheckResult:
    """``fn(attend, query, keys, values, target) -> (grad_query, grad_keys)`` of Σ(output - target)²."""
    name = "gradients through attention"
    return run_check(name, lambda: _query_gradients(name, fn))


def _query_gradients(name: str, fn) -> CheckResult:
    q, k, v = att.COURSE_QUERY.double(), att.COURSE_KEYS.double(), att.COURSE_VALUES.double()
    target = torch.tensor([3.0, -2, 4], dtype=torch.float64)  # v2: the loss wants key 2 to win

    for label, attend in (("softmax", att.raw_softmax_attention), ("argmax", att.argmax_attention)):
        given_q, given_k = q.clone(), k.clone()
        try:
            result = fn(attend, given_q, given_k, v, target)
        except RuntimeError as err:
            if "does not require grad and does not have a grad_fn" in str(err):
                return failed(
                    name,
                    f"autograd refused on {label}: nothing the loss depends on requires grad",
                    "through argmax the loss depends on the values only, so its gradients with "
                    "respect to the query and the keys are zero: what should your function return then?",
                    "return torch.zeros_like(query) and torch.zeros_like(keys) when the loss has no "
                    "grad_fn (loss.requires_grad is False); or make the values require grad too (a "
                    "model learns them as well), call torch.autograd.grad(loss, [q, k], "
                    "allow_unused=True) on your copies q and k, and turn each None into zeros",
                )
            if "not have been used in the graph" in str(err):
                return failed(
                    name,
                    f"autograd refused on {label}: the loss does not depend on the query or the keys there",
                    "that is the point of part b! pass allow_unused=True to torch.autograd.grad and "
                    "turn a None gradient into torch.zeros_like(...)",
                )
            raise
        if any(t.requires_grad or t.grad is not None for t in (given_q, given_k)):
            return failed(name, "your function made the query and keys it was given require grad "
                          "(requires_grad_ changes the caller's tensors; with backward(), their .grad "
                          "adds up from one call to the next)", "work on copies: q = query.detach()"
                          ".clone().requires_grad_() and k the same from keys; torch.autograd.grad(loss, "
                          "[q, k]) returns the gradients without touching .grad")  # fmt: skip
        if not isinstance(result, tuple | list) or len(result) != 2:
            return failed(
                name, f"it returned {returned(result)}: return a pair (grad_query, grad_keys)"
            )
        if result[0] is None or result[1] is None:
            return failed(
                name,
                f"a gradient is None for {label}",
                "None means 'no path from the loss to this tensor'; return torch.zeros_like(...) instead",
            )
        got_q, got_k = _tensor(result[0], "grad_query"), _tensor(result[1], "grad_keys")
        want_q, want_k = att.query_key_gradients(attend, q, k, v, target)
        if got_q.shape != want_q.shape or got_k.shape != want_k.shape:
            return failed(
                name,
                f"gradient shapes {tuple(got_q.shape)}, {tuple(got_k.shape)}; expected "
                f"{tuple(want_q.shape)}, {tuple(want_k.shape)}",
                "a gradient has the shape of the tensor it is taken with respect to",
            )
        if _close(got_q, want_q) and _close(got_k, want_k):
            continue
        if label == "softmax" and not got_q.any():
            return failed(
                name,
                "softmax gives zero gradients",
                "did you detach, or compute the loss under torch.no_grad()? work on copies that "
                "require grad, q = query.detach().clone().requires_grad_() (and keys the same), "
                "before calling attend",
            )
        if _close(got_q, want_q / 3):
            return failed(
                name,
                f"gradients are 3× too small for {label}",
                "the loss is the sum of the 3 squared differences, not their mean (mse_loss takes the "
                "mean)",
            )
        if _close(got_q, -want_q):
            return failed(
                name,
                f"gradients have the wrong sign for {label}",
                "return ∂L/∂q itself, the gradient that backward() puts in .grad, not the descent "
                "direction −∂L/∂q",
            )
        return failed(
            name,
            f"wrong gradients for {label}",
            "copies of query and keys that require grad, the loss on them, one backward(), then "
            "their .grad",
            "loss = ((attend(q, k, values) - target) ** 2).sum(), where q and k are those copies",
        )
    return passed(name, "softmax gradients match autograd, and argmax gives exactly zero")
