"""Notebook 02's attention checkers: the student's loop reference (the tester), then their self-attention
class, compared with it and with torch's SDPA on inputs built to expose each classic mistake
(LayerNorm's checker is ``checks.layer_norm``).

When an output is wrong, the checker recomputes what each known mistake would have produced from the
student's own weights; the one that matches names the mistake.
"""

import math
import warnings
from collections.abc import Callable
from copy import deepcopy

import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.checks.code import LOOP_HINT, _close, find_loop, guarded, not_a_tensor
from helpers.env import seeded
from helpers.feedback import (
    CheckResult,
    failed,
    on_case,
    passed,
    returned,
    run_check,
)
from helpers.loops import loop_self_attention

# The loop reference's signature: query, key, value (nn.Linear), x (B, T, d), mask (B, T) or None.
LoopAttention = Callable[
    [nn.Linear, nn.Linear, nn.Linear, torch.Tensor, torch.Tensor | None], torch.Tensor
]


# --- self-attention ----------------------------------------------------------------------------


def check_self_attention(cls: type) -> CheckResult:
    """``cls(embed_dim)`` with self.query/key/value and ``forward(x, mask=None)``, x (B, T, d), mask (B, T)."""
    name = "self-attention"
    with seeded(0):  # the checker's random inputs; the notebook's generators are left alone
        return run_check(name, lambda: _self_attention(name, cls))


def _sdpa_reference(m: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    q, k, v = m.query(x), m.key(x), m.value(x)  # (B, T, d)
    allowed = None if mask is None else mask[:, None, :]  # (B, 1, T): which keys each query may see
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def _attention_mistakes(
    m: nn.Module, x: torch.Tensor, mask: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """What each known mistake would output, computed from the student's own projections."""
    B, T, d = x.shape
    q, k, v = m.query(x), m.key(x), m.value(x)
    scores = q @ k.transpose(1, 2)  # (B, T, T)
    keys_ok = torch.ones(B, 1, T, dtype=torch.bool) if mask is None else mask[:, None, :]

    def soft(s: torch.Tensor, allowed: torch.Tensor, dim: int = -1) -> torch.Tensor:
        return torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=dim)

    right = soft(scores / math.sqrt(d), keys_ok)
    mistakes = {
        "you divided the scores by d; divide by √d, the standard deviation of q·k for unit-variance "
        "features": soft(scores / d, keys_ok) @ v,
        "you divided the scores by √T; divide by √d (the embedding size, not the sequence length)": soft(
            scores / math.sqrt(T), keys_ok
        )
        @ v,
        "the scores are not scaled: divide q·k by √d before the softmax": soft(scores, keys_ok) @ v,
        "softmax over the wrong axis: each query's weights over the keys must sum to 1, so dim=-1 "
        "(you normalised over the queries)": soft(scores / math.sqrt(d), keys_ok, dim=1) @ v,
        "the scores are transposed (keys attending to queries): use q @ k.transpose(-2, -1), so row i "
        "holds query i's scores": soft(k @ q.transpose(1, 2) / math.sqrt(d), keys_ok) @ v,
        "the value projection is skipped: mix self.value(x), not x": right @ x,
        "the query projection is skipped: compare self.query(x) with the keys, not x itself": soft(
            x @ k.transpose(1, 2) / math.sqrt(d), keys_ok
        )
        @ v,
        "the key projection is skipped: compare the queries with self.key(x), not x itself": soft(
            q @ x.transpose(1, 2) / math.sqrt(d), keys_ok
        )
        @ v,
        "the values come from the query projection: mix self.value(x)": right @ q,
        "the values come from the key projection: mix self.value(x)": right @ k,
        "you scaled after the softmax: divide the scores by √d before it, so the weights still sum "
        "to 1": soft(scores, keys_ok) / math.sqrt(d) @ v,
        "you multiplied the scores by √d; divide them by it": soft(scores * math.sqrt(d), keys_ok)
        @ v,
        "the softmax runs over the batch (dim 0); normalise each query over the keys, dim=-1": soft(
            scores / math.sqrt(d), keys_ok, dim=0
        )
        @ v,
        "log_softmax gives log-weights (negative, not summing to 1): use torch.softmax": (
            torch.log_softmax((scores / math.sqrt(d)).masked_fill(~keys_ok, float("-inf")), dim=-1)
        )
        @ v,
        "a sigmoid weighs each key on its own, so the weights do not sum to 1: use a softmax over "
        "the keys": torch.sigmoid((scores / math.sqrt(d)).masked_fill(~keys_ok, float("-inf"))) @ v,
        "the weights are transposed before mixing: row i of (weights @ v) must use query i's "
        "weights, so do not transpose them": right.transpose(1, 2) @ v,
    }
    if mask is not None:
        no_mask = torch.ones_like(keys_ok)
        mistakes |= {
            "the mask has no effect: padded keys must get zero weight; masked_fill the scores' "
            "columns (mask[:, None, :]) with -inf before the softmax": soft(
                scores / math.sqrt(d), no_mask
            )
            @ v,
            "the mask is inverted: True means a real token, so fill where the mask is False (~mask)": soft(
                scores / math.sqrt(d), ~keys_ok
            )
            @ v,
            "you zeroed the padded weights after the softmax, so the rest no longer sum to 1: "
            "mask the scores with -inf before the softmax instead": (
                soft(scores / math.sqrt(d), no_mask) * keys_ok
            )
            @ v,
            "you filled the padded scores with 0, and e^0 = 1 still gives them weight: fill with "
            "-inf (or torch.finfo(scores.dtype).min)": torch.softmax(
                (scores / math.sqrt(d)).masked_fill(~keys_ok, 0.0), -1
            )
            @ v,
            "you masked the queries (rows) instead of the keys (columns): padded keys must get no "
            "weight, so mask[:, None, :]; a fully masked row is NaN": torch.softmax(
                (scores / math.sqrt(d)).masked_fill(~mask[:, :, None], float("-inf")), -1
            )
            @ v,
        }
    return mistakes


GENERIC_HINT = "compare with the loop reference on a tiny input (B=1, T=2) and print the weights"

# A padded query still attends to the real keys, so the reference's output there is finite. Its value
# is free (nothing reads it), NaN is not: pooling's 0 · NaN is NaN, and the next layer's 0 weight on a
# NaN value too. Masking queries as well as keys (mask[:, :, None] & mask[:, None, :]) makes it NaN.
PADDED_NAN = ("mask the keys only, mask[:, None, :]: a padded query still attends to the real keys. "
              "NaN there is not harmless: pooling multiplies it by 0, and 0 · NaN is NaN")  # fmt: skip
LOOP_PADDED_NAN = ("skip key j when mask[b, j] is False, for every query i, padded ones too: a padded "
                   "query still attends to the real keys. NaN there is not harmless: pooling "
                   "multiplies it by 0, and 0 · NaN is NaN")  # fmt: skip


def padded_not_finite(got: torch.Tensor, mask: torch.Tensor | None) -> bool:
    """Whether ``got`` (B, T, d) holds NaN or inf at the positions ``mask`` (B, T) marks as padding."""
    return mask is not None and not bool(torch.isfinite(got[~mask]).all())


# the loop reference's own: there is no other reference to compare it with
LOOP_GENERIC_HINT = ("work out one (b, i) by hand on B=1, T=2: print query(x[b, i]) · key(x[b, j]) / √d "
                     "for each key j, their softmax over j, and Σ_j w_j · value(x[b, j])")  # fmt: skip


# The hints in the loop tester's terms: there, one query and one key at a time, no module, no dims.
LOOP_TERMS = (
    ("masked_fill the scores' columns (mask[:, None, :]) with -inf before the softmax",
     "give key j the score -inf when mask[b, j] is False, before the softmax"),
    ("so mask[:, None, :]; a fully masked row is NaN",
     "so skip key j when mask[b, j] is False (not query i); a fully masked row is NaN"),
    ("mix self.value(x), not x", "weight value(x[b, j]), not x[b, j]"),
    ("mix self.value(x)", "weight value(x[b, j])"),
    ("compare self.query(x) with the keys, not x itself", "score query(x[b, i]), not x[b, i]"),
    ("compare the queries with self.key(x), not x itself", "score against key(x[b, j]), not x[b, j]"),
    ("so dim=-1 (you normalised over the queries)", "so over j for each query i (you normalised "
     "over the queries)"),
    ("normalise each query over the keys, dim=-1", "normalise each query's scores over the keys j"),
    ("use q @ k.transpose(-2, -1), so row i holds query i's scores",
     "score query i against every key j, not key i against the queries"),
)  # fmt: skip


def _diagnose(
    got: torch.Tensor, m: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, rows,
    loop: bool = False,
) -> str:  # fmt: skip
    hint = _known_mistake(got, _attention_mistakes(m, x, mask), rows)
    if loop and hint == GENERIC_HINT:
        return LOOP_GENERIC_HINT
    for module_terms, loop_terms in LOOP_TERMS if loop else ():
        hint = hint.replace(module_terms, loop_terms)
    return hint


def _half_overflow(m: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> str | None:
    """The error ``m`` raises in float16 because a number it writes does not fit (masked_fill(...,
    -1e9), or finfo(x.dtype).min with x still float32), or None. Tried under float16 autocast, as a
    T4 trains notebook 03 (a torch whose CPU autocast lacks float16 skips it with a warning), then as
    a float16 copy; any other failure is not this probe's business."""

    def autocast() -> None:
        with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.float16):
            warnings.simplefilter("ignore")
            m(x, mask)

    for attempt in (autocast, lambda: deepcopy(m).half()(x.half(), mask)):
        try:
            attempt()
        except Exception as err:  # noqa: BLE001 (a module that cannot be copied: not this check's)
            if "overflow" in str(err):
                return str(err).splitlines()[0]
    return None


def _known_mistake(got: torch.Tensor, mistakes: dict, rows) -> str:
    for (
        hint,
        output,
    ) in mistakes.items():  # every row first: padded queries tell some mistakes apart
        if _close(got, output):
            return hint
    for hint, output in mistakes.items():
        if _close(got[rows], output[rows]):
            return hint
    return GENERIC_HINT


def _self_attention(name: str, cls: type) -> CheckResult:
    torch.manual_seed(0)
    d = 8
    m = guarded(cls(d))
    for attr in ("query", "key", "value"):
        layer = getattr(m, attr, None)
        if not isinstance(layer, nn.Linear) or (layer.in_features, layer.out_features) != (d, d):
            return failed(
                name,
                f"self.{attr} is missing or not nn.Linear(embed_dim, embed_dim)",
                "create self.query, self.key and self.value in __init__, each nn.Linear(embed_dim, embed_dim)",
            )
    if loop := find_loop(cls, strict=True):
        return failed(name, f"{loop}", LOOP_HINT)
    with torch.no_grad():
        x = torch.randn(2, 5, d)
        with on_case("x of shape (B, T, d) = (2, 5, 8), no mask"):
            out = m(x)
        if wrong := not_a_tensor(out, tuple(x.shape), "(B, T, d)"):
            hint = "return the attended values, one d-vector per token"
            if isinstance(out, torch.Tensor) and out.shape == (2, 5, 5):
                hint = "that is the (B, T, T) weight matrix: multiply it by the values"
            return failed(name, wrong, hint)
        other = x.clone()
        other[1] = torch.randn(5, d)
        if not _close(m(other)[0], out[0]):
            hint = _diagnose(out, m, x, None, slice(None))  # e.g. a softmax over the batch
            if hint == GENERIC_HINT:
                hint = (
                    "the scores must be (B, T, T), one matrix per sequence: q @ k.transpose(-2, -1) "
                    "or torch.bmm, not a (B·T, B·T) matrix over the flattened batch"
                )
            return failed(
                name,
                "attention mixes tokens of different sequences: sequence 0's output changed when only "
                "sequence 1 did",
                hint,
            )
        # against the loop reference, then against SDPA on more shapes and input scales
        mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
        if not _close(
            m(x, mask)[mask], loop_self_attention(m.query, m.key, m.value, x, mask)[mask]
        ):
            return failed(name, "differs from the loop reference on (B, T, d) = (2, 5, 8) with padding",
                          _diagnose(m(x, mask), m, x, mask, mask))  # fmt: skip
        if padded_not_finite(m(x, mask), mask):
            return failed(name, "the padded positions' outputs are NaN or inf on (B, T, d) = (2, 5, 8) "
                          "(the real tokens' are right)", PADDED_NAN)  # fmt: skip
        if overflow := _half_overflow(m, x, mask):
            return failed(name, f"right in float32, but in float16 it raises: {overflow}",
                          "notebook 03 trains in float16 on a T4 GPU, where numbers end at ±65,504: "
                          "a fill such as -1e9 does not fit; fill with float('-inf') or "
                          "torch.finfo(scores.dtype).min")  # fmt: skip
        # right at d = 8 with and without a mask: then a failure at another d is a size written in
        right_at_d = _close(m(x), loop_self_attention(m.query, m.key, m.value, x, None))
        for B, T, dim, scale, seed in ((3, 7, 16, 1.0, 1), (1, 1, 4, 1.0, 2), (4, 6, 8, 3.0, 3)):
            torch.manual_seed(seed)
            m = guarded(cls(dim))
            x = scale * torch.randn(B, T, dim)
            lengths = torch.randint(1, T + 1, (B,)) if T > 1 else torch.ones(B, dtype=torch.long)
            lengths[0] = max(1, T - 2)  # at least one sequence with padding, when T allows it
            mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
            for mk in (None, mask):
                rows = torch.ones(B, T, dtype=torch.bool) if mk is None else mk
                got = m(x) if mk is None else m(x, mk)
                if not _close(got[rows], _sdpa_reference(m, x, mk)[rows]):
                    where = f"(B, T, d) = ({B}, {T}, {dim}), {'no mask' if mk is None else 'padding mask'}"
                    hint = _diagnose(got, m, x, mk, rows)
                    if hint == GENERIC_HINT and dim != d and right_at_d:
                        hint = (f"right for d = {d}, wrong for d = {dim}: take every size from the "
                                "input (x.shape) or the layers, none written in")  # fmt: skip
                    return failed(name, f"differs from SDPA on {where}", hint)
        big = 100 * torch.randn(2, 5, 8)
        torch.manual_seed(4)
        m = guarded(cls(8))
        got = m(big)
        if not torch.isfinite(got).all():
            return failed(
                name,
                "NaN or inf when the inputs are large (x × 100)",
                "exp of a large score overflows: use torch.softmax, or subtract each row's max score "
                "before exp (the softmax does not change)",
            )
        if not _close(got, _sdpa_reference(m, big, None), atol=1e-3, rtol=1e-3):
            hint = _diagnose(got, m, big, None, slice(None))
            if hint == GENERIC_HINT:  # small inputs agree, so a tiny example would too
                hint = ("right on ordinary inputs, wrong only when the scores are large: do you clamp "
                        "or cap the scores? torch.softmax needs no guard")  # fmt: skip
            return failed(name, "wrong on large inputs (x × 100)", hint)
    return passed(
        name,
        "matches the loop reference and SDPA on 4 shapes, with and without padding, at input scales "
        "1 to 100, without loops",
    )


# --- the tester first: a loop reference, then the vectorised module against it -------------------


def check_loop_attention(fn: LoopAttention) -> CheckResult:
    """``fn(query, key, value, x, mask=None)`` (three ``nn.Linear`` layers, x (B, T, d), mask (B, T))
    computing self-attention the slow, obvious way; compared with helpers' loop reference."""
    name = "loop reference"
    with seeded(0):
        return run_check(name, lambda: _loop_attention(name, fn))


def _projections(d: int) -> nn.Module:
    m = nn.Module()
    m.query, m.key, m.value = (nn.Linear(d, d) for _ in range(3))
    return m


def _tester_cases() -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    padded = torch.tensor([[True] * 4, [True, True, False, False]])
    return [
        (torch.randn(2, 4, 6), None),
        (torch.randn(2, 4, 6), padded),
        (3 * torch.randn(1, 3, 6), torch.tensor([[True, True, False]])),
    ]


def _loop_attention(name: str, fn) -> CheckResult:
    m = _projections(6)
    with torch.no_grad():
        for x, mask in _tester_cases():
            got = guarded(fn, ("query", "key", "value", "x", "mask"))(
                m.query, m.key, m.value, x, mask
            )
            where = f"(B, T, d) = {tuple(x.shape)}, {'no mask' if mask is None else 'padding'}"
            if not isinstance(got, torch.Tensor) or got.shape != x.shape:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else None
                said = f"is {shape}" if shape is not None else f"came back as {returned(got)}"
                return failed(name, f"on {where} the output should be {tuple(x.shape)}; it {said}",
                              "one output vector per token: out[b, i] = Σ_j weight_ij · value(x[b, j])")  # fmt: skip
            want = loop_self_attention(m.query, m.key, m.value, x, mask)
            rows = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask
            if not _close(got[rows], want[rows]):
                return failed(
                    name,
                    f"differs from the formula on {where}",
                    _diagnose(got, m, x, mask, rows, loop=True),
                )
            if padded_not_finite(got, mask):
                return failed(name, f"the padded positions' outputs are NaN or inf on {where} (the "
                              "real tokens' are right)", LOOP_PADDED_NAN)  # fmt: skip
    return passed(
        name,
        "matches the formula on 3 inputs, with and without padding: now it can test your module",
    )


def compare_with_reference(cls: type, reference: LoopAttention) -> CheckResult:
    """The student's vectorised ``cls(d)`` against the student's own loop ``reference`` (with the
    module's weights), on the tester's inputs: the tester written first, then used."""
    name = "vectorised vs your loop reference"
    with seeded(0):
        return run_check(name, lambda: _compare(name, cls, reference))


def _compare(name: str, cls: type, reference) -> CheckResult:
    m = guarded(cls(6))
    with torch.no_grad():
        for x, mask in _tester_cases():
            got = m(x) if mask is None else m(x, mask)
            want = reference(m.query, m.key, m.value, x, mask)
            rows = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask
            if got.shape != want.shape or not _close(got[rows], want[rows]):
                gap = (got[rows] - want[rows]).abs().max() if got.shape == want.shape else "a shape"
                where = f"(B, T, d) = {tuple(x.shape)}, {'no mask' if mask is None else 'padding'}"
                return failed(name, f"they differ on {where} (by {gap})",
                              "if your loop reference passed its own check, the module is what is wrong")  # fmt: skip
    return passed(name, "equal on 3 inputs, with and without padding")
