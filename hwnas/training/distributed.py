"""Distributed training with ``torchrun``: the process group (gloo on CPU, nccl on GPU), this process's rank,
and the seeding that makes every rank, and every resumed attempt, draw the same paths and data order.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from hwnas.errors import DeviceError, require
from hwnas.training.config import DEVICES


@dataclass(frozen=True)
class Ranks:
    """This process's place in a (possibly single-process) run."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def check_device(device: str) -> None:
    require(device in DEVICES, f"device must be one of {', '.join(DEVICES)}, but got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' needs an NVIDIA GPU, but torch sees none; use --device cpu")


@contextmanager
def process_group(device: str, *, alone: bool = False):
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on GPU), unless
    the caller already set one up; leave it afterwards only if it was joined here. ``alone`` keeps this
    process out of any group: a training of its own inside a torchrun job (stand-alone trainings split over
    the processes)."""
    check_device(device)
    if alone:
        if device == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0")) % max(1, torch.cuda.device_count())
            torch.cuda.set_device(local)
            yield Ranks(0, 1, torch.device("cuda", local))
        else:
            yield Ranks(0, 1, torch.device("cpu"))
        return
    joined = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        joined = True
    try:
        if dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
            local_rank = int(os.environ.get("LOCAL_RANK", rank))
        else:
            rank, world_size, local_rank = 0, 1, 0
        if device == "cuda":
            torch.cuda.set_device(local_rank)
            yield Ranks(rank, world_size, torch.device("cuda", local_rank))
        else:
            yield Ranks(rank, world_size, torch.device("cpu"))
    finally:
        if joined:
            dist.destroy_process_group()


def derived_seed(*parts: object) -> int:
    return random.Random(":".join(map(str, parts))).getrandbits(63)


def seed_epoch(loader: DataLoader, seed: int, epoch: int, rank: int) -> None:
    """Make the epoch's data order and augmentation a function of (seed, epoch, rank) alone."""
    torch.manual_seed(derived_seed("torch", seed, epoch, rank))
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    if loader.generator is not None:  # the shuffling sampler and the workers' seeds draw from it
        loader.generator.manual_seed(derived_seed("data", seed, epoch))
