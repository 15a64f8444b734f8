"""Notebook 04's exercises: the collate function, the training step and evaluate. Right answers
written several ways pass; each named mistake gets its own hint."""

import importlib.util
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
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


def collate_batch_and_labels(rows, tokenizer, task, labels, max_length):
    batch = _with()(rows, tokenizer, task, labels, max_length)
    return batch, batch.pop("labels")  # (inputs, labels) as in notebook 03


def collate_inverted_mask(rows, tokenizer, task, labels, max_length):
    batch = _with()(rows, tokenizer, task, labels, max_length)
    return batch | {"attention_mask": 1 - batch["attention_mask"]}


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (_with(padding="max_length"), "padded to max_length"),
        (_with(padding=None), "pad them"),
        pytest.param(  # the mistake itself makes transformers warn that max_length is ignored
            _with(truncation=False),
            "nothing is truncated",
            marks=pytest.mark.filterwarnings("ignore:`max_length` is ignored:UserWarning"),
        ),
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
        (collate_batch_and_labels, "collate returned a tuple, not a dict"),
    ],
)
def test_collate_checker_names_each_mistake(fn, hint, tokenizer):
    result = checks.check_collate(fn, tokenizer)
    assert not result.passed and hint in hints(result), str(result)


def test_a_cell_that_made_warnings_errors_still_gets_the_verdict(tokenizer):
    """Under warnings.simplefilter("error") (or PYTHONWARNINGS=error) transformers' "`max_length` is
    ignored" was raised inside the student's collate: "your code raised UserWarning" instead of
    "nothing is truncated". The warning is shown instead, and the student's filters come back."""
    with pytest.warns(UserWarning, match="`max_length` is ignored"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.filterwarnings("ignore", "student's own", FutureWarning)  # kept, in its place
            filters = list(warnings.filters)
            result = checks.check_collate(_with(truncation=False), tokenizer)
            assert warnings.filters == filters
    assert not result.passed and "nothing is truncated" in hints(result), str(result)


def test_warnings_shown_keeps_every_other_filter_in_its_order():
    from helpers.feedback import _pattern, warnings_shown

    def plain(filters):  # patterns as text: Python keeps some compiled and some not
        return [(action, _pattern(m), c, _pattern(mod), n) for action, m, c, mod, n in filters]

    with pytest.warns(UserWarning, match="loud"), warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", "quiet", UserWarning, "some.module", 7)
        outside = plain(warnings.filters)
        with warnings_shown():
            inside = plain(warnings.filters)
            warnings.warn("loud", UserWarning, stacklevel=1)  # shown (recorded), not raised
        assert plain(warnings.filters) == outside
    assert [f[1:] for f in inside] == [f[1:] for f in outside]
    assert [f[0] for f in inside] == ["default" if f[0] == "error" else f[0] for f in outside]


def test_warnings_shown_keeps_a_filter_a_check_adds_when_nothing_was_an_error():
    """Every check ran inside catch_warnings, so a filter a library set while a check ran (imported
    for the first time inside it) was dropped after (a diff review of stop 56)."""
    from helpers.feedback import warnings_shown

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        with warnings_shown():
            warnings.filterwarnings("ignore", "a noisy library's message")
        assert warnings.filters[0][0] == "ignore"  # still there


def test_collate_with_equal_shapes_says_the_ids_differ_not_the_shape(tokenizer):
    result = checks.check_collate(_with(truncation=True), tokenizer)
    assert not result.passed
    assert "input_ids differ from the expected ones (same shape (2, 24))" in result.verdict
    assert "expected (2, 24)" not in result.verdict, str(result)


def test_collate_only_second_on_single_sentences_is_named(tokenizer):
    result = checks.check_collate(_with(truncation="only_second"), tokenizer)
    assert not result.passed
    assert (
        "with one text there is no second text to cut: use truncation=True when task.pair is None"
        in hints(result)
    ), str(result)


def test_a_collate_stub_is_not_implemented(tokenizer):
    def stub(*args):
        raise NotImplementedError("which padding?")

    result = checks.check_collate(stub, tokenizer)
    assert result.not_implemented and result.hints[0] == "which padding?"


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
    return loss.detach().item()


def step_loss_by_key(model, batch, optimizer, scheduler, clip=1.0):
    """Hugging Face outputs are dicts and tuples too: out["loss"]."""
    model.train()
    optimizer.zero_grad()
    loss = model(**batch)["loss"]
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip)
    optimizer.step()
    scheduler.step()
    return loss.item()


def step_loss_by_index(model, batch, optimizer, scheduler, clip=1.0):
    """out[0] is the loss when the batch has labels."""
    model.train()
    optimizer.zero_grad()
    out = model(**batch)
    loss = out[0]
    assert loss.dim() == 0 and out[1].shape == (len(batch["labels"]), 2)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    return loss.item()


def step_own_cross_entropy(model, batch, optimizer, scheduler, clip=1.0):
    """Without labels the model gives no loss (out[0] is then the logits, as in Hugging Face)."""
    model.train()
    optimizer.zero_grad()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    out = model(**inputs)
    assert out.loss is None and out[0] is out.logits
    loss = nn.functional.cross_entropy(out[0], batch["labels"])
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    return float(loss)


@pytest.mark.parametrize(
    "fn",
    [
        step_right,
        step_zero_at_the_end,
        step_model_zero_grad,
        step_loss_by_key,
        step_loss_by_index,
        step_own_cross_entropy,
    ],
)
def test_train_step_checker_accepts_right_answers(fn):
    result = checks.check_train_step(fn)
    assert result.passed, str(result)


def test_the_reference_step_passes():
    assert checks.check_train_step(checks.reference_train_step).passed


def _step(order, train=True, returns="item", clip_at=None, clip_by="norm"):
    def step(model, batch, optimizer, scheduler, clip=1.0):
        clip = clip if clip_at is None else clip_at
        if train:
            model.train()
        loss = None
        for action in order:
            if action == "zero":
                optimizer.zero_grad()
            elif action == "backward":
                loss = model(**batch).loss
                loss.backward()
            elif action == "clip" and clip_by == "norm":
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            elif action == "clip":
                nn.utils.clip_grad_value_(model.parameters(), clip)
            elif action == "step":
                optimizer.step()
            elif action == "schedule":
                scheduler.step()
            elif action == "clear":
                optimizer.zero_grad(set_to_none=True)
        return {"item": loss.item(), "tensor": loss, "none": None, "zero": 0.0}[returns]

    return step


RIGHT = ("zero", "backward", "clip", "step", "schedule")


def _own_loss(softmax: bool):
    """A step that computes the loss itself from the logits (``softmax``: from probabilities)."""

    def step(model, batch, optimizer, scheduler, clip=1.0):
        model.train()
        optimizer.zero_grad()
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits
        loss = F.cross_entropy(logits.softmax(-1) if softmax else logits, batch["labels"])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        return loss.item()

    return step


def test_train_step_checker_accepts_a_loss_computed_from_the_logits():
    assert checks.check_train_step(_own_loss(softmax=False)).passed


def test_train_step_checker_names_a_softmax_before_cross_entropy():
    result = checks.check_train_step(_own_loss(softmax=True))
    assert not result.passed and "cross_entropy was given probabilities" in hints(result), str(
        result
    )


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (_step(RIGHT, train=False), "model.train()"),
        (_step(("backward", "clip", "step", "schedule")), "never cleared"),
        (_step(("zero", "backward", "step", "clip", "schedule")), "clipped after the update"),
        (_step(("zero", "backward", "step", "schedule", "clip")), "clipped after the update"),
        (
            _step(("zero", "backward", "step", "schedule")),
            "never clipped to the `clip` you were given",
        ),
        (
            _step(("zero", "clip", "backward", "step", "schedule")),
            "clipping before loss.backward()",
        ),
        (
            _step(("backward", "step", "clip", "schedule", "clear")),
            "not before backward() or after step()",
        ),
        (_step(RIGHT, clip_at=1.0), "clipped at 1.0, not at the `clip` you were given"),
        (_step(RIGHT, clip_by="value"), "clip_grad_value_ cuts each gradient entry"),
        (_step(("zero", "backward", "clip", "step")), "schedule never moved"),
        (
            _step(("zero", "backward", "clip", "schedule", "step")),
            "scheduler stepped before the optimizer",
        ),
        (_step(("zero", "backward", "clip", "step", "schedule", "schedule")), "ran 4 times"),
        (_step(("backward", "zero", "clip", "step", "schedule")), "did not move"),
        (_step(("zero", "backward", "clip", "schedule")), "did not move"),
        (_step(RIGHT, returns="none"), "return loss.item()"),
        (_step(RIGHT, returns="tensor"), "returned a tensor, not the loss as a Python float"),
        (_step(RIGHT, returns="zero"), "not the batch's loss"),
        (_step(("backward", "step", "schedule")), "which of zero_grad, backward, clip, step"),
        (lambda model, batch, optimizer, scheduler, clip=1.0: 0.0, "the model was never called"),
    ],
)
def test_train_step_checker_names_each_mistake(fn, hint):
    result = checks.check_train_step(fn)
    assert not result.passed and hint in hints(result), str(result)


def test_no_clipping_and_clipping_after_the_step_get_different_hints():
    never = checks.check_train_step(_step(("zero", "backward", "step", "schedule")))
    after = checks.check_train_step(_step(("zero", "backward", "step", "clip", "schedule")))
    assert not never.passed and not after.passed
    assert "clipped after the update" not in hints(never), str(never)
    assert "never clipped" not in hints(after), str(after)


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
    """Labels stay on the CPU (only the model's inputs need to move); out["logits"]."""
    model.train(False)
    logits, labels = [], []
    for batch in batches:
        labels.append(batch.pop("labels"))
        logits.append(model(**{k: t.to(device) for k, t in batch.items()})["logits"].cpu())
    y = torch.cat(labels).numpy()
    p = torch.cat(logits).argmax(1).numpy()
    return {"accuracy": float((p == y).mean()), "precision": precision_score(y, p),
            "recall": recall_score(y, p), "f1": f1_score(y, p, pos_label=1)}  # fmt: skip


def _scores(true, predicted):
    p, r, f1, _ = precision_recall_fscore_support(
        true, predicted, average="binary", zero_division=0
    )
    return {"accuracy": accuracy_score(true, predicted), "precision": p, "recall": r, "f1": f1}


@torch.no_grad()
def evaluate_each_tensor_moved(model, batches, device):
    """Moves input_ids, attention_mask and labels one by one; out[1] is the logits given labels."""
    model.eval()
    true, predicted = [], []
    for batch in batches:
        input_ids = batch["input_ids"].to(device)
        attention_mask = batch["attention_mask"].to(device, non_blocking=True)
        labels = batch["labels"].to(device=device)
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        predicted += out[1].argmax(-1).tolist()
        true += labels.tolist()
    return _scores(true, predicted)


@torch.no_grad()
def evaluate_helpers_to_device(model, batches, device):
    from helpers.training.loop import to_device

    model.eval()
    true, predicted = [], []
    for batch in batches:
        batch = to_device(batch, device)
        predicted += model(**batch).logits.argmax(-1).tolist()
        true += batch["labels"].tolist()
    return _scores(true, predicted)


@torch.no_grad()
def evaluate_inputs_only_to_model_device(model, batches, device):
    """out[0] is the logits when no labels are given; batch.to(model.device) as for a HF model."""
    model.eval()
    true, predicted = [], []
    for batch in batches:
        out = model(**{k: t.to(model.device) for k, t in batch.items() if k != "labels"})
        predicted += out[0].argmax(-1).tolist()
        true += batch["labels"].tolist()
    return _scores(true, predicted)


@torch.no_grad()
def evaluate_moves_only_what_is_elsewhere(model, batches, device):
    """Moves a tensor only when it is not on `device` yet (right on every machine)."""
    model.eval()
    true, predicted = [], []
    for batch in batches:
        batch = {
            k: v if v.device == torch.device(device) else v.to(device) for k, v in batch.items()
        }
        predicted += model(**batch).logits.argmax(-1).tolist()
        true += batch["labels"].tolist()
    return _scores(true, predicted)


@torch.no_grad()
def evaluate_as_tensor_on_device(model, batches, device):
    model.eval()
    true, predicted = [], []
    for batch in batches:
        batch = {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
        predicted += model(**batch).logits.argmax(-1).tolist()
        true += batch["labels"].tolist()
    return _scores(true, predicted)


def _evaluate_moving(move):
    """A right evaluate but for how it moves each batch tensor: ``move(tensor, model, device)``."""

    @torch.no_grad()
    def evaluate(model, batches, device):
        model.eval()
        true, predicted = [], []
        for batch in batches:
            batch = {k: move(v, model, device) for k, v in batch.items()}
            predicted += model(**batch).logits.argmax(-1).tolist()
            true += batch["labels"].tolist()
        return _scores(true, predicted)

    return evaluate


@pytest.mark.parametrize(
    "fn",
    [
        evaluate_right,
        _evaluate_moving(lambda v, model, device: v.to(next(model.parameters()).device)),
        _evaluate_moving(lambda v, model, device: v.to(str(device))),
        evaluate_separate_scores,
        evaluate_moves_only_what_is_elsewhere,
        evaluate_as_tensor_on_device,
        evaluate_each_tensor_moved,
        evaluate_helpers_to_device,
        evaluate_inputs_only_to_model_device,
        checks.reference_evaluate,
    ],
)
def test_evaluate_checker_accepts_right_answers(fn):
    result = checks.check_evaluate(fn)
    assert result.passed, str(result)


@torch.no_grad()
def evaluate_accuracy_per_example(model, batches, device):
    model.eval()
    true, predicted = [], []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        predicted += model(**batch).logits.argmax(-1).tolist()
        true += batch["labels"].tolist()
    hits = (torch.tensor(predicted) == torch.tensor(true)).float()  # no .mean()
    return _scores(true, predicted) | {"accuracy": hits}


def _evaluate(eval_mode=True, no_grad=True, average="binary", pos_label=1, swap=False, per_batch=False,
              percent=False, move=True, f1=None, recall=None):  # fmt: skip
    def evaluate(model, batches, device):
        if eval_mode:
            model.eval()
        true, predicted, batch_accuracies = [], [], []
        with torch.set_grad_enabled(not no_grad):
            for batch in batches:
                if move:
                    batch = {k: v.to(device) for k, v in batch.items()}
                got = model(**batch).logits.argmax(-1).tolist()
                batch_accuracies.append(
                    sum(a == b for a, b in zip(got, batch["labels"].tolist())) / len(got)
                )
                predicted += got
                true += batch["labels"].tolist()
        a, b = (predicted, true) if swap else (true, predicted)
        p, r, f1_value, _ = precision_recall_fscore_support(
            a, b, average=average, pos_label=pos_label, zero_division=0
        )
        accuracy = (
            sum(batch_accuracies) / len(batch_accuracies)
            if per_batch
            else accuracy_score(true, predicted)
        )
        return {
            "accuracy": accuracy * (100 if percent else 1),
            "precision": p,
            "recall": r if recall is None else recall(true, predicted),
            "f1": f1_value if f1 is None else f1(p, r),
        }

    return evaluate


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (_evaluate(eval_mode=False), "model.eval()"),
        (_evaluate(no_grad=False), "torch.no_grad()"),
        (_evaluate(average="macro"), "average='macro'"),
        (_evaluate(average="macro"), "this exercise asks for the positive class's (label 1) F1"),
        (_evaluate(average="weighted"), "average='weighted'"),
        (_evaluate(average=None), "average=None gives one score per class"),
        (_evaluate(f1=lambda p, r: (p + r) / 2), "2PR/(P+R), not their average (P+R)/2"),
        (
            _evaluate(f1=lambda p, r: 0.5),
            "is it the positive class's F1, 2PR/(P+R), average='binary'?",
        ),
        (_evaluate(move=False), "the batches stay where the loader made them (the CPU)"),
        (_evaluate(move=False), "before the forward pass"),
        (_evaluate(average="micro"), "average='micro'"),
        (_evaluate(pos_label=0), "negative class"),
        (_evaluate(swap=True), "precision and recall are swapped"),
        (_evaluate(per_batch=True), "the last batch is smaller"),
        # each recall a student may return in its place (all equal to the right one on older data)
        (_evaluate(recall=lambda t, p: recall_score(t, p, average="macro")), "average='macro'"),
        (_evaluate(recall=lambda t, p: recall_score(t, p, average="micro")), "equals the accuracy"),
        (
            _evaluate(recall=lambda t, p: recall_score(t, p, average="weighted")),
            "equals the accuracy",
        ),
        (_evaluate(recall=lambda t, p: recall_score(t, p, pos_label=0)), "negative class"),
        (_evaluate(recall=accuracy_score), "equals the accuracy"),
        (_evaluate(percent=True), "a fraction between 0 and 1"),
        (lambda model, batches, device: [0.5], "not a dict"),
        (lambda model, batches, device: {"accuracy": 0.5}, "'precision', 'recall', 'f1'"),
        (
            lambda model, batches, device: dict.fromkeys(
                ["accuracy", "precision", "recall", "f1"], 0.0
            ),
            "the model was never called",
        ),
        (evaluate_accuracy_per_example, "accuracy is a Tensor, not a number"),
    ],
)
def test_evaluate_checker_names_each_mistake(fn, hint):
    result = checks.check_evaluate(fn)
    assert not result.passed and hint in " ".join([result.verdict, *result.hints]), str(result)


def evaluate_moves_the_inputs_but_not_the_mask(model, batches, device):
    model.eval()
    true, predicted = [], []
    with torch.no_grad():
        for batch in batches:
            out = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"]
            )
            predicted += out.logits.argmax(-1).tolist()
            true += batch["labels"].tolist()
    return _scores(true, predicted)


def evaluate_changes_only_the_dtype(model, batches, device):
    model.eval()
    true, predicted = [], []
    with torch.no_grad():
        for batch in batches:
            batch = {k: v.to(torch.long) for k, v in batch.items()}
            predicted += model(**batch).logits.argmax(-1).tolist()
            true += batch["labels"].tolist()
    return _scores(true, predicted)


@pytest.mark.parametrize(
    "fn", [evaluate_moves_the_inputs_but_not_the_mask, evaluate_changes_only_the_dtype]
)
def test_evaluate_checker_catches_batches_left_on_the_cpu(fn):
    result = checks.check_evaluate(fn)
    assert not result.passed and "move each batch with .to(device)" in hints(result), str(result)


STUDENT_EVALUATE = """
import torch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


@torch.no_grad()
def evaluate(model, batches, device):
    model.eval()
    true, predicted = [], []
    for batch in batches:
        batch = {{k: {move} for k, v in batch.items()}}
        predicted += model(**batch).logits.argmax(-1).tolist()
        true += batch["labels"].tolist()
    p, r, f1, _ = precision_recall_fscore_support(true, predicted, average="binary", zero_division=0)
    return {{"accuracy": accuracy_score(true, predicted), "precision": p, "recall": r, "f1": f1}}
"""


def _student_evaluate(tmp_path, move: str):
    """An evaluate that moves each batch tensor with ``move``, defined in a file of its own (as in a
    notebook cell, its source can be read)."""
    path = tmp_path / "student_evaluate.py"
    path.write_text(STUDENT_EVALUATE.format(move=move))
    spec = importlib.util.spec_from_file_location("student_evaluate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate


@pytest.mark.parametrize(
    "move", ['v.to("cpu")', 'v.to(device="cpu")', "v.to('cpu', non_blocking=True)"]
)
def test_evaluate_checker_catches_a_device_written_in_the_code(move, tmp_path):
    """On a GPU the batches end up on the CPU and the model on cuda (caught as batches left behind);
    on a CPU the move itself is seen: the device was written in the code, not taken from `device`."""
    result = checks.check_evaluate(_student_evaluate(tmp_path, move))
    assert not result.passed and "{k: v.to(device) for k, v in batch.items()}" in hints(result)
    if not torch.cuda.is_available():
        assert "moved to 'cpu', a device written in your code" in result.verdict, str(result)


@pytest.mark.parametrize(
    "move",
    [
        "v.to(device)",
        "v.to(device.type)",  # "cpu" on a CPU, "cuda" on a GPU: right on both
        'v.to("cuda" if torch.cuda.is_available() else "cpu")',
        "v.to(device, non_blocking=True)",
    ],
)
def test_evaluate_checker_accepts_a_device_computed_in_the_code(move, tmp_path):
    result = checks.check_evaluate(_student_evaluate(tmp_path, move))
    assert result.passed, str(result)


def test_evaluate_checker_judges_code_without_source_by_its_numbers(tmp_path):
    """Typed at a plain Python prompt, a function has no source to read: a device written in it
    cannot be seen, so on a CPU the move to "cpu" is not blamed (on a GPU the batches left on the
    CPU are) and the check neither crashes nor guesses."""
    namespace = {}
    exec(compile(STUDENT_EVALUATE.format(move='v.to("cpu")'), "<stdin>", "exec"), namespace)
    result = checks.check_evaluate(namespace["evaluate"])
    if torch.cuda.is_available():
        assert not result.passed and "move each batch with .to(device)" in hints(result)
    else:
        assert result.passed, str(result)


def test_evaluate_checker_catches_as_tensor_to_a_named_device():
    move = lambda v, model, device: torch.as_tensor(v, device="cpu")  # noqa: E731
    result = checks.check_evaluate(_evaluate_moving(move))
    assert not result.passed and "{k: v.to(device) for k, v in batch.items()}" in hints(result)


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
    wrong = checks.check_evaluate(evaluate_accuracy_per_example)
    chosen = checks.yours_if_passed(
        wrong, evaluate_accuracy_per_example, checks.reference_evaluate, "evaluate"
    )
    assert chosen is checks.reference_evaluate
    said = capsys.readouterr().out  # it read "yours is the weights after ... differ"
    assert said.startswith(
        f"evaluate: helpers' version (yours does not pass its check yet: {wrong.verdict}"
    )
