"""RT106 non-finite-loss: the loss or a gradient is NaN or Inf."""

from __future__ import annotations

import math

from ..stats import Every, FirstK
from .base import Check


class NonFiniteLoss(Check):
    code = "RT106"
    name = "non-finite-loss"
    severity = "error"
    static_twin = None
    schedule = FirstK(3) | Every(100)

    def on_read(self, mon, losses):
        reads = mon.loss_reads or {"loss": losses}
        for name, vals in reads.items():
            self._losses(mon, name, vals)

    def _losses(self, mon, name, losses):
        label = "loss" if name == "loss" else f"loss of {name[len('loss/'):]}"
        for step, v in losses:
            if not math.isfinite(v):
                self.emit(mon, f"The {label} is {v} at step {step} (the first non-finite loss seen), so every "
                               f"update from then on is garbage. Fix: lower the learning rate or add warmup, clip "
                               f"gradients, and look for log(0), division by ~0 or sqrt of negatives in the loss "
                               f"and for bad values in the inputs.", step=step, where=name, key=name)
                return

    def on_pre_step(self, mon, opt):
        names, norms = mon.grad_norms(opt)
        if norms is not None:
            mon.defer(self, tuple(names), norms)

    def on_values(self, mon, step, names, values):
        for name, v in zip(names, values):
            if not math.isfinite(v):
                self.emit(mon, f"The gradient of {name} is {'NaN' if v != v else 'Inf'} at step {step} (the first "
                               f"parameter in model order with a non-finite gradient at the first sampled step where "
                               f"one appeared). Fix: lower the learning rate, clip gradients, guard log/div/sqrt "
                               f"against 0, and use a GradScaler with fp16.", step=step, where=name, key="grad")
                return
