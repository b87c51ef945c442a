"""RT112 loss-not-decreasing: no drop after a warm-up window, or divergence."""

from __future__ import annotations

import math
from collections import deque

from ..stats import Never, median
from .base import Check


class LossNotDecreasing(Check):
    code = "RT112"
    name = "loss-not-decreasing"
    severity = "warning"
    static_twin = None
    schedule = Never()
    warmup = 100  # steps before "not decreasing" may fire
    early_window = 20
    recent_window = 50
    min_drop = 0.03  # relative drop expected after the warm-up
    diverge_factor = 2.0

    def setup(self, mon):
        self._early = []
        self._recent = deque(maxlen=self.recent_window)
        self._best = math.inf
        self._best_step = None
        self._since_best = 10

    def on_read(self, mon, losses):
        for step, v in losses:
            if not math.isfinite(v):
                continue  # RT106
            if len(self._early) < self.early_window:
                self._early.append(v)
            self._recent.append((step, v))
            self._since_best += 1
            if len(self._recent) >= 20 and self._since_best >= 10:
                self._since_best = 0  # a rolling 20-step median every 10 losses is enough
                m = median(x for _, x in list(self._recent)[-20:])
                if m < self._best:
                    self._best, self._best_step = m, step
        if len(self._early) < self.early_window or len(self._recent) < self.recent_window:
            return
        early = median(self._early)
        recent = median(v for _, v in self._recent)
        step = self._recent[-1][0]
        last20 = median(v for _, v in list(self._recent)[-20:])
        if step >= self.warmup and early > 1e-3 and recent >= (1 - self.min_drop) * early and \
                recent <= self.diverge_factor * early:
            self.emit(mon, f"The loss has not decreased after {step} steps: median {recent:.4g} over the last "
                           f"{len(self._recent)} steps vs. {early:.4g} over the first {self.early_window}. "
                           f"Fix: check that the optimizer updates the model's parameters, try a larger learning "
                           f"rate (run an LR range test), and check the data/label pipeline.",
                      step=step, where="loss", key="flat")
        elif last20 > self.diverge_factor * self._best and last20 > early * 1.2 and self._best < math.inf:
            self.emit(mon, f"The loss is diverging: median {last20:.4g} over the last 20 steps up to step {step} "
                           f"is {last20 / max(self._best, 1e-30):.1f}x its best ({self._best:.4g} around step "
                           f"{self._best_step}). Fix: lower the learning rate, add warmup or gradient clipping.",
                      step=step, where="loss", key="diverge")
