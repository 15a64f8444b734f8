"""Mixed precision, chosen for the hardware at hand.

- bf16 autocast on GPUs that do bfloat16 natively (compute capability 8.0 or newer: A100, L4, H100).
- fp16 autocast with a GradScaler on older GPUs (Colab's T4 is 7.5): there bf16 is emulated and slow,
  and fp16 gradients underflow without loss scaling.
- fp32 on a CPU or Apple's mps.
"""

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def choose_precision(device: torch.device, requested: str = "auto") -> str:
    """The precision to train in on ``device``: ``requested`` if it is possible there, else an error."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if device.type != "cuda":
        if requested in ("bf16", "fp16"):
            raise ValueError(
                f"precision {requested!r} needs a CUDA GPU, but the device is {device.type}; "
                "use 'auto' or 'fp32'"
            )
        return "fp32"
    if requested != "auto":
        return requested
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def autocast(device: torch.device, precision: str) -> AbstractContextManager[None]:
    """The autocast context for ``precision`` (nothing for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# torch 2.2 has only torch.cuda.amp's GradScaler; later versions have torch.amp's, its parent class.
GradScaler = getattr(torch.amp, "GradScaler", None) or torch.cuda.amp.GradScaler


def grad_scaler(device: torch.device, precision: str) -> GradScaler:
    """Loss scaling for fp16 (a no-op otherwise)."""
    enabled = precision == "fp16"
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)
