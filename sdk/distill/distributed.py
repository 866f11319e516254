"""Data-parallel distillation across processes (``torchrun``) with ``torch.distributed``.

What DataDAM and DM take from the real images are per-class means (of attention maps
and of embeddings) and, inside the network, BatchNorm statistics (of all classes, or
of each class): all of them sums. So each rank forwards its own slice of every
iteration's real batch and the partial sums are all-reduced; the synthetic images, the
network (same seed) and the augmentation draws are the same on every rank, so every
rank takes the same step.

    torchrun --nproc-per-node 4 -m datadam distill mnist --ipc 10 --out mnist_ipc10.safetensors

The process group comes from torchrun's environment (``WORLD_SIZE``, ``RANK``,
``MASTER_ADDR``...): NCCL when the device is a GPU, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """This process's place in the group: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress."""
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all ranks, in place (a no-op in a single process)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def close(self) -> None:
        """Leave the process group (after the last collective), if there is one."""
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of ``indices`` (every ``world``-th one from ``rank``)."""
        return indices[self.rank::self.world]


def current_shard() -> Shard:
    """The shard of this process: ``Shard(0, 1)`` unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher) started several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: str = "auto") -> Shard:
    """Join the process group torchrun describes (once); returns this process's shard.

    On CUDA each process takes the GPU ``LOCAL_RANK``; the backend is NCCL there and gloo
    on the CPU.
    """
    if not launched_by_torchrun() or not dist.is_available():
        return Shard()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current_shard()
