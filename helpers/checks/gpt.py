"""Notebook 07's checkers: the causal mask, additive attention scores, and the sampling loop.

Each compares the student's output with the reference in ``helpers.gpt`` on fixed random inputs and,
when they differ, rebuilds each classic mistake from the same inputs to name it. A function that is
the course's own (``causal_softmax``, ``additive_scores``, ``generate``), or calls it (seen in its code,
or by a profile hook while it runs), is refused.
"""

import dis
import functools
import inspect
import math
import sys
import types
from collections.abc import Callable

import torch
from torch import nn

from helpers.feedback import CheckResult, failed, named, passed, returned, returned_not, run_check
from helpers.gpt.attention import additive_scores, causal_softmax
from helpers.training.generate import generate, next_token


def _same(got: object, want: torch.Tensor, atol: float = 1e-5) -> bool:
    return (isinstance(got, torch.Tensor) and got.shape == want.shape
            and torch.allclose(got.float(), want, atol=atol, equal_nan=False))  # fmt: skip


def _shape_problem(got: object, want: torch.Tensor, what: str, hint: str) -> CheckResult | None:
    if not isinstance(got, torch.Tensor):
        return failed(what, f"it returned {returned_not(got, 'a tensor')}",
                      f"return a tensor of shape {tuple(want.shape)}")  # fmt: skip
    if got.shape != want.shape:
        return failed(what, f"shape {tuple(got.shape)}; expected {tuple(want.shape)}",
                      f"keep every leading dimension (batch, heads); {hint}")  # fmt: skip
    return None


def _course_function(fn: Callable, references: tuple[Callable, ...]) -> str | None:
    """How ``fn`` hands the exercise to the course's own code: "is" when it is one of ``references``
    (or a partial of one, or shares its code), the reference's name when its code calls one through a
    global name, a module attribute or a closure; None when it does neither."""
    raw = [inspect.unwrap(r) for r in references]  # without decorators (torch.no_grad's wrapper)
    targets = [*references, *raw]

    def found(obj: object) -> bool:
        return any(obj is t for t in targets)

    f = fn
    while isinstance(f, functools.partial):
        f = f.func
    try:
        f = inspect.unwrap(f)
    except ValueError:  # a cycle of __wrapped__
        return None
    code = getattr(f, "__code__", None)
    if found(fn) or found(f) or any(code is getattr(r, "__code__", None) for r in raw):
        return "is"
    if not isinstance(code, types.CodeType):
        return None
    cells = []
    for cell in getattr(f, "__closure__", None) or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # a closure variable not assigned yet
            continue
    for obj in cells:
        if found(obj):
            return obj.__name__
    namespace = getattr(f, "__globals__", {})
    stack = [code]
    while stack:  # the function's code and every function or lambda defined inside it
        current = stack.pop()
        stack += [c for c in current.co_consts if isinstance(c, types.CodeType)]
        obj = None
        for instruction in dis.get_instructions(current):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                obj = namespace.get(instruction.argval)
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(
                obj, types.ModuleType
            ):
                obj = vars(obj).get(instruction.argval)  # module.function, without running getattr
            else:
                obj = None
            if obj is not None and found(obj):
                return obj.__name__
    return None


class _Watched:
    """``fn``, called with a profile hook that notes the first of ``references`` to run inside it,
    however it was reached (an import inside the function, a local alias): what no reading of the
    code before the call can see."""

    def __init__(self, fn: Callable, references: tuple[Callable, ...]) -> None:
        self.fn = fn
        self.codes = {inspect.unwrap(r).__code__: r.__name__ for r in references}
        self.used: str | None = None

    def __call__(self, *args, **kwargs):
        def hook(frame: types.FrameType, event: str, arg: object) -> None:
            if event == "call" and self.used is None and frame.f_code in self.codes:
                self.used = self.codes[frame.f_code]

        if sys.getprofile() is not None:  # a profiler (%prun, cProfile) is on: leave it, unwatched
            return self.fn(*args, **kwargs)
        sys.setprofile(hook)
        try:
            return self.fn(*args, **kwargs)
        finally:
            sys.setprofile(None)


def _unaided(
    name: str,
    fn: Callable,
    references: tuple[Callable, ...],
    check: Callable[[str, Callable], CheckResult],
) -> CheckResult:
    """``check(name, fn)``, refused when ``fn`` is or calls one of the course's ``references``: seen
    in its code before it runs, or while it runs."""
    used = _course_function(fn, references)
    if used is None:
        watched = _Watched(fn, references)
        result = check(name, watched)
        if watched.used is None:
            return result
        used = watched.used
    verdict = ("this is the course's own function: write it yourself" if used == "is" else
               f"it calls the course's own {used}: write it yourself")  # fmt: skip
    return failed(name, verdict, "the exercise is to build it from torch operations; the course's "
                  "version is for after your exercise")  # fmt: skip


# --- the causal mask ---------------------------------------------------------------------------


def check_causal_softmax(fn: Callable) -> CheckResult:
    """``fn(scores) -> weights``: scores (..., T, T) -> softmax weights where query i sees keys j <= i."""
    name = "causal softmax"
    return run_check(name, lambda: _unaided(name, fn, (causal_softmax,), _causal))


def _causal(name: str, fn: Callable) -> CheckResult:
    g = torch.Generator().manual_seed(7)
    scores = torch.randn(2, 3, 6, 6, generator=g) * 2  # (B, h, T, T)
    original = scores.clone()
    got = fn(scores)
    if not torch.equal(scores, original):
        return failed(name, "your function changed the scores it was given (an in-place fill?)",
                      "masked_fill (no underscore) returns a new tensor; masked_fill_ changes its input")  # fmt: skip
    want = causal_softmax(original, "inf")
    problem = _shape_problem(
        got, want, name, "one weight per (query, key): the same shape as the scores"
    )
    if problem is not None:
        return problem
    T = scores.shape[-1]
    ones = torch.ones(T, T, dtype=torch.bool)
    future = ones.triu(1)
    if _same(got, want) and bool((got[..., future] == 0).all()):
        return passed(name, "every row sums to 1 over the keys at or before its query; the future "
                      "gets weight exactly 0")  # fmt: skip

    def masked(allowed: torch.Tensor, fill: float = float("-inf")) -> torch.Tensor:
        return torch.softmax(original.masked_fill(~allowed, fill), dim=-1)

    for fill in (float("-inf"), -1e9):  # the allowed triangle itself given to masked_fill
        if torch.allclose(got.float(), masked(future, fill), atol=1e-5, equal_nan=True):
            return failed(name, "the mask is inverted: the fill went on the past and the diagonal, "
                          "the keys a query may see, and the future was left visible",
                          "masked_fill(mask, value) writes value where mask is True: which "
                          "positions must get -inf, the past or the future?",
                          "scores.masked_fill(~allowed, float('-inf')) with allowed = "
                          "torch.ones(T, T, dtype=torch.bool).tril()")  # fmt: skip
    if torch.isnan(got).any():
        if torch.isnan(got[..., 1:, :]).any():  # NaN beyond the first row: not an empty row
            return failed(name, "NaN weights where keys are allowed: 0 × (-inf) is NaN",
                          "do not multiply a mask by -inf; put -inf with scores.masked_fill(~allowed, "
                          "float('-inf')) or torch.where(allowed, scores, float('-inf'))")  # fmt: skip
        return failed(name, "NaN weights: the first query sees no key at all (a row of only -inf)",
                      "the diagonal must stay visible: a token attends to itself; torch.tril keeps "
                      "the diagonal (diagonal=0), tril(diagonal=-1) drops it")  # fmt: skip
    soft = torch.softmax(original, dim=-1)
    mistakes = {
        "the mask is applied after the softmax (weights zeroed), so the rows no longer sum to 1 and the "
        "future still sits in the denominator: put -inf on the future scores before the softmax":
            soft * ones.tril(),
        "the mask has the wrong orientation, each query sees its future (triu): keep its past and "
        "itself, the lower triangle (tril)": masked(ones.triu()),
        "off by one, each query also sees the next token (tril(diagonal=1)): allow the diagonal and "
        "below only (diagonal=0)": masked(ones.tril(1)),
        "off by one, the diagonal is masked so a token cannot see itself (tril(diagonal=-1)): keep the "
        "diagonal (diagonal=0); with a finite fill the first query's row came out uniform":
            masked(ones.tril(-1), -1e9),
        "the masked scores are set to 0, not -inf, and exp(0) = 1 gives the future weight: fill them "
        "with float('-inf')": masked(ones.tril(), 0.0),
        "no mask at all, every query sees every key: give each key after its query (j > i) -inf "
        "before the softmax": soft,
    }  # fmt: skip
    for hint, output in mistakes.items():
        if _same(got, output):
            return named(name, hint)
    if bool((got[..., future] > 0).all()):  # a finite fill c: w_01 / w_00 = exp(c - s_00)
        c = got[..., 0, 1].double().log() - got[..., 0, 0].double().log() + original[..., 0, 0]
        c = c.mean().item()
        if _same(got, masked(ones.tril(), c), 1e-4):
            tiny = "a tiny weight" if _same(got, want) else "weight"
            return failed(name, f"the future keeps {tiny}: the fill value ({c:.3g}) is not negative "
                          "enough", "fill with float('-inf') so that exp gives exactly 0")  # fmt: skip
    if _same(got, want):  # close, but the future keeps a little weight
        return failed(name, "the future keeps a tiny weight: the fill value is not negative enough",
                      "fill with float('-inf') so that exp gives exactly 0")  # fmt: skip
    if got.dtype in (torch.float16, torch.bfloat16) and _same(got, want, 1e-2):
        return failed(name, f"the weights are right to about 3 digits only: they are {got.dtype}",
                      "keep the scores' float32: no .half() or .to(torch.bfloat16) inside")  # fmt: skip
    rows = got.sum(-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-4):
        return failed(name, "the weights of a query do not sum to 1",
                      "take the softmax over the last dimension (the keys), after masking")  # fmt: skip
    return failed(name, f"wrong weights (largest difference {(got - want).abs().max():.3g})",
                  "before the softmax, every key after its query (j > i) gets -inf; the diagonal and "
                  "the past keep their scores; then a softmax over the keys",
                  "scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float('-inf')), "
                  "then torch.softmax(..., dim=-1)")  # fmt: skip


# --- additive attention ------------------------------------------------------------------------


def check_additive_scores(fn: Callable) -> CheckResult:
    """``fn(q, k, w_q, w_k, w2) -> scores``: q, k (B, h, T, hs), w_q and w_k (h, hs, da), w2 (h, da);
    scores[b, h, i, j] = w2[h] · tanh(q[b, h, i] @ w_q[h] + k[b, h, j] @ w_k[h]), shape (B, h, T, T)."""
    name = "additive scores"
    return run_check(name, lambda: _unaided(name, fn, (additive_scores,), _additive))


def _additive(name: str, fn: Callable) -> CheckResult:
    g = torch.Generator().manual_seed(11)
    B, h, T, hs, da = 2, 3, 5, 4, 6
    q, k = torch.randn(B, h, T, hs, generator=g), torch.randn(B, h, T, hs, generator=g)
    w_q, w_k = torch.randn(h, hs, da, generator=g), torch.randn(h, hs, da, generator=g)
    w2 = torch.randn(h, da, generator=g)
    got = fn(q, k, w_q, w_k, w2)
    want = additive_scores(q, k, w_q, w_k, w2)
    problem = _shape_problem(
        got, want, name, "one score per (query, key): sum the da features with w2"
    )
    if problem is not None:
        return problem
    if _same(got, want, 1e-4):
        return passed(name, "w2ᵀ tanh(W1q q_i + W1k k_j) for every query i and key j, per head")
    a = torch.einsum("bhtd,hde->bhte", q, w_q)
    b = torch.einsum("bhtd,hde->bhte", k, w_k)
    pre = a.unsqueeze(3) + b.unsqueeze(2)  # (B, h, T, T, da)
    mistakes = {
        "no tanh: without it the score is linear, w2ᵀW1q q_i + w2ᵀW1k k_j, and splits into a query "
        "part plus a key part that the softmax over keys cancels; apply tanh to W1q q_i + W1k k_j "
        "before weighting with w2":
            torch.einsum("bhije,he->bhij", pre, w2),
        "tanh after w2: squash the da-vector W1q q + W1k k first, then weight it with w2":
            torch.tanh(torch.einsum("bhije,he->bhij", pre, w2)),
        "queries and keys swapped: scores[..., i, j] must use query i (rows) and key j (columns)":
            additive_scores(q, k, w_q, w_k, w2).transpose(-2, -1),
        "the da features are summed instead of weighted by w2: each head's w2 weights the d_a "
        "features of tanh(...), a dot product over the last dimension":
            torch.tanh(pre).sum(-1),
        "w_q is applied to the keys and w_k to the queries: w_q projects the queries (rows), w_k "
        "the keys (columns)":
            additive_scores(q, k, w_k, w_q, w2),
        "w_q applied to the keys too: project the keys with w_k": additive_scores(q, k, w_q, w_q, w2),
        "scaled by √d_h: that scaling belongs to dot-product scores; additive scores are not scaled":
            want / math.sqrt(hs),
        "it returned weights (each row sums to 1): return the raw scores; the softmax comes later":
            torch.softmax(want, dim=-1),
    }  # fmt: skip
    if torch.isinf(got).any():
        return failed(name, "-inf in the scores: do not mask here",
                      "return every pair's score; the model's causal_softmax hides the future")  # fmt: skip
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    if bool((got[..., future] <= -1e4).all()) and _same(
        got[..., ~future], want[..., ~future], 1e-4
    ):
        return failed(name, "masked here (a large negative fill on the future pairs)",
                      "return every pair's score; the model masks later: its causal_softmax hides "
                      "the future")  # fmt: skip
    for hint, output in mistakes.items():
        if _same(got, output, 1e-4):
            return named(name, hint)
    return failed(name, f"wrong scores (largest difference {(got - want).abs().max():.3g})",
                  "per head: project the queries with w_q and the keys with w_k to d_a features, add "
                  "each query's features to each key's, take tanh, then weight the d_a features "
                  "with w2", ADDITIVE_RECIPE)  # fmt: skip


# the last hint, as code a student can type (a test runs it)
ADDITIVE_RECIPE = (
    "a = torch.einsum('bhtd,hde->bhte', q, w_q); b likewise with k, w_k; "
    "torch.einsum('bhije,he->bhij', torch.tanh(a.unsqueeze(3) + b.unsqueeze(2)), w2) is (B, h, T, T)"
)


# --- the sampling loop -------------------------------------------------------------------------


class ToyLM(nn.Module):
    """A stand-in language model for the sampling checker: next-token scores from the window's first
    token, last token and length (so the crop matters), spread out, so that a crop off by one, an ignored generator or a
    missing temperature all change the draws. Like a GPT, it refuses more than ``block_size`` tokens."""

    def __init__(self, vocab: int = 12, block_size: int = 6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.block_size = block_size
        self.register_buffer("first", torch.randn(vocab, vocab, generator=g) * 1.5)
        self.register_buffer("last", torch.randn(vocab, vocab, generator=g) * 1.5)
        self.register_buffer("length", torch.randn(block_size + 1, vocab, generator=g))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(
                f"the input has {T} tokens; this model reads at most block_size={self.block_size}"
            )
        return self.first[idx[:, :1]] + self.last[idx] + self.length[T]  # (B, T, vocab)


def _reference(model, idx, steps, block_size, temperature, seed, how="right"):
    """The right loop, or one of the classic mistakes, drawing from a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        if how == "crop off by one":
            context = idx[:, -(block_size - 1) :]
        elif how == "crop start":
            context = idx[:, :block_size]
        else:
            context = idx[:, -block_size:]
        logits = model(context)[:, 0 if how == "first" else -1, :]
        if how == "dim 0":
            probs = torch.softmax(logits / temperature, dim=0)
        elif how == "no temperature":
            probs = torch.softmax(logits, dim=-1)
        elif how == "multiply":
            probs = torch.softmax(logits * temperature, dim=-1)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
        nxt = (
            probs.argmax(-1, keepdim=True)
            if how == "greedy"
            else torch.multinomial(probs, 1, generator=g)
        )
        idx = torch.cat([idx, nxt], dim=1)
    return idx


def check_generate(fn: Callable) -> CheckResult:
    """``fn(model, idx, steps, block_size, temperature, generator) -> idx`` extended by ``steps`` tokens,
    each drawn with ``torch.multinomial(probs, 1, generator=generator)``."""
    name = "sampling loop"
    return run_check(name, lambda: _unaided(name, fn, (generate, next_token), _generate))


def _generate(name: str, fn: Callable) -> CheckResult:
    model = ToyLM().eval()
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])  # (B, T)
    steps, block_size = 9, 6  # the context outgrows block_size: cropping matters
    for temperature, seed in ((1.0, 5), (0.5, 6), (2.0, 7)):
        g = torch.Generator().manual_seed(seed)
        try:
            got = fn(model, idx.clone(), steps, block_size, temperature, g)
        except ValueError as err:
            if "block_size" in str(err):
                return failed(name, "the context grew past the model's block_size",
                              "the model reads at most block_size tokens: feed it only the last "
                              "ones, while idx itself keeps every token",
                              "context = idx[:, -block_size:] (a variable of its own), then "
                              "model(context)")  # fmt: skip
            raise
        except RuntimeError as err:
            if "multinomial" in str(err) or "probability" in str(err):
                return failed(name, "torch.multinomial was given logits, not probabilities",
                              "multinomial draws from probabilities (each row ≥ 0, summing to 1): "
                              "what turns scores into those?",
                              "probs = torch.softmax(logits / temperature, dim=-1), then multinomial")  # fmt: skip
            raise
        want = _reference(model, idx, steps, block_size, temperature, seed)
        if isinstance(got, torch.Tensor) and got.shape == (idx.shape[0], steps):
            return failed(name, "it returned only the new tokens",
                          "return the prompt followed by them: the whole (B, T + steps) sequence")  # fmt: skip
        if not isinstance(got, torch.Tensor):
            return failed(name, f"it returned {returned(got)}",
                          f"return the (B, T + steps) = {tuple(want.shape)} sequence")  # fmt: skip
        if got.dim() == 2 and got.shape[0] == idx.shape[0] and got.shape[1] == block_size + 1:
            return failed(name, f"it returned {tuple(got.shape)}; expected {tuple(want.shape)}: "
                          "the sequence itself was cut to block_size (idx = idx[:, -block_size:]?)",
                          "crop into a variable of its own, context = idx[:, -block_size:], and "
                          "keep appending to idx")  # fmt: skip
        if got.shape != want.shape:
            return failed(name, f"it returned {tuple(got.shape)}; expected {tuple(want.shape)}: the "
                          f"prompt followed by {steps} new tokens per row",
                          "append each new token: idx = torch.cat([idx, next_token], dim=1)")  # fmt: skip
        if got.is_floating_point():
            return failed(name, f"the token ids are {got.dtype}, not integers",
                          "keep them torch.long, as torch.multinomial returns them (an embedding "
                          "needs integer ids)")  # fmt: skip
        if torch.equal(got, want):
            continue
        if not torch.equal(got[:, : idx.shape[1]], idx):
            return failed(name, "the prompt is not at the start of what it returned",
                          "return the whole sequence: the prompt, then the new tokens")  # fmt: skip
        again = fn(
            model, idx.clone(), steps, block_size, temperature, torch.Generator().manual_seed(seed)
        )
        if not torch.equal(got, again):
            return failed(name, "two runs with equally seeded generators gave different tokens",
                          "draw with torch.multinomial(probs, 1, generator=generator)")  # fmt: skip
        mistakes = {
            "crop off by one": "the context is cropped to block_size - 1 tokens: the model takes up to "
                               "block_size, so keep the last block_size; a slice from -n keeps n, "
                               "idx[:, -block_size:]",
            "crop start": "the context keeps the first block_size tokens, not the last: once it is "
                          "full the model never sees what it wrote; idx[:, -block_size:] keeps the "
                          "last, idx[:, :block_size] the first",
            "dim 0": "the softmax is taken over dim=0, the batch: each row's probabilities must sum "
                     "to 1 over the vocabulary, softmax(logits / temperature, dim=-1)",
            "first": "the prediction is read at the first position: the next token's scores are at "
                     "the last position, logits[:, -1, :]",
            "greedy": "it takes the most likely token every time (argmax): sampling draws from the "
                      "distribution with torch.multinomial",
            "no temperature": "the temperature has no effect (left out, or applied to the probabilities, "
                              "which multinomial renormalises): divide the logits by the temperature, then softmax",
            "multiply": "the logits are multiplied by the temperature: divide them; a high temperature "
                        "flattens the distribution, a low one sharpens it",
        }  # fmt: skip
        for how, hint in mistakes.items():
            if temperature != 1.0 or how not in ("no temperature", "multiply"):
                if torch.equal(
                    got, _reference(model, idx, steps, block_size, temperature, seed, how)
                ):
                    return named(name, hint)
        return failed(name, f"different tokens from the reference at temperature {temperature}",
                      "each step: crop to the last block_size tokens, take the last position's "
                      "logits, divide them by the temperature, softmax over the vocabulary, draw one "
                      "token with the generator, append it",
                      "logits = model(idx[:, -block_size:])[:, -1, :]; probs = softmax(logits / "
                      "temperature); torch.multinomial(probs, 1, generator=generator)")  # fmt: skip
    return passed(name, "the same tokens as the reference at temperatures 1, 0.5 and 2, the context "
                  "cropped to block_size")  # fmt: skip
