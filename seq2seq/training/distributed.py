"""Multi-process training: ``torchrun`` detection, process group, DDP wrapping, reductions.

Under ``torchrun --nproc_per_node=N -m seq2seq train ...`` every process runs the whole
trainer on its share of each global batch; DistributedDataParallel averages the gradients
(Gloo on CPU, NCCL on CUDA). Only rank 0 writes files and logs progress.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (``world_size == 1`` without ``torchrun``)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


class RankZeroFailed(RuntimeError):
    """Raised on the other processes when rank 0 failed in ``run_on_main``: rank 0 reports the
    error, the command line exits quietly elsewhere (``quiet``), so that it is said once."""

    quiet = True


class LaunchError(ValueError):
    """The multi-process environment (``torchrun``'s variables) is incomplete or inconsistent."""


def _env_int(name: str, default: str | None = None) -> int:
    value = os.environ.get(name, default)
    if value is None:
        raise LaunchError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {name} is not; launch with"
            " torchrun (it sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT), or"
            " unset WORLD_SIZE to train in one process"
        )
    try:
        return int(value)
    except ValueError:
        raise LaunchError(f"environment variable {name}={value!r}: expected an integer") from None


def detect() -> DistInfo:
    """Reads the ``torchrun`` environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE)."""
    world_size = _env_int("WORLD_SIZE", "1")
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(
        rank=_env_int("RANK"),
        local_rank=_env_int("LOCAL_RANK", "0"),
        world_size=world_size,
        local_world_size=_env_int("LOCAL_WORLD_SIZE", str(world_size)),
    )
    if not 0 <= info.rank < world_size:
        raise LaunchError(f"RANK={info.rank} is outside 0..WORLD_SIZE-1 ({world_size - 1})")
    return info


def init_process_group(info: DistInfo, device: torch.device, timeout: float = 7200.0) -> bool:
    """Joins the process group (Gloo on CPU, NCCL on CUDA); True when this call created it.

    ``timeout`` (seconds, ``train.dist_timeout``) bounds every collective: the other processes
    wait in one while rank 0 validates and writes checkpoints, which the backends' defaults
    (10 or 30 minutes) would cut short on a large validation set.
    """
    if not info.enabled or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        rank=info.rank,
        world_size=info.world_size,
        timeout=datetime.timedelta(seconds=timeout),
    )
    return True


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP around ``model`` in a multi-process job (rank 0's initial weights are broadcast)."""
    if not info.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def no_sync(model: nn.Module, skip_sync: bool) -> contextlib.AbstractContextManager:
    """Skips DDP's gradient all-reduce for accumulation micro-batches before the last one."""
    if skip_sync and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(values: Sequence[float], info: DistInfo) -> list[float]:
    """Sums a few numbers over all processes (returns them unchanged in one process)."""
    if not info.enabled:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def all_reduce_(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sums ``tensor`` over all processes in place, on its own device (no copy to the host);
    returns it."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not info.enabled:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def run_on_main(work: Callable[[], None], info: DistInfo) -> None:
    """Runs ``work`` on rank 0 only; if it fails, every process raises (none waits forever)."""
    if not info.enabled:
        work()
        return
    error: str | None = None
    if info.is_main:
        try:
            work()
        except Exception as e:
            error = str(e)
            broadcast_object(error, info)
            raise
    error = broadcast_object(error, info)
    if error is not None:
        raise RankZeroFailed(f"rank 0 failed: {error}")


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
