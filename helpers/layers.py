"""The one transformer layer family: attention, LayerNorm, feed-forward, and the block built from them.

Every model in the course is made of these: notebook 03's IMDB classifier, notebook 02's character
language model, BERT (post-LN, notebook 05) and the small GPT (causal, notebook 07).

- Teaching path and fast path behind one switch, ``fast``: the formula written out, or PyTorch's fused
  kernels (``F.scaled_dot_product_attention``, ``F.layer_norm``). ``tests/test_layers.py`` checks they agree.
- Attention variants by name: ``Block(..., attention="dot")``; a variant registers itself with
  ``@register_attention("name")`` (notebook 02's leaky mask does). Notebook 07's GPT passes its causal
  attention (``helpers.gpt.attention``: dot, additive, shared-qk, shared-qkv; -inf or zero masking)
  as a factory.
- A student's own classes plug in: ``attention=`` and ``layer_norm=`` also take any callable
  ``f(embed_dim) -> nn.Module`` (e.g. ``MySelfAttention``), used as ``module(x, mask)`` and ``module(x)``.

Shapes: B batch, T tokens, d embedding, h heads, hs = d / h head size.
A padding ``mask`` is (B, T) and boolean: True for real tokens, False for padding.
"""

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

ModuleFactory = Callable[[int], nn.Module]


def check_inputs(x: torch.Tensor, mask: torch.Tensor | None, embed_dim: int) -> None:
    """Raise a ValueError that says what is wrong with ``x`` (B, T, d) or ``mask`` (B, T)."""
    for name, value in (("x", x), ("mask", mask)):
        if value is not None and not isinstance(value, torch.Tensor):  # a numpy array, a list
            raise TypeError(f"{name} must be a torch tensor, not {type(value).__name__}: "
                            f"torch.as_tensor({name})")  # fmt: skip
    if x.dim() != 3 or x.shape[-1] != embed_dim:
        raise ValueError(
            f"x has shape {tuple(x.shape)}; expected (B, T, {embed_dim}): a batch of B sequences of "
            f"T tokens, each a vector of embed_dim={embed_dim} numbers"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"x has shape {tuple(x.shape)}: an empty batch; every batch needs at least one sequence "
            "with at least one token"
        )
    if mask is None:
        return
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)} but x has {x.shape[0]} sequences of {x.shape[1]} "
            f"tokens; the mask needs one entry per token: shape {tuple(x.shape[:2])}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask has dtype {mask.dtype}; use a boolean mask (True = real token): mask.bool()"
        )
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"sequences {empty} of the batch are all padding (mask all False); every sequence needs at "
            "least one real token, or its attention weights are 0/0"
        )


def allowed_keys(
    mask: torch.Tensor | None, causal: bool, T: int, dims: int, device: torch.device
) -> torch.Tensor | None:
    """Which keys each query may see, broadcastable against (..., T, T) scores of ``dims`` dimensions."""
    allowed = None
    if mask is not None:
        allowed = mask.view(mask.shape[0], *([1] * (dims - 2)), T)  # (B, 1, T) or (B, 1, 1, T)
    if causal:
        lower = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T): key j <= query i
        allowed = lower if allowed is None else allowed & lower
    return allowed


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    fast: bool = False,
    dropout: float = 0.0,
) -> torch.Tensor:
    """softmax(q kᵀ / √hs) v over (..., T, hs) tensors, ignoring padded keys (and future keys if causal);
    a query with no key left (causal attention at a padded first position) gets zeros, as SDPA gives."""
    T, hs = q.shape[-2], q.shape[-1]
    allowed = allowed_keys(mask, causal, T, q.dim(), q.device)
    if fast:
        if mask is None:  # causal alone: every query sees itself
            return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
        # a query with no key (causal, a padded first position): older SDPA is reported to give NaN
        empty = ~allowed.any(-1, keepdim=True)  # (..., T, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | empty, dropout_p=dropout)
        return out.masked_fill(empty, 0.0)  # (..., T, hs)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (..., T, T)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))  # zero weight after the softmax
    weights = torch.softmax(scores, dim=-1)  # (..., T, T), each row sums to 1
    if allowed is not None:  # a query with no key to see (causal, padded first): 0, not 0/0 = NaN
        weights = weights.masked_fill(~allowed.any(-1, keepdim=True), 0.0)
    return F.dropout(weights, dropout, training=dropout > 0) @ v  # (..., T, hs)


class SelfAttention(nn.Module):
    """Single-head self-attention: softmax(Q Kᵀ / √d) V with Q, K, V linear maps of x (notebook 02)."""

    def __init__(self, embed_dim: int, fast: bool = False) -> None:
        super().__init__()
        self.embed_dim, self.fast = embed_dim, fast
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.embed_dim)
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, d) each
        return attend(q, k, v, mask, fast=self.fast)  # (B, T, d)


def _sizes(**sizes: int) -> None:
    """A ValueError naming the first size that is not a positive int (2.0 and "8" included)."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, d) -> (B, h, T, d/h): each head gets its own slice of the features."""
    B, T, d = x.shape
    if d % num_heads:
        raise ValueError(f"x's last dimension d={d} is not divisible by num_heads={num_heads}: each "
                         "head needs an equal slice")  # fmt: skip
    return x.view(B, T, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, T, hs) -> (B, T, h·hs): the heads' outputs side by side."""
    B, h, T, hs = x.shape
    return x.transpose(1, 2).reshape(B, T, h * hs)


ATTENTION: dict[str, type[nn.Module]] = {}


def register_attention(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make an attention variant available to ``Block(attention=name)``."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        ATTENTION[name] = cls
        return cls

    return add


@register_attention("dot")
class MultiHeadAttention(nn.Module):
    """h heads of scaled dot-product self-attention over d/h-dimensional slices, then an output projection.

    A variant overrides ``mix`` (how queries, keys and values become outputs) and keeps the rest.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 1,
        causal: bool = False,
        dropout: float = 0.0,
        fast: bool = False,
    ) -> None:
        super().__init__()
        _sizes(embed_dim=embed_dim, num_heads=num_heads)
        if not 0 <= dropout < 1:
            raise ValueError(
                f"dropout is the probability of zeroing a weight, in [0, 1), not {dropout!r}"
            )
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}; each head needs an "
                f"equal slice: choose a divisor of {embed_dim}"
            )
        self.embed_dim, self.num_heads, self.causal = embed_dim, num_heads, causal
        self.dropout, self.fast = dropout, fast
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.embed_dim)
        q, k, v = (
            split_heads(f(x), self.num_heads) for f in (self.query, self.key, self.value)
        )  # (B, h, T, hs)
        y = self.mix(q, k, v, mask)  # (B, h, T, hs)
        return self.out(merge_heads(y))  # (B, T, d)

    def mix(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, h, T, hs) queries, keys, values -> (B, h, T, hs) outputs."""
        p = self.dropout if self.training else 0.0
        return attend(q, k, v, mask, causal=self.causal, fast=self.fast, dropout=p)


def attention_weights(
    module: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The (B, h, T, T) softmax weights of a dot-product attention ``module`` (ours or a student's with
    ``query`` and ``key`` layers) on input ``x`` (B, T, d)."""
    heads = getattr(module, "num_heads", 1)
    q, k = split_heads(module.query(x), heads), split_heads(module.key(x), heads)  # (B, h, T, hs)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, T)
    allowed = allowed_keys(mask, getattr(module, "causal", False), x.shape[1], 4, x.device)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1)


def to_torch_multihead(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """An ``nn.MultiheadAttention`` holding the same weights as ``mha`` (to check one against the other)."""
    theirs = nn.MultiheadAttention(mha.embed_dim, mha.num_heads, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([mha.query.weight, mha.key.weight, mha.value.weight]))
        theirs.in_proj_bias.copy_(torch.cat([mha.query.bias, mha.key.bias, mha.value.bias]))
        theirs.out_proj.weight.copy_(mha.out.weight)
        theirs.out_proj.bias.copy_(mha.out.bias)
    return theirs


class LayerNorm(nn.Module):
    """Normalise over the last len(normalized_shape) dimensions, then scale by γ and shift by β."""

    def __init__(
        self, normalized_shape: int | tuple[int, ...], eps: float = 1e-8, fast: bool = False
    ) -> None:
        super().__init__()
        if not eps > 0:  # 0 divides a constant row by 0; a negative one takes a root of < 0: NaN
            raise ValueError(f"eps must be > 0 (a small number such as 1e-5), not {eps!r}")
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        self.normalized_shape, self.eps, self.fast = shape, eps, fast
        self.weight = nn.Parameter(torch.ones(shape))  # γ
        self.bias = nn.Parameter(torch.zeros(shape))  # β

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-len(self.normalized_shape) :]) != self.normalized_shape:
            raise ValueError(
                f"x has shape {tuple(x.shape)}, but this LayerNorm normalises trailing dimensions "
                f"{self.normalized_shape}; its last dimensions must match"
            )
        if self.fast:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        dims = tuple(range(-len(self.normalized_shape), 0))
        # at least float32: float16 rounds eps 1e-8 to 0 (a constant row: 0/0) and overflows x²
        wide = x.to(torch.promote_types(x.dtype, torch.float32))
        var, mean = torch.var_mean(
            wide, dim=dims, correction=0, keepdim=True
        )  # biased: divide by N
        return ((wide - mean) * torch.rsqrt(var + self.eps)).to(x.dtype) * self.weight + self.bias


ACTIVATIONS = ("gelu", "gelu_tanh")  # GELU with erf (BERT), or its tanh approximation (GPT-2)


class FeedForward(nn.Module):
    """The position-wise MLP: d -> hidden -> d with a GELU between (applied to every token alike)."""

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}"
            )
        self.approximate = "tanh" if activation == "gelu_tanh" else "none"
        hidden_dim = 4 * embed_dim if hidden_dim is None else hidden_dim
        _sizes(embed_dim=embed_dim, hidden_dim=hidden_dim)
        self.up = nn.Linear(embed_dim, hidden_dim)
        self.down = nn.Linear(hidden_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(
            self.down(F.gelu(self.up(x), approximate=self.approximate))
        )  # (B, T, d)


class Block(nn.Module):
    """A transformer block: attention and a feed-forward layer, each with a residual connection and
    a LayerNorm.

    - ``norm="pre"`` (GPT-2, most modern models):  x + attn(LN(x)), then x + FF(LN(x)).
    - ``norm="post"`` (the original transformer, BERT's "add & norm"): LN(x + attn(x)), then LN(x + FF(x)).

    ``attention`` is a registered variant's name (``"dot"``: multi-head scaled dot-product) or a
    factory ``f(embed_dim) -> module``; ``layer_norm`` likewise a factory (default: this module's
    LayerNorm). ``causal`` masks future tokens (variants by name only: a factory builds its own module,
    so ``causal`` or ``attention_dropout`` beside one is an error).
    ``dropout`` applies to each branch's output, ``attention_dropout`` to the attention weights (BERT: 0.1).
    ``fast=True`` uses PyTorch's fused kernels for the built-in layers; both paths compute the same.
    ``activation`` is the feed-forward's GELU: "gelu" (erf, BERT) or "gelu_tanh" (GPT-2's approximation).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 1,
        *,
        norm: str = "pre",
        causal: bool = False,
        attention: str | ModuleFactory = "dot",
        layer_norm: ModuleFactory | None = None,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        norm_eps: float = 1e-5,
        fast: bool = False,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', not {norm!r}")
        self.norm = norm
        if isinstance(attention, str):
            if attention not in ATTENTION:
                raise ValueError(
                    f"no attention variant called {attention!r}; registered: {', '.join(ATTENTION)}"
                )
            self.attn = ATTENTION[attention](embed_dim, num_heads, causal, attention_dropout, fast)
        elif causal or attention_dropout:
            raise ValueError(
                "Block got an attention factory with causal=True or attention_dropout: a factory "
                "builds its own module, so make it causal or add its dropout there "
                "(e.g. partial(MyAttention, causal=True)), or use a variant by name"
            )
        else:
            self.attn = attention(embed_dim)
        make_norm = layer_norm or (lambda d: LayerNorm(d, eps=norm_eps, fast=fast))
        self.ln1, self.ln2 = make_norm(embed_dim), make_norm(embed_dim)
        self.ff = FeedForward(embed_dim, hidden_dim, dropout, activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm == "pre":
            x = x + self.dropout(self.attn(self.ln1(x), mask))  # (B, T, d)
            return x + self.ff(self.ln2(x))  # (B, T, d)
        x = self.ln1(x + self.dropout(self.attn(x, mask)))  # add & norm
        return self.ln2(x + self.ff(x))
