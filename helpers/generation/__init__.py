"""Notebook 08's lesson: GPT-2 in the course's GPT, the course's task (prefixes × samples), the
next-token distribution of a typed text, and the KV cache timed (``helpers.generation.runs``)."""

from helpers.generation.runs import (
    load_gpt2_and_tokenizer,
    next_token_table,
    prefix_samples,
    time_per_token,
    tokens_per_second,
    transformers_greedy,
)

__all__ = ["load_gpt2_and_tokenizer", "next_token_table", "prefix_samples", "time_per_token",
           "tokens_per_second", "transformers_greedy"]  # fmt: skip
