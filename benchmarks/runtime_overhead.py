"""Runtime monitor overhead: plain training loop vs. the same loop under the monitor.

Same process, several pairs of identical loops, short interleaved blocks (plain, monitored,
monitored, plain, ...), the median of the per-pair ratios with its spread, in CPU and wall time
(see ``overhead``); a same-loop ablation (monitor active vs suspended); on CPU, default schedule: an MLP, a small CNN, a
DCGAN-shaped loop (two models, two optimizers, three backward calls per step) and a
nanoGPT-shaped loop (F.cross_entropy, 4 micro-batches of gradient accumulation per step).
Then the memory growth of a monitored run over 10k steps (``--steps`` to change).

    python benchmarks/runtime_overhead.py            # full run
    python benchmarks/runtime_overhead.py --quick    # fewer blocks and pairs, 2k steps

Prints the per-step overhead ratio (target <= 5%), the CPU time spent inside the monitor's
hooks per step (a direct measurement that a busy machine disturbs less than the A/B ratio),
and the memory growth.
"""

from __future__ import annotations

import argparse
import gc
import os

# one intra-op thread unless the caller chose: set before torch starts its thread pools (a
# benchmark sharing a few cores with other work is steadier single-threaded)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import torch  # noqa: E402
from torch import nn

from recipecheck.runtime import Monitor


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(256, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 7 * 7, 10))


def data(kind, n_batches=16, bs=64):
    g = torch.Generator().manual_seed(0)
    shape = (bs, 784) if kind == "mlp" else (bs, 1, 28, 28)
    return [(torch.randn(*shape, generator=g), torch.randint(0, 10, (bs,), generator=g)) for _ in range(n_batches)]


class TinyLM(nn.Module):
    def __init__(self, vocab=65, dim=64):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets):
        h = self.wte(idx)
        logits = self.head(self.ln(h + self.mlp(h)))
        return nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


class Loop:
    def __init__(self, kind):
        torch.manual_seed(0)
        self.kind = kind
        g = torch.Generator().manual_seed(0)
        if kind == "gan":
            self.model = nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1), nn.Sigmoid())  # D
            self.gen = nn.Sequential(nn.Linear(16, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 64), nn.Tanh())
            self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-4, betas=(0.5, 0.999))
            self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
            self.crit = nn.BCELoss()
            self.batches = [torch.randn(64, 64, generator=g) for _ in range(16)]
            self.noise = [torch.randn(64, 16, generator=g) for _ in range(16)]
        elif kind == "accum":
            self.model = TinyLM()
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
            self.crit = None
            self.batches = [(torch.randint(0, 65, (8, 32), generator=g), torch.randint(0, 65, (8, 32), generator=g))
                            for _ in range(16)]
        else:
            self.model = mlp() if kind == "mlp" else cnn()
            self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
            self.crit = nn.CrossEntropyLoss()
            self.batches = data(kind)
        self.i = 0
        self.mon = None

    def monitor(self, on: bool):
        if self.mon is not None:
            self.mon.close()
            assert not self.mon.run["check_errors"], self.mon.run["check_errors"]
            self.mon = None
        if on:  # the default schedule
            self.mon = make_monitor(self)
            self.mon.attach()

    def run(self, steps):
        if self.kind == "gan":
            return self.run_gan(steps)
        if self.kind == "accum":
            return self.run_accum(steps)
        model, opt, crit, batches = self.model, self.opt, self.crit, self.batches
        t0 = time.process_time()
        for _ in range(steps):
            x, y = batches[self.i % len(batches)]
            self.i += 1
            opt.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
        return (time.process_time() - t0) / steps


    def run_gan(self, steps):
        netD, netG, optD, optG, crit = self.model, self.gen, self.opt, self.opt_g, self.crit
        ones, zeros = torch.ones(64), torch.zeros(64)
        t0 = time.process_time()
        for _ in range(steps):
            k = self.i % len(self.batches)
            self.i += 1
            netD.zero_grad()
            crit(netD(self.batches[k]).view(-1), ones).backward()
            fake = netG(self.noise[k])
            crit(netD(fake.detach()).view(-1), zeros).backward()
            optD.step()
            netG.zero_grad()
            crit(netD(fake).view(-1), ones).backward()
            optG.step()
        return (time.process_time() - t0) / steps

    def run_accum(self, steps, accum=4):
        model, opt = self.model, self.opt
        t0 = time.process_time()
        for _ in range(steps):
            for _ in range(accum):
                x, y = self.batches[self.i % len(self.batches)]
                self.i += 1
                (model(x, y) / accum).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.process_time() - t0) / steps


def make_monitor(loop):
    """The API monitor of each workload (the GAN gives both models and optimizers; the
    accumulation loop has no loss module, so its micro-batch losses are observed)."""
    if loop.kind == "gan":
        return Monitor([loop.model, loop.gen], [loop.opt, loop.opt_g], criterion=loop.crit, report=None,
                       summary=False)
    return Monitor(loop.model, loop.opt, criterion=loop.crit, report=None, summary=False)


def _quantile(xs, q):
    xs = sorted(xs)
    i = (len(xs) - 1) * q
    lo = int(i)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (i - lo)


def _boot_ci(xs, n=2000, seed=0):
    """95% bootstrap interval of the median (own RNG: the benchmark's models never see it)."""
    import random

    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


class Timed:
    """A loop whose ``run`` returns (CPU s/step, wall s/step)."""

    def __init__(self, loop):
        self.loop = loop

    def run(self, steps):
        w0 = time.perf_counter()
        cpu = self.loop.run(steps)
        return cpu, (time.perf_counter() - w0) / steps


def overhead(kind, rounds, block=None, pairs=3, warmup=300, block_s=0.15):
    """Plain vs monitored per-step time, steadied three ways against a shared, busy machine:

    * ``pairs`` independent pairs of identical loops (one plain, one monitored), so that a speed
      difference between two instances of the same model (memory placement) averages out, and the
      roles inside each pair swap halfway (a fresh monitor on the other instance, warmed up again);
    * many short blocks (about ``block_s`` seconds), each plain block adjacent in time to its
      monitored twin, the order alternating: a pair ratio sees the same machine load;
    * the median of all pair ratios, with its interquartile range and a bootstrap 95% interval,
      for CPU time (process_time) and wall time.
    """
    insts = [(Loop(kind), Loop(kind)) for _ in range(pairs)]
    if block is None:
        probe = Timed(insts[0][0])
        probe.run(10)
        cpu, wall = probe.run(20)
        block = max(5, int(block_s / max(wall, 1e-6)))
    ratios_cpu, ratios_wall, tp, tm = [], [], [], []
    per_phase = max(1, rounds // 2)
    for phase in range(2):
        roles = []
        for a, b in insts:
            plain, monitored = (a, b) if phase == 0 else (b, a)
            plain.monitor(False)
            monitored.monitor(True)
            # warm-up: allocator, first-step costs and the monitor's start-up sampling (dense first
            # steps, the first 256 batch fingerprints) so that the blocks measure the steady state
            plain.run(warmup)
            monitored.run(warmup)
            roles.append((Timed(plain), Timed(monitored)))
        for r in range(per_phase):
            for i, (plain, monitored) in enumerate(roles):
                order = (plain, monitored) if (r + i) % 2 == 0 else (monitored, plain)
                res = {id(t): t.run(block) for t in order}
                (pc, pw), (mc, mw) = res[id(plain)], res[id(monitored)]
                tp.append(pc)
                tm.append(mc)
                ratios_cpu.append(mc / pc)
                ratios_wall.append(mw / pw)
    for a, b in insts:
        a.monitor(False)
        b.monitor(False)
    summary = {}
    for name, rs in (("cpu", ratios_cpu), ("wall", ratios_wall)):
        lo, hi = _boot_ci(rs)
        summary[name] = {"median": statistics.median(rs) - 1.0, "q1": _quantile(rs, 0.25) - 1.0,
                         "q3": _quantile(rs, 0.75) - 1.0, "ci": (lo - 1.0, hi - 1.0), "n": len(rs)}
    return statistics.median(tp), statistics.median(tm), block, summary


def suspended_ablation(kind, rounds, block, warmup=300):
    """One monitored loop, alternating blocks with the monitor active and suspended (its hooks stay
    installed but return at once): no instance difference at all, but the pass-through cost of
    the hooks counts as "plain" (the direct hook time below covers it)."""
    loop = Loop(kind)
    loop.monitor(True)
    loop.run(warmup)
    t = Timed(loop)
    ratios = []
    for r in range(rounds):
        res = {}
        for susp in ((False, True) if r % 2 == 0 else (True, False)):
            loop.mon._suspended = susp
            res[susp] = t.run(block)[0]
        ratios.append(res[False] / res[True])
    loop.mon._suspended = False
    loop.monitor(False)
    return statistics.median(ratios) - 1.0, _quantile(ratios, 0.25) - 1.0, _quantile(ratios, 0.75) - 1.0


def hook_time(kind, steps, warmup=300):
    """CPU time spent inside the monitor's hooks per step, measured directly (robust to a busy
    machine, unlike the A/B ratio; the timers themselves add a little)."""
    import importlib

    # the module; `recipecheck.runtime.monitor` the attribute is the context-manager function
    monitor_mod = importlib.import_module("recipecheck.runtime.monitor")

    loop = Loop(kind)
    mon = make_monitor(loop)
    spent = [0.0]

    def timed(fn):
        def wrapper(*args, **kwargs):
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - t
        return wrapper

    for name in ("_on_pre_step", "_on_post_step", "_on_model_input", "_on_criterion"):
        setattr(mon, name, timed(getattr(mon, name)))
    for chk in mon.checks:  # activation sampling (called from the module call taps)
        if chk.activation_types:
            chk.on_activation = timed(chk.on_activation)
    from recipecheck.runtime.checks import rt104_grads_not_reset as rt104

    act_call = rt104._Observer.__call__  # gradient-reset observers run inside backward()
    rt104._Observer.__call__ = timed(act_call)
    try:
        loop.mon = mon
        mon.attach()
        loop.run(warmup)
        spent[0] = 0.0
        per_step = loop.run(steps)
        mon.close()
    finally:
        rt104._Observer.__call__ = act_call
    return spent[0] / steps, per_step


def memory_growth(steps):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    crit = nn.CrossEntropyLoss()
    x, y = torch.randn(16, 32), torch.randint(0, 4, (16,))
    mon = Monitor(model, opt, criterion=crit, report=None, summary=False)
    mon.attach()
    tracemalloc.start()
    marks = {}
    warm = max(1, steps // 5)
    for s in range(1, steps + 1):
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
        if s in (warm, steps):
            gc.collect()
            marks[s] = (tracemalloc.get_traced_memory()[0],
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                        sum(len(mon.series[n]["step"]) for n in mon.series.names()
                            if isinstance(mon.series[n].get("step"), list)))
    tracemalloc.stop()
    mon.close()
    return warm, marks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=16, help="blocks per pair of loops (half before the role swap)")
    ap.add_argument("--pairs", type=int, default=3, help="independent pairs of plain/monitored loops per workload")
    ap.add_argument("--block", type=int, default=None,
                    help="steps per timed block (default: about 0.15 s of plain steps)")
    ap.add_argument("--steps", type=int, default=10_000, help="steps of the memory run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=300, help="untimed steps before the blocks")
    ap.add_argument("--hook-steps", type=int, default=2000, help="steps of the direct hook-time run")
    ap.add_argument("--models", default="mlp,cnn,gan,accum", help="comma-separated: mlp, cnn, gan, accum")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.pairs, a.steps, a.hook_steps = 8, 2, 2000, 800
    torch.set_num_threads(a.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, CPU, {a.threads} thread(s) (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}), "
          f"{a.pairs} pairs x {a.rounds} blocks per workload, load average before: "
          f"{' '.join(f'{x:.2f}' for x in load) if load else '?'}")
    print("overhead = median over adjacent (plain, monitored) block pairs of monitored/plain - 1; "
          "[IQR], (95% bootstrap interval of the median)")
    worst = 0.0
    for kind in a.models.split(","):
        warm = a.warmup if kind in ("mlp", "gan") else a.warmup // 3
        p, m, block, res = overhead(kind, a.rounds, a.block, pairs=a.pairs, warmup=warm)
        c, w = res["cpu"], res["wall"]
        worst = max(worst, c["median"])
        print(f"{kind:5s}: plain {p * 1e3:.3f} ms/step, monitored {m * 1e3:.3f} ms/step (CPU), {c['n']} pairs of "
              f"{block}-step blocks")
        for name, r in (("CPU ", c), ("wall", w)):
            print(f"       {name} overhead {r['median'] * 100:+.2f}% [{r['q1'] * 100:+.1f}%, {r['q3'] * 100:+.1f}%] "
                  f"({r['ci'][0] * 100:+.2f}%, {r['ci'][1] * 100:+.2f}%)")
        sm, sq1, sq3 = suspended_ablation(kind, a.rounds, block, warmup=warm)
        print(f"       same loop, monitor active vs suspended (CPU): {sm * 100:+.2f}% [{sq1 * 100:+.1f}%, {sq3 * 100:+.1f}%]")
        inside, step_t = hook_time(kind, a.hook_steps if kind in ("mlp", "gan") else a.hook_steps // 4)
        print(f"       time inside the monitor's hooks {inside * 1e6:.1f} us/step = "
              f"{inside / p * 100:.2f}% of the plain step")
    warm, marks = memory_growth(a.steps)
    (m0, r0, n0), (m1, r1, n1) = marks[warm], marks[a.steps]
    print(f"memory: python heap (tracemalloc) {m0 / 1024:.1f} KiB at step {warm} -> {m1 / 1024:.1f} KiB at step "
          f"{a.steps} ({(m1 - m0) / 1024:+.1f} KiB); max RSS {r0 / 1024:.1f} -> {r1 / 1024:.1f} MiB; "
          f"series points {n0} -> {n1}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"worst median CPU overhead {worst * 100:+.2f}% (target <= 5%); load average after: "
          f"{' '.join(f'{x:.2f}' for x in load) if load else '?'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
