"""BERT's masked-language-model inputs: choose 15% of the tokens, hide them, and predict them.

The recipe (Devlin et al. 2019, and ``transformers.DataCollatorForLanguageModeling``):

1. choose each position with probability ``prob`` (0.15), never a special token or padding;
2. of the chosen positions, replace 80% with [MASK], 10% with a random token, and leave 10% as they were;
3. the labels hold the original id at every chosen position and -100 (ignored by the loss) elsewhere.

The random tokens keep the model from learning that only [MASK] needs predicting; the unchanged 10%
make it keep a useful vector for every real token. ``mask_tokens`` draws its random numbers in the same
order as transformers does, so with ``random_ids=torch.arange(vocab_size)`` and the same seed it gives
the same batch; by default it draws random tokens from the non-special ids only.
"""

import math
from collections.abc import Iterable

import torch

IGNORE = -100  # the label F.cross_entropy (ignore_index) skips


def special_tokens_mask(input_ids: torch.Tensor, special_ids: Iterable[int]) -> torch.Tensor:
    """(B, T) bool, True where ``input_ids`` holds one of ``special_ids`` ([CLS], [SEP], [PAD], …)."""
    special = torch.as_tensor(list(special_ids), dtype=input_ids.dtype)
    return torch.isin(input_ids, special)


def non_special_ids(vocab_size: int, special_ids: Iterable[int]) -> torch.Tensor:
    """Every id in [0, vocab_size) except ``special_ids``: the ids a random replacement may take."""
    keep = torch.ones(vocab_size, dtype=torch.bool)
    keep[[i for i in special_ids if 0 <= i < vocab_size]] = False
    return torch.arange(vocab_size)[keep]


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    *,
    prob: float = 0.15,
    generator: torch.Generator | None = None,
    random_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: (inputs, labels), both (B, T) long; ``input_ids`` itself is left unchanged.

    input_ids (B, T) long; special_mask (B, T) bool, True at [CLS], [SEP], [PAD] and any other special
    token (never chosen). Random replacements are drawn uniformly from ``random_ids`` (1-D); when it is
    None, from every id in [0, vocab_size) except ``mask_id`` and the ids found at the special positions
    of this batch. With a tokenizer, pass ``random_ids=non_special_ids(len(tok), tok.all_special_ids)``.
    """
    if input_ids.shape != special_mask.shape:
        raise ValueError(
            f"special_mask has shape {tuple(special_mask.shape)} but input_ids has shape "
            f"{tuple(input_ids.shape)}; it needs one entry per token"
        )
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob is the chance of choosing a token, between 0 and 1, not {prob!r}")
    special_mask = special_mask.bool()
    if random_ids is None:
        random_ids = non_special_ids(vocab_size, [mask_id, *input_ids[special_mask].tolist()])
    if random_ids.numel() == 0:
        raise ValueError("random_ids is empty: there is no token to draw a random replacement from")

    inputs, labels = input_ids.clone(), input_ids.clone()
    chance = torch.full(input_ids.shape, prob).masked_fill(special_mask, 0.0)
    chosen = torch.bernoulli(chance, generator=generator).bool()  # (B, T) ~15% of the real tokens
    labels[~chosen] = IGNORE

    to_mask = torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool() & chosen
    inputs[to_mask] = mask_id
    # half of the remaining 20%: 10% of the chosen become a random token, the last 10% stay as they are
    to_random = torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
    to_random &= chosen & ~to_mask
    pick = torch.randint(len(random_ids), input_ids.shape, generator=generator)
    inputs[to_random] = random_ids.to(inputs.dtype)[pick][to_random]
    return inputs, labels


def mlm_perplexity(mean_masked_cross_entropy: float) -> float:
    """exp(mean cross-entropy over the masked positions): how many tokens the model hesitates between."""
    return math.exp(float(mean_masked_cross_entropy))
