"""Notebook 03's checkers for the pipeline around the model: the collate function that pads a batch
and builds its mask, masked mean pooling, the data loaders, one training step and the evaluation
pass. Each runs the student's code on small cases where every classic mistake gives a different
answer, and names the mistake it sees.
"""

import functools
import math
import numbers
import re
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from helpers.checks.code import _close, find_loop
from helpers.checks.layer_norm import check_layer_norm
from helpers.checks.modules import check_self_attention
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, kind_of, passed, returned, run_check
from helpers.imdb.runs import my_modules
from helpers.layers import ModuleFactory
from helpers.text import pad_batch

Example = tuple[np.ndarray, int]  # a document's token ids and its label
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # ids (B, T), mask (B, T), labels (B,)


class Collate(Protocol):
    """A student's ``collate(examples, max_len)``; the checks also call it with ``max_len=``."""

    def __call__(self, examples: list[Example], max_len: int) -> Batch: ...


MakeLoaders = Callable[
    [list[Example], list[Example], int, Callable[[list[Example]], object]],
    tuple[DataLoader, DataLoader],
]  # (train_items, valid_items, batch_size, collate) -> (train, valid)
Evaluate = Callable[[nn.Module, Iterable[Batch]], float]  # (model, batches) -> accuracy

# --- (a) the collate function ---------------------------------------------------------------------

_DOCS = [np.array([5, 6, 7]), np.array([8, 9, 10, 11, 12, 13]), np.array([14])]
_LABELS = [1, 0, 1]


def check_collate(collate: Collate) -> CheckResult:
    """``collate(examples, max_len)``: a list of (token ids, label) -> ids (B, T) long, padded with
    0 to the longest document (at most ``max_len``), mask (B, T) bool, True at real tokens, and
    labels (B,) long."""
    name = "collate"
    return run_check(name, lambda: _collate(name, collate))


def _collate(name: str, collate) -> CheckResult:
    for max_len in (10, 4):  # 10: pad to the longest (6); 4: the long document is cut
        docs = [doc.copy() for doc in _DOCS]  # the student's copies: the checker's stay as they are
        out = collate(list(zip(docs, _LABELS)), max_len)
        if any(not np.array_equal(mine, given) for mine, given in zip(_DOCS, docs)):
            return failed(name, "your collate changed the documents it was given",
                          "read the ids, copy them into the new tensor; a DataLoader hands you the "
                          "dataset's own arrays, so a change in place changes the data set")  # fmt: skip
        if not isinstance(out, tuple | list) or len(out) != 3:
            return failed(name, f"expected (ids, mask, labels); it returned {returned(out)}",
                          "return three tensors, in that order")  # fmt: skip
        ids, mask, labels = out
        verdict = _collate_order(ids, mask, labels) or _collate_mistake(ids, mask, labels, max_len)
        if verdict:
            return failed(name, *verdict)
    return passed(name, "pads to the batch's longest document, cuts at max_len, a boolean mask "
                  "of the real tokens, labels as a tensor")  # fmt: skip


def _collate_order(ids, mask, labels) -> tuple[str, ...] | None:
    """A swapped return order: the labels (3,) or the boolean mask where the ids belong; or the
    documents' lengths where the mask belongs."""
    shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in (ids, mask, labels)]
    if shapes[1] == (3,) and isinstance(ids, torch.Tensor) and ids.dim() == 2:
        lengths = [min(len(d), ids.shape[1]) for d in _DOCS]
        if mask.tolist() in (lengths, [len(d) for d in _DOCS]):
            return ("the second tensor holds each document's length, not the mask",
                    "the mask has the ids' shape (B, T): one True or False per position, True where "
                    "the position is below that document's length",
                    "torch.arange(T)[None, :] < lengths[:, None]")  # fmt: skip
    if (
        shapes[1] == (3,)
        or shapes[0] == (3,)
        or (isinstance(ids, torch.Tensor) and ids.dtype == torch.bool)
    ):
        return (f"the three tensors have shapes {shapes}: they look out of order",
                "return (ids, mask, labels): ids and mask (B, T), labels (B,)")  # fmt: skip
    return None


def _collate_mistake(ids, mask, labels, max_len: int) -> tuple[str, ...] | None:
    want_ids, want_mask = pad_batch(_DOCS, max_len)  # the helpers' own padding: no empty docs here
    where = f"(max_len {max_len}, documents of 3, 6 and 1 tokens)"
    if not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor):
        return ("ids and mask must be tensors", "torch.zeros(B, T, dtype=torch.long) to start from")
    if ids.dim() != 2 or ids.shape[0] != 3:
        return (f"ids has shape {tuple(ids.shape)} {where}, expected {tuple(want_ids.shape)}",
                "one row per document, one column per position")  # fmt: skip
    if ids.shape[1] == max_len and max_len != want_ids.shape[1]:
        return (f"every batch is padded to max_len ({max_len} columns) {where}, not to its longest "
                f"document ({want_ids.shape[1]})",
                "T = min(max_len, the longest document in this batch): padding only what this "
                "batch needs is what makes short batches cheap")  # fmt: skip
    if ids.shape[1] > max_len:
        return (f"ids has {ids.shape[1]} columns but max_len is {max_len} {where}",
                "T = min(max_len, the longest document), and each document cut to doc[:T]")  # fmt: skip
    if ids.shape != want_ids.shape:
        return (f"ids has shape {tuple(ids.shape)} {where}, expected {tuple(want_ids.shape)}",
                "T = min(max_len, the longest document)")  # fmt: skip
    if ids.dtype != torch.long:
        return (f"ids has dtype {ids.dtype}", "nn.Embedding and cross_entropy expect int64 ids: "
                "dtype=torch.long")  # fmt: skip
    if not torch.equal(ids, want_ids):
        if torch.equal(ids[want_mask], want_ids[want_mask]):
            pad = sorted(set(ids[~want_mask].tolist()))
            return (f"the padding positions hold {pad}, not 0", "pad with 0, the <pad> id, whose "
                    "vector is zero; 1 is <unk>, a real (if unknown) word")  # fmt: skip
        right_aligned = all(torch.equal(ids[i, ids.shape[1] - min(len(d), ids.shape[1]):],
                                        torch.as_tensor(d[-ids.shape[1]:])) for i, d in enumerate(_DOCS))  # fmt: skip
        if right_aligned and len(_DOCS[1]) <= ids.shape[1]:
            return ("the padding is on the left, the tokens on the right",
                    "put each document's tokens first: position 0 is its first token, and the "
                    "positional encodings count from there")  # fmt: skip
        if len(_DOCS[1]) > ids.shape[1] and torch.equal(
            ids[1], torch.as_tensor(_DOCS[1][-ids.shape[1] :])
        ):
            return ("the long document kept its last max_len tokens",
                    "keep the first max_len tokens: doc[:T]")  # fmt: skip
        if sorted(map(tuple, ids.tolist())) == sorted(map(tuple, want_ids.tolist())):
            return ("the rows hold the right documents, padded right, but in another order "
                    "(sorted by length?)", "keep the order of `examples`: row i is examples[i], "
                    "whose label is labels[i]; the loader's shuffling already decides the order")  # fmt: skip
        return (f"ids are not the documents' ids, left-aligned and padded with 0 {where}",
                "row i, columns 0 … len(doc)-1 hold doc i's ids; the rest are 0")  # fmt: skip
    if mask.shape != want_mask.shape:
        return (f"mask has shape {tuple(mask.shape)}, expected {tuple(want_mask.shape)}",
                "one entry per token: the same shape as ids")  # fmt: skip
    if torch.equal(mask.bool(), ~want_mask):
        return ("the mask is True at the padding and False at the real tokens",
                "True = a real token: positions < that document's length")  # fmt: skip
    T = want_mask.shape[1]
    lengths = torch.tensor([min(len(d), T) for d in _DOCS])
    if torch.equal(mask.bool(), torch.arange(T)[None, :] <= lengths[:, None]):
        return ("the mask is one position too long: True at position len(doc) too",
                "positions 0 … len(doc) - 1 hold tokens: compare with < the length, not <=")  # fmt: skip
    if not torch.equal(mask.bool(), want_mask):
        return ("the mask does not mark exactly the real tokens",
                "True exactly where row i holds a token of document i: its first min(len(doc), T) "
                "positions", "torch.arange(T)[None, :] < lengths[:, None], with lengths cut at T")  # fmt: skip
    if mask.dtype != torch.bool:
        return (f"the mask is right but has dtype {mask.dtype}", "the model takes a boolean mask "
                "(it uses ~mask and masked_fill): compare, don't convert to numbers")  # fmt: skip
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        what = labels.dtype if isinstance(labels, torch.Tensor) else kind_of(labels)
        return (f"labels are {what}", "cross_entropy wants class ids: torch.tensor(labels)")
    if labels.shape != (3,):
        return (f"labels have shape {tuple(labels.shape)}, expected (3,)",
                "one class id per document: torch.tensor([label for _, label in examples])")  # fmt: skip
    if sorted(labels.tolist()) != sorted(_LABELS):
        return (f"the labels are {labels.tolist()}, not the documents' labels {_LABELS}",
                "take each example's own label: torch.tensor([label for _, label in examples])")  # fmt: skip
    if labels.tolist() != _LABELS:
        return ("the labels are not in the documents' order", "labels[i] belongs to document i")
    return None


# --- (b) masked mean pooling ----------------------------------------------------------------------


def check_masked_mean(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """``fn(x, mask)``: x (B, T, d), mask (B, T) with True/1 at real tokens -> (B, d), the mean over
    each row's real tokens only."""
    name = "masked mean"
    return run_check(name, lambda: _masked_mean(name, fn))


def _pooling_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 5, 4, generator=gen)  # (B, T, d): T != d != B, so a bad broadcast fails
    lengths = torch.tensor([5, 2, 3])
    mask = (torch.arange(5)[None, :] < lengths[:, None]).to(dtype)  # (B, T)
    x = x.masked_fill(~mask.bool()[..., None], 100.0)  # padding far from the real tokens
    return x, mask


def _masked_mean(name: str, fn) -> CheckResult:
    x, mask = _pooling_case(torch.bool)
    m = mask[..., None].float()  # (B, T, 1)
    want = (x * m).sum(1) / m.sum(1)
    mistakes = {
        "averaged over the padding too (x.mean(dim=1))": (
            x.mean(1), "multiply by the mask before summing, and divide by the number of real "
            "tokens"),
        "divided the masked sum by the padded length T, not by each row's number of real tokens": (
            (x * m).sum(1) / x.shape[1], "divide by mask.sum(dim=1): the count of real tokens"),
        "used the mask upside down (averaged the padding)": (
            (x * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1), "True = a real token"),
        "divided by the batch size B, not by each row's number of real tokens": (
            (x * m).sum(1) / x.shape[0], "divide by mask.sum(dim=1), one count per row"),
        "divided by the real tokens of the whole batch, not of each row": (
            (x * m).sum(1) / m.sum(), "sum the mask over dim 1 only: one count per row"),
        "returned the masked sum, not the mean": ((x * m).sum(1), "divide by the number of real tokens"),
    }  # fmt: skip
    try:
        got = fn(x.clone(), mask.clone())
    except RuntimeError as err:
        if "must match the size" not in str(err):
            raise
        return _broadcast_failure(name, str(err), *x.shape)
    if got is None:
        return failed(name, "returned None: did you forget `return`?", "return the (B, d) means")
    if isinstance(got, torch.Tensor) and got.dtype != x.dtype:
        return failed(name, f"float32 in, {got.dtype} out", "keep x's dtype: convert the mask "
                      "with mask.to(x.dtype), not .double()")  # fmt: skip
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return failed(name, f"x (B, T, d) = (3, 5, 4) gave {shape}, expected (3, 4)",
                      "sum over dim 1, the tokens; the mask needs a last axis to meet x: "
                      "mask.unsqueeze(-1) is (B, T, 1)")  # fmt: skip
    if not _close(got, want):
        for verdict, (wrong, hint) in mistakes.items():
            if _close(got, wrong):
                return failed(name, verdict, hint)
        return failed(name, "not the mean of each row's real tokens",
                      "padded positions must add 0 to the sum and 0 to the count: print both for "
                      "one row and compare with its real tokens",
                      "(x · m).sum over tokens / m.sum over tokens, with m = mask (B, T, 1)")  # fmt: skip
    for dtype, label in ((torch.long, "an integer 0/1 mask, as tokenizers return it"),
                         (torch.float32, "a float 0/1 mask")):  # fmt: skip
        x, mask = _pooling_case(dtype)
        try:
            got = fn(x.clone(), mask.clone())
        except RuntimeError as err:
            got = str(err).splitlines()[0]
        if not isinstance(got, torch.Tensor) or not _close(got, want):
            crash = f" (it raised: {got})" if isinstance(got, str) else ""
            return failed(name, f"right with a boolean mask, wrong with {label}{crash}",
                          "an integer mask is not a boolean one: ~mask flips bits (~1 = -2) and "
                          "x[mask] picks rows 0 and 1 by number; convert it first, with mask.bool() "
                          "or mask.to(x.dtype)")  # fmt: skip
    empty = fn(torch.ones(2, 3, 4), torch.tensor([[True, True, False], [False, False, False]]))
    if not torch.isfinite(empty).all():
        return failed(name, "a row with no real token gives nan (0 / 0)",
                      "clamp the count of real tokens at 1: mask.sum(1).clamp(min=1)")  # fmt: skip
    x, mask = _pooling_case(torch.bool)
    try:
        half = fn(x.half(), mask)  # the statement: x's dtype back (float16: numpy has it too)
    except RuntimeError as err:  # einsum and matmul refuse a float32 mask with a float16 x
        half = f"raised: {str(err).splitlines()[0]}"
    if not isinstance(half, torch.Tensor) or half.dtype != torch.float16:
        said = f"comes back as {half.dtype}" if isinstance(half, torch.Tensor) else half
        return failed(name, f"right in float32, but with a float16 x it {said}",
                      "keep x's dtype: convert the mask with mask.to(x.dtype), not .float()")  # fmt: skip
    if loop := find_loop(fn):
        return failed(name, f"right values, but {loop}", "no loops: multiply by the (B, T, 1) mask, "
                      "sum over dim 1 and divide by the count, all rows at once")  # fmt: skip
    return passed(name, "the mean over real tokens only, for boolean, integer and float masks, in "
                  "x's dtype; padding does not dilute it")  # fmt: skip


def _broadcast_failure(name: str, error: str, batch: int, tokens: int, dim: int) -> CheckResult:
    """Which two shapes failed to meet, from torch's "The size of tensor a (4) must match the size
    of tensor b (5)": the check's B, T and d all differ, so the sizes name the operands."""
    sizes = {int(n) for n in re.findall(r"tensor [ab] \((\d+)\)", error)}
    if sizes == {batch, dim}:
        return failed(name, "a (B, d) sum divided by a (B,) count does not broadcast",
                      "keep the count's last axis: mask.sum(1, keepdim=True) is (B, 1), or sum "
                      "the (B, T, 1) mask you multiplied by")  # fmt: skip
    return failed(name, "x (B, T, d) times mask (B, T) does not broadcast",
                  "the mask needs a last axis to meet x: mask.unsqueeze(-1) is (B, T, 1)")  # fmt: skip


# --- (c) loaders, one training step, the evaluation pass -----------------------------------------


def check_loaders(make_loaders: MakeLoaders) -> CheckResult:
    """``make_loaders(train_items, valid_items, batch_size, collate)`` -> (train, valid) DataLoaders:
    train shuffled in batches of ``batch_size``, valid every example once in a fixed order, both
    batching with ``collate``."""
    name = "data loaders"
    with seeded(0):  # the loaders shuffle: the notebook's own random state is left as it was
        return run_check(name, lambda: _loaders(name, make_loaders))


def _tagged_collate(batch: list) -> tuple[str, list[int]]:
    """The check's collate: marks each batch as its own, so a loader that skips it is seen."""
    return ("collated", [int(doc[0]) for doc, _ in batch])


def _read(loader) -> list[list[int]] | str:
    """The example numbers of each batch, or what was wrong with the batches."""
    batches = []
    for batch in loader:
        if not (isinstance(batch, tuple) and batch and batch[0] == "collated"):
            return "does not batch with the collate function given"
        batches.append(batch[1])
    return batches


def _loaders(name: str, make_loaders) -> CheckResult:
    train_items = [(np.array([i]), i % 2) for i in range(30)]
    valid_items = [(np.array([i]), i % 2) for i in range(30, 40)]
    out = make_loaders(train_items, valid_items, 4, _tagged_collate)
    if not isinstance(out, tuple | list) or len(out) != 2:
        return failed(name, f"expected (train_loader, valid_loader); it returned {returned(out)}",
                      "return both loaders, training first")  # fmt: skip
    train, valid = out
    runs = {}
    for label, loader in (("train", train), ("valid", valid)):
        if not isinstance(loader, torch.utils.data.DataLoader):
            return failed(name, f"the {label} loader is {kind_of(loader)}",
                          "torch.utils.data.DataLoader(items, batch_size=…, shuffle=…, "
                          "collate_fn=collate)")  # fmt: skip
        runs[label] = [_read(loader), _read(loader)]  # two epochs
        if isinstance(runs[label][0], str):
            return failed(name, f"the {label} loader {runs[label][0]}",
                          "collate_fn=collate: the default one cannot pad documents of "
                          "different lengths")  # fmt: skip
    (train_1, train_2), (valid_1, valid_2) = runs["train"], runs["valid"]
    seen = [[i for b in run for i in b] for run in (train_1, train_2, valid_1, valid_2)]
    if sorted(seen[0]) == list(range(30, 40)) and sorted(seen[2]) == list(range(30)):
        return failed(name, "returned (valid, train)", "the order is (train_loader, valid_loader)")
    if sorted(seen[2]) != list(range(30, 40)) or sorted(seen[3]) != list(range(30, 40)):
        dropped = sorted(set(range(30, 40)) - set(seen[2]))
        if seen[2] == list(range(30, 38)):
            return failed(name, f"the validation loader never scores examples {dropped}: it drops "
                          "the last, smaller batch", "no drop_last when evaluating: every "
                          "example counts")  # fmt: skip
        return failed(name, "one pass over the validation loader does not see each validation "
                      "example once", "give it the validation items")  # fmt: skip
    if seen[2] != list(range(30, 40)) or seen[3] != seen[2]:
        return failed(name, "the validation loader shuffles",
                      "evaluation needs no shuffling: the score is the same in any order, and in a "
                      "fixed order each prediction lines up with its review (shuffle=False)")  # fmt: skip
    if len(set(seen[0])) != len(seen[0]) or not set(seen[0]) <= set(range(30)) or len(seen[0]) < 27:
        return failed(name, "one pass over the training loader does not see each training "
                      "example once", "give it the training items")  # fmt: skip
    if max(len(b) for b in train_1) != 4 or any(len(b) > 4 for b in train_1):
        sizes = sorted({len(b) for b in train_1})
        return failed(name, f"the training batches hold {sizes} examples, not 4",
                      "pass batch_size on")  # fmt: skip
    if seen[0] == sorted(seen[0]) and seen[1] == seen[0]:
        return failed(name, "the training loader does not shuffle",
                      "every epoch would show the batches in the same order, and runs of one "
                      "class or one length pull the weights that way: shuffle=True")  # fmt: skip
    if seen[1] == seen[0]:  # a real shuffle repeats 30 items' order with probability 1/30!
        return failed(name, "the training loader gives the same order every epoch (shuffled once)",
                      "a fresh order each epoch: DataLoader(..., shuffle=True) draws one every "
                      "time it is iterated; a permutation made once is one fixed sequence")  # fmt: skip
    return passed(name, "train shuffled in batches of 4, validation every example once in a fixed "
                  "order, both batched by your collate")  # fmt: skip


class Classifier(nn.Module):
    """A small classifier that records, for each forward pass, whether gradients were on and
    whether it was in train mode. Its name shows in a student's error ("Classifier.forward() missing
    1 required positional argument: 'mask'"): say what it is, not how the check uses it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.dropout = nn.Dropout(0.5)
        self.grad_modes: list[bool] = []
        self.train_modes: list[bool] = []

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.grad_modes.append(torch.is_grad_enabled())
        self.train_modes.append(self.training)
        x = ids.float() * mask[..., None]  # (B, T, 4): the "ids" here are features
        return self.linear(self.dropout(x.sum(1)))  # (B, 2)


def _probe_batch(
    seed: int = 0, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(8, 3, 4, generator=gen)
    return x, torch.ones(8, 3, dtype=torch.bool), (x.sum((1, 2)) > 0).long()


def check_train_step(
    step: Callable[[nn.Module, Batch, torch.optim.Optimizer], float],
) -> CheckResult:
    """``step(model, batch, optimizer)``: model(ids, mask) on batch = (ids, mask, labels), the
    cross-entropy, one update; returns the loss as a number."""
    name = "training step"
    with seeded(0):  # the notebook's own random state is left as it was
        return run_check(name, lambda: _train_step(name, step))


def _sgd_reference(weights: dict[str, torch.Tensor], batches, variant: str = "right"):
    """The weights after an SGD step (lr 0.1) per batch in train mode, dropout seeded as the check
    seeds the student's; ``variant`` makes one of the classic mistakes instead."""
    reference, total = Classifier(), None
    for ids, mask, labels in batches:
        reference.load_state_dict(weights)
        torch.manual_seed(1)
        logits = reference(ids, mask)
        if variant == "softmax":
            logits = torch.softmax(logits, dim=-1)
        loss = F.cross_entropy(logits, labels, reduction="sum" if variant == "sum" else "mean")
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        if variant == "accumulate" and total is not None:
            grads = [a + g for a, g in zip(total, grads)]
        total = grads
        lr = 0.2 if variant == "twice" else 0.1  # step() twice on one gradient
        weights = {k: v - lr * g for (k, v), g in zip(reference.state_dict().items(), grads)}
    return weights


_STEP_MISTAKES = {
    "accumulate": ("the second step added the first step's gradients to its own",
                   "gradients add up in .grad until cleared: optimizer.zero_grad() once per step, "
                   "before backward (or after step)"),
    "softmax": ("softmax before cross_entropy: the loss applies log-softmax itself",
                "pass the raw logits to F.cross_entropy"),
    "sum": ("the loss is summed over the batch, not averaged: steps 8× too large",
            "F.cross_entropy averages by default; keep reduction='mean'"),
    "twice": ("two updates per batch", "one optimizer.step() per batch"),
}  # fmt: skip


def _train_step(name: str, step) -> CheckResult:
    model = Classifier()
    with torch.no_grad():  # zero weights and inputs of 8 sd: the first gradient's norm is over 1.8
        for p in model.parameters():  # whatever dropout's mask (2,000 masks tried), so clipping
            p.zero_()  # at 1.0 always shows (with a random init it hid under torch 2.2's masks)
    model.eval()  # left in eval mode by an earlier evaluation: the step must switch dropout on
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [_probe_batch(0, scale=8.0), _probe_batch(1, scale=8.0)]
    start = {k: v.clone() for k, v in model.state_dict().items()}
    losses = []
    for i, batch in enumerate(batches):
        torch.manual_seed(1)  # the same dropout as the reference
        losses.append(step(model, batch, optimizer))
        if i == 0 and all(torch.equal(v, start[k]) for k, v in model.state_dict().items()):
            return failed(name, "the weights did not change",
                          "optimizer.step() applies the gradients that loss.backward() computed: "
                          "backward must come before step, with no zero_grad between them")  # fmt: skip
    if not model.train_modes or not all(model.train_modes):
        return failed(name, "the model was in eval mode when it computed the loss: dropout was "
                      "off while training", "call model.train() at the start of the step")  # fmt: skip
    got = model.state_dict()
    if not all(_close(got[k], v) for k, v in _sgd_reference(start, batches).items()):
        for variant, verdict in _STEP_MISTAKES.items():
            wrong = _sgd_reference(start, batches, variant)
            if all(_close(got[k], v) for k, v in wrong.items()):
                return failed(name, *verdict)
        return failed(name, "after two steps the weights differ from two plain SGD steps",
                      "which of model.train(), zero_grad, the loss, backward and step is missing, "
                      "doubled or out of order? (and nothing else: no clipping here, the course's "
                      "loop adds it)",
                      "the loss is F.cross_entropy(model(ids, mask), labels): one backward, "
                      "one optimizer.step(), nothing else")  # fmt: skip
    loss = losses[0]
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        return failed(name, "returned the loss tensor itself, with its whole graph attached",
                      "return loss.item(): a number; holding the tensor keeps every "
                      "activation of the batch in memory")  # fmt: skip
    value = _as_number(loss)
    if value is None:
        return failed(name, f"expected the loss as a number; it returned {returned(loss)}",
                      "return loss.item()")  # fmt: skip
    want = _batch_loss(start, batches[0])
    if not math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-6):
        after = _batch_loss(_sgd_reference(start, batches[:1]), batches[0])
        said = (" (the loss after the update: compute it once, before backward)"
                if math.isclose(value, after, rel_tol=1e-4) else "")  # fmt: skip
        return failed(name, f"returned {value:.4g}, but the batch's loss was {want:.4g}{said}",
                      "return loss.item() of the loss you called backward on")  # fmt: skip
    return passed(name, "train mode, gradients cleared, one backward, one step: the same weights "
                  "as a reference SGD step, twice in a row")  # fmt: skip


def _as_number(value) -> float | None:
    """A Python or numpy number, or a one-element tensor or array, as a float; None otherwise
    (a bool too: True is not an accuracy)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, torch.Tensor | np.ndarray | np.generic):
        size = value.numel() if isinstance(value, torch.Tensor) else value.size
        boolean = value.dtype in (torch.bool, np.bool_)  # (preds == labels).all(): not a score
        return float(value.item()) if size == 1 and not boolean else None
    return float(value) if isinstance(value, numbers.Real) else None


def _batch_loss(weights: dict[str, torch.Tensor], batch) -> float:
    """The cross-entropy of the probe model holding ``weights`` on ``batch``, in train mode with
    the dropout the check seeds."""
    model = Classifier()
    model.load_state_dict(weights)
    ids, mask, labels = batch
    torch.manual_seed(1)
    with torch.no_grad():
        return F.cross_entropy(model(ids, mask), labels).item()


def check_evaluate(evaluate: Evaluate) -> CheckResult:
    """``evaluate(model, batches)``: accuracy over all batches of (ids, mask, labels), with dropout
    off and no gradients tracked."""
    name = "evaluation pass"
    with seeded(0):
        return run_check(name, lambda: _evaluate(name, evaluate))


def _evaluate(name: str, evaluate) -> CheckResult:
    torch.manual_seed(0)
    model = Classifier()
    batches = [_probe_batch(s) for s in range(3)]
    batches.append(tuple(t[:3] for t in _probe_batch(9)))  # a short last batch
    model.eval()
    with torch.no_grad():
        hits = [(model(i, m).argmax(-1) == y).float() for i, m, y in batches]
    want = torch.cat(hits).mean().item()
    model.grad_modes.clear()
    model.train_modes.clear()
    model.train()  # as training leaves it
    torch.manual_seed(5)
    got = evaluate(model, batches)
    if any(model.train_modes):
        return failed(name, "the model was in train mode while scoring: dropout was on, so the "
                      "score changes from run to run", "call model.eval() before the loop")  # fmt: skip
    if any(model.grad_modes):
        return failed(name, "gradients were tracked during evaluation: the graph of every batch "
                      "is built for nothing", "wrap the loop in `with torch.no_grad():` "
                      "(or decorate the function with @torch.no_grad())")  # fmt: skip
    number = _as_number(got)
    if number is None:
        return failed(name, f"expected the accuracy as one number; it returned {returned(got)}",
                      "return correct / total")  # fmt: skip
    got = number
    if not math.isfinite(got) or abs(got - want) > 1e-6:  # NaN compares False with everything
        others = {
            "averaged the batches' accuracies, but the last batch is smaller": (
                sum(h.mean().item() for h in hits) / len(hits),
                "count correct predictions and examples over all batches; divide once at the end"),
            "returned the number of correct predictions, not a fraction": (
                torch.cat(hits).sum().item(), "divide by the number of examples"),
            "returned a percentage": (100 * want, "return a fraction between 0 and 1"),
            "returned the error rate": (1 - want, "accuracy counts the right predictions"),
            "counted only the last batch": (hits[-1].mean().item(), "add up over every batch: +="),
        }  # fmt: skip
        for verdict, (value, hint) in others.items():
            if abs(got - value) < 1e-6:
                return failed(name, f"{verdict} ({got:.3f}; expected {want:.3f})", hint)
        nan = " (nan is 0 / 0: did a count stay 0?)" if math.isnan(got) else ""
        return failed(name, f"accuracy {got:.3f}, expected {want:.3f}",
                      "a prediction is right when its highest-scoring class is the label: count those "
                      f"and the examples over every batch, then divide once{nan}",
                      "for ids, mask, labels in batches: correct += (model(ids, mask).argmax(dim=-1) "
                      "== labels).sum().item(); total += len(labels)")  # fmt: skip
    return passed(name, f"accuracy {want:.3f} over 27 examples in 4 batches, in eval mode, "
                  "without gradients")  # fmt: skip


# --- all three, on the trained model ----------------------------------------------------------------


def check_pipeline_on_model(
    collate: Collate, make_loaders: MakeLoaders, evaluate: Evaluate, model: nn.Module,
    valid_items: list, max_len: int, reference: float,
) -> CheckResult:  # fmt: skip
    """Score the trained ``model`` on the validation items with the student's collate, loaders and
    evaluation pass (on the CPU); it should match ``reference``, what the course's loop measured."""
    name = "your pipeline on the trained model"
    return run_check(name, lambda: _on_model(name, collate, make_loaders, evaluate, model,
                                             valid_items, max_len, reference))  # fmt: skip


def _on_model(name, collate, make_loaders, evaluate, model, valid_items, max_len, reference):
    with seeded(0):  # the three checks above, quietly: a pipeline that fails them is not scored
        for what, check, fn in (("collate", _collate, collate), ("loaders", _loaders, make_loaders),
                                ("evaluation pass", _evaluate, evaluate)):  # fmt: skip
            try:
                ok = check(what, fn).passed
            except Exception:  # a crash is a failure too; its check above says where
                ok = False
            if not ok:
                return failed(name, f"your {what} does not yet pass its check above",
                              "run the three checks above until each says passed")  # fmt: skip
    device = next(model.parameters()).device
    try:
        batch = functools.partial(collate, max_len=max_len)
        _, valid = make_loaders(valid_items[:1], valid_items, 64, batch)
        got = evaluate(model.cpu(), valid)
    finally:
        model.to(device)
    number = _as_number(got)
    if number is None:
        return failed(name, f"expected the accuracy from your evaluate; it returned {returned(got)}",
                      "run check_evaluate above first")  # fmt: skip
    got = number
    if not math.isfinite(got) or not math.isfinite(reference) or abs(got - reference) > 0.01:
        return failed(name, f"your pipeline scores {got:.1%} on validation; the course's loop "
                      f"measured {reference:.1%}", "run the three checks above first")  # fmt: skip
    return passed(name, f"{got:.1%} on {len(valid_items):,} validation reviews, as the course's "
                  f"loop measured ({reference:.1%})")  # fmt: skip


# --- your own modules --------------------------------------------------------------------------


def checked_modules(names: dict) -> tuple[ModuleFactory, ModuleFactory]:
    """``imdb.my_modules(names)`` once notebook 02's checks pass on both classes: a class they fail
    stops here with its verdict (a wrong module trained to NaN or chance without a word)."""
    attention, layer_norm = my_modules(names)
    for result in (check_self_attention(attention), check_layer_norm(layer_norm)):
        if not result.passed:
            raise ValueError(f"USE_MY_MODULES = True, but notebook 02's check says:\n{result}\nfix "
                             "the class in notebook 02 (its check names the mistake) and paste it "
                             "again, or set USE_MY_MODULES = False")  # fmt: skip
    return attention, layer_norm
