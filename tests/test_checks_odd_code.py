"""What students really submit, across the notebooks' checkers: code that changes its inputs in
place, a signature other than the exercise's, float64 results, sys.exit, a stub left in one half of
an exercise, a module that cannot run without a mask. Each gets a message that names it."""

import math

import pytest
import torch
from test_checks_02 import attention_class, norm_class, norm_var_mean, with_matmul
from test_checks_02_blocks import (
    block_class,
    heads_class,
    loop_with_softmax,
    post_ln,
    split_by_reshape,
    with_view_and_transpose,
)
from test_checks_04 import collate_right, step_right
from test_checks_09 import task_loop

from helpers import checks
from helpers.attention import selection_query
from helpers.checks import bert as bert_checks
from helpers.checks import finetune as finetune_checks
from helpers.checks import lookup
from helpers.checks.scaling import check_task
from helpers.feedback import run_check
from helpers.finetune.models import load_tokenizer

# --- inputs changed in place -----------------------------------------------------------------------


def softmax_scaling_keys_in_place(query, keys, values):
    keys /= math.sqrt(keys.shape[-1])  # the √d mistake, made in place
    weights = torch.softmax(query @ keys.T, dim=-1)
    return weights @ values, weights


def layer_norm_centring_in_place(self, x):
    dims = tuple(range(-len(self.normalized_shape), 0))
    x -= x.mean(dim=dims, keepdim=True)  # rewrites a pre-LN block's residual stream
    var = (x**2).mean(dim=dims, keepdim=True)
    return x / torch.sqrt(var + self.eps) * self.weight + self.bias


def loop_halving_x_in_place(query, key, value, x, mask=None):
    x /= 2
    return loop_with_softmax(query, key, value, 2 * x, mask)


def attention_scaling_x_in_place(self, x, mask=None):
    x.mul_(2)  # the right values below, but the caller's x is now doubled
    return with_matmul(self, x / 2, mask)


def post_ln_adding_in_place(self, x, mask=None):
    x += self.attn(x, mask)
    h = self.ln1(x)
    return self.ln2(h + self.ff(h))


@pytest.mark.parametrize(
    ("check", "said"),
    [(lambda: lookup.check_softmax_attention(softmax_scaling_keys_in_place), "input keys"),
     (lambda: checks.check_layer_norm(norm_class(layer_norm_centring_in_place)), "input x"),
     (lambda: checks.check_loop_attention(loop_halving_x_in_place), "input x"),
     (lambda: checks.check_self_attention(attention_class(attention_scaling_x_in_place)), "input x"),
     (lambda: checks.check_post_ln_block(block_class(post_ln_adding_in_place)), "input x")],
    ids=["softmax-attention", "layer-norm", "loop-tester", "self-attention", "post-ln"],
)  # fmt: skip
def test_an_input_changed_in_place_is_named(check, said):
    result = check()
    assert not result.passed and f"changed its {said} in place" in result.verdict, result


def test_right_answers_still_pass_when_watched_for_in_place_changes():
    assert checks.check_layer_norm(norm_class(norm_var_mean)).passed
    assert checks.check_self_attention(attention_class(with_matmul)).passed
    assert checks.check_post_ln_block(block_class(post_ln)).passed


# --- the exercise's signature, dtype, sys.exit -----------------------------------------------------


def test_a_signature_other_than_the_exercises_is_named_not_blamed_on_a_return():
    result = lookup.check_softmax_attention(lambda query, keys: None)
    assert (
        not result.passed and "could not call your code the way the exercise does" in result.verdict
    )
    assert "positional argument" in result.hints[0], result


def test_float64_results_are_named():
    def double_attention(self, x, mask=None):
        return with_matmul(self, x, mask).double()

    result = checks.check_self_attention(attention_class(double_attention))
    assert not result.passed and "float64 (double)" in result.verdict, result


def test_sys_exit_in_a_students_function_is_a_result_not_the_end_of_the_cell():
    def exits():
        raise SystemExit("bad input")

    result = run_check("exercise", exits)
    assert not result.passed and result.verdict == "your code called sys.exit('bad input')"


def test_a_task_refused_with_sys_exit_is_a_refusal_and_a_missing_return_is_named():
    def task_exiting(lrs, epochs, index):
        if not 0 <= index < len(lrs) * len(epochs):
            raise SystemExit(f"task {index} is not in the grid")  # a Slurm script's habit
        return task_loop(lrs, epochs, index)

    assert check_task(task_exiting).passed
    result = check_task(lambda lrs, epochs, index: None)
    assert not result.passed and "did you forget `return`" in result.verdict, result


# --- one half still a stub; a module run without a mask ---------------------------------------------


def test_split_done_and_merge_still_a_stub_reads_not_implemented():
    def merge_stub(x):
        raise NotImplementedError("undo the split")

    result = checks.check_split_merge(split_by_reshape, merge_stub)
    assert result.not_implemented, result


def test_a_module_that_cannot_run_without_a_mask_is_named():
    def heads_needing_a_mask(self, x, mask=None):
        mask.bool()  # crashes on None
        return with_view_and_transpose(self, x, mask)

    def block_needing_a_mask(self, x, mask=None):
        return post_ln(self, x, mask.bool())

    for result in (checks.check_multi_head_attention(heads_class(heads_needing_a_mask)),
                   checks.check_post_ln_block(block_class(block_needing_a_mask))):  # fmt: skip
        assert not result.passed and "forward(x) without a mask raised" in result.verdict, result
    assert checks.check_multi_head_attention(heads_class(with_view_and_transpose)).passed


# --- notebook 04's collate: the checker's rows are the student's copies ----------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def test_a_collate_that_pops_the_label_is_named_and_the_checker_stays_whole(tokenizer):
    def collate_popping(rows, tokenizer, task, labels, max_length):
        texts = [r[task.text] for r in rows]
        pairs = [r[task.pair] for r in rows] if task.pair else None
        batch = tokenizer(texts, pairs, padding=True, truncation="only_second" if pairs else True,
                          max_length=max_length, return_tensors="pt")  # fmt: skip
        batch["labels"] = torch.tensor([labels[r.pop(task.label)] for r in rows])
        return batch

    result = finetune_checks.check_collate(collate_popping, tokenizer)
    assert not result.passed and "changed the rows it was given" in result.verdict, result
    assert finetune_checks.check_collate(collate_right, tokenizer).passed


def test_labels_with_an_extra_axis_are_named_as_a_shape(tokenizer):
    def collate_column(rows, tokenizer, task, labels, max_length):
        batch = collate_right(rows, tokenizer, task, labels, max_length)
        batch["labels"] = batch["labels"][:, None]  # (B, 1)
        return batch

    result = finetune_checks.check_collate(collate_column, tokenizer)
    assert not result.passed and "labels have shape (2, 1), expected (2,)" in result.verdict, result


def test_nan_weights_are_named():
    def nan_attention(query, keys, values):
        weights = torch.full((*query.shape[:-1], keys.shape[0]), float("nan"), dtype=query.dtype)
        return weights @ values, weights

    result = lookup.check_softmax_attention(nan_attention)
    assert not result.passed and "hold NaN" in result.verdict, result


# --- after a review of the first round of these fixes ----------------------------------------------


def test_right_answers_in_numpy_or_literal_tuples_pass():
    import numpy as np
    from test_checks_03 import step_zero_first

    from helpers.checks import pipeline

    def task_numpy_row(lrs, epochs, index):
        grid = np.array([(lr, e) for lr in lrs for e in epochs])  # (n, 2)
        if not 0 <= index < len(grid):
            raise ValueError("no such task")
        return grid[index]

    def step_numpy_loss(model, batch, optimizer):
        return np.float32(step_zero_first(model, batch, optimizer))

    def mean_over_a_literal_tuple(x, mask):
        x, m = (t.to(x.dtype) for t in (x, mask))  # a loop over two names, not over the data
        m = m.unsqueeze(-1)
        return (x * m).sum(1) / m.sum(1).clamp(min=1)

    assert check_task(task_numpy_row).passed
    assert pipeline.check_train_step(step_numpy_loss).passed
    assert pipeline.check_masked_mean(mean_over_a_literal_tuple).passed


def test_loaders_that_are_not_dataloaders_are_named():
    from helpers.checks import pipeline

    result = pipeline.check_loaders(lambda train, valid, size, collate: (list(train), list(valid)))
    assert not result.passed and result.verdict == "the train loader is a list", result


def test_messages_read_as_english():
    from helpers.checks.code import guarded
    from helpers.feedback import kind_of

    assert run_check("exercise", lambda: exit_plainly()).verdict == "your code called sys.exit()"
    assert kind_of(torch.zeros(1).numpy()) == "an ndarray"
    untouched = torch.tensor([float("nan"), 1.0])
    assert guarded(lambda x: x + 1, ("x",))(untouched).isnan().any()  # NaN left alone is no change


def exit_plainly():
    raise SystemExit


def test_none_or_a_tuple_where_a_tensor_belongs_is_named_not_a_crash():
    def norm_without_return(self, x):
        norm_var_mean(self, x)

    def norm_returning_a_pair(self, x):
        return norm_var_mean(self, x), None

    missing = checks.check_layer_norm(norm_class(norm_without_return))
    assert missing.verdict == "your code returned None: did you forget `return`?", missing
    pair = checks.check_layer_norm(norm_class(norm_returning_a_pair))
    assert pair.verdict == "your code returned a tuple", pair


def test_notebook_01s_query_exercises_name_keys_changed_in_place():
    def selection_scaling_keys(keys, j, strength):
        keys[j] *= strength  # the right query, but the caller's keys are changed
        return keys[j].clone()

    result = lookup.check_selection_query(selection_scaling_keys)
    assert not result.passed and "changed its input keys in place" in result.verdict, result


# --- notebooks 07 and 08, after a student's walk through them --------------------------------------


def test_a_sampling_loop_that_crops_the_sequence_itself_is_told_to_crop_a_copy():
    from helpers.checks.gpt import check_generate

    def generate_cropping_idx(model, idx, steps, block_size, temperature, generator):
        for _ in range(steps):
            idx = idx[:, -block_size:]  # the hint's slice, applied to the sequence itself
            probs = torch.softmax(model(idx)[:, -1, :] / temperature, dim=-1)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return idx

    result = check_generate(generate_cropping_idx)
    assert not result.passed and "the sequence itself was cut to block_size" in result.verdict
    assert "a variable of its own" in result.hints[0], result


def test_greedy_names_torch_max_and_a_missing_return():
    from helpers.checks.sampling import check_greedy

    pair = check_greedy(lambda z: torch.max(z, dim=-1, keepdim=True))
    assert not pair.passed and "(values, indices) pair" in pair.verdict, pair
    missing = check_greedy(lambda z: None)
    assert missing.verdict == "it returned None: did you forget `return`?", missing


def test_hints_escalate_from_the_idea_to_the_answer_in_notebook_07():
    from helpers.checks.gpt import check_causal_softmax
    from helpers.feedback import forget_attempts

    def inverted(scores):
        allowed = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        return torch.softmax(scores.masked_fill(allowed, float("-inf")), dim=-1)

    forget_attempts()
    first = str(check_causal_softmax(inverted))
    second = str(check_causal_softmax(inverted))
    assert "which positions must get -inf" in first and "masked_fill(~allowed" not in first
    assert "masked_fill(~allowed" in second


def test_a_verdict_is_never_cut_inside_a_parenthesis():
    from helpers.checks.sampling import check_temperature

    result = check_temperature(lambda z, t: torch.softmax(z, dim=-1))  # no temperature at all
    assert result.verdict.endswith("the temperature has no effect"), result


# --- notebooks 03 and 04, after a student's walk through them --------------------------------------


def test_nb03_evaluate_returning_nan_fails_its_check():
    from helpers.checks import pipeline

    result = pipeline.check_evaluate(lambda model, batches: float("nan"))
    assert not result.passed and "accuracy nan" in result.verdict, result


def test_nb04_step_that_pops_the_labels_is_named(tokenizer):
    from helpers.checks.finetune import check_train_step

    def step_popping(model, batch, optimizer, scheduler, clip=1.0):
        model.train()
        optimizer.zero_grad()
        labels = batch.pop("labels")
        logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        return loss.item()

    result = check_train_step(step_popping)
    assert not result.passed and "changed the batch it was given" in result.verdict, result


# --- notebook 09, after a student's walk through it -------------------------------------------------


def test_a_shard_that_counts_ranks_from_1_is_named():
    from helpers.checks.scaling import check_shard

    def shard_from_1(batches, rank, world):
        usable = len(batches) - len(batches) % world
        return batches[rank + 1 : usable : world]

    result = check_shard(shard_from_1)
    assert not result.passed and "ranks count from 0" in result.verdict, result


# --- after a review of the walks' fixes ------------------------------------------------------------


def test_a_step_that_reshapes_the_labels_in_the_batch_still_passes(tokenizer):
    from helpers.checks.finetune import check_train_step

    def step_flattening_labels(model, batch, optimizer, scheduler, clip=1.0):
        batch["labels"] = batch["labels"].view(-1)  # the same labels, a new view
        return step_right(model, batch, optimizer, scheduler, clip)

    assert check_train_step(step_flattening_labels).passed


def test_a_sampling_loop_that_never_appends_is_told_to_append():
    from helpers.checks.gpt import check_generate

    def generate_without_append(model, idx, steps, block_size, temperature, generator):
        for _ in range(steps):
            probs = torch.softmax(model(idx[:, -block_size:])[:, -1, :] / temperature, dim=-1)
            torch.multinomial(probs, 1, generator=generator)
        return idx

    result = check_generate(generate_without_append)
    assert not result.passed and "append each new token" in result.hints[0], result


def test_a_missing_attribute_of_the_students_class_is_not_called_a_return_value():
    from torch import nn

    class DropNamed(
        nn.Module
    ):  # right, but its dropout is self.drop, not the exercise's self.dropout
        def __init__(self, bert, num_labels, dropout):
            super().__init__()
            self.bert, self.drop = bert, nn.Dropout(dropout)
            self.head = nn.Linear(bert.config.hidden_size, num_labels)

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            pooled = self.bert(input_ids, attention_mask, token_type_ids).pooler_output
            return torch.log_softmax(self.head(self.drop(pooled)), dim=-1)

    from helpers.checks.bert import check_classifier

    result = check_classifier(DropNamed)
    assert result.verdict == "the checker looked for an attribute your DropNamed does not have"
    assert "'dropout'" in result.hints[0], result


def _without_return(fn):
    """``fn`` as a student writes it when the last line is not `return …`: it runs, and gives None."""

    def body(*args, **kwargs):
        fn(*args, **kwargs)

    return body


@pytest.mark.parametrize(
    ("check", "fn"),
    [
        (finetune_checks.check_train_step, step_right),
        (finetune_checks.check_evaluate, finetune_checks.reference_evaluate),
        (check_task, task_loop),
        (checks.check_selection_query, selection_query),
        (bert_checks.check_layer_count, lambda H, ff: 12 * H * H),
    ],
    ids=["training step", "evaluate", "array task", "selection query", "layer count"],
)
def test_a_missing_return_is_named_as_such(check, fn):
    result = check(_without_return(fn))
    assert not result.passed and "None" in result.verdict and "forget `return`" in result.verdict, (
        str(result)
    )
