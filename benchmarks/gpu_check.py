"""GPU check of the runtime monitor: no host sync in the hot path, overhead, identical results.

On a CUDA machine (under 5 minutes on one GPU):

* a small CNN (API monitor with a loss module) and a small GPT (``recipecheck run``-style
  discovery: global hooks, the loss taken from ``backward()``, a functional cross-entropy) train
  under ``torch.cuda.set_sync_debug_mode("error")``: any operation that synchronizes the host
  with the GPU raises. The monitor's batched read (``Monitor.flush``, once every ``read_every``
  steps) is the one sync it is designed to make; it runs with the debug mode off and is counted.
  The plain loop runs under the same mode first, so an error is the monitor's, not the loop's.
  A check that synchronized would be disabled by the monitor and show up in
  ``run["check_errors"]``; both count as failures.
* overhead: interleaved blocks of plain and monitored steps (``torch.cuda.synchronize()`` at the
  block ends), median of the paired ratios;
* bitwise identity: with deterministic algorithms, the parameters and the losses after N steps
  are ``torch.equal`` with and without the monitor.

Without CUDA it says so and exits 0. ``--cpu-smoke`` runs the same code on the CPU with tiny
sizes (no sync debug mode there), so that the script itself is exercised by the tests.

    python benchmarks/gpu_check.py                 # on a CUDA machine
    python benchmarks/gpu_check.py --cpu-smoke     # anywhere: the code path, not a measurement

Exit code 0 when every check passed (or there is no GPU), 1 otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import traceback

# deterministic cuBLAS needs this before CUDA is initialized
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from recipecheck.runtime import Monitor  # noqa: E402


# --------------------------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------------------------


def small_cnn(classes: int = 10) -> nn.Module:
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                         *block(64, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, classes))


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(0.1))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class SmallGPT(nn.Module):
    def __init__(self, vocab: int = 256, block: int = 64, d: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


class Workload:
    """A model, its optimizer and fixed batches on the device; ``step(i)`` never syncs."""

    def __init__(self, kind: str, device: torch.device, tiny: bool):
        self.kind, self.device = kind, device
        g = torch.Generator(device=device).manual_seed(1234)
        torch.manual_seed(0)
        if kind == "cnn":
            self.model = small_cnn().to(device)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
            self.crit = nn.CrossEntropyLoss()
            bs, side = (8, 16) if tiny else (128, 32)
            self.batches = [(torch.randn(bs, 3, side, side, device=device, generator=g),
                             torch.randint(0, 10, (bs,), device=device, generator=g)) for _ in range(8)]
        else:
            vocab, block = 256, (16 if tiny else 64)
            self.model = SmallGPT(vocab=vocab, block=block, d=32 if tiny else 128).to(device)
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4, weight_decay=0.1)
            self.crit = None
            bs = 4 if tiny else 32
            data = torch.randint(0, vocab, (8, bs, block + 1), device=device, generator=g)
            self.batches = [(d[:, :-1], d[:, 1:]) for d in data]
        self.losses: list[torch.Tensor] = []
        self.api_monitor: Monitor | None = None  # given the loss explicitly (no criterion module)

    def step(self, i: int) -> None:
        x, y = self.batches[i % len(self.batches)]
        self.opt.zero_grad(set_to_none=True)
        out = self.model(x)
        if self.crit is not None:
            loss = self.crit(out, y)
        else:
            loss = F.cross_entropy(out.view(-1, out.size(-1)), y.reshape(-1))
        if self.api_monitor is not None:
            self.api_monitor.observe_loss(loss)
        loss.backward()
        self.opt.step()
        self.losses.append(loss.detach())

    def monitor(self, discovery: bool = True) -> Monitor:
        if self.kind == "cnn":  # the API: the objects are given
            return Monitor(self.model, self.opt, criterion=self.crit, report=None, summary=False)
        if discovery:  # recipecheck run's discovery: global hooks, the loss from backward()
            return Monitor(report=None, summary=False, global_hooks=True, patch_backward=True)
        # process-wide hooks would also see the plain twin of the overhead check: the API instead
        self.api_monitor = Monitor(self.model, self.opt, report=None, summary=False)
        return self.api_monitor


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


class _SyncMode:
    """``torch.cuda.set_sync_debug_mode("error")`` for the block (a no-op on the CPU)."""

    def __init__(self, device: torch.device, mode="error"):
        self.on = device.type == "cuda"
        self.mode = mode

    def __enter__(self):
        if self.on:
            self.prev = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode(self.mode)
        return self

    def __exit__(self, *exc):
        if self.on:
            torch.cuda.set_sync_debug_mode(self.prev)


def _allow_sync_in_flush(mon: Monitor, device: torch.device, counter: list) -> None:
    """The batched read is the monitor's one designed sync: let it through, count it."""
    orig = mon.flush

    def flush(*args, **kwargs):
        counter[0] += 1
        with _SyncMode(device, 0):
            return orig(*args, **kwargs)

    mon.flush = flush


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def no_sync_check(kind: str, device: torch.device, steps: int, tiny: bool) -> tuple[bool, str]:
    w = Workload(kind, device, tiny)
    try:
        with _SyncMode(device):
            for i in range(steps):
                w.step(i)
        _sync(device)
    except Exception as exc:  # the workload itself syncs: the check would prove nothing
        return False, f"the plain loop synchronizes ({type(exc).__name__}: {exc}); fix the benchmark"
    w = Workload(kind, device, tiny)
    mon = w.monitor()
    reads = [0]
    _allow_sync_in_flush(mon, device, reads)
    mon.attach()
    try:
        with _SyncMode(device):
            for i in range(steps):
                w.step(i)
    except Exception as exc:
        mon.close(False)
        tb = traceback.format_exc(limit=6)
        return False, f"a host sync in the monitor's hot path: {type(exc).__name__}: {exc}\n{tb}"
    mon.close(True)
    errors = mon.run.get("check_errors") or []
    if errors:
        return False, "checks failed under sync debug mode: " + "; ".join(f"{e['check']}: {e['error']}" for e in errors)
    if mon.step != steps:
        return False, f"the monitor counted {mon.step} steps instead of {steps}"
    return True, (f"{steps} steps, no host sync outside the {reads[0]} batched reads "
                  f"(read_every={mon.read_every}); {len(mon.series.names())} series")


def identical_check(kind: str, device: torch.device, steps: int, tiny: bool) -> tuple[bool, str]:
    results = []
    for monitored in (False, True):
        w = Workload(kind, device, tiny)
        mon = w.monitor() if monitored else None
        if mon is not None:
            mon.attach()
        try:
            for i in range(steps):
                w.step(i)
        finally:
            if mon is not None:
                mon.close(True)
        _sync(device)
        results.append(({k: v.detach().clone() for k, v in w.model.state_dict().items()}, torch.stack(w.losses)))
    (sa, la), (sb, lb) = results
    diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
    if diff or not torch.equal(la, lb):
        return False, f"results differ with the monitor: {len(diff)} tensors ({', '.join(diff[:4])}), losses equal: {torch.equal(la, lb)}"
    return True, f"{len(sa)} state tensors and {steps} losses bitwise identical after {steps} steps"


def overhead_check(kind: str, device: torch.device, repeats: int, block: int, tiny: bool) -> tuple[bool, str]:
    plain, monitored = Workload(kind, device, tiny), Workload(kind, device, tiny)
    mon = monitored.monitor(discovery=False)
    mon.attach()
    try:
        for w in (plain, monitored):  # warm-up: kernels, allocator, the monitor's first steps
            for i in range(2 * block):
                w.step(i)
        _sync(device)
        ratios, tp, tm = [], [], []
        for r in range(repeats):
            times = {}
            for name, w in (("plain", plain), ("mon", monitored)) if r % 2 == 0 else (("mon", monitored), ("plain", plain)):
                _sync(device)
                t0 = time.perf_counter()
                for i in range(block):
                    w.step(i)
                _sync(device)
                times[name] = time.perf_counter() - t0
                w.losses.clear()
            ratios.append(times["mon"] / times["plain"])
            tp.append(times["plain"] / block)
            tm.append(times["mon"] / block)
    finally:
        mon.close(True)
    ratio = statistics.median(ratios)
    return math.isfinite(ratio), (f"plain {statistics.median(tp) * 1e3:.3f} ms/step, monitored "
                                  f"{statistics.median(tm) * 1e3:.3f} ms/step, overhead {100 * (ratio - 1):+.2f}% "
                                  f"(median of {repeats} interleaved blocks of {block} steps)")


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="run the code path on the CPU with tiny sizes")
    ap.add_argument("--steps", type=int, default=300, help="steps of the sync and identity checks")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--block", type=int, default=100, help="steps per timed block")
    ap.add_argument("--models", default="cnn,gpt")
    a = ap.parse_args(argv)
    if a.cpu_smoke:
        device, tiny = torch.device("cpu"), True
        a.steps, a.repeats, a.block = min(a.steps, 24), min(a.repeats, 2), min(a.block, 6)
        torch.set_num_threads(1)
        print("gpu_check: CPU smoke run (tiny sizes, no sync debug mode): exercises the code, measures nothing")
    elif not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing to check (use --cpu-smoke to "
              "exercise the script on the CPU).")
        return 0
    else:
        device, tiny = torch.device("cuda"), False
        print(f"gpu_check: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    t_start = time.perf_counter()
    ok = True
    for kind in a.models.split(","):
        for name, fn in (("no host sync", lambda: no_sync_check(kind, device, a.steps, tiny)),
                         ("bitwise identical", lambda: identical_check(kind, device, min(a.steps, 100), tiny)),
                         ("overhead", lambda: overhead_check(kind, device, a.repeats, a.block, tiny))):
            t0 = time.perf_counter()
            try:
                passed, detail = fn()
            except Exception as exc:
                passed, detail = False, f"crashed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
            ok = ok and passed
            print(f"{kind:4s} {name:18s} {'PASS' if passed else 'FAIL'} ({time.perf_counter() - t0:.1f} s): {detail}")
    print(f"gpu_check: {'all checks passed' if ok else 'FAILED'} in {time.perf_counter() - t_start:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
