"""Hints escalate from the idea to the answer (notebook 01's own test: tests/test_checks_01.py): across
the notebooks, the first hint a catch-all mistake prints holds no answer code, and a named mistake's
verdict and first hint never say the same thing twice."""

import pytest
import torch
import torch.nn.functional as F

from helpers.checks import gpt, lookup, pipeline, pretraining, sampling, scaling, tokenization
from helpers.feedback import named


def causal_scaled_again(s):
    T = s.shape[-1]
    return torch.softmax(
        (s / 2).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")), -1
    )


def generate_temperature_squared(model, idx, steps, block_size, temperature, generator):
    for _ in range(steps):
        logits = model(idx[:, -block_size:])[:, -1, :] / temperature**2
        idx = torch.cat(
            [idx, torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)], 1
        )
    return idx


def train_step_half_loss(model, batch, optimizer):
    ids, mask, labels = batch
    model.train()
    optimizer.zero_grad()
    loss = 0.5 * F.cross_entropy(model(ids, mask), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def evaluate_off_by_one(model, batches):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for ids, mask, labels in batches:
            correct += (model(ids, mask).argmax(dim=-1) == labels).sum().item()
            total += len(labels)
    return correct / (total + 1)


def merge_with_a_joiner(words, pair):
    out = {}
    for word, n in words.items():
        new, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                new.append(word[i] + "+" + word[i + 1])  # a piece the vocabulary does not hold
                i += 2
            else:
                new.append(word[i])
                i += 1
        out[tuple(new)] = out.get(tuple(new), 0) + n
    return out


def rescale_by_the_old_std(emb, std):
    factor = emb.word.weight.std().item() / std
    with torch.no_grad():
        for table in (emb.word, emb.position, emb.token_type):
            table.weight.div_(factor * std)  # std 1, not std
    return factor


CATCH_ALLS = {  # checker, a wrong answer that reaches its catch-all, the answer its last hint gives
    "causal softmax": (gpt.check_causal_softmax, causal_scaled_again, "masked_fill(~torch.ones"),
    "sampling loop": (
        gpt.check_generate,
        generate_temperature_squared,
        "torch.multinomial(probs, 1",
    ),
    "temperature": (
        sampling.check_temperature,
        lambda z, t: torch.softmax(z, -1) ** (1 / t),
        "torch.softmax(logits / temperature",
    ),
    "greedy": (sampling.check_greedy, lambda z: z.topk(2, dim=-1).indices[:, 1:], "argmax(dim=-1"),
    "masked mean": (
        pipeline.check_masked_mean,
        lambda x, m: (x * m.unsqueeze(-1)).sum(1) / (m.sum(1, keepdim=True) + 1),
        "m.sum over tokens",
    ),
    "train step": (
        pipeline.check_train_step,
        train_step_half_loss,
        "F.cross_entropy(model(ids, mask)",
    ),
    "evaluate": (pipeline.check_evaluate, evaluate_off_by_one, "argmax(dim=-1) == labels"),
    "all-reduce": (
        scaling.check_all_reduce,
        lambda grads: [torch.stack(grads).median(0).values for _ in grads],
        "torch.stack(grads).mean(dim=0)",
    ),
    "merge": (tokenization.check_merge, merge_with_a_joiner, "append word[i] + word[i + 1]"),
    "rescale": (
        pretraining.check_rescale,
        rescale_by_the_old_std,
        "factor = embeddings.word.weight.std()",
    ),
}


@pytest.mark.parametrize("name", CATCH_ALLS)
def test_a_catch_alls_first_hint_gives_the_idea_not_the_answer(name):
    check, wrong, answer = CATCH_ALLS[name]
    result = check(wrong)
    assert not result.passed and len(result.hints) >= 2, str(result)
    assert answer not in str(result) and answer in result.hints[-1], str(result)  # shown: the first
    shown = [str(check(wrong)) for _ in result.hints[1:]]  # one more hint per further try
    assert answer in shown[-1], shown[-1]


NAMED = {  # checker, a named mistake whose text once had no hint part (or repeated it)
    "temperature multiplied": (sampling.check_temperature, lambda z, t: torch.softmax(z * t, -1)),
    "temperature over the batch": (
        sampling.check_temperature,
        lambda z, t: torch.softmax(z / t, 0),
    ),
    "causal: no mask": (gpt.check_causal_softmax, lambda s: torch.softmax(s, -1)),
}


@pytest.mark.parametrize("name", NAMED)
def test_a_named_mistakes_verdict_and_first_hint_say_different_things(name):
    check, wrong = NAMED[name]
    result = check(wrong)
    verdict = result.verdict.split(": ")[-1]  # after "at temperature 0.5: "
    assert not result.passed and result.hints and verdict not in result.hints[0], str(result)
    assert not result.hints[0].startswith(verdict[:20]), str(result)


def test_a_named_mistake_without_a_hint_is_a_bug_in_the_checker():
    assert named("x", "the sum: divide by N").hints == ["divide by N"]
    with pytest.raises(ValueError, match="needs a hint after ': '"):
        named("x", "the da features are summed instead of weighted by w2")


def test_named_mistakes_hint_what_to_do_not_only_what_went_wrong():
    """A second review of the rewrite: the causal mask's named mistakes printed, as their hint, only a
    restatement; temperature's 'multiply' hint asked which operation shrinks the logits, which at
    T = 0.5 is the student's own multiplication."""

    def after(s):
        return torch.softmax(s, -1) * torch.ones(s.shape[-1], s.shape[-1]).tril()

    hint = gpt.check_causal_softmax(after).hints[0]
    assert hint.startswith("put -inf on the future scores before the softmax"), hint
    hint = sampling.check_temperature(lambda z, t: torch.softmax(z * t, -1)).hints[0]
    assert hint.startswith("divide them instead"), hint


def test_the_nan_note_shows_only_for_a_nan_accuracy():
    hint = pipeline.check_evaluate(evaluate_off_by_one).hints[0]
    assert "nan is 0 / 0" not in hint, hint


def test_a_size_written_in_is_named_only_when_the_module_is_right_at_d_8_without_a_mask():
    import math

    from helpers.checks.modules import check_self_attention

    class CausalWithoutMask(torch.nn.Module):  # another bug in the no-mask path, not a size
        def __init__(self, embed_dim):
            super().__init__()
            self.query, self.key, self.value = (
                torch.nn.Linear(embed_dim, embed_dim) for _ in range(3)
            )

        def forward(self, x, mask=None):
            q, k, v = self.query(x), self.key(x), self.value(x)
            s = q @ k.transpose(1, 2) / math.sqrt(x.shape[-1])
            T = x.shape[1]
            allowed = (
                torch.ones(T, T, dtype=torch.bool).tril()[None]
                if mask is None
                else mask[:, None, :]
            )
            return torch.softmax(s.masked_fill(~allowed, float("-inf")), -1) @ v

    result = check_self_attention(CausalWithoutMask)
    assert not result.passed and "right for d = 8" not in str(result), str(result)


def _future(s, diagonal=0):
    return ~torch.ones(s.shape[-1], s.shape[-1], dtype=torch.bool).tril(diagonal)


CAUSAL_MISTAKES = {  # each named mistake of the causal mask, and the start of its hint: what to do
    "after the softmax": (lambda s: torch.softmax(s, -1) * ~_future(s), "put -inf on the future scores"),
    "wrong orientation": (lambda s: torch.softmax(s.masked_fill(~_future(s, -1), float("-inf")), -1), "keep its past"),
    "sees the next token": (lambda s: torch.softmax(s.masked_fill(_future(s, 1), float("-inf")), -1), "allow the diagonal"),
    "diagonal masked": (lambda s: torch.softmax(s.masked_fill(_future(s, -1), -1e9), -1), "keep the diagonal"),
    "filled with 0": (lambda s: torch.softmax(s.masked_fill(_future(s), 0.0), -1), "fill them with float('-inf')"),
    "no mask": (lambda s: torch.softmax(s, -1), "give each key after its query"),
}  # fmt: skip


@pytest.mark.parametrize("name", CAUSAL_MISTAKES)
def test_each_causal_mask_mistake_hints_what_to_do(name):
    wrong, action = CAUSAL_MISTAKES[name]
    result = gpt.check_causal_softmax(wrong)
    assert not result.passed and result.hints[0].startswith(action), str(result)


def test_the_all_reduce_shape_and_top_k_share_hints_fit_their_mistakes():
    unreduced = scaling.check_all_reduce(
        lambda grads: [torch.stack(grads) for _ in grads]
    )  # no mean
    assert unreduced.hints[0].startswith("each rank gets one tensor of the gradient's shape"), str(
        unreduced
    )

    def equal_share(z, k):  # the dropped probability shared out equally among the kept tokens
        soft = torch.softmax(z, -1)
        keep = z >= z.topk(k, dim=-1).values[:, -1:]
        return soft * keep + (1 - (soft * keep).sum(-1, keepdim=True)) / k * keep

    result = sampling.check_top_k(equal_share)
    assert "shared out equally among the kept tokens" in result.verdict, str(result)


def softmax_over_the_queries(q, k, v):
    weights = torch.softmax(q @ k.T, dim=0)
    return weights @ v, weights


def crop_one_short(model, idx, steps, block_size, temperature, generator):
    for _ in range(steps):
        logits = model(idx[:, -block_size + 1 :])[:, -1, :] / temperature
        idx = torch.cat(
            [idx, torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)], 1
        )
    return idx


def choose_above_the_rate(input_ids, special_mask, mask_id, random_ids, generator):
    chosen = (torch.rand(input_ids.shape, generator=generator) > 0.15) & ~special_mask
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.masked_fill(chosen, mask_id)
    return inputs, labels


@pytest.mark.parametrize(
    ("check", "fn", "reason"),
    [
        (lookup.check_softmax_attention, softmax_over_the_queries, "must sum to 1"),
        (gpt.check_generate, crop_one_short, "keep the last block_size"),
        (tokenization.check_masking, choose_above_the_rate, "below 0.15 15% of the time"),
    ],
)
def test_these_mistakes_hint_why_not_only_a_line_of_code(check, fn, reason):
    """Their only hint was code: dim=-1, idx[:, -block_size:], rand < 0.15."""
    result = check(fn)
    assert not result.passed and reason in result.hints[0], str(result)
