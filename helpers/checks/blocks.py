"""Notebook 02's checkers for what is built from the single-head pieces: multi-head attention and
BERT's post-LN block ("add & norm"). As in ``modules``, a wrong output is compared with what each
known mistake would produce from the student's own weights, and the match names the mistake.
"""

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from helpers.checks.code import _close, find_loop, guarded, not_a_tensor
from helpers.checks.modules import PADDED_NAN, padded_not_finite
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, returned, run_check
from helpers.layers import MultiHeadAttention, to_torch_multihead

# --- multi-head attention ----------------------------------------------------------------------


def check_split_merge(
    split: Callable[[torch.Tensor, int], torch.Tensor],
    merge: Callable[[torch.Tensor], torch.Tensor],
) -> CheckResult:
    """``split(x, h)``: (B, T, d) -> (B, h, T, d/h), head i holding columns i·d/h … (i+1)·d/h of
    every token; ``merge`` undoes it."""
    name = "split and merge"
    return run_check(name, lambda: _split_merge(name, split, merge))


def _split_merge(name: str, split, merge) -> CheckResult:
    B, T, d, h = 2, 5, 12, 3
    x = torch.arange(B * T * d, dtype=torch.float32).reshape(B, T, d)
    heads = split(x, h)
    if not isinstance(heads, torch.Tensor):
        return failed(name, f"split of (B, T, d) = {(B, T, d)} with h = {h} returned "
                      f"{returned(heads)}", f"return the {(B, h, T, d // h)} tensor")  # fmt: skip
    if heads.shape != (B, h, T, d // h):
        return failed(name, f"split of (B, T, d) = {(B, T, d)} with h = {h} gave "
                      f"{tuple(heads.shape)}, expected {(B, h, T, d // h)}",
                      "the heads go in dim 1, before the tokens")  # fmt: skip
    want = x.view(B, T, h, d // h).transpose(1, 2)
    if not torch.equal(heads, want):
        if torch.equal(heads, x.reshape(B, h, T, d // h)):
            return failed(
                name,
                "split reshaped straight to (B, h, T, d/h): 'head 0' holds whole tokens, not a "
                "slice of every token's features",
                "view as (B, T, h, d/h) first, then transpose(1, 2)",
            )
        return failed(name, "head i does not hold columns i·d/h to (i+1)·d/h of every token",
                      "view as (B, T, h, d/h), then transpose(1, 2)")  # fmt: skip
    fresh = want.contiguous()  # as attention outputs arrive: a new tensor, not a view of x
    try:
        back = merge(fresh)
    except NotImplementedError:  # a stub still: "not implemented yet", not a bug in merge
        raise
    except RuntimeError as err:
        hint = ("after the transpose the memory is not in (B, T, d) order: use .reshape, or "
                ".contiguous() before .view" if "view" in str(err) else
                "undo the split's steps in reverse order: transpose(1, 2), then reshape to (B, T, d)")  # fmt: skip
        return failed(name, f"merge of a contiguous (B, h, T, d/h) tensor raised: {err}".split("\n")[0],
                      hint)  # fmt: skip
    if not isinstance(back, torch.Tensor) or not torch.equal(back, x):
        return failed(name, "merge(split(x)) is not x", "transpose back to (B, T, h, d/h), then "
                      "reshape to (B, T, d); .reshape copies where .view cannot")  # fmt: skip
    return passed(name, f"split {(B, T, d)} -> {(B, h, T, d // h)}, each head its own slice; "
                  "merge(split(x)) == x")  # fmt: skip


def same_as_torch_multihead(cls: type, num_heads: int) -> CheckResult:
    """``cls(4·num_heads, num_heads)`` against ``nn.MultiheadAttention`` holding the same weights, with a
    padding mask (PyTorch's key_padding_mask is True for padding: the opposite convention)."""
    name = "yours vs nn.MultiheadAttention"
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a whole number ≥ 1, not {num_heads!r}")
    with seeded(0):
        return run_check(name, lambda: _same_as_torch(name, cls, num_heads))


def _same_as_torch(name: str, cls: type, num_heads: int) -> CheckResult:
    d = 4 * num_heads  # each head 4 features, whatever HEADS is
    ours = guarded(cls(d, num_heads))
    theirs = to_torch_multihead(ours)
    x = torch.randn(2, 5, d)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    with torch.no_grad():
        out = ours(x, mask)
        got, want = out[mask], theirs(x, x, x, key_padding_mask=~mask)[0][mask]
    if _close(got, want) and padded_not_finite(out, mask):
        return failed(name, "equal on every real token, but yours is NaN or inf at the padded ones "
                      "(PyTorch's is not)", "run check_multi_head_attention: it names the mistake")  # fmt: skip
    if _close(got, want):
        return passed(name, "equal on every real token, with padding")
    return failed(name, f"they differ by up to {float((got - want).abs().max()):.3g}",
                  "run check_multi_head_attention: it names the mistake")  # fmt: skip


def check_multi_head_attention(cls: type) -> CheckResult:
    """``cls(embed_dim, num_heads)`` with ``query``, ``key``, ``value`` and ``out`` (each
    ``nn.Linear(d, d)``) and ``forward(x, mask=None)``: x (B, T, d), mask (B, T) True = real token."""
    name = "multi-head attention"
    with seeded(0):
        return run_check(name, lambda: _multi_head(name, cls))


def _reference(m: nn.Module, d: int, h: int) -> MultiHeadAttention:
    ref = MultiHeadAttention(d, h)
    with torch.no_grad():
        for attr in ("query", "key", "value", "out"):
            getattr(ref, attr).load_state_dict(getattr(m, attr).state_dict())
    return ref


def _head_mistakes(m: nn.Module, x: torch.Tensor, mask: torch.Tensor, h: int) -> dict:
    """What each known multi-head mistake outputs, from the student's own projections."""
    B, T, d = x.shape
    hs = d // h

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, h, T, hs)
        return t.view(B, T, h, hs).transpose(1, 2)

    def merge(y: torch.Tensor) -> torch.Tensor:  # (B, h, T, hs) -> (B, T, d)
        return y.transpose(1, 2).reshape(B, T, d)

    def attend(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        scale: float = hs,
        keys: torch.Tensor = mask[:, None, None, :],
        dim: int = -1,
    ) -> torch.Tensor:
        scores = (q @ k.transpose(-2, -1) / math.sqrt(scale)).masked_fill(~keys, float("-inf"))
        return torch.softmax(scores, dim=dim) @ v

    q, k, v = split(m.query(x)), split(m.key(x)), split(m.value(x))
    no_transpose = [f(x).reshape(B, h, T, hs) for f in (m.query, m.key, m.value)]
    mistakes = {
        "you reshaped (B, T, d) straight to (B, h, T, d/h) without a transpose, so each 'head' "
        "mixes features of different positions: view(B, T, h, d/h), then transpose(1, 2)": m.out(
            attend(*no_transpose).reshape(B, T, d)
        ),
        "you scaled by √d; each head's dot products have d/h terms, so divide by √(d/h)": m.out(
            merge(attend(q, k, v, scale=d))
        ),
        "the scores are not scaled: divide q·k by √(d/h), the square root of a head's size, so "
        "the softmax does not saturate as the heads get wider": m.out(
            merge(attend(q, k, v, scale=1))
        ),
        "the heads are merged in the wrong order: transpose (B, h, T, d/h) back to "
        "(B, T, h, d/h) before reshaping to (B, T, d)": m.out(attend(q, k, v).reshape(B, T, d)),
        "the heads are interleaved when merged: head i's outputs must stay together, in columns "
        "i·d/h to (i+1)·d/h": m.out(attend(q, k, v).permute(0, 2, 3, 1).reshape(B, T, d)),
        "the output projection is skipped: end with self.out(...)": merge(attend(q, k, v)),
        "the softmax runs over the queries: normalise over the keys, dim=-1": m.out(
            merge(attend(q, k, v, dim=-2))
        ),
        "the mask has no effect: fill the scores of padded keys with -inf": m.out(
            merge(attend(q, k, v, keys=torch.ones_like(mask)[:, None, None, :]))
        ),
        "the mask is inverted: True means a real token, so fill where the mask is False (~mask)": m.out(
            merge(attend(q, k, v, keys=~mask[:, None, None, :]))
        ),
        "you filled the padded scores with 0, and e^0 = 1 still gives them weight: fill with -inf": m.out(
            merge(
                torch.softmax(
                    (q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(
                        ~mask[:, None, None, :], 0.0
                    ),
                    -1,
                )
                @ v
            )
        ),  # fmt: skip
        "you zeroed the padded weights after the softmax, so the rest no longer sum to 1: mask the "
        "scores with -inf before it": m.out(
            merge(
                (
                    torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), -1)
                    * mask[:, None, None, :]
                )
                @ v
            )
        ),  # fmt: skip
    }
    if B == h:  # (B, 1, T) against (B, h, T, T) broadcasts sequence b's mask onto head b
        mistakes["the mask is not broadcast over the heads: scores are (B, h, T, T), so the "
                 "mask needs shape (B, 1, 1, T): mask[:, None, None, :]"] = m.out(
            merge(attend(q, k, v, keys=mask[:, None, :]))
        )  # fmt: skip
    return mistakes


def _multi_head(name: str, cls: type) -> CheckResult:
    if loop := find_loop(cls, strict=True):
        return failed(name, loop, "no loop over heads or tokens: the heads are one more batch "
                      "dimension, (B, h, T, d/h), and one matmul scores them all")  # fmt: skip
    for B, T, d, h in ((4, 5, 16, 4), (2, 6, 12, 3)):
        torch.manual_seed(B)
        m = guarded(cls(d, h))
        for attr in ("query", "key", "value", "out"):
            layer = getattr(m, attr, None)
            if not isinstance(layer, nn.Linear) or (layer.in_features, layer.out_features) != (
                d,
                d,
            ):
                return failed(name, f"self.{attr} is missing or not nn.Linear(embed_dim, embed_dim)",
                              "create query, key, value and out in __init__")  # fmt: skip
        x = torch.randn(B, T, d)
        mask = torch.ones(B, T, dtype=torch.bool)
        mask[0, -2:] = False  # sequence 0 has two padding tokens
        with torch.no_grad():
            try:
                got = m(x, mask)
            except RuntimeError as err:
                if "must match the size" in str(err):
                    return failed(
                        name,
                        f"forward(x, mask) raised RuntimeError with B={B}, h={h}: {err}",
                        "the scores are (B, h, T, T): give the mask shape (B, 1, 1, T), "
                        "mask[:, None, None, :], so it broadcasts over the heads and the queries",
                    )
                raise
            if wrong := not_a_tensor(got, tuple(x.shape), "(B, T, d)"):
                hint = "merge the heads back to (B, T, d), then apply self.out"
                if isinstance(got, tuple | list):
                    hint = ("return the output alone: nn.MultiheadAttention also returns the "
                            "weights; this exercise does not") if len(got) == 2 else (
                            "return the tensor itself (a trailing comma, `return y,`, makes a "
                            "tuple)")  # fmt: skip
                return failed(name, wrong, hint)
            want = _reference(m, d, h)(x, mask)
            rows = mask  # padded queries' outputs are never used
            where = f"(B, T, d, h) = ({B}, {T}, {d}, {h}) with padding"
            if _close(got[rows], want[rows]) and padded_not_finite(got, mask):
                return failed(name, f"the padded positions' outputs are NaN or inf for {where} (the "
                              "real tokens' are right)",
                              PADDED_NAN.replace("mask[:, None, :]", "mask[:, None, None, :]"))  # fmt: skip
            if _close(got[rows], want[rows]):
                continue
            if (
                torch.isnan(got[~rows]).any() and torch.isfinite(got[rows]).all()
            ):  # the mask hit rows
                return failed(name, f"wrong output for {where}: the padded positions' outputs are NaN",
                              "you masked the queries (rows) instead of the keys (columns): "
                              "mask[:, None, None, :] broadcasts over the keys")  # fmt: skip
            for hint, output in _head_mistakes(m, x, mask, h).items():
                if _close(got[rows], output[rows]):
                    return failed(name, f"wrong output for {where}", hint)
            return failed(
                name,
                f"wrong output for {where}",
                "check each step's shape: split (B, h, T, d/h), scores (B, h, T, T), merged (B, T, d)",
                "compare one head with your single-head attention on its slice of the features",
            )
    if verdict := _without_mask(m, torch.randn(2, 3, d)):
        return failed(name, *verdict)
    return passed(name, "matches helpers' multi-head attention on 2 shapes (B = h and B ≠ h), with "
                  "padding and without a mask")  # fmt: skip


def _without_mask(m: nn.Module, x: torch.Tensor) -> tuple[str, str] | None:
    """What is wrong with ``m(x)``, the call with no mask, against ``m(x, all True)``, or None."""
    with torch.no_grad():
        try:
            got = m(x)
        except (TypeError, AttributeError) as err:  # ~None, None[:, None], None.bool()
            return (f"forward(x) without a mask raised {type(err).__name__}: {err}",
                    "mask=None means no padding: give forward a default, forward(self, x, mask=None), "
                    "and use the mask only `if mask is not None`")  # fmt: skip
        want = m(x, torch.ones(x.shape[:2], dtype=torch.bool))
    if not isinstance(got, torch.Tensor) or not _close(got, want):
        return ("forward(x) without a mask differs from forward(x, a mask of all True)",
                "mask=None means every token is real")  # fmt: skip
    return None


# --- BERT's add & norm: the post-LN block ------------------------------------------------------


def check_post_ln_block(cls: type) -> CheckResult:
    """``cls(embed_dim, num_heads)`` with ``attn``, ``ff``, ``ln1``, ``ln2`` and ``forward(x, mask=None)``
    computing LN1(x + attn(x)), then LN2(h + ff(h))."""
    name = "post-LN block"
    with seeded(0):
        return run_check(name, lambda: _post_ln(name, cls))


def _block_mistakes(m: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> dict:
    attn, ff, ln1, ln2 = m.attn, m.ff, m.ln1, m.ln2
    pre = x + attn(ln1(x), mask)
    h = ln1(x + attn(x, mask))
    return {
        "that is pre-LN (GPT-2's order): BERT normalises after adding, LN(x + attn(x))": pre
        + ff(ln2(pre)),
        "you normalised the sublayer's output, then added: x + LN(attn(x)); BERT normalises "
        "the sum, LN(x + attn(x))": (lambda a: a + ln2(ff(a)))(x + ln1(attn(x, mask))),
        "the residual connections are missing: add the sublayer's input before normalising": ln2(
            ff(ln1(attn(x, mask)))
        ),
        "the second LayerNorm is ln1 again: each sublayer has its own, ln1 then ln2": ln1(
            h + ff(h)
        ),
        "the feed-forward layer reads the block's input x; it reads h = LN(x + attn(x))": ln2(
            h + ff(x)
        ),
        "the mask is not passed to the attention: self.attn(x, mask)": (lambda a: ln2(a + ff(a)))(
            ln1(x + attn(x))
        ),
    }


def _post_ln(name: str, cls: type) -> CheckResult:
    d, h = 16, 4
    m = guarded(cls(d, h))
    for attr in ("attn", "ff", "ln1", "ln2"):
        if not isinstance(getattr(m, attr, None), nn.Module):
            return failed(name, f"self.{attr} is missing", "keep the layers __init__ creates")
    with torch.no_grad():
        for norm in (m.ln1, m.ln2):  # random γ and β, so swapping or sharing them shows
            for p in norm.parameters():
                p.copy_(torch.randn_like(p))
        x = torch.randn(3, 5, d)
        mask = torch.ones(3, 5, dtype=torch.bool)
        mask[1, -2:] = False
        got = m(x, mask)
        hidden = m.ln1(x + m.attn(x, mask))
        want = m.ln2(hidden + m.ff(hidden))
        rows = mask
        if wrong := not_a_tensor(got, tuple(x.shape), "(B, T, d)"):
            return failed(name, wrong, "return the second add & norm")
        if _close(got[rows], want[rows]):
            if verdict := _without_mask(m, x):
                return failed(name, *verdict)
            return passed(name, "LN(x + attn(x)), then LN(h + ff(h)), with the block's own layers")
        for hint, output in _block_mistakes(m, x, mask).items():
            if _close(got[rows], output[rows]):
                return failed(name, "wrong output on (B, T, d) = (3, 5, 16) with padding", hint)
    return failed(
        name,
        "wrong output on (B, T, d) = (3, 5, 16) with padding",
        "two add & norm steps: each adds the sublayer's input to its output, then normalises",
        "h = self.ln1(x + self.attn(x, mask)); return self.ln2(h + self.ff(h))",
    )
