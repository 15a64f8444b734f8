"""Speed measurements that write JSON. ``block`` and ``attention`` time medians of interleaved repeats,
so both sides of a comparison see the same machine load; ``precision`` times one ``fit`` per precision
and ``kv-cache`` one generation per side, one after the other (no warm-up, no repeats).

    python -m helpers.benchmark block --json block.json          # from-scratch block vs nn.LayerNorm + SDPA
    python -m helpers.benchmark attention --json attention.json  # loop vs vectorised vs torch as T grows
    python -m helpers.benchmark precision --json precision.json  # fit() in fp32 / bf16 / fp16 on this device
    python -m helpers.benchmark kv-cache --json kv.json          # GPT generation with and without a KV cache
"""

import math
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from helpers.cli import Parser, output_file, stops_cleanly
from helpers.env import pick_device, seeded, synchronize, with_gradients
from helpers.files import check_report, write_report
from helpers.layers import Block, SelfAttention
from helpers.loops import loop_self_attention

COMMAND = "python -m helpers.benchmark"  # named in its reports: no other command replaces one
SHAPE = ("machine",)  # the keys of its reports from before that field


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3, device: str = "cpu"
) -> dict[str, float]:
    """Median seconds of each function, timed in turns (a, b, a, b, ...) after ``warmup`` calls each."""
    device = torch.device(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


@with_gradients  # a forward and backward step, whatever a notebook cell set before
def block_speed(
    batch: int = 16,
    tokens: int = 128,
    embed_dim: int = 256,
    heads: int = 4,
    repeats: int = 30,
    device: str = "cpu",
) -> dict:
    """Forward + backward of a block from helpers' layers vs the same block on torch's kernels
    (``fast=True``: F.layer_norm, which nn.LayerNorm runs, and SDPA)."""
    with seeded(0):  # the same weights and inputs every time, the caller's generators untouched
        scratch = Block(embed_dim, heads).to(device)
        x = torch.randn(batch, tokens, embed_dim, device=device)
    fast = Block(embed_dim, heads, fast=True).to(device)
    fast.load_state_dict(scratch.state_dict())
    mask = torch.ones(batch, tokens, dtype=torch.bool, device=device)
    mask[::2, tokens // 2 :] = False  # half the sequences padded to half length
    with torch.no_grad():  # both paths compute the same function: say how closely
        difference = (scratch(x, mask) - fast(x, mask)).abs().max().item()

    def step(block: Block) -> Callable[[], None]:
        def run() -> None:
            block.zero_grad(set_to_none=True)
            block(x, mask).square().mean().backward()  # timed, not training: one pass each way

        return run

    medians = interleaved_medians(
        {"from_scratch": step(scratch), "torch": step(fast)}, repeats, device=device
    )
    return {
        "what": "forward+backward of one pre-LN transformer block with a padding mask",
        "shape": {"batch": batch, "tokens": tokens, "embed_dim": embed_dim, "heads": heads},
        "seconds": medians,
        "ratio_from_scratch_over_torch": medians["from_scratch"] / medians["torch"],
        "max_output_difference": difference,
        "repeats": repeats,
    }


def attention_speed(
    token_counts: list[int], embed_dim: int = 64, loop_max: int = 64, repeats: int = 5
) -> dict:
    """Forward time of single-head self-attention as T grows: loops, vectorised, and SDPA."""
    with seeded(0):
        slow = SelfAttention(embed_dim)
        inputs = {T: torch.randn(1, T, embed_dim) for T in token_counts}
    fast = SelfAttention(embed_dim, fast=True)
    fast.load_state_dict(slow.state_dict())
    rows = []
    with torch.no_grad():
        for T, x in inputs.items():
            fns = {"vectorised": lambda x=x: slow(x), "torch": lambda x=x: fast(x)}
            if T <= loop_max:
                fns["loops"] = lambda x=x: loop_self_attention(slow.query, slow.key, slow.value, x)
            rows.append({"tokens": T, **interleaved_medians(fns, repeats, warmup=1)})
    return {
        "what": "forward seconds of single-head self-attention, batch 1",
        "embed_dim": embed_dim,
        "repeats": repeats,  # timed calls per size (each the median of them)
        "rows": rows,
    }


def precision_check(steps: int = 300, device: str = "cpu") -> dict:
    """Train the same small causal language model (one ``layers.Block``) through ``training.fit`` in every
    precision the device offers: fp32, and on a GPU bf16 and fp16 with loss scaling. Reports the final
    losses, the seconds, and which precision ``auto`` picks here."""
    from helpers.corpora import synthetic_text, windows
    from helpers.masking import STYLES, CharLM
    from helpers.training import TrainConfig, choose_precision, fit

    text = synthetic_text(20_000)
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    dev = torch.device(device)
    offered = ["fp32"] + (["bf16", "fp16"] if dev.type == "cuda" else [])
    rows = []
    for precision in offered:
        with seeded(0):
            g = torch.Generator().manual_seed(0)
            train = windows(data[:18_000], steps, 64, 32, g)
            valid = windows(data[18_000:], 8, 64, 32, g)
            model = CharLM(len(chars), 64, 128, 4, STYLES[0])
            cfg = TrainConfig(epochs=1, lr=3e-3, schedule="cosine", warmup=0.1, precision=precision)
            synchronize(dev)
            start = time.perf_counter()
            history = fit(model, train, cfg, dev, eval_batches={"valid": valid}, progress=False)
            synchronize(dev)
        seconds = time.perf_counter() - start
        losses = {k: history.last(k) for k in ("train_loss", "valid_loss")}
        diverged = not all(math.isfinite(v) for v in losses.values())  # a result here: JSON null
        rows.append({"precision": precision, **{k: None if diverged else v for k, v in losses.items()},
                     "diverged": diverged, "seconds": seconds})  # fmt: skip
    return {
        "what": f"{steps} steps of a one-block character LM (d 128, T 64, batch 32) per precision",
        "auto_picks": choose_precision(dev),
        "capability": list(torch.cuda.get_device_capability(dev)) if dev.type == "cuda" else None,
        "rows": rows,
    }


KV_MODELS = {  # random weights: the speed depends on the shape, not on what was learnt
    "tiny": dict(vocab_size=100, block_size=256, layers=2, heads=2, embd=64),
    "gpt2-shape": dict(vocab_size=50257, block_size=1024, layers=12, heads=12, embd=768, activation="gelu_tanh"),
}  # fmt: skip


def kv_cache_speed(tokens: dict[str, int], prompt: int = 8, device: str = "cpu") -> dict:
    """Greedy generation's tokens/s with and without a KV cache, for each model of ``KV_MODELS``
    (``tokens`` new tokens after a ``prompt``-token prompt), and whether both wrote the same tokens."""
    from helpers.gpt import GPT, GPTConfig
    from helpers.training import generate

    dev, rows = torch.device(device), []
    for name, steps in tokens.items():
        with seeded(0):
            model = GPT(GPTConfig(**KV_MODELS[name])).to(dev).eval()
        idx = torch.zeros(1, prompt, dtype=torch.long, device=dev)
        outputs, speed = {}, {}
        for cache in (False, True):
            generate(model, idx, 3, model.config.block_size, 0.0, cache=cache)  # warm-up
            synchronize(dev)
            started = time.perf_counter()
            outputs[cache] = generate(model, idx, steps, model.config.block_size, 0.0, cache=cache)
            synchronize(dev)
            speed[cache] = steps / (time.perf_counter() - started)
        rows.append({"model": name, "config": KV_MODELS[name], "new_tokens": steps,
                     "tokens_per_second_without_cache": speed[False],
                     "tokens_per_second_with_cache": speed[True],
                     "same_tokens": bool(torch.equal(outputs[False], outputs[True]))})  # fmt: skip
    return {
        "what": f"greedy generation after a {prompt}-token prompt, random weights",
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


@stops_cleanly("no report is written; run it again")
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m helpers.benchmark",
        description=" ".join((__doc__ or "").split("\n\n")[0].split()),
    )
    parser.add_argument("which", choices=["block", "attention", "precision", "kv-cache"])
    parser.add_argument(
        "--json", type=output_file, required=True, help="where to write the results"
    )
    parser.add_argument("--repeats", type=int,
                        help="timed repeats: block's (default: 30); attention times each size max(3, repeats // 6) "
                        "times; precision and kv-cache take none")  # fmt: skip
    args = parser.parse_args(argv)
    if args.repeats is not None and args.which in ("precision", "kv-cache"):
        print(f"error: --repeats is for block and attention; {args.which} has a fixed length, so "
              "leave it out", file=sys.stderr)  # fmt: skip
        return 2
    args.repeats = 30 if args.repeats is None else args.repeats
    if args.repeats < 1:
        print(f"error: --repeats must be at least 1, got {args.repeats}", file=sys.stderr)
        return 2
    try:
        check_report(args.json, create=True, command=f"{COMMAND} {args.which}", shape=SHAPE)
        device = pick_device().type
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.which == "block":
        result = block_speed(repeats=args.repeats, device=device)
        summary = f"from-scratch / torch = {result['ratio_from_scratch_over_torch']:.2f}x"
    elif args.which == "precision":
        result = precision_check(device=device)
        summary = ", ".join(
            f"{r['precision']} "
            + (
                "diverged (NaN or infinite loss)"
                if r["diverged"]
                else f"valid loss {r['valid_loss']:.3f}"
            )
            for r in result["rows"]
        )
    elif args.which == "kv-cache":
        result = kv_cache_speed({"tiny": 200, "gpt2-shape": 100}, device=device)
        summary = ", ".join(
            f"{r['model']} {r['tokens_per_second_without_cache']:.1f} -> "
            f"{r['tokens_per_second_with_cache']:.1f} tokens/s"
            for r in result["rows"]
        )
    else:
        result = attention_speed([16, 32, 64, 128, 256, 512], repeats=max(3, args.repeats // 6))
        summary = f"{len(result['rows'])} sizes"
    result["machine"] = machine()
    write_report(args.json, f"{COMMAND} {args.which}", result)
    print(f"{args.which}: {summary}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
