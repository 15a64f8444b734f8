"""Notebook 02's checkers: every classic mistake is caught with its own hint; right answers written
several ways pass."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.checks import check_layer_norm, check_self_attention
from helpers.layers import LayerNorm, SelfAttention


def attention_class(forward):
    """A student-style class: the three projections, and ``forward`` as given."""

    class Student(nn.Module):
        def __init__(self, embed_dim):
            super().__init__()
            self.query = nn.Linear(embed_dim, embed_dim)
            self.key = nn.Linear(embed_dim, embed_dim)
            self.value = nn.Linear(embed_dim, embed_dim)

    Student.forward = forward
    return Student


# --- right answers, written different ways ------------------------------------------------------


def with_matmul(self, x, mask=None):
    q, k, v = self.query(x), self.key(x), self.value(x)
    scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def with_bmm_and_large_negative(self, x, mask=None):
    q, k, v = self.query(x), self.key(x), self.value(x)
    scores = torch.bmm(q, k.permute(0, 2, 1)) / x.size(-1) ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask.unsqueeze(1) == 0, torch.finfo(scores.dtype).min)
    return torch.bmm(F.softmax(scores, dim=2), v)


def filled_with_minus_1e9(self, x, mask=None):  # right in float32; float16 cannot hold -1e9
    q, k, v = self.query(x), self.key(x), self.value(x)
    scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], -1e9)
    return torch.softmax(scores, dim=-1) @ v


def filled_with_the_inputs_smallest(self, x, mask=None):  # under autocast x is float32, scores not
    q, k, v = self.query(x), self.key(x), self.value(x)
    scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], torch.finfo(x.dtype).min)
    return torch.softmax(scores, dim=-1) @ v


def with_einsum_and_where(self, x, mask=None):
    q, k, v = self.query(x), self.key(x), self.value(x)
    scores = torch.einsum("btd,bsd->bts", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = torch.where(mask[:, None, :], scores, torch.tensor(float("-inf")))
    weights = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return torch.einsum("bts,bsd->btd", weights / weights.sum(-1, keepdim=True), v)


def with_sdpa(self, x, mask=None):
    attn_mask = None if mask is None else mask[:, None, :]
    return F.scaled_dot_product_attention(
        self.query(x), self.key(x), self.value(x), attn_mask=attn_mask
    )


def with_the_projections_named_first(self, x, mask=None):  # a loop over the three layers, not data
    projections = (self.query, self.key, self.value)
    q, k, v = [p(x) for p in projections]
    scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    return scores.softmax(-1) @ v


def loops_over_a_named_length(self, x, mask=None):  # still a loop over the batch, through T
    B = x.shape[0]
    return torch.stack([with_matmul(self, x[i : i + 1], mask if mask is None else mask[i : i + 1])[0]
                        for i in range(B)])  # fmt: skip


@pytest.mark.parametrize(
    "forward",
    [with_matmul, with_bmm_and_large_negative, with_einsum_and_where, with_sdpa,
     with_the_projections_named_first],
)  # fmt: skip
def test_right_self_attention_passes(forward):
    result = check_self_attention(attention_class(forward))
    assert result.passed, str(result)


def test_helpers_reference_passes_both_paths():
    assert check_self_attention(SelfAttention).passed
    assert check_self_attention(lambda d: SelfAttention(d, fast=True)).passed


# --- mistakes ----------------------------------------------------------------------------------


def bug(scale=None, dim=-1, transpose=False, mask_mode="right", use_value=True, naive=False):
    def forward(self, x, mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)
        d, T = x.shape[-1], x.shape[1]
        s = (k @ q.transpose(1, 2)) if transpose else (q @ k.transpose(1, 2))
        s = s / {None: math.sqrt(d), "d": d, "T": math.sqrt(T), "none": 1.0}[scale]
        if mask is not None and mask_mode == "right":
            s = s.masked_fill(~mask[:, None, :], float("-inf"))
        if mask is not None and mask_mode == "inverted":
            s = s.masked_fill(mask[:, None, :], float("-inf"))
        w = (
            torch.exp(s) / torch.exp(s).sum(dim, keepdim=True)
            if naive
            else torch.softmax(s, dim=dim)
        )
        if mask is not None and mask_mode == "after":
            w = w * mask[:, None, :]
        return w @ (v if use_value else x)

    return forward


def flattened_batch(self, x, mask=None):
    B, T, d = x.shape
    q, k, v = (f(x).reshape(B * T, d) for f in (self.query, self.key, self.value))
    return (torch.softmax(q @ k.T / math.sqrt(d), dim=-1) @ v).reshape(B, T, d)


def loops(self, x, mask=None):
    out = []
    for b in range(x.shape[0]):
        q, k, v = self.query(x[b]), self.key(x[b]), self.value(x[b])
        out.append(torch.softmax(q @ k.T / math.sqrt(x.shape[-1]), dim=-1) @ v)
    return torch.stack(out)


def loops_over_features(self, x, mask=None):  # a loop over a setting of the module: still a loop
    q, k, v = self.query(x), self.key(x), self.value(x)
    scores = sum(
        q[:, :, j, None] * k[:, None, :, j] for j in range(self.query.out_features)
    )  # (B, T, T)
    return torch.softmax(scores / math.sqrt(x.shape[-1]), dim=-1) @ v


def returns_weights(self, x, mask=None):
    q, k = self.query(x), self.key(x)
    return torch.softmax(q @ k.transpose(1, 2) / math.sqrt(x.shape[-1]), dim=-1)


def variant(queries="query", keys="key", values="value", weigh=None, fill=None, rows=False):
    """More mistakes: which projection feeds the queries, keys and values; how the scaled scores
    become weights (``weigh``); what padded scores are filled with, and along which axis."""

    def forward(self, x, mask=None):
        pick = {"query": self.query, "key": self.key, "value": self.value, "x": lambda t: t}
        q, k, v = pick[queries](x), pick[keys](x), pick[values](x)
        s = q @ k.transpose(1, 2) / math.sqrt(x.shape[-1])
        if mask is not None:
            where = ~mask[:, :, None] if rows else ~mask[:, None, :]
            s = s.masked_fill(where, float("-inf") if fill is None else fill)
        w = torch.softmax(s, dim=-1) if weigh is None else weigh(s)
        return w @ v

    return forward


def masked_pairs(self, x, mask=None):  # real rows right; a padded query has no key left: NaN
    q, k, v = self.query(x), self.key(x), self.value(x)
    s = q @ k.transpose(1, 2) / math.sqrt(x.shape[-1])
    if mask is not None:
        s = s.masked_fill(~(mask[:, :, None] & mask[:, None, :]), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def scaled_after_softmax(self, x, mask=None):
    q, k, v = self.query(x), self.key(x), self.value(x)
    s = (q @ k.transpose(1, 2)).masked_fill(~mask[:, None, :], float("-inf")) if mask is not None \
        else q @ k.transpose(1, 2)  # fmt: skip
    return torch.softmax(s, dim=-1) / math.sqrt(x.shape[-1]) @ v


def multiplied_by_sqrt_d(self, x, mask=None):
    q, k, v = self.query(x), self.key(x), self.value(x)
    s = q @ k.transpose(1, 2) * math.sqrt(x.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def scaled_for_d_8(self, x, mask=None):  # the first example's √8, hard-coded
    q, k, v = self.query(x), self.key(x), self.value(x)
    s = q @ k.transpose(1, 2) / math.sqrt(8)
    if mask is not None:
        s = s.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def clamped_scores(self, x, mask=None):  # "so that exp cannot overflow"
    q, k, v = self.query(x), self.key(x), self.value(x)
    s = (q @ k.transpose(1, 2) / math.sqrt(x.shape[-1])).clamp(-30, 30)
    if mask is not None:
        s = s.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(s, dim=-1) @ v


NEW_ATTENTION_MISTAKES = {
    "query projection skipped": (variant(queries="x"), "query projection is skipped"),
    "key projection skipped": (variant(keys="x"), "key projection is skipped"),
    "values from the query projection": (variant(values="query"), "from the query projection"),
    "values from the key projection": (variant(values="key"), "from the key projection"),
    "scaled after the softmax": (scaled_after_softmax, "you scaled after the softmax"),
    "multiplied by sqrt(d)": (multiplied_by_sqrt_d, "multiplied the scores by √d"),
    "softmax over the batch": (
        variant(weigh=lambda s: torch.softmax(s, dim=0)),
        "softmax runs over the batch",
    ),
    "log_softmax": (variant(weigh=lambda s: torch.log_softmax(s, dim=-1)), "log_softmax"),
    "sigmoid": (variant(weigh=torch.sigmoid), "a sigmoid weighs each key on its own"),
    "weights transposed before mixing": (
        variant(weigh=lambda s: torch.softmax(s, dim=-1).transpose(1, 2)),
        "the weights are transposed before mixing",
    ),
    "padded scores filled with 0": (variant(fill=0.0), "filled the padded scores with 0"),
    "queries masked instead of keys": (variant(rows=True), "masked the queries (rows)"),
    "queries masked as well as keys": (
        masked_pairs,
        "outputs are NaN or inf on (B, T, d) = (2, 5, 8) "
        "(the real tokens' are right)\n   hint: mask the keys only",
    ),
}

ATTENTION_MISTAKES = {
    "scaled by d": (bug(scale="d"), "divided the scores by d"),
    "scaled by sqrt(T)": (bug(scale="T"), "divided the scores by √T"),
    "not scaled": (bug(scale="none"), "not scaled"),
    "softmax over the queries": (bug(dim=1), "softmax over the wrong axis"),
    "transposed scores": (bug(transpose=True), "keys attending to queries"),
    "mask ignored": (bug(mask_mode="ignored"), "the mask has no effect"),
    "mask inverted": (bug(mask_mode="inverted"), "the mask is inverted"),
    "zeros after the softmax": (bug(mask_mode="after"), "after the softmax"),
    "value projection skipped": (bug(use_value=False), "value projection is skipped"),
    "naive softmax overflows": (bug(naive=True), "exp of a large score overflows"),
    "batch mixed": (flattened_batch, "mixes tokens of different sequences"),
    "loops": (loops, "loops over `range(x.shape[0])`"),
    "loops over a named size": (loops_over_a_named_length, "loops over `range(B)`"),
    "loops over features": (loops_over_features, "loops over `range(self.query.out_features)`"),
    "wrong output shape": (returns_weights, "(B, T, T) weight matrix"),
    "scale hard-coded for d = 8": (
        scaled_for_d_8,
        "on (B, T, d) = (3, 7, 16), no mask\n   hint: right for d = 8, wrong for d = 16",
    ),
    "scores clamped": (
        clamped_scores,
        "(x × 100)\n   hint: right on ordinary inputs, wrong only when the scores are large",
    ),
    "a fill float16 cannot hold": (
        filled_with_minus_1e9,
        # torch's own words after it; their namespace differs by version (at::Half under torch 2.2)
        "but in float16 it raises: value cannot be converted to type ",
    ),
    "float32's smallest number as the fill": (
        filled_with_the_inputs_smallest,
        "in float16 it raises",
    ),
    "numpy output": (
        lambda self, x, mask=None: bug()(self, x, mask).numpy(),
        "an ndarray, not a tensor",
    ),
}


ATTENTION_MISTAKES |= NEW_ATTENTION_MISTAKES


def test_at_least_twelve_attention_mistakes_were_added_for_issue_11():
    hints = [hint for _, hint in ATTENTION_MISTAKES.values()]
    assert len(NEW_ATTENTION_MISTAKES) >= 12 and len(set(hints)) == len(hints)


@pytest.mark.parametrize("mistake", ATTENTION_MISTAKES)
def test_each_attention_mistake_has_its_own_hint(mistake):
    forward, hint = ATTENTION_MISTAKES[mistake]
    result = check_self_attention(attention_class(forward))
    assert not result.passed
    assert hint in str(result), str(result)


def test_a_mistake_is_named_from_the_real_tokens_when_the_padded_ones_differ():
    def unscaled_padding_zeroed(self, x, mask=None):
        out = bug(scale="none")(self, x, mask)
        return out if mask is None else out * mask[..., None]  # padded outputs 0: harmless

    result = check_self_attention(attention_class(unscaled_padding_zeroed))
    assert not result.passed and "the scores are not scaled" in str(result), str(result)


def test_a_forward_whose_source_cannot_be_read_is_checked_by_its_outputs():
    """Code typed into a plain Python shell, or made by exec, has no source to look for loops in."""
    namespace = {"math": math, "torch": torch}
    exec(
        "def forward(self, x, mask=None):\n"
        "    q, k, v = self.query(x), self.key(x), self.value(x)\n"
        "    s = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])\n"
        "    if mask is not None:\n"
        "        s = s.masked_fill(~mask[:, None, :], float('-inf'))\n"
        "    return torch.softmax(s, dim=-1) @ v\n",
        namespace,
    )
    result = check_self_attention(attention_class(namespace["forward"]))
    assert result.passed, str(result)


def test_missing_projection_and_stub():
    class NoValue(nn.Module):
        def __init__(self, embed_dim):
            super().__init__()
            self.query, self.key = nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim)

    assert "self.value is missing" in str(check_self_attention(NoValue))

    class Stub(nn.Module):
        def __init__(self, embed_dim):
            raise NotImplementedError("create the three projections")

    assert check_self_attention(Stub).verdict == "not implemented yet"

    class NormStub(nn.Module):
        def __init__(self, normalized_shape, eps=1e-8):
            raise NotImplementedError("create γ and β")

    assert check_layer_norm(NormStub).verdict == "not implemented yet"


# --- LayerNorm ---------------------------------------------------------------------------------


def norm_class(normalise, affine=True, param_shape=None):
    class Student(nn.Module):
        def __init__(self, normalized_shape, eps=1e-8):
            super().__init__()
            shape = (
                (normalized_shape,)
                if isinstance(normalized_shape, int)
                else tuple(normalized_shape)
            )
            self.normalized_shape, self.eps = shape, eps
            self.weight = nn.Parameter(torch.ones(param_shape or shape))
            self.bias = nn.Parameter(torch.zeros(param_shape or shape))

    Student.forward = normalise
    return Student


def dims(self):
    return tuple(range(-len(self.normalized_shape), 0))


def norm_var_mean(self, x):
    var, mean = torch.var_mean(x, dim=dims(self), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def norm_two_pass(self, x):
    mean = x.mean(dim=dims(self), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims(self), keepdim=True)
    return self.weight * (x - mean) * torch.rsqrt(var + self.eps) + self.bias


def norm_functional(self, x):
    return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


def norm_dims_by_comprehension(self, x):  # loops over the settings, not the data: fine
    dims = [-(i + 1) for i in range(len(self.normalized_shape))]
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def norm_dims_by_a_named_count(self, x):  # the same, through a local count
    n = len(self.normalized_shape)
    dims = [-(i + 1) for i in range(n)]
    return (x - x.mean(dims, keepdim=True)) / torch.sqrt(
        x.var(dims, keepdim=True, unbiased=False) + self.eps
    ) * self.weight + self.bias


def norm_dims_from_a_named_shape(self, x):
    shape = self.normalized_shape
    dims = [-i for i in range(1, len(shape) + 1)]
    mean, var = x.mean(dims, keepdim=True), x.var(dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@pytest.mark.parametrize(
    "forward",
    [norm_var_mean, norm_two_pass, norm_functional, norm_dims_by_comprehension,
     norm_dims_by_a_named_count, norm_dims_from_a_named_shape],
)  # fmt: skip
def test_right_layer_norm_passes(forward):
    result = check_layer_norm(norm_class(forward))
    assert result.passed, str(result)


def test_helpers_layer_norm_passes_both_paths():
    assert check_layer_norm(LayerNorm).passed
    assert check_layer_norm(lambda shape, eps=1e-8: LayerNorm(shape, eps, fast=True)).passed


def norm_bug(unbiased=False, eps_mode="right", affine="both", axes="right", naive=False):
    def forward(self, x):
        d = {"right": dims(self), "last": (-1,), "batch": (0,)}[axes]
        mean = x.mean(dim=d, keepdim=True)
        if naive:
            var = (x**2).mean(dim=d, keepdim=True) - mean**2
        else:
            var = x.var(dim=d, keepdim=True, unbiased=unbiased)
        eps = {"right": self.eps, "ignored": 0.0, "fixed": 1e-5}.get(eps_mode, self.eps)
        y = (
            (x - mean) / (torch.sqrt(var) + eps)
            if eps_mode == "outside"
            else (x - mean) / torch.sqrt(var + eps)
        )
        if affine in ("both", "weight"):
            y = y * self.weight
        if affine in ("both", "bias"):
            y = y + self.bias
        return y

    return forward


def norm_loops(self, x):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = F.layer_norm(x[i], self.normalized_shape, self.weight, self.bias, self.eps)
    return out


def norm_loops_named(self, x):  # n is the batch size: a loop over the data
    n = x.shape[0]
    return torch.stack([norm_var_mean(self, x[i]) for i in range(n)])


def norm_loops_features(self, x):  # sums the features one at a time
    flat = x.flatten(-len(self.normalized_shape))
    features = self.weight.numel()
    total = 0
    for i in range(features):
        total = total + flat[..., i]
    mean = (total / features)[..., None]
    var = ((flat - mean) ** 2).mean(-1, keepdim=True)
    return ((flat - mean) / torch.sqrt(var + self.eps)).view_as(x) * self.weight + self.bias


def norm_while_loop(self, x):
    out, i = torch.empty_like(x), 0
    while i < x.shape[0]:
        out[i] = F.layer_norm(x[i], self.normalized_shape, self.weight, self.bias, self.eps)
        i += 1
    return out


def norm_with(transform):
    """A LayerNorm whose last steps are ``transform(self, x, dims)``: one mistake each."""

    def forward(self, x):
        return transform(self, x, dims(self))

    return norm_class(forward)


def normed(self, x, d):
    var, mean = torch.var_mean(x, dim=d, correction=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + self.eps)


def rms(x, d):
    return torch.sqrt((x**2).mean(dim=d, keepdim=True))


NEW_NORM_MISTAKES = {
    "divided by the variance": (
        norm_with(
            lambda m, x, d: (
                (x - x.mean(d, keepdim=True))
                / (x.var(d, keepdim=True, correction=0) + m.eps)
                * m.weight
                + m.bias
            )
        ),
        "you divided by the variance",
    ),
    "not centred": (
        norm_with(
            lambda m, x, d: (
                x / torch.sqrt(x.var(d, keepdim=True, correction=0) + m.eps) * m.weight + m.bias
            )
        ),
        "x is not centred",
    ),
    "RMS of x, centred": (
        norm_with(
            lambda m, x, d: (
                (x - x.mean(d, keepdim=True)) / torch.sqrt(rms(x, d) ** 2 + m.eps) * m.weight
                + m.bias
            )
        ),
        "root mean square of x, not of x - mean",
    ),
    "RMSNorm": (
        norm_with(lambda m, x, d: x / torch.sqrt(rms(x, d) ** 2 + m.eps) * m.weight + m.bias),
        "that is RMSNorm",
    ),
    "gamma and beta swapped": (
        norm_with(lambda m, x, d: normed(m, x, d) * m.bias + m.weight),
        "γ and β are swapped",
    ),
    "beta before gamma": (
        norm_with(lambda m, x, d: (normed(m, x, d) + m.bias) * m.weight),
        "β is added before scaling by γ",
    ),
    "mean absolute deviation": (
        norm_with(
            lambda m, x, d: (
                (x - x.mean(d, keepdim=True))
                / ((x - x.mean(d, keepdim=True)).abs().mean(d, keepdim=True) + m.eps)
                * m.weight
                + m.bias
            )
        ),
        "mean absolute deviation",
    ),
    "over the tokens": (
        norm_with(lambda m, x, d: normed(m, x, (1,)) * m.weight + m.bias),
        "normalised over the tokens (dim 1)",
    ),
}

NORM_MISTAKES = {
    "unbiased variance": (norm_class(norm_bug(unbiased=True)), "unbiased variance"),
    "eps outside the sqrt": (norm_class(norm_bug(eps_mode="outside")), "outside the square root"),
    "eps ignored": (norm_class(norm_bug(eps_mode="ignored")), "ε is ignored"),
    "eps hard-coded": (norm_class(norm_bug(eps_mode="fixed")), "ε is ignored or hard-coded"),
    "gamma missing": (norm_class(norm_bug(affine="bias")), "γ (self.weight) is not applied"),
    "beta missing": (norm_class(norm_bug(affine="weight")), "β (self.bias) is not applied"),
    "neither": (norm_class(norm_bug(affine="none")), "γ and β are not applied"),
    "last dim only": (norm_class(norm_bug(axes="last")), "normalised over the last dimension only"),
    "across the batch": (norm_class(norm_bug(axes="batch")), "across the batch"),
    "E[x²] - E[x]²": (norm_class(norm_bug(naive=True)), "E[x²] - E[x]²"),
    "loops": (norm_class(norm_loops), "loops over `range(x.shape[0])`"),
    "loops through a named size": (norm_class(norm_loops_named), "loops over `range(n)`"),
    "loops over the features": (norm_class(norm_loops_features), "loops over `range(features)`"),
    "while loop": (norm_class(norm_while_loop), "`forward` has a while loop"),
    "mean and variance of the whole tensor": (
        norm_with(
            lambda m, x, d: (
                (x - x.mean()) / torch.sqrt(x.var(correction=0) + m.eps) * m.weight + m.bias
            )
        ),
        "compare with torch's nn.LayerNorm(normalized_shape, eps=eps) on one example",
    ),
    "mis-shaped gamma": (
        norm_class(norm_functional, param_shape=(8,)),
        "γ (self.weight) is shape (8,)",
    ),
}


NORM_MISTAKES |= NEW_NORM_MISTAKES


def test_new_mistakes_for_issue_11_number_at_least_twelve_and_each_hint_is_distinct():
    hints = [hint for _, hint in NORM_MISTAKES.values()]
    assert len(NEW_NORM_MISTAKES) + len(NEW_ATTENTION_MISTAKES) >= 12
    assert len(set(hints)) == len(hints)


@pytest.mark.parametrize("mistake", NORM_MISTAKES)
def test_each_layer_norm_mistake_has_its_own_hint(mistake):
    cls, hint = NORM_MISTAKES[mistake]
    result = check_layer_norm(cls)
    assert not result.passed
    assert hint in str(result), str(result)


def test_gamma_as_a_plain_tensor_is_named():
    class Plain(norm_class(norm_two_pass)):
        def __init__(self, normalized_shape, eps=1e-8):
            super().__init__(normalized_shape, eps)
            del self.weight
            self.weight = torch.ones(self.normalized_shape)

    result = check_layer_norm(Plain)
    assert not result.passed and "right shape (8,) but is a plain tensor" in str(result)


def test_layer_norm_without_eps_argument():
    class NoEps(nn.Module):
        def __init__(self, normalized_shape):
            super().__init__()

    result = check_layer_norm(NoEps)
    assert not result.passed and "__init__(self, normalized_shape, eps=1e-8)" in str(result)


def test_any_initialisation_passes():
    class XavierAttention(attention_class(with_matmul)):
        def __init__(self, embed_dim):
            super().__init__(embed_dim)
            for layer in (self.query, self.key, self.value):
                nn.init.xavier_normal_(layer.weight)
                nn.init.normal_(layer.bias, std=0.5)

    class ScaledNorm(norm_class(norm_two_pass)):
        def __init__(self, normalized_shape, eps=1e-8):
            super().__init__(normalized_shape, eps)
            nn.init.constant_(self.weight, 0.5)
            nn.init.uniform_(self.bias)

    assert check_self_attention(XavierAttention).passed
    assert check_layer_norm(ScaledNorm).passed


def test_padded_outputs_set_to_zero_pass_and_nan_there_stops_notebook_03():
    def padding_zeroed(self, x, mask=None):  # the padded outputs are never read: any finite value
        out = with_matmul(self, x, mask)
        return out if mask is None else out * mask[..., None]

    assert check_self_attention(attention_class(padding_zeroed)).passed
    from helpers.checks.pipeline import checked_modules

    names = {"MySelfAttention": attention_class(masked_pairs), "MyLayerNorm": LayerNorm}
    with pytest.raises(ValueError, match="outputs are NaN or inf"):
        checked_modules(names)  # it trained to a NaN loss, blamed on the learning rate
