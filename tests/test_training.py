"""The one training loop: configs, precision policy, schedule, accumulation, clipping, callbacks,
checkpoints that know what they trained, seeds, and the errors people meet."""

import gc
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers import layers
from helpers.config import ConfigError
from helpers.env import seeded
from helpers.tokenization.mlm import IGNORE
from helpers.training import (
    History,
    TrainConfig,
    choose_precision,
    code_fingerprint,
    evaluate,
    fit,
    grad_scaler,
    perplexity,
    predict,
)
from helpers.training.checkpoints import check_own_checkpoint, load_checkpoint
from helpers.training.loop import batch_outputs, lr_factor, make_optimizer

CPU = torch.device("cpu")


def toy_data(n: int = 64, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of 8 points in 2-D; the label is which side of a line the point is on."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def toy_model(seed: int = 0) -> nn.Module:
    with seeded(seed):
        return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


def test_fit_learns_and_logs_one_row_per_epoch():
    data = toy_data()
    history = fit(toy_model(), data, TrainConfig(epochs=8, lr=0.05), CPU,
                  eval_batches={"valid": toy_data(32, seed=1)}, progress=False)  # fmt: skip
    assert isinstance(history, History) and history["epoch"] == list(range(1, 9))
    assert {"train_loss", "valid_loss", "valid_accuracy", "lr", "seconds"} <= set(history)
    assert history["train_loss"][-1] < history["train_loss"][0] / 2
    assert history.last("valid_accuracy") >= 0.9


def test_fit_trains_after_a_cell_turned_gradients_off_and_takes_a_device_name():
    """`torch.set_grad_enabled(False)` in an earlier cell ended fit (and notebook 03's imdb.run,
    07's gpt.train) in torch's "element 0 of tensors does not require grad"; fit(..., "cpu") and
    evaluate(..., "cpu") in "'str' object has no attribute 'type'"."""
    torch.set_grad_enabled(False)
    try:
        with seeded(0):
            reference = fit(
                toy_model(), toy_data(), TrainConfig(epochs=2, lr=0.05), CPU, progress=False
            )
        assert not torch.is_grad_enabled()  # the cell's setting again
    finally:
        torch.set_grad_enabled(True)
    model, data = toy_model(), toy_data()  # made outside a student's inference_mode block
    with seeded(0), torch.inference_mode():
        inside = fit(model, data, TrainConfig(epochs=2, lr=0.05), CPU, progress=False)
    with seeded(0):
        named = fit(toy_model(), toy_data(), TrainConfig(epochs=2, lr=0.05), "cpu", progress=False)
    assert named["train_loss"] == reference["train_loss"] == inside["train_loss"]
    assert (
        evaluate(toy_model(), toy_data(), "cpu").accuracy
        == evaluate(toy_model(), toy_data(), CPU).accuracy
    )
    assert torch.equal(
        predict(toy_model(), toy_data(), "cpu"), predict(toy_model(), toy_data(), CPU)
    )


@pytest.mark.parametrize(
    "targets, said",
    [
        (lambda y: y.float(), "a batch's targets (its last element) are torch.float32: cross-entropy takes class indices"),
        (lambda y: y[:-1], "the model gave 8 predictions but the batch holds 7 targets (its last element)"),
        (lambda y: y + 1, "targets (its last element) run from 1 to 2, but the model gives 2 classes: targets are 0 to 1 (or -100, no target)"),
        (lambda y: y - 1, "run from -1 to 0, but the model gives 2 classes"),
    ],
)  # fmt: skip
def test_targets_the_loss_cannot_take_are_named_not_left_to_torch(targets, said):
    """torch said "expected target dtype to be Long", "Expected input batch_size (4) to match
    target batch_size (5)" and "Target 2 is out of bounds" from inside functional.py (a brief
    audit's calls of fit)."""
    data = [(x, targets(y)) for x, y in toy_data(16)]
    with pytest.raises(ValueError, match=re.escape(said)):
        fit(toy_model(), data, TrainConfig(epochs=1), CPU, progress=False)


def test_an_interrupt_while_the_bar_is_built_leaves_no_half_built_bar(monkeypatch):
    """Kernel > Interrupt landing inside the notebook bar's construction left it in tqdm's list of
    bars; every later fit in the kernel failed on it (no attribute 'container')."""
    from tqdm.notebook import tqdm as notebook_bar  # the bar fit makes in a notebook

    from helpers.training import loop

    class Interrupted(notebook_bar):
        def __init__(self, *args, **kwargs):
            raise KeyboardInterrupt  # registered by tqdm's __new__, interrupted while being built

    bars = len(loop.tqdm._instances)
    monkeypatch.setattr(loop, "tqdm", Interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:  # kept, as IPython keeps the last traceback
        fit(toy_model(), toy_data(), TrainConfig(epochs=1, lr=0.05), CPU)
    assert len(loop.tqdm._instances) == bars and caught.tb is not None
    unraisable = []  # and collected later, the half-built bar's close() must not fail either
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    del caught
    gc.collect()
    assert not unraisable, [str(u.exc_value) for u in unraisable]


def test_progress_prints_a_line_per_epoch_unless_epoch_lines_is_off(capsys):
    cfg = TrainConfig(epochs=3, lr=0.05)
    fit(toy_model(), toy_data(), cfg, CPU, eval_batches={"valid": toy_data(16, seed=1)})
    assert capsys.readouterr().out.count("epoch ") == 3  # written beside the bar
    fit(toy_model(), toy_data(), cfg, CPU, eval_batches={"valid": toy_data(16, seed=1)},
        epoch_lines=False)  # fmt: skip
    captured = capsys.readouterr()
    assert (
        "epoch " not in captured.err + captured.out and "training" in captured.err
    )  # the bar stays


def test_unknown_or_bad_config_fields_fail_at_construction_and_name_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"no field 'lrr' \(did you mean 'lr'\?\); its fields: epochs, lr"
    ):
        TrainConfig(lrr=0.1)
    for bad, message in [
        ({"epochs": 0}, "TrainConfig.epochs must be > 0 and finite, got 0"),
        ({"lr": -1e-3}, "TrainConfig.lr must be > 0 and finite, got -0.001"),
        ({"accumulate": 0}, "TrainConfig.accumulate must be > 0 and finite"),
        ({"optimizer": "adam"}, "optimizer must be one of adamw, sgd, rmsprop, not 'adam'"),
        ({"schedule": "step"}, "schedule must be one of constant, linear, cosine"),
        ({"warmup": 1.5}, r"warmup is a fraction of the steps in \[0, 1\)"),
        ({"precision": "fp8"}, "precision must be one of auto, fp32, bf16, fp16"),
        ({"epochs": 1.5}, "TrainConfig.epochs must be a whole number, got 1.5"),
        (
            {"epochs": "3"},
            "TrainConfig.epochs must be a whole number, got '3'",
        ),  # before any compare
        ({"lr": "1e-3"}, "TrainConfig.lr must be a number, got '1e-3'"),
        ({"epochs": True}, "TrainConfig.epochs must be a number, got True"),  # not 1
        ({"lr": True}, "TrainConfig.lr must be a number, got True"),
    ]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**bad)
    with pytest.raises(ConfigError, match="no field 'epoch'"):
        TrainConfig().replace(epoch=3)


def test_configs_are_one_base_class_that_type_checkers_read_as_frozen_keyword_dataclasses():
    import dataclasses
    import typing

    from helpers.config import Config

    # what mypy, pyright and editors read: fields as keyword-only constructor arguments, frozen
    # (Python 3.11 keeps frozen_default among the extra keywords)
    transform = Config.__dataclass_transform__
    assert transform["kw_only_default"] is True
    assert {**transform.get("kwargs", {}), **transform}["frozen_default"] is True
    assert typing.get_type_hints(Config.replace)["return"] is typing.Self

    class Outer(Config):
        lr: float = 1e-3

    class Inner(Outer):  # a config extending another keeps both checks
        epochs: int = 3

    cfg = Inner(lr=0.1).replace(epochs=5)
    assert type(cfg) is Inner and cfg.to_dict() == {"lr": 0.1, "epochs": 5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    with pytest.raises(ConfigError, match=r"Inner has no field 'lrr' \(did you mean 'lr'\?\)"):
        Inner(lrr=0.1)
    with pytest.raises(ConfigError, match="Inner.epochs must be a whole number, got 1.5"):
        cfg.replace(epochs=1.5)
    with pytest.raises(TypeError, match="positional"):
        Inner(0.1)  # keyword-only


def test_precision_follows_the_hardware(monkeypatch):
    assert choose_precision(CPU) == "fp32"
    with pytest.raises(ValueError, match="'bf16' needs a CUDA GPU, but the device is cpu"):
        choose_precision(CPU, "bf16")
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # T4
    assert choose_precision(cuda) == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # A100
    assert choose_precision(cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # H100
    assert choose_precision(cuda) == "bf16" and choose_precision(cuda, "fp32") == "fp32"
    assert not grad_scaler(CPU, "fp32").is_enabled()
    # torch >= 2.3 has a CPU scaler; torch 2.2's is CUDA's alone, off here whatever the precision
    if hasattr(torch.amp, "GradScaler"):
        assert grad_scaler(CPU, "fp16").is_enabled()


def test_warmup_then_decay_schedules():
    total, warm = 100, 10
    assert lr_factor(0, total, warm, "linear") == pytest.approx(0.1)
    assert lr_factor(9, total, warm, "linear") == pytest.approx(1.0)
    assert lr_factor(55, total, warm, "linear") == pytest.approx(0.5)
    assert lr_factor(55, total, warm, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, total, warm, "constant") == 1.0
    assert lr_factor(total, total, warm, "linear") == 0.0
    history = fit(toy_model(), toy_data(), TrainConfig(epochs=4, lr=0.1, warmup=0.25), CPU,
                  progress=False)  # fmt: skip
    assert history["lr"][0] == pytest.approx(0.1 / 8) and history["lr"][1] > history["lr"][2]


def assert_accumulating_equals_merged_batches(merged: list, split: list, accumulate: int) -> None:
    """One epoch on ``split`` at ``accumulate`` batches a step ends where one on ``merged`` does."""
    one, other = toy_model(), toy_model()
    cfg = TrainConfig(epochs=1, lr=0.1, optimizer="sgd", schedule="constant", clip=None)
    fit(one, merged, cfg, CPU, progress=False)
    fit(other, split, cfg.replace(accumulate=accumulate), CPU, progress=False)
    for a, b in zip(one.parameters(), other.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_accumulating_two_half_batches_equals_one_full_batch():
    full = [(torch.randn(16, 2), torch.randint(0, 2, (16,))) for _ in range(3)]
    halves = [(x[i : i + 8], y[i : i + 8]) for x, y in full for i in (0, 8)]
    assert_accumulating_equals_merged_batches(full, halves, 2)


def test_a_short_last_accumulation_averages_its_own_batches():
    """Six batches accumulated four at a time: two steps, over four batches and then two; each is
    the mean over its own batches, as if they were one batch (the last not weighted 2/4)."""
    halves = [(torch.randn(8, 2), torch.randint(0, 2, (8,))) for _ in range(6)]
    full = [tuple(torch.cat(parts) for parts in zip(*halves[a:b])) for a, b in ((0, 4), (4, 6))]
    assert_accumulating_equals_merged_batches(full, halves, 4)


def test_batches_of_unequal_size_count_by_their_examples_as_one_batch_would():
    """A step over batches of 8 and 2 examples is the step of one batch of 10: the short batch weighed
    as much as the full one (the mean of the two batches' means)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 2, generator=g), torch.randint(0, 2, (20,), generator=g)
    split = [(x[:8], y[:8]), (x[8:10], y[8:10]), (x[10:18], y[10:18]), (x[18:], y[18:])]
    assert_accumulating_equals_merged_batches([(x[:10], y[:10]), (x[10:], y[10:])], split, 2)


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        with seeded(0):
            self.embed, self.head = nn.Embedding(6, 8), nn.Linear(8, 6)

    def forward(self, ids):
        return self.head(self.embed(ids))  # (B, T, 6)


def test_token_batches_count_by_their_real_targets_as_one_batch_would():
    """Token-level batches with ignored positions: one real target in the first batch, six in the
    second. Accumulated, they make the update of the two as one batch (the mean over seven targets)."""
    ids = torch.randint(0, 6, (4, 3), generator=torch.Generator().manual_seed(0))
    targets = ids.roll(1, dims=1)
    targets[:2] = IGNORE
    targets[0, 0] = 2  # batch 1 (rows 0-1): one real target; batch 2 (rows 2-3): six
    split = [(ids[:2], targets[:2]), (ids[2:], targets[2:])]
    cfg = TrainConfig(epochs=1, lr=0.5, optimizer="sgd", schedule="constant", clip=None)
    one, other = TokenModel(), TokenModel()
    fit(one, [(ids, targets)], cfg, CPU, progress=False)
    fit(other, split, cfg.replace(accumulate=2), CPU, progress=False)
    for a, b in zip(one.parameters(), other.parameters()):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_a_batch_whose_targets_are_all_ignored_adds_nothing():
    """Its mean loss is 0/0: evaluate's loss was NaN, and in training the NaN reached the gradients and
    the epoch's loss (a "diverged" run)."""
    ids = torch.randint(0, 6, (4, 3), generator=torch.Generator().manual_seed(1))
    targets = ids.roll(1, dims=1)
    none = torch.full_like(targets[:2], IGNORE)
    cfg = TrainConfig(epochs=1, lr=0.5, optimizer="sgd", schedule="constant", clip=None)
    alone, with_empty = TokenModel(), TokenModel()
    expected = fit(alone, [(ids[2:], targets[2:])], cfg, CPU, progress=False)
    got = fit(with_empty, [(ids[:2], none), (ids[2:], targets[2:])], cfg.replace(accumulate=2), CPU,
              progress=False)  # fmt: skip
    assert got["train_loss"] == pytest.approx(expected["train_loss"])
    for a, b in zip(alone.parameters(), with_empty.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    real = evaluate(alone, [(ids[2:], targets[2:])], CPU)
    assert evaluate(alone, [(ids[:2], none), (ids[2:], targets[2:])], CPU) == real


@pytest.mark.parametrize("accumulate", [1, 2])
def test_a_step_without_predictions_changes_nothing(accumulate):
    """Two all-ignored batches in one step divided the gradients by a share of 0: every weight NaN. At
    accumulate=1 such a batch still took a step (momentum moved the weights 0.34) and the schedule
    moved on."""
    ids = torch.randint(0, 6, (4, 3), generator=torch.Generator().manual_seed(1))
    targets = ids.roll(1, dims=1)
    none = torch.full_like(targets[:2], IGNORE)
    cfg = TrainConfig(epochs=1, lr=0.5, optimizer="sgd", schedule="constant", accumulate=accumulate)
    real = [(ids[:2], targets[:2]), (ids[2:], targets[2:])][:accumulate]
    empty = [(ids[:2], none), (ids[2:], none)][:accumulate]
    alone, with_empty = TokenModel(), TokenModel()
    expected = fit(alone, real, cfg, CPU, progress=False)
    got = fit(with_empty, real + empty, cfg, CPU, progress=False)  # momentum would move it on
    assert got["train_loss"] == pytest.approx(expected["train_loss"])
    for a, b in zip(alone.parameters(), with_empty.parameters()):
        assert torch.equal(a, b)


def test_an_epoch_with_nothing_to_predict_is_named_not_divided_by_zero(tmp_path, capsys):
    """An epoch whose every target is ignored (a tiny text whose masks chose no token) raised
    ZeroDivisionError after the checkpoint of the epoch before, and so again on every resume."""
    ids = torch.randint(0, 6, (4, 3), generator=torch.Generator().manual_seed(1))
    none = torch.full_like(ids, IGNORE)
    cfg = TrainConfig(epochs=2, lr=0.5, optimizer="sgd", schedule="constant")
    batches = {0: [(ids, ids.roll(1, dims=1))], 1: [(ids, none)]}
    said = (
        r"epoch 2 had nothing to predict: every target of every training batch is the ignored -100"
    )
    for _ in range(2):  # the second time resumes after epoch 1, and stops the same way
        with pytest.raises(ValueError, match=said):
            fit(TokenModel(), batches.get, cfg, CPU, checkpoint=tmp_path / "ck.pt", progress=False)
    assert "resuming" in capsys.readouterr().out


def test_the_warm_up_spans_its_fraction_of_the_steps_exactly():
    """int(0.29 * 100) is 28 (0.29 * 100 is 28.999999999999996): 28 warm-up steps, not 29."""
    model = nn.Linear(2, 2)
    cfg = TrainConfig(epochs=100, lr=1.0, warmup=0.29, schedule="constant", optimizer="sgd")
    rates = fit(model, [(torch.randn(1, 2), torch.tensor([0]))], cfg, CPU, progress=False)["lr"]
    assert rates[0] == pytest.approx(1 / 29) and rates[27] == pytest.approx(28 / 29)
    assert rates[28] == rates[29] == 1.0


def test_accumulated_gradients_stay_the_size_of_one_batchs():
    """Each batch was weighed by its predictions over the epoch's first batch's: after a first batch of
    1 target, a batch of 4,096 was scaled 4,096 times before backward, and fp16's loss scaler skipped
    5 of 8 steps. The gradients now hold a running mean: no batch is scaled up."""
    from helpers.training.loop import run_epoch

    class Recorder:
        scales: list = []

        def scale(self, loss):
            Recorder.scales.append(loss.item())
            return loss

        def unscale_(self, optimizer):
            pass

        def get_scale(self):
            return 1.0

        def step(self, optimizer):
            optimizer.step()

        def update(self):
            pass

    ids = torch.randint(0, 6, (4, 64), generator=torch.Generator().manual_seed(2))
    targets = ids.roll(1, dims=1)
    few = targets[:2].clone()
    few[:, 1:] = IGNORE  # 2 targets, then a batch of 128
    model, cfg = TokenModel(), TrainConfig(epochs=1, lr=0.1, optimizer="sgd", accumulate=2)
    optimizer = make_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE).item()
              for x, y in ((ids[:2], few), (ids[2:], targets[2:]))]  # fmt: skip
    bar = type("Bar", (), {"update": lambda *a: None, "set_postfix": lambda *a, **k: None})()
    run_epoch(model, [(ids[:2], few), (ids[2:], targets[2:])], optimizer, scheduler, Recorder(), cfg,
              CPU, "fp32", batch_outputs, bar)  # fmt: skip
    assert max(Recorder.scales) <= max(losses) + 1e-6, (Recorder.scales, losses)


def test_equal_batches_step_exactly_as_before_weights():
    """Batches that hold as many predictions each are weighted 1: the loss over the batches in a step,
    bit for bit as it was before batches were weighted by their predictions."""
    data = toy_data()
    cfg = TrainConfig(epochs=2, lr=0.1, accumulate=2, clip=0.5, schedule="constant")
    model = toy_model()
    fit(model, data, cfg, CPU, progress=False)
    reference = toy_model()
    optimizer = make_optimizer(cfg, reference)
    for _ in range(2):
        for i in range(0, len(data), 2):
            for x, y in data[i : i + 2]:
                (F.cross_entropy(reference(x), y) / 2).backward()
            nn.utils.clip_grad_norm_(reference.parameters(), cfg.clip)
            optimizer.step()
            optimizer.zero_grad()
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)


def test_clipping_bounds_the_update():
    model = nn.Linear(2, 2)
    before = [p.detach().clone() for p in model.parameters()]
    huge = [(1e6 * torch.randn(8, 2), torch.randint(0, 2, (8,)))]
    fit(model, huge, TrainConfig(epochs=1, lr=1.0, optimizer="sgd", clip=0.5, schedule="constant"),
        CPU, progress=False)  # fmt: skip
    step = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)])
    assert step.norm() <= 0.5 + 1e-5


def test_callbacks_see_every_epoch_and_token_level_targets_work():
    seen = []
    lm = nn.Sequential(nn.Embedding(5, 8), nn.Linear(8, 5))  # logits (B, T, 5)
    tokens = torch.randint(0, 5, (4, 6))
    data = [(tokens[:, :-1], tokens[:, 1:])]
    history = fit(lm, data, TrainConfig(epochs=3), CPU, eval_batches={"valid": data},
                  callbacks=[lambda h: seen.append(len(h["epoch"]))], progress=False)  # fmt: skip
    assert seen == [1, 2, 3] and 0 <= history.last("valid_accuracy") <= 1
    assert evaluate(lm, data, CPU).count == 4 * 5  # every token is a prediction


class Echo(nn.Module):
    """A perfect next-token model: its logits pick the token it is given."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return 10.0 * F.one_hot(ids.clamp(min=0), 5).float()  # (B, T, 5)


def test_targets_of_minus_100_are_not_predictions():
    """-100 marks "no target" (padding, unmasked tokens): a perfect model scores 100% on the real
    targets, which alone are counted and weigh in the loss."""
    ids = torch.tensor([[1, 2, 3, 4]])
    targets = torch.tensor([[1, 2, -100, -100]])
    metrics = evaluate(Echo(), [(ids, targets)], CPU)
    assert metrics.accuracy == 1.0 and metrics.count == 2 and metrics.loss < 1e-3
    torch.manual_seed(0)
    lm = nn.Sequential(nn.Embedding(5, 8), nn.Linear(8, 5))  # logits (B, T, 5)
    batches = [
        (torch.tensor([[1, 2, 3, 4]]), torch.tensor([[2, -100, -100, -100]])),
        (torch.tensor([[0, 1, 2, 3]]), torch.tensor([[3, 4, 0, 1]])),
    ]  # 1 and 4 real targets
    with torch.no_grad():
        want = F.cross_entropy(torch.cat([lm(x)[y != -100] for x, y in batches]),
                               torch.cat([y[y != -100] for _, y in batches]))  # fmt: skip
    metrics = evaluate(lm, batches, CPU)  # the mean over the 5 real targets, each weighing the same
    assert metrics.count == 5 and metrics.loss == pytest.approx(want.item(), rel=1e-5)
    assert predict(
        lm, [(torch.tensor([[1, 2, 3]]), torch.tensor([[-100, -100, -100]]))], CPU
    ).shape == (3, 5)


def test_empty_inputs_get_clear_messages():
    with pytest.raises(ValueError, match="no training batches: the training split is empty"):
        fit(toy_model(), [], TrainConfig(), CPU, progress=False)
    empty = [(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))]
    with pytest.raises(ValueError, match="training batch 0 is empty"):
        fit(toy_model(), empty, TrainConfig(), CPU, progress=False)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(toy_model(), [], CPU)


class Attention(nn.Module):
    """Stands for a student's MySelfAttention; re-defined below as a student re-runs a cell."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(2, 2)

    def forward(self, x):
        return self.proj(x) * 0  # the bug


def fixed_attention() -> type:
    class Attention(nn.Module):  # the same name, the bug fixed
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(2, 2)

        def forward(self, x):
            return self.proj(x)

    Attention.__qualname__ = "Attention"  # as when a notebook cell is run again
    return Attention


def test_a_checkpoint_made_by_other_code_is_never_reused(tmp_path, capsys):
    path, cfg, data = tmp_path / "run.pt", TrainConfig(epochs=2, lr=0.05), toy_data()

    def model(attention: type) -> nn.Module:
        with seeded(0):
            return nn.Sequential(attention(), nn.ReLU(), nn.Linear(2, 2))

    buggy = fit(model(Attention), data, cfg, CPU, checkpoint=path, progress=False)
    assert path.exists() and capsys.readouterr().out == ""
    fixed = fit(model(fixed_attention()), data, cfg, CPU, checkpoint=path, progress=False)
    said = capsys.readouterr().out
    assert "the code of Attention changed" in said and "training again" in said
    assert fixed["train_loss"] != buggy["train_loss"]  # trained, not reloaded
    again = fit(model(fixed_attention()), data, cfg, CPU, checkpoint=path)
    assert "resuming from run.pt after epoch 2" in capsys.readouterr().out
    assert again["train_loss"] == fixed["train_loss"] and again["seconds"] == fixed["seconds"]
    fit(model(fixed_attention()), data, cfg.replace(lr=0.01), CPU, checkpoint=path, progress=False)
    assert "(the train's lr 0.05 -> 0.01): training again" in capsys.readouterr().out
    fit(model(fixed_attention()), data, cfg.replace(lr=0.01, seed=7), CPU, checkpoint=path,
        progress=False)  # fmt: skip
    said = capsys.readouterr().out
    assert "(the train's seed 42 -> 7): training again" in said  # each field, then and now
    from helpers.training.checkpoints import differences

    assert differences({"run": {"lr": 1, "new": None}}, {"run": {"lr": 1}}) == [
        "the run's new None -> (unset)"
    ]  # a field one side lacks is not one set to None
    fit(model(fixed_attention()), data, cfg.replace(lr=0.01), CPU, checkpoint=path, progress=False,
        identity={"data": "other"})  # fmt: skip
    assert "the data changed" in capsys.readouterr().out


def test_a_checkpoint_of_an_older_helpers_is_named_as_such(tmp_path, capsys):
    """After an upgrade, a checkpoint was said to differ by changes the student never made ("the code
    of GELUActivation, ... changed; the train's precision 'auto' -> 'fp32', steps None -> 300"): the
    way its fingerprint was made had changed."""
    path, cfg = tmp_path / "run.pt", TrainConfig(epochs=1, lr=0.05)
    fit(toy_model(), toy_data(), cfg, CPU, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)
    older = state["fingerprint"]
    del older["format"], older["train"]["steps"]  # as the last helpers wrote it
    older["code"] = {name: "digested otherwise" for name in older["code"]}
    torch.save(state, path)
    fit(toy_model(), toy_data(), cfg, CPU, checkpoint=path, progress=False)
    said = capsys.readouterr().out
    assert ("run.pt was written by another version of helpers (checkpoint format 1, now 2): training "
            "again") in said and "steps" not in said, said  # fmt: skip
    fit(toy_model(), toy_data(), cfg, CPU, checkpoint=path)
    assert "resuming from run.pt after epoch 1" in capsys.readouterr().out


def test_resuming_mid_run_gives_the_run_that_never_stopped(tmp_path):
    data, cfg = toy_data(), TrainConfig(epochs=4, lr=0.05, schedule="constant", seed=3)
    with seeded(3):
        whole = fit(toy_model(), data, cfg, CPU, progress=False)
    path = tmp_path / "part.pt"
    with seeded(3):
        fit(toy_model(), data, cfg.replace(epochs=2), CPU, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)
    state["fingerprint"]["train"]["epochs"] = 4  # pretend the 4-epoch run was killed after epoch 2
    torch.save(state, path)
    with seeded(3):
        resumed = fit(toy_model(), data, cfg, CPU, checkpoint=path, progress=False)
    assert resumed["epoch"] == [1, 2, 3, 4]
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-5)


def test_resuming_a_shuffling_dataloader_draws_the_orders_of_the_run_that_never_stopped(tmp_path):
    """A DataLoader reshuffles from its own generator every epoch; a resumed run started it afresh,
    so its epoch 3 saw epoch 1's order (a different loss). The generator's state is checkpointed."""
    x = torch.cat([b[0] for b in toy_data()])
    y = torch.cat([b[1] for b in toy_data()])

    def batches() -> torch.utils.data.DataLoader:
        pairs = list(zip(x, y))
        return torch.utils.data.DataLoader(
            pairs, 8, shuffle=True, generator=torch.Generator().manual_seed(5)
        )

    cfg = TrainConfig(epochs=4, lr=0.05, schedule="constant", seed=3)
    with seeded(3):
        whole = fit(toy_model(), batches(), cfg, CPU, progress=False)
    path = tmp_path / "part.pt"
    with seeded(3):
        fit(toy_model(), batches(), cfg.replace(epochs=2), CPU, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)
    state["fingerprint"]["train"]["epochs"] = 4  # pretend the 4-epoch run was killed after epoch 2
    torch.save(state, path)
    with seeded(3):
        resumed = fit(toy_model(), batches(), cfg, CPU, checkpoint=path, progress=False)
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)


def test_a_checkpoint_knows_the_precision_used_and_keeps_only_stateful_callbacks(tmp_path, capsys):
    """The fingerprint held the precision's name ("auto"), not the one used: a bf16 GPU run would have
    resumed in fp32 on a CPU. A callback's state is kept only with both state_dict and
    load_state_dict, and given back only to a callback of its type."""

    class HalfStateful:  # state_dict alone: nothing kept, nothing called
        def __call__(self, history):
            pass

        def state_dict(self):
            raise AssertionError("not kept: it cannot be loaded back")

    class Counter:
        def __init__(self):
            self.calls = 0

        def __call__(self, history):
            self.calls += 1

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, kept):
            self.calls = kept["calls"]

    path, data = tmp_path / "run.pt", toy_data()
    counter = Counter()
    fit(toy_model(), data, TrainConfig(epochs=2, precision="fp32"), CPU, checkpoint=path,
        callbacks=[HalfStateful(), counter], progress=False)  # fmt: skip
    assert torch.load(path, weights_only=True)["fingerprint"]["train"]["precision"] == "fp32"
    again = Counter()
    fit(toy_model(), data, TrainConfig(epochs=2, precision="auto"), CPU, checkpoint=path,
        callbacks=[HalfStateful(), again], progress=False)  # fmt: skip
    assert "resuming from run.pt after epoch 2" in capsys.readouterr().out  # auto is fp32 on a CPU
    assert again.calls == 2  # its state from the checkpoint: two epochs counted before

    class Other(Counter):
        pass

    other = Other()
    fit(toy_model(), data, TrainConfig(epochs=2), CPU, checkpoint=path, callbacks=[HalfStateful(), other],
        progress=False)  # fmt: skip
    assert other.calls == 0  # another type's state is not handed to it


def test_an_unreadable_checkpoint_retrains_and_says_so(tmp_path, capsys):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    history = fit(
        toy_model(), toy_data(), TrainConfig(epochs=1), CPU, checkpoint=path, progress=False
    )
    assert "could not be read" in capsys.readouterr().out and len(history["epoch"]) == 1


def test_code_fingerprint_names_our_classes_not_torchs():
    names = code_fingerprint(nn.Sequential(Attention(), nn.ReLU()))
    assert list(names) == [f"{__name__}.Attention"]


CELL = """
import torch.nn as nn

def helper(x):
    return x * SCALE

def outer(x):
    return helper(x)

class Mine(nn.Module):
    def forward(self, x):
        return outer(x)
"""


def test_code_fingerprint_follows_the_functions_a_class_calls(monkeypatch):
    """A helper from another notebook cell, called through another one, or the course's own ``attend``:
    changing it changes the fingerprint, so a checkpoint trained with the old one is not reused."""
    cell = {"__name__": "__main__"}
    exec(CELL, cell)
    before = code_fingerprint(cell["Mine"]())
    exec("def helper(x):\n    return x * SCALE + 1", cell)  # the helper's cell edited and re-run
    assert code_fingerprint(cell["Mine"]()) != before
    exec(CELL, cell)
    assert code_fingerprint(cell["Mine"]()) == before  # the same code again: the same fingerprint
    attention = layers.MultiHeadAttention(8, 2)
    before = code_fingerprint(attention)

    def attend(q, k, v, mask=None, **options):  # a rewrite that ignores the mask
        return v

    attend.__module__ = "helpers.layers"
    monkeypatch.setattr(layers, "attend", attend)
    assert code_fingerprint(attention) != before


WRAPPED = """
import torch.nn as nn

def count(n):
    return 0 if n == 0 else 1 + count(n - 1)

plain_count = count

def count(n):  # a wrapper around the function it replaces, under the same name
    return plain_count(n) * K

class Mine(nn.Module):
    def forward(self, x):
        return x * count(3)
"""


def test_code_fingerprint_keeps_a_wrapper_and_the_function_it_wraps():
    """Two functions of one name that call each other: the walk ended in a loop, and an edit of the
    wrapper went unseen (only one of the two was kept)."""
    cell = {"__name__": "__main__", "K": 1}
    exec(WRAPPED, cell)
    before = code_fingerprint(cell["Mine"]())
    exec(WRAPPED.replace("* K", "* K + 1"), cell)
    assert code_fingerprint(cell["Mine"]()) != before


def test_the_same_seed_gives_the_same_run_and_the_callers_generator_is_left_alone():
    def run(seed: int) -> History:
        with seeded(seed):
            model = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.5), nn.Linear(16, 2))
            return fit(model, toy_data(), TrainConfig(epochs=2, seed=seed), CPU, progress=False)

    state = torch.get_rng_state()
    assert run(1)["train_loss"] == run(1)["train_loss"] != run(2)["train_loss"]
    assert torch.equal(torch.get_rng_state(), state)
    assert all(math.isfinite(v) for v in run(1)["train_loss"])


def test_an_infinite_learning_rate_is_refused():
    with pytest.raises(ConfigError, match="TrainConfig.lr must be > 0 and finite, got inf"):
        TrainConfig(lr=float("inf"))


def test_perplexity_is_exp_of_the_loss_and_inf_past_overflow():
    assert perplexity(torch.tensor(0.0)) == 1.0 and abs(perplexity(2.0) - 7.389) < 1e-3
    assert perplexity(800.0) == math.inf and math.isnan(perplexity(math.nan))  # a diverged run


def sized_batches(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 2, generator=g), torch.randint(0, 2, (n,), generator=g)) for n in sizes]


def test_linear_schedule_with_accumulation_counts_optimizer_steps():
    """8 batches, 2 a step: 4 optimizer steps an epoch, 16 in 4 epochs, so each epoch starts at
    1, 3/4, 1/2, 1/4 of the rate. Catches the schedule's total counted in batches (32 steps):
    the rate ends at half instead of 0, and any warm-up lasts twice as long."""
    cfg = TrainConfig(epochs=4, lr=0.1, accumulate=2, schedule="linear", optimizer="sgd")
    history = fit(toy_model(), sized_batches([8] * 8), cfg, CPU, progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.075, 0.05, 0.025])


def test_train_loss_is_the_mean_over_predictions_not_over_batches():
    """A batch of 8 and a batch of 1: the epoch's loss weighs each example alike (as evaluate does).
    With a vanishing learning rate the training pass and an evaluation see the same model.
    Catches train_loss as the mean of the batch means."""
    batches = sized_batches([8, 1], seed=3)
    model = toy_model()
    cfg = TrainConfig(epochs=1, lr=1e-12, optimizer="sgd", schedule="constant", clip=None)
    history = fit(model, batches, cfg, CPU, progress=False)
    assert history["train_loss"][0] == pytest.approx(evaluate(model, batches, CPU).loss, rel=1e-5)


def test_evaluate_runs_in_eval_mode_without_a_graph():
    """Catches evaluate leaving dropout on or
    building an autograd graph (memory)."""
    seen = []

    def outputs(model, batch):
        seen.append((model.training, torch.is_grad_enabled()))
        return batch_outputs(model, batch)

    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    evaluate(model, sized_batches([4, 4]), CPU, outputs=outputs)
    assert seen == [(False, False), (False, False)]


def test_an_epoch_line_is_printed_once_its_checkpoint_is_saved(tmp_path, capsys, monkeypatch):
    """The line was printed before the save: a Ctrl-C in between lost an epoch the run had shown."""
    from helpers.training import loop

    printed, real = [], loop.save_checkpoint

    def save(path, state):
        printed.append(capsys.readouterr().out)  # what the run had printed when the save began
        return real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", save)
    fit(toy_model(), toy_data(), TrainConfig(epochs=2), CPU, checkpoint=tmp_path / "c.pt")
    assert "epoch 1/2" not in printed[0] and "epoch 1/2" in printed[1] + capsys.readouterr().out


@pytest.mark.parametrize("content", [b"garbage\n", b"PK\x03\x04" + b"\x00" * 40])
def test_a_checkpoint_that_unpickles_into_nonsense_retrains(tmp_path, capsys, content):
    """Bytes that unpickle into an error other than torch's (a ValueError from b"garbage\\n") or
    into something with no fingerprint retrain, as a file cut short does."""
    path = tmp_path / "odd.pt"
    path.write_bytes(content)
    history = fit(
        toy_model(), toy_data(), TrainConfig(epochs=1), CPU, checkpoint=path, progress=False
    )
    assert len(history["epoch"]) == 1
    torch.save({"fingerprint": "not a dict"}, path)
    assert load_checkpoint(path, {})[0] is None


@pytest.mark.parametrize(
    "error",
    [PermissionError(13, "Permission denied"), OSError(5, "Input/output error"), MemoryError()],
    ids=["permission", "disk", "memory"],
)
def test_a_checkpoint_that_cannot_be_read_now_is_never_trained_over(tmp_path, monkeypatch, error):
    """Reading a good checkpoint can fail for a while (permissions, a disk or network error, memory):
    that error reached the user as "could not be read; training again", and the first epoch wrote
    over the checkpoint. A file cut short (EINVAL) is still damage, trained again."""
    from helpers.training import checkpoints

    path = tmp_path / "run.pt"
    fit(toy_model(), toy_data(), TrainConfig(epochs=1), CPU, checkpoint=path, progress=False)
    kept = path.read_bytes()

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(checkpoints.torch, "load", failing)
    with pytest.raises(type(error)) as raised:
        fit(toy_model(), toy_data(), TrainConfig(epochs=2), CPU, checkpoint=path, progress=False)
    named = f"(while reading the checkpoint {path}: it is kept, not trained over)"
    assert raised.value.__notes__ == [named]  # the error alone did not say which file
    error.__notes__.clear()
    with pytest.raises(type(error)) as raised:
        check_own_checkpoint(path, "helpers.finetune", "--checkpoint")
    assert raised.value.__notes__ == [named]
    assert path.read_bytes() == kept
    monkeypatch.undo()
    path.write_bytes(kept[:-1])  # cut short: torch raises OSError(EINVAL)
    state, why = load_checkpoint(path, {})
    assert state is None and "training again" in why


def test_a_checkpoint_that_cannot_be_written_is_refused_before_the_first_epoch(
    tmp_path, monkeypatch
):
    """A read-only place (a shared cache) lost a whole epoch before the save failed; a finished run
    there still loads, since nothing is left to write."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    steps = []
    model = toy_model()
    model.register_forward_hook(lambda *args: steps.append(1))
    with pytest.raises(ValueError, match="a-file is a file, not a folder"):
        fit(
            model,
            toy_data(),
            TrainConfig(epochs=1),
            CPU,
            checkpoint=blocked / "c.pt",
            progress=False,
        )
    assert steps == []
    path = tmp_path / "c.pt"
    torch.manual_seed(0)
    fit(toy_model(), toy_data(), TrainConfig(epochs=1), CPU, checkpoint=path, progress=False)

    def read_only(path, create=True):
        raise ValueError(f"cannot write {path}: Permission denied; choose another place")

    monkeypatch.setattr("helpers.training.loop.check_writable", read_only)
    torch.manual_seed(0)
    again = fit(
        toy_model(), toy_data(), TrainConfig(epochs=1), CPU, checkpoint=path, progress=False
    )
    assert len(again["epoch"]) == 1


def test_predict_gives_class_probabilities_in_batch_order():
    """Only its shape was checked: raw logits passed, and notebook 03's "confidence" would show them."""
    model, batches = toy_model(), toy_data()
    probs = predict(model, batches, CPU)
    with torch.no_grad():
        want = torch.softmax(torch.cat([model(x) for x, _ in batches]), dim=-1)
    assert torch.allclose(probs, want, atol=1e-6) and torch.allclose(probs.sum(1), torch.ones(64))


@pytest.mark.parametrize(
    ("name", "kind"),
    [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)],
)
def test_each_optimizer_name_builds_that_optimizer(name, kind):
    """Notebook 04 compares the three: "rmsprop" running SGD passed every test."""
    optimizer = make_optimizer(TrainConfig(optimizer=name, lr=0.01), toy_model())
    assert type(optimizer) is kind and optimizer.defaults["lr"] == 0.01
    if name == "sgd":
        assert optimizer.defaults["momentum"] == 0.9


def test_training_batches_run_in_train_mode():
    """Catches run_epoch leaving the model in eval mode (after an evaluation): no dropout."""
    modes = []
    model = toy_model()
    model.register_forward_hook(lambda module, args, out: modes.append(module.training))
    fit(
        model,
        toy_data(16),
        TrainConfig(epochs=2),
        CPU,
        eval_batches={"valid": toy_data(8)},
        progress=False,
    )
    # per epoch: 2 training batches, then 1 evaluation batch
    assert modes == [True, True, False, True, True, False]


class _RunsCode:
    """Unpickled, it calls open(marker, "w"): what a planted checkpoint could do with any function."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    """A checkpoint found in a shared run folder or a copied cache is loaded tensors-only: with
    weights_only=False, reading it ran its code even where the command then refused the file."""
    marker, path = tmp_path / "code ran", tmp_path / "run-checkpoint.pt"
    torch.save({"fingerprint": _RunsCode(marker), "epoch": 1}, path)
    state, why = load_checkpoint(path, {})
    assert state is None and "cannot run code" in why and "weights_only" not in why
    with pytest.raises(ValueError, match="is not a checkpoint of helpers.finetune"):
        check_own_checkpoint(path, "helpers.finetune", "--checkpoint")
    assert not marker.exists()


class _SkipsFirstStep:
    """GradScaler's contract in fp16 when the first step's gradients are inf: ``step`` skips the
    update, ``update`` cuts the scale (what a T4 run meets while the scale settles)."""

    def __init__(self):
        self.steps, self.current = 0, 2.0**16

    def scale(self, loss):
        return loss

    def unscale_(self, optimizer):
        pass

    def step(self, optimizer):
        self.steps += 1
        if self.steps > 1:
            optimizer.step()

    def update(self):
        if self.steps == 1:
            self.current /= 2

    def get_scale(self):
        return self.current


def test_a_step_the_fp16_scaler_skips_spends_no_learning_rate_step():
    """The schedule went on through skipped steps: a warm-up spent on them left the first real
    update at the peak rate (a helper session's mixed-precision audit)."""
    from tqdm.auto import tqdm

    from helpers.training.loop import run_epoch

    model, cfg = toy_model(), TrainConfig(epochs=1, lr=0.1, warmup=0.5, schedule="linear")
    optimizer = make_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: step + 1.0)
    scaler = _SkipsFirstStep()
    with tqdm(disable=True) as bar:
        run_epoch(model, toy_data(32), optimizer, scheduler, scaler, cfg, CPU, "fp32",
                  batch_outputs, bar)  # fmt: skip
    assert scaler.steps == 4 and scheduler.last_epoch == 3  # 4 steps, the first skipped


def _loss_plain(model, batch):
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits, y), logits, y


def _loss_smoothed(model, batch):
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits, y, label_smoothing=0.5), logits, y


def _collate(rows):
    return torch.stack([x for x, _ in rows]), torch.stack([y for _, y in rows])


def _collate_noisy(rows):
    return torch.stack([x + 1 for x, _ in rows]), torch.stack([y for _, y in rows])


def _resumes(tmp_path, capsys, first: dict, second: dict) -> str:
    """What a second fit on the first's (finished) checkpoint printed."""
    path = tmp_path / "run.pt"
    fit(
        toy_model(), cfg=TrainConfig(epochs=2), device=CPU, checkpoint=path, progress=False, **first
    )
    capsys.readouterr()
    fit(
        toy_model(), cfg=TrainConfig(epochs=2), device=CPU, checkpoint=path, progress=True, **second
    )
    return capsys.readouterr().out


def test_a_checkpoint_trained_with_another_loss_or_batches_code_is_not_resumed(tmp_path, capsys):
    """Only the model's classes were fingerprinted: a run whose loss (``outputs``), collate function
    or batch-making function had changed resumed the old weights as if nothing had."""
    rows = [(x, y) for xs, ys in toy_data() for x, y in zip(xs, ys)]

    def loader(collate):
        return torch.utils.data.DataLoader(rows, batch_size=16, collate_fn=collate)

    cases = [
        ({"train_batches": toy_data(), "outputs": _loss_plain}, {"outputs": _loss_smoothed}),
        ({"train_batches": loader(_collate)}, {"train_batches": loader(_collate_noisy)}),
        ({"train_batches": lambda epoch: [(x, y) for x, y in toy_data()]},
         {"train_batches": lambda epoch: [(x * 2, y) for x, y in toy_data()]}),
    ]  # fmt: skip
    for first, changed in cases:
        said = _resumes(tmp_path, capsys, first, {**first, **changed})
        assert "(the training code changed): training again" in said, said
        (tmp_path / "run.pt").unlink()
        said = _resumes(tmp_path, capsys, first, first)  # the same code: resumed
        assert "resuming from run.pt after epoch 2" in said, said
        (tmp_path / "run.pt").unlink()


STATIC_INIT = """
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
"""


def test_code_fingerprint_reads_static_and_class_methods():
    """A static method (GPT's weight init) was left out of the fingerprint: a changed init resumed."""
    cell = {"__name__": "__main__"}
    exec(STATIC_INIT, cell)
    before = code_fingerprint(cell["Net"]())
    exec(STATIC_INIT.replace("std=0.02", "std=0.5"), cell)
    assert code_fingerprint(cell["Net"]()) != before


def test_evaluate_and_predict_give_the_model_back_in_the_mode_it_had():
    """Both left a training model in evaluation mode: a caller's own loop lost its dropout."""
    model, data = toy_model(), toy_data()
    for mode in (True, False):
        model.train(mode)
        evaluate(model, data, CPU)
        assert model.training is mode
        predict(model, data, CPU)
        assert model.training is mode


def test_fit_with_evaluation_leaves_callbacks_and_the_caller_a_model_in_eval_mode():
    """With evaluate restoring the mode, callbacks (live plots, samples) and the caller got the model
    with dropout on; fit keeps what it did before: evaluated, the model stays in eval mode."""
    seen = []
    model = toy_model()
    fit(model, toy_data(), TrainConfig(epochs=2), CPU, eval_batches={"valid": toy_data(16)},
        callbacks=[lambda history: seen.append(model.training)], progress=False)  # fmt: skip
    assert seen == [False, False] and not model.training


def test_gradients_left_on_the_model_are_not_part_of_the_first_step():
    """A backward before fit (a probe, an earlier cell) added its gradients to fit's first step."""
    data, cfg = toy_data()[:1], TrainConfig(epochs=1, lr=0.5, optimizer="sgd", schedule="constant")
    clean, dirty = toy_model(), toy_model()
    x, y = toy_data(seed=5)[0]
    F.cross_entropy(dirty(x), y).backward()
    fit(clean, data, cfg, CPU, progress=False)
    fit(dirty, data, cfg, CPU, progress=False)
    for a, b in zip(clean.parameters(), dirty.parameters()):
        assert torch.equal(a, b)


def test_a_nan_evaluation_loss_is_a_diverged_run_even_with_a_finite_training_loss():
    """The training loss is measured before each update, so an update that wrecks the model after the
    last batch showed only in the evaluations: imdb reported "test accuracy 70.00%" with NaN losses."""
    from helpers.training.loop import Diverged, check_finite_losses

    history = {
        "train_loss": [0.7, 0.6],
        "valid_loss": [0.69, math.nan],
        "valid_accuracy": [0.5, 0.7],
    }
    with pytest.raises(Diverged, match=r"the validation loss was nan in epoch 2 at --lr 0.1;"):
        check_finite_losses(history, 0.1)
    with pytest.raises(Diverged, match=r"the dev loss was inf in epoch 1 at --small-lr 1e\+30"):
        check_finite_losses({"train_loss": [1.0], "dev_loss": [math.inf]}, 1e30, "--small-lr")
    with pytest.raises(Diverged, match="the training loss was nan in epoch 1"):  # training's first
        check_finite_losses({"train_loss": [math.nan], "dev_loss": [math.nan]}, 1.0)
    check_finite_losses({"train_loss": [0.5], "dev_loss": [0.4], "dev_accuracy": [math.nan]}, 1.0)


@pytest.mark.skipif(
    not hasattr(__import__("tqdm.utils").utils, "envwrap"),
    reason="tqdm reads TQDM_DISABLE from 4.66",
)
@pytest.mark.parametrize("quiet", ["1", ""])
def test_tqdm_disable_quiets_the_training_bar(quiet):
    """fit passed disable=False, which overrode TQDM_DISABLE: the bar was drawn whatever it said (an
    environment probe, stop 56). tqdm reads the variable when it is imported: a process of its own."""
    code = (
        "import torch, torch.nn as nn\n"
        "from helpers.training import TrainConfig, fit\n"
        "data = [(torch.randn(8, 2), torch.randint(2, (8,))) for _ in range(4)]\n"
        "fit(nn.Linear(2, 2), data, TrainConfig(epochs=1), 'cpu', epoch_lines=False)\n"
        "from helpers.text import tokenize\n"
        "tokenize(['a film', 'another film'])\n"
    )
    env = {**os.environ, "TQDM_DISABLE": quiet, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert ("training:" in done.stderr) == (quiet == ""), done.stderr
    assert ("tokenising:" in done.stderr) == (quiet == ""), done.stderr
