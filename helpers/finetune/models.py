"""The fine-tuning models: pretrained BERT-family encoders with a new classification head (notebook
04), T5 as a text-to-text classifier (notebook 09), and tiny random ones for tests where the real weights add nothing."""

from typing import TYPE_CHECKING

from helpers import pretrained
from helpers.bert.model import check_num_labels
from helpers.finetune.t5 import load_t5_classifier, tiny_t5
from helpers.pretrained import resolve_model

if TYPE_CHECKING:
    import torch.nn as nn
    import transformers


def load_tokenizer(name_or_dir: str) -> "transformers.PreTrainedTokenizerBase":
    from transformers import AutoTokenizer

    with pretrained.naming_offline_misses(name_or_dir):
        return AutoTokenizer.from_pretrained(
            pretrained.require_tokenizer(resolve_model(name_or_dir))
        )


def load_classifier(
    name_or_dir: str, num_labels: int, dropout: float | None = None
) -> "tuple[nn.Module, transformers.PreTrainedTokenizerBase]":
    """(model, tokenizer): a pretrained encoder with a new, randomly initialised classification head.

    ``dropout``: a BERT's dropout (hidden states and attention weights) for fine-tuning instead of the
    one its config.json holds.

    ``"tiny"`` is a 2-layer, 64-wide BERT from a config (random weights) with MiniLM's tokenizer, and
    ``"t5-tiny"`` a T5 of that size. A T5 checkpoint (``t5-small``) becomes a text-to-text classifier
    (``helpers.finetune.t5``).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    pretrained.require_docstrings()
    check_num_labels(num_labels)
    if pretrained.built_in(name_or_dir, pretrained.STAND_INS):
        if dropout is not None:
            raise ValueError(
                f"dropout= is for a saved BERT; the stand-in {name_or_dir!r} takes none"
            )
        tokenizer = load_tokenizer(pretrained.minilm_path())  # not a name the user gave
        if name_or_dir == "t5-tiny":
            return tiny_t5(tokenizer, num_labels), tokenizer
        return tiny_bert(tokenizer.vocab_size, num_labels), tokenizer
    # quiet: "some weights are newly initialized" is expected (the new head); both as they were after
    with pretrained.quiet_loading():
        with pretrained.naming_offline_misses(name_or_dir):
            config = AutoConfig.from_pretrained(resolve_model(name_or_dir))
        if dropout is not None and not hasattr(config, "attention_probs_dropout_prob"):
            raise ValueError(f"dropout= sets a BERT's hidden_dropout_prob and attention_probs_dropout_prob; "
                             f"{name_or_dir} ({config.model_type}) has no such settings")  # fmt: skip
        tokenizer = load_tokenizer(name_or_dir)
        if config.model_type == "t5":
            return load_t5_classifier(resolve_model(name_or_dir), num_labels, tokenizer), tokenizer
        rates = (
            {}
            if dropout is None
            else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
        )
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_model(name_or_dir), num_labels=num_labels, **rates
        )
    return model, tokenizer


def check_max_length(model: "nn.Module", max_length: int, source: str) -> None:
    """A ValueError, naming ``source``, if inputs of ``max_length`` tokens would not fit the model's
    position table (it would fail inside the model); models without one (T5's relative positions) pass."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if positions is not None and max_length > positions:
        raise ValueError(f"--max-length {max_length} is more than the {positions} positions of "
                         f"{source}; give --max-length {positions} or less")  # fmt: skip


def tiny_bert(vocab_size: int, num_labels: int = 2) -> "transformers.BertForSequenceClassification":
    """A 2-layer, 64-wide BERT from a config (random weights, from torch's current generator)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, num_labels=num_labels)  # fmt: skip
    return BertForSequenceClassification(config)
