"""What notebook 01's checkers share: tensors compared in float64, keys named from k1."""

import torch

from helpers.feedback import ReturnedNone


def _tensor(x, what: str) -> torch.Tensor:
    if x is None:
        raise ReturnedNone(what)
    return torch.as_tensor(x).double()


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=tol, rtol=tol)


def _key(i: int) -> str:
    """Keys are numbered from 1 in the text, the sliders and the plots: row 0 is k1."""
    return f"k{i + 1}"
