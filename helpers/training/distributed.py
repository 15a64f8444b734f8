"""Data parallelism for the one trainer: the same ``fit`` in N processes, one per GPU (or CPU core).

A launcher (``torchrun --nproc_per_node N``, ``accelerate launch --num_processes N``, or a Slurm job
that runs torchrun on each node) starts N copies of the same command and tells each one where it
stands through environment variables: ``WORLD_SIZE`` = N, ``RANK`` = 0..N-1, ``LOCAL_RANK`` = its GPU
on this machine, and ``MASTER_ADDR``/``MASTER_PORT``, where rank 0 listens. ``fit`` reads them, and:

- every process holds a whole copy of the model (DDP copies rank 0's weights to all at the start);
- each process takes every N-th batch of an epoch (``DistributedSampler`` does the same for examples);
- ``backward`` all-reduces the gradients (their mean over the N processes), so every copy takes the
  same optimizer step and the copies stay equal;
- only rank 0 evaluates, logs, writes checkpoints and JSON.

Without a launcher (``WORLD_SIZE`` unset) all of this is a no-op: one process, the plain model.
"""

import atexit
import ctypes
import gc
import os
import signal
import sys
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn

from helpers.env import MPS_SEVERAL, LaunchError

T = TypeVar("T")

VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
# what init_process_group reads besides WORLD_SIZE
RENDEZVOUS = ("RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Rank:
    """This process's place: ``rank`` of ``world`` processes, ``local`` on its machine."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that evaluates, logs and writes files."""
        return self.rank == 0


def current() -> Rank:
    """This process's place, from the launcher's environment variables (one process without them)."""
    values = {}
    for name in VARIABLES:
        raw = os.environ.get(name, "1" if name == "WORLD_SIZE" else "0")
        if not raw.strip().isdigit():
            raise ValueError(f"the environment variable {name}={raw!r} is not a whole number ≥ 0; "
                             "it is set by torchrun or accelerate launch: unset it or start with one")  # fmt: skip
        values[name] = int(raw)
    world, rank = max(1, values["WORLD_SIZE"]), values["RANK"]
    if rank >= world:
        raise ValueError(f"RANK={rank} but WORLD_SIZE={world}: a rank must be below the world size")
    return Rank(rank, world, values["LOCAL_RANK"])


def start(device: torch.device) -> Rank:
    """Join the other processes (once): NCCL between GPUs, gloo between CPU processes."""
    place = current()
    if place.world > 1 and device.type == "mps":  # a device given directly, not by pick_device
        raise ValueError(MPS_SEVERAL)
    if place.world > 1 and not dist.is_initialized():
        if missing := [name for name in RENDEZVOUS if name not in os.environ]:  # torch's traceback
            raise LaunchError(f"WORLD_SIZE={place.world} is set but {' and '.join(missing)} "
                              f"{'is' if len(missing) == 1 else 'are'} not: a launcher (torchrun, "
                              "accelerate launch) sets them all; unset WORLD_SIZE to run one process, "
                              "or start the command with torchrun")  # fmt: skip
        if "TORCHELASTIC_RUN_ID" in os.environ:  # started by torchrun (or accelerate launch)
            die_with_parent()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(finish)  # leave the group when the command ends
    return place


def die_with_parent() -> None:
    """On Linux, have this process killed when its parent dies. A notebook's kernel restarted hard
    during notebook 09's two-process run killed torchrun but left its workers (each in a session of
    its own) waiting for it for good, holding the run's lock, so the cell run again was refused."""
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # best effort: a C library without prctl
        return
    if os.getppid() == 1:  # the launcher died before the line above: adopted by init already
        print("error: the launcher (torchrun) is gone; this worker stops", file=sys.stderr)
        os._exit(1)


def finish() -> None:
    """Leave the process group (at the end of a command), if one was joined: all processes together,
    after rank 0 has written its files (one leaving alone can abort the others' exit)."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # free DDP wrappers left in reference cycles: they hold the group, whose threads
        # would otherwise be torn down during interpreter shutdown ("terminate called", SIGABRT)
        _wait()
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device, place: Rank) -> nn.Module:
    """What trains: ``DistributedDataParallel(model)`` with several processes, else ``model`` itself."""
    if place.world == 1:
        return model
    ids = (
        [device.index if device.index is not None else place.local]
        if device.type == "cuda"
        else None
    )
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(batches: list, place: Rank) -> list:
    """Rank r's share of an epoch: batches r, r + N, r + 2N, ... of the same list on every rank. The
    last ``len % N`` batches are dropped, so that every rank takes the same number of steps."""
    usable = len(batches) - len(batches) % place.world
    if usable == 0:
        raise ValueError(f"{len(batches)} training batches cannot be shared by {place.world} "
                         "processes; use a smaller batch size or fewer processes")  # fmt: skip
    return batches[place.rank : usable : place.world]


def per_process(accumulate: int, world: int) -> int:
    """Batches each process accumulates per optimizer step so that the step still sees ``accumulate``
    batches in all: ``accumulate / N`` when N divides it; else ``accumulate`` (the step then sees N
    times as many batches, and ``fit`` says so)."""
    return accumulate // world if accumulate % world == 0 else accumulate


def barrier() -> None:
    """Wait until every process gets here (nothing with one process)."""
    if dist.is_available() and dist.is_initialized():
        _wait()


def _wait() -> None:
    """``dist.barrier``, naming this process's GPU under NCCL (torch warns when it has to guess one)."""
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def total(*values: float) -> list[float]:
    """The sum of each value over all processes (itself with one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    on = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
    summed = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(summed)
    return summed.tolist()


def agree(value: T) -> T:
    """Rank 0's ``value`` on every process (e.g. a number of steps timed on rank 0)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: object) -> list:
    """Every process's ``value``, in rank order (``[value]`` with one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values
