"""Notebook 03's checkers: right answers written several ways pass, and each named mistake is named."""

import functools

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.checks.pipeline import (
    check_collate,
    check_evaluate,
    check_loaders,
    check_masked_mean,
    check_pipeline_on_model,
    check_train_step,
    checked_modules,
)
from helpers.classifier import masked_mean
from helpers.text import pad_batch


def said(result) -> str:
    return " ".join([result.verdict, *result.hints])


# --- (a) collate -----------------------------------------------------------------------------------


def collate_loop(examples, max_len):
    docs, labels = zip(*examples)
    T = min(max_len, max(len(d) for d in docs))
    ids = torch.zeros(len(docs), T, dtype=torch.long)
    mask = torch.zeros(len(docs), T, dtype=torch.bool)
    for i, doc in enumerate(docs):
        n = min(len(doc), T)
        ids[i, :n] = torch.as_tensor(doc[:n])
        mask[i, :n] = True
    return ids, mask, torch.tensor(labels)


def collate_lengths(examples, max_len):
    docs = [torch.as_tensor(d[:max_len]) for d, _ in examples]
    lengths = torch.tensor([len(d) for d in docs])
    ids = torch.nn.utils.rnn.pad_sequence(docs, batch_first=True, padding_value=0)
    mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    return ids, mask, torch.tensor([y for _, y in examples])


def test_a_collate_that_changes_its_documents_is_named_and_the_checker_stays_whole():
    def collate_zeroing(examples, max_len):
        out = collate_loop(examples, max_len)
        for ids, _ in examples:
            ids[:] = 0  # the data set's own arrays
        return out

    result = check_collate(collate_zeroing)
    assert not result.passed and "changed the documents it was given" in result.verdict, result
    assert check_collate(collate_loop).passed  # the checker's own documents are untouched


def collate_helpers(examples, max_len):
    ids, mask = pad_batch([d for d, _ in examples], max_len)
    return ids, mask, torch.tensor([y for _, y in examples], dtype=torch.long)


@pytest.mark.parametrize("fn", [collate_loop, collate_lengths, collate_helpers])
def test_collate_right_answers_pass(fn):
    result = check_collate(fn)
    assert result.passed, result


def _variant(**change):
    def collate(examples, max_len):
        docs, labels = zip(*examples)
        T = max_len if change.get("pad_to_max") else min(max_len, max(len(d) for d in docs))
        if change.get("no_cut"):
            T = max(len(d) for d in docs)
        if change.get("shortest"):
            T = min(max_len, min(len(d) for d in docs))
        ids = torch.full(
            (len(docs), T), change.get("pad", 0), dtype=change.get("dtype", torch.long)
        )
        for i, doc in enumerate(docs):
            kept = doc[-T:] if change.get("keep_end") else doc[:T]
            ids[i, : len(kept)] = torch.as_tensor(kept)
        lengths = torch.tensor([min(len(d), T) for d in docs])
        mask = torch.arange(T)[None, :] < lengths[:, None]
        if change.get("mask_to_max_len"):
            mask = torch.arange(max_len)[None, :] < lengths[:, None]
        if change.get("mask_inclusive"):
            mask = torch.arange(T)[None, :] <= lengths[:, None]
        if change.get("mask_short"):
            mask = torch.arange(T)[None, :] < lengths[:, None] - 1
        if change.get("inverted"):
            mask = ~mask
        if change.get("mask_int"):
            mask = mask.long()
        if change.get("left_pad"):
            ids, mask = ids.flip(1), mask.flip(1)
            ids = torch.stack([torch.cat([r[r == 0], r[r != 0].flip(0)]) for r in ids])
        out = torch.tensor([[y] for y in labels] if change.get("labels_column") else labels)
        out = list(labels) if change.get("labels_list") else out
        if change.get("order"):
            return ids, out, mask
        return ids, mask, out

    return collate


@pytest.mark.parametrize(
    "change, words",
    [
        ({"pad_to_max": True}, "padded to max_len"),
        ({"no_cut": True}, "columns but max_len is 4"),
        ({"pad": 1}, "padding positions hold [1]"),
        ({"keep_end": True}, "kept its last max_len tokens"),
        ({"inverted": True}, "True at the padding"),
        ({"mask_int": True}, "has dtype torch.int64"),
        ({"dtype": torch.float32}, "ids has dtype torch.float32"),
        ({"labels_list": True}, "labels are a list"),
        ({"left_pad": True}, "padding is on the left"),
        ({"order": "ids, labels, mask"}, "look out of order"),
        ({"labels_column": True}, "labels have shape (3, 1)"),
        ({"shortest": True}, "expected (3, 6)"),
        ({"mask_to_max_len": True}, "mask has shape (3, 10), expected (3, 6)"),
        ({"mask_inclusive": True}, "the mask is one position too long"),
        ({"mask_short": True}, "does not mark exactly the real tokens"),
    ],
)
def test_collate_mistakes_are_named(change, words):
    result = check_collate(_variant(**change))
    assert not result.passed and words in said(result), result


def collate_lengths(examples, max_len):
    """Returns each document's length where the mask belongs."""
    ids, mask, labels = collate_loop(examples, max_len)
    return ids, mask.sum(1), labels


def collate_labels_sorted_by_length(examples, max_len):
    """The batch sorted longest first (as pack_padded_sequence wants) for the labels only."""
    ids, mask = pad_batch([d for d, _ in examples], max_len)
    longest_first = sorted(examples, key=lambda example: len(example[0]), reverse=True)
    return ids, mask, torch.tensor([y for _, y in longest_first])


def collate_labels_flipped(examples, max_len):
    """Each label turned into the other class: wrong values, not a wrong order."""
    ids, mask = pad_batch([d for d, _ in examples], max_len)
    return ids, mask, torch.tensor([1 - y for _, y in examples])


def test_collate_labels_that_are_not_the_documents_are_not_called_reordered():
    result = check_collate(collate_labels_flipped)
    assert not result.passed and "not the documents' labels" in result.verdict, result
    assert "not in the documents' order" not in result.verdict, result
    assert "each example's own label" in said(result), result


def test_collate_labels_in_another_order_than_the_documents_are_named():
    result = check_collate(collate_labels_sorted_by_length)
    assert not result.passed and "not in the documents' order" in result.verdict, result
    assert "labels[i] belongs to document i" in said(result), result


def collate_time_first(examples, max_len):
    docs = [torch.as_tensor(d[:max_len]) for d, _ in examples]
    ids = torch.nn.utils.rnn.pad_sequence(docs, padding_value=0)  # no batch_first: (T, B)
    return ids, ids != 0, torch.tensor([y for _, y in examples])


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda examples, max_len: collate_loop(examples, max_len)[:2], "expected (ids, mask, labels)"),
        (lambda examples, max_len: tuple(t.numpy() for t in collate_loop(examples, max_len)),
         "must be tensors"),
        (collate_time_first, "one row per document"),
        (lambda examples, max_len: collate_loop([(d + 1, y) for d, y in examples], max_len),
         "ids are not the documents' ids"),  # every id shifted by 1, "to keep 0 for padding"
        (lambda examples, max_len: collate_lengths(examples, max_len),
         "each document's length, not the mask"),
        (lambda examples, max_len: collate_loop(sorted(examples, key=lambda e: -len(e[0])), max_len),
         "in another order (sorted by length?)"),
    ],
    ids=["no-labels", "numpy", "time-first", "shifted-ids", "lengths", "sorted"],
)  # fmt: skip
def test_collate_returns_that_are_not_a_batch_are_named(fn, words):
    result = check_collate(fn)
    assert not result.passed and words in said(result), result


# --- (b) masked mean -------------------------------------------------------------------------------


def mean_float(x, mask):
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)


def mean_where(x, mask):
    keep = mask.bool()[..., None]
    total = torch.where(keep, x, torch.zeros_like(x)).sum(1)
    return total / keep.sum(1).clamp(min=1)


def mean_einsum(x, mask):
    m = mask.to(x.dtype)
    return torch.einsum("btd,bt->bd", x, m) / m.sum(1, keepdim=True).clamp(min=1)


def mean_in_numpy(x, mask):  # numpy has float16 but no bfloat16: the dtype probe uses float16
    xs = x.numpy()
    m = mask.numpy().astype(xs.dtype)[..., None]
    return torch.from_numpy((xs * m).sum(1) / np.maximum(m.sum(1), 1))


def mean_count_without_keepdim(x, mask):
    m = mask.unsqueeze(-1).to(x.dtype)  # the mask is right; the count below is (B,), not (B, 1)
    return (x * m).sum(1) / mask.sum(1).clamp(min=1)


def mean_in_a_loop(x, mask):
    rows = []
    for b in range(x.shape[0]):
        keep = mask[b].bool()
        rows.append(x[b][keep].mean(0) if keep.any() else x.new_zeros(x.shape[-1]))
    return torch.stack(rows)


@pytest.mark.parametrize("fn", [mean_float, mean_where, mean_einsum, mean_in_numpy, masked_mean])
def test_masked_mean_right_answers_pass(fn):
    result = check_masked_mean(fn)
    assert result.passed, result


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda x, mask: x.mean(1), "averaged over the padding"),
        (lambda x, mask: (x * mask[..., None]).sum(1) / x.shape[1], "padded length T"),
        (lambda x, mask: (x * ~mask[..., None]).sum(1) / (~mask).sum(1, keepdim=True).clamp(min=1),
         "upside down"),
        (lambda x, mask: (x * mask).sum(1) / mask.sum(1), "mask.unsqueeze(-1)"),
        (lambda x, mask: x.masked_fill(~mask[..., None], 0).sum(1) / mask.sum(1, keepdim=True),
         "integer 0/1 mask"),
        (lambda x, mask: (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), "nan"),
        (lambda x, mask: (x * mask[..., None]).sum(1) / x.shape[0], "batch size B"),
        (lambda x, mask: (x * mask[..., None]).sum(1) / mask.sum(), "of the whole batch"),
        (lambda x, mask: (x * mask[..., None].double()).sum(1) / mask.sum(1, keepdim=True), "float64"),
        (mean_count_without_keepdim, "keepdim=True"),
        (lambda x, mask: (x * mask[..., None].float()).sum(1) / mask.sum(1, keepdim=True).clamp(min=1),
         "with a float16 x it comes back as torch.float32"),
        (lambda x, mask: torch.einsum("btd,bt->bd", x, mask.float())
         / mask.sum(1, keepdim=True).clamp(min=1), "with a float16 x it raised"),
        (lambda x, mask: None, "forget `return`"),
        (mean_in_a_loop, "loops over `range(x.shape[0])`"),
        (lambda x, mask: (x * mask[..., None]).sum(1, keepdim=True)
         / mask[..., None].sum(1, keepdim=True).clamp(min=1), "gave (3, 1, 4), expected (3, 4)"),
        (lambda x, mask: (x * mask[..., None]).sum(1) / (mask.sum(1, keepdim=True) + 1),
         "not the mean of each row's real tokens"),  # + 1 against 0 / 0, instead of clamp
    ],
    ids=["over-padding", "padded-length", "inverted", "no-last-axis", "bitwise-not", "empty-row",
         "batch-size", "batch-total", "float64", "count-without-keepdim", "float-mask", "float-einsum", "no-return", "loop",
         "keepdim-sum", "count-plus-one"],
)  # fmt: skip
def test_masked_mean_mistakes_are_named(fn, words):
    result = check_masked_mean(fn)
    assert not result.passed and words in said(result), result
    assert "your code raised" not in result.verdict  # named by the checker, not a traceback


# --- (c) loaders, training step, evaluation --------------------------------------------------------


def loaders(train, valid, batch_size, collate, shuffle_train=True, shuffle_valid=False,
            drop_last_valid=False, **kw):  # fmt: skip
    make = torch.utils.data.DataLoader
    return (make(train, batch_size=batch_size, shuffle=shuffle_train, collate_fn=collate, **kw),
            make(valid, batch_size=batch_size, shuffle=shuffle_valid, collate_fn=collate,
                 drop_last=drop_last_valid))  # fmt: skip


def loaders_with_generator(train, valid, batch_size, collate):
    return loaders(train, valid, batch_size, collate, generator=torch.Generator().manual_seed(0))


def loaders_wrapped_collate_bigger_valid_batches(train, valid, batch_size, collate):
    train_loader = torch.utils.data.DataLoader(
        train, batch_size, shuffle=True, collate_fn=lambda b: collate(b), drop_last=True
    )
    sampler = torch.utils.data.SequentialSampler(valid)
    valid_loader = torch.utils.data.DataLoader(
        valid, 2 * batch_size, sampler=sampler, collate_fn=functools.partial(collate)
    )
    return [train_loader, valid_loader]


def loaders_batch_sampler(train, valid, batch_size, collate):
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(train), batch_size, False
    )
    return (torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=collate),
            torch.utils.data.DataLoader(valid, batch_size=batch_size, collate_fn=collate))  # fmt: skip


def loaders_shuffled_once(train, valid, batch_size, collate):
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    return (torch.utils.data.DataLoader([train[i] for i in order], batch_size, collate_fn=collate),
            torch.utils.data.DataLoader(valid, batch_size, collate_fn=collate))  # fmt: skip


@pytest.mark.parametrize(
    "fn",
    [
        loaders,
        loaders_with_generator,
        loaders_wrapped_collate_bigger_valid_batches,
        loaders_batch_sampler,
    ],
)
def test_loaders_right_answers_pass(fn):
    assert check_loaders(fn).passed


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda t, v, b, c: loaders(t, v, b, c, shuffle_valid=True), "validation loader shuffles"),
        (lambda t, v, b, c: loaders(t, v, b, c, shuffle_train=False), "does not shuffle"),
        (loaders_shuffled_once, "the same order every epoch (shuffled once)"),
        (lambda t, v, b, c: loaders(t, v, 32, c), "hold [30] examples, not 4"),
        (lambda t, v, b, c: loaders(t, v, b, None), "does not batch with the collate"),
        (lambda t, v, b, c: loaders(v, v, b, c), "each training example once"),
        (
            lambda t, v, b, c: loaders(t, v, b, c, drop_last_valid=True),
            "drops the last, smaller batch",
        ),
        (lambda t, v, b, c: loaders(t, v, b, c)[::-1], "returned (valid, train)"),
        (lambda t, v, b, c: None, "did you forget `return`"),
        (lambda t, v, b, c: loaders(t, t, b, c), "does not see each validation example once"),
    ],
    ids=[
        "shuffled-valid",
        "unshuffled-train",
        "shuffled-once",
        "batch-size",
        "no-collate",
        "wrong-items",
        "drop-last-valid",
        "swapped",
        "no-return",
        "train-items-twice",
    ],
)
def test_loaders_mistakes_are_named(fn, words):
    result = check_loaders(fn)
    assert not result.passed and words in said(result), result


def step_zero_first(model, batch, optimizer):
    ids, mask, labels = batch
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(ids, mask), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_zero_last(model, batch, optimizer):
    model.train()
    *inputs, labels = batch
    loss = torch.nn.CrossEntropyLoss()(model(*inputs), labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def step_loss_after_the_update(model, batch, optimizer):
    ids, mask, labels = batch
    step_zero_first(model, batch, optimizer)
    torch.manual_seed(1)  # the checker's dropout
    return F.cross_entropy(model(ids, mask), labels).item()


@pytest.mark.parametrize(
    ("returned", "words"),
    [(lambda loss: 0.0, "returned 0, but the batch's loss was"),
     (lambda loss: float("nan"), "returned nan"),
     (lambda loss: 0.75, "returned 0.75")],
)  # fmt: skip
def test_train_step_must_return_the_batch_loss(returned, words):
    def step(model, batch, optimizer):
        return returned(step_zero_first(model, batch, optimizer))

    result = check_train_step(step)
    assert not result.passed and words in result.verdict, result
    late = check_train_step(step_loss_after_the_update)
    assert not late.passed and "the loss after the update" in late.verdict, late


def step_clipped(model, batch, optimizer):  # notebook 04's clipping, one notebook early
    ids, mask, labels = batch
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(ids, mask), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def step_without_return(model, batch, optimizer):
    step_zero_first(model, batch, optimizer)  # the loss is computed, but not returned


def test_train_step_clipping_and_no_return_are_named():
    clipped = check_train_step(step_clipped)
    assert not clipped.passed and "no clipping here" in said(clipped), clipped
    silent = check_train_step(step_without_return)
    assert not silent.passed and "expected the loss as a number; it returned None" in silent.verdict


def test_the_step_and_evaluate_checks_leave_the_notebooks_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert check_train_step(step_zero_first).passed
    assert check_evaluate(evaluate_decorated).passed
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("fn", [step_zero_first, step_zero_last])
def test_train_step_right_answers_pass(fn):
    result = check_train_step(fn)
    assert result.passed, result


def _step(train=True, zero=True, step=True, zero_between=False, item=True, train_late=False,
          softmax=False, reduction="mean", twice=False):  # fmt: skip
    def fn(model, batch, optimizer):
        ids, mask, labels = batch
        if train:
            model.train()
        if zero:
            optimizer.zero_grad()
        logits = model(ids, mask)
        loss = F.cross_entropy(
            logits.softmax(-1) if softmax else logits, labels, reduction=reduction
        )
        loss.backward()
        if zero_between:
            optimizer.zero_grad()
        if step:
            optimizer.step()
            if twice:
                optimizer.step()
        if train_late:
            model.train()
        return loss.item() if item else loss

    return fn


def step_restores_mode(model, batch, optimizer):
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    ids, mask, labels = batch
    loss = F.nll_loss(F.log_softmax(model(ids, mask), dim=-1), labels)
    loss.backward()
    optimizer.step()
    model.train(was_training)
    return loss.detach()


def test_train_step_that_restores_the_mode_passes():
    result = check_train_step(step_restores_mode)
    assert result.passed, result


@pytest.mark.parametrize(
    "fn, words",
    [
        (_step(train=False), "in eval mode when it computed the loss"),
        (_step(train=False, train_late=True), "in eval mode when it computed the loss"),
        (_step(softmax=True), "softmax before cross_entropy"),
        (_step(reduction="sum"), "summed over the batch"),
        (_step(twice=True), "two updates per batch"),
        (_step(zero=False), "added the first step's gradients"),
        (_step(step=False), "did not change"),
        (_step(zero=False, zero_between=True), "did not change"),
        (_step(item=False), "whole graph"),
    ],
    ids=[
        "no-train-mode",
        "train-too-late",
        "softmax",
        "sum",
        "twice",
        "no-zero-grad",
        "no-step",
        "zero-before-step",
        "returns-tensor",
    ],
)
def test_train_step_mistakes_are_named(fn, words):
    result = check_train_step(fn)
    assert not result.passed and words in said(result), result


@torch.no_grad()
def evaluate_decorated(model, batches):
    model.eval()
    correct = total = 0
    for ids, mask, labels in batches:
        correct += (model(ids, mask).argmax(-1) == labels).sum().item()
        total += len(labels)
    return correct / total


def evaluate_inference_mode(model, batches):
    model.eval()
    with torch.inference_mode():
        predictions = torch.cat([model(i, m).argmax(-1) for i, m, _ in batches])
    return (predictions == torch.cat([y for *_, y in batches])).float().mean()


def evaluate_restoring_mode(model, batches):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = sum((model(i, m).argmax(-1) == y).sum().item() for i, m, y in batches)
    model.train(was_training)
    return correct / sum(len(y) for *_, y in batches)


def evaluate_numpy(model, batches):
    return np.float32(evaluate_decorated(model, batches))  # a numpy number is a number


@pytest.mark.parametrize(
    "fn", [evaluate_decorated, evaluate_inference_mode, evaluate_restoring_mode, evaluate_numpy]
)
def test_evaluate_right_answers_pass(fn):
    result = check_evaluate(fn)
    assert result.passed, result


def _eval(eval_mode=True, no_grad=True, per_batch=False, percent=False, eval_late=False,
          count=False, last_only=False, no_return=False, all_right=False):  # fmt: skip
    def fn(model, batches):
        if eval_mode:
            model.eval()
        with torch.set_grad_enabled(not no_grad):
            scores = [(model(i, m).argmax(-1) == y).float() for i, m, y in batches]
        if eval_late:
            model.eval()
        if no_return:
            return None
        value = torch.cat(scores).mean()
        if per_batch:
            value = sum(s.mean() for s in scores) / len(scores)
        if last_only:
            value = scores[-1].mean()
        if count:
            value = torch.cat(scores).sum()
        if all_right:
            return torch.cat(scores).bool().all()  # a 0-d bool tensor: "were all right?"
        return 100 * float(value) if percent else float(value)

    return fn


@pytest.mark.parametrize(
    "fn, words",
    [
        (_eval(eval_mode=False), "train mode while scoring"),
        (_eval(no_grad=False), "gradients were tracked"),
        (_eval(per_batch=True), "last batch is smaller"),
        (_eval(percent=True), "percentage"),
        (_eval(eval_mode=False, eval_late=True), "train mode while scoring"),
        (_eval(count=True), "number of correct predictions"),
        (_eval(last_only=True), "only the last batch"),
        (_eval(no_return=True), "did you forget `return`"),
        (_eval(all_right=True), "expected the accuracy as one number"),
    ],
    ids=[
        "no-eval-mode",
        "grad-on",
        "mean-of-batch-means",
        "percent",
        "eval-too-late",
        "count",
        "last-batch",
        "no-return",
        "bool-tensor",
    ],
)
def test_evaluate_mistakes_are_named(fn, words):
    result = check_evaluate(fn)
    assert not result.passed and words in said(result), result


def test_stubs_read_not_implemented():
    def stub(*args):
        raise NotImplementedError("which positions are real tokens?")

    for check in (
        check_collate,
        check_masked_mean,
        check_loaders,
        check_train_step,
        check_evaluate,
    ):
        result = check(stub)
        assert result.not_implemented and "which positions" in result.hints[0]


def test_the_pipeline_on_the_model_waits_for_the_three_checks():
    """Run before the evaluation exercise is done, the last cell names it (the model is not used)."""

    def evaluate_stub(model, batches):
        raise NotImplementedError("count the right predictions")

    model = torch.nn.Linear(4, 2)
    result = check_pipeline_on_model(collate_loop, loaders, evaluate_stub, model, [], 64, 0.85)
    assert not result.passed
    assert "your evaluation pass does not yet pass its check above" in result.verdict, result


class _MeanClassifier(torch.nn.Module):
    """Two classes from the masked mean of 2-d word vectors: enough to score a pipeline on."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(20, 2)

    def forward(self, ids, mask):
        return masked_mean(self.embed(ids), mask)


def test_the_pipeline_on_the_model_scores_as_the_courses_loop_or_names_both_scores():
    rng = np.random.default_rng(0)
    items = [(rng.integers(1, 20, rng.integers(1, 12)), int(rng.integers(0, 2))) for _ in range(50)]
    model = _MeanClassifier()
    course = torch.utils.data.DataLoader(
        items, batch_size=16, collate_fn=functools.partial(collate_helpers, max_len=8)
    )
    reference = evaluate_decorated(model, course)  # the course's loop, by its own code
    assert 0.2 < reference < 1

    ok = check_pipeline_on_model(
        collate_loop, loaders, evaluate_decorated, model, items, 8, reference
    )
    assert ok.passed and f"{reference:.1%}" in ok.verdict, ok
    off = check_pipeline_on_model(
        collate_loop, loaders, evaluate_decorated, model, items, 8, reference - 0.2
    )
    assert not off.passed and f"your pipeline scores {reference:.1%} on validation" in off.verdict
    assert f"the course's loop measured {reference - 0.2:.1%}" in off.verdict, off


def test_a_crash_in_students_code_is_a_verdict_not_a_traceback():
    def broken(examples, max_len):
        return np.stack([d for d, _ in examples])  # documents of different lengths

    result = check_collate(broken)
    assert not result.passed and "raised ValueError" in result.verdict


def test_your_own_modules_train_only_once_notebook_02s_checks_pass():
    """USE_MY_MODULES = True with a notebook-02 attention whose softmax ran over the queries trained
    to NaN losses and reported 56.7% without a word; it now stops, with the check's verdict."""
    from helpers.layers import LayerNorm, SelfAttention

    assert checked_modules({"MySelfAttention": SelfAttention, "MyLayerNorm": LayerNorm}) == (
        SelfAttention,
        LayerNorm,
    )

    class OverQueries(SelfAttention):
        def forward(self, x, mask=None):
            s = self.query(x) @ self.key(x).transpose(1, 2) / x.shape[-1] ** 0.5
            if mask is not None:
                s = s.masked_fill(~mask[:, None, :], float("-inf"))
            return torch.softmax(s, dim=1) @ self.value(x)

    with pytest.raises(
        ValueError,
        match="check says:\n❌ self-attention \\(not yet\\): (.|\n)*softmax over the wrong",
    ):
        checked_modules({"MySelfAttention": OverQueries, "MyLayerNorm": LayerNorm})

    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            raise NotImplementedError("γ and β")

    with pytest.raises(ValueError, match="⏳ LayerNorm: not implemented yet"):
        checked_modules({"MySelfAttention": SelfAttention, "MyLayerNorm": Stub})


def test_a_step_that_leaves_out_the_mask_reads_as_the_classifier_wanting_it():
    """The hint said `_Probe.forward() missing ... 'mask'`: the check's own class name."""

    def step_without_mask(model, batch, optimizer):
        ids, mask, labels = batch
        optimizer.zero_grad()
        loss = F.cross_entropy(model(ids), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    result = check_train_step(step_without_mask)
    assert result.hints == ["Classifier.forward() missing 1 required positional argument: 'mask'"]


def test_an_unnamed_wrong_mask_gets_the_idea_before_the_code():
    """Its only hint was the line of code that builds the mask."""
    first = check_collate(_variant(mask_short=True))
    assert first.hints[0].startswith("True exactly where row i holds a token") and first.shown == 1
    assert "torch.arange" in check_collate(_variant(mask_short=True)).hints[1]
