"""Notebook 09's checkers: right answers written several ways pass; each named mistake gets its hint."""

import itertools
import math

import pytest
import torch

from helpers.checks.scaling import (
    check_all_reduce,
    check_batch_and_lr,
    check_shard,
    check_task,
    task_run,
)


def hints(result) -> str:
    return " ".join([result.verdict, *result.hints])


def shard_loop(batches, rank, world):
    usable = len(batches) // world * world
    return [b for i, b in enumerate(batches[:usable]) if i % world == rank]


def shard_sampler(
    batches, rank, world
):  # torch's own sampler over batch positions, without padding
    sampler = torch.utils.data.DistributedSampler(
        range(len(batches)), world, rank, shuffle=False, drop_last=True
    )
    return [batches[i] for i in sampler]


@pytest.mark.parametrize(
    "fn", [lambda b, r, w: b[r : len(b) - len(b) % w : w], shard_loop, shard_sampler]
)
def test_shard_right(fn):
    assert check_shard(fn).passed


def contiguous(b, r, w):
    k = len(b) // w
    return b[r * k : (r + 1) * k]


@pytest.mark.parametrize(
    ("fn", "named"),
    [(lambda b, r, w: b[r::w], "until the collective's timeout"), (lambda b, r, w: list(b), "every rank got all"),
     (contiguous, "contiguous block"), (lambda b, r, w: b[(r + 1) % w : len(b) - len(b) % w : w], "wrong ranks"),
     (lambda b, r, w: tuple(b[r::w])[:1], "rank 0 got"),
     (lambda b, r, w: itertools.islice(b, r, len(b) - len(b) % w, w), "an islice, not a list")],
)  # fmt: skip
def test_shard_mistakes(fn, named):
    result = check_shard(fn)
    assert not result.passed and named in hints(result), hints(result)


@pytest.mark.parametrize(
    "fn",
    [lambda g: [torch.stack(g).mean(0)] * len(g), lambda g: [sum(g) / len(g) for _ in g],
     lambda g: [torch.mean(torch.stack(g), dim=0).clone() for _ in range(len(g))],
     lambda g: [torch.stack(g).double().mean(0)] * len(g)],
)  # fmt: skip
def test_all_reduce_right(fn):
    assert check_all_reduce(fn).passed


def all_reduce_in_place(grads):  # as torch.distributed.all_reduce works: in place, no return
    mean = torch.stack(grads).mean(0)
    for g in grads:
        g.copy_(mean)


@pytest.mark.parametrize(
    ("fn", "named"),
    [(lambda g: [sum(g)] * len(g), "the sum, not the mean"), (lambda g: torch.stack(g).mean(0), "every rank needs its own copy"),
     (lambda g: [torch.stack(g).mean(0)] + g[1:], "only rank 0"), (lambda g: [t.mean() for t in g], "keep the shape"),
     (lambda g: g, "not the mean"), (all_reduce_in_place, "returned None: did you forget `return`?"),
     (lambda g: torch.stack([torch.stack(g).mean(0)] * len(g)), "not a list with one gradient per rank"),
     (lambda g: [torch.stack(g).mean(0)], "1 tensor for 3 ranks"),
     (lambda g: [torch.stack(g).mean(0).numpy()] * len(g), "a list holding an ndarray, not torch tensors"),
     (lambda g: [all_reduce_in_place([t]) for t in g], "an in-place call")],  # None, as dist.all_reduce
)  # fmt: skip
def test_all_reduce_mistakes(fn, named):
    result = check_all_reduce(fn)
    assert not result.passed and named in hints(result), hints(result)


def plan_right(per_gpu, gpus, accumulate, base_lr, base_batch):
    batch = per_gpu * gpus * accumulate
    return batch, base_lr * batch / base_batch


@pytest.mark.parametrize(
    "fn",
    [
        plan_right,
        lambda p, g, a, lr, b: [p * g * a, lr * (p * g * a) / b],
        lambda p, g, a, lr, b: (a * g * p, lr / b * a * g * p),
    ],
)
def test_batch_and_lr_right(fn):
    assert check_batch_and_lr(fn).passed


@pytest.mark.parametrize(
    ("fn", "named"),
    [(lambda p, g, a, lr, b: (p * g, lr * p * g / b), "forgets the accumulation"),
     (lambda p, g, a, lr, b: (p * a, lr * p * a / b), "forgets the GPUs"),
     (lambda p, g, a, lr, b: (p * g * a, lr * math.sqrt(p * g * a / b)), "square-root rule"),
     (lambda p, g, a, lr, b: (p * g * a, lr * b / (p * g * a)), "shrank"),
     (lambda p, g, a, lr, b: (p * g * a, lr), "expected"), (lambda p, g, a, lr, b: p * g * a, "two numbers"),
     (lambda p, g, a, lr, b: (p * g * a, lr * (p * g * a // b)), "rounded down"),
     (lambda p, g, a, lr, b: (g * a, lr * g * a / b), "effective batch 8; expected 128")],
)  # fmt: skip
def test_batch_and_lr_mistakes(fn, named):
    result = check_batch_and_lr(fn)
    assert not result.passed and named in hints(result), hints(result)


def task_loop(lrs, epochs, index):
    pairs = []
    for lr in lrs:
        for e in epochs:
            pairs.append((lr, e))
    if not 0 <= index < len(pairs):
        raise ValueError("no such task")
    return pairs[index]


def task_assert(lrs, epochs, index):  # any error refuses an index outside the grid
    pairs = [(lr, e) for lr in lrs for e in epochs]
    assert 0 <= index < len(pairs), "no such task"
    return pairs[index]


def task_divmod(lrs, epochs, index):
    if index < 0:
        raise IndexError(index)
    row, col = divmod(index, len(epochs))
    return lrs[row], epochs[col]


@pytest.mark.parametrize("fn", [task_loop, task_assert, task_divmod, task_run])
def test_task_right(fn):
    """task_run is the checker's own reference: it must pass the check it sets, refusals included."""
    assert check_task(fn).passed


@pytest.mark.parametrize(
    ("fn", "named"),
    [(lambda lrs, ep, i: (lrs[i % len(lrs)], ep[i // len(lrs)]), "epochs vary slowest"),
     (lambda lrs, ep, i: task_loop(lrs, ep, max(i - 1, 0)), "counts from 0"),
     (lambda lrs, ep, i: (lrs[(i // len(ep)) % len(lrs)], ep[i % len(ep)]), "does not exist"),
     (lambda lrs, ep, i: (lrs[0], ep[0]), "task 1 ->"),
     (lambda lrs, ep, i: [(lr, e) for lr in lrs for e in ep][i], "task -1 does not exist"),
     (lambda lrs, ep, i: itertools.product(lrs, ep)[i], "'itertools.product' object is not subscriptable")],
)  # fmt: skip
def test_task_mistakes(fn, named):
    result = check_task(fn)
    assert not result.passed and named in hints(result), hints(result)


def task_one_based_checked(lrs, epochs, index):
    """Ids counted from 1, with the range check the task asks for."""
    pairs = [(lr, e) for lr in lrs for e in epochs]
    if not 1 <= index <= len(pairs):
        raise IndexError("no such task")
    return pairs[index - 1]


def task_one_based_unchecked(lrs, epochs, index):
    """Ids counted from 1, without a range check: task 0 runs the last pair."""
    return [(lr, e) for lr in lrs for e in epochs][index - 1]


@pytest.mark.parametrize(
    ("fn", "named"),
    [(task_one_based_checked, "task 0 was refused and task i ran pair i - 1"),
     (task_one_based_unchecked, "task 1 ran task 0's pair")],
)  # fmt: skip
def test_task_one_based_is_named_with_or_without_the_range_check(fn, named):
    result = check_task(fn)
    assert not result.passed and named in hints(result), hints(result)
    assert "counts from 0" in hints(result) and "raised" not in hints(result), hints(result)


def test_a_task_that_crashes_names_the_index_it_crashed_on():
    def my_task(lrs, epochs, index):
        return lrs[index], epochs[0]  # IndexError from index 3 on

    result = check_task(my_task)
    assert "raised IndexError" in result.verdict
    assert result.verdict.endswith("(input: index 3 (lrs [1e-05, 3e-05, 0.0001], epochs [2, 3]))")
