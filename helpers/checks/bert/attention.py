"""Notebook 05, exercise 2: multi-head attention with the extended attention mask."""

import ast
import math

import torch
import torch.nn as nn

from helpers.checks.bert.shared import EVAL_DROPOUT, _first_match, _train_output, _varies_in_eval
from helpers.checks.blocks import _head_mistakes
from helpers.checks.code import (
    _close,
    expanded,
    find_loop,
    not_a_tensor,
    once_bound,
    source_tree,
    written_out,
)
from helpers.checks.modules import padded_not_finite
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, run_check
from helpers.layers import MultiHeadAttention


def check_bert_attention(cls: type) -> CheckResult:
    """``cls(hidden_size, num_heads, dropout=0.0)`` with ``query``, ``key``, ``value``, ``out``
    (nn.Linear(H, H)) and ``forward(x, mask=None)``: x (B, T, H), mask (B, T) boolean, True = real token.
    Checked without a mask first (the attention itself), then with padding (the extended mask), then
    with dropout 0.5: none in eval mode, on the attention weights in training mode."""
    name = "BERT self-attention"
    with seeded(0):
        return run_check(name, lambda: _attention(name, cls))


def extended_attention_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T) True = real token -> (B, 1, 1, T): 0 for a real key, the dtype's most negative number for
    padding, added to every head's and every query's scores before the softmax."""
    real = mask[:, None, None, :].bool()  # (B, 1, 1, T)
    return torch.zeros(real.shape, dtype=dtype).masked_fill(~real, torch.finfo(dtype).min)


def _scores(m: nn.Module, x: torch.Tensor, h: int, scale: float | None = None):
    """The student's projections split into heads, and the (B, h, T, T) scores divided by ``scale``
    (default √(H/h))."""
    B, T, d = x.shape

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(B, T, h, d // h).transpose(1, 2)

    q, k, v = split(m.query(x)), split(m.key(x)), split(m.value(x))
    scale = math.sqrt(d // h) if scale is None else scale
    return q @ k.transpose(-2, -1) / scale, v


def _merge_out(m: nn.Module, weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    B, h, T, hs = v.shape
    return m.out((weights @ v).transpose(1, 2).reshape(B, T, h * hs))


def _structure_mistakes(m: nn.Module, x: torch.Tensor, h: int) -> dict[str, torch.Tensor]:
    """What each mistake in the attention itself (no mask) outputs, from the student's projections."""
    d = x.shape[-1]
    scores, v = _scores(m, x, h)
    everything = torch.ones(x.shape[:2], dtype=torch.bool)
    heads = _head_mistakes(m, x, everything, h)
    heads = {hint: out for hint, out in heads.items() if "mask" not in hint}  # no mask here
    return {
        "the scores are not scaled: divide q·k by √(H/h), the square root of a head's size, so the "
        "softmax does not saturate": _merge_out(m, torch.softmax(_scores(m, x, h, 1.0)[0], -1), v),
        "the scores are divided by H/h, a head's size: divide by its square root, √(H/h)": _merge_out(
            m, torch.softmax(_scores(m, x, h, d // h)[0], -1), v
        ),
        "the softmax runs over the heads (dim 1): normalise over the keys, the last axis, dim=-1": (
            _merge_out(m, torch.softmax(scores, 1), v)
        ),
        **heads,
    }


def _mask_mistakes(
    m: nn.Module, x: torch.Tensor, mask: torch.Tensor, h: int
) -> dict[str, torch.Tensor]:
    scores, v = _scores(m, x, h)  # (B, h, T, T)
    keys = mask[:, None, None, :].float()

    def out(s: torch.Tensor) -> torch.Tensor:
        return _merge_out(m, torch.softmax(s, dim=-1), v)

    return {
        "the mask is multiplied into the scores: a padded key's score becomes 0, which still gets "
        "weight after the softmax; add a large negative number to it instead, (1 - mask) · min": out(
            scores * keys
        ),
        "the 0/1 mask itself is added to the scores: real keys get +1 and padded keys +0, which "
        "hides nothing; add the extended mask, (1 - mask) · -10000, so padded keys get a large "
        "negative score": out(scores + keys),
        "the extended mask is multiplied into the scores: add it, scores + (1 - mask) · min, so "
        "real keys keep their scores and padded keys get a large negative one": out(
            scores * extended_attention_mask(mask)
        ),
        "the mask is multiplied in after the softmax: the weights no longer sum to 1; add the large "
        "negative number before the softmax": _merge_out(m, torch.softmax(scores, -1) * keys, v),
        "the extended mask is added after the softmax, to the weights: add it to the scores, before "
        "the softmax, so the padded keys' weights come out 0": _merge_out(
            m, torch.softmax(scores, -1) + extended_attention_mask(mask), v
        ),
        "the mask's large negative number is added after the softmax, to the weights: add it to the "
        "scores, before the softmax": _merge_out(
            m, torch.softmax(scores, -1) + (1 - keys) * -10000.0, v
        ),
        "the mask's large negative number (-1e9) is added after the softmax, to the weights: add it "
        "to the scores, before the softmax": _merge_out(
            m, torch.softmax(scores, -1) + (1 - keys) * -1e9, v
        ),
        "the mask has no effect on the real tokens: it must act on the keys (the last axis of the "
        "(B, h, T, T) scores), shape (B, 1, 1, T); masking the queries (B, 1, T, 1) shifts a whole row, "
        "which the softmax ignores": out(scores),
    }


INVERTED = (
    "the mask is inverted: the large negative number goes to the real tokens' keys; add it where the "
    "mask is False (padding), (1 - mask.float()) · -10000 (a boolean mask must become numbers first) or masked_fill(~mask, …)"
)
NAN = (
    "NaN comes from one of two slips: (1 - mask) · (-inf) is 0 · (-inf) = NaN for every real key, or "
    "a huge negative number added after the softmax, to the weights, overflows in weights @ v. Add a "
    "large finite negative number (-10000, or torch.finfo(scores.dtype).min) to the scores, before "
    "the softmax, or fill: scores.masked_fill(~mask, float('-inf'))"
)
PADDED_NAN = (
    "add the large negative number to the padded keys' scores only, mask[:, None, None, :]: a padded "
    "query still attends to the real keys. NaN there is not harmless: in the next layer a real "
    "token's 0 weight on that padded token's value is 0 · NaN = NaN"
)
GENERIC = (
    "check each step's shape: split (B, h, T, H/h), scores (B, h, T, T), extended mask (B, 1, 1, T) "
    "added, softmax over the keys, merged (B, T, H)",
    "scores = q @ k.transpose(-2, -1) / math.sqrt(H / h) + extended mask; y = softmax(scores, -1) @ v; "
    "self.out(y.transpose(1, 2).reshape(B, T, H))",
)


def _new_attention(cls: type, d: int, h: int, **dropout) -> nn.Module | str:
    """``cls(d, h)`` after the layers it must have are checked; a verdict string when one is missing."""
    m = cls(d, h, **dropout)
    for attr in ("query", "key", "value", "out"):
        layer = getattr(m, attr, None)
        if not isinstance(layer, nn.Linear) or (layer.in_features, layer.out_features) != (d, d):
            return f"self.{attr} is missing or not nn.Linear(hidden_size, hidden_size)"
    return m.eval()


def _call(m: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``m(x, mask)`` without gradients; a forward that changes ``x`` in place raises ``_InPlace``."""
    before = x.clone()
    with torch.no_grad():
        got = m(x, mask)
    if not torch.equal(x, before):
        raise _InPlace
    return got


class _InPlace(Exception):
    """The student's forward changed its input in place."""


def _head_loop(cls: type) -> str | None:
    """A for loop or comprehension of ``cls.forward`` over the heads (``range(self.num_heads)``, which
    ``find_loop`` takes for a walk over settings), or None."""
    if "forward" not in vars(cls) or (tree := source_tree(vars(cls)["forward"])) is None:
        return None
    bound = once_bound(tree)  # h = self.num_heads, then range(h)
    for node in ast.walk(tree):
        if not isinstance(node, ast.For | ast.comprehension):
            continue
        over, iterable = ast.unparse(node.iter), expanded(node.iter, bound)
        if not written_out(iterable) and "head" in over + ast.unparse(iterable):
            return f"`forward` loops over `{over}`"
    return None


def _attention(name: str, cls: type) -> CheckResult:
    if loop := find_loop(cls) or _head_loop(cls):  # the exercise says: no loops over heads
        return failed(name, loop, "no loop over heads or tokens: the heads are one more batch "
                      "dimension, (B, h, T, H/h), and one matmul scores them all")  # fmt: skip
    try:
        return _attention_outputs(name, cls)
    except _InPlace:
        return failed(name, "forward changed its input x in place",
                      "the caller (and autograd) still need x: compute new tensors (x + …, x * …) "
                      "instead of x += … or x.mul_(…)")  # fmt: skip


def _attention_outputs(name: str, cls: type) -> CheckResult:
    # d/h, √d and √(d/h) all differ in both shapes, so each wrong scale is told apart
    for B, T, d, h in ((4, 5, 24, 4), (2, 6, 12, 3)):
        torch.manual_seed(B)
        m = _new_attention(cls, d, h)
        if isinstance(m, str):
            return failed(name, m, "keep the layers __init__ creates: query, key, value, out")
        x = torch.randn(B, T, d)
        mask = torch.ones(B, T, dtype=torch.bool)
        mask[0, -2:] = False  # sequence 0 has two padding tokens
        ref = MultiHeadAttention(d, h).eval()
        for attr in ("query", "key", "value", "out"):
            getattr(ref, attr).load_state_dict(getattr(m, attr).state_dict())
        shape = f"(B, T, H, heads) = ({B}, {T}, {d}, {h})"
        with torch.no_grad():
            want, want_masked = ref(x), ref(x, mask)
        # without a mask first: the attention itself (split, scale, softmax, merge, out)
        try:
            got = _call(m, x, None)
        except _InPlace:
            raise
        except Exception as err:
            try:  # a crash with the mask too is not about mask=None: run_check shows where it is
                _call(m, x, mask)
            except Exception:
                raise err from None
            return failed(name, f"forward(x) without a mask raised {type(err).__name__}: "
                          f"{_first_line(err)}", "mask=None means every token is real: skip the mask, "
                          "if mask is not None: …")  # fmt: skip
        if wrong := not_a_tensor(got, tuple(x.shape), "(B, T, H)"):
            return failed(name, wrong, "merge the heads back to (B, T, H), then apply self.out")
        if not _close(got, want):
            with torch.no_grad():
                hint = _first_match(got, _structure_mistakes(m, x, h))
            return failed(name, f"wrong output without a mask for {shape}",
                          *([hint] if hint else GENERIC))  # fmt: skip
        # then with padding: the extended mask
        try:
            got = _call(m, x, mask)
        except RuntimeError as err:
            if "must match the size" in str(err):
                return failed(name, f"forward(x, mask) raised RuntimeError with B={B}, h={h}: "
                              f"{_first_line(err)}", "the scores are (B, h, T, T): the extended "
                              "mask needs shape (B, 1, 1, T), mask[:, None, None, :]")  # fmt: skip
            raise
        if wrong := not_a_tensor(got, tuple(x.shape), "(B, T, H)"):
            return failed(name, wrong, "with a mask, return the same (B, T, H) as without one")
        if _close(got[mask], want_masked[mask]) and padded_not_finite(got, mask):
            return failed(name, f"the padded positions' outputs are NaN or inf for {shape} (the real "
                          "tokens' are right)", PADDED_NAN)  # fmt: skip
        if _close(got[mask], want_masked[mask]):
            continue
        where = f"wrong output for {shape} with padding"
        if torch.isnan(got[mask]).any():
            return failed(name, f"{where}: it holds NaN", NAN)
        with torch.no_grad():
            mistakes = {**_mask_mistakes(m, x, mask, h), **_head_mistakes(m, x, mask, h)}
            hint = _first_match(got, mistakes, rows=mask)
            scores, v = _scores(m, x, h)
            inverted = _merge_out(m, torch.softmax(scores + mask[:, None, None, :] * -1e4, -1), v)
        # sequence 0's real tokens: the only ones an inverted mask changes whatever number it adds
        padded = mask.clone()
        padded[1:] = False
        if hint is None and _close(got[padded], inverted[padded]):
            hint = INVERTED
        return failed(name, where, *([hint] if hint else GENERIC))
    dropout = _attention_dropout(name, cls)  # a CheckResult is falsy when failed: no `or` here
    if dropout is not None:
        return dropout
    return passed(name, "equal to helpers.layers.MultiHeadAttention on 2 shapes (B = h and B ≠ h), with "
                  "padding and without a mask; dropout on the attention weights in training only")  # fmt: skip


def _attention_dropout(name: str, cls: type) -> CheckResult | None:
    """With dropout 0.5: none in eval mode; in training mode, the reference's under the same seed (the
    weights (B, h, T, T) dropped with the same draw). None when right."""
    B, T, d, h = 2, 6, 12, 3
    torch.manual_seed(1)
    try:
        m = _new_attention(cls, d, h, dropout=0.5)
    except TypeError:  # a class without the dropout argument
        return failed(name, "your class takes no `dropout` argument, so its attention dropout "
                      "cannot be checked", "keep the __init__ the exercise gives: __init__(self, "
                      "hidden_size, num_heads, dropout=0.0), and self.dropout on the weights")  # fmt: skip
    x, mask = torch.randn(B, T, d), torch.ones(B, T, dtype=torch.bool)
    mask[0, -2:] = False
    ref = MultiHeadAttention(d, h, dropout=0.5)
    for attr in ("query", "key", "value", "out"):
        getattr(ref, attr).load_state_dict(getattr(m, attr).state_dict())
    if _varies_in_eval(m, lambda: m(x, mask)):
        return failed(name, *EVAL_DROPOUT)
    with torch.no_grad():
        evaluated = m(x, mask)
    trained = _train_output(m, lambda: m(x, mask))
    if _close(trained[mask], _train_output(ref, lambda: ref(x, mask))[mask]):
        return None
    if _close(trained[mask], evaluated[mask]):
        return failed(name, "with dropout=0.5 the training-mode output equals the eval one: the "
                      "attention weights are never dropped", "self.dropout(weights) after the softmax, "
                      "before multiplying by v (the config's attention_probs_dropout_prob)")  # fmt: skip
    if hasattr(m, "dropout") and _close(
        trained[mask], _train_output(m, lambda: m.dropout(ref.eval()(x, mask)))[mask]
    ):
        return failed(name, "dropout is applied to the output: drop the attention weights",
                      "weights = self.dropout(torch.softmax(scores, dim=-1)); then weights @ v")  # fmt: skip
    return failed(name, "with dropout=0.5 in training mode the output differs from BERT's",
                  "apply self.dropout once, to the attention weights after the softmax (not to the "
                  "scores, nor to the output)")  # fmt: skip


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
