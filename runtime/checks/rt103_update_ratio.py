"""RT103 update-ratio-off: ||dw||/||w|| stays far from ~1e-3 for many steps, or is far out of band in the first steps.

``||w||`` is the weight norm before the update. Early (steps 1-4): an update larger than the
weights themselves (median weight matrix) at two steps, or 10x larger at one, is reported at once
(a learning rate that destroys the network); weights that do not move at all are reported too.
Later: a ratio below 1e-5 for 150 steps or above 1e-1 for 100 steps.
"""

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
    early_steps = 4  # "far out of band" is judged on these first steps already...
    early_high = 1.0  # ...an update larger than the weights themselves (median tensor) at 2 of them
    early_low = 1e-7  # ...or weights that do not move at all (every tensor, every early step)
    early_blowup = 10.0  # one early update 10x larger than the weights is enough
    min_steps_low = 150  # "many steps"
    min_steps_high = 100
    max_params = 64
    series = True

    def setup(self, mon):
        self._snap = {}
        self._hist = {}  # name -> dict(first, n, all_low, recent[(step, ratio)])
        self._early = {}  # step -> [ratios] of the first steps
        self._seen = False

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
            wn = torch._foreach_norm(before)  # ||dw|| / ||w|| before the update (a huge step saturates at 1 otherwise)
            dev = dn[0].device
            vals = torch.cat([torch.stack([t.to(dev, torch.float32) for t in dn]),
                              torch.stack([t.to(dev, torch.float32) for t in wn])])
        mon.defer(self, tuple(names), vals)

    def on_values(self, mon, step, key, values):
        names = key
        k = len(names)
        self._seen = True
        for name, d, w in zip(names, values[:k], values[k:]):
            if not (math.isfinite(d) and math.isfinite(w)) or w < 1e-12:
                continue
            r = d / w
            if step <= self.early_steps:
                self._early.setdefault(step, []).append((name, r))
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

    def _judge_early(self, mon, step):
        if len(self._early) < self.early_steps or getattr(self, "_early_done", False):
            return
        self._early_done = True
        steps = sorted(self._early)
        med = {s: median(r for _, r in self._early[s]) for s in steps}
        high = [s for s in steps if med[s] > self.early_high]
        if len(high) >= 2 or (high and med[high[0]] > self.early_blowup):
            s0 = high[0]
            worst = max(self._early[s0], key=lambda x: x[1])
            self.emit(mon, f"update/weight is {fmt_sci(med[s0])} (median over {len(self._early[s0])} weight tensors; "
                           f"{worst[0]} {fmt_sci(worst[1])}) at step {s0} (above 1 at step(s) "
                           f"{', '.join(map(str, high))}): the update is larger than the weights themselves, "
                           f"healthy is about 1e-3, so the learning rate is likely ~{fmt_sci(med[s0] / 1e-3)}x too high "
                           f"and the network is being destroyed in its first steps. Fix: lower the learning rate "
                           f"(an LR range test finds a good one) or add warmup.{self.twin_note()}",
                      where=worst[0], key="high", step=s0)
        elif all(r < self.early_low for s in steps[1:] for _, r in self._early[s]):
            r = median(r for s in steps[1:] for _, r in self._early[s])
            self.emit(mon, f"update/weight is {fmt_sci(r) if r > 0 else 0} in every sampled weight tensor at steps "
                           f"{', '.join(map(str, steps[1:]))}: the weights do not move (healthy is about 1e-3; "
                           f"learning rate 0 or far too low, or the optimizer holds other tensors than the model "
                           f"uses). Fix: check the learning rate and that the optimizer was built from "
                           f"model.parameters().{self.twin_note()}", where=self._early[steps[-1]][0][0],
                      key="low", step=steps[-1])

    def skip_reason(self, mon):
        if not self._seen:
            return "no weight matrix with a gradient was updated at a sampled step"
        return None

    def _judge(self, mon, step):
        self._judge_early(mon, step)
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
