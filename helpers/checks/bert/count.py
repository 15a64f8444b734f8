"""Notebook 05, exercise 6: the parameter count of one BERT layer."""

import numbers
from collections.abc import Callable

import torch

from helpers.bert import parameter_breakdown
from helpers.feedback import CheckResult, failed, passed, returned_not, run_check

COUNT_CASES = ((768, 3072), (384, 1536), (1024, 4096), (16, 40))


def layer_parameters(hidden: int, intermediate: int) -> int:
    """One encoder layer: Q, K, V, O with biases, the feed-forward layer with biases, two LayerNorms."""
    breakdown = parameter_breakdown(
        dict(
            hidden_size=hidden,
            intermediate_size=intermediate,
            num_hidden_layers=1,
            num_attention_heads=1,
        )
    )
    return breakdown["attention"] + breakdown["feed-forward"] + breakdown["LayerNorm"] - 2 * hidden


def check_layer_count(fn: Callable) -> CheckResult:
    """``fn(hidden, intermediate)`` -> the parameters of one encoder layer."""
    name = "parameters of one layer"
    return run_check(name, lambda: _layer_count(name, fn))


def _layer_count(name: str, fn: Callable) -> CheckResult:
    for H, ff in COUNT_CASES:
        got, want = fn(H, ff), layer_parameters(H, ff)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Real):  # numpy's numbers are Real
            return failed(name, f"your function returned {returned_not(got, 'a number')} (hidden "
                          f"{H}, intermediate {ff})", "add the parts up and return one integer")  # fmt: skip
        if got == want:
            continue
        no_biases = 4 * H * H + 2 * H * ff
        mistakes = {
            no_biases + 4 * H: "the biases are missing: each of Q, K, V, O has H biases, the "
            "feed-forward layer I + H",
            no_biases: "the biases are missing, and the LayerNorms too: each of Q, K, V, O has H "
            "biases, the feed-forward layer I + H, and two LayerNorms 2H each",
            want - ff - H: "the feed-forward layer's biases are missing: I for H→I, H for I→H",
            want + H * H + H: "the pooler (H·H + H) is counted: it sits once on top of the model, "
            "not in every layer",
            want + 2 * H: "three LayerNorms are counted: a layer has two (after attention and after "
            "the feed-forward layer); the third belongs to the embeddings",
            want - 4 * H: "4H short: either the two LayerNorms are missing (γ and β, 2H each) or the "
            "biases of Q, K, V and O (H each)",
            want - 2 * H: "2H short: either one LayerNorm is missing, or each LayerNorm counts γ only; "
            "a layer has two (after attention and after the feed-forward layer), each with γ and β, 2H",
            want - H * H - H: "the output projection O (H·H + H) is missing: attention has four "
            "linear maps, Q, K, V and O",
            layer_parameters(H, 4 * H): "the feed-forward size is taken as 4H: use the "
            "intermediate size I (the last case has I ≠ 4H)",
            want - H * ff - ff: "the feed-forward layer has two linear maps, H→I and I→H",
        }  # fmt: skip
        hint = mistakes.get(got)
        return failed(name, f"hidden {H}, intermediate {ff}: you counted {got:,}, expected {want:,}",
                      *([hint] if hint else ["attention 4(H² + H), feed-forward H·I + I + I·H + H, two "
                        "LayerNorms 2·2H", "4*(H*H + H) + (2*H*I + I + H) + 4*H"]))  # fmt: skip
    return passed(name, f"right for {len(COUNT_CASES)} shapes: bert-base's layer has "
                  f"{layer_parameters(768, 3072):,} parameters")  # fmt: skip
