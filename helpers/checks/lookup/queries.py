"""Notebook 01, parts c and d: queries that select, copy and average the keys' values."""

from collections.abc import Callable

import torch

from helpers import attention as att
from helpers.checks.code import guarded
from helpers.checks.lookup.shared import _close, _key, _tensor
from helpers.feedback import CheckResult, failed, passed, run_check


def check_selection_query(fn: Callable[[torch.Tensor, int, float], torch.Tensor]) -> CheckResult:
    """``fn(keys, j, strength) -> query`` whose lookup returns value j as the strength grows."""
    name = "selection query"
    return run_check(name, lambda: _selection_query(name, fn))


def _selection_query(name: str, fn) -> CheckResult:
    fn = guarded(fn, ("keys", "j", "strength"))
    k, v = att.SELECTION_KEYS.double(), att.COURSE_VALUES.double()
    for j in range(k.shape[0]):
        q = _tensor(fn(k, j, 30.0), "query")
        if q.shape != (k.shape[1],):
            return failed(
                name,
                f"the query has shape {tuple(q.shape)}, expected ({k.shape[1]},)",
                "one query is one vector with a number per key dimension",
                "take row j of keys (keys[j]), the key of the value you want",
            )
        state = att.lookup_state(q, k, v, v[j])
        if state["distance"] > 1e-2:
            best = _key(int(state["weights"].argmax()))
            verdict = f"the lookup does not copy v{j + 1} (row {j}) at strength 30"
            if torch.allclose(q, -30.0 * k[j]):
                return failed(
                    name,
                    verdict,
                    f"your query gives {best} the most weight: the key least like {_key(j)}",
                    "the sign is flipped: -k_j points away from k_j",
                )
            if best == _key(j):
                return failed(
                    name,
                    verdict,
                    f"the most weight is on {best}, the right key, but not enough: the query is too "
                    "short",
                    "multiply it by the strength S",
                )
            return failed(
                name,
                verdict,
                f"with S = 30 your query puts most weight on {best}; it should be {_key(j)}",
                f"which direction makes {_key(j)}'s score larger than every other key's?",
                "q = S·k_j",
            )
    weak = att.lookup_state(_tensor(fn(k, 0, 0.5), "query"), k, v, v[0])["weights"][0]
    strong = att.lookup_state(_tensor(fn(k, 0, 30.0), "query"), k, v, v[0])["weights"][0]
    if not weak < strong:
        return failed(
            name,
            "the weight on k_j does not grow with the strength S",
            "S should make the lookup sharper: a longer query, larger score gaps",
            "multiply the key by S",
        )
    return passed(name, "copies every value once S is large, and sharpens as S grows")


def check_copy_queries(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """``fn(keys, strength) -> queries`` (n, d): row i copies value i, so the weights → identity."""
    name = "copy queries"
    return run_check(name, lambda: _copy_queries(name, fn))


def _copy_cases() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(12)  # each key beats the others on itself by ≥ 0.58
    unit = torch.randn(6, 4, generator=g, dtype=torch.float64)
    return [
        ("part c's keys", att.SELECTION_KEYS.double()),
        ("6 random unit keys in 4 dimensions", unit / unit.norm(dim=1, keepdim=True)),
    ]


def _copy_queries(name: str, fn) -> CheckResult:
    fn = guarded(fn, ("keys", "strength"))
    for label, k in _copy_cases():
        n, d = k.shape
        eye = torch.eye(n, dtype=k.dtype)
        queries = _tensor(fn(k.clone(), 30.0), "queries")
        if queries.shape != (n, d):
            hints = [f"one query per position (row), each with {d} numbers: shape ({n}, {d})"]
            if queries.shape == (d, n):
                hints = ["the queries are transposed: row i must be the query of position i"]
            elif queries.shape == (n, n):
                hints = ["that is an (n, n) matrix, the size of the weights: return the queries"]
            return failed(
                name, f"on {label} the queries have shape {tuple(queries.shape)}, expected "
                f"({n}, {d})", *hints, "Q = S·K: row i is S·k_i",
            )  # fmt: skip
        weights = torch.softmax(queries @ k.T, dim=-1)  # (n, n)
        if (weights - eye).abs().max() < 1e-3:
            continue
        verdict = f"on {label} at S = 30 the weights are not the identity"
        chosen = weights.argmax(dim=1)  # (n,): the key each position copies
        if torch.allclose(queries, -30.0 * k):
            return failed(
                name,
                verdict,
                "every position copies the key least like its own",
                "the sign is flipped: -k_i points away from k_i",
            )
        if (chosen == torch.arange(n)).all():
            return failed(
                name,
                verdict,
                "every position prefers its own key, but the weights are still spread",
                "S must make the queries long: multiply the keys by S",
            )
        if (chosen == chosen[0]).all():
            return failed(
                name,
                verdict,
                f"every position copies the same value, v{int(chosen[0]) + 1}",
                "position i needs its own query, pointing at its own key k_i",
                "Q = S·K",
            )
        return failed(
            name,
            verdict,
            "position i should put its weight on k_i: which query scores k_i highest?",
            "part c's selecting query, once per row",
            "Q = S·K",
        )
    k = att.SELECTION_KEYS.double()
    weak, strong = (torch.softmax(_tensor(fn(k, s), "queries") @ k.T, -1).diagonal().mean()
                    for s in (0.5, 30.0))  # fmt: skip
    if not weak < strong:
        return failed(
            name,
            "the weights do not sharpen as the strength S grows",
            "S should make every lookup sharper",
            "multiply the keys by S",
        )
    return passed(name, "every position copies its own value once S is large, on 2 key sets")


def check_averaging_query(
    fn: Callable[[torch.Tensor, int, int, float], torch.Tensor],
) -> CheckResult:
    """``fn(keys, a, b, strength) -> query`` whose lookup averages values a and b (orthonormal keys)."""
    name = "averaging query"
    return run_check(name, lambda: _averaging_query(name, fn))


def _averaging_query(name: str, fn) -> CheckResult:
    fn = guarded(fn, ("keys", "a", "b", "strength"))
    g = torch.Generator().manual_seed(1)
    k = att.random_orthonormal(6, 4, g).T  # (4, 6): orthonormal keys as rows
    v = torch.randn(4, 3, generator=g, dtype=torch.float64)
    for a, b in ((0, 1), (1, 3), (2, 0)):
        q = _tensor(fn(k, a, b, 20.0), "query")
        if q.shape != (k.shape[1],):
            return failed(
                name,
                f"the query has shape {tuple(q.shape)}, expected ({k.shape[1]},)",
                "one query is one vector with a number per key dimension",
            )
        state = att.lookup_state(q, k, v, (v[a] + v[b]) / 2)
        w = state["weights"]
        if state["distance"] < 1e-3:
            continue
        verdict = f"the lookup does not average v{a + 1} and v{b + 1}"
        if w[a] > 0.9 or w[b] > 0.9:
            winner = _key(a if w[a] > 0.9 else b)
            return failed(
                name,
                f"{verdict}: almost all weight goes to {winner}",
                f"the query must score {_key(a)} and {_key(b)} equally high",
                "add both keys: k_a + k_b",
            )
        pair = k[a] + k[b]
        if torch.dot(q, pair) > 0.999 * q.norm() * pair.norm():  # the right direction, too short
            return failed(
                name,
                f"{verdict}: {_key(a)} and {_key(b)} share the most weight, but not all of it",
                "the direction is right; the query is too short: multiply it by the strength C",
            )
        if torch.allclose(w, torch.full_like(w, 0.25), atol=0.05):
            return failed(
                name,
                f"{verdict}: the weights are uniform",
                "your query scores every key about the same (q ≈ 0 averages all values)",
                "scale k_a + k_b up by C",
            )
        return failed(
            name,
            verdict,
            f"the query should score {_key(a)} and {_key(b)} high and equal, every other key 0",
            "for orthonormal keys k_i·k_i = 1 and k_i·k_j = 0: what is q·k_i for q = k_a + k_b?",
            "q = C·(k_a + k_b)",
        )
    weak, strong = (att.lookup_state(_tensor(fn(k, 0, 1, c), "query"), k, v, v[0])["weights"][0]
                    for c in (0.5, 20.0))  # fmt: skip
    if not weak < strong:
        return failed(
            name,
            "the weights on k_a and k_b do not grow with the strength C",
            "C should make the lookup sharper: multiply the query by C",
        )
    return passed(name, "averages exactly the two chosen values, sharper as C grows")


def check_balanced_query(
    fn: Callable[[torch.Tensor, int, int, float], torch.Tensor],
) -> CheckResult:
    """``fn(keys, a, b, strength) -> query`` giving k_a and k_b equal weight, above every other key,
    for keys that are not orthogonal; the weights on k_a and k_b approach 1/2 each as C grows."""
    name = "balanced query"
    return run_check(name, lambda: _balanced_query(name, fn))


def _balanced_cases() -> list[tuple[str, torch.Tensor, int, int]]:
    g = torch.Generator().manual_seed(4)
    unit = torch.randn(5, 4, generator=g, dtype=torch.float64)
    k = att.SELECTION_KEYS.double()
    return [
        ("part c's keys, k1 and k3", k, 0, 2),
        ("part c's keys, k4 and k2", k, 3, 1),
        (
            "5 random unit keys in 4 dimensions, k2 and k5",
            unit / unit.norm(dim=1, keepdim=True),
            1,
            4,
        ),
    ]


def _balanced_query(name: str, fn) -> CheckResult:
    fn = guarded(fn, ("keys", "a", "b", "strength"))
    for label, k, a, b in _balanced_cases():
        ka, kb = _key(a), _key(b)
        q = _tensor(fn(k.clone(), a, b, 1.0), "query")
        if q.shape != (k.shape[1],):
            return failed(
                name,
                f"on {label} the query has shape {tuple(q.shape)}, expected ({k.shape[1]},)",
                "one query is one vector with a number per key dimension",
            )
        if not torch.isfinite(q).all() or q.norm() < 1e-9:
            return failed(name, f"on {label} the query is zero (or not finite)",
                          "a zero query scores every key 0: uniform weights")  # fmt: skip
        unit = q / q.norm()
        naive = (k[a] + k[b]) / (k[a] + k[b]).norm()
        target = torch.zeros(k.shape[0], dtype=k.dtype)
        target[[a, b]] = 1.0
        least_squares = torch.linalg.lstsq(k, target[:, None]).solution[:, 0]
        verdict = f"on {label}, {ka} and {kb} do not get equal, dominant weight"
        scores = k @ unit  # (n,)
        winner = _key(int(scores.argmax()))
        if torch.dot(unit, naive) > 0.999 and att.score_margin(q, k, a, b) < 0:
            return failed(
                name,
                f"{verdict}: {winner} scores highest",
                f"that is part d's query C·(k_a + k_b): with keys that are not orthogonal, a third "
                f"key can score higher than both ({ka}·{kb} = {float(k[a] @ k[b]):.2f} here)",
                "keep only what matters: equal scores for k_a and k_b (q·(k_a − k_b) = 0), and "
                "both above every other key",
                "search the directions q with q·(k_a − k_b) = 0 for the one whose smallest margin "
                "q·k_a − q·k_i over the other keys is largest; then multiply it by C",
            )
        if torch.dot(unit, least_squares / least_squares.norm()) > 0.999:
            return failed(
                name,
                f"{verdict}: {winner} scores highest",
                "least squares on K·q = c·(e_a + e_b) spreads its error over every key, and here "
                "that lets a third key win",
                "keep only what matters: equal scores for k_a and k_b (q·(k_a − k_b) = 0), and "
                "both above every other key",
            )
        gap = float(unit @ (k[a] - k[b]))
        if abs(gap) > 1e-3:
            return failed(
                name,
                f"{verdict}: their scores differ by {gap:.3f} (query scaled to length 1)",
                f"equal weights need equal scores: q·{ka} = q·{kb}, that is q·(k_a − k_b) = 0",
                "project your query onto the directions orthogonal to k_a − k_b",
            )
        if att.score_margin(q, k, a, b) <= 1e-3:
            return failed(
                name,
                f"{verdict}: {ka} and {kb} score the same, but {winner} scores at least as high",
                f"among the queries with q·(k_a − k_b) = 0, turn away from {winner}",
                "search those directions for the one whose smallest margin q·k_a − q·k_i is "
                "largest (a few thousand random ones will do in 3 or 4 dimensions)",
            )
        strong = _tensor(fn(k.clone(), a, b, 50.0), "query")
        if not _close(strong, 50.0 * q, 1e-4):
            other = strong / strong.norm()
            if (
                _close(strong.norm(), torch.tensor(50.0, dtype=strong.dtype), 1e-4)
                and abs(float(other @ (k[a] - k[b]))) <= 1e-3
                and att.score_margin(other, k, a, b) > 1e-3
            ):  # a valid query, but another one: an unseeded search draws new candidates each call
                return failed(
                    name,
                    f"on {label}, fn(..., C = 50) is a good query but points another way than "
                    "fn(..., C = 1)",
                    "seed your search (torch.Generator().manual_seed(0)) so that every call finds "
                    "the same direction and C only scales it",
                )
            return failed(
                name,
                f"on {label}, fn(..., C = 50) is not 50 × fn(..., C = 1)",
                "the strength C must only scale the query: return C times one fixed direction",
            )
        if abs(float(q.norm()) - 1.0) > 1e-4:
            return failed(name, f"on {label}, fn(..., C = 1) has length {float(q.norm()):.3g}, not 1",
                          "normalise the direction (u / u.norm()) before multiplying by C, so that C "
                          "alone sets how sharp the weights are")  # fmt: skip
    return passed(name, "equal scores above every other key for 3 key sets, sharpening with C")
