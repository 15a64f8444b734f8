"""Notebook 03, exercise (c): the data loaders, one training step and the evaluation pass."""

import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.checks.code import _close
from helpers.checks.pipeline.shared import Batch, Evaluate, MakeLoaders
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, kind_of, passed, returned, run_check


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
