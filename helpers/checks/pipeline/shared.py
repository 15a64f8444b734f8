"""What notebook 03's checkers share: the types of the student's functions they are given."""

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

Example = tuple[np.ndarray, int]  # a document's token ids and its label
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # ids (B, T), mask (B, T), labels (B,)


class Collate(Protocol):
    """A student's ``collate(examples, max_len)``; the checks also call it with ``max_len=``."""

    def __call__(self, examples: list[Example], max_len: int) -> Batch: ...


MakeLoaders = Callable[
    [list[Example], list[Example], int, Callable[[list[Example]], object]],
    tuple[DataLoader, DataLoader],
]  # (train_items, valid_items, batch_size, collate) -> (train, valid)
Evaluate = Callable[[nn.Module, Iterable[Batch]], float]  # (model, batches) -> accuracy
