"""torch.distributed support for the runtime monitor.

Under an initialized process group every rank runs its own monitor; at each batched read the
per-step losses are averaged over the ranks with ``all_reduce`` (only when every rank read the
same number of values, checked with a first ``all_reduce``), findings are gathered on rank 0 at a
clean exit, and only rank 0 writes the report and prints the summary.
"""

from __future__ import annotations

from typing import Any, Optional

import torch


class DistContext:
    """Rank-awareness of the monitor; a no-op outside torch.distributed.

    Under ``recipecheck run`` launched by torchrun the monitor starts before the script calls
    ``init_process_group``: a context detected then is *pending* and turns itself on at the first
    use after the group exists (rank and world size are then fixed, so that a group destroyed
    before the monitor closes still leaves only rank 0 writing the report). Collectives check
    that the group still exists and fall back to the local values otherwise."""

    def __init__(self, enabled: bool, rank: int = 0, world_size: int = 1, pending: bool = False):
        self._enabled = enabled
        self._rank = rank
        self._world_size = world_size
        self._pending = pending and not enabled

    def _resolve(self) -> None:
        if self._pending:
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized():
                self._enabled, self._rank, self._world_size = True, dist.get_rank(), dist.get_world_size()
                self._pending = False

    @property
    def enabled(self) -> bool:
        self._resolve()
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled, self._pending = bool(value), False

    @property
    def rank(self) -> int:
        self._resolve()
        return self._rank

    @rank.setter
    def rank(self, value: int) -> None:
        self._rank = int(value)

    @property
    def world_size(self) -> int:
        self._resolve()
        return self._world_size

    @world_size.setter
    def world_size(self, value: int) -> None:
        self._world_size = int(value)

    @staticmethod
    def _live() -> bool:
        dist = torch.distributed
        return dist.is_available() and dist.is_initialized()

    @classmethod
    def detect(cls, distributed: Optional[bool] = None) -> "DistContext":
        dist = torch.distributed
        if distributed is False or not dist.is_available():
            return cls(False)
        if not dist.is_initialized():
            return cls(False, pending=distributed is None)
        return cls(True, dist.get_rank(), dist.get_world_size())

    def _comm_device(self, t: torch.Tensor) -> torch.device:
        # gloo reduces CPU tensors; nccl needs them on the GPU
        backend = str(torch.distributed.get_backend()).lower()
        if backend == "gloo":
            return torch.device("cpu")
        if t.device.type == "cpu" and torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return t.device

    def mean_if_aligned(self, values: torch.Tensor) -> torch.Tensor:
        """Mean over ranks of ``values`` (a 1-d tensor), or ``values`` itself when the ranks
        disagree on its length (uneven inputs)."""
        if not self.enabled or self.world_size == 1 or not self._live():
            return values
        dist = torch.distributed
        dev = self._comm_device(values)
        n = torch.tensor([values.numel(), -values.numel()], dtype=torch.int64, device=dev)
        dist.all_reduce(n, op=dist.ReduceOp.MAX)
        if int(n[0]) != values.numel() or -int(n[1]) != values.numel() or values.numel() == 0:
            return values
        out = values.detach().to(dev, torch.float64).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return (out / self.world_size).to(values.device)

    def gather_findings(self, findings: list) -> list:
        """All ranks' findings on rank 0 (deduplicated by code and place; where gets the rank)."""
        if not self.enabled or self.world_size == 1 or not self._live():
            return findings
        dist = torch.distributed
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, [f.to_json() for f in findings])
        if self.rank != 0:
            return findings
        from .findings import RuntimeFinding

        out, seen = list(findings), {(f.code, f.where) for f in findings}
        for rank, items in enumerate(gathered):
            if rank == 0 or not items:
                continue
            for d in items:
                if (d["code"], d["where"]) in seen:
                    continue
                seen.add((d["code"], d["where"]))
                d = dict(d)
                d["message"] = f"[rank {rank}] {d['message']}"
                out.append(RuntimeFinding(**d))
        return out
