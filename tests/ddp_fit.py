"""A small `fit` run for tests/test_distributed.py, started by torchrun (or in the test's own process,
``main(argv)``, for the one-process runs).

    python tests/ddp_fit.py --json OUT [--checkpoint PATH --stop-after EPOCH --accumulate N]
                            [--uneven | --merged]

A 2-layer MLP on a fixed synthetic task (no dropout, so that the run is deterministic), 8 batches of 16
per epoch, 3 epochs (``--uneven``: batches of 16 and 4 in turn; ``--merged``: each such pair as one
batch of 20, to compare with). Rank 0 writes the history and the final weights; ``--stop-after K`` ends the
process after epoch K is checkpointed (an interrupted run, to resume).
"""

import argparse
import json
import sys

import torch
import torch.nn as nn

from helpers.training import TrainConfig, distributed, fit


class Stop(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--accumulate", type=int, default=2)
    parser.add_argument("--uneven", action="store_true")
    parser.add_argument("--merged", action="store_true")
    args = parser.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 10, generator=g)
    y = (x[:, :3].sum(dim=1) > 0).long()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 128, 16)]
    if args.uneven or args.merged:  # rows 20k to 20k + 16, then 20k + 16 to 20k + 20
        cuts = [(a, a + 16) for a in range(0, 80, 20)] + [
            (a + 16, a + 20) for a in range(0, 80, 20)
        ]
        cuts = sorted(cuts) if args.uneven else [(a, a + 20) for a in range(0, 80, 20)]
        batches = [(x[a:b], y[a:b]) for a, b in cuts]
    per_shuffle = 2 if args.uneven else 1  # an uneven pair stays together, in its order
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    cfg = TrainConfig(epochs=3, lr=0.05, accumulate=args.accumulate, precision="fp32")

    def stop(history) -> None:  # runs after an epoch, before its checkpoint: K + 1 stops after K
        if args.stop_after is not None and len(history["epoch"]) > args.stop_after:
            raise Stop

    def epoch_batches(epoch: int) -> list:  # reshuffled each epoch, the same on every rank
        order = torch.randperm(
            len(batches) // per_shuffle, generator=torch.Generator().manual_seed(epoch)
        )
        return [batches[i * per_shuffle + j] for i in order for j in range(per_shuffle)]

    try:
        history = fit(model, epoch_batches, cfg, torch.device("cpu"), eval_batches={"dev": batches},
                      callbacks=[stop], checkpoint=args.checkpoint, progress=True)  # fmt: skip
    except Stop:
        return 3
    if distributed.current().main:
        weights = [p.detach().flatten().tolist() for p in model.parameters()]
        with open(args.json, "w") as f:
            json.dump({"history": dict(history), "weights": weights,
                       "processes": distributed.current().world}, f)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
