"""Notebook 04, exercise 1: the collate function with dynamic padding (single sentences and
question + passage pairs), against each known tokenizer mistake."""

import copy
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from helpers.feedback import CheckResult, failed, kind_of, passed, returned_not, run_check
from helpers.finetune.data import Task, collate_rows, make_collate

if TYPE_CHECKING:
    import transformers


SENTENCES = [
    {"sentence": "a gripping , beautifully shot film", "label": 1},
    {"sentence": "dull", "label": 0},
    {"sentence": "not good at all , sadly , and far too long for what it has to say", "label": 0},
]
QUESTION = "is the film that everyone keeps talking about this year based on a true story"
PASSAGE = " ".join(["the film follows a family of farmers through three hard winters ."] * 6)
PAIRS = [
    {"question": QUESTION, "passage": PASSAGE, "answer": True},
    {"question": "is it long", "passage": "it runs for three hours .", "answer": False},
]
PAIR_LENGTH = 24  # the question alone is 17 tokens: only the passage may be cut to fit


def check_collate(
    collate: Callable, tokenizer: "transformers.PreTrainedTokenizerBase"
) -> CheckResult:
    """``collate(rows, tokenizer, task, labels, max_length)`` -> a dict of tensors: input_ids,
    attention_mask, token_type_ids (B, T) padded to the batch's longest, and labels (B,)."""
    name = "collate with dynamic padding"
    return run_check(name, lambda: _collate(name, collate, tokenizer))


def _call_tokenizer_mistakes(tokenizer, rows, task, labels, max_length) -> dict[str, dict]:
    """What each known mistake would return, made with the same tokenizer."""
    texts = [r[task.text] for r in rows]
    pairs = [r[task.pair] for r in rows] if task.pair else None

    def tok(*args: object, **kw: object) -> dict[str, torch.Tensor]:
        options = {"padding": True, "truncation": True, "max_length": max_length, **kw}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "max_length is ignored when ..."
                return dict(tokenizer(*args, return_tensors="pt", **options))
        except Exception:  # this mistake cannot even be made on these rows: nothing to compare
            return {"input_ids": torch.empty(0)}

    mistakes = {
        "every batch is padded to max_length: pad to the longest example of this batch "
        "(padding=True, or padding='longest')": tok(texts, pairs, padding="max_length",
                                                    truncation="only_second" if pairs else True),
        "nothing is truncated: long examples exceed max_length (truncation=..., "
        "max_length=max_length)": tok(texts, pairs, truncation=False),
    }  # fmt: skip
    if pairs:
        mistakes |= {
            "the question was cut as well as the passage: truncation=True cuts the longer text "
            "token by token, so both shrink; use truncation='only_second' to cut the passage only": tok(
                texts, pairs
            ),
            "the question was cut instead of the passage: use truncation='only_second'": tok(
                texts, pairs, truncation="only_first"
            ),
            "question and passage were joined into one text, so there is no [SEP] between them and "
            "every token type id is 0: give the passages as the tokenizer's second argument": tok(
                [f"{a} {b}" for a, b in zip(texts, pairs)]
            ),
            "the passage comes first: the question is the first text (token type 0), the passage "
            "the second": tok(pairs, texts, truncation="only_first"),
        }
    return mistakes


def _collate(name: str, collate: Callable, tokenizer) -> CheckResult:
    cases = [
        ("two short sentences", SENTENCES[:2], Task("sentence", "label"), {0: 0, 1: 1}, 32),
        ("a long sentence", SENTENCES, Task("sentence", "label"), {0: 0, 1: 1}, 12),
        ("question + passage", PAIRS, Task("question", "answer", pair="passage"),
         {False: 0, True: 1}, PAIR_LENGTH),
    ]  # fmt: skip
    for what, rows, task, labels, max_length in cases:
        want = make_collate(tokenizer, task, labels, max_length)(rows)
        given = copy.deepcopy(rows)  # the student's copies: the checker's rows stay as they are
        try:
            got = collate(given, tokenizer, task, dict(labels), max_length)
        except Exception as err:  # the tokenizer's own errors for two classic mistakes
            message = str(err).lower()
            if "second sequence not provided" in message and not task.pair:
                return failed(name, f"{what}: truncation='only_second' failed on single sentences",
                              "with one text there is no second text to cut: use truncation=True "
                              "when task.pair is None")  # fmt: skip
            if "truncate" in message and task.pair:
                return failed(name, f"{what}: the tokenizer could not cut the question short enough",
                              "the question must stay whole: cut only the passage, "
                              "truncation='only_second'")  # fmt: skip
            if isinstance(err, ValueError) and "pad" in message:
                return failed(name, f"{what}: the tokenizer could not make one tensor of texts "
                              "of different lengths", "pad them: padding=True")  # fmt: skip
            raise
        if given != rows:
            return failed(name, f"{what}: your collate changed the rows it was given",
                          "read each row (row[task.label]), do not pop or overwrite its fields: a "
                          "DataLoader hands you the data set's own rows")  # fmt: skip
        if not isinstance(got, dict) and hasattr(got, "keys"):
            got = dict(got)  # a BatchEncoding is a dict already; anything mapping-like is fine
        if not isinstance(got, dict):
            return failed(name, f"{what}: collate returned {returned_not(got, 'a dict')}",
                          "return the tokenizer's output (a dict) with a 'labels' entry added")  # fmt: skip
        for key in want:
            if key not in got:
                hints = (
                    ["the model needs the targets too: a 'labels' tensor of each row's label, mapped "
                     "through `labels`",
                     "batch['labels'] = torch.tensor([labels[r[task.label]] for r in rows])"]
                    if key == "labels"
                    else ["return everything the tokenizer gives back (input_ids, attention_mask, "
                          "token_type_ids)"]
                )  # fmt: skip
                return failed(name, f"{what}: the batch has no {key!r}", *hints)
            if not isinstance(got[key], torch.Tensor):
                hint = ("torch.tensor([...]) turns the list of class indices into a tensor"
                        if key == "labels" else
                        "return_tensors='pt' makes the tokenizer return PyTorch tensors")  # fmt: skip
                return failed(name, f"{what}: batch[{key!r}] is {kind_of(got[key])}, not a tensor",
                              hint)  # fmt: skip
        result = _compare_batch(name, what, got, want, tokenizer, rows, task, labels, max_length)
        if result is not None:
            return result
    return passed(name, "pads each batch to its own longest example, masks the padding, keeps "
                  "question and passage apart (token types 0/1) and cuts only the passage")  # fmt: skip


def _compare_batch(name, what, got, want, tokenizer, rows, task, labels, max_length):
    labels_got = got["labels"]
    if labels_got.dim() != 1 and labels_got.numel() == len(rows):
        return failed(name, f"{what}: labels have shape {tuple(labels_got.shape)}, expected "
                      f"({len(rows)},)", "one class index per row, a flat tensor: "
                      "torch.tensor([labels[r[task.label]] for r in rows])")  # fmt: skip
    if labels_got.dtype == torch.bool or not torch.equal(labels_got.long(), want["labels"]):
        raw = [r[task.label] for r in rows]
        return failed(name, f"{what}: labels are {labels_got.tolist()}, expected {want['labels'].tolist()}"
                      f" for the raw labels {raw}", "map each raw label to its class index: "
                      "labels[row[task.label]]")  # fmt: skip
    if labels_got.dtype != torch.long:
        return failed(name, f"{what}: labels have dtype {labels_got.dtype}",
                      "cross-entropy wants class indices as integers: torch.long")  # fmt: skip
    tokens = {k: v for k, v in got.items() if k != "labels"}
    if all(k in tokens and torch.equal(tokens[k], v) for k, v in want.items() if k != "labels"):
        return None

    def same_ids(a: dict, b: dict) -> bool:
        types = "token_type_ids"
        return torch.equal(a["input_ids"], b["input_ids"]) and (
            types not in b or types not in a or torch.equal(a[types], b[types])
        )

    mistakes = _call_tokenizer_mistakes(tokenizer, rows, task, labels, max_length).items()
    for hint, output in mistakes if not same_ids(tokens, want) else ():
        if same_ids(output, want):  # this mistake makes no difference on these rows
            continue
        if torch.equal(tokens["input_ids"], output["input_ids"]) and (
            "token_type_ids" not in output
            or torch.equal(
                tokens.get("token_type_ids", output["token_type_ids"]), output["token_type_ids"]
            )
        ):
            shape, expected = tuple(tokens["input_ids"].shape), tuple(want["input_ids"].shape)
            verdict = (
                f"{what}: input_ids differ from the expected ones (same shape {shape})"
                if shape == expected
                else f"{what}: input_ids of shape {shape}, expected {expected}"
            )
            return failed(name, verdict, hint)
    for key, hint in (
        ("input_ids", "tokenise every row's text(s); pad with padding=True"),
        ("attention_mask", "the attention mask is 1 on real tokens and 0 on padding"),
        ("token_type_ids", "token type ids are 0 for the first text and 1 for the second"),
    ):
        if key in want and not torch.equal(tokens[key], want[key]):
            return failed(name, f"{what}: {key} differ from the tokenizer's", hint,
                          "let the tokenizer build them: tokenizer(texts, pairs, padding=True, "
                          "truncation=..., max_length=max_length, return_tensors='pt')")  # fmt: skip
    return None


reference_collate = collate_rows
