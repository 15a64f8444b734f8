"""Notebook 05: the whole model against ``transformers.BertModel`` on real weights (minBERT's
``sanity_check.py``)."""

import math

import torch
import torch.nn as nn

from helpers.checks.bert.attention import PADDED_NAN
from helpers.checks.bert.shared import CORRECT, SANITY_ATOL
from helpers.checks.modules import padded_not_finite
from helpers.feedback import CheckResult, failed, passed, run_check

SINGLES = ("A gripping, beautifully shot film.", "Dull.")
PAIR = ("The plot is thin but the cast is great", "and the ending works")


def check_bert(cls: type, name_or_dir: str = "minilm") -> CheckResult:
    """``cls.from_pretrained(name_or_dir)`` (a ``helpers.bert.BertModel`` subclass built from your modules)
    against ``transformers.BertModel`` holding the same weights, on a padded batch with a sentence pair:
    every layer's output on the real tokens and the pooler, to atol 1e-5."""
    name = "your BERT vs transformers.BertModel"
    return run_check(name, lambda: _bert(name, cls, name_or_dir))


def _hidden_states(model: nn.Module, batch: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The embeddings' output and each block's output (forward hooks), and the pooler's output."""
    outputs: list[torch.Tensor] = []
    # copies: a layer that changes its input in place must not rewrite the output recorded before it
    hooks = [m.register_forward_hook(lambda _m, _i, o: outputs.append(o.detach().clone()))
             for m in (model.embeddings, *model.blocks)]  # fmt: skip
    try:
        with torch.no_grad():
            pooled = model(
                batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
            ).pooler_output
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, pooled


def _bert(name: str, cls: type, name_or_dir: str) -> CheckResult:
    import transformers

    from helpers import pretrained
    from helpers.bert.weights import checkpoint_folder

    try:
        folder = checkpoint_folder(
            pretrained.minilm_path() if name_or_dir == "minilm" else str(name_or_dir)
        )
    except OSError as err:  # not the student's code: the checkpoint named in the parameters cell
        return failed(name, f"the checkpoint {name_or_dir!r} could not be loaded",
                      str(err).splitlines()[0], "check MODEL in the parameters cell: \"minilm\" "
                      "or a folder holding a BERT checkpoint")  # fmt: skip
    try:
        ours = cls.from_pretrained(str(folder)).eval()
    except ValueError as err:
        return failed(name, "the checkpoint's weights do not fit your modules",
                      _cut(str(err).splitlines()[0]), "keep the names helpers.bert uses: embeddings.word, "
                      "blocks.0.attn.query, blocks.0.ln1, blocks.0.ff.up, …")  # fmt: skip
    with pretrained.no_progress_bars():  # its "Loading weights" bar is noise here
        theirs = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    rows = [tokenizer(text) for text in SINGLES] + [tokenizer(*PAIR)]  # two sentences, one pair
    with pretrained.quiet_loading():  # transformers 4.x advises __call__ over pad, on stderr
        batch = tokenizer.pad(rows, return_tensors="pt")  # padded to the longest
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        ref = theirs(**batch, output_hidden_states=True)
    states, pooled = _hidden_states(ours, batch)
    where = ["the embeddings'", *(f"layer {i}'s" for i in range(len(states) - 1))]
    for i, (label, got, want) in enumerate(zip(where, states, ref.hidden_states)):
        gap = (got[real] - want[real]).abs().max().item() if got.shape == want.shape else math.inf
        if not gap <= SANITY_ATOL:
            hint = ("run check_embeddings: it names the usual mistakes" if label == "the embeddings'" else
                    "its input matches, so the mistake is inside the layer: run check_bert_attention and "
                    "check_add_norm")  # fmt: skip
            if i and padded_not_finite(states[i - 1], real):  # its real tokens' input matched
                before = "the embeddings'" if i == 1 else f"layer {i - 2}'s"
                hint = (f"{before} output is NaN or inf at the padded tokens, and this layer spread "
                        f"it to the real ones: {PADDED_NAN}")  # fmt: skip
            return failed(name, f"{label} output differs from transformers' by up to {gap:.3g} on the real "
                          f"tokens (tolerance {SANITY_ATOL:g})", hint)  # fmt: skip
    gap = (pooled - ref.pooler_output).abs().max().item()
    if not gap <= SANITY_ATOL:
        return failed(name, f"every layer matches but the pooler's output differs by up to {gap:.3g}",
                      "the pooler is tanh(dense(h[:, 0])): the [CLS] token's final vector")  # fmt: skip
    matched = (f"every layer and the pooler match transformers.BertModel ({len(states) - 1} layers, "
               f"a padded batch with a sentence pair) to {SANITY_ATOL:g}")  # fmt: skip
    if _only_course_modules(ours):
        return passed(name, f"helpers.bert's own modules ran, none of yours: {matched}. Set "
                      "USE_MY_MODULES = True to check yours")  # fmt: skip
    return passed(name, f"{CORRECT} {matched[0].upper()}{matched[1:]}")


def _cut(text: str, limit: int = 400) -> str:
    """``text`` cut after its last whole item (", ") within ``limit`` characters."""
    if len(text) <= limit:
        return text
    return text[: text.rfind(", ", 0, limit)] + ", …"


def _only_course_modules(model: nn.Module) -> bool:
    """Whether the embeddings and every block of ``model`` are helpers.bert's own classes."""
    from helpers.bert.model import BertEmbeddings
    from helpers.layers import Block

    return type(model.embeddings) is BertEmbeddings and all(type(b) is Block for b in model.blocks)
