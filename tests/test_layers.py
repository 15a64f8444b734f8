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


def test_causal_attention_never_sees_the_future():
    torch.manual_seed(0)
    attn = layers.MultiHeadAttention(8, 2)
    x = torch.randn(1, 6, 8)
    later = x.clone()
    later[0, 4:] = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.allclose(
            attn(x, causal=True)[0, :4], attn(later, causal=True)[0, :4], atol=1e-6
        )
        assert not torch.allclose(attn(x)[0, :4], attn(later)[0, :4], atol=1e-6)


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


def test_block_from_scratch_equals_block_from_torch():
    torch.manual_seed(0)
    scratch, fast = layers.Block(16, 4), layers.Block(16, 4, fast=True)
    fast.load_state_dict(scratch.state_dict())
    x, mask = torch.randn(2, 9, 16), padding_mask([9, 5], 9)
    with torch.no_grad():
        assert torch.allclose(scratch(x, mask), fast(x, mask), atol=1e-5)
        assert torch.allclose(scratch(x, causal=True), fast(x, causal=True), atol=1e-5)


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
