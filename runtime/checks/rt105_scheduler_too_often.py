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
        self._sched = []  # [scheduler, last_epoch at the start of epoch 0]
        self._steps_in_epoch = 0
        self._lr0 = None
        self._lr_trace = []  # (step, lr) changes during epoch 0
        self._rose = False
        self._epoch0_done = False
        self._epoch0_len = None

    def on_scheduler(self, mon, sch):
        self._sched.append([sch, getattr(sch, "last_epoch", 0)])

    def on_epoch(self, mon, epoch):
        if not self._epoch0_done:
            self._epoch0_done = True
            # called as the first step of epoch 1 begins: the previous steps made up the first pass
            n = self._epoch0_len = max(0, mon.step - 1)
            self._judge_pass(mon, n, final=False)
            self._judge_lr(mon, n)

    def finalize(self, mon):
        if not self._epoch0_done:
            # the run ended inside the first pass (or passes are unknown): judge what was seen
            self._judge_pass(mon, mon.step, final=True)

    def _judge_pass(self, mon, n, final):
        """Scheduler steps vs optimizer steps over the first pass over the training data."""
        if n < 1:
            return
        for sch, le0 in self._sched:
            le = getattr(sch, "last_epoch", None)
            if not isinstance(le, int):
                continue
            k = le - le0
            if not (k >= self.min_steps and k >= 0.5 * n):
                continue
            cls = type(sch).__name__
            horizon_attr = HORIZON_SCHEDULERS.get(cls)
            horizon = getattr(sch, horizon_attr, None) if horizon_attr else None
            if cls in EPOCH_SCHEDULERS and cls not in HORIZON_SCHEDULERS:
                why = "its step sizes/milestones/gamma are meant per epoch"
            elif isinstance(horizon, int) and horizon < k:
                why = f"its horizon {horizon_attr}={horizon} ran out within the first pass (the LR cycles/stops)"
            else:
                self._per_batch = (sch, k, n)  # decided later, if the horizon runs out
                continue
            self._emit(mon, sch, cls, k, n, why, partial=final)

    def _emit(self, mon, sch, cls, k, n, why, partial=False):
        if not partial:
            scope = f"one pass over the training data ({n} optimizer steps, epoch 0)"
        elif mon._epoch_source is None:
            scope = f"the {n} optimizer steps of the run (the end of an epoch was never seen)"
        else:
            scope = f"the first {n} optimizer steps (the run ended inside the first pass)"
        self.emit(mon, f"{cls}.step() ran {k} times in {scope}, but {why}: the LR schedule runs about "
                       f"{k}x faster than intended. Fix: call scheduler.step() once per epoch, outside the "
                       f"batch loop (or size the schedule in batches: epochs * len(loader)).{self.twin_note()}",
                  where=cls, key=("sched", id(sch)))

    def on_post_step(self, mon, opt):
        primary = mon._primary is not None and mon._primary() is opt
        if not primary:
            return
        self._steps_in_epoch = mon._steps_since_epoch
        per_batch = getattr(self, "_per_batch", None)
        if per_batch is not None:
            # a horizon scheduler (CosineAnnealingLR, ...) stepped per batch is wrong when the run
            # outlives its horizon: judged when that happens, with the per-pass rate of epoch 0
            sch, k, n = per_batch
            horizon_attr = HORIZON_SCHEDULERS.get(type(sch).__name__)
            horizon = getattr(sch, horizon_attr, None)
            le = getattr(sch, "last_epoch", None)
            if isinstance(horizon, int) and isinstance(le, int) and le > horizon:
                self._per_batch = None
                self._emit(mon, sch, type(sch).__name__, k, n,
                           f"its horizon {horizon_attr}={horizon} ran out after {horizon} scheduler steps "
                           f"(the run outlives it: the LR cycles/stops)")
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

    def skip_reason(self, mon):
        if not self._sched and self._lr0 is None:
            return "no LR scheduler and no learning rate were seen"
        if mon.step < self.min_steps:
            return "the run was too short"
        return None

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
