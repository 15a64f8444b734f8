"""Notebook 05, exercise 1: BERT's embeddings (word + position + token type, LayerNorm, dropout)."""

import math

import torch
import torch.nn as nn

from helpers.bert import BertConfig, BertEmbeddings
from helpers.checks.bert.shared import (
    EVAL_DROPOUT,
    _first_match,
    _randomise,
    _train_output,
    _varies_in_eval,
)
from helpers.checks.code import _close, not_a_tensor
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, run_check

EMB_CONFIG = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, type_vocab_size=2,
                        hidden_dropout_prob=0.5, layer_norm_eps=1e-12)  # fmt: skip


def check_embeddings(cls: type) -> CheckResult:
    """``cls(config)`` with ``word``, ``position``, ``token_type`` (nn.Embedding), ``norm`` and ``dropout``;
    ``forward(input_ids, token_type_ids=None)`` -> (B, T, H)."""
    name = "BERT embeddings"
    with seeded(0):
        return run_check(name, lambda: _embeddings(name, cls))


def _embedding_mistakes(
    m: nn.Module, ids: torch.Tensor, types: torch.Tensor
) -> dict[str, torch.Tensor]:
    B, T = ids.shape
    word, pos, typ = m.word(ids), m.position(torch.arange(T)), m.token_type(types)
    counting_on = m.position(torch.arange(B * T).view(B, T))  # positions 0 … B·T-1 across the batch
    norm = m.norm
    H = word.shape[-1]
    return {
        "the positions keep counting across the batch (0 … B·T-1): every sequence starts again at "
        "position 0, torch.arange(T), the same row for the whole batch": m.norm(word + counting_on + typ),
        "the positions start at 1: the first token, [CLS], is at position 0, so torch.arange(T)":
            m.norm(word + m.position(torch.arange(1, T + 1)) + typ),
        "the word embeddings are scaled by √H (as in the original Transformer): BERT adds the three "
        "lookups unscaled": m.norm(word * math.sqrt(H) + pos + typ),
        "the LayerNorm's ε is not the config's layer_norm_eps (1e-12): use self.norm, or pass "
        "eps=self.norm.eps to F.layer_norm": nn.functional.layer_norm(
            word + pos + typ, (H,), norm.weight, norm.bias, 1e-5),
        "the position embeddings are looked up with the token ids: look them up with the positions "
        "0 … T-1, torch.arange(T)": m.norm(word + m.position(ids) + typ),
        "the token types are ignored: add self.token_type(token_type_ids), which tells sentence A "
        "(0) from sentence B (1)": m.norm(word + pos),
        "the position embeddings are missing: add self.position(torch.arange(T)); without them "
        "attention cannot tell word order": m.norm(word + typ),
        "the LayerNorm is missing: normalise the sum, self.norm(word + position + token type)":
            word + pos + typ,
        "the LayerNorm is applied to the word embeddings only: normalise the sum of all three":
            m.norm(word) + pos + typ,
    }  # fmt: skip


def _embeddings(name: str, cls: type) -> CheckResult:
    cfg = EMB_CONFIG
    m = cls(cfg)
    ref = BertEmbeddings(cfg)
    missing, unexpected = ref.load_state_dict(m.state_dict(), strict=False)
    if missing or unexpected:
        return failed(name, f"the module's parameters do not match BERT's: missing {missing}, "
                      f"unexpected {unexpected}", "keep the layers __init__ creates, with their names: "
                      "word, position, token_type, norm, dropout")  # fmt: skip
    _randomise(m)
    with torch.no_grad():  # small embeddings, as a trained BERT's: a LayerNorm ε of 1e-5 shows
        for table in (m.word, m.position, m.token_type):
            table.weight.mul_(0.02)
    ref.load_state_dict(m.state_dict())
    m.eval(), ref.eval()
    ids = torch.randint(1, cfg.vocab_size, (3, 7))
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1]] * 3)
    with torch.no_grad():
        got = m(ids, types)
        want = ref(ids, types)
    if wrong := not_a_tensor(got, tuple(want.shape), "(B, T, H)"):
        return failed(name, wrong, "return one vector per token: word + position + token type, normalised")  # fmt: skip
    if _varies_in_eval(m, lambda: m(ids, types)):
        return failed(name, *EVAL_DROPOUT)
    if not _close(got, want):
        with torch.no_grad():
            hint = _first_match(got, _embedding_mistakes(m, ids, types))
        return failed(name, "wrong output on a batch of 3 sequences of 7 tokens (sentence A, then B)",
                      *([hint] if hint else ["word + position + token type embeddings, then "
                        "LayerNorm, then dropout", "positions = torch.arange(T); return "
                        "self.dropout(self.norm(self.word(input_ids) + self.position(positions) "
                        "+ self.token_type(token_type_ids)))"]))  # fmt: skip
    with torch.no_grad():
        if not _close(m(ids), ref(ids)):
            return failed(name, "token_type_ids=None gives a different output than all zeros",
                          "no token types means every token is sentence A: "
                          "torch.zeros_like(input_ids)")  # fmt: skip
    trained = _train_output(m, lambda: m(ids, types))
    if _close(trained, want):
        return failed(name, "in training mode the output equals the evaluation output: no dropout",
                      "end with self.dropout(...): dropout regularises training and is off in eval mode")  # fmt: skip
    with torch.no_grad():
        summed = m.word(ids) + m.position(torch.arange(ids.shape[1])) + m.token_type(types)
    dropped_first = _train_output(m, lambda: m.norm(m.dropout(summed)))
    if _close(trained, dropped_first):
        return failed(name, "dropout comes before the LayerNorm",
                      "normalise first, then drop: self.dropout(self.norm(x))")  # fmt: skip
    if not _close(trained, _train_output(ref, lambda: ref(ids, types))):
        return failed(name, "in training mode the output differs from BERT's (dropout)",
                      "apply self.dropout once, to the normalised sum")  # fmt: skip
    return passed(name, "word + position + token type, LayerNorm, dropout: equal to helpers.bert's "
                  "on a batch with sentences A and B, in eval and training mode")  # fmt: skip
