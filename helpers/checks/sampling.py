"""Notebook 08's checkers: the next-token distribution written by hand (greedy, temperature, top-k,
top-p). Each compares the student's function with ``helpers.training.generate.next_token``'s rules on
fixed logits and rebuilds the classic mistakes from the same logits to name them.
"""

from collections.abc import Callable

import torch

from helpers.feedback import CheckResult, failed, named, passed, returned, returned_not, run_check
from helpers.training.generate import filter_logits


def _logits() -> torch.Tensor:
    """(3, 10) scores with distinct values (no ties) and one row with a very peaked top."""
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(3, 10, generator=g) * 2
    logits[2, 4] = 9.0
    return logits


def _as_probs(got: object, want: torch.Tensor, name: str) -> CheckResult | None:
    if not isinstance(got, torch.Tensor):
        return failed(name, f"it returned {returned_not(got, 'a tensor')}",
                      f"return probabilities of shape {tuple(want.shape)}")  # fmt: skip
    if got.shape != want.shape:
        return failed(name, f"shape {tuple(got.shape)}; expected {tuple(want.shape)}",
                      "one probability per token of the vocabulary, for every row")  # fmt: skip
    return None


def _logits_not_probs(got: torch.Tensor, name: str, what: str) -> CheckResult | None:
    """Negative or infinite values: the student returned (masked) logits, which cannot be sampled."""
    if bool((got < 0).any()) or bool(torch.isinf(got).any()):
        return failed(name, f"{what}: negative or infinite values: these are log-probabilities or logits, not probabilities",
                      "torch.multinomial samples from probabilities; finish with torch.softmax(..., dim=-1)")  # fmt: skip
    return None


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a.float(), b.float(), atol=1e-5, equal_nan=True))


def _graded(name: str, what: str, got: object, want: torch.Tensor, mistakes: Callable[[], dict],
            fallback: tuple[str, ...], precheck: Callable[[torch.Tensor], CheckResult | None] = lambda _: None,
            ) -> CheckResult | None:  # fmt: skip
    """None when ``got`` is ``want``; else the failure: a wrong type or shape, logits, what
    ``precheck`` finds, the first of ``mistakes()`` (hint -> the output it gives) that ``got`` equals,
    or ``fallback`` (its hints, the idea first). ``what`` names the setting (``k = 3``)."""
    problem = _as_probs(got, want, name)
    if problem is not None or _close(got, want):
        return problem
    problem = _logits_not_probs(got, name, what)
    if problem is None:  # not `or`: a failed CheckResult is falsy
        problem = precheck(got)
    if problem is not None:
        return problem
    for hint, output in mistakes().items():
        if _close(got, output):
            return named(name, hint, prefix=f"{what}: ")
    return failed(name, f"wrong probabilities for {what}", *fallback)


def check_greedy(fn: Callable) -> CheckResult:
    """``fn(logits) -> ids``: logits (B, vocab) -> the most likely token of each row, (B, 1)."""
    name = "greedy"
    return run_check(name, lambda: _greedy(name, fn))


def _greedy(name: str, fn: Callable) -> CheckResult:
    logits = _logits()
    got = fn(logits.clone())
    want = logits.argmax(-1, keepdim=True)
    if isinstance(got, torch.Tensor) and got.shape == (3,) and torch.equal(got, want[:, 0]):
        return failed(name, "shape (3,): keep a column per row, (B, 1)",
                      "the loop appends the ids with torch.cat([idx, next], dim=1): what shape must "
                      "next have?", "argmax(dim=-1, keepdim=True)")  # fmt: skip
    if not isinstance(got, torch.Tensor) and hasattr(got, "indices"):  # torch.max(..., dim=-1)
        return failed(name, "it returned a (values, indices) pair, as torch.max and torch.topk give",
                      "the ids are the indices: .indices, or argmax(dim=-1, keepdim=True)")  # fmt: skip
    if not isinstance(got, torch.Tensor):
        return failed(name, f"it returned {returned(got)}", "return the (B, 1) tensor of ids")
    if got.shape != want.shape:
        return failed(name, f"it returned {tuple(got.shape)}; expected {tuple(want.shape)}",
                      "one id per row: the position of the row's largest logit along the vocabulary, "
                      "kept as a column", "argmax over the vocabulary (the last dimension), "
                      "keepdim=True")  # fmt: skip
    if got.is_floating_point():
        values = torch.equal(got, logits.max(-1, keepdim=True).values)
        return failed(name, "the largest logits themselves, not their positions" if values
                      else f"the ids are {got.dtype}, not integers",
                      "return token ids (torch.long): argmax gives the index of the largest logit")  # fmt: skip
    if torch.equal(got, want):
        return passed(name, "the most likely token of every row")
    if torch.equal(got, logits.argmin(-1, keepdim=True)):
        return failed(name, "the least likely token: argmin", "use argmax")
    return failed(name, "not the most likely token of every row",
                  "which dimension of (B, vocab) is the vocabulary? take the position of the largest "
                  "entry along it, for each row (no sampling)", "argmax(dim=-1, keepdim=True)")  # fmt: skip


def check_temperature(fn: Callable) -> CheckResult:
    """``fn(logits, temperature) -> probs``: softmax(logits / temperature) over the vocabulary."""
    name = "temperature"
    return run_check(name, lambda: _temperature(name, fn))


def _temperature(name: str, fn: Callable) -> CheckResult:
    logits = _logits()
    for t in (0.5, 2.0, 1.0):
        got = fn(logits.clone(), t)
        want = torch.softmax(logits / t, dim=-1)
        problem = _as_probs(got, want, name)
        if problem is not None:
            return problem
        if _close(got, want):
            continue
        problem = _logits_not_probs(got, name, f"at temperature {t}")
        if problem is not None:
            return problem
        soft = torch.softmax(logits, dim=-1)
        mistakes = {
            "the temperature is applied after the softmax: dividing probabilities by it changes "
            "nothing once they are renormalised (and these no longer sum to 1); divide the logits":
                soft / t,
            "the temperature has no effect: applied after the softmax and renormalised, or added to "
            "the logits (the softmax ignores a constant shift); divide the logits, then softmax": soft,
            "the logits are multiplied by the temperature: divide them instead; τ > 1 must shrink "
            "the logits (flatter), τ < 1 enlarge them (sharper)": torch.softmax(logits * t, dim=-1),
            "the softmax runs over the batch (dim=0): each row's probabilities must sum to 1 over "
            "the vocabulary, the last dimension": torch.softmax(logits / t, dim=0),
        }  # fmt: skip
        for hint, output in mistakes.items():
            if _close(got, output):
                return named(name, hint, prefix=f"at temperature {t}: ")
        return failed(name, f"wrong probabilities at temperature {t}",
                      "compare τ = 0.5 with τ = 2: a lower temperature must sharpen the distribution "
                      "(the top token gains), and every row must sum to 1",
                      "torch.softmax(logits / temperature, dim=-1)")  # fmt: skip
    return passed(name, "softmax(logits / τ) at τ = 0.5, 2 and 1")


def top_k_probs(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The reference, by the sampler's own rule: the softmax over the k largest logits of each row,
    0 elsewhere."""
    return torch.softmax(filter_logits(logits, top_k=k), dim=-1)


def check_top_k(fn: Callable) -> CheckResult:
    """``fn(logits, k) -> probs``: the k most likely tokens keep their relative probabilities,
    renormalised to sum to 1; every other token gets 0."""
    name = "top-k"
    return run_check(name, lambda: _top_k(name, fn))


def _top_k(name: str, fn: Callable) -> CheckResult:
    logits = _logits()
    soft = torch.softmax(logits, dim=-1)
    for k in (3, 1, 10):
        want = top_k_probs(logits, k)
        keep = want > 0

        def mistakes(k: int = k, keep: torch.Tensor = keep) -> dict:
            return {
                "not renormalised: the kept probabilities must sum to 1 (divide by their sum)":
                    soft * keep,
                "the dropped probability was shared out equally among the kept tokens: divide the kept "
                "probabilities by their own sum, so each keeps its ratio to the others": soft * keep + (1 - (soft * keep).sum(-1, keepdim=True)) / k * keep,
                "the k *least* likely tokens were kept: topk returns the largest by default; keep "
                "logits >= the k-th largest": torch.softmax(logits.masked_fill(logits > (-logits).topk(k, dim=-1).values[:, -1:].neg(), float("-inf")), dim=-1),
                "one token too many: keep exactly the k largest (compare with the k-th largest value, "
                "topk(k).values[:, -1:])": top_k_probs(logits, min(k + 1, 10)) if k < 10 else soft,
                "one token too few: the k-th largest logit itself must stay; mask only the logits "
                "below it (logits < kth, not <=)":
                    top_k_probs(logits, k - 1) if k > 1 else soft,
                "the dropped logits were set to 0, not -inf: exp(0) = 1, so they keep probability":
                    torch.softmax(logits.masked_fill(~keep, 0.0), dim=-1),
            }  # fmt: skip

        problem = _graded(name, f"k = {k}", fn(logits.clone(), k), want, mistakes,
                          ("print your output for k = 1: is there one 1.0 per row, at that row's "
                           "largest logit, and 0 elsewhere?",
                           "mask every logit below the k-th largest (topk(k).values[:, -1:]) with "
                           "-inf, then softmax"))  # fmt: skip
        if problem is not None:
            return problem
    return passed(
        name, "the k largest renormalised, the rest 0, for k = 3, 1 and the whole vocabulary"
    )


def top_p_probs(logits: torch.Tensor, p: float) -> torch.Tensor:
    """The reference: the smallest set of most likely tokens whose probability reaches p (the token
    that crosses p included), renormalised; 0 elsewhere."""
    return torch.softmax(filter_logits(logits, top_p=p), dim=-1)  # the sampler's own rule


def check_top_p(fn: Callable) -> CheckResult:
    """``fn(logits, p) -> probs``: nucleus sampling's distribution: sort the probabilities, keep the
    most likely tokens until their sum reaches p (the one that crosses p included), renormalise."""
    name = "top-p"
    return run_check(name, lambda: _top_p(name, fn))


def _top_p(name: str, fn: Callable) -> CheckResult:
    logits = _logits()
    soft = torch.softmax(logits, dim=-1)
    probs, order = soft.sort(dim=-1, descending=True)
    for p in (0.5, 0.9, 0.999):
        want = top_p_probs(logits, p)

        def nan(got: torch.Tensor, p: float = p) -> CheckResult | None:
            if not torch.isnan(got).any():
                return None
            return failed(name, f"p = {p}: NaN probabilities: a row kept no token at all",
                          "the most likely token is always kept, even when it alone is more than p: "
                          "how much probability comes before it?",
                          "drop a token only when the probability before it reaches p: "
                          "cumsum - probs >= p")  # fmt: skip

        def mistakes(p: float = p, want: torch.Tensor = want) -> dict:
            crossed = probs.cumsum(-1) > p  # the crossing token dropped, the most likely one kept
            crossed[:, 0] = False
            strict = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, crossed)
            unsorted = soft.cumsum(-1) - soft >= p
            gathered = (probs.cumsum(-1) - probs >= p).gather(-1, order)
            return {
                "the probabilities are in sorted order: put them back at their tokens' positions "
                "(scatter with the sort's indices)": want.sort(dim=-1, descending=True).values,
                "the token that crosses p is dropped: keep a token while the probability *before* it is "
                "below p (cumsum - probs < p)": torch.softmax(logits.masked_fill(strict, float("-inf")), dim=-1),
                "not renormalised: divide the kept probabilities by their sum": soft * (want > 0),
                "the cumulative sum runs over the vocabulary's order, not the sorted probabilities: sort "
                "first (descending)": torch.softmax(logits.masked_fill(unsorted, float("-inf")), dim=-1),
                "the sorted mask was put back with gather: scatter it with the indices your sort "
                "returned; gather reads from those positions, scatter writes to them": torch.softmax(logits.masked_fill(gathered, float("-inf")), dim=-1),
                "the dropped logits were set to 0, not -inf: exp(0) = 1, so they keep probability":
                    torch.softmax(logits.masked_fill(want == 0, 0.0), dim=-1),
            }  # fmt: skip

        problem = _graded(name, f"p = {p}", fn(logits.clone(), p), want, mistakes,
                          ("for one row, print the sorted probabilities, their running sum and what "
                           "you keep: the most likely tokens, up to and including the one whose "
                           "running sum crosses p",
                           "sort descending, cumsum, drop where cumsum - probs >= p, renormalise"),
                          nan)  # fmt: skip
        if problem is not None:
            return problem
    return passed(
        name, "the nucleus (the crossing token included), renormalised, for p = 0.5, 0.9 and 0.999"
    )
