"""Notebook 01, part e: recovering a signal from an average (the recovery matrix)."""

from collections.abc import Callable

import torch

from helpers import attention as att
from helpers.checks.code import guarded
from helpers.checks.lookup.shared import _close, _tensor
from helpers.feedback import CheckResult, failed, passed, run_check


def check_recovery_matrix(
    fn: Callable[[torch.Tensor], torch.Tensor], trials: int = 10
) -> CheckResult:
    """``fn(basis_a) -> M`` with M·(v_a + v_b)/2 = v_a for every v_a in span(A), v_b ⟂ A."""
    name = "recovery matrix"
    return run_check(name, lambda: _recovery_matrix(name, fn, trials))


def _recovery_matrix(name: str, fn, trials: int) -> CheckResult:
    fn = guarded(fn, ("basis_a",))
    g = torch.Generator().manual_seed(2)
    for trial in range(trials):
        d, dim_a = 5 + trial % 4, 1 + trial % 3
        basis_a, basis_b = att.orthogonal_subspaces(d, dim_a, d - dim_a, g)
        m = _tensor(fn(basis_a.clone()), "M")
        if m.shape != (d, d):
            hint = "M acts on vectors in R^d, so it is (d, d)"
            if m.shape == (dim_a, dim_a):
                hint = "AᵀA is (m, m), but M acts on vectors in R^d: which product of A and Aᵀ is (d, d)?"
            return failed(
                name, f"M has shape {tuple(m.shape)} for d={d}; expected ({d}, {d})", hint
            )
        v_a = basis_a @ torch.randn(dim_a, generator=g, dtype=torch.float64)
        v_b = basis_b @ torch.randn(d - dim_a, generator=g, dtype=torch.float64)
        got = m @ ((v_a + v_b) / 2)
        if _close(got, v_a, 1e-6):
            continue
        if _close(got, v_a / 2, 1e-6):
            hint = "you get v_a / 2: the average halved v_a, so scale the projector by 2"
        elif _close(got, v_b, 1e-6) or _close(got, v_b / 2, 1e-6):
            hint = "you recovered v_b: project onto span(A), not onto its complement"
        elif _close(got, (v_a + v_b) / 2, 1e-6):
            hint = "M leaves the average unchanged: M must remove the part in B"
        else:
            return failed(
                name,
                f"M·(v_a + v_b)/2 ≠ v_a in {d} dimensions with dim A = {dim_a}",
                "which matrix keeps every vector of A and sends every vector orthogonal to A to 0?",
                "that is the projector onto span(A), A·Aᵀ; the average also halved v_a",
                "M = 2·A·Aᵀ",
            )
        return failed(name, f"M·(v_a + v_b)/2 ≠ v_a in {d} dimensions with dim A = {dim_a}", hint)
    return passed(name, f"recovers v_a exactly on {trials} random subspace pairs")
