"""Speed measurements that write JSON. Timings are medians of interleaved repeats, so both sides of a
comparison see the same machine load.

    python -m helpers.benchmark block --json block.json          # from-scratch block vs nn.LayerNorm + SDPA
    python -m helpers.benchmark attention --json attention.json  # loop vs vectorised vs torch as T grows
"""

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from helpers.layers import Block, SelfAttention
from helpers.loops import loop_self_attention


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3
) -> dict[str, float]:
    """Median seconds of each function, timed in turns (a, b, a, b, ...) after ``warmup`` calls each."""
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def block_speed(
    batch: int = 16,
    tokens: int = 128,
    embed_dim: int = 256,
    heads: int = 4,
    repeats: int = 30,
    device: str = "cpu",
) -> dict:
    """Forward + backward of a block from helpers' layers vs the same block from nn.LayerNorm + SDPA."""
    torch.manual_seed(0)
    scratch = Block(embed_dim, heads).to(device)
    fast = Block(embed_dim, heads, fast=True).to(device)
    fast.load_state_dict(scratch.state_dict())
    x = torch.randn(batch, tokens, embed_dim, device=device)
    mask = torch.ones(batch, tokens, dtype=torch.bool, device=device)
    mask[::2, tokens // 2 :] = False  # half the sequences padded to half length

    def step(block: Block) -> Callable[[], None]:
        def run() -> None:
            block.zero_grad(set_to_none=True)
            block(x, mask).square().mean().backward()

        return run

    medians = interleaved_medians({"from_scratch": step(scratch), "torch": step(fast)}, repeats)
    return {
        "what": "forward+backward of one pre-LN transformer block with a padding mask",
        "shape": {"batch": batch, "tokens": tokens, "embed_dim": embed_dim, "heads": heads},
        "seconds": medians,
        "ratio_from_scratch_over_torch": medians["from_scratch"] / medians["torch"],
        "repeats": repeats,
    }


def attention_speed(
    token_counts: list[int], embed_dim: int = 64, loop_max: int = 64, repeats: int = 5
) -> dict:
    """Forward time of single-head self-attention as T grows: loops, vectorised, and SDPA."""
    torch.manual_seed(0)
    slow, fast = SelfAttention(embed_dim), SelfAttention(embed_dim, fast=True)
    fast.load_state_dict(slow.state_dict())
    rows = []
    with torch.no_grad():
        for T in token_counts:
            x = torch.randn(1, T, embed_dim)
            fns = {"vectorised": lambda x=x: slow(x), "torch": lambda x=x: fast(x)}
            if T <= loop_max:
                fns["loops"] = lambda x=x: loop_self_attention(slow.query, slow.key, slow.value, x)
            rows.append({"tokens": T, **interleaved_medians(fns, repeats, warmup=1)})
    return {
        "what": "forward seconds of single-head self-attention, batch 1",
        "embed_dim": embed_dim,
        "rows": rows,
    }


def machine() -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.benchmark", description=__doc__.split("\n")[0]
    )
    parser.add_argument("which", choices=["block", "attention"])
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if args.which == "block":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        result = block_speed(repeats=args.repeats, device=device)
        summary = f"from-scratch / torch = {result['ratio_from_scratch_over_torch']:.2f}x"
    else:
        result = attention_speed([16, 32, 64, 128, 256, 512], repeats=max(3, args.repeats // 6))
        summary = f"{len(result['rows'])} sizes"
    result["machine"] = machine()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.which}: {summary}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
