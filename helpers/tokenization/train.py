"""Train a WordPiece or BPE tokenizer on a corpus with the ``tokenizers`` library, BERT-style, and measure
how many tokens it cuts a word into.

Both tokenizers get BERT's special tokens, [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, and its
template: [CLS] A [SEP] for one sentence, [CLS] A [SEP] B [SEP] for a pair (token types 0 then 1). They
come back as ``transformers`` tokenizers, so ``save_pretrained(folder)`` writes files that
``AutoTokenizer.from_pretrained(folder)`` loads back.

- WordPiece (BERT's): BERT's normaliser (lowercasing and stripping accents if ``lowercase``) and
  pre-tokeniser (split on whitespace and on every punctuation character); "##" marks a piece that
  continues a word.
- BPE: the pre-tokeniser of ``helpers.tokenization.bpe`` (runs of letters/digits, runs of punctuation,
  the ``tokenizers`` ``Whitespace`` pre-tokeniser) and no word-boundary marker, so its merges are the
  ones ``bpe.learn_bpe`` finds on the same text.

The ``tokenizers`` WordPiece trainer alone is not deterministic: it numbers each "##" piece when it first
meets it, in hash-map order, and breaks ties between equally frequent merges by those numbers (two
trainings on all of WikiText-2's validation lines, 4,000 pieces: 367 ids differed, and each kept 2
pieces the other lacked).
``train_wordpiece`` hands the trainer its alphabet up front, every character and then every "##"
character, each in code-point order, so every training on the same text gives the same vocabulary
with the same ids (tested); on that text, the same 4,000 pieces as two of the library's own trainings.
"""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from helpers.tables import read_utf8

if TYPE_CHECKING:
    import transformers

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0 … 4
MODEL_MAX_LENGTH = 512


def read_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file, stripped (WikiText's blank lines and Shakespeare's gaps
    between speeches are dropped; so is a byte-order mark), read line by line (lines end at \\n, \\r\\n
    or \\r only); a ValueError names the line and byte that are not UTF-8."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError:
        read_utf8(path)  # reads it again to name the line and byte
        raise


def _bert_template(tok: Tokenizer) -> processors.TemplateProcessing:
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )


def _check(vocab_size: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 32:
        raise ValueError(
            f"vocab_size must be a whole number of at least 32 (5 special tokens and an alphabet), "
            f"not {vocab_size!r}"
        )


def _specials() -> dict[str, str]:
    return {
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }


def train_wordpiece(
    texts: Iterable[str], vocab_size: int, *, lowercase: bool = True, min_frequency: int = 2
) -> "transformers.PreTrainedTokenizerFast":
    """A BERT WordPiece tokenizer (``transformers.BertTokenizerFast``) trained on ``texts``."""
    from transformers import BertTokenizerFast

    _check(vocab_size)
    texts = list(texts)  # read twice: for the alphabet, then by the trainer
    tok = _bert_wordpiece(
        models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"), lowercase
    )
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + _alphabet(tok, texts),  # numbered in this order
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    vocab = json.loads(tok.to_str())["model"]["vocab"]  # the alphabet as ordinary pieces again
    tok = _bert_wordpiece(
        models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"), lowercase
    )
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.post_processor = _bert_template(tok)
    tok.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=lowercase,
        strip_accents=lowercase,
        model_max_length=MODEL_MAX_LENGTH,
        **_specials(),
    )


def _bert_wordpiece(model: models.WordPiece, lowercase: bool) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def _alphabet(tok: Tokenizer, texts: list[str]) -> list[str]:
    """Every character of ``texts``' words, then "##c" for every character c that continues a word, each
    list in code-point order: the trainer's first pieces, numbered in this order."""
    chars: set[str] = set()
    continuing: set[str] = set()
    for text in texts:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            chars.update(word)
            continuing.update(word[1:])
    return sorted(chars) + ["##" + c for c in sorted(continuing)]


def train_bpe(
    texts: Iterable[str], vocab_size: int, *, lowercase: bool = True, min_frequency: int = 2
) -> "transformers.PreTrainedTokenizerFast":
    """A BPE tokenizer (``transformers.PreTrainedTokenizerFast``) with BERT's special tokens, trained on
    ``texts``; its merges are ``bpe.learn_bpe``'s (same pre-tokeniser, no word-boundary marker)."""
    from transformers import PreTrainedTokenizerFast

    _check(vocab_size)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = _bert_template(tok)  # no decoder: decode() joins the pieces with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=MODEL_MAX_LENGTH,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        **_specials(),
    )


def train_byte_level_bpe(
    texts: Iterable[str], vocab_size: int, model_max_length: int = 1024
) -> "transformers.PreTrainedTokenizerFast":
    """A GPT-2-style tokenizer (``transformers.PreTrainedTokenizerFast``) trained on ``texts``: byte-level
    BPE (every byte is in the vocabulary, so no text is ever unknown; a space is part of the word after
    it, "Ġ"), one special token ``<|endoftext|>``, and a decoder that gives the text back exactly."""
    from transformers import PreTrainedTokenizerFast

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257:
        raise ValueError(f"vocab_size must be a whole number of at least 257 (256 bytes and "
                         f"<|endoftext|>), not {vocab_size!r}")  # fmt: skip
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    end = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length,
                                   bos_token=end, eos_token=end, unk_token=end)  # fmt: skip


def bpe_merges(
    tokenizer: "Tokenizer | transformers.PreTrainedTokenizerFast",
) -> list[tuple[str, str]]:
    """The merges of a BPE tokenizer (``tokenizers.Tokenizer`` or a ``transformers`` fast one), in order."""
    tok = getattr(tokenizer, "backend_tokenizer", tokenizer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def fertility(tokenizer: "transformers.PreTrainedTokenizerBase", texts: Iterable[str]) -> float:
    """Tokens per whitespace-separated word over ``texts``, special tokens not counted.

    1.0 means every word is one token; a tokenizer cut for another kind of text splits more. Punctuation
    that the tokenizer splits off a word counts as one more token for that word."""
    texts = [t for t in texts if t.strip()]
    words = sum(len(t.split()) for t in texts)
    if words == 0:
        raise ValueError("fertility needs some text: every text given is empty")
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    return sum(map(len, ids)) / words


def trainer_merges(
    texts: Iterable[str], num_merges: int, *, lowercase: bool = False, min_frequency: int = 2
) -> list[tuple[str, str]]:
    """The first ``num_merges`` merges the ``tokenizers`` library's BPE trainer learns on ``texts``
    (``train_bpe``'s settings, no special tokens; fewer if no pair occurs ``min_frequency`` times):
    ``bpe.learn_bpe``'s reference."""
    from helpers.tokenization.bpe import alphabet as characters

    texts = list(texts)
    alphabet = characters(texts, lowercase)
    tok = Tokenizer(models.BPE())
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + num_merges,
                                  min_frequency=min_frequency, show_progress=False)  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    return bpe_merges(tok)
