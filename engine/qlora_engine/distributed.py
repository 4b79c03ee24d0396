"""Data parallelism inside the recipe: this process's rank, its share of a step's rows, and the collectives that keep
the replicas equal (train.devices > 1; launch.py starts the processes through torchrun).

Every rank reads the same data order, so every rank knows the whole step: its rows are every world-th row of the
step, and the loss is divided by the target tokens of the *whole* step on every rank. The LoRA gradients are then
summed across ranks (one flat all-reduce: adapters are small), which gives each rank exactly the gradient one
process computes over all the rows — the same token weighting, the same update up to floating-point order — and,
with identical optimizers, identical weights. Rank 0 owns the run folder, the events and evaluation; a decision only
it can make (cancel, early stop) reaches the others at the next step boundary through `flags`.

With train.strategy fsdp (fsdp.py) the ranks run in lockstep: each forward pass gathers every layer's weights from
all ranks, so every rank runs as many passes per step as the busiest one (`passes` adds empty ones) and every rank
evaluates.

A process started without torchrun's environment (RANK, WORLD_SIZE) is the single-process group: no collectives.
"""
from __future__ import annotations

import datetime as dt
import os
from typing import Any, List, Optional, Sequence, Tuple

import torch

from .passes import Pass, count_passes, empty_pass, plan_passes

# gloo and NCCL wait this long in a collective before giving up (rank 0 evaluates while the others wait).
TIMEOUT = dt.timedelta(hours=2)


class Group:
    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.lockstep = False  # set once the model is sharded (fsdp.shard): every rank runs every collective pass

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self) -> torch.device:
        """This rank's device: its own GPU (LOCAL_RANK), or the CPU."""
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def share(self, items: Sequence[Any]) -> List[Any]:
        """This rank's part of a step's rows (or micro-batches)."""
        return list(items[self.rank::self.world])

    def passes(self, rows: Sequence[Any], budget: int) -> List[Pass]:
        """This rank's forward passes over its share of the step's rows (passes.plan_passes). In lockstep, padded
        with empty passes to the most any rank has: every rank knows the whole step, so it counts the others' passes
        itself, without a collective."""
        mine = plan_passes(self.share(rows), budget)
        if not self.lockstep:
            return mine
        most = max(count_passes(rows[r::self.world], budget) for r in range(self.world))
        return mine + [empty_pass() for _ in range(most - len(mine))]

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient across ranks (a rank without rows contributes zeros)."""
        if not self.distributed:
            return
        import torch.distributed as dist
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat)
        at = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[at:at + n].view_as(p).to(p.dtype)
            at += n

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if not self.distributed:
            return value
        import torch.distributed as dist
        out = value.detach().clone().float()
        dist.all_reduce(out)
        return out

    def gather_int(self, value: int, device: torch.device) -> List[int]:
        """Every rank's value, in rank order (one int per rank: a small all-gather)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist
        mine = torch.tensor([value], device=device, dtype=torch.int64)
        every = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(every, mine)
        return [int(t.item()) for t in every]

    def memory_peaks(self, device: torch.device) -> Optional[List[int]]:
        """Every rank's peak GPU memory (torch.cuda.max_memory_allocated), in rank order; None on the CPU."""
        if device.type != "cuda":
            return None
        return self.gather_int(torch.cuda.max_memory_allocated(device), device)

    def flags(self, *values: bool, device: torch.device) -> Tuple[bool, ...]:
        """Each flag true on any rank (rank 0's cancel or early stop, made everyone's)."""
        if not self.distributed:
            return values
        out = self.sum(torch.tensor([float(v) for v in values], device=device))
        return tuple(bool(v > 0) for v in out.tolist())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value (a picklable object) on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


def from_environment() -> Group:
    """The group torchrun's environment describes (joined now), or the single-process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group()
    import torch.distributed as dist
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=TIMEOUT)
    return Group(rank, world, local_rank)

