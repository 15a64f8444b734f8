"""T5 as a classifier, text to text (notebook 09): the input is ``"sst2 sentence: <text>"``,
the answer is a word (``"negative"`` / ``"positive"``), and training is T5's own sequence-to-sequence loss
on that word. To compare it with the encoders, ``logits`` are T5's scores for each class word's first
token at the first decoder step: their argmax is the class word T5 would start to write, if it had to
choose among the class words.

It answers like a ``...ForSequenceClassification`` model (``model(**batch)`` returns ``.loss`` and
``.logits`` (B, C); ``batch["labels"]`` are class indices), so the one trainer, ``evaluate`` and
notebook 04's comparison take it unchanged.
"""

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from helpers.tokenization.mlm import IGNORE

if TYPE_CHECKING:
    import transformers

PREFIX = "sst2 sentence: "


def class_words(num_labels: int) -> list[str]:
    """The answer T5 writes for each class: negative/positive for two classes, else the digits."""
    return ["negative", "positive"] if num_labels == 2 else [str(i) for i in range(num_labels)]


class T5Classifier(nn.Module):
    """``t5`` (a ``T5ForConditionalGeneration``) answering with one of ``words`` after ``prefix``."""

    def __init__(
        self,
        t5: nn.Module,
        tokenizer: "transformers.PreTrainedTokenizerBase",
        words: list[str],
        prefix: str = PREFIX,
    ) -> None:
        super().__init__()
        self.t5, self.words = t5, words
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        end = (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        )
        words_ids = [tokenizer(w, add_special_tokens=False)["input_ids"] + [end] for w in words]
        longest = max(map(len, words_ids))
        # (C, L): each class word's tokens and end-of-text; IGNORE (no token) after a shorter one
        answers = torch.tensor([ids + [IGNORE] * (longest - len(ids)) for ids in words_ids])
        firsts = answers[:, 0].tolist()
        if len(set(firsts)) < len(words):
            raise ValueError(f"the class words {words} do not start with distinct tokens in this "
                             "tokenizer; choose words that do")  # fmt: skip
        self.register_buffer("prefix", torch.tensor(prefix_ids), persistent=False)  # (P,)
        self.register_buffer("answers", answers, persistent=False)  # (C, L)
        self.register_buffer("firsts", torch.tensor(firsts), persistent=False)  # (C,)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None, **_: Any) -> SimpleNamespace:  # fmt: skip
        B = input_ids.shape[0]
        prefix = self.prefix.expand(B, -1)  # (B, P)
        input_ids = torch.cat([prefix, input_ids], dim=1)  # (B, P + T)
        attention_mask = torch.cat([torch.ones_like(prefix), attention_mask], dim=1)
        if labels is None:  # scores only: one decoder step from the start token
            start = torch.full(
                (B, 1), self.t5.config.decoder_start_token_id, device=input_ids.device
            )
            out = self.t5(
                input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start
            )
            return SimpleNamespace(loss=None, logits=out.logits[:, 0, self.firsts])  # (B, C)
        out = self.t5(
            input_ids=input_ids, attention_mask=attention_mask, labels=self.answers[labels]
        )
        return SimpleNamespace(loss=out.loss, logits=out.logits[:, 0, self.firsts])  # (B, C)


def load_t5_classifier(
    name_or_dir: str, num_labels: int, tokenizer: "transformers.PreTrainedTokenizerBase"
) -> T5Classifier:
    """A pretrained T5 (``t5-small``, a local folder) as a text-to-text classifier."""
    from transformers import T5ForConditionalGeneration

    return T5Classifier(T5ForConditionalGeneration.from_pretrained(name_or_dir), tokenizer,
                        class_words(num_labels))  # fmt: skip


def tiny_t5(tokenizer: "transformers.PreTrainedTokenizerBase", num_labels: int = 2) -> T5Classifier:
    """A 2-layer, 64-wide T5 from a config (random weights) over ``tokenizer``'s vocabulary: the
    offline stand-in for t5-small in the tests and the smoke profile."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2,
                      num_heads=4, pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.sep_token_id)  # fmt: skip
    return T5Classifier(T5ForConditionalGeneration(config), tokenizer, class_words(num_labels))
