"""Worker of the 2-process DDP test (gloo, CPU)."""

from __future__ import annotations

import json
import os
import sys


def worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    # loopback only, and a file store instead of a TCP port that another process could take
    # between choosing it and binding it
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(out_dir, 'store')}",
                            rank=rank, world_size=world)
    try:
        from recipecheck.runtime import monitor

        torch.manual_seed(0)
        model = DDP(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3)))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        crit = nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(100 + rank)  # different data per rank
        x = torch.randn(320, 10, generator=g)
        y = (x[:, :3]).argmax(1)
        local = []
        report = os.path.join(out_dir, f"rep{rank}")
        with monitor(model, opt, criterion=crit, report=report, summary=False, read_every=7) as mon:
            for i in range(0, 320, 16):
                opt.zero_grad()
                loss = crit(model(x[i:i + 16]), y[i:i + 16])
                local.append(loss.item())
                loss.backward()
                opt.step()
            if rank == 1:  # a rank-local bug: evaluation in training mode
                with torch.no_grad():
                    model(x[:8])
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump({"local": local, "series": mon.series["loss"]["value"],
                       "findings": [f.to_json() for f in mon.findings], "run": mon.run}, fh, default=str)
    finally:
        dist.destroy_process_group()
    # torch 2.13 with gloo: a process sometimes aborts in C++ teardown after a clean
    # destroy_process_group ("terminate called without an active exception"), with or without
    # the monitor (reproduced with a plain DDP loop, 3 of 12 runs). Everything the test reads is
    # written and closed by now, so leave without running the static destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
