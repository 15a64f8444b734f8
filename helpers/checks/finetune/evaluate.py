"""Notebook 04, exercise 3: the evaluation pass with accuracy, precision, recall and F1, on a model
whose predictions are fixed."""

import ast
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
from transformers.modeling_outputs import SequenceClassifierOutput

from helpers.checks.code import source_tree
from helpers.checks.finetune.train_step import LoaderTensor, TinyClassifier, _plain
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, kind_of, passed, returned_not, run_check
from helpers.finetune import experiments

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
