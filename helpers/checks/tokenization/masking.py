"""Notebook 06's masking checker: the student's function runs on a large batch (256 sequences of up
to 128 tokens, padded) under fixed generators and its rates are measured; the tolerances are six
standard deviations or more from the expected rates, so a right answer never fails by chance and the
named mistakes are far outside them."""

from collections.abc import Callable

import torch

from helpers.feedback import CheckResult, failed, passed, returned, run_check
from helpers.tokenization.mlm import IGNORE

PAD, UNK, CLS, SEP, MASK = range(5)
VOCAB = 40
RANDOM_IDS = torch.arange(5, VOCAB)  # the non-special ids


BATCH_SEED = 20_240_601  # the batch's generator: never one the student's function is given


def masking_batch(
    B: int = 256, T: int = 128, seed: int = BATCH_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, special_mask): [CLS] words [SEP] then [PAD], rows of different lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, T), generator=g)
    lengths = torch.randint(T // 3, T + 1, (B,), generator=g)
    for row, n in enumerate(lengths.tolist()):
        ids[row, 0], ids[row, n - 1], ids[row, n:] = CLS, SEP, PAD
    return ids, torch.isin(ids, torch.tensor([PAD, UNK, CLS, SEP, MASK]))


BERT_LIKE = {"specials": (0, 100, 101, 102, 103), "mask": 103, "vocab": 160}  # bert-base's layout


def bert_like_batch(B: int = 128, T: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, special_mask, random_ids) in a vocabulary laid out like bert-base's: [PAD] 0,
    [UNK] [CLS] [SEP] [MASK] = 100 … 103, and ids 20 … 99 left out of random_ids (as bert-base's
    [unused] pieces might be), so the ids a random token may take are far from one range."""
    g = torch.Generator().manual_seed(BATCH_SEED + 1)
    specials = torch.tensor(BERT_LIKE["specials"])
    random_ids = torch.cat([torch.arange(1, 20), torch.arange(104, BERT_LIKE["vocab"])])
    ids = random_ids[torch.randint(len(random_ids), (B, T), generator=g)]
    lengths = torch.randint(T // 3, T + 1, (B,), generator=g)
    for row, n in enumerate(lengths.tolist()):
        ids[row, 0], ids[row, n - 1], ids[row, n:] = 101, 102, 0
    return ids, torch.isin(ids, specials), random_ids


def check_masking(fn: Callable) -> CheckResult:
    """``fn(input_ids, special_mask, mask_id, random_ids, generator) -> (inputs, labels)`` with BERT's
    recipe at 15%, every random number drawn from ``generator``."""
    name = "MLM masking"
    return run_check(name, lambda: _masking(name, fn))


def _call(fn: Callable, ids, special, seed: int):
    return fn(ids, special, MASK, RANDOM_IDS.clone(), torch.Generator().manual_seed(seed))


def _pct(x) -> str:
    return f"{100 * float(x):.1f}%"


def _masking(name: str, fn: Callable) -> CheckResult:
    ids, special = masking_batch()
    given, given_special = ids.clone(), special.clone()
    out = _call(fn, given, given_special, 0)
    if not torch.equal(given, ids) or not torch.equal(given_special, special):
        return failed(name, "your function changed input_ids (or special_mask) in place",
                      "work on copies: inputs = input_ids.clone() and labels = input_ids.clone(), then "
                      "change those; the caller still needs the original ids")  # fmt: skip
    if not (isinstance(out, tuple | list) and len(out) == 2):
        return failed(name, f"it returned {returned(out)}: return two tensors, (inputs, labels)",
                      "the masked ids first, then the labels, both (B, T)")  # fmt: skip
    inputs, labels = out
    for what, t in (("inputs", inputs), ("labels", labels)):
        if not isinstance(t, torch.Tensor) or t.shape != ids.shape:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            return failed(name, f"{what} is {shape}; expected a tensor shaped like input_ids, "
                          f"{tuple(ids.shape)}", "return inputs, labels, both (B, T)")  # fmt: skip
        if t.is_floating_point() or t.dtype == torch.bool:
            return failed(name, f"{what} has dtype {t.dtype}; token ids and labels are integers",
                          "clone input_ids (torch.long) and change the clones")  # fmt: skip
    if (inputs == IGNORE).any() and not (labels == IGNORE).any():
        return failed(name, "inputs hold -100 and labels none: the two are returned in the wrong order",
                      "return inputs, labels (the masked ids first, then the labels)")  # fmt: skip

    real = ~special  # the tokens that may be chosen
    chosen = labels != IGNORE
    changed = inputs != ids
    share = chosen[real].float().mean()
    if share > 0.5 and (labels[changed & real] == IGNORE).float().mean() > 0.5:
        return failed(name, "the labels are inverted: -100 at the chosen tokens, the ids elsewhere",
                      "labels[~chosen] = -100: the loss is computed only where a token was chosen")  # fmt: skip
    if share > 0.95:
        return failed(name, f"labels hold an id at {_pct(share)} of the real tokens: labels on every "
                      "position", "the loss is computed only at the chosen 15%: set labels to -100 "
                      "everywhere else, labels[~chosen] = -100")  # fmt: skip
    not_chosen = real & ~chosen
    if (inputs[not_chosen] == MASK).float().mean() > 0.3:
        return failed(name, f"{_pct((inputs[not_chosen] == MASK).float().mean())} of the tokens that "
                      "were not chosen became [MASK]: the 80/10/10 split is applied to all tokens",
                      "split only the chosen 15%: to_mask = bernoulli(0.8) & chosen, and the random "
                      "ones & chosen & ~to_mask")  # fmt: skip
    if (changed & ~chosen).any():
        if torch.equal(chosen, (inputs == MASK) & real):
            return failed(name, "labels only at the [MASK]ed tokens: the random and unchanged ones "
                          "have -100", "the model predicts every chosen token, also the 10% replaced "
                          "at random and the 10% left as they were: labels at all chosen positions")  # fmt: skip
        return failed(name, f"{(changed & ~chosen).sum().item()} tokens were replaced but have label "
                      "-100", "replace only chosen tokens: draw the choice once and use it for the "
                      "labels and for the replacements (& chosen)")  # fmt: skip

    bad = special & (chosen | changed)
    if bad.any():
        pads = (bad & (ids == PAD)).sum().item()
        return failed(name, f"{bad.sum().item()} special or padding positions were chosen or changed "
                      f"({pads} of them padding)", "never choose a position where special_mask is True: "
                      "give it probability 0, torch.full(input_ids.shape, 0.15).masked_fill(special_mask, 0.0), "
                      "or & ~special_mask")  # fmt: skip
    if not torch.equal(labels[chosen], ids[chosen]):
        if torch.equal(labels[chosen], inputs[chosen]):
            return failed(name, "the labels hold the replaced ids ([MASK] and the random tokens)",
                          "the labels are what the model must predict, the original ids: take them from "
                          "input_ids (labels = input_ids.clone() before replacing anything)")  # fmt: skip
        return failed(name, "at some chosen positions the label is not the original id",
                      "labels = input_ids.clone(); labels[~chosen] = -100")  # fmt: skip
    replacements = inputs[chosen & changed]
    if len(replacements):
        common, share = _most_common(replacements)
        if common != MASK and share > 0.5:
            return failed(name, f"{_pct(share)} of the replaced tokens became id {common}, not mask_id "
                          f"({MASK}): [MASK] written as a fixed id", "use the argument: "
                          "inputs[to_mask] = mask_id (each tokenizer numbers [MASK] differently)")  # fmt: skip
    n = chosen.sum().item()
    rate = n / real.sum().item()
    masked = (inputs[chosen] == MASK).float().mean().item() if n else 0.0
    replaced = chosen & changed & (inputs != MASK)
    randomised = replaced.sum().item() / n if n else 0.0
    kept = 1 - masked - randomised
    if abs(rate - 0.15) > 0.03:
        hint = ("you chose with probability 1 - 0.15: a uniform draw is below 0.15 15% of the time "
                "and above it 85%; choose where rand < 0.15"
                if abs(rate - 0.85) < 0.03 else "choose each real token with probability 0.15: "
                "torch.bernoulli(torch.full(shape, 0.15), generator=generator), or torch.rand(shape, "
                "generator=generator) < 0.15")  # fmt: skip
        return failed(
            name, f"wrong rate: {_pct(rate)} of the real tokens were chosen; expected 15%", hint
        )
    drawn = inputs[replaced]
    if torch.isin(drawn, torch.tensor([PAD, UNK, CLS, SEP, MASK])).any():
        which = sorted(set(drawn[drawn < 5].tolist()))
        return failed(name, f"some random tokens are special ids {which}: random tokens drawn from "
                      "special ids", "draw from random_ids: random_ids[torch.randint(len(random_ids), "
                      "shape, generator=generator)]; torch.randint(len(random_ids), …) alone gives "
                      "positions in random_ids, not ids")  # fmt: skip
    if not torch.isin(drawn, RANDOM_IDS).all():
        return failed(name, "some random tokens are not in random_ids",
                      "random_ids[torch.randint(len(random_ids), shape, generator=generator)]")  # fmt: skip
    split = f"{_pct(masked)} [MASK], {_pct(randomised)} random, {_pct(kept)} unchanged"
    if not (abs(masked - 0.8) < 0.06 and abs(randomised - 0.1) < 0.05 and abs(kept - 0.1) < 0.05):
        hint = "of the chosen: 80% [MASK]; of the other 20%, half random (probability 0.5), half unchanged"
        if abs(masked - 0.8) < 0.06 and randomised < 0.04:
            hint = ("too few random tokens: 10% of all chosen is half of the 20% not masked, so draw "
                    "them with probability 0.5 among those, not 0.1" if randomised > 0.005 else
                    "no random tokens: replace half of the chosen tokens that are not [MASK] with "
                    "random ids")  # fmt: skip
        elif abs(masked - 0.8) < 0.06 and kept < 0.04:
            hint = "nothing is left unchanged: only half of the 20% not masked become random"
        return failed(name, f"among the chosen tokens: {split}; expected 80%, 10%, 10%", hint)
    again = _call(fn, ids.clone(), special.clone(), 0)
    if not all(torch.equal(a, b) for a, b in zip(out, again)):
        return failed(name, "two calls with generators seeded alike gave different results",
                      "pass generator=generator to every random draw (torch.bernoulli, torch.rand, "
                      "torch.randint), so a seed reproduces the batch")  # fmt: skip
    other = _call(fn, ids.clone(), special.clone(), 1)
    if all(torch.equal(a, b) for a, b in zip(out, other)):
        return failed(name, "a different generator gave the same result",
                      "draw from the generator you are given; do not seed inside the function")  # fmt: skip
    problem = _bert_like_vocabulary(fn)
    if problem:
        return failed(name, *problem)
    return passed(name, f"{_pct(rate)} of the real tokens chosen (never special or padding); among "
                  f"them {split}; labels are the original ids there and -100 "
                  "elsewhere; reproducible with a generator; right with bert-base's ids too")  # fmt: skip


def _most_common(t: torch.Tensor) -> tuple[int, float]:
    values, counts = t.unique(return_counts=True)
    top = int(counts.argmax())
    return int(values[top]), float(counts[top]) / len(t)


def _bert_like_vocabulary(fn: Callable) -> tuple[str, str] | None:
    """The same function on a vocabulary laid out like bert-base's ([MASK] = 103, the non-special
    ids not one range): (verdict, hint) if it goes wrong there, else None."""
    ids, special, random_ids = bert_like_batch()
    inputs, labels = fn(ids.clone(), special.clone(), BERT_LIKE["mask"], random_ids.clone(),
                        torch.Generator().manual_seed(2))  # fmt: skip
    chosen, changed = labels != IGNORE, inputs != ids
    if (special & (chosen | changed)).any():
        return ("with bert-base's ids ([PAD] 0, [CLS] 101, [SEP] 102) special positions were chosen "
                "or changed", "decide from special_mask, never from the id values (specials are not "
                "always the smallest ids)")  # fmt: skip
    masked = inputs[chosen & changed]
    if len(masked) and (masked == BERT_LIKE["mask"]).float().mean() < 0.6:
        common, _ = _most_common(masked)
        return (f"with mask_id {BERT_LIKE['mask']}, the replaced tokens were mostly id {common}: "
                "[MASK] written as a fixed id", "use the argument: inputs[to_mask] = mask_id")  # fmt: skip
    drawn = inputs[chosen & changed & (inputs != BERT_LIKE["mask"])]
    if not torch.isin(drawn, random_ids).all():
        bad = sorted(set(drawn[~torch.isin(drawn, random_ids)].tolist()))[:5]
        return (f"with bert-base's layout some random tokens ({bad}) are not in random_ids",
                "draw positions in random_ids and index it: random_ids[torch.randint(len(random_ids), "
                "shape, generator=generator)]; the ids are not one range from min to max")  # fmt: skip
    return None
