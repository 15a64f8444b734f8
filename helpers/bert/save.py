"""Save our BERT in Hugging Face's format, the inverse of ``helpers.bert.weights``: config.json
(``model_type: bert``), model.safetensors with Hugging Face's tensor names, and the tokenizer's files.

    save_pretrained(model, "small-bert/", tokenizer)
    BertModel.from_pretrained("small-bert/")                                   # ours again
    transformers.AutoModelForSequenceClassification.from_pretrained("small-bert/")  # theirs, + a new head
    transformers.BertForMaskedLM.from_pretrained("small-bert/")  # its MLM head too, if model had one

Encoder tensors get the ``bert.`` prefix (as ``BertForMaskedLM`` and ``BertForSequenceClassification``
save them); the MLM head, if the model has one, is written as ``cls.predictions.*``, its decoder weight
left out because it is the word embeddings (``tie_word_embeddings``).
"""

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch.nn as nn

from helpers.bert.mlm import HEAD_RENAMES, BertForMaskedLM
from helpers.bert.model import BertModel
from helpers.bert.weights import RENAMES
from helpers.files import save_into

if TYPE_CHECKING:
    import transformers

# ours -> Hugging Face's (after the "bert." prefix): RENAMES read right to left.
INVERSE = [
    (
        re.compile(
            re.escape(ours)
            .replace(r"\{i\}", r"(?P<i>\d+)")
            .replace(r"\{p\}", r"(?P<p>weight|bias)")
            + "$"
        ),
        theirs,
    )
    for theirs, ours in RENAMES.items()
]


def hf_name(ours: str) -> str:
    """The Hugging Face name of one of our BertModel's tensors: ``blocks.0.attn.query.weight`` ->
    ``bert.encoder.layer.0.attention.self.query.weight``."""
    for pattern, theirs in INVERSE:
        match = pattern.match(ours)
        if match:
            return "bert." + theirs.format(**match.groupdict())
    raise KeyError(
        f"{ours!r} is not a tensor of helpers.bert.BertModel; nothing maps it to Hugging Face"
    )


def hf_config(model: BertModel | BertForMaskedLM, pad_token_id: int = 0) -> dict:
    """config.json's fields: ours, plus what ``transformers`` needs to rebuild the same model."""
    cfg = model.config
    architecture = "BertForMaskedLM" if isinstance(model, BertForMaskedLM) else "BertModel"
    return {
        "architectures": [architecture],
        "model_type": "bert",
        **cfg.to_dict(),
        "hidden_act": "gelu",  # erf GELU, as helpers.layers
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "pad_token_id": pad_token_id,
        "tie_word_embeddings": True,
    }


def hf_state(model: BertModel | BertForMaskedLM) -> dict:
    """Every tensor under its Hugging Face name (contiguous, on the CPU: what safetensors stores)."""
    bert = model.bert if isinstance(model, BertForMaskedLM) else model
    state = {hf_name(k): v for k, v in bert.state_dict().items()}
    if isinstance(model, BertForMaskedLM):
        ours = model.state_dict()
        state.update({theirs: ours[mine] for theirs, mine in HEAD_RENAMES.items()})
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_pretrained(
    model: BertModel | BertForMaskedLM | nn.Module,
    folder: str | os.PathLike,
    tokenizer: "transformers.PreTrainedTokenizerBase | None" = None,
) -> Path:
    """Write ``model`` (our BertModel or BertForMaskedLM) and ``tokenizer`` to ``folder`` in Hugging
    Face's format; each file atomically. Returns the folder."""
    from safetensors.torch import save_file

    if not isinstance(model, BertModel | BertForMaskedLM):
        raise TypeError(
            f"save_pretrained saves helpers.bert's BertModel or BertForMaskedLM, not {type(model).__name__}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    state = hf_state(model)

    def write(tmp: Path) -> None:  # every file at once: a Ctrl-C never leaves a folder half saved
        save_file(state, str(tmp / "model.safetensors"), {"format": "pt"})
        config = json.dumps(hf_config(model, pad), indent=2) + "\n"
        (tmp / "config.json").write_text(config, encoding="utf-8")
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))

    return save_into(folder, write)
