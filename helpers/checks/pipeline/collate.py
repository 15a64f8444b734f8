"""Notebook 03, exercise (a): the collate function that pads a batch and builds its mask."""

import numpy as np
import torch

from helpers.checks.pipeline.shared import Collate
from helpers.feedback import CheckResult, failed, kind_of, passed, returned, run_check
from helpers.text import pad_batch

_DOCS = [np.array([5, 6, 7]), np.array([8, 9, 10, 11, 12, 13]), np.array([14])]
_LABELS = [1, 0, 1]


def check_collate(collate: Collate) -> CheckResult:
    """``collate(examples, max_len)``: a list of (token ids, label) -> ids (B, T) long, padded with
    0 to the longest document (at most ``max_len``), mask (B, T) bool, True at real tokens, and
    labels (B,) long."""
    name = "collate"
    return run_check(name, lambda: _collate(name, collate))


def _collate(name: str, collate) -> CheckResult:
    for max_len in (10, 4):  # 10: pad to the longest (6); 4: the long document is cut
        docs = [doc.copy() for doc in _DOCS]  # the student's copies: the checker's stay as they are
        out = collate(list(zip(docs, _LABELS)), max_len)
        if any(not np.array_equal(mine, given) for mine, given in zip(_DOCS, docs)):
            return failed(name, "your collate changed the documents it was given",
                          "read the ids, copy them into the new tensor; a DataLoader hands you the "
                          "dataset's own arrays, so a change in place changes the data set")  # fmt: skip
        if not isinstance(out, tuple | list) or len(out) != 3:
            return failed(name, f"expected (ids, mask, labels); it returned {returned(out)}",
                          "return three tensors, in that order")  # fmt: skip
        ids, mask, labels = out
        verdict = _collate_order(ids, mask, labels) or _collate_mistake(ids, mask, labels, max_len)
        if verdict:
            return failed(name, *verdict)
    return passed(name, "pads to the batch's longest document, cuts at max_len, a boolean mask "
                  "of the real tokens, labels as a tensor")  # fmt: skip


def _collate_order(ids, mask, labels) -> tuple[str, ...] | None:
    """A swapped return order: the labels (3,) or the boolean mask where the ids belong; or the
    documents' lengths where the mask belongs."""
    shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in (ids, mask, labels)]
    if shapes[1] == (3,) and isinstance(ids, torch.Tensor) and ids.dim() == 2:
        lengths = [min(len(d), ids.shape[1]) for d in _DOCS]
        if mask.tolist() in (lengths, [len(d) for d in _DOCS]):
            return ("the second tensor holds each document's length, not the mask",
                    "the mask has the ids' shape (B, T): one True or False per position, True where "
                    "the position is below that document's length",
                    "torch.arange(T)[None, :] < lengths[:, None]")  # fmt: skip
    if (
        shapes[1] == (3,)
        or shapes[0] == (3,)
        or (isinstance(ids, torch.Tensor) and ids.dtype == torch.bool)
    ):
        return (f"the three tensors have shapes {shapes}: they look out of order",
                "return (ids, mask, labels): ids and mask (B, T), labels (B,)")  # fmt: skip
    return None


def _collate_mistake(ids, mask, labels, max_len: int) -> tuple[str, ...] | None:
    want_ids, want_mask = pad_batch(_DOCS, max_len)  # the helpers' own padding: no empty docs here
    where = f"(max_len {max_len}, documents of 3, 6 and 1 tokens)"
    if not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor):
        return ("ids and mask must be tensors", "torch.zeros(B, T, dtype=torch.long) to start from")
    if ids.dim() != 2 or ids.shape[0] != 3:
        return (f"ids has shape {tuple(ids.shape)} {where}, expected {tuple(want_ids.shape)}",
                "one row per document, one column per position")  # fmt: skip
    if ids.shape[1] == max_len and max_len != want_ids.shape[1]:
        return (f"every batch is padded to max_len ({max_len} columns) {where}, not to its longest "
                f"document ({want_ids.shape[1]})",
                "T = min(max_len, the longest document in this batch): padding only what this "
                "batch needs is what makes short batches cheap")  # fmt: skip
    if ids.shape[1] > max_len:
        return (f"ids has {ids.shape[1]} columns but max_len is {max_len} {where}",
                "T = min(max_len, the longest document), and each document cut to doc[:T]")  # fmt: skip
    if ids.shape != want_ids.shape:
        return (f"ids has shape {tuple(ids.shape)} {where}, expected {tuple(want_ids.shape)}",
                "T = min(max_len, the longest document)")  # fmt: skip
    if ids.dtype != torch.long:
        return (f"ids has dtype {ids.dtype}", "nn.Embedding and cross_entropy expect int64 ids: "
                "dtype=torch.long")  # fmt: skip
    if not torch.equal(ids, want_ids):
        if torch.equal(ids[want_mask], want_ids[want_mask]):
            pad = sorted(set(ids[~want_mask].tolist()))
            return (f"the padding positions hold {pad}, not 0", "pad with 0, the <pad> id, whose "
                    "vector is zero; 1 is <unk>, a real (if unknown) word")  # fmt: skip
        right_aligned = all(torch.equal(ids[i, ids.shape[1] - min(len(d), ids.shape[1]):],
                                        torch.as_tensor(d[-ids.shape[1]:])) for i, d in enumerate(_DOCS))  # fmt: skip
        if right_aligned and len(_DOCS[1]) <= ids.shape[1]:
            return ("the padding is on the left, the tokens on the right",
                    "put each document's tokens first: position 0 is its first token, and the "
                    "positional encodings count from there")  # fmt: skip
        if len(_DOCS[1]) > ids.shape[1] and torch.equal(
            ids[1], torch.as_tensor(_DOCS[1][-ids.shape[1] :])
        ):
            return ("the long document kept its last max_len tokens",
                    "keep the first max_len tokens: doc[:T]")  # fmt: skip
        if sorted(map(tuple, ids.tolist())) == sorted(map(tuple, want_ids.tolist())):
            return ("the rows hold the right documents, padded right, but in another order "
                    "(sorted by length?)", "keep the order of `examples`: row i is examples[i], "
                    "whose label is labels[i]; the loader's shuffling already decides the order")  # fmt: skip
        return (f"ids are not the documents' ids, left-aligned and padded with 0 {where}",
                "row i, columns 0 … len(doc)-1 hold doc i's ids; the rest are 0")  # fmt: skip
    if mask.shape != want_mask.shape:
        return (f"mask has shape {tuple(mask.shape)}, expected {tuple(want_mask.shape)}",
                "one entry per token: the same shape as ids")  # fmt: skip
    if torch.equal(mask.bool(), ~want_mask):
        return ("the mask is True at the padding and False at the real tokens",
                "True = a real token: positions < that document's length")  # fmt: skip
    T = want_mask.shape[1]
    lengths = torch.tensor([min(len(d), T) for d in _DOCS])
    if torch.equal(mask.bool(), torch.arange(T)[None, :] <= lengths[:, None]):
        return ("the mask is one position too long: True at position len(doc) too",
                "positions 0 … len(doc) - 1 hold tokens: compare with < the length, not <=")  # fmt: skip
    if not torch.equal(mask.bool(), want_mask):
        return ("the mask does not mark exactly the real tokens",
                "True exactly where row i holds a token of document i: its first min(len(doc), T) "
                "positions", "torch.arange(T)[None, :] < lengths[:, None], with lengths cut at T")  # fmt: skip
    if mask.dtype != torch.bool:
        return (f"the mask is right but has dtype {mask.dtype}", "the model takes a boolean mask "
                "(it uses ~mask and masked_fill): compare, don't convert to numbers")  # fmt: skip
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        what = labels.dtype if isinstance(labels, torch.Tensor) else kind_of(labels)
        return (f"labels are {what}", "cross_entropy wants class ids: torch.tensor(labels)")
    if labels.shape != (3,):
        return (f"labels have shape {tuple(labels.shape)}, expected (3,)",
                "one class id per document: torch.tensor([label for _, label in examples])")  # fmt: skip
    if sorted(labels.tolist()) != sorted(_LABELS):
        return (f"the labels are {labels.tolist()}, not the documents' labels {_LABELS}",
                "take each example's own label: torch.tensor([label for _, label in examples])")  # fmt: skip
    if labels.tolist() != _LABELS:
        return ("the labels are not in the documents' order", "labels[i] belongs to document i")
    return None
