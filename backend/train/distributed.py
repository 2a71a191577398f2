"""The process group under ``torchrun``: which rank this is, on which device, and collectives.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything is a single process and the
collectives are no-ops, so one code path serves a laptop and a GPU cluster.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, List


@dataclass
class DistributedContext:
    """Rank, world size and device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, metrics and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @classmethod
    def setup(cls, device: str = "auto") -> DistributedContext:
        """Read the ``torchrun`` environment, pick the device and join the process group.

        Args:
            device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
        """
        import torch

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise RuntimeError(
                    "--device cuda was asked for but torch sees no CUDA GPU; use --device cpu "
                    "or install a CUDA build of torch"
                )
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
        elif device != "cpu":
            raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda")
        context = cls(rank, world_size, local_rank, device)
        if world_size > 1:
            import torch.distributed as dist

            # NCCL needs GPUs; gloo runs anywhere (CPU-only CI, laptops).
            context.backend = "nccl" if device.startswith("cuda") else "gloo"
            if not dist.is_initialized():
                dist.init_process_group(backend=context.backend)
        return context

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def mean(self, value: float) -> float:
        """Average a number over ranks."""
        if not self.distributed:
            return float(value)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def gather(self, value: Any) -> List[Any]:
        """Every rank's (picklable) value, in rank order."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        values: List[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def shutdown(self) -> None:
        """Leave the process group."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                # Leave together: a rank tearing gloo down while another still talks to it can
                # abort at exit ("terminate called without an active exception", seen once).
                dist.barrier()
                dist.destroy_process_group()

    def say(self, message: str) -> None:
        """Print a line on rank 0 (stderr, so stdout stays free for machine-readable output)."""
        if self.is_main:
            print(message, file=sys.stderr, flush=True)


def exit_process(code: int) -> None:
    """End a training process started by ``python -m`` or ``torchrun -m`` with ``code``.

    A rank of a multi-process run leaves without the interpreter's teardown: gloo's threads can
    abort it after the run is complete ("terminate called without an active exception", SIGABRT),
    which made torchrun report a finished run as failed. By then every file is written and closed
    and the process group is left; only the output streams need flushing.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
