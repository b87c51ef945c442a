"""RT105 scheduler-stepped-too-often: an epoch-based scheduler stepped many times per pass.

Two observations, both read in the optimizer's step post-hook (no scheduler hook exists;
``scheduler.step()`` follows ``optimizer.step()``, so the post-hook of the next sampled step sees it):
the scheduler's ``last_epoch`` when the scheduler object is known (given to the API, or found
by ``recipecheck run`` from the optimizer's referrers), and otherwise the LR of the first param
group: an LR that falls tenfold, never rising, within the first half of the first pass over the
training data is the signature of StepLR/ExponentialLR/MultiStepLR stepped per batch.

When is "stepped per batch" wrong? Per-batch schedules are legitimate when they are sized in
batches (OneCycleLR, a cosine with ``T_max = epochs * len(loader)``, a LambdaLR warm-up, a
MultiStepLR with milestones in iterations). The scheduler's own length tells them apart, once the
rate (scheduler steps per pass, from the first pass over the training loader) is known:

* conclusive at the end of epoch 0: the schedule's first decay (StepLR ``step_size``, MultiStepLR's
  first milestone), a tenfold ExponentialLR decay, or the whole horizon (CosineAnnealingLR ``T_max``,
  PolynomialLR ``total_iters``) fell inside the first pass while training goes on into epoch 1.
  A schedule sized in batches for a run longer than one epoch never does that;
* not conclusive then: a horizon longer than one pass. ``CosineAnnealingLR(T_max=200)`` stepped per
  batch over 50 batches per pass is, through epoch 3, exactly a correct 4-epoch per-batch cosine
  (``T_max = 4 * len(loader)``); the monitor does not know how many epochs the script plans, so it
  judges when the run outlives the horizon (by more than one step per epoch, the slack of a
  ``len(dataset) // batch_size`` vs. ``len(loader)`` mismatch).

The "about Nx faster" factor is the number of scheduler steps per pass over the training data:
counted over epoch 0 when it ended, and otherwise estimated from the training loader's length.
"""

from __future__ import annotations

import math

from ..stats import Every
from .base import Check

# schedulers whose step sizes / milestones / gamma / patience count epochs in their usual use
DECAY_SCHEDULERS = {"StepLR", "MultiStepLR", "ExponentialLR", "ReduceLROnPlateau"}
# schedulers with an end: per batch they are correct when the horizon covers the run
HORIZON_SCHEDULERS = {"CosineAnnealingLR": "T_max", "PolynomialLR": "total_iters"}


def first_decay(sch):
    """(scheduler steps until the first LR decay, why that is wrong per batch) of a decay scheduler,
    or None. ExponentialLR decays every step: its "first decay" is the step where the LR is down tenfold."""
    cls = type(sch).__name__
    try:
        if cls == "StepLR":
            n = int(sch.step_size)
            return n, f"its step_size={n} counts epochs, yet the LR was cut after {n} scheduler steps"
        if cls == "MultiStepLR":
            ms = sorted(int(m) for m in sch.milestones)
            if ms:
                return ms[0], f"its milestones {ms} count epochs, yet the LR was cut after {ms[0]} scheduler steps"
        if cls == "ExponentialLR":
            g = float(sch.gamma)
            if 0 < g < 1:
                n = math.ceil(math.log(0.1) / math.log(g))
                return n, f"its gamma={g:g} is a per-epoch decay, yet the LR fell tenfold after {n} scheduler steps"
        if cls == "ReduceLROnPlateau":
            n = int(sch.patience) + 1
            return n, (f"its patience={sch.patience} counts epochs, yet it may cut the LR after {n} scheduler "
                       f"steps of batch-to-batch noise")
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    return None


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
        self._pending = []  # (scheduler, steps per pass, pass length): judged when the horizon runs out
        self._steps_in_epoch = 0
        self._lr0 = None
        self._lr_trace = []  # (step, lr) changes during epoch 0
        self._rose = False
        self._epoch0_done = False
        self._epoch0_len = None
        self._loader_len = None

    def on_scheduler(self, mon, sch):
        self._sched.append([sch, getattr(sch, "last_epoch", 0)])

    def on_train_loader(self, mon, loader):
        try:
            self._loader_len = int(len(loader))
        except Exception:  # an IterableDataset has no length
            self._loader_len = None

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

    @staticmethod
    def _slack(horizon, per_pass):
        """Steps past the horizon that a correctly sized per-batch schedule may still take: one per
        epoch (``T_max = epochs * (len(dataset) // bs)`` with a loader of ``ceil`` batches), at least 2."""
        return max(2, math.ceil(horizon / max(1, per_pass)))

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
                continue  # about once per epoch, or every few batches: not this bug
            cls = type(sch).__name__
            horizon_attr = HORIZON_SCHEDULERS.get(cls)
            horizon = getattr(sch, horizon_attr, None) if horizon_attr else None
            decay = first_decay(sch) if cls in DECAY_SCHEDULERS else None
            if isinstance(horizon, (int, float)) and horizon > 0:
                if le > horizon + self._slack(horizon, k):
                    why = (f"its horizon {horizon_attr}={horizon} ran out within the "
                           f"{'first pass' if not final else 'steps seen'} and training went on "
                           f"(the LR cycles/stops)")
                    self._emit(mon, sch, cls, k, n, why, partial=final)
                else:
                    self._pending.append((sch, k, n, horizon_attr, horizon))
            elif decay is not None:
                at, what = decay
                if le0 + at <= le:
                    why = f"{what}, inside the {'first pass' if not final else 'steps seen'}"
                    self._emit(mon, sch, cls, k, n, why, partial=final)
                # a first decay beyond the first pass fits a schedule sized in iterations: no verdict
            # LambdaLR, OneCycleLR, LinearLR warm-ups, ...: sized in batches by design

    def _factor(self, mon, k, n, partial):
        """(scheduler steps per pass over the training data, how it was obtained) or (None, why)."""
        if not partial:
            return k, None
        if self._loader_len:
            micro = 1.0
            if mon._n_backward and mon.step and mon._manual_opt is None:
                micro = max(1.0, mon._n_backward / mon.step)  # gradient accumulation: batches per step
            per_pass = max(1, round(k / n * self._loader_len / micro))
            return per_pass, f"the training loader has {self._loader_len} batches per pass"
        return None, None

    def _emit(self, mon, sch, cls, k, n, why, partial=False):
        factor, basis = self._factor(mon, k, n, partial)
        if not partial:
            scope = f"one pass over the training data ({n} optimizer steps, epoch 0)"
        elif mon._epoch_source is None:
            scope = f"the {n} optimizer steps of the run (the end of an epoch was never seen)"
        else:
            scope = f"the first {n} optimizer steps (the run ended inside the first pass)"
        if factor is not None:
            speed = f"The LR schedule runs about {factor}x faster than intended"
            if basis:
                speed += f" ({basis})"
        else:
            speed = (f"Stepped about {k / n:.2g} times per optimizer step, the LR schedule runs about "
                     f"len(train_loader) times faster than intended")
        self.emit(mon, f"{cls}.step() ran {k} times in {scope}: {why}. {speed}. Fix: call "
                       f"scheduler.step() once per epoch, outside the batch loop (or size the schedule in "
                       f"batches: epochs * len(loader)).{self.twin_note()}",
                  where=cls, key=("sched", id(sch)))

    def on_post_step(self, mon, opt):
        primary = mon._primary is not None and mon._primary() is opt
        if not primary:
            return
        self._steps_in_epoch = mon._steps_since_epoch
        if self._pending:
            # a horizon scheduler (CosineAnnealingLR, ...) stepped per batch is wrong when the run
            # outlives its horizon: judged when that happens, with the per-pass rate of epoch 0
            for item in list(self._pending):
                sch, k, n, horizon_attr, horizon = item
                le = getattr(sch, "last_epoch", None)
                if isinstance(le, int) and le > horizon + self._slack(horizon, k):
                    self._pending.remove(item)
                    self._emit(mon, sch, type(sch).__name__, k, n,
                               f"its horizon {horizon_attr}={horizon} ran out after {horizon} scheduler steps "
                               f"(about {horizon / k:.2g} passes) and the run outlives it (the LR cycles/stops)")
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
