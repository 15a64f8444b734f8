"""Notebook 04's checkers: the collate function with dynamic padding, one training step with a schedule
and clipping, and the evaluation pass with precision, recall and F1.

As in notebook 02's checkers, a wrong answer is compared with what each known mistake would produce,
and the match names the mistake. ``yours_if_passed`` lets a later cell use the student's function once
its checker passes, and the helpers' own until then.
"""

import ast
import copy
import math
import numbers
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
from transformers.modeling_outputs import SequenceClassifierOutput

from helpers.checks.code import source_tree
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, kind_of, passed, returned_not, run_check
from helpers.finetune import experiments
from helpers.finetune.data import Task, collate_rows, make_collate

if TYPE_CHECKING:
    import transformers

# --- the collate function ----------------------------------------------------------------------

SENTENCES = [
    {"sentence": "a gripping , beautifully shot film", "label": 1},
    {"sentence": "dull", "label": 0},
    {"sentence": "not good at all , sadly , and far too long for what it has to say", "label": 0},
]
QUESTION = "is the film that everyone keeps talking about this year based on a true story"
PASSAGE = " ".join(["the film follows a family of farmers through three hard winters ."] * 6)
PAIRS = [
    {"question": QUESTION, "passage": PASSAGE, "answer": True},
    {"question": "is it long", "passage": "it runs for three hours .", "answer": False},
]
PAIR_LENGTH = 24  # the question alone is 17 tokens: only the passage may be cut to fit


def check_collate(
    collate: Callable, tokenizer: "transformers.PreTrainedTokenizerBase"
) -> CheckResult:
    """``collate(rows, tokenizer, task, labels, max_length)`` -> a dict of tensors: input_ids,
    attention_mask, token_type_ids (B, T) padded to the batch's longest, and labels (B,)."""
    name = "collate with dynamic padding"
    return run_check(name, lambda: _collate(name, collate, tokenizer))


def _call_tokenizer_mistakes(tokenizer, rows, task, labels, max_length) -> dict[str, dict]:
    """What each known mistake would return, made with the same tokenizer."""
    texts = [r[task.text] for r in rows]
    pairs = [r[task.pair] for r in rows] if task.pair else None

    def tok(*args: object, **kw: object) -> dict[str, torch.Tensor]:
        options = {"padding": True, "truncation": True, "max_length": max_length, **kw}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "max_length is ignored when ..."
                return dict(tokenizer(*args, return_tensors="pt", **options))
        except Exception:  # this mistake cannot even be made on these rows: nothing to compare
            return {"input_ids": torch.empty(0)}

    mistakes = {
        "every batch is padded to max_length: pad to the longest example of this batch "
        "(padding=True, or padding='longest')": tok(texts, pairs, padding="max_length",
                                                    truncation="only_second" if pairs else True),
        "nothing is truncated: long examples exceed max_length (truncation=..., "
        "max_length=max_length)": tok(texts, pairs, truncation=False),
    }  # fmt: skip
    if pairs:
        mistakes |= {
            "the question was cut as well as the passage: truncation=True cuts the longer text "
            "token by token, so both shrink; use truncation='only_second' to cut the passage only": tok(
                texts, pairs
            ),
            "the question was cut instead of the passage: use truncation='only_second'": tok(
                texts, pairs, truncation="only_first"
            ),
            "question and passage were joined into one text, so there is no [SEP] between them and "
            "every token type id is 0: give the passages as the tokenizer's second argument": tok(
                [f"{a} {b}" for a, b in zip(texts, pairs)]
            ),
            "the passage comes first: the question is the first text (token type 0), the passage "
            "the second": tok(pairs, texts, truncation="only_first"),
        }
    return mistakes


def _collate(name: str, collate: Callable, tokenizer) -> CheckResult:
    cases = [
        ("two short sentences", SENTENCES[:2], Task("sentence", "label"), {0: 0, 1: 1}, 32),
        ("a long sentence", SENTENCES, Task("sentence", "label"), {0: 0, 1: 1}, 12),
        ("question + passage", PAIRS, Task("question", "answer", pair="passage"),
         {False: 0, True: 1}, PAIR_LENGTH),
    ]  # fmt: skip
    for what, rows, task, labels, max_length in cases:
        want = make_collate(tokenizer, task, labels, max_length)(rows)
        given = copy.deepcopy(rows)  # the student's copies: the checker's rows stay as they are
        try:
            got = collate(given, tokenizer, task, dict(labels), max_length)
        except Exception as err:  # the tokenizer's own errors for two classic mistakes
            message = str(err).lower()
            if "second sequence not provided" in message and not task.pair:
                return failed(name, f"{what}: truncation='only_second' failed on single sentences",
                              "with one text there is no second text to cut: use truncation=True "
                              "when task.pair is None")  # fmt: skip
            if "truncate" in message and task.pair:
                return failed(name, f"{what}: the tokenizer could not cut the question short enough",
                              "the question must stay whole: cut only the passage, "
                              "truncation='only_second'")  # fmt: skip
            if isinstance(err, ValueError) and "pad" in message:
                return failed(name, f"{what}: the tokenizer could not make one tensor of texts "
                              "of different lengths", "pad them: padding=True")  # fmt: skip
            raise
        if given != rows:
            return failed(name, f"{what}: your collate changed the rows it was given",
                          "read each row (row[task.label]), do not pop or overwrite its fields: a "
                          "DataLoader hands you the data set's own rows")  # fmt: skip
        if not isinstance(got, dict) and hasattr(got, "keys"):
            got = dict(got)  # a BatchEncoding is a dict already; anything mapping-like is fine
        if not isinstance(got, dict):
            return failed(name, f"{what}: collate returned {returned_not(got, 'a dict')}",
                          "return the tokenizer's output (a dict) with a 'labels' entry added")  # fmt: skip
        for key in want:
            if key not in got:
                hints = (
                    ["the model needs the targets too: a 'labels' tensor of each row's label, mapped "
                     "through `labels`",
                     "batch['labels'] = torch.tensor([labels[r[task.label]] for r in rows])"]
                    if key == "labels"
                    else ["return everything the tokenizer gives back (input_ids, attention_mask, "
                          "token_type_ids)"]
                )  # fmt: skip
                return failed(name, f"{what}: the batch has no {key!r}", *hints)
            if not isinstance(got[key], torch.Tensor):
                hint = ("torch.tensor([...]) turns the list of class indices into a tensor"
                        if key == "labels" else
                        "return_tensors='pt' makes the tokenizer return PyTorch tensors")  # fmt: skip
                return failed(name, f"{what}: batch[{key!r}] is {kind_of(got[key])}, not a tensor",
                              hint)  # fmt: skip
        result = _compare_batch(name, what, got, want, tokenizer, rows, task, labels, max_length)
        if result is not None:
            return result
    return passed(name, "pads each batch to its own longest example, masks the padding, keeps "
                  "question and passage apart (token types 0/1) and cuts only the passage")  # fmt: skip


def _compare_batch(name, what, got, want, tokenizer, rows, task, labels, max_length):
    labels_got = got["labels"]
    if labels_got.dim() != 1 and labels_got.numel() == len(rows):
        return failed(name, f"{what}: labels have shape {tuple(labels_got.shape)}, expected "
                      f"({len(rows)},)", "one class index per row, a flat tensor: "
                      "torch.tensor([labels[r[task.label]] for r in rows])")  # fmt: skip
    if labels_got.dtype == torch.bool or not torch.equal(labels_got.long(), want["labels"]):
        raw = [r[task.label] for r in rows]
        return failed(name, f"{what}: labels are {labels_got.tolist()}, expected {want['labels'].tolist()}"
                      f" for the raw labels {raw}", "map each raw label to its class index: "
                      "labels[row[task.label]]")  # fmt: skip
    if labels_got.dtype != torch.long:
        return failed(name, f"{what}: labels have dtype {labels_got.dtype}",
                      "cross-entropy wants class indices as integers: torch.long")  # fmt: skip
    tokens = {k: v for k, v in got.items() if k != "labels"}
    if all(k in tokens and torch.equal(tokens[k], v) for k, v in want.items() if k != "labels"):
        return None

    def same_ids(a: dict, b: dict) -> bool:
        types = "token_type_ids"
        return torch.equal(a["input_ids"], b["input_ids"]) and (
            types not in b or types not in a or torch.equal(a[types], b[types])
        )

    mistakes = _call_tokenizer_mistakes(tokenizer, rows, task, labels, max_length).items()
    for hint, output in mistakes if not same_ids(tokens, want) else ():
        if same_ids(output, want):  # this mistake makes no difference on these rows
            continue
        if torch.equal(tokens["input_ids"], output["input_ids"]) and (
            "token_type_ids" not in output
            or torch.equal(
                tokens.get("token_type_ids", output["token_type_ids"]), output["token_type_ids"]
            )
        ):
            shape, expected = tuple(tokens["input_ids"].shape), tuple(want["input_ids"].shape)
            verdict = (
                f"{what}: input_ids differ from the expected ones (same shape {shape})"
                if shape == expected
                else f"{what}: input_ids of shape {shape}, expected {expected}"
            )
            return failed(name, verdict, hint)
    for key, hint in (
        ("input_ids", "tokenise every row's text(s); pad with padding=True"),
        ("attention_mask", "the attention mask is 1 on real tokens and 0 on padding"),
        ("token_type_ids", "token type ids are 0 for the first text and 1 for the second"),
    ):
        if key in want and not torch.equal(tokens[key], want[key]):
            return failed(name, f"{what}: {key} differ from the tokenizer's", hint,
                          "let the tokenizer build them: tokenizer(texts, pairs, padding=True, "
                          "truncation=..., max_length=max_length, return_tensors='pt')")  # fmt: skip
    return None


# --- one training step -------------------------------------------------------------------------


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


# --- the evaluation pass -----------------------------------------------------------------------


reference_evaluate = experiments.classification_scores


class FixedPredictions(TinyClassifier):
    """Predicts a fixed class for each input id (its first token), with dropout that would show."""

    def __init__(self, predictions: dict[int, int]) -> None:
        super().__init__(dropout=0.9)
        self.predictions = predictions

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        out = super().forward(input_ids, attention_mask, labels, token_type_ids)
        ids = _plain(input_ids)
        classes = torch.tensor([self.predictions[int(i)] for i in ids[:, 0]], device=self.device)
        logits = nn.functional.one_hot(classes, 2).float() * 4 - 2 + 0 * out.logits
        labels = None if labels is None else _plain(labels).to(self.device)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _eval_batches(loader: bool = False) -> list[dict[str, torch.Tensor]]:
    """9 examples in batches of 4, 4, 1: per-batch means differ from the overall mean. With
    ``loader``, the tensors are ``LoaderTensor``s: the model can tell whether they were moved."""
    # true:      1 1 1 1 1 1 0 0 0 ; predicted: 0 1 1 1 1 1 1 1 0  (first token = example id)
    # accuracy .667, P .714, R .833, F1 .769: apart from each other and from every mistake's score
    ids = torch.arange(1, 10).unsqueeze(1).repeat(1, 3)
    labels = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0, 0])
    cuts = [(0, 4), (4, 8), (8, 9)]
    batches = [{"input_ids": ids[a:b], "attention_mask": torch.ones_like(ids[a:b]),
                "labels": labels[a:b]} for a, b in cuts]  # fmt: skip
    if loader:
        return [{k: v.as_subclass(LoaderTensor) for k, v in batch.items()} for batch in batches]
    return batches


EVAL_PREDICTIONS = {1: 0, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 0}


def _eval_mistakes() -> dict[str, dict[str, float]]:
    from sklearn.metrics import precision_recall_fscore_support

    true = [1, 1, 1, 1, 1, 1, 0, 0, 0]
    pred = [EVAL_PREDICTIONS[i] for i in range(1, 10)]
    right = reference_evaluate(FixedPredictions(EVAL_PREDICTIONS), _eval_batches(), "cpu")

    def scores(**options: object) -> tuple:
        return precision_recall_fscore_support(true, pred, zero_division=0, **options)

    macro, weighted, micro = (scores(average=a) for a in ("macro", "weighted", "micro"))
    negative = scores(average="binary", pos_label=0)
    batch_acc = sum((sum(p == t for p, t in zip(pred[a:b], true[a:b])) / (b - a))
                    for a, b in [(0, 4), (4, 8), (8, 9)]) / 3  # fmt: skip
    return {
        "f1": {
            "you averaged F1 over both classes (average='macro'); this exercise asks for the positive "
            "class's (label 1) F1: average='binary'": macro[2],
            "you averaged F1 over both classes, weighted by their counts (average='weighted'); this "
            "exercise asks for the positive class's (label 1) F1: average='binary'": weighted[2],
            "the F1 is the negative class's: the positive class is label 1 (pos_label=1, the default)": negative[2],
            "average='micro' makes F1 equal to the accuracy; use average='binary'": micro[2],
            "F1 is the harmonic mean of precision and recall, 2PR/(P+R), not their average (P+R)/2":
                (right["precision"] + right["recall"]) / 2,
        },
        "precision": {
            "precision and recall are swapped: scikit-learn takes (y_true, y_pred) in that order": right["recall"],
            "you averaged over both classes (average='macro'); use average='binary'": macro[0],
            "you averaged over both classes, weighted by their counts (average='weighted'); use "
            "average='binary'": weighted[0],
            "precision of the negative class: the positive class is label 1": negative[0],
        },
        "recall": {
            "precision and recall are swapped: scikit-learn takes (y_true, y_pred) in that order": right["precision"],
            "you averaged over both classes (average='macro'); use average='binary'": macro[1],
            "recall of the negative class: the positive class is label 1": negative[1],
            "this recall equals the accuracy: averaged over every example (average='micro' or "
            "'weighted'); use average='binary' for the positive class's": micro[1],
        },
        "accuracy": {
            "you averaged the batches' accuracies, but the last batch is smaller: count correct "
            "predictions over all examples, then divide once": batch_acc,
        },
    }  # fmt: skip


# What to ask when a score matches no known mistake.
EVAL_FALLBACKS = {
    "accuracy": "collect every prediction (logits.argmax(-1)) and label of every batch first, then "
    "compute the scores once over all of them",
    "f1": "is it the positive class's F1, 2PR/(P+R), average='binary'?",
    "precision": "is it the positive class's (label 1) precision, TP/(TP+FP), average='binary', over "
    "every example?",
    "recall": "is it the positive class's (label 1) recall, TP/(TP+FN), average='binary', over every "
    "example?",
}


def check_evaluate(evaluate: Callable) -> CheckResult:
    """``evaluate(model, batches, device)`` -> {"accuracy", "precision", "recall", "f1"} (positive
    class = label 1), with the model in eval mode, no gradients tracked and every batch moved to
    ``device`` (a GPU when there is one; on the CPU, the batches record whether they were moved)."""
    name = "evaluate"
    with seeded(0):
        return run_check(name, lambda: _evaluate(name, evaluate))


def _evaluate(name: str, evaluate: Callable) -> CheckResult:
    # "cpu:0" on a CPU: the same memory, but no tensor reports it, so code that moves a batch only when
    # it is not on `device` yet moves it, as it would on a GPU
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu", 0)
    model = FixedPredictions(EVAL_PREDICTIONS).to(device)
    model.train()  # as a training step leaves it
    got = evaluate(model, _eval_batches(loader=True), device)
    if not isinstance(got, dict):
        return failed(name, f"evaluate returned {returned_not(got, 'a dict')}",
                      'return {"accuracy": ..., "precision": ..., "recall": ..., "f1": ...}')  # fmt: skip
    if missing := [k for k in ("accuracy", "precision", "recall", "f1") if k not in got]:
        return failed(name, f"the result has no {', '.join(map(repr, missing))}",
                      'return a dict with exactly these keys: {"accuracy": ..., "precision": ..., '
                      '"recall": ..., "f1": ...}', "sklearn.metrics.precision_recall_fscore_support("
                      "y_true, y_pred, average='binary') gives precision, recall and F1 at once")  # fmt: skip
    if not model.calls:
        return failed(name, "the model was never called", "logits = model(**batch).logits")
    if any(training for _, training in model.calls):
        return failed(name, "the model ran in training mode: dropout was on, so the scores are noisy",
                      "what mode does the training step leave the model in?", "model.eval() first")  # fmt: skip
    if any(grad for grad, _ in model.calls):
        return failed(name, "gradients were tracked: every forward pass built a graph for backward",
                      "evaluation never calls backward(): what saves the memory of the graph?",
                      "with torch.no_grad(): around the loop (or @torch.no_grad() on the function)")  # fmt: skip
    if model.unmoved:
        return failed(name, "the batches stay where the loader made them (the CPU), while the model "
                      "is on `device` (a GPU in Colab: there this fails): move each batch with "
                      ".to(device) before the forward pass",
                      "batch = {k: v.to(device) for k, v in batch.items()}")  # fmt: skip
    named = {d for d in model.named if torch.device(d) != device}  # moved by name, not to `device`
    if device.type == "cpu" and (written := named & _written_devices(evaluate)):
        return failed(name, f"the batches were moved to {', '.join(map(repr, sorted(written)))}, a "
                      "device written in your code, not to `device`: on a GPU (Colab) the model is on "
                      "`device` and this fails", "move each batch to the `device` evaluate is given",
                      "batch = {k: v.to(device) for k, v in batch.items()}")  # fmt: skip
    right = reference_evaluate(model, _eval_batches(), device)
    mistakes = _eval_mistakes()
    for key in ("accuracy", "f1", "precision", "recall"):  # f1 first: micro F1 = accuracy
        if np.ndim(got[key]) == 1 and len(got[key]) == 2:
            return failed(name, f"{key} has one score per class ({_show(got[key])})",
                          "average=None gives one score per class; use average='binary' for the "
                          "positive class's (label 1)")  # fmt: skip
        try:
            value = float(got[key])
        except (TypeError, ValueError):
            return failed(name, f"{key} is {kind_of(got[key])}, not a number",
                          "return plain numbers (float(...))")  # fmt: skip
        if abs(value - right[key]) < 1e-6:
            continue
        for hint, wrong in mistakes[key].items():
            if abs(value - wrong) < 1e-6:
                return failed(name, f"{key} is {value:.3f}, expected {right[key]:.3f}", hint)
        if key == "accuracy" and abs(value - 100 * right[key]) < 1e-4:
            return failed(name, "accuracy is a percentage", "return a fraction between 0 and 1")
        hints = dict.fromkeys([EVAL_FALLBACKS[key], EVAL_FALLBACKS["accuracy"]])  # once each
        return failed(name, f"{key} is {value:.3f}, expected {right[key]:.3f}", *hints)
    return passed(name, "eval mode, no gradients, every batch moved to the device, accuracy over "
                  "all examples, and the positive class's precision, recall and F1 (as "
                  "scikit-learn's average='binary')")  # fmt: skip


def _written_devices(fn: Callable) -> set[str]:
    """The devices ``fn``'s source writes as a string in a move: ``.to("cpu")``, ``.to(device="cpu")``,
    ``torch.as_tensor(x, device="cpu")``; not one it computes (``device.type``, ``"cuda" if … else
    "cpu"``), which is right on a GPU too. Empty when the source cannot be read."""
    if (tree := source_tree(fn)) is None:
        return set()
    written = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            moving = node.func.attr == "to" and node.args[:1] or []
            given = [k.value for k in node.keywords if k.arg == "device"]
            for arg in [*moving, *given]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    written.add(arg.value)
    return written


def _show(scores) -> str:
    try:
        return ", ".join(f"{float(v):.3f}" for v in scores)
    except (TypeError, ValueError):
        return str(scores)


# --- using the student's functions further down ------------------------------------------------


def yours_if_passed(result: CheckResult, yours: Callable, ours: Callable, what: str) -> Callable:
    """``yours`` once its checker passed, else ``ours``, saying which is used."""
    if result.passed:
        print(f"{what}: yours")
        return yours
    state = (f"is {result.verdict}" if result.not_implemented
             else f"does not pass its check yet: {result.verdict}")  # fmt: skip
    print(f"{what}: helpers' version (yours {state}; it takes over once its check passes)")
    return ours


reference_collate = collate_rows
