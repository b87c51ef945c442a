"""DDP: each rank monitors itself, losses are all-reduced, only rank 0 writes the report."""

from __future__ import annotations

import json
import socket

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from runtime_helpers.ddp_worker import worker  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_ranks_gloo(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["run"]["world_size"] == 2 and r1["run"]["rank"] == 1
    # the loss series is the mean over the ranks, identical on both
    mean = [(a + b) / 2 for a, b in zip(r0["local"], r1["local"])]
    assert r0["series"] == pytest.approx(mean, rel=1e-5)
    assert r1["series"] == pytest.approx(mean, rel=1e-5)
    assert r0["local"] != r1["local"]
    # only rank 0 writes; it reports rank 1's finding
    assert (tmp_path / "rep0" / "report.json").exists()
    assert not (tmp_path / "rep1").exists()
    report = json.loads((tmp_path / "rep0" / "report.json").read_text())
    rt111 = [f for f in report["findings"] if f["code"] == "RT111"]
    assert rt111 and rt111[0]["message"].startswith("[rank 1]")
    assert not r0["run"]["check_errors"] and not r1["run"]["check_errors"]


def test_context_detected_before_the_process_group_turns_on_later(tmp_path, monkeypatch):
    """Under torchrun the monitor starts before the script's init_process_group."""
    import torch.distributed as dist

    from recipecheck.runtime.ddp import DistContext

    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    ctx = DistContext.detect()
    assert not ctx.enabled and ctx.rank == 0 and ctx.world_size == 1
    assert not DistContext.detect(distributed=False).enabled
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert ctx.enabled and ctx.rank == 0 and ctx.world_size == 1
    finally:
        dist.destroy_process_group()
    # rank and size stay fixed after the group is gone; collectives fall back to local values
    assert ctx.enabled and ctx.rank == 0
    ctx.world_size = 2  # as if a second rank had been there: no group left to reduce over
    values = torch.tensor([1.0, 2.0])
    assert ctx.mean_if_aligned(values) is values and ctx.gather_findings([]) == []
