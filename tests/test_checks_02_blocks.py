"""Notebook 02's exercises beyond the single layers: the loop tester, multi-head attention and BERT's
post-LN block. Right answers written several ways pass; each named mistake gets its own hint."""

import math

import pytest
import torch
import torch.nn as nn

from helpers import checks, layers, loops

# --- the loop tester ---------------------------------------------------------------------------


def loop_with_softmax(query, key, value, x, mask=None, padded_queries_too=False):
    B, T, d = x.shape
    out = torch.zeros_like(x)
    for b in range(B):
        for i in range(T):
            scores = torch.stack([query(x[b, i]) @ key(x[b, j]) / math.sqrt(d) for j in range(T)])
            if mask is not None:
                hidden = ~(mask[b] & mask[b, i]) if padded_queries_too else ~mask[b]
                scores = scores.masked_fill(hidden, float("-inf"))
            out[b, i] = torch.softmax(scores, dim=0) @ value(x[b])
    return out


def loop_without_scale(query, key, value, x, mask=None):
    B, T, d = x.shape
    out = torch.zeros_like(x)
    for b in range(B):
        for i in range(T):
            scores = torch.stack([query(x[b, i]) @ key(x[b, j]) for j in range(T)])
            if mask is not None:
                scores = scores.masked_fill(~mask[b], float("-inf"))
            out[b, i] = torch.softmax(scores, dim=0) @ value(x[b])
    return out


def loop_skipping_the_value(query, key, value, x, mask=None):
    return loop_with_softmax(query, key, lambda t: t, x, mask)


def loop_ignoring_the_mask(query, key, value, x, mask=None):
    return loops.loop_self_attention(query, key, value, x, None)


def loop_skipping_padded_queries(query, key, value, x, mask=None):  # their keys all -inf: NaN
    return loop_with_softmax(query, key, value, x, mask, padded_queries_too=True)


@pytest.mark.parametrize("fn", [loops.loop_self_attention, loop_with_softmax])
def test_the_loop_tester_accepts_right_answers(fn):
    assert checks.check_loop_attention(fn).passed


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (loop_without_scale, "not scaled"),
        (loop_ignoring_the_mask, "the mask has no effect"),
        (loop_ignoring_the_mask, "give key j the score -inf when mask[b, j] is False"),
        (loop_skipping_the_value, "weight value(x[b, j]), not x[b, j]"),
        (loop_skipping_padded_queries, "for every query i, padded ones too"),
        (lambda q, k, v, x, mask=None: x, "work out one (b, i) by hand on B=1, T=2"),
        (lambda q, k, v, x, mask=None: x[..., 0], "should be (2, 4, 6); it is (2, 4)"),
    ],
)
def test_the_loop_tester_names_each_mistake(fn, hint):
    result = checks.check_loop_attention(fn)
    assert "self." not in str(result) and "mask[:, None" not in str(result)  # the loop's own terms
    assert not result.passed and hint in " ".join([result.verdict, *result.hints]), str(result)


def test_the_vectorised_module_is_compared_with_the_students_own_loop():
    assert checks.compare_with_reference(layers.SelfAttention, loop_with_softmax).passed
    differ = checks.compare_with_reference(layers.SelfAttention, loop_without_scale)
    assert not differ.passed and "they differ" in differ.verdict

    def stub(*args):
        raise NotImplementedError("loops first")

    assert checks.compare_with_reference(layers.SelfAttention, stub).not_implemented


# --- multi-head attention ----------------------------------------------------------------------


class Heads(nn.Module):
    """A student-style multi-head attention; ``forward`` is set per test."""

    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.query, self.key, self.value, self.out = (
            nn.Linear(embed_dim, embed_dim) for _ in range(4)
        )


def heads_class(forward):
    return type("Student", (Heads,), {"forward": forward})


def with_view_and_transpose(self, x, mask=None):
    B, T, d = x.shape
    h = self.num_heads
    q, k, v = (
        f(x).view(B, T, h, d // h).transpose(1, 2) for f in (self.query, self.key, self.value)
    )
    scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return self.out((torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, T, d))


def with_einsum(self, x, mask=None):
    B, T, d = x.shape
    h = self.num_heads
    q, k, v = (f(x).reshape(B, T, h, d // h) for f in (self.query, self.key, self.value))
    scores = torch.einsum("bihe,bjhe->bhij", q, k) / (d // h) ** 0.5
    if mask is not None:
        scores = torch.where(mask[:, None, None, :], scores, torch.tensor(-1e9))
    return self.out(torch.einsum("bhij,bjhe->bihe", torch.softmax(scores, -1), v).reshape(B, T, d))


def with_sdpa(self, x, mask=None):
    q, k, v = (layers.split_heads(f(x), self.num_heads) for f in (self.query, self.key, self.value))
    allowed = None if mask is None else mask[:, None, None, :]
    y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    return self.out(layers.merge_heads(y))


def with_the_projections_named_first(self, x, mask=None):  # loops over three layers, not heads
    B, T, d = x.shape
    qkv = self.query(x), self.key(x), self.value(x)
    q, k, v = [t.view(B, T, self.num_heads, -1).transpose(1, 2) for t in qkv]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, d))


@pytest.mark.parametrize(
    "forward", [with_view_and_transpose, with_einsum, with_sdpa, with_the_projections_named_first]
)
def test_right_multi_head_attention_passes(forward):
    result = checks.check_multi_head_attention(heads_class(forward))
    assert result.passed, str(result)
    assert checks.check_multi_head_attention(layers.MultiHeadAttention).passed


def heads_bug(split="right", scale="head", merge="right", mask_shape="right", out=True, dim=-1):
    def forward(self, x, mask=None):
        B, T, d = x.shape
        h = self.num_heads
        if split == "no transpose":
            q, k, v = (f(x).reshape(B, h, T, d // h) for f in (self.query, self.key, self.value))
        else:
            q, k, v = (
                f(x).view(B, T, h, d // h).transpose(1, 2)
                for f in (self.query, self.key, self.value)
            )
        size = {"d": d, "none": 1, "head size doubled": 2 * (d // h)}.get(
            scale, d // h
        )  # the scale is √size
        scores = q @ k.transpose(-2, -1) / math.sqrt(size)
        shapes = {"(B, 1, T)": mask[:, None, :], "rows": mask[:, None, :, None],
                  "inverted": ~mask[:, None, None, :],
                  "pairs": mask[:, None, :, None] & mask[:, None, None, :]} if mask is not None else {}  # fmt: skip
        if mask is not None and mask_shape not in ("ignored", "after"):
            allowed = shapes.get(mask_shape, mask[:, None, None, :])
            fill = 0.0 if mask_shape == "fill 0" else float("-inf")
            scores = scores.masked_fill(~allowed, fill)
        weights = torch.softmax(scores, dim=dim)  # (B, h, T, T)
        if mask is not None and mask_shape == "after":
            weights = weights * mask[:, None, None, :]
        y = weights @ v  # (B, h, T, hs)
        if merge == "none":
            return y
        if merge == "with weights":  # as nn.MultiheadAttention returns them
            return self.out(y.transpose(1, 2).reshape(B, T, d)), weights
        if merge == "trailing comma":
            return (self.out(y.transpose(1, 2).reshape(B, T, d)),)
        if split == "no transpose" or merge == "no transpose":
            y = y.reshape(B, T, d)
        elif merge == "interleaved":
            y = y.permute(0, 2, 3, 1).reshape(B, T, d)
        else:
            y = y.transpose(1, 2).reshape(B, T, d)
        return self.out(y) if out else y

    return heads_class(forward)


def no_mask_as_all_padding(self, x, mask=None):
    if mask is None:
        mask = torch.zeros(x.shape[:2], dtype=torch.bool)  # True = real token: this is all padding
    return with_view_and_transpose(self, x, mask)


HEAD_MISTAKES = {
    "split without a transpose": (heads_bug(split="no transpose"), "without a transpose"),
    "scaled by sqrt(d)": (heads_bug(scale="d"), "divide by √(d/h)"),
    "merged without a transpose": (heads_bug(merge="no transpose"), "merged in the wrong order"),
    "heads interleaved": (heads_bug(merge="interleaved"), "interleaved"),
    "mask not broadcast over heads": (
        heads_bug(mask_shape="(B, 1, T)"),
        "not broadcast over the heads",
    ),
    "mask ignored": (heads_bug(mask_shape="ignored"), "the mask has no effect"),
    "mask inverted": (heads_bug(mask_shape="inverted"), "the mask is inverted"),
    "queries masked": (heads_bug(mask_shape="rows"), "masked the queries (rows)"),
    "queries masked as well as keys": (
        heads_bug(mask_shape="pairs"),
        "the padded positions' outputs are NaN or inf for (B, T, d, h) = (4, 5, 16, 4)",
    ),
    "filled with 0": (heads_bug(mask_shape="fill 0"), "filled the padded scores with 0"),
    "zeros after the softmax": (heads_bug(mask_shape="after"), "zeroed the padded weights after"),
    "no output projection": (heads_bug(out=False), "output projection is skipped"),
    "softmax over the queries": (heads_bug(dim=-2), "softmax runs over the queries"),
    "heads not merged": (heads_bug(merge="none"), "output has shape (4, 4, 5, 4)"),
    "not scaled": (heads_bug(scale="none"), "the scores are not scaled"),
    "scaled by √(2·d/h), an unnamed mistake": (
        heads_bug(scale="head size doubled"),
        "check each step's shape",
    ),
    "weights returned too": (heads_bug(merge="with weights"), "return the output alone"),
    "a trailing comma": (heads_bug(merge="trailing comma"), "a trailing comma, `return y,`"),
    "mask=None read as all padding": (
        heads_class(no_mask_as_all_padding),
        "forward(x) without a mask differs from forward(x, a mask of all True)",
    ),
}


@pytest.mark.parametrize("mistake", HEAD_MISTAKES)
def test_each_multi_head_mistake_has_its_own_hint(mistake):
    cls, hint = HEAD_MISTAKES[mistake]
    result = checks.check_multi_head_attention(cls)
    assert not result.passed and hint in str(result), str(result)


def test_a_fused_projection_is_named():
    class Fused(nn.Module):  # nanoGPT's c_attn: one nn.Linear(d, 3d) for q, k and v
        def __init__(self, embed_dim, num_heads):
            super().__init__()
            self.num_heads = num_heads
            self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
            self.out = nn.Linear(embed_dim, embed_dim)

        def forward(self, x, mask=None):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            h = self.num_heads
            y = nn.functional.scaled_dot_product_attention(
                layers.split_heads(q, h),
                layers.split_heads(k, h),
                layers.split_heads(v, h),
                attn_mask=None if mask is None else mask[:, None, None, :],
            )
            return self.out(layers.merge_heads(y))

    result = checks.check_multi_head_attention(Fused)
    assert not result.passed and "self.query is missing" in result.verdict, str(result)


def test_a_mask_that_cannot_broadcast_is_named_not_a_torch_traceback(monkeypatch):
    """With B ≠ h, a (B, 1, T) mask does not even broadcast against (B, h, T, T) scores."""
    from helpers.checks import blocks

    monkeypatch.setattr(blocks, "_head_mistakes", lambda *args: {})  # reach the B ≠ h shape
    right_first = heads_bug(mask_shape="(B, 1, T)")
    original = right_first.forward

    def forward(self, x, mask=None):
        if x.shape[0] == self.num_heads:  # the first shape, B = h: answer right there
            return with_view_and_transpose(self, x, mask)
        return original(self, x, mask)

    result = checks.check_multi_head_attention(heads_class(forward))
    assert not result.passed and "mask[:, None, None, :]" in str(result), str(result)


# --- the post-LN block -------------------------------------------------------------------------


class PostLN(nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.attn, self.ff = (
            layers.MultiHeadAttention(embed_dim, num_heads),
            layers.FeedForward(embed_dim),
        )
        self.ln1, self.ln2 = layers.LayerNorm(embed_dim), layers.LayerNorm(embed_dim)


def block_class(forward):
    return type("Student", (PostLN,), {"forward": forward})


def post_ln(self, x, mask=None):
    h = self.ln1(x + self.attn(x, mask))
    return self.ln2(h + self.ff(h))


def post_ln_as_a_loop(self, x, mask=None):  # the same two steps, written as one loop
    for sublayer, norm in ((lambda t: self.attn(t, mask), self.ln1), (self.ff, self.ln2)):
        x = norm(x + sublayer(x))
    return x


@pytest.mark.parametrize("forward", [post_ln, post_ln_as_a_loop])
def test_right_post_ln_blocks_pass(forward):
    assert checks.check_post_ln_block(block_class(forward)).passed
    assert checks.check_post_ln_block(lambda d, h: layers.Block(d, h, norm="post")).passed


def post_ln_without_return(self, x, mask=None):
    h = self.ln1(x + self.attn(x, mask))
    x = self.ln2(h + self.ff(h))


BLOCK_MISTAKES = {
    "pre-LN": (
        lambda s, x, m=None: (lambda a: a + s.ff(s.ln2(a)))(x + s.attn(s.ln1(x), m)),
        "that is pre-LN",
    ),
    "norm before adding": (
        lambda s, x, m=None: (lambda a: a + s.ln2(s.ff(a)))(x + s.ln1(s.attn(x, m))),
        "normalised the sublayer's output, then added",
    ),
    "no residual": (
        lambda s, x, m=None: s.ln2(s.ff(s.ln1(s.attn(x, m)))),
        "residual connections are missing",
    ),
    "ln1 twice": (
        lambda s, x, m=None: (lambda a: s.ln1(a + s.ff(a)))(s.ln1(x + s.attn(x, m))),
        "the second LayerNorm is ln1 again",
    ),
    "ff reads x": (
        lambda s, x, m=None: s.ln2(s.ln1(x + s.attn(x, m)) + s.ff(x)),
        "the feed-forward layer reads the block's input x",
    ),
    "mask not passed": (
        lambda s, x, m=None: (lambda a: s.ln2(a + s.ff(a)))(s.ln1(x + s.attn(x))),
        "the mask is not passed",
    ),
    "norms swapped": (
        lambda s, x, m=None: (lambda a: s.ln1(a + s.ff(a)))(s.ln2(x + s.attn(x, m))),
        "two add & norm steps",
    ),
    "no return": (post_ln_without_return, "the output is None: did you forget `return`?"),
}


@pytest.mark.parametrize("mistake", BLOCK_MISTAKES)
def test_each_post_ln_mistake_has_its_own_hint(mistake):
    forward, hint = BLOCK_MISTAKES[mistake]
    result = checks.check_post_ln_block(block_class(forward))
    assert not result.passed and hint in str(result), str(result)


def test_a_renamed_layer_norm_is_named():
    class Renamed(PostLN):
        def __init__(self, embed_dim, num_heads):
            super().__init__(embed_dim, num_heads)
            self.ln_1, self.ln_2 = self.ln1, self.ln2  # nanoGPT's names
            del self.ln1, self.ln2

    result = checks.check_post_ln_block(Renamed)
    assert not result.passed and "self.ln1 is missing" in result.verdict, str(result)


def test_new_exercises_read_not_implemented_as_stubs():
    def stub(*args, **kwargs):
        raise NotImplementedError("your turn")

    assert checks.check_loop_attention(stub).not_implemented
    assert checks.check_multi_head_attention(heads_class(stub)).not_implemented
    assert checks.check_post_ln_block(block_class(stub)).not_implemented


# --- split and merge, and the comparison with nn.MultiheadAttention ----------------------------


def split_by_reshape(x, h):
    B, T, d = x.shape
    return x.reshape(B, T, h, d // h).permute(0, 2, 1, 3)


def merge_by_permute(x):
    B, h, T, hs = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(B, T, h * hs)


@pytest.mark.parametrize(
    ("split", "merge"),
    [(layers.split_heads, layers.merge_heads), (split_by_reshape, merge_by_permute)],
)
def test_right_split_and_merge_pass(split, merge):
    result = checks.check_split_merge(split, merge)
    assert result.passed and "(2, 3, 5, 4)" in result.verdict, str(result)


@pytest.mark.parametrize(
    ("split", "merge", "hint"),
    [
        (
            lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1),
            layers.merge_heads,
            "reshaped straight to (B, h, T, d/h)",
        ),
        (
            layers.split_heads,
            lambda y: y.reshape(y.shape[0], y.shape[2], -1),
            "merge(split(x)) is not x",
        ),
        (lambda x, h: x.view(*x.shape[:2], h, -1), layers.merge_heads, "expected (2, 3, 5, 4)"),
        (
            lambda x, h: x.view(*x.shape[:2], -1, h).permute(0, 3, 1, 2),
            layers.merge_heads,
            "does not hold columns",
        ),
        (lambda x, h: None, layers.merge_heads, "returned None: did you forget `return`?"),
    ],
    ids=[
        "reshape straight",
        "merge without transpose",
        "no transpose at all",
        "strided slices",
        "split returns nothing",
    ],
)
def test_split_and_merge_mistakes_are_named(split, merge, hint):
    result = checks.check_split_merge(split, merge)
    assert not result.passed and hint in str(result), str(result)


def test_the_comparison_with_torch_multihead():
    assert checks.same_as_torch_multihead(layers.MultiHeadAttention, 4).passed
    nan_at_padding = checks.same_as_torch_multihead(heads_bug(mask_shape="pairs"), 4)
    assert not nan_at_padding.passed and "NaN or inf at the padded ones" in str(nan_at_padding)
    wrong = checks.same_as_torch_multihead(HEAD_MISTAKES["scaled by sqrt(d)"][0], 4)
    assert not wrong.passed and "they differ by up to" in wrong.verdict


def one_head(q, k, v, mask, size):  # (B, T, d/h) each
    scores = q @ k.transpose(-2, -1) / math.sqrt(size)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(scores, -1) @ v


def per_head_range(self, x, mask=None):
    B, T, d = x.shape
    h = self.num_heads
    outs = []
    for i in range(h):
        cols = slice(i * d // h, (i + 1) * d // h)
        q, k, v = (f(x)[..., cols] for f in (self.query, self.key, self.value))
        outs.append(one_head(q, k, v, mask, d // h))
    return self.out(torch.cat(outs, dim=-1))


def per_head_setting(self, x, mask=None):  # a loop over a setting of the module: still a loop
    size = x.shape[-1] // self.num_heads
    q, k, v = (f(x) for f in (self.query, self.key, self.value))
    outs = [one_head(*(t[..., i * size : (i + 1) * size] for t in (q, k, v)), mask, size)
            for i in range(self.num_heads)]  # fmt: skip
    return self.out(torch.cat(outs, dim=-1))


def per_head_split(self, x, mask=None):
    size = x.shape[-1] // self.num_heads
    q, k, v = (f(x).split(size, -1) for f in (self.query, self.key, self.value))
    return self.out(torch.cat([one_head(a, b, c, mask, size) for a, b, c in zip(q, k, v)], dim=-1))


@pytest.mark.parametrize(
    "forward, said",
    [(per_head_range, "range(h)"), (per_head_setting, "range(self.num_heads)"),
     (per_head_split, "zip(q, k, v)")],
)  # fmt: skip
def test_a_loop_over_the_heads_is_named(forward, said):
    result = checks.check_multi_head_attention(heads_class(forward))
    assert not result.passed and f"loops over `{said}`" in str(result), str(result)


def test_a_merge_with_view_that_cannot_work_on_real_outputs_is_named():
    def merge_with_view(y):
        return y.transpose(1, 2).view(y.shape[0], y.shape[2], -1)

    result = checks.check_split_merge(layers.split_heads, merge_with_view)
    assert not result.passed and "use .reshape" in str(result), str(result)


def test_the_comparison_with_torch_takes_any_number_of_heads():
    for heads in (1, 3, 4):
        assert checks.same_as_torch_multihead(layers.MultiHeadAttention, heads).passed
    with pytest.raises(ValueError, match="num_heads must be a whole number"):
        checks.same_as_torch_multihead(layers.MultiHeadAttention, 0)
