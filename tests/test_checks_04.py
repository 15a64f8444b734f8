"""Notebook 04's exercises: the collate function, the training step and evaluate. Right answers
written several ways pass; each named mistake gets its own hint."""

import pytest
import torch
import torch.nn as nn
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)

from helpers.checks import finetune as checks
from helpers.finetune.models import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def hints(result) -> str:
    return " ".join([result.verdict, *result.hints])


# --- collate -----------------------------------------------------------------------------------


def collate_right(rows, tokenizer, task, labels, max_length):
    texts = [r[task.text] for r in rows]
    pairs = [r[task.pair] for r in rows] if task.pair else None
    batch = tokenizer(texts, pairs, padding=True, truncation="only_second" if pairs else True,
                      max_length=max_length, return_tensors="pt")  # fmt: skip
    batch["labels"] = torch.tensor([labels[r[task.label]] for r in rows])
    return batch


def collate_longest_dict(rows, tokenizer, task, labels, max_length):
    if task.pair:
        encoded = tokenizer(
            [r[task.text] for r in rows],
            text_pair=[r[task.pair] for r in rows],
            padding="longest",
            truncation="only_second",
            max_length=max_length,
            return_tensors="pt",
        )
    else:
        encoded = tokenizer([r[task.text] for r in rows], padding="longest", truncation=True,
                            max_length=max_length, return_tensors="pt")  # fmt: skip
    return {
        **encoded,
        "labels": torch.tensor([labels[r[task.label]] for r in rows], dtype=torch.long),
    }


def collate_pad_by_hand(rows, tokenizer, task, labels, max_length):
    """Tokenise one row at a time, then pad with tokenizer.pad: the same batch."""
    one = [
        tokenizer(
            r[task.text],
            r[task.pair] if task.pair else None,
            max_length=max_length,
            truncation="only_second" if task.pair else True,
        )  # fmt: skip
        for r in rows
    ]
    batch = tokenizer.pad(one, return_tensors="pt")
    return {**batch, "labels": torch.tensor([labels[r[task.label]] for r in rows])}


@pytest.mark.parametrize("fn", [collate_right, collate_longest_dict, collate_pad_by_hand])
def test_collate_checker_accepts_right_answers(fn, tokenizer):
    result = checks.check_collate(fn, tokenizer)
    assert result.passed, str(result)


def test_the_reference_collate_passes(tokenizer):
    assert checks.check_collate(checks.reference_collate, tokenizer).passed


def _with(**options):
    def collate(rows, tokenizer, task, labels, max_length):
        texts = [r[task.text] for r in rows]
        pairs = [r[task.pair] for r in rows] if task.pair else None
        kw = {"padding": True, "truncation": "only_second" if pairs else True,
              "max_length": max_length, "return_tensors": "pt"} | options  # fmt: skip
        kw = {k: v for k, v in kw.items() if v is not None}
        batch = dict(tokenizer(texts, pairs, **kw))
        batch["labels"] = torch.tensor([labels[r[task.label]] for r in rows])
        return batch

    return collate


def collate_joined(rows, tokenizer, task, labels, max_length):
    texts = [r[task.text] + (" " + r[task.pair] if task.pair else "") for r in rows]
    batch = dict(
        tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    )
    return batch | {"labels": torch.tensor([labels[r[task.label]] for r in rows])}


def collate_raw_labels(rows, tokenizer, task, labels, max_length):
    batch = _with()(rows, tokenizer, task, labels, max_length)
    return batch | {"labels": torch.tensor([r[task.label] for r in rows])}


def collate_no_labels(rows, tokenizer, task, labels, max_length):
    batch = _with()(rows, tokenizer, task, labels, max_length)
    del batch["labels"]
    return batch


def collate_no_mask(rows, tokenizer, task, labels, max_length):
    batch = _with()(rows, tokenizer, task, labels, max_length)
    del batch["attention_mask"]
    return batch


def collate_float_labels(rows, tokenizer, task, labels, max_length):
    batch = _with()(rows, tokenizer, task, labels, max_length)
    return batch | {"labels": batch["labels"].float()}


def collate_passage_first(rows, tokenizer, task, labels, max_length):
    if not task.pair:
        return _with()(rows, tokenizer, task, labels, max_length)
    swapped = [{**r, task.text: r[task.pair], task.pair: r[task.text]} for r in rows]
    return _with(truncation="only_first")(swapped, tokenizer, task, labels, max_length)


def collate_inverted_mask(rows, tokenizer, task, labels, max_length):
    batch = _with()(rows, tokenizer, task, labels, max_length)
    return batch | {"attention_mask": 1 - batch["attention_mask"]}


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (_with(padding="max_length"), "padded to max_length"),
        (_with(padding=None), "pad them"),
        (_with(truncation=False), "nothing is truncated"),
        (_with(truncation=True), "question was cut as well"),
        (_with(truncation="only_first"), "cut only the passage"),
        (collate_joined, "joined into one text"),
        (collate_passage_first, "the passage comes first"),
        (collate_raw_labels, "map each raw label"),
        (collate_float_labels, "torch.long"),
        (collate_no_labels, "no 'labels'"),
        (collate_no_mask, "no 'attention_mask'"),
        (collate_inverted_mask, "1 on real tokens and 0 on padding"),
        (_with(return_tensors=None), "return_tensors='pt'"),
    ],
)
def test_collate_checker_names_each_mistake(fn, hint, tokenizer):
    result = checks.check_collate(fn, tokenizer)
    assert not result.passed and hint in hints(result), str(result)


def test_a_collate_stub_is_not_implemented(tokenizer):
    def stub(*args):
        raise NotImplementedError("which padding?")

    result = checks.check_collate(stub, tokenizer)
    assert result.not_implemented and result.hints == ["which padding?"]


# --- the training step -------------------------------------------------------------------------


def step_right(model, batch, optimizer, scheduler, clip=1.0):
    model.train()
    optimizer.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    return loss.item()


def step_zero_at_the_end(model, batch, optimizer, scheduler, clip=1.0):
    """As helpers.training.run_epoch does it: clear after the update, ready for the next batch."""
    model.train()
    output = model(**batch)
    output.loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(output.loss)


def step_model_zero_grad(model, batch, optimizer, scheduler, clip=1.0):
    model.train(True)
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    return loss.detach()  # a 0-d tensor converts to the float


@pytest.mark.parametrize("fn", [step_right, step_zero_at_the_end, step_model_zero_grad])
def test_train_step_checker_accepts_right_answers(fn):
    result = checks.check_train_step(fn)
    assert result.passed, str(result)


def test_the_reference_step_passes():
    assert checks.check_train_step(checks.reference_train_step).passed


def _step(order, train=True, returns="item"):
    def step(model, batch, optimizer, scheduler, clip=1.0):
        if train:
            model.train()
        loss = None
        for action in order:
            if action == "zero":
                optimizer.zero_grad()
            elif action == "backward":
                loss = model(**batch).loss
                loss.backward()
            elif action == "clip":
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            elif action == "step":
                optimizer.step()
            elif action == "schedule":
                scheduler.step()
        return {"item": loss.item(), "tensor": loss, "none": None, "zero": 0.0}[returns]

    return step


RIGHT = ("zero", "backward", "clip", "step", "schedule")


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (_step(RIGHT, train=False), "model.train()"),
        (_step(("backward", "clip", "step", "schedule")), "never cleared"),
        (_step(("zero", "backward", "step", "clip", "schedule")), "clipped after the update"),
        (_step(("zero", "backward", "step", "schedule")), "not clipped"),
        (_step(("zero", "backward", "clip", "step")), "schedule never moved"),
        (
            _step(("zero", "backward", "clip", "schedule", "step")),
            "scheduler stepped before the optimizer",
        ),
        (_step(("zero", "backward", "clip", "step", "schedule", "schedule")), "ran 4 times"),
        (_step(("backward", "zero", "clip", "step", "schedule")), "did not move"),
        (_step(("zero", "backward", "clip", "schedule")), "did not move"),
        (_step(RIGHT, returns="none"), "return loss.item()"),
        (_step(RIGHT, returns="zero"), "not the batch's loss"),
    ],
)
def test_train_step_checker_names_each_mistake(fn, hint):
    result = checks.check_train_step(fn)
    assert not result.passed and hint in hints(result), str(result)


def test_train_step_hints_escalate():
    wrong = _step(("zero", "backward", "step", "clip", "schedule", "zero"), train=True)
    first = checks.check_train_step(_step(("backward",), train=True))
    assert not first.passed and first.shown == 1
    assert not checks.check_train_step(wrong).passed


# --- evaluate ----------------------------------------------------------------------------------


def evaluate_right(model, batches, device):
    model.eval()
    true, predicted = [], []
    with torch.no_grad():
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            predicted += model(**batch).logits.argmax(dim=-1).tolist()
            true += batch["labels"].tolist()
    p, r, f1, _ = precision_recall_fscore_support(true, predicted, average="binary")
    return {"accuracy": accuracy_score(true, predicted), "precision": p, "recall": r, "f1": f1}


@torch.inference_mode()
def evaluate_separate_scores(model, batches, device):
    model.train(False)
    logits, labels = [], []
    for batch in batches:
        labels.append(batch.pop("labels"))
        logits.append(model(**batch).logits)
    y = torch.cat(labels).numpy()
    p = torch.cat(logits).argmax(1).numpy()
    return {"accuracy": float((p == y).mean()), "precision": precision_score(y, p),
            "recall": recall_score(y, p), "f1": f1_score(y, p, pos_label=1)}  # fmt: skip


@pytest.mark.parametrize(
    "fn", [evaluate_right, evaluate_separate_scores, checks.reference_evaluate]
)
def test_evaluate_checker_accepts_right_answers(fn):
    result = checks.check_evaluate(fn)
    assert result.passed, str(result)


def _evaluate(eval_mode=True, no_grad=True, average="binary", pos_label=1, swap=False, per_batch=False,
              percent=False):  # fmt: skip
    def evaluate(model, batches, device):
        if eval_mode:
            model.eval()
        true, predicted, batch_accuracies = [], [], []
        with torch.set_grad_enabled(not no_grad):
            for batch in batches:
                got = model(**batch).logits.argmax(-1).tolist()
                batch_accuracies.append(
                    sum(a == b for a, b in zip(got, batch["labels"].tolist())) / len(got)
                )
                predicted += got
                true += batch["labels"].tolist()
        a, b = (predicted, true) if swap else (true, predicted)
        p, r, f1, _ = precision_recall_fscore_support(a, b, average=average, pos_label=pos_label)
        accuracy = (
            sum(batch_accuracies) / len(batch_accuracies)
            if per_batch
            else accuracy_score(true, predicted)
        )
        return {
            "accuracy": accuracy * (100 if percent else 1),
            "precision": p,
            "recall": r,
            "f1": f1,
        }

    return evaluate


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (_evaluate(eval_mode=False), "model.eval()"),
        (_evaluate(no_grad=False), "torch.no_grad()"),
        (_evaluate(average="macro"), "average='macro'"),
        (_evaluate(average="micro"), "average='micro'"),
        (_evaluate(pos_label=0), "negative class"),
        (_evaluate(swap=True), "precision and recall are swapped"),
        (_evaluate(per_batch=True), "the last batch is smaller"),
        (_evaluate(percent=True), "a fraction between 0 and 1"),
        (lambda model, batches, device: [0.5], "not a dict"),
        (lambda model, batches, device: {"accuracy": 0.5}, "'precision', 'recall', 'f1'"),
    ],
)
def test_evaluate_checker_names_each_mistake(fn, hint):
    result = checks.check_evaluate(fn)
    assert not result.passed and hint in " ".join([result.verdict, *result.hints]), str(result)


def test_evaluate_hints_escalate():
    wrong = _evaluate(eval_mode=False)
    first, second = checks.check_evaluate(wrong), checks.check_evaluate(wrong)
    assert (first.shown, second.shown) == (1, 2)
    assert "model.eval()" in str(second) and "model.eval()" not in str(first)


# --- using the student's version ---------------------------------------------------------------


def test_yours_if_passed_says_which_one_is_used(capsys):
    passed = checks.check_evaluate(evaluate_right)
    assert (
        checks.yours_if_passed(passed, evaluate_right, checks.reference_evaluate, "evaluate")
        is evaluate_right
    )

    def stub(*args):
        raise NotImplementedError("which mode?")

    stubbed = checks.check_evaluate(stub)
    chosen = checks.yours_if_passed(stubbed, stub, checks.reference_evaluate, "evaluate")
    assert chosen is checks.reference_evaluate
    assert "helpers' version (yours is not implemented yet" in capsys.readouterr().out
