"""Notebook 04, exercise 2: one training step with a schedule and gradient clipping, watched call by
call on a tiny classifier (what moved to the device, in which order the steps ran)."""

import math
import numbers
import warnings
from collections.abc import Callable

import torch
import torch.nn as nn
from transformers.modeling_outputs import SequenceClassifierOutput

from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, returned_not, run_check
from helpers.finetune import experiments


class LoaderTensor(torch.Tensor):
    """A batch tensor as a DataLoader yields it: on the CPU until moved. ``.to(device)`` (or
    ``.cuda()``) gives a plain tensor, so the model can tell a batch that was moved from one that
    stayed where the loader made it, even on a machine whose only device is the CPU; a move to a
    device written as text (``.to("cpu")``) is noted on the result as ``named_device``."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        moved = func is torch.Tensor.cuda or (func is torch.Tensor.to and _moves(args[1:], kwargs))
        if moved or (func in (torch.as_tensor, torch.asarray) and kwargs.get("device") is not None):
            with torch._C.DisableTorchFunctionSubclass():
                out = func(*args, **kwargs).as_subclass(torch.Tensor)
            named = kwargs.get("device", next((a for a in args[1:] if isinstance(a, str)), None))
            out.named_device = named if isinstance(named, str) else None
            return out
        return super().__torch_function__(func, types, args, kwargs)


def _moves(args: tuple, kwargs: dict) -> bool:
    """Whether ``tensor.to(*args, **kwargs)`` names a device (not only a dtype)."""
    return "device" in kwargs or any(
        isinstance(a, torch.device | str | int | torch.Tensor) and not isinstance(a, bool)
        for a in args
    )


def _plain(tensor):
    return tensor.as_subclass(torch.Tensor) if isinstance(tensor, LoaderTensor) else tensor


class TinyClassifier(nn.Module):
    """A Hugging Face-style classifier small enough to check with: ``model(**batch)`` returns a
    ``SequenceClassifierOutput`` (``.loss``, ``["logits"]``, ``[0]`` as on the real models); it records
    whether gradients were on, the mode it ran in, and whether its inputs were moved to its device."""

    def __init__(
        self, vocab: int = 20, width: int = 8, classes: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, classes)
        self.calls: list[tuple[bool, bool]] = []  # (grad enabled, training) of every forward
        self.unmoved = False  # an input came straight from the loader, never moved to a device
        self.named: set[str] = set()  # devices the inputs were moved to by name ("cpu")

    @property
    def device(self) -> torch.device:  # as a Hugging Face model has: batch.to(model.device)
        return self.head.weight.device

    def _inputs(self, *tensors):
        """The inputs as plain tensors on this model's device, noting any that were never moved."""
        self.unmoved |= any(
            isinstance(t, LoaderTensor) or t.device != self.device for t in tensors if t is not None
        )
        self.named |= {t.named_device for t in tensors if getattr(t, "named_device", None)}
        return [None if t is None else _plain(t).to(self.device) for t in tensors]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        self.calls.append((torch.is_grad_enabled(), self.training))
        input_ids, attention_mask, labels, _ = self._inputs(
            input_ids, attention_mask, labels, token_type_ids
        )
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)  # mean over real tokens
        logits = self.head(self.drop(pooled))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _step_batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0], [8, 9, 10, 11]])
    return {"input_ids": ids, "attention_mask": (ids > 0).long(), "labels": torch.tensor([1, 0, 1])}


WARMUP, CLIP = 4, 0.05  # lr factors 1/4, 2/4, …: a step taken at the wrong rate shows; grads > CLIP
STEPS = 2  # the second step shows gradients left over from the first


def _step_setup(seed: int = 0):
    with seeded(seed):
        model = TinyClassifier()
    model.eval()  # as evaluate() leaves it: the step must switch training on itself
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / WARMUP))
    return model, optimizer, scheduler


reference_train_step = experiments.train_step


def _variant(
    order: tuple[str, ...], clip: float = CLIP, clip_by: str = "norm", softmax: bool = False
) -> list[torch.Tensor]:
    """The parameters after ``STEPS`` steps, each done in ``order`` (names of the actions), clipping
    the gradients' norm (``clip_by="norm"``) or each entry (``"value"``) at ``clip``; ``softmax``:
    the loss is cross_entropy of the probabilities instead of the logits."""
    model, optimizer, scheduler = _step_setup()
    model.train()
    for _ in range(STEPS):
        for action in order:
            if action == "zero":
                optimizer.zero_grad()
            elif action == "backward" and softmax:
                batch = _step_batch()
                probs = model(**batch).logits.softmax(-1)
                nn.functional.cross_entropy(probs, batch["labels"]).backward()
            elif action == "backward":
                model(**_step_batch()).loss.backward()
            elif action == "clip" and clip_by == "norm":
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            elif action == "clip":
                nn.utils.clip_grad_value_(model.parameters(), clip)
            elif action == "step":
                optimizer.step()
            elif action == "schedule":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
                    scheduler.step()
    return [p.detach().clone() for p in model.parameters()]


RIGHT_ORDER = ("zero", "backward", "clip", "step", "schedule")

# The order of a step's actions that each mistake amounts to, and its hint.
STEP_MISTAKES = {
    "backward clip step schedule": "the gradients were never cleared, so the second step added its "
    "gradients to the first's: call optimizer.zero_grad() before loss.backward()",
    "zero backward clip schedule step": "the scheduler stepped before the optimizer, so each update "
    "used the next step's learning rate: optimizer.step() first, then scheduler.step()",
    "zero backward clip schedule": "the weights did not move: did optimizer.step() run, after "
    "loss.backward() and before any zero_grad() (which would wipe the gradients it applies)?",
}

# Clipping in the right place, but not the clipping asked for: how it clips, and its hint.
CLIP_MISTAKES = {
    "the gradients were clipped at 1.0, not at the `clip` you were given: "
    "torch.nn.utils.clip_grad_norm_(model.parameters(), clip)": {"clip": 1.0},
    "clip_grad_value_ cuts each gradient entry to ±clip; clip their overall norm instead: "
    "torch.nn.utils.clip_grad_norm_(model.parameters(), clip)": {"clip_by": "value"},
}

# Steps whose updates were not clipped at all (the same weights as no clipping), told apart by the
# gradients left in .grad after the last step: clipped only when the clipping ran after the step.
UNCLIPPED = {
    "after": "the gradients were clipped after the update, so the update itself was not clipped: "
    "clip between loss.backward() and optimizer.step()",
    "never": "the gradients were never clipped to the `clip` you were given (clipping before "
    "loss.backward() clips nothing: backward makes them): "
    "torch.nn.utils.clip_grad_norm_(model.parameters(), clip) between loss.backward() and "
    "optimizer.step()",
    "cleared": "the updates were not clipped: torch.nn.utils.clip_grad_norm_(model.parameters(), clip) "
    "between loss.backward() and optimizer.step(), not before backward() or after step()",
}


def _unclipped_hint(model: nn.Module) -> str:
    """Which way an unclipped step went wrong, from the gradients it left behind."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads or all(not g.any() for g in grads):  # cleared after the step: no telling
        return UNCLIPPED["cleared"]
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    return UNCLIPPED["after" if norm <= CLIP * (1 + 1e-4) else "never"]


def check_train_step(train_step: Callable) -> CheckResult:
    """``train_step(model, batch, optimizer, scheduler, clip)`` -> the batch's loss as a float."""
    name = "training step"
    return run_check(name, lambda: _train_step(name, train_step))


def _train_step(name: str, train_step: Callable) -> CheckResult:
    model, optimizer, scheduler = _step_setup()
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(STEPS):
            batch = _step_batch()
            given = dict(batch)
            losses.append(train_step(model, batch, optimizer, scheduler, CLIP))
            if batch.keys() != given.keys() or any(
                not torch.equal(batch[k].reshape(-1).cpu(), v.reshape(-1).cpu())
                for k, v in given.items()
            ):  # the same entries; a view or a move to the device is fine
                return failed(name, "your step changed the batch it was given (batch.pop(...)?)",
                              "the same batch is used again (notebook 04's sanity check trains 20 "
                              "steps on one batch, then evaluates it): read it, do not pop or replace "
                              "its entries; model(**batch).loss takes the labels from it")  # fmt: skip
    if not model.calls:
        return failed(name, "the model was never called", "loss = model(**batch).loss")
    if not model.calls[0][1]:
        return failed(name, "the model ran in evaluation mode (dropout off)",
                      "what mode does evaluate() leave the model in? switch training back on first",
                      "model.train() at the start of the step")  # fmt: skip
    if scheduler.last_epoch != STEPS:
        hint = (
            "the learning-rate schedule never moved: call scheduler.step() once per step"
            if scheduler.last_epoch == 0
            else f"scheduler.step() ran {scheduler.last_epoch} times in {STEPS} steps; once a step"
        )
        return failed(
            name, f"the scheduler is at step {scheduler.last_epoch} after {STEPS} steps", hint
        )
    right = _variant(RIGHT_ORDER)
    got = [p.detach() for p in model.parameters()]

    def same(params: list[torch.Tensor]) -> bool:
        return all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, params))

    if not same(right):
        verdict = (
            f"the weights after {STEPS} of your steps differ from those after {STEPS} correct steps"
        )
        if same(_variant(("zero", "backward", "step", "schedule"))):
            return failed(name, verdict, _unclipped_hint(model))
        for hint, how in CLIP_MISTAKES.items():
            if same(_variant(RIGHT_ORDER, **how)):
                return failed(name, verdict, hint)
        for order, hint in STEP_MISTAKES.items():
            if same(_variant(tuple(order.split()))):
                return failed(name, verdict, hint)
        if same(_variant(RIGHT_ORDER, softmax=True)):
            return failed(name, verdict, "cross_entropy was given probabilities (a softmax first): "
                          "it applies log-softmax itself, so the softmax is taken twice and the "
                          "gradients shrink; give it the logits, or use model(**batch).loss")  # fmt: skip
        return failed(name, verdict, "which of zero_grad, backward, clip, step and the scheduler "
                      "is missing or out of order?", "the order is: model.train(), optimizer.zero_grad(), "
                      "loss = model(**batch).loss, loss.backward(), clip, optimizer.step(), "
                      "scheduler.step()")  # fmt: skip
    loss = losses[0]
    if isinstance(loss, torch.Tensor):
        return failed(name, "the step returned a tensor, not the loss as a Python float",
                      "return loss.item(): a plain float; a tensor keeps its graph (and its GPU "
                      "memory) alive in every loss you log")  # fmt: skip
    if not isinstance(loss, numbers.Real) or isinstance(loss, bool):
        return failed(name, f"the step returned {returned_not(loss, 'the loss')}",
                      "return loss.item(): a plain float, detached from the graph")  # fmt: skip
    value = float(loss)
    if not math.isfinite(value) or abs(value - _reference_loss()) > 1e-5:
        return failed(name, f"the step returned {value:.4g}, not the batch's loss ({_reference_loss():.4g})",
                      "return loss.item(), the loss computed before the update")  # fmt: skip
    return passed(name, "train mode, cleared gradients, clipped before the update, optimizer then "
                  f"scheduler: the same weights as a correct step, {STEPS} steps in a row")  # fmt: skip


def _reference_loss() -> float:
    model, _, _ = _step_setup()
    model.train()
    return model(**_step_batch()).loss.item()
