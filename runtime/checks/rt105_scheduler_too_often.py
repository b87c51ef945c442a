"""RT105 scheduler-stepped-too-often: an epoch-based scheduler stepped many times per pass.

Two observations, both read in the optimizer's step post-hook (no scheduler hook exists;
``scheduler.step()`` follows ``optimizer.step()``, so the post-hook of the next sampled step sees it):
the scheduler's ``last_epoch`` when the scheduler object is known (given to the API, or found
by ``recipecheck run`` from the optimizer's referrers), and otherwise the LR of the first param
group: an LR that falls tenfold, never rising, within the first half of the first pass over the
training data is the signature of StepLR/ExponentialLR/MultiStepLR stepped per batch.
"""

from __future__ import annotations

from ..stats import Every
from .base import Check

EPOCH_SCHEDULERS = {"StepLR", "MultiStepLR", "ExponentialLR", "ReduceLROnPlateau", "PolynomialLR"}
HORIZON_SCHEDULERS = {"CosineAnnealingLR": "T_max", "PolynomialLR": "total_iters"}


class SchedulerSteppedTooOften(Check):
    code = "RT105"
    name = "scheduler-stepped-too-often"
    severity = "error"
    static_twin = "RC201"
    schedule = Every(4)  # counters are differences between samples, so sampling loses nothing
    min_steps = 10  # scheduler steps within one pass that count as "many"
    max_lr_points = 20000

    def setup(self, mon):
        self._sched = []  # [scheduler, last_epoch seen, increments this epoch]
        self._steps_in_epoch = 0
        self._lr0 = None
        self._lr_trace = []  # (step, lr) changes during epoch 0
        self._rose = False
        self._epoch0_done = False

    def on_scheduler(self, mon, sch):
        self._sched.append([sch, getattr(sch, "last_epoch", 0), 0])

    def on_epoch(self, mon, epoch):
        if not self._epoch0_done:
            self._epoch0_done = True
            self._judge_lr(mon, self._steps_in_epoch)
        for rec in self._sched:
            rec[2] = 0

    def on_post_step(self, mon, opt):
        primary = mon._primary is not None and mon._primary() is opt
        if not primary:
            return
        n = self._steps_in_epoch = mon._steps_since_epoch
        for rec in self._sched:
            sch = rec[0]
            le = getattr(sch, "last_epoch", None)
            if le is None or le == rec[1]:
                continue
            if le > rec[1]:
                rec[2] += le - rec[1]
            rec[1] = le
            cls = type(sch).__name__
            per_batch = rec[2] >= self.min_steps and rec[2] >= 0.5 * n
            if not per_batch:
                continue
            horizon_attr = HORIZON_SCHEDULERS.get(cls)
            horizon = getattr(sch, horizon_attr, None) if horizon_attr else None
            if cls in EPOCH_SCHEDULERS and cls not in HORIZON_SCHEDULERS:
                why = "its step sizes/milestones/gamma are meant per epoch"
            elif horizon is not None and le > horizon:
                why = f"its horizon {horizon_attr}={horizon} ran out after {horizon} batches (the LR cycles/stops)"
            else:
                continue
            self.emit(mon, f"{cls}.step() ran {rec[2]} times within {n} optimizer steps of epoch {mon.epoch} "
                           f"(one pass over the training loader), but {why}: the LR schedule runs about "
                           f"{rec[2]}x faster than intended. Fix: call scheduler.step() once per epoch, outside "
                           f"the batch loop (or size the schedule in batches: epochs * len(loader)).{self.twin_note()}",
                      where=cls, key=("sched", id(sch)))
        if mon.epoch == 0 and not self._epoch0_done:
            lr = opt.param_groups[0].get("lr") if opt.param_groups else None
            if not isinstance(lr, (int, float)):
                return
            if self._lr0 is None:
                self._lr0 = float(lr)
                self._last = float(lr)
            elif lr != self._last:
                if lr > self._last:
                    self._rose = True
                self._last = float(lr)
                if len(self._lr_trace) < self.max_lr_points:
                    self._lr_trace.append((mon.step, float(lr)))

    def _judge_lr(self, mon, pass_len):
        if self._sched or self._rose or not self._lr0 or pass_len < 2 * self.min_steps:
            return
        if len(self._lr_trace) < 2:
            return
        for step, lr in self._lr_trace:
            if lr <= self._lr0 / 10:
                if step <= pass_len / 2:
                    self.emit(mon, f"The learning rate fell from {self._lr0:.3g} to {lr:.3g} by step {step}, "
                                   f"within the first half of the first pass over the training data "
                                   f"({pass_len} steps) and changed {len(self._lr_trace)} times: an epoch-based "
                                   f"scheduler (StepLR/MultiStepLR/ExponentialLR) is likely stepped per batch. "
                                   f"Fix: call scheduler.step() once per epoch, outside the batch loop.{self.twin_note()}",
                              step=step, epoch=0, where="param_groups[0]['lr']", key="lr")
                return
