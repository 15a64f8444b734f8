"""Notebook 05, exercise 4: the [CLS] classifier."""

import torch
import torch.nn as nn

from helpers.bert import BertConfig, BertModel
from helpers.checks.bert.shared import EVAL_DROPOUT, _first_match, _train_output, _varies_in_eval
from helpers.checks.code import _close, not_a_tensor
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, run_check

CLS_CONFIG = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip


def check_classifier(cls: type) -> CheckResult:
    """``cls(bert, num_labels, dropout)`` with ``bert``, ``dropout`` and ``head``;
    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` -> log-probabilities (B, C)."""
    name = "[CLS] classifier"
    with seeded(0):
        return run_check(name, lambda: _classifier(name, cls))


def _classifier(name: str, cls: type) -> CheckResult:
    C = 5
    bert = BertModel(CLS_CONFIG).eval()
    m = cls(bert, C, 0.5)
    if not isinstance(getattr(m, "head", None), nn.Linear) or m.head.out_features != C:
        return failed(name, "self.head is missing or not nn.Linear(hidden_size, num_labels)",
                      "keep the layers __init__ creates: bert, dropout, head")  # fmt: skip
    m.eval()
    ids = torch.randint(1, CLS_CONFIG.vocab_size, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, -3:] = 0
    ids[1, -3:] = 0
    types = torch.tensor([[0, 0, 0, 1, 1, 1]] * 3)
    try:
        with torch.no_grad():
            got = m(ids, mask, types)
    except TypeError as err:  # outputs[1], as on transformers' outputs: BertOutput is read by name
        if "attribute name must be string" not in str(err):
            raise
        return failed(name, "self.bert(...) returns a BertOutput, read by name: outputs[1] fails on it",
                      "pooled = self.bert(input_ids, attention_mask, token_type_ids).pooler_output")  # fmt: skip
    with torch.no_grad():
        out = bert(ids, mask, types)
        logits = m.head(out.pooler_output)
        mistakes = {
            "the output is raw logits: NLL needs log-probabilities, F.log_softmax(logits, dim=-1)": logits,
            "the output is probabilities (softmax): NLL needs their log, F.log_softmax(logits, dim=-1)": logits.softmax(-1),
            "the log-softmax runs over the batch (dim 0): normalise over the classes, dim=-1": logits.log_softmax(0),
            "the head reads the [CLS] token's last hidden state: read the pooled output "
            "(pooler_output: tanh of a dense layer on [CLS]), as minBERT's classifier does "
            "(bert-base trained it on next-sentence prediction)": m.head(out.last_hidden_state[:, 0]).log_softmax(-1),
            "the head reads the mean of the token vectors: read the pooled [CLS] vector, "
            "pooler_output": m.head(out.last_hidden_state.mean(1)).log_softmax(-1),
            "the attention mask is not passed to BERT, so the padding is attended to: "
            "self.bert(input_ids, attention_mask, token_type_ids)": m.head(bert(ids, None, types).pooler_output).log_softmax(-1),
            "the token types are not passed to BERT: self.bert(input_ids, attention_mask, "
            "token_type_ids)": m.head(bert(ids, mask).pooler_output).log_softmax(-1),
            "neither the attention mask nor the token types is passed to BERT: pass all three, "
            "self.bert(input_ids, attention_mask, token_type_ids)": m.head(bert(ids).pooler_output).log_softmax(-1),
            "the attention mask and the token types are swapped: BertModel takes (input_ids, "
            "attention_mask, token_type_ids) in that order": m.head(bert(ids, types, mask).pooler_output).log_softmax(-1),
        }  # fmt: skip
    want = logits.log_softmax(-1)
    if wrong := not_a_tensor(got, tuple(want.shape), "(B, C)"):
        return failed(name, wrong, "one row of C log-probabilities per sentence")
    if _varies_in_eval(m, lambda: m(ids, mask, types)):
        return failed(name, *EVAL_DROPOUT)
    if not _close(got, want):
        hint = _first_match(got, mistakes)
        return failed(name, f"wrong output for 3 sentences (one padded), {C} classes",
                      *([hint] if hint else ["pooled = self.bert(...).pooler_output; dropout; head; "
                        "log-softmax over the classes", "return F.log_softmax(self.head(self.dropout("
                        "pooled)), dim=-1)"]))  # fmt: skip
    trained = _train_output(m, lambda: m(ids, mask, types))
    if _close(trained, want):
        return failed(name, "in training mode the output equals the evaluation output: no dropout",
                      "apply self.dropout to the pooled vector before self.head")  # fmt: skip
    pooled = out.pooler_output
    after = _train_output(m, lambda: m.dropout(m.head(pooled)).log_softmax(-1))
    if _close(trained, after):
        return failed(name, "dropout is applied to the logits: drop the pooled vector, before the head",
                      "self.head(self.dropout(pooled))")  # fmt: skip
    if not _close(trained, _train_output(m, lambda: m.head(m.dropout(bert(ids, mask, types).pooler_output)).log_softmax(-1))):  # fmt: skip
        return failed(name, "in training mode the output differs (dropout)",
                      "apply self.dropout once, to the pooled vector")  # fmt: skip
    return passed(name, "pooled [CLS] -> dropout -> linear -> log-softmax over the classes, with the "
                  "mask and token types passed on")  # fmt: skip
