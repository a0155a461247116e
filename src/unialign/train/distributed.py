"""torch.distributed under torchrun: set-up, and the two collectives the trainer needs.

The trainer keeps one model per rank and, once per optimizer step, sums the gradients of the trainable
parameters over ranks in one coalesced all-reduce (what DDP does with ``no_sync`` for all but the last
micro-batch). Doing it by hand keeps modality micro-batches that touch different expert sets correct:
an expert set unused in a step simply contributes zeros, with no "unused parameter" errors or hangs.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(timeout_s: int = 600) -> DistInfo:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if world == 1:
        return DistInfo(device=device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, device=device)


def all_gather_with_grad(x: Tensor, info: DistInfo) -> Tensor:
    """Concatenate x (B, E) of every rank along dim 0, keeping the gradient path of this rank's slice.

    A loss on the gathered tensor, computed identically on every rank, then gives each rank the exact
    gradient of the global loss w.r.t. its own rows; summing parameter gradients over ranks reproduces
    the single-process gradient of the same global batch.
    """
    if info.world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[info.rank] = x
    return torch.cat(parts, dim=0)


def sum_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Sum the gradients of `params` over ranks (one flat all-reduce; missing grads count as zero)."""
    if info.world_size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, as DDP keeps them equal."""
    if info.world_size == 1:
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b.div_(info.world_size)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when `flag` is true on any rank (so all ranks skip a bad step together)."""
    if info.world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
