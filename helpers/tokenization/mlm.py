"""BERT's masked-language-model inputs: choose 15% of the tokens, hide them, and predict them.

The recipe (Devlin et al. 2019, and ``transformers.DataCollatorForLanguageModeling``):

1. choose each position with probability ``prob`` (0.15), never a special token or padding;
2. of the chosen positions, replace 80% with [MASK], 10% with a random token, and leave 10% as they were;
3. the labels hold the original id at every chosen position and -100 (ignored by the loss) elsewhere.

The random tokens keep the model from learning that only [MASK] needs predicting; the unchanged 10%
make it keep a useful vector for every real token. ``mask_tokens`` draws its random numbers in the same
order as transformers does, so with ``random_ids=torch.arange(vocab_size)`` and the same seed it gives
the same batch; by default it draws random tokens from the non-special ids only.

Whole-word masking (``whole_word_choice``, Google's later BERT release) chooses words instead of
tokens: every piece of a chosen word is chosen, so "##ing" is seldom guessed from "walk" beside it
(80/10/10 still applies per token: "walk" stays in view in about 10% of the chosen words).
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import transformers

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
    chosen: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: (inputs, labels), both (B, T) long; ``input_ids`` itself is left unchanged.

    input_ids (B, T) long; special_mask (B, T) bool, True at [CLS], [SEP], [PAD] and any other special
    token (never chosen). Random replacements are drawn uniformly from ``random_ids`` (1-D); when it is
    None, from every id in [0, vocab_size) except ``mask_id`` and the ids found at the special positions
    of this batch. With a tokenizer, pass ``random_ids=non_special_ids(len(tok), tok.all_special_ids)``.
    ``chosen`` (B, T) bool replaces step 1 (``whole_word_choice``); 80/10/10 then applies per token.
    """
    if input_ids.shape != special_mask.shape:
        raise ValueError(
            f"special_mask has shape {tuple(special_mask.shape)} but input_ids has shape "
            f"{tuple(input_ids.shape)}; it needs one entry per token"
        )
    _chance_and_ids(input_ids, prob)
    special_mask = special_mask.bool()
    if random_ids is None:
        random_ids = non_special_ids(vocab_size, [mask_id, *input_ids[special_mask].tolist()])
    if random_ids.numel() == 0:
        raise ValueError("random_ids is empty: there is no token to draw a random replacement from")

    inputs, labels = input_ids.clone(), input_ids.clone()
    if chosen is None:
        chance = torch.full(input_ids.shape, prob).masked_fill(special_mask, 0.0)
        # (B, T) ~15% of the real tokens
        chosen = torch.bernoulli(chance, generator=generator).bool()
    elif chosen.shape != input_ids.shape or bool((chosen.bool() & special_mask).any()):
        raise ValueError(f"chosen has shape {tuple(chosen.shape)} for input_ids {tuple(input_ids.shape)}, "
                         "or chooses a special token; it needs one entry per token, False at specials")  # fmt: skip
    chosen = chosen.bool()
    labels[~chosen] = IGNORE

    to_mask = torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool() & chosen
    inputs[to_mask] = mask_id
    # half of the remaining 20%: 10% of the chosen become a random token, the last 10% stay as they are
    to_random = torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
    to_random &= chosen & ~to_mask
    pick = torch.randint(len(random_ids), input_ids.shape, generator=generator)
    inputs[to_random] = random_ids.to(inputs.dtype)[pick][to_random]
    return inputs, labels


def continuation_ids(tokenizer: "transformers.PreTrainedTokenizerBase") -> torch.Tensor:
    """(V,) bool: True for the WordPiece ids that continue a word ("##ing"), False for word starts."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return torch.tensor([t.startswith("##") for t in tokens])


def _chance_and_ids(input_ids: torch.Tensor, prob: float) -> None:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob is the chance of choosing a token, between 0 and 1, not {prob!r}")
    # float or bool "ids" would come back out as "ids" of that type
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise ValueError(
            f"input_ids are token ids, an integer tensor, not {input_ids.dtype}: .long()"
        )


def whole_word_choice(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    continues: torch.Tensor,
    prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, T) bool: each word chosen with probability ``prob``, and with it all its pieces; never a
    special token. A word is a token that does not continue (``continues``, (V,) bool) and the
    continuing tokens after it; a special token is a word of its own, and so is a piece just after one
    or at the start of a row (packing can cut a word in two)."""
    _chance_and_ids(input_ids, prob)
    if input_ids.numel() and int(input_ids.max()) >= len(continues):
        raise ValueError(f"continues has {len(continues)} entries but input_ids holds id "
                         f"{int(input_ids.max())}: it needs one per vocabulary id, "
                         "continuation_ids(tokenizer) of the tokenizer that made the ids")  # fmt: skip
    special_mask = special_mask.bool()
    starts = ~continues[input_ids] | special_mask  # (B, T)
    starts[:, 1:] |= special_mask[:, :-1]  # a piece cut from its word by [CLS] starts a word
    starts[:, 0] = True  # and so does a piece that opens a row
    word = starts.cumsum(1) - 1  # (B, T): the word each token belongs to
    picked = torch.bernoulli(torch.full(input_ids.shape, prob), generator=generator).bool()
    return picked.gather(1, word) & ~special_mask  # one draw per word, shared by its pieces
