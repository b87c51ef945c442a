"""RT109 symmetric-units: identical rows of a weight matrix at the start (no symmetry breaking).

Checked on the device before the first update; a matrix whose rows are identical at the start
is reported when they are still (nearly) identical after ``confirm_after`` updates, so a
zero-initialized output layer (whose rows separate after one step) is not reported.
"""

from __future__ import annotations

import torch

from ..stats import Schedule
from .base import Check


class SymmetricUnits(Check):
    code = "RT109"
    name = "symmetric-units"
    severity = "error"
    static_twin = "RC301"
    confirm_after = 10
    rel_tol = 1e-4

    def setup(self, mon):
        self.schedule = _Steps({1, self.confirm_after + 1})
        self._start = {}
        self._confirm = {}
        self._last_matrix = None

    def on_pre_step(self, mon, opt):
        named = [(n, p) for n, p in mon.params(opt) if p.dim() >= 2 and p.shape[0] >= 2]
        if not named:
            return
        with torch.no_grad():
            vals = []
            for _, p in named:
                w = p.detach().reshape(p.shape[0], -1)
                spread = (w - w[:1]).abs().amax()
                scale = w.abs().amax()
                vals.append(torch.stack([spread.float(), scale.float()]))
            mon.defer(self, tuple(n for n, _ in named), torch.cat(vals))
        if mon.step <= 1:
            self._last_matrix = named[-1][0]

    def on_values(self, mon, step, names, values):
        target = self._start if step <= 1 else self._confirm
        for i, name in enumerate(names):
            spread, scale = values[2 * i], values[2 * i + 1]
            target[name] = (spread, scale)

    def on_read(self, mon, losses):
        self._judge(mon, final=False)

    def finalize(self, mon):
        self._judge(mon, final=True)

    def _judge(self, mon, final):
        for name, (spread, scale) in self._start.items():
            if spread != 0:
                continue
            shape_note = "all zero" if scale == 0 else f"all equal to the same vector (max |w| {scale:.3g})"
            if name in self._confirm:
                s2, sc2 = self._confirm[name]
                if s2 > self.rel_tol * max(sc2, 1e-12):
                    if name != self._last_matrix:
                        self.emit(mon, f"The rows of {name} were identical at the start ({shape_note}): its units "
                                       f"started as copies of each other and separated only through the next "
                                       f"layer's random weights, wasting capacity and the first updates. Fix: "
                                       f"initialize the weights randomly (nn.init.kaiming_uniform_ / xavier_uniform_, "
                                       f"or the layer's default reset_parameters()), never to a constant."
                                       f"{self.twin_note()}", step=1, epoch=0, where=name)
                    continue
                self.emit(mon, f"The rows of {name} were identical at the start ({shape_note}) and are still "
                               f"identical after {self.confirm_after} updates: every unit of this layer computes "
                               f"the same function and gets the same gradient, so the layer acts like a single "
                               f"unit. Fix: initialize the weights randomly (nn.init.kaiming_uniform_ / "
                               f"xavier_uniform_, or the layer's default reset_parameters()), never to a "
                               f"constant.{self.twin_note()}", step=1, epoch=0, where=name)
            elif final:
                self.emit(mon, f"The rows of {name} are identical at the start ({shape_note}): every unit of "
                               f"this layer computes the same function (no symmetry breaking). Fix: initialize "
                               f"the weights randomly, never to a constant.{self.twin_note()}",
                          step=1, epoch=0, where=name)


class _Steps(Schedule):
    def __init__(self, steps):
        self.steps = frozenset(steps)

    def __call__(self, step):
        return step in self.steps

    def steps_in(self, start, end):
        return sorted(s for s in self.steps if start <= s < end)

    def __repr__(self):
        return f"Steps({sorted(self.steps)})"
