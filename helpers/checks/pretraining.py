"""Notebook 06's checker for rescaling a pretrained BERT's embeddings before fine-tuning.

The student's function gets a small ``BertEmbeddings`` whose tables have grown as pretraining grows
them (the word table four times its initial size, the positions one and a half times) and a LayerNorm
that is not the identity. The checker compares with ``helpers.bert.mlm.rescale_embeddings`` and names
each classic mistake from what the student's function left in the tables.
"""

import copy
import numbers
from collections.abc import Callable

import torch

from helpers.bert import BertConfig, BertEmbeddings
from helpers.bert.mlm import rescale_embeddings
from helpers.env import seeded
from helpers.feedback import CheckResult, failed, passed, returned_not, run_check

TARGET = 0.02  # BERT's initial standard deviation
TABLES = ("word", "position", "token_type")


def grown_embeddings() -> BertEmbeddings:
    """Embeddings as a short pretraining leaves them: tables of different sizes, a trained LayerNorm."""
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=12)  # fmt: skip
    with seeded(0):
        emb = BertEmbeddings(cfg).eval()  # eval: no dropout, so outputs compare exactly
        with torch.no_grad():
            for table, std in zip(TABLES, (0.08, 0.03, 0.02), strict=True):
                getattr(emb, table).weight.normal_(0, std)
            emb.norm.weight.uniform_(0.5, 1.5)
            emb.norm.bias.normal_(0, 0.1)
    return emb


def check_rescale(fn: Callable) -> CheckResult:
    """``fn(embeddings, std) -> factor``: the word, position and segment tables divided in place by one
    factor, the one that brings the word table's standard deviation to ``std``."""
    name = "rescale the embeddings"
    return run_check(name, lambda: _rescale(name, fn))


def _close(a: float, b: float, rel: float = 2e-3) -> bool:
    return abs(a - b) <= rel * abs(b)


def _rescale(name: str, fn: Callable) -> CheckResult:
    emb, before = grown_embeddings(), grown_embeddings()
    word = emb.word.weight  # the Parameter itself: an optimizer holding it must see the change
    want = copy.deepcopy(before)
    factor = rescale_embeddings(want, TARGET)
    ids = torch.randint(1, 50, (4, 12), generator=torch.Generator().manual_seed(1))  # (B, T)
    types = (torch.arange(12) >= 6).long().expand(4, 12)  # (B, T): sentence A, then B
    try:
        got = fn(emb, TARGET)
    except RuntimeError as err:
        if "leaf Variable" in str(err) or "requires grad" in str(err):
            return failed(name, "an in-place change of a weight that requires gradients",
                          "PyTorch refuses to change a weight that requires gradients in place, "
                          "except inside `with torch.no_grad():`")  # fmt: skip
        raise
    old = {t: getattr(before, t).weight.std().item() for t in TABLES}
    new = {t: getattr(emb, t).weight.std().item() for t in TABLES}
    if emb.word.weight is not word:
        return failed(name, "the word table is a new Parameter, not the old one changed",
                      "change the weights in place (`table.weight.div_(factor)` inside "
                      "`torch.no_grad()`): whatever already holds the old Parameter, an optimizer or a "
                      "decoder tied by sharing it (Hugging Face's BertForMaskedLM), would keep the old, "
                      "unscaled table")  # fmt: skip
    if not torch.equal(emb.norm.weight, before.norm.weight) or not torch.equal(
        emb.norm.bias, before.norm.bias
    ):
        return failed(name, "the LayerNorm's weight or bias changed",
                      "leave the LayerNorm alone: it is what makes the tables' size irrelevant, and "
                      "its gain sets the size of what comes out")  # fmt: skip
    if _close(new["word"], old["word"]):
        return failed(name, f"the word table's standard deviation is still {old['word']:.4f}",
                      "change the module's tables, not copies: `w = w / factor` makes a new tensor; "
                      "`table.weight.div_(factor)` (inside `torch.no_grad()`) changes the table")  # fmt: skip
    if _close(new["word"], old["word"] * factor):
        return failed(name, f"the word table grew to a standard deviation of {new['word']:.4f}",
                      f"the tables were multiplied by the factor std(word) / std = {factor:.2f}, or "
                      "divided by its inverse std / std(word): divide by std(word) / std")  # fmt: skip
    if not _close(new["word"], TARGET):
        return failed(name, f"the word table's standard deviation is {new['word']:.4f}, not {TARGET}",
                      "the target is the std argument: which factor turns the word table's standard "
                      "deviation into std when you divide by it?",
                      "factor = embeddings.word.weight.std() / std, then divide all three tables by it")  # fmt: skip
    if _close(new["position"], old["position"]):
        return failed(name, "the position (and perhaps segment) table was left as it was",
                      "divide all three tables, word, position and token_type, by the same factor, "
                      "computed once before dividing any (recomputed after the word table is divided, "
                      "it is 1): the LayerNorm sees their sum, and only a sum scaled as a whole leaves "
                      "its output unchanged")  # fmt: skip
    if _close(new["position"], TARGET) and not _close(old["position"], factor * TARGET):
        return failed(name, "each table was brought to the standard deviation on its own",
                      "use one factor, the word table's, for all three: a factor per table changes "
                      "how the word, position and segment vectors add up, and so the output")  # fmt: skip
    if _close(new["token_type"], old["token_type"]):
        return failed(name, "the segment table (token_type) was left as it was",
                      "divide token_type by the same factor as word and position: every token's "
                      "vector adds one row of it")  # fmt: skip
    with torch.no_grad():
        out, ref = emb(ids, types), before(ids, types)  # (B, T, H) each
    if not torch.allclose(out, ref, atol=1e-4, rtol=1e-4):
        return failed(name, "the embeddings' output changed "
                      f"(by up to {(out - ref).abs().max().item():.3g})",
                      "divide word, position and token_type by one factor, nothing else")  # fmt: skip
    if not isinstance(got, numbers.Real) and not (torch.is_tensor(got) and got.numel() == 1):
        return failed(name, f"it returned {returned_not(got, 'the factor')}",
                      "return the factor you divided by (a float)")  # fmt: skip
    value = float(got.detach()) if torch.is_tensor(got) else float(got)  # no requires_grad warning
    if not _close(value, factor):
        return failed(name, f"it returned {value:.4g}, but the tables were divided by {factor:.4g}",
                      "return the factor std(word) / std that you divided by")  # fmt: skip
    return passed(name, f"all three tables divided by {factor:.2f}: the word table at std {TARGET}, "
                  "and the same vectors out of the LayerNorm")  # fmt: skip
