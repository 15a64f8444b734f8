import pytest
import torch
import torch.nn as nn

from helpers import layers, loops


def padding_mask(lengths: list[int], T: int) -> torch.Tensor:
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


def test_self_attention_teaching_and_fast_paths_agree_with_the_loops():
    torch.manual_seed(0)
    slow = layers.SelfAttention(8)
    fast = layers.SelfAttention(8, fast=True)
    fast.load_state_dict(slow.state_dict())
    x, mask = torch.randn(3, 6, 8), padding_mask([6, 2, 4], 6)
    with torch.no_grad():
        want = loops.loop_self_attention(slow.query, slow.key, slow.value, x, mask)
        assert torch.allclose(slow(x, mask), want, atol=1e-5)
        assert torch.allclose(fast(x, mask), want, atol=1e-5)


def test_padded_keys_get_zero_weight():
    torch.manual_seed(0)
    attn = layers.SelfAttention(4)
    x, mask = torch.randn(1, 5, 4), padding_mask([3], 5)
    changed = x.clone()
    changed[0, 3:] = 100 * torch.randn(2, 4)  # change only the padding
    with torch.no_grad():
        assert torch.allclose(attn(x, mask)[0, :3], attn(changed, mask)[0, :3], atol=1e-5)


@pytest.mark.parametrize("fast", [False, True])
def test_multi_head_matches_torch_multihead_attention(fast):
    torch.manual_seed(0)
    d, h = 16, 4
    ours = layers.MultiHeadAttention(d, h, fast=fast)
    theirs = layers.to_torch_multihead(ours)
    with torch.no_grad():
        x, mask = torch.randn(2, 7, d), padding_mask([7, 3], 7)
        want, _ = theirs(x, x, x, key_padding_mask=~mask)
        got = ours(x, mask)
    assert torch.allclose(got[mask], want[mask], atol=1e-5)


@pytest.mark.parametrize("fast", [False, True])
def test_causal_attention_never_sees_the_future(fast):
    torch.manual_seed(0)
    causal = layers.MultiHeadAttention(8, 2, causal=True, fast=fast)
    both_ways = layers.MultiHeadAttention(8, 2, fast=fast)
    both_ways.load_state_dict(causal.state_dict())
    x = torch.randn(1, 6, 8)
    later = x.clone()
    later[0, 4:] = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.allclose(causal(x)[0, :4], causal(later)[0, :4], atol=1e-6)
        assert not torch.allclose(both_ways(x)[0, :4], both_ways(later)[0, :4], atol=1e-6)


@pytest.mark.parametrize("shape", [8, (8,), (5, 8)])
def test_layer_norm_matches_torch(shape):
    torch.manual_seed(0)
    ours, theirs = layers.LayerNorm(shape, eps=1e-5), nn.LayerNorm(shape, eps=1e-5)
    with torch.no_grad():
        for p in (ours.weight, ours.bias):
            p.copy_(torch.randn_like(p))
        theirs.load_state_dict(ours.state_dict())
        x = 3 * torch.randn(2, 5, 8) + 2
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
        norm_shape = (shape,) if isinstance(shape, int) else shape
        want = loops.loop_layer_norm(x, norm_shape, ours.weight, ours.bias, 1e-5)
        assert torch.allclose(ours(x), want, atol=1e-4)


def test_layer_norm_keeps_precision_with_a_large_mean():
    x = torch.randn(4, 8) + 1e4
    assert torch.allclose(layers.LayerNorm(8, eps=1e-5)(x), nn.LayerNorm(8)(x), atol=1e-2)


def test_layer_norm_in_float16_computes_its_statistics_in_float32():
    """float16 rounds the default eps 1e-8 to 0, so a constant row was 0/0 = NaN, and x² of a
    value above 256 overflows; F.layer_norm (the fast path) computes in float32, and so does ours."""
    ours, theirs = layers.LayerNorm(8).half(), nn.LayerNorm(8, eps=1e-8)
    x = torch.cat([torch.full((1, 8), 3.0), 300 * torch.randn(1, 8)]).half()  # (2, 8)
    with torch.no_grad():
        got = ours(x)
        assert got.dtype == torch.float16 and torch.isfinite(got).all()
        # the reference in float32, as its fast path computes (torch 2.2 has no float16 LayerNorm
        # on a CPU)
        assert torch.allclose(got.float(), theirs(x.float()), atol=1e-2)
        assert layers.LayerNorm(8)(x).dtype == torch.float32  # float32 γ, β: as x * γ promotes
        wide = torch.randn(4, 8, dtype=torch.float64) + 1e6  # float64 keeps its precision
        want = nn.LayerNorm(8, eps=1e-8).double()(wide)
        assert (layers.LayerNorm(8).double()(wide) - want).abs().max() < 1e-9


def test_causal_attention_with_left_padding_keeps_real_tokens_finite():
    """A padded first position under a causal mask has no key to see: the teaching path's softmax gave
    0/0 = NaN there, and the next block's weight 0 on that NaN value turned real tokens NaN (SDPA gave
    zeros under torch 2.13; older versions are reported to give NaN). Now zeros on both paths."""
    torch.manual_seed(0)
    x, mask = torch.randn(2, 5, 8), torch.tensor([[False, True, True, True, True], [True] * 5])
    outputs = []
    for fast in (False, True):
        torch.manual_seed(0)
        blocks = [layers.Block(8, 2, causal=True, fast=fast).eval() for _ in range(2)]
        h = x
        with torch.no_grad():
            for block in blocks:
                h = block(h, mask)
        outputs.append(h)
    assert torch.isfinite(outputs[0][mask]).all() and torch.isfinite(outputs[1][mask]).all()
    assert torch.allclose(outputs[0][mask], outputs[1][mask], atol=1e-5)
    q = torch.randn(1, 3, 4)
    for fast in (False, True):  # the fast path zeroes such a query itself, whatever SDPA gives
        out = layers.attend(q, q, q, torch.tensor([[False, True, True]]), causal=True, fast=fast)
        assert torch.equal(out[0, 0], torch.zeros(4))


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("causal", [False, True])
def test_block_from_scratch_equals_block_from_torch(norm, causal):
    torch.manual_seed(0)
    scratch = layers.Block(16, 4, norm=norm, causal=causal)
    fast = layers.Block(16, 4, norm=norm, causal=causal, fast=True)
    fast.load_state_dict(scratch.state_dict())
    x, mask = torch.randn(2, 9, 16), padding_mask([9, 5], 9)
    with torch.no_grad():
        assert torch.allclose(scratch(x, mask), fast(x, mask), atol=1e-5)


def test_pre_and_post_norm_blocks_compute_what_their_formulas_say():
    torch.manual_seed(0)
    pre, post = layers.Block(8, 2, norm="pre"), layers.Block(8, 2, norm="post")
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        h = x + pre.attn(pre.ln1(x))
        assert torch.allclose(pre(x), h + pre.ff(pre.ln2(h)), atol=1e-6)
        h = pre.ln1(x + pre.attn(x))  # BERT's add & norm
        assert torch.allclose(post(x), pre.ln2(h + pre.ff(h)), atol=1e-6)
        out = post(3 * x + 5)
        assert torch.allclose(out.mean(-1), torch.zeros(2, 5), atol=1e-5)  # post-LN ends normalised


def test_attention_variants_plug_in_by_name_and_students_modules_by_class():
    @layers.register_attention("test-double")
    class Doubled(layers.MultiHeadAttention):
        def mix(self, q, k, v, mask):
            return 2 * super().mix(q, k, v, mask)

    try:
        torch.manual_seed(0)
        plain, doubled = layers.Block(8, 2), layers.Block(8, 2, attention="test-double")
        doubled.load_state_dict(plain.state_dict())
        x = torch.randn(1, 4, 8)
        with torch.no_grad():
            want = x + 2 * (plain.attn(plain.ln1(x)) - plain.attn.out.bias) + plain.attn.out.bias
            assert isinstance(doubled.attn, Doubled)
            assert torch.allclose(doubled(x) - doubled.ff(doubled.ln2(want)), want, atol=1e-5)
    finally:
        del layers.ATTENTION["test-double"]
    with pytest.raises(ValueError, match="no attention variant called 'additive'; registered: dot"):
        layers.Block(8, 2, attention="additive")
    with pytest.raises(ValueError, match="norm must be 'pre' or 'post', not 'middle'"):
        layers.Block(8, 2, norm="middle")
    mine = layers.Block(8, attention=layers.SelfAttention, layer_norm=nn.LayerNorm)
    assert isinstance(mine.attn, layers.SelfAttention) and isinstance(mine.ln2, nn.LayerNorm)
    assert mine(torch.randn(2, 3, 8), padding_mask([3, 1], 3)).shape == (2, 3, 8)
    for wrong in ({"causal": True}, {"attention_dropout": 0.1}):  # a factory's module is its own
        with pytest.raises(ValueError, match="a factory builds its own module, so make it causal"):
            layers.Block(8, attention=layers.SelfAttention, **wrong)


def test_attention_weights_are_the_modules_own():
    torch.manual_seed(0)
    attn = layers.MultiHeadAttention(8, 2, causal=True)
    x, mask = torch.randn(2, 5, 8), padding_mask([5, 3], 5)
    weights = layers.attention_weights(attn, x, mask)  # (B, h, T, T)
    v = layers.split_heads(attn.value(x), 2)
    with torch.no_grad():
        want = attn.out(layers.merge_heads(weights @ v))
        assert torch.allclose(attn(x, mask), want, atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 5)) and weights[1, :, :, 3:].eq(0).all()
    assert weights[0].triu(1).eq(0).all()  # causal: nothing above the diagonal


@pytest.mark.parametrize(
    ("x", "mask", "message"),
    [
        (torch.randn(2, 5, 6), None, r"x has shape \(2, 5, 6\); expected \(B, T, 8\)"),
        (torch.randn(5, 8), None, r"x has shape \(5, 8\); expected \(B, T, 8\)"),
        (
            torch.randn(4, 12, 8),
            torch.ones(4, 9, dtype=torch.bool),
            r"mask has shape \(4, 9\) but x has 4 sequences of 12 tokens.*shape \(4, 12\)",
        ),
        (torch.randn(2, 3, 8), torch.ones(2, 3), r"use a boolean mask"),
        (torch.randn(0, 3, 8), None, r"x has shape \(0, 3, 8\): an empty batch"),
        (
            torch.randn(2, 3, 8),
            torch.tensor([[1, 1, 0], [0, 0, 0]]).bool(),
            r"sequences \[1\] of the batch are all padding",
        ),
    ],
)
def test_bad_inputs_get_clear_messages(x, mask, message):
    with pytest.raises(ValueError, match=message):
        layers.SelfAttention(8)(x, mask)


def test_bad_layer_norm_and_head_counts():
    with pytest.raises(ValueError, match=r"normalises trailing dimensions \(5, 8\)"):
        layers.LayerNorm((5, 8))(torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match="embed_dim=10 is not divisible by num_heads=4"):
        layers.MultiHeadAttention(10, 4)


def test_block_drops_the_attention_branch_in_training():
    """Catches Block's pre-norm residual ``x + dropout(attn(ln1(x)))`` losing its dropout."""
    torch.manual_seed(0)
    block = layers.Block(8, 2, dropout=0.5).train()
    with torch.no_grad():
        block.ff.down.weight.zero_()
        block.ff.down.bias.zero_()  # the feed-forward branch adds 0: what is left is attention's
    x = torch.randn(4, 6, 8)
    with torch.no_grad():
        branch = block(x) - x
    zeros = (branch == 0).float().mean().item()
    assert 0.35 < zeros < 0.65, zeros  # half the attention branch dropped


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("branch", ["attention", "feed-forward"])
def test_each_branch_of_each_block_is_dropped_in_training_only(norm, branch):
    """Catches a branch of either norm losing its dropout (only pre-LN attention was checked): with
    identity norms and the other branch adding 0, the block's change to x is the branch, dropped."""
    torch.manual_seed(0)
    block = layers.Block(8, 2, norm=norm, dropout=0.5, layer_norm=lambda d: torch.nn.Identity())
    silent = block.ff.down if branch == "attention" else block.attn.out
    with torch.no_grad():
        silent.weight.zero_()
        silent.bias.zero_()
    x = torch.randn(4, 6, 8)
    with torch.no_grad():
        trained = (block.train()(x) - x == 0).float().mean().item()
        evaluated = (block.eval()(x) - x == 0).float().mean().item()
    assert 0.35 < trained < 0.65 and evaluated == 0, (trained, evaluated)
