"""Notebook 05's checkers: BERT's embeddings, its multi-head attention with the extended attention mask,
add & norm, the [CLS] classifier, AdamW written out, the per-layer parameter count, and the whole
model against ``transformers.BertModel`` on real weights (minBERT's ``sanity_check.py``).

As in notebook 02's checkers, a wrong output is compared with what each known mistake would produce
from the student's own weights, and the match names the mistake. Dropout is checked in training mode
under a fixed seed: the same seed draws the same dropout mask for the same shape, so the reference and
the student's module drop the same numbers if they drop them from the same tensor; in evaluation mode
two calls under different seeds must agree (``F.dropout(x, p)`` without ``training=`` drops even then).
The checkers hand the student copies of their inputs where an in-place change would be a bug autograd
trips on later (add & norm's x, attention's x), and say so when one changed.
"""

import ast
import math
import numbers
from collections.abc import Callable

import torch
import torch.nn as nn

from helpers.bert import BertConfig, BertEmbeddings, BertModel, parameter_breakdown
from helpers.checks.blocks import _head_mistakes
from helpers.checks.modules import (
    _close,
    expanded,
    find_loop,
    not_a_tensor,
    once_bound,
    padded_not_finite,
    source_tree,
    written_out,
)
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, returned_not, run_check
from helpers.layers import LayerNorm, MultiHeadAttention

CORRECT = "Your BERT implementation is correct!"  # minBERT's sanity_check.py says this
SANITY_ATOL = 1e-5


def _randomise(module: nn.Module) -> None:
    """Random γ and β in every LayerNorm, so a missing or misplaced LayerNorm shows."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, LayerNorm | nn.LayerNorm):
                m.weight.normal_(1.0, 0.5)
                m.bias.normal_(0.0, 0.5)


def _train_output(
    module: nn.Module, call: Callable[[], torch.Tensor], seed: int = 7
) -> torch.Tensor:
    """``call()`` with ``module`` in training mode (dropout on), the random generators seeded."""
    module.train()
    try:
        with seeded(seed), torch.no_grad():
            return call()
    finally:
        module.eval()


def _first_match(got: torch.Tensor, mistakes: dict[str, torch.Tensor], rows=None) -> str | None:
    for hint, output in mistakes.items():
        if _close(got, output) if rows is None else _close(got[rows], output[rows]):
            return hint
    return None


def _varies_in_eval(module: nn.Module, call: Callable[[], torch.Tensor]) -> bool:
    """True when ``call()`` in evaluation mode gives different outputs under different seeds: dropout that
    ignores ``.eval()`` (``F.dropout(x, p)`` defaults to training=True)."""
    module.eval()
    with torch.no_grad():
        with seeded(1):
            first = call()
        with seeded(2):
            second = call()
    return not _close(first, second)


EVAL_DROPOUT = (
    "in evaluation mode (.eval()) the output changes from call to call: dropout is on when it should be off",
    "use the module's nn.Dropout, self.dropout(...), which .eval() switches off; F.dropout(x, p) drops "
    "even in eval mode unless given training=self.training",
)


# --- embeddings --------------------------------------------------------------------------------

EMB_CONFIG = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, type_vocab_size=2,
                        hidden_dropout_prob=0.5, layer_norm_eps=1e-12)  # fmt: skip


def check_embeddings(cls: type) -> CheckResult:
    """``cls(config)`` with ``word``, ``position``, ``token_type`` (nn.Embedding), ``norm`` and ``dropout``;
    ``forward(input_ids, token_type_ids=None)`` -> (B, T, H)."""
    name = "BERT embeddings"
    with seeded(0):
        return run_check(name, lambda: _embeddings(name, cls))


def _embedding_mistakes(
    m: nn.Module, ids: torch.Tensor, types: torch.Tensor
) -> dict[str, torch.Tensor]:
    B, T = ids.shape
    word, pos, typ = m.word(ids), m.position(torch.arange(T)), m.token_type(types)
    counting_on = m.position(torch.arange(B * T).view(B, T))  # positions 0 … B·T-1 across the batch
    norm = m.norm
    H = word.shape[-1]
    return {
        "the positions keep counting across the batch (0 … B·T-1): every sequence starts again at "
        "position 0, torch.arange(T), the same row for the whole batch": m.norm(word + counting_on + typ),
        "the positions start at 1: the first token, [CLS], is at position 0, so torch.arange(T)":
            m.norm(word + m.position(torch.arange(1, T + 1)) + typ),
        "the word embeddings are scaled by √H (as in the original Transformer): BERT adds the three "
        "lookups unscaled": m.norm(word * math.sqrt(H) + pos + typ),
        "the LayerNorm's ε is not the config's layer_norm_eps (1e-12): use self.norm, or pass "
        "eps=self.norm.eps to F.layer_norm": nn.functional.layer_norm(
            word + pos + typ, (H,), norm.weight, norm.bias, 1e-5),
        "the position embeddings are looked up with the token ids: look them up with the positions "
        "0 … T-1, torch.arange(T)": m.norm(word + m.position(ids) + typ),
        "the token types are ignored: add self.token_type(token_type_ids), which tells sentence A "
        "(0) from sentence B (1)": m.norm(word + pos),
        "the position embeddings are missing: add self.position(torch.arange(T)); without them "
        "attention cannot tell word order": m.norm(word + typ),
        "the LayerNorm is missing: normalise the sum, self.norm(word + position + token type)":
            word + pos + typ,
        "the LayerNorm is applied to the word embeddings only: normalise the sum of all three":
            m.norm(word) + pos + typ,
    }  # fmt: skip


def _embeddings(name: str, cls: type) -> CheckResult:
    cfg = EMB_CONFIG
    m = cls(cfg)
    ref = BertEmbeddings(cfg)
    missing, unexpected = ref.load_state_dict(m.state_dict(), strict=False)
    if missing or unexpected:
        return failed(name, f"the module's parameters do not match BERT's: missing {missing}, "
                      f"unexpected {unexpected}", "keep the layers __init__ creates, with their names: "
                      "word, position, token_type, norm, dropout")  # fmt: skip
    _randomise(m)
    with torch.no_grad():  # small embeddings, as a trained BERT's: a LayerNorm ε of 1e-5 shows
        for table in (m.word, m.position, m.token_type):
            table.weight.mul_(0.02)
    ref.load_state_dict(m.state_dict())
    m.eval(), ref.eval()
    ids = torch.randint(1, cfg.vocab_size, (3, 7))
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1]] * 3)
    with torch.no_grad():
        got = m(ids, types)
        want = ref(ids, types)
    if wrong := not_a_tensor(got, tuple(want.shape), "(B, T, H)"):
        return failed(name, wrong, "return one vector per token: word + position + token type, normalised")  # fmt: skip
    if _varies_in_eval(m, lambda: m(ids, types)):
        return failed(name, *EVAL_DROPOUT)
    if not _close(got, want):
        with torch.no_grad():
            hint = _first_match(got, _embedding_mistakes(m, ids, types))
        return failed(name, "wrong output on a batch of 3 sequences of 7 tokens (sentence A, then B)",
                      *([hint] if hint else ["word + position + token type embeddings, then "
                        "LayerNorm, then dropout", "positions = torch.arange(T); return "
                        "self.dropout(self.norm(self.word(input_ids) + self.position(positions) "
                        "+ self.token_type(token_type_ids)))"]))  # fmt: skip
    with torch.no_grad():
        if not _close(m(ids), ref(ids)):
            return failed(name, "token_type_ids=None gives a different output than all zeros",
                          "no token types means every token is sentence A: "
                          "torch.zeros_like(input_ids)")  # fmt: skip
    trained = _train_output(m, lambda: m(ids, types))
    if _close(trained, want):
        return failed(name, "in training mode the output equals the evaluation output: no dropout",
                      "end with self.dropout(...): dropout regularises training and is off in eval mode")  # fmt: skip
    with torch.no_grad():
        summed = m.word(ids) + m.position(torch.arange(ids.shape[1])) + m.token_type(types)
    dropped_first = _train_output(m, lambda: m.norm(m.dropout(summed)))
    if _close(trained, dropped_first):
        return failed(name, "dropout comes before the LayerNorm",
                      "normalise first, then drop: self.dropout(self.norm(x))")  # fmt: skip
    if not _close(trained, _train_output(ref, lambda: ref(ids, types))):
        return failed(name, "in training mode the output differs from BERT's (dropout)",
                      "apply self.dropout once, to the normalised sum")  # fmt: skip
    return passed(name, "word + position + token type, LayerNorm, dropout: equal to helpers.bert's "
                  "on a batch with sentences A and B, in eval and training mode")  # fmt: skip


# --- multi-head attention with the extended attention mask -------------------------------------


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


# --- add & norm --------------------------------------------------------------------------------


def check_add_norm(add_norm: Callable) -> CheckResult:
    """``add_norm(x, sublayer_output, dropout, norm)`` -> norm(x + dropout(sublayer_output))."""
    name = "add & norm"
    with seeded(0):
        return run_check(name, lambda: _add_norm(name, add_norm))


def _add_norm(name: str, add_norm: Callable) -> CheckResult:
    x, y = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    norm, dropout = LayerNorm(16, eps=1e-12), nn.Dropout(0.5)
    _randomise(norm)

    def run(f: Callable) -> torch.Tensor:
        with seeded(3), torch.no_grad():
            return f()

    want = run(lambda: norm(x + dropout(y)))
    # the student's own copies: an in-place change shows, and spoils nothing
    mine = x.clone(), y.clone()
    got = run(lambda: add_norm(*mine, dropout, norm))
    if wrong := not_a_tensor(got, tuple(x.shape), "LN(x + dropout(y))"):
        return failed(name, wrong, "return the normalised sum, the same shape as x")
    if not torch.equal(mine[0], x):
        return failed(name, "your function changed x in place (x += … or x.add_(…))",
                      "write x + dropout(sublayer_output), a new tensor: x is the previous layer's "
                      "output, and autograd needs it unchanged for the backward pass")  # fmt: skip
    if not _close(got, want):
        mistakes = {
            "the residual is added after the norm, x + LN(dropout(y)): BERT (post-LN) normalises "
            "the sum, LN(x + dropout(y))": run(lambda: x + norm(dropout(y))),
            "the sublayer's output is normalised before the residual is added, x + dropout(LN(y)) "
            "(pre-LN style): BERT is post-LN and normalises the sum, LN(x + dropout(y))": run(
                lambda: x + dropout(norm(y))
            ),
            "dropout is applied to the sum: drop only the sublayer's output, then add x, "
            "LN(x + dropout(y))": run(lambda: norm(dropout(x + y))),
            "dropout is applied to the residual x: drop the sublayer's output y instead": run(
                lambda: norm(dropout(x) + y)
            ),
            "dropout is applied after the norm: drop y before adding, LN(x + dropout(y))": run(
                lambda: dropout(norm(x + y))
            ),
            "dropout is missing: LN(x + dropout(y))": run(lambda: norm(x + y)),
            "the residual connection is missing: add the sublayer's input x before normalising": run(
                lambda: norm(dropout(y))
            ),
            "the LayerNorm is missing: normalise the sum, norm(x + dropout(y))": run(
                lambda: x + dropout(y)
            ),
        }
        hint = _first_match(got, mistakes)
        return failed(name, "wrong output (checked in training mode: dropout 0.5, a fixed seed)",
                      *([hint] if hint else ["add the sublayer's input x to its dropped-out output, then "
                        "normalise", "return norm(x + dropout(sublayer_output))"]))  # fmt: skip
    dropout.eval()  # as in model.eval(): no dropout, LN(x + y)
    evaluated = run(lambda: add_norm(x.clone(), y.clone(), dropout, norm))
    if not _close(evaluated, run(lambda: norm(x + y))):
        return failed(name, "with the dropout module in eval mode your output still drops numbers",
                      "call the module you are given, dropout(sublayer_output): it follows .train() and "
                      ".eval(); F.dropout(y, p) drops even in eval mode unless given "
                      "training=dropout.training")  # fmt: skip
    return passed(
        name, "LN(x + dropout(y)), dropout on the sublayer's output only, none in eval mode"
    )


# --- the [CLS] classifier ----------------------------------------------------------------------

CLS_CONFIG = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip


def check_classifier(cls: type) -> CheckResult:
    """``cls(bert, num_labels, dropout)`` with ``bert``, ``dropout`` and ``head``;
    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` -> log-probabilities (B, C)."""
    name = "[CLS] classifier"
    with seeded(0):
        return run_check(name, lambda: _classifier(name, cls))


def _classifier(name: str, cls: type) -> CheckResult:
    C = 5
    bert = BertModel(CLS_CONFIG).eval()
    m = cls(bert, C, 0.5)
    if not isinstance(getattr(m, "head", None), nn.Linear) or m.head.out_features != C:
        return failed(name, "self.head is missing or not nn.Linear(hidden_size, num_labels)",
                      "keep the layers __init__ creates: bert, dropout, head")  # fmt: skip
    m.eval()
    ids = torch.randint(1, CLS_CONFIG.vocab_size, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, -3:] = 0
    ids[1, -3:] = 0
    types = torch.tensor([[0, 0, 0, 1, 1, 1]] * 3)
    try:
        with torch.no_grad():
            got = m(ids, mask, types)
    except TypeError as err:  # outputs[1], as on transformers' outputs: BertOutput is read by name
        if "attribute name must be string" not in str(err):
            raise
        return failed(name, "self.bert(...) returns a BertOutput, read by name: outputs[1] fails on it",
                      "pooled = self.bert(input_ids, attention_mask, token_type_ids).pooler_output")  # fmt: skip
    with torch.no_grad():
        out = bert(ids, mask, types)
        logits = m.head(out.pooler_output)
        mistakes = {
            "the output is raw logits: NLL needs log-probabilities, F.log_softmax(logits, dim=-1)": logits,
            "the output is probabilities (softmax): NLL needs their log, F.log_softmax(logits, dim=-1)": logits.softmax(-1),
            "the log-softmax runs over the batch (dim 0): normalise over the classes, dim=-1": logits.log_softmax(0),
            "the head reads the [CLS] token's last hidden state: read the pooled output "
            "(pooler_output: tanh of a dense layer on [CLS]), as minBERT's classifier does "
            "(bert-base trained it on next-sentence prediction)": m.head(out.last_hidden_state[:, 0]).log_softmax(-1),
            "the head reads the mean of the token vectors: read the pooled [CLS] vector, "
            "pooler_output": m.head(out.last_hidden_state.mean(1)).log_softmax(-1),
            "the attention mask is not passed to BERT, so the padding is attended to: "
            "self.bert(input_ids, attention_mask, token_type_ids)": m.head(bert(ids, None, types).pooler_output).log_softmax(-1),
            "the token types are not passed to BERT: self.bert(input_ids, attention_mask, "
            "token_type_ids)": m.head(bert(ids, mask).pooler_output).log_softmax(-1),
            "neither the attention mask nor the token types is passed to BERT: pass all three, "
            "self.bert(input_ids, attention_mask, token_type_ids)": m.head(bert(ids).pooler_output).log_softmax(-1),
            "the attention mask and the token types are swapped: BertModel takes (input_ids, "
            "attention_mask, token_type_ids) in that order": m.head(bert(ids, types, mask).pooler_output).log_softmax(-1),
        }  # fmt: skip
    want = logits.log_softmax(-1)
    if wrong := not_a_tensor(got, tuple(want.shape), "(B, C)"):
        return failed(name, wrong, "one row of C log-probabilities per sentence")
    if _varies_in_eval(m, lambda: m(ids, mask, types)):
        return failed(name, *EVAL_DROPOUT)
    if not _close(got, want):
        hint = _first_match(got, mistakes)
        return failed(name, f"wrong output for 3 sentences (one padded), {C} classes",
                      *([hint] if hint else ["pooled = self.bert(...).pooler_output; dropout; head; "
                        "log-softmax over the classes", "return F.log_softmax(self.head(self.dropout("
                        "pooled)), dim=-1)"]))  # fmt: skip
    trained = _train_output(m, lambda: m(ids, mask, types))
    if _close(trained, want):
        return failed(name, "in training mode the output equals the evaluation output: no dropout",
                      "apply self.dropout to the pooled vector before self.head")  # fmt: skip
    pooled = out.pooler_output
    after = _train_output(m, lambda: m.dropout(m.head(pooled)).log_softmax(-1))
    if _close(trained, after):
        return failed(name, "dropout is applied to the logits: drop the pooled vector, before the head",
                      "self.head(self.dropout(pooled))")  # fmt: skip
    if not _close(trained, _train_output(m, lambda: m.head(m.dropout(bert(ids, mask, types).pooler_output)).log_softmax(-1))):  # fmt: skip
        return failed(name, "in training mode the output differs (dropout)",
                      "apply self.dropout once, to the pooled vector")  # fmt: skip
    return passed(name, "pooled [CLS] -> dropout -> linear -> log-softmax over the classes, with the "
                  "mask and token types passed on")  # fmt: skip


# --- AdamW -------------------------------------------------------------------------------------

ADAMW = dict(lr=0.05, betas=(0.9, 0.99), eps=0.1, weight_decay=0.5)
STEPS = 12


def _problem(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Start values of two parameters and the fixed 'gradients' of each step (from a linear model)."""
    g = torch.Generator().manual_seed(seed)
    start = [torch.randn(3, 4, generator=g), torch.randn(4, generator=g)]
    inputs = [torch.randn(5, 4, generator=g) for _ in range(STEPS)]
    return start, inputs


def _loss(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    w, b = params
    return ((x @ w.T).tanh().sum(-1) + (x * b).sum(-1)).pow(2).mean()


def _trajectory(
    make_optimizer: Callable, seed: int = 0, steps: int | None = None
) -> list[torch.Tensor]:
    start, inputs = _problem(seed)
    params = [nn.Parameter(p.clone()) for p in start]
    idle = nn.Parameter(torch.ones(2))  # never gets a gradient: a step must leave it alone
    opt = make_optimizer([{"params": params}, {"params": [idle]}])
    for x in inputs[:steps]:
        opt.zero_grad()
        _loss(params, x).backward()
        opt.step()
    return [p.detach().clone() for p in (*params, idle)]


def _variant(mistake: str) -> Callable:
    """An AdamW with one known mistake, as an optimizer class for ``_trajectory``."""

    class Variant(torch.optim.Optimizer):
        def __init__(
            self,
            params: list[dict],
            lr: float,
            betas: tuple[float, float],
            eps: float,
            weight_decay: float,
        ) -> None:
            super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

        @torch.no_grad()
        def step(self) -> None:
            for group in self.param_groups:
                (b1, b2), lr, eps, wd = (
                    group["betas"],
                    group["lr"],
                    group["eps"],
                    group["weight_decay"],
                )
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    s = self.state[p]
                    if not s:
                        s.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                    s["t"] += 1
                    g = p.grad + wd * p if mistake == "l2" else p.grad
                    c1, c2 = (b2, b1) if mistake == "betas swapped" else (b1, b2)
                    m = c1 * s["m"] + (1 - c1) * g
                    v = c2 * s["v"] + (1 - c2) * (g if mistake == "v of g" else g * g)
                    if mistake != "not stored":  # the running means live in the state
                        s["m"], s["v"] = m, v
                    t = s["t"] + 1 if mistake == "t from 2" else s["t"]
                    if mistake not in ("no correction", "efficient", "efficient, decay after"):
                        m, v = m / (1 - c1**t), v / (1 - c2**t)
                    if mistake == "m only":
                        v = s["v"]
                    if mistake == "v only":
                        m = s["m"]
                    if mistake == "corrected in place":  # the state keeps the corrected values
                        s["m"], s["v"] = m, v
                    if mistake == "eps inside":
                        step = m / (v + eps).sqrt()
                    elif mistake == "no sqrt":
                        step = m / (v + eps)
                    elif mistake == "eps after division":
                        step = m / v.sqrt() + eps
                    else:
                        step = m / (v.sqrt() + eps)
                    if mistake.startswith("efficient"):  # α·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε)
                        step = math.sqrt(1 - b2**t) / (1 - b1**t) * step
                    if mistake == "decay without lr":
                        p.mul_(1 - wd)
                    elif mistake not in ("l2", "no decay", "decay after", "efficient, decay after"):
                        p.mul_(1 - lr * wd)
                    p.sub_(lr * step)
                    if mistake in ("decay after", "efficient, decay after"):
                        p.mul_(1 - lr * wd)

    return lambda groups: Variant(groups, **ADAMW)


EFFICIENT = (
    "you folded the bias correction into the step size, α·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε), the Adam "
    "paper's 'efficient' form: it adds ε to √v, not to √v̂, as if ε were 1/√(1-β2ᵗ) times larger (10× "
    "at t = 1 here). With ε = 1e-8 that changes nothing, but this check's ε = 0.1 shows it: divide m̂ "
    "by √v̂ + ε, as the formula above and torch.optim.AdamW do"
)

ADAMW_MISTAKES = {
    "no correction": "no bias correction: m and v start at 0, so early steps are too small; divide by "
    "(1 - β1ᵗ) and (1 - β2ᵗ), t counting steps from 1",
    "m only": "only m is bias-corrected: v̂ = v / (1 - β2ᵗ) too",
    "l2": "the weight decay is added to the gradient (L2, as in Adam): AdamW decays the weights "
    "directly, θ ← θ - α·λ·θ, apart from the adaptive step",
    "decay without lr": "the weight decay is not scaled by the learning rate: θ ← θ - α·λ·θ",
    "decay after": "the weights are decayed after the Adam update: decay θ first (as torch does), "
    "then take the step",
    "no decay": "there is no weight decay: θ ← θ - α·λ·θ each step",
    "eps inside": "ε is inside the square root: divide by √v̂ + ε",
    "eps after division": "ε is added after the division, m̂ / √v̂ + ε: it belongs in the denominator, "
    "m̂ / (√v̂ + ε), brackets included",
    "no sqrt": "the denominator is v̂ + ε: take the square root of v̂, m̂ / (√v̂ + ε)",
    "v only": "only v is bias-corrected: m̂ = m / (1 - β1ᵗ) too",
    "corrected in place": "the bias-corrected m̂ and v̂ were stored back as m and v: keep the running "
    "means in the state and compute m̂ = m / (1 - β1ᵗ), v̂ = v / (1 - β2ᵗ) as new tensors each step",
    "betas swapped": "β1 and β2 are swapped: m (the mean of g) decays with β1, v (the mean of g²) with β2",
    "t from 2": "the bias correction is one step ahead: t must be 1 at the first step (a step "
    "count that starts at 1 and is then increased before correcting is 2 there)",
    "not stored": "m and v are computed but never stored back in the parameter's state: each step "
    "starts again from zeros; keep the running means in the state (state['m'] = …, or update them "
    "in place with mul_ and add_) so the next step continues them",
    "efficient": EFFICIENT,
    "efficient, decay after": EFFICIENT + "; and decay θ before the step, not after it (minBERT's "
    "handout decays after; torch.optim.AdamW, the reference here, decays first)",
}


def check_adamw(cls: type) -> CheckResult:
    """``cls(params, lr, betas, eps, weight_decay)``, a torch.optim.Optimizer whose ``step()`` is AdamW's,
    compared with ``torch.optim.AdamW`` over 12 steps (minBERT's ``optimizer_test.py``)."""
    name = "AdamW"
    return run_check(name, lambda: _adamw(name, cls))


def _adamw(name: str, cls: type) -> CheckResult:
    want = _trajectory(lambda groups: torch.optim.AdamW(groups, **ADAMW))
    got = _trajectory(lambda groups: cls(groups, **ADAMW))
    if not torch.equal(got[-1], want[-1]):
        return failed(name, "a parameter without a gradient changed",
                      "skip parameters whose .grad is None (frozen layers, an unused head)")  # fmt: skip
    if all(_close(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(got, want)):
        return passed(name, f"equal to torch.optim.AdamW after {STEPS} steps (lr {ADAMW['lr']}, betas "
                      f"{ADAMW['betas']}, eps {ADAMW['eps']}, weight decay {ADAMW['weight_decay']})")  # fmt: skip
    where = f"after {STEPS} steps the weights differ from torch.optim.AdamW's"
    start, _ = _problem()
    if all(torch.equal(a, b) for a, b in zip(got, start)):
        return failed(name, f"after {STEPS} steps the weights have not changed at all",
                      "update p in place: p.mul_(…), p.sub_(…) or p -= …; `p = p - …` makes a new tensor "
                      "and only rebinds the local name p")  # fmt: skip
    if any(not torch.isfinite(p).all() for p in got):
        # after one step, a v of g (not g²) is NaN only where g < 0; a t from 0 is inf everywhere
        first = [
            ~torch.isfinite(p) for p in _trajectory(lambda groups: cls(groups, **ADAMW), steps=1)
        ]
        v_of_g = [~torch.isfinite(p) for p in _trajectory(_variant("v of g"), steps=1)]
        if any(a.any() for a in first) and all(torch.equal(a, b) for a, b in zip(first, v_of_g)):
            return failed(name, f"{where}: some hold NaN, where v went below 0",
                          "v is the running mean of g², never negative: with g in its place it can "
                          "go below 0, and √v is NaN there (g * g, or g**2)")  # fmt: skip
        return failed(name, f"{where}: they hold inf or NaN",
                      "where can inf or NaN come from: a division by 0, or the square root of a "
                      "negative number?", "t counts steps from 1: at t = 0, 1 - β1⁰ = 0 and the bias "
                      "correction divides by 0; and v, the mean of g², is never negative")  # fmt: skip
    for mistake, hint in ADAMW_MISTAKES.items():
        if all(
            _close(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(got, _trajectory(_variant(mistake)))
        ):
            return failed(name, where, hint)
    return failed(name, where,
                  "per parameter: m and v running means of g and g², bias-corrected, decoupled decay",
                  "p.mul_(1 - lr·λ); then p -= lr · m̂ / (√v̂ + ε), m̂ = m/(1-β1ᵗ), v̂ = v/(1-β2ᵗ)")  # fmt: skip


# --- the parameter count of one layer ----------------------------------------------------------

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


# --- the whole model against transformers (minBERT's sanity_check.py) --------------------------

SINGLES = ("A gripping, beautifully shot film.", "Dull.")
PAIR = ("The plot is thin but the cast is great", "and the ending works")


def check_bert(cls: type, name_or_dir: str = "minilm") -> CheckResult:
    """``cls.from_pretrained(name_or_dir)`` (a ``helpers.bert.BertModel`` subclass built from your modules)
    against ``transformers.BertModel`` holding the same weights, on a padded batch with a sentence pair:
    every layer's output on the real tokens and the pooler, to atol 1e-5."""
    name = "your BERT vs transformers.BertModel"
    return run_check(name, lambda: _bert(name, cls, name_or_dir))


def _hidden_states(model: nn.Module, batch: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The embeddings' output and each block's output (forward hooks), and the pooler's output."""
    outputs: list[torch.Tensor] = []
    # copies: a layer that changes its input in place must not rewrite the output recorded before it
    hooks = [m.register_forward_hook(lambda _m, _i, o: outputs.append(o.detach().clone()))
             for m in (model.embeddings, *model.blocks)]  # fmt: skip
    try:
        with torch.no_grad():
            pooled = model(
                batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
            ).pooler_output
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, pooled


def _bert(name: str, cls: type, name_or_dir: str) -> CheckResult:
    import transformers

    from helpers import pretrained
    from helpers.bert.weights import checkpoint_folder

    try:
        folder = checkpoint_folder(
            pretrained.minilm_path() if name_or_dir == "minilm" else str(name_or_dir)
        )
    except OSError as err:  # not the student's code: the checkpoint named in the parameters cell
        return failed(name, f"the checkpoint {name_or_dir!r} could not be loaded",
                      str(err).splitlines()[0], "check MODEL in the parameters cell: \"minilm\" "
                      "or a folder holding a BERT checkpoint")  # fmt: skip
    try:
        ours = cls.from_pretrained(str(folder)).eval()
    except ValueError as err:
        return failed(name, "the checkpoint's weights do not fit your modules",
                      _cut(str(err).splitlines()[0]), "keep the names helpers.bert uses: embeddings.word, "
                      "blocks.0.attn.query, blocks.0.ln1, blocks.0.ff.up, …")  # fmt: skip
    with pretrained.no_progress_bars():  # its "Loading weights" bar is noise here
        theirs = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    rows = [tokenizer(text) for text in SINGLES] + [tokenizer(*PAIR)]  # two sentences, one pair
    with pretrained.quiet_loading():  # transformers 4.x advises __call__ over pad, on stderr
        batch = tokenizer.pad(rows, return_tensors="pt")  # padded to the longest
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        ref = theirs(**batch, output_hidden_states=True)
    states, pooled = _hidden_states(ours, batch)
    where = ["the embeddings'", *(f"layer {i}'s" for i in range(len(states) - 1))]
    for i, (label, got, want) in enumerate(zip(where, states, ref.hidden_states)):
        gap = (got[real] - want[real]).abs().max().item() if got.shape == want.shape else math.inf
        if not gap <= SANITY_ATOL:
            hint = ("run check_embeddings: it names the usual mistakes" if label == "the embeddings'" else
                    "its input matches, so the mistake is inside the layer: run check_bert_attention and "
                    "check_add_norm")  # fmt: skip
            if i and padded_not_finite(states[i - 1], real):  # its real tokens' input matched
                before = "the embeddings'" if i == 1 else f"layer {i - 2}'s"
                hint = (f"{before} output is NaN or inf at the padded tokens, and this layer spread "
                        f"it to the real ones: {PADDED_NAN}")  # fmt: skip
            return failed(name, f"{label} output differs from transformers' by up to {gap:.3g} on the real "
                          f"tokens (tolerance {SANITY_ATOL:g})", hint)  # fmt: skip
    gap = (pooled - ref.pooler_output).abs().max().item()
    if not gap <= SANITY_ATOL:
        return failed(name, f"every layer matches but the pooler's output differs by up to {gap:.3g}",
                      "the pooler is tanh(dense(h[:, 0])): the [CLS] token's final vector")  # fmt: skip
    matched = (f"every layer and the pooler match transformers.BertModel ({len(states) - 1} layers, "
               f"a padded batch with a sentence pair) to {SANITY_ATOL:g}")  # fmt: skip
    if _only_course_modules(ours):
        return passed(name, f"helpers.bert's own modules ran, none of yours: {matched}. Set "
                      "USE_MY_MODULES = True to check yours")  # fmt: skip
    return passed(name, f"{CORRECT} {matched[0].upper()}{matched[1:]}")


def _cut(text: str, limit: int = 400) -> str:
    """``text`` cut after its last whole item (", ") within ``limit`` characters."""
    if len(text) <= limit:
        return text
    return text[: text.rfind(", ", 0, limit)] + ", …"


def _only_course_modules(model: nn.Module) -> bool:
    """Whether the embeddings and every block of ``model`` are helpers.bert's own classes."""
    from helpers.bert.model import BertEmbeddings
    from helpers.layers import Block

    return type(model.embeddings) is BertEmbeddings and all(type(b) is Block for b in model.blocks)
