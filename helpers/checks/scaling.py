"""Notebook 09's checkers: sharding an epoch's batches across processes, the all-reduce that keeps the
copies equal, the effective batch and its learning rate, and the job array's task -> run mapping.
Each compares with the trainer's own rule (``helpers.training.distributed``) and names the usual slip.
"""

import math
from collections.abc import Callable

import torch

from helpers.feedback import (
    CheckResult,
    failed,
    kind_of,
    on_case,
    passed,
    returned,
    returned_not,
    run_check,
)
from helpers.training.distributed import Rank, shard

CASES = ((10, 3), (8, 2), (7, 4), (5, 1))  # (batches, processes): uneven, even, more ranks, one


def check_shard(fn: Callable) -> CheckResult:
    """``fn(batches, rank, world) -> list``: rank's share of the epoch's batches."""
    name = "shard"
    return run_check(name, lambda: _shard(name, fn))


def _shard(name: str, fn: Callable) -> CheckResult:
    for n, world in CASES:
        batches = [f"b{i}" for i in range(n)]
        got = [fn(list(batches), rank, world) for rank in range(world)]
        want = [shard(batches, Rank(rank, world)) for rank in range(world)]
        if all(isinstance(g, list | tuple) for g in got) and [list(g) for g in got] == want:
            continue  # a tuple is as good as a list
        if not all(isinstance(g, list | tuple) for g in got):
            return failed(name, f"it returned {returned_not(got[0], 'a list of batches')}",
                          "return the list of this rank's batches")  # fmt: skip
        got = [list(g) for g in got]
        where = f"with {n} batches and {world} processes"
        if all(g == batches for g in got) and world > 1:
            return failed(name, f"{where}, every rank got all the batches: N processes would do N "
                          "times the work on the same data", "take every N-th batch, starting at the rank")  # fmt: skip
        counts = [len(g) for g in got]
        usable = n - n % world
        if world > 1 and got == [batches[r + 1 : usable : world] for r in range(world)]:
            return failed(name, f"{where}, rank r started at batch r + 1: ranks count from 0, so "
                          "rank 0 takes batch 0", "start at the rank itself, take every world-th batch, "
                          "and cut the list so every rank gets as many",
                          "batches[rank : len(batches) - len(batches) % world : world]")  # fmt: skip
        if len(set(counts)) > 1:
            return failed(name, f"{where}, the ranks got {counts} batches: the rank with more waits "
                          "in all-reduce for partners that have finished, until the collective's "
                          "timeout ends the job",
                          "drop the last len(batches) % world batches, so every rank takes as many steps")  # fmt: skip
        if sorted(sum(got, [])) == sorted(sum(want, [])) and got != want:
            if got == [batches[r * counts[0] : (r + 1) * counts[0]] for r in range(world)]:
                joined = ", ".join(str(r * counts[0]) for r in range(world))
                return failed(name, f"{where}, each rank got a contiguous block: a fair split, but a step "
                              f"then joins batches {joined}, not the neighbours 0 to {world - 1} that one "
                              "process with accumulation would", "which batch should rank r take first, "
                              "and which next?", "take every N-th batch: batches[rank::world], cut to "
                              "equal length")  # fmt: skip
            return failed(name, f"{where}, the right batches went to the wrong ranks: rank 0 got {got[0]}",
                          "rank r starts at batch r (ranks count from 0)")  # fmt: skip
        return failed(name, f"{where}, rank 0 got {got[0]}; expected {want[0]}",
                      "rank r takes batches r, r + N, r + 2N, ... and the last len % N are dropped")  # fmt: skip
    return passed(
        name,
        "each rank takes every N-th batch and all take the same number: DistributedSampler's rule",
    )


def all_reduce_mean(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The reference: every rank ends with the mean of all ranks' gradients."""
    mean = torch.stack(grads).mean(dim=0)
    return [mean.clone() for _ in grads]


def check_all_reduce(fn: Callable) -> CheckResult:
    """``fn(grads) -> list``: each rank's gradient after DDP's all-reduce (one tensor per rank)."""
    name = "all-reduce"
    return run_check(name, lambda: _all_reduce(name, fn))


def _all_reduce(name: str, fn: Callable) -> CheckResult:
    g = torch.Generator().manual_seed(9)
    grads = [torch.randn(4, 3, generator=g) for _ in range(3)]
    got = fn([t.clone() for t in grads])
    want = all_reduce_mean(grads)
    if isinstance(got, list | tuple) and all(isinstance(t, torch.Tensor) for t in got):
        got = [t.float() for t in got]  # float64 is fine: compare as float32
    elif isinstance(got, list | tuple) and got:
        other = next(t for t in got if not isinstance(t, torch.Tensor))
        hint = ("an in-place call (t.copy_, dist.all_reduce) returns nothing: put the tensors "
                "themselves in the list" if other is None else "torch.as_tensor(...) turns an array "
                "into a tensor; torch.stack and .mean work on tensors")  # fmt: skip
        return failed(name, f"it returned a {type(got).__name__} holding {kind_of(other)}, not "
                      "torch tensors", hint)  # fmt: skip
    elif not isinstance(got, torch.Tensor):
        return failed(name, f"it returned {returned_not(got, 'torch tensors')}",
                      "return a list of torch tensors, one per rank (torch.stack and .mean work on tensors)")  # fmt: skip
    if isinstance(got, torch.Tensor):
        got = got.float()
        if got.shape == want[0].shape and torch.allclose(got, want[0], atol=1e-6):
            return failed(name, "one tensor: the mean is right, but every rank needs its own copy",
                          "return a list with one tensor per rank, all equal to the mean")  # fmt: skip
        return failed(name, f"a tensor of shape {tuple(got.shape)}, not a list with one gradient per rank",
                      "every rank needs a gradient of its own: a list, one per rank",
                      "return [mean.clone() for _ in grads]")  # fmt: skip
    got = list(got)
    if len(got) != len(grads):
        return failed(name, f"{len(got)} tensor{'' if len(got) == 1 else 's'} for {len(grads)} "
                      "ranks", "a list holding a copy of the mean for each rank")  # fmt: skip
    if any(not isinstance(t, torch.Tensor) or t.shape != want[0].shape for t in got):
        return failed(name, f"each rank's gradient must keep the shape {tuple(want[0].shape)}",
                      "each rank gets one tensor of the gradient's shape: the mean over the ranks, "
                      "entry by entry",
                      "torch.stack(grads).mean(dim=0): the ranks become a new first dimension")  # fmt: skip
    total = torch.stack(grads).sum(dim=0)
    if all(torch.allclose(t, total, atol=1e-6) for t in got):
        return failed(name, "the sum, not the mean: the step would be N times too large, as if the "
                      "learning rate were multiplied by the number of processes",
                      "divide the sum by the number of ranks")  # fmt: skip
    if torch.allclose(got[0], want[0], atol=1e-6) and not all(
        torch.allclose(t, want[0], atol=1e-6) for t in got
    ):
        return failed(name, "only rank 0 holds the mean; the other ranks kept their own gradients, "
                      "so their copies of the model drift apart after one step",
                      "all-reduce: every rank receives the result, not just rank 0")  # fmt: skip
    if all(torch.allclose(t, want[0], atol=1e-6) for t in got):
        return passed(name, "every rank holds the mean gradient: all copies take the same step")
    return failed(name, "rank 0's gradient is not the mean of the ranks' gradients",
                  "stack the ranks' gradients on a new first dimension and average over that one; "
                  "every rank gets the same result",
                  "torch.stack(grads).mean(dim=0), the same for every rank")  # fmt: skip


def check_batch_and_lr(fn: Callable) -> CheckResult:
    """``fn(per_gpu, gpus, accumulate, base_lr, base_batch) -> (effective_batch, lr)``: the linear
    scaling rule (lr grows with the batch, from a base tuned at ``base_batch``)."""
    name = "effective batch and learning rate"
    return run_check(name, lambda: _batch_and_lr(name, fn))


def _batch_and_lr(name: str, fn: Callable) -> CheckResult:
    cases = ((16, 4, 2, 1e-4, 32), (32, 2, 1, 5e-5, 32), (8, 1, 4, 2e-5, 16), (12, 2, 1, 1e-4, 32))
    for per_gpu, gpus, accumulate, base_lr, base_batch in cases:  # the last: a batch of 24 from 32
        got = fn(per_gpu, gpus, accumulate, base_lr, base_batch)
        batch = per_gpu * gpus * accumulate
        lr = base_lr * batch / base_batch
        setting = f"{per_gpu} per GPU × {gpus} GPUs × {accumulate} accumulated (base lr {base_lr:g} at {base_batch})"
        if not isinstance(got, tuple | list) or len(got) != 2:
            return failed(name, "expected two numbers, (effective batch, learning rate); it "
                          f"returned {returned(got)}", "return batch, lr")  # fmt: skip
        got_batch, got_lr = got
        if got_batch != batch:
            if got_batch == per_gpu * gpus:
                return failed(name, f"{setting}: {got_batch} forgets the accumulation",
                              "an optimizer step also adds up `accumulate` batches per GPU")  # fmt: skip
            if got_batch == per_gpu * accumulate:
                return failed(name, f"{setting}: {got_batch} forgets the GPUs",
                              "each GPU adds its own per-GPU batch to the step")  # fmt: skip
            return failed(name, f"{setting}: effective batch {got_batch}; expected {batch}",
                          "per_gpu × gpus × accumulate examples per optimizer step")  # fmt: skip
        if (
            math.isclose(got_lr, base_lr * math.sqrt(batch / base_batch), rel_tol=1e-6)
            and batch != base_batch
        ):
            return failed(name, f"{setting}: lr {got_lr:g} is the square-root rule",
                          "this notebook uses the linear rule: lr × (batch / base batch)")  # fmt: skip
        if math.isclose(got_lr, base_lr * base_batch / batch, rel_tol=1e-6) and batch != base_batch:
            return failed(name, f"{setting}: lr {got_lr:g} shrank as the batch grew",
                          "a k times larger batch takes k times fewer steps: each step gets k times the rate")  # fmt: skip
        if batch % base_batch and math.isclose(
            got_lr, base_lr * (batch // base_batch), abs_tol=1e-12
        ):
            return failed(name, f"{setting}: lr {got_lr:g}: the ratio {batch}/{base_batch} was rounded down",
                          "use / (true division), not //")  # fmt: skip
        if not math.isclose(got_lr, lr, rel_tol=1e-6):
            return failed(name, f"{setting}: lr {got_lr:g}; expected {lr:g}",
                          "lr = base_lr × effective batch / base_batch")  # fmt: skip
    return passed(
        name, "effective batch = per GPU × GPUs × accumulation, and the rate grows with it"
    )


def task_run(lrs: list[float], epochs: list[int], index: int) -> tuple[float, int]:
    """The reference: array task ``index`` (from 0) runs the index-th (lr, epochs) pair, lr-major."""
    pairs = [(lr, e) for lr in lrs for e in epochs]
    if not 0 <= index < len(pairs):
        raise IndexError(f"task {index} is not in the grid of {len(pairs)}")
    return pairs[index]


def check_task(fn: Callable) -> CheckResult:
    """``fn(lrs, epochs, index) -> (lr, epochs)``: what array task ``index`` trains."""
    name = "array task"
    return run_check(name, lambda: _task(name, fn))


def _task(name: str, fn: Callable) -> CheckResult:
    lrs, epochs = [1e-5, 3e-5, 1e-4], [2, 3]
    n = len(lrs) * len(epochs)
    want = [task_run(lrs, epochs, i) for i in range(n)]
    if _one_based_with_range_check(fn, lrs, epochs, want):
        return failed(name, "task 0 was refused and task i ran pair i - 1: SLURM_ARRAY_TASK_ID counts "
                      "from 0 here (--array=0-5), not from 1",
                      "do not subtract 1: accept 0 … len - 1 and return pair number index")  # fmt: skip
    values = []
    for i in range(n):
        with on_case(f"index {i} (lrs {lrs}, epochs {epochs})"):
            values.append(fn(lrs, epochs, i))
    got = [_pair(value) for value in values]
    if None in got:
        bad = values[got.index(None)]
        what = returned(bad) if bad is None else f"{bad!r}, not an (lr, epochs) pair"
        return failed(name, f"it returned {what}",
                      "return the pair as a tuple: (lr, epochs)")  # fmt: skip
    if got != want:
        if got == [(lrs[i % len(lrs)], epochs[i // len(lrs)]) for i in range(n)]:
            return failed(name, "the epochs vary slowest: a valid order, but not the plan's",
                          "the plan lists for lr in lrs: for e in epochs: task index runs pair number index of that list")  # fmt: skip
        if got[1:] == want[:-1]:
            return failed(name, "task 1 ran task 0's pair: SLURM_ARRAY_TASK_ID counts from 0 here (--array=0-5)",
                          "do not subtract 1")  # fmt: skip
        first = next(i for i in range(n) if got[i] != want[i])
        return failed(name, f"task {first} -> {got[first]}; expected {want[first]}",
                      "list every (lr, epochs) pair, lr in the outer loop, and take pair number index")  # fmt: skip
    for outside in (n, -1):
        try:
            extra = fn(lrs, epochs, outside)
        except (Exception, SystemExit):  # any error refuses it, sys.exit too
            continue
        return failed(name, f"task {outside} does not exist (tasks 0 to {n - 1}) but returned {extra}",
                      "raise an error for an index outside 0 … len - 1 (Python's l[-1] would quietly give "
                      "the last pair): a wrong --array must not rerun a pair")  # fmt: skip
    return passed(
        name, f"task i runs pair i of the grid, and tasks {n} and -1 (not in the grid) are refused"
    )


def _pair(value) -> tuple | None:
    """``value`` as a tuple if it is a sequence of two (a tuple, a list, a numpy row), else None."""
    try:
        pair = tuple(value.tolist() if hasattr(value, "tolist") else value)
    except TypeError:  # None, a number
        return None
    return pair if len(pair) == 2 else None


def _one_based_with_range_check(fn: Callable, lrs: list, epochs: list, want: list) -> bool:
    """Tasks counted from 1, written with the range check: index 0 refused (any error) and
    ``fn(i + 1)`` gives pair i for every i."""
    try:
        fn(lrs, epochs, 0)
    except (Exception, SystemExit):  # refused: is it because the ids count from 1?
        try:
            return [tuple(fn(lrs, epochs, i + 1)) for i in range(len(want))] == want
        except (Exception, SystemExit):  # another error: the general path reports it
            return False
    return False
