"""RT103 update-ratio-off: ||dw||/||w|| stays far from ~1e-3 for many steps."""

from __future__ import annotations

import math

import torch

from ..stats import Every, FirstK, LogSpaced, fmt_sci, median
from .base import Check


class UpdateRatioOff(Check):
    code = "RT103"
    name = "update-ratio-off"
    severity = "warning"
    static_twin = "RC602"
    # the first 16 steps and powers of two too: short runs get curves in the report at no
    # steady-state cost (rt-report, issue 10 item 10)
    schedule = FirstK(16) | LogSpaced() | Every(100)
    low = 1e-5
    high = 1e-1
    min_steps_low = 150  # "many steps"
    min_steps_high = 100
    max_params = 64
    series = True

    def setup(self, mon):
        self._snap = {}
        self._hist = {}  # name -> dict(first, n, all_low, recent[(step, ratio)])

    def on_pre_step(self, mon, opt):
        named = [(n, p) for n, p in mon.params(opt) if p.grad is not None and p.dim() >= 2][: self.max_params]
        if not named:
            return
        with torch.no_grad():
            self._snap[id(opt)] = ([n for n, _ in named], [p for _, p in named],
                                   [p.detach().clone() for _, p in named])

    def on_post_step(self, mon, opt):
        snap = self._snap.pop(id(opt), None)
        if snap is None:
            return
        names, params, before = snap
        with torch.no_grad():
            after = [p.detach() for p in params]
            delta = torch._foreach_sub(after, before)
            dn = torch._foreach_norm(delta)
            wn = torch._foreach_norm(after)
            dev = dn[0].device
            vals = torch.cat([torch.stack([t.to(dev, torch.float32) for t in dn]),
                              torch.stack([t.to(dev, torch.float32) for t in wn])])
        mon.defer(self, tuple(names), vals)

    def on_values(self, mon, step, key, values):
        names = key
        k = len(names)
        for name, d, w in zip(names, values[:k], values[k:]):
            if not (math.isfinite(d) and math.isfinite(w)) or w < 1e-12:
                continue
            r = d / w
            if self.series:
                mon.series.append(f"update_ratio/{name}", step, r)
            h = self._hist.get(name)
            if h is None:
                h = self._hist[name] = {"first": step, "all_low": True, "recent": []}
            h["all_low"] = h["all_low"] and r < self.low
            h["recent"].append((step, r))
            if len(h["recent"]) > 16:
                del h["recent"][0]
        self._judge(mon, step)

    def _judge(self, mon, step):
        lows, highs = [], []
        for name, h in self._hist.items():
            rec = h["recent"]
            if h["all_low"] and len(rec) >= 3 and rec[-1][0] - h["first"] >= self.min_steps_low:
                lows.append((name, median(r for _, r in rec), rec[-1][0] - h["first"]))
            tail = []
            for s, r in reversed(rec):
                if r > self.high:
                    tail.append((s, r))
                else:
                    break
            if len(tail) >= 2 and tail[0][0] - tail[-1][0] >= self.min_steps_high:
                highs.append((name, median(r for _, r in tail), tail[0][0] - tail[-1][0]))
        if lows:
            r = median(x[1] for x in lows)
            span = max(x[2] for x in lows)
            factor = 1e-3 / max(r, 1e-30)
            names = ", ".join(x[0] for x in lows[:3]) + (" ..." if len(lows) > 3 else "")
            lr_note = f"LR is likely ~{factor:.0f}x too low" if r > 0 else "the parameters do not move at all (LR 0 or frozen?)"
            self.emit(mon, f"update/weight about {fmt_sci(r)} for {span} steps in {len(lows)} weight "
                           f"tensor(s) ({names}), healthy is about 1e-3: {lr_note}. "
                           f"Fix: raise the learning rate (an LR range test finds a good one).{self.twin_note()}",
                      where=lows[0][0], key="low", step=step)
        if highs:
            r = median(x[1] for x in highs)
            span = max(x[2] for x in highs)
            names = ", ".join(x[0] for x in highs[:3]) + (" ..." if len(highs) > 3 else "")
            self.emit(mon, f"update/weight about {fmt_sci(r)} for {span} steps in {len(highs)} weight "
                           f"tensor(s) ({names}), healthy is about 1e-3: LR is likely ~{r / 1e-3:.0f}x too high "
                           f"(each step rewrites a large part of the weights). "
                           f"Fix: lower the learning rate or add warmup/clipping.{self.twin_note()}",
                      where=highs[0][0], key="high", step=step)
