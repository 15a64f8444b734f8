"""GPT-2's weights (Hugging Face's ``GPT2LMHeadModel``) in the course's GPT (notebook 08).

GPT-2 stores its linear layers as ``Conv1D``: weight (in, out), applied as x @ W + b, where
``nn.Linear`` stores (out, in) and computes x @ Wᵀ + b; so every weight is transposed on the way in,
and the fused query-key-value weight ``c_attn`` (d, 3d) is cut into the three.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from helpers.env import seeded
from helpers.files import save_into
from helpers.gpt.model import GPT, GPTConfig

if TYPE_CHECKING:
    import transformers

ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def config_from_gpt2(hf_config: "transformers.GPT2Config") -> GPTConfig:
    """Our ``GPTConfig`` for a ``transformers.GPT2Config``; a ValueError for settings ``GPT`` does not
    have (they were ignored: logits off by up to 20 on a small model with an untied head)."""
    if hf_config.activation_function not in ACTIVATION:
        raise ValueError(f"GPT-2 activation {hf_config.activation_function!r} is not supported; "
                         f"known: {', '.join(ACTIVATION)}")  # fmt: skip
    defaults = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                "tie_word_embeddings": True}  # fmt: skip
    other = [f"{name}={getattr(hf_config, name, value)}" for name, value in defaults.items()
             if getattr(hf_config, name, value) != value]  # fmt: skip
    if other:
        raise ValueError(f"this GPT-2 sets {', '.join(other)}; helpers.gpt.GPT scales attention "
                         "by 1/√(head size) in every layer and ties its output layer to the token "
                         "embeddings, as gpt2 and distilgpt2 do: use transformers' GPT2LMHeadModel "
                         "for this one")  # fmt: skip
    return GPTConfig(vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions,
                     layers=hf_config.n_layer, heads=hf_config.n_head, embd=hf_config.n_embd,
                     hidden=hf_config.n_inner, activation=ACTIVATION[hf_config.activation_function],
                     norm_eps=hf_config.layer_norm_epsilon)  # fmt: skip


def gpt2_state_dict(hf_state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """Rename (and transpose) a GPT2LMHeadModel state dict into ``GPT``'s names."""
    get = {k.removeprefix("transformer."): v for k, v in hf_state.items()}
    ours = {"tok.weight": get["wte.weight"], "pos.weight": get["wpe.weight"],
            "ln_f.weight": get["ln_f.weight"], "ln_f.bias": get["ln_f.bias"]}  # fmt: skip
    for i in range(layers):
        h, b = f"h.{i}.", f"blocks.{i}."
        q, k, v = get[h + "attn.c_attn.weight"].t().chunk(3, dim=0)  # (d, 3d) -> three (d, d)
        qb, kb, vb = get[h + "attn.c_attn.bias"].chunk(3)
        ours |= {
            b + "attn.query.weight": q, b + "attn.key.weight": k, b + "attn.value.weight": v,
            b + "attn.query.bias": qb, b + "attn.key.bias": kb, b + "attn.value.bias": vb,
            b + "attn.out.weight": get[h + "attn.c_proj.weight"].t(), b + "attn.out.bias": get[h + "attn.c_proj.bias"],
            b + "ff.up.weight": get[h + "mlp.c_fc.weight"].t(), b + "ff.up.bias": get[h + "mlp.c_fc.bias"],
            b + "ff.down.weight": get[h + "mlp.c_proj.weight"].t(), b + "ff.down.bias": get[h + "mlp.c_proj.bias"],
            b + "ln1.weight": get[h + "ln_1.weight"], b + "ln1.bias": get[h + "ln_1.bias"],
            b + "ln2.weight": get[h + "ln_2.weight"], b + "ln2.bias": get[h + "ln_2.bias"],
        }  # fmt: skip
    ours["head.weight"] = ours["tok.weight"]  # tied
    return {k: v.contiguous() for k, v in ours.items()}


def load_gpt2(name_or_dir: str) -> GPT:
    """``GPT.from_pretrained``: download (or read) a GPT-2 checkpoint and copy its weights in."""
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(name_or_dir)
    model = GPT(config_from_gpt2(hf.config))
    model.load_state_dict(gpt2_state_dict(hf.state_dict(), hf.config.n_layer))
    return model.eval()


def tiny_gpt2(
    folder: str | Path, texts: Sequence[str], vocab_size: int = 400, seed: int = 0
) -> Path:
    """A small random GPT-2 (2 layers, 64 wide, 128 positions) and a byte-level BPE tokenizer trained on
    ``texts``, saved in Hugging Face's format in ``folder``: what the offline tests and the smoke profile
    load instead of gpt2 (``GPT.from_pretrained(folder)``, ``AutoTokenizer.from_pretrained(folder)``)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from helpers.pretrained import no_progress_bars
    from helpers.tokenization.train import train_byte_level_bpe

    tokenizer = train_byte_level_bpe(texts, vocab_size, model_max_length=128)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=64, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip

    def save(tmp: Path) -> None:
        with seeded(seed), no_progress_bars():  # "Writing model shards" for a stand-in is noise
            GPT2LMHeadModel(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return save_into(folder, save)
