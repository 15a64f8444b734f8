"""Notebook 08's runs: load GPT-2 (or the offline stand-in) into the course's GPT, write samples for a
list of prefixes, read the next-token distribution of a text, and time generation with and without
the KV cache.

    model, tokenizer, name = load_gpt2_and_tokenizer("distilgpt2")
    table = prefix_samples(model, tokenizer, ["My name", "Machine learning"], samples=5, seed=42)
"""

import contextlib
import copy
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from helpers import pretrained
from helpers.corpora import synthetic_text
from helpers.download import cache_dir
from helpers.env import synchronize
from helpers.gpt.model import GPT
from helpers.gpt.pretrained import tiny_gpt2
from helpers.training import generate

if TYPE_CHECKING:
    import transformers

TINY = "tiny"  # the offline stand-in: a random 2-layer GPT-2 and a byte-level BPE trained on made-up text


def load_gpt2_and_tokenizer(name: str) -> tuple[GPT, "transformers.PreTrainedTokenizerBase", str]:
    """(model, tokenizer, name): ``gpt2``, ``distilgpt2``, ``gpt2-medium`` or a folder (from the hub or
    the cache), or ``"tiny"``: the offline stand-in, built once in the helpers cache."""
    from transformers import AutoTokenizer

    if pretrained.built_in(name, (TINY,)):
        folder = cache_dir() / "tiny-gpt2"
        if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
            tiny_gpt2(folder, synthetic_text(20_000).splitlines())
        name = str(folder)
    pretrained.require_tokenizer(name)  # a folder without one: named, not an empty tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        return GPT.from_pretrained(name), tokenizer, name
    except OSError as err:  # offline, a typo, a folder without the files
        raise OSError(f"could not load {name!r} ({str(err).splitlines()[0][:150]}); offline, use "
                      f"MODEL = {TINY!r}, the stand-in that needs no download") from None  # fmt: skip


def _encode(tokenizer, text: str, device: torch.device) -> torch.Tensor:
    ids = tokenizer(text, verbose=False)["input_ids"]  # no "longer than": the callers crop
    if not ids:
        raise ValueError("the text is empty; type at least one character")
    return torch.tensor([ids], device=device)  # (1, T)


def prefix_samples(model: GPT, tokenizer: "transformers.PreTrainedTokenizerBase",
                   prefixes: Sequence[str], samples: int = 5, tokens: int = 20, seed: int = 42,
                   **sampling: Any) -> dict[str, list[str]]:  # fmt: skip
    """{prefix: ``samples`` continuations of ``tokens`` tokens}, drawn with ``sampling`` (temperature,
    top_k, top_p) from one generator seeded ``seed``: the same seed gives the same table."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    table = {}
    for prefix in prefixes:
        idx = _encode(tokenizer, prefix, device).repeat(
            samples, 1
        )  # (samples, T): one row per sample
        out = generate(
            model, idx, tokens, model.config.block_size, generator=g, cache=True, **sampling
        )
        table[prefix] = [tokenizer.decode(row[idx.shape[1] :].tolist()) for row in out]
    return table


@torch.no_grad()
def next_token_table(
    model: GPT, tokenizer: "transformers.PreTrainedTokenizerBase", text: str, top: int = 10
) -> list[tuple[str, float]]:
    """The ``top`` most likely next tokens after ``text``, with their probabilities."""
    model.eval()
    idx = _encode(tokenizer, text, next(model.parameters()).device)[:, -model.config.block_size :]
    probs = torch.softmax(model(idx)[0, -1].float(), dim=-1)
    p, ids = probs.topk(top)
    return [(_token_text(tokenizer, i), q) for i, q in zip(ids.tolist(), p.tolist())]


def _token_text(tokenizer: "transformers.PreTrainedTokenizerBase", i: int) -> str:
    """Token ``i`` as text; a byte-level piece of a character (it decodes to "\ufffd" alone) named
    with its id, so that two such bars are told apart."""
    text = tokenizer.decode([i])
    return f"part of a character (id {i})" if "\ufffd" in text else text


@torch.no_grad()
def time_per_token(
    model: GPT, lengths: Sequence[int], cache: bool, repeats: int = 3
) -> list[float]:
    """Seconds the model takes to produce the next token once the sequence is ``length`` tokens long:
    a full forward pass over the context without a cache, one token's pass with it (median of
    ``repeats``)."""
    model.eval()
    device = next(model.parameters()).device
    times = []
    for length in lengths:
        if not 1 <= length <= model.config.block_size:
            raise ValueError(
                f"lengths must be between 1 and block_size={model.config.block_size}, not {length}"
            )
        idx = torch.zeros(1, length, dtype=torch.long, device=device)
        runs = []
        for _ in range(repeats + 1):  # the first is a warm-up
            with model.kv_cache() if cache else contextlib.nullcontext():
                if cache and length > 1:
                    model(idx[:, :-1])  # the earlier tokens, once (not timed)
                synchronize(device)
                started = time.perf_counter()
                model(idx[:, -1:], start=length - 1) if cache else model(idx)
                synchronize(device)
            runs.append(time.perf_counter() - started)
        runs = runs[1:]
        times.append(sorted(runs)[len(runs) // 2])
    return times


def tokens_per_second(model: GPT, prompt: torch.Tensor, tokens: int, cache: bool) -> float:
    """Greedy generation's speed: ``tokens`` new tokens after ``prompt`` (1, T), after a warm-up."""
    device = prompt.device
    generate(model, prompt, 2, model.config.block_size, 0.0, cache=cache)  # warm-up
    synchronize(device)
    started = time.perf_counter()
    generate(model, prompt, tokens, model.config.block_size, 0.0, cache=cache)
    synchronize(device)
    return tokens / (time.perf_counter() - started)


@torch.no_grad()
def transformers_greedy(
    hf_model: "transformers.GPT2LMHeadModel", prompt: torch.Tensor, tokens: int
) -> torch.Tensor:
    """``hf_model.generate`` greedy for exactly ``tokens`` new tokens (no stop at end-of-text, which
    our loop does not have either). Every setting goes into a copy of the model's generation config:
    passing it together with ``max_new_tokens=`` is deprecated in transformers 5."""
    config = copy.deepcopy(hf_model.generation_config)
    config.eos_token_id = None
    config.pad_token_id = 0
    config.max_new_tokens = tokens
    config.do_sample = False
    return hf_model.generate(
        prompt, attention_mask=torch.ones_like(prompt), generation_config=config
    )
