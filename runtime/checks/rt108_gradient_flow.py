"""RT108 vanishing-or-exploding-gradients: gradients across depth or over time.

At sampled steps the per-parameter gradient norms (shared with other checks through
``mon.grad_norms``) and the weight norms of the weight matrices are read. Across depth, the
relative gradient ``||g||/||w||`` of the first weight matrix (in parameter order, the input side)
is compared with the last one's; over time, the total gradient norm is compared with its value
at the start. Gradients that are exactly zero in most weight matrices at two sampled steps in a
row (after step 1) mean a dead network (e.g. every ReLU killed by a too-large update).
"""

from __future__ import annotations

import math

import torch

from ..stats import Every, FirstK, LogSpaced, median
from .base import Check


class GradientFlow(Check):
    code = "RT108"
    name = "vanishing-or-exploding-gradients"
    severity = "warning"
    static_twin = "RC510"
    # the first 16 steps and powers of two too: short runs get curves in the report at no
    # steady-state cost (rt-report, issue 10 item 10)
    schedule = FirstK(16) | LogSpaced() | Every(100)
    depth_ratio = 1e3  # first vs last layer relative gradient
    growth = 1e3  # total gradient norm vs its start
    min_layers = 3
    min_samples = 3

    zero_samples = 2  # consecutive sampled steps (after step 1) with exactly zero gradients

    def setup(self, mon):
        self._ratios = []
        self._totals = []
        self._zero_streak = 0

    def on_pre_step(self, mon, opt):
        names, norms = mon.grad_norms(opt)
        if norms is None:
            return
        weights = {n: p for n, p in mon.params(opt) if p.dim() >= 2}
        idx = [i for i, n in enumerate(names) if n in weights]
        with torch.no_grad():
            if idx:
                wn = torch._foreach_norm([weights[names[i]] for i in idx])
                wn = torch.stack([t.to(norms.device, torch.float32) for t in wn])
            else:
                wn = norms.new_zeros(0)
            mon.defer(self, (tuple(names), tuple(idx)), torch.cat([norms, wn]))

    def on_values(self, mon, step, key, values):
        names, idx = key
        k = len(names)
        g, w = values[:k], values[k:]
        if not all(math.isfinite(v) for v in g):
            return  # RT106's business
        total = math.sqrt(sum(v * v for v in g))
        self._totals.append((step, total))
        self._judge_zero(mon, step, names, idx, g)
        for i, wi in zip(idx, w):
            layer = names[i][: -len(".weight")] if names[i].endswith(".weight") else names[i]
            mon.series.append(f"grad_norm/{layer}", step, g[i])
        if len(idx) >= self.min_layers:
            first, last = idx[0], idx[-1]
            rf = g[first] / max(w[0], 1e-12)
            rl = g[last] / max(w[-1], 1e-12)
            if rf > 0 and rl > 0:
                self._ratios.append((step, rf / rl, names[first], names[last], rf, rl))
        self._judge(mon, step)

    def _judge_zero(self, mon, step, names, idx, g):
        """Gradients exactly zero in most weight matrices: a dead network (not merely a small LR).
        Step 1 is skipped: a zero-initialized output layer zeroes the gradients before it once."""
        if step <= 1 or not idx:
            return
        zero = [names[i] for i in idx if g[i] == 0.0]
        if len(zero) * 2 >= len(idx) and len(zero) >= 1:
            self._zero_streak += 1
        else:
            self._zero_streak = 0
            return
        if self._zero_streak >= self.zero_samples:
            some = ", ".join(zero[:3]) + (" ..." if len(zero) > 3 else "")
            self.emit(mon, f"The gradients of {len(zero)} of {len(idx)} weight matrices ({some}) are exactly zero at "
                           f"{self.zero_samples} sampled steps in a row up to step {step}: no signal reaches them, "
                           f"so they never learn again (dead ReLUs after a too-large update, saturated units, or a "
                           f"detach()/no_grad cutting the graph). Fix: lower the learning rate (and restart from "
                           f"a fresh init), check the graph for detach/no_grad, use LeakyReLU/GELU.{self.twin_note()}",
                      step=step, where=zero[0], key="zero")

    def _judge(self, mon, step):
        if len(self._ratios) >= self.min_samples:
            recent = self._ratios[-self.min_samples:]
            r = median(x[1] for x in recent)
            _, _, nf, nl, rf, rl = recent[-1]
            if r < 1 / self.depth_ratio:
                self.emit(mon, f"Vanishing gradients: the relative gradient ||g||/||w|| of the first layer "
                               f"({nf}, {rf:.2g}) is {1 / r:.2g}x smaller than the last layer's ({nl}, {rl:.2g}) "
                               f"over {self.min_samples} sampled steps up to step {step}: the early layers barely "
                               f"learn. Fix: use ReLU-family activations with Kaiming init, add normalization "
                               f"or residual connections.{self.twin_note()}", step=step, where=nf, key="depth")
            elif r > self.depth_ratio:
                self.emit(mon, f"Exploding gradients across depth: the relative gradient ||g||/||w|| of the "
                               f"first layer ({nf}, {rf:.2g}) is {r:.2g}x larger than the last layer's ({nl}, "
                               f"{rl:.2g}) up to step {step}. Fix: fix the init scale, add normalization or "
                               f"residual connections, clip gradients.{self.twin_note()}", step=step, where=nf,
                          key="depth")
        if len(self._totals) >= 2 * self.min_samples:
            start = median(t for _, t in self._totals[: self.min_samples])
            recent = self._totals[-self.min_samples:]
            if start > 0 and all(t > self.growth * start for _, t in recent) and \
                    all(recent[i][1] <= recent[i + 1][1] for i in range(len(recent) - 1)):
                self.emit(mon, f"Exploding gradients: the total gradient norm grew from {start:.3g} at the start "
                               f"to {recent[-1][1]:.3g} at step {step} and keeps growing. Fix: lower the learning "
                               f"rate, clip gradients (clip_grad_norm_), check for a diverging loss.{self.twin_note()}",
                          step=step, where="total", key="growth")
