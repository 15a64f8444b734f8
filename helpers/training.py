"""Training and evaluating a classifier: tqdm progress, mixed precision on a GPU, a checkpoint per
epoch, and resuming from the last one, so a class never waits on training it has already done.
"""

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # ids (B, T), mask (B, T), labels (B,)


def autocast(device: torch.device):
    """bfloat16 (or float16) autocast on a CUDA GPU; nothing on a CPU."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def grad_scaler(device: torch.device):
    """Loss scaling for float16 on GPUs without bfloat16; a no-op elsewhere (torch 2.2 lacks torch.amp's)."""
    enabled = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], device: torch.device) -> dict[str, float]:
    """Mean cross-entropy and accuracy over ``batches``."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for ids, mask, labels in batches:
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        with autocast(device):
            logits = model(ids, mask).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=-1) == labels).sum().item()
        count += len(labels)
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[Batch], device: torch.device) -> torch.Tensor:
    """Class probabilities for every example, in batch order: (N, classes)."""
    model.eval()
    out = []
    for ids, mask, _ in batches:
        with autocast(device):
            out.append(torch.softmax(model(ids.to(device), mask.to(device)).float(), dim=-1).cpu())
    return torch.cat(out)


def train(
    model: nn.Module,
    train_batches: Callable[[int], list[Batch]],
    valid_batches: list[Batch],
    epochs: int,
    lr: float,
    device: torch.device,
    checkpoint: Path | None = None,
    weight_decay: float = 0.01,
    clip: float = 1.0,
    progress: bool = True,
) -> dict[str, list[float]]:
    """AdamW with gradient clipping; returns the loss and accuracy history per epoch.

    ``train_batches(epoch)`` gives that epoch's (shuffled) batches. With ``checkpoint``, the model, the
    optimiser and the history are saved after every epoch, and a later call resumes after the last
    saved epoch instead of starting again.
    """
    model.to(device)
    optimizer = torch.optim.AdamW(
        (p for p in model.parameters() if p.requires_grad), lr=lr, weight_decay=weight_decay
    )
    scaler = grad_scaler(device)
    history: dict[str, list[float]] = {
        "epoch": [],
        "train_loss": [],
        "valid_loss": [],
        "valid_accuracy": [],
        "seconds": [],
    }
    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, start_epoch = state["history"], state["epoch"]
        if progress:
            print(f"resuming from {checkpoint} after epoch {start_epoch}")
    for epoch in range(start_epoch, epochs):
        model.train()
        started, loss_sum, count = time.perf_counter(), 0.0, 0
        batches = train_batches(epoch)
        for ids, mask, labels in tqdm(
            batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not progress
        ):
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
            with autocast(device):
                loss = F.cross_entropy(model(ids, mask).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * len(labels)
            count += len(labels)
        valid = evaluate(model, valid_batches, device)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(loss_sum / max(count, 1))
        history["valid_loss"].append(valid["loss"])
        history["valid_accuracy"].append(valid["accuracy"])
        history["seconds"].append(time.perf_counter() - started)
        if progress:
            print(
                f"epoch {epoch + 1}: train loss {history['train_loss'][-1]:.3f}, valid loss {valid['loss']:.3f}, "
                f"valid accuracy {valid['accuracy']:.1%} ({history['seconds'][-1]:.0f} s)"
            )
        if checkpoint is not None:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history,
            }
            save_checkpoint(checkpoint, {**state, "epoch": epoch + 1})
    return history
