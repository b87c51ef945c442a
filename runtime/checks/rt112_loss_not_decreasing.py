"""RT112 loss-not-decreasing: no drop after a warm-up window, divergence, or a loss stuck at chance.

One judgement per loss series: ``loss`` (the step-counting optimizer) and ``loss/<optimizer>`` for
the others (a GAN's discriminator and generator losses are never mixed). A "not decreasing"
finding waits for a warm-up (``warmup`` steps, and at least one pass over the training data when
passes are known) so a slow starter is not flagged early, and it is withdrawn when the loss later
falls. When the run also has RT104 (gradients never reset) or RT105 (scheduler stepped per batch),
the advice points at those findings instead of at the learning rate.
"""

from __future__ import annotations

import math
from collections import deque

from ..stats import Never, median
from .base import Check
from .rt101_initial_loss import chance_level

_CAUSES = {"RT104": "gradients are never reset (RT104)", "RT105": "the LR scheduler is stepped per batch (RT105)"}


class LossNotDecreasing(Check):
    code = "RT112"
    name = "loss-not-decreasing"
    severity = "warning"
    static_twin = None
    schedule = Never()
    warmup = 200  # steps before "not decreasing" may fire (and one pass when passes are known)
    early_window = 20
    recent_window = 50
    min_drop = 0.03  # relative drop expected after the warm-up
    diverge_factor = 2.0
    blowup_factor = 10.0  # the step-counting loss vs. its first values (not for a GAN generator's loss)
    chance_tol = 0.05  # "stuck at chance": within 5% of the chance level...
    chance_steps = 200  # ...for this many steps in a row after the first `early_window`
    withdraw_drop = 0.1  # a flagged loss that later falls 10% below its level was a slow start

    def setup(self, mon):
        self._s = {}
        self._emitted = []  # (finding, series, level)

    def _state(self, name):
        st = self._s.get(name)
        if st is None:
            st = self._s[name] = {"early": [], "recent": deque(maxlen=self.recent_window), "best": math.inf,
                                  "best_step": None, "since": 10, "tail": deque(maxlen=self.chance_steps),
                                  "first_step": None}
        return st

    def on_read(self, mon, losses):
        reads = mon.loss_reads or ({"loss": losses} if losses else {})
        for name, vals in reads.items():
            self._series(mon, name, vals)
        self._maybe_withdraw(mon)

    def _series(self, mon, name, vals):
        st = self._state(name)
        ch = chance_level(mon.criterion_info, mon.num_classes) if name == "loss" else None
        # (runs at every batched read over every loss read: the state is held in locals)
        early_l, tail, recent, since = st["early"], st["tail"], st["recent"], st["since"]
        isfinite, ew = math.isfinite, self.early_window
        for step, v in vals:
            if not isfinite(v):
                continue  # RT106
            if st["first_step"] is None:
                st["first_step"] = step
            if len(early_l) < ew:
                early_l.append(v)
            else:
                tail.append(v)
            recent.append((step, v))
            since += 1
            if since >= 10 and len(recent) >= 20:
                since = 0  # a rolling 20-step median every 10 losses is enough
                w = sorted([x for _, x in recent][-20:])  # finite values only (filtered above)
                m = 0.5 * (w[9] + w[10])
                if m < st["best"]:
                    st["best"], st["best_step"] = m, step
        st["since"] = since
        if len(st["early"]) < self.early_window or not st["recent"]:
            return
        early = median(st["early"])
        step = st["recent"][-1][0]
        label = "The loss" if name == "loss" else f"The loss of {name[len('loss/'):]}"
        at_chance = False
        if ch is not None and st["tail"]:
            tail_med = median(st["tail"])
            at_chance = abs(tail_med - ch[0]) <= self.chance_tol * ch[0]
        if at_chance and len(st["tail"]) >= self.chance_steps:
            chance, desc = ch
            f = self.emit(mon, f"{label} is stuck at the chance level: median {tail_med:.4g} over the last "
                               f"{len(st['tail'])} steps up to step {step}, {desc}: the model predicts the class "
                               f"frequencies and learns nothing from the inputs (often a learning rate so high "
                               f"that it killed the network, or inputs that do not reach the model). Fix: "
                               f"{self._advice(mon, 'lower the learning rate, check that the inputs and labels are paired')}.",
                          step=step, where=name, key=(name, "chance"))
            if f is not None:
                self._emitted.append((f, name, chance))
        if len(st["recent"]) < self.recent_window:
            return
        recent = median(v for _, v in st["recent"])
        last20 = median(v for _, v in list(st["recent"])[-20:])
        if ("RT112", (name, "chance")) in mon._emitted:
            pass  # already reported as "stuck at chance" (the sharper diagnosis)
        elif step >= self._warmup(mon) and early > 1e-3 and recent >= (1 - self.min_drop) * early and \
                recent <= self.diverge_factor * early:
            f = self.emit(mon, f"{label} has not decreased after {step} steps: median {recent:.4g} over the last "
                               f"{len(st['recent'])} steps vs. {early:.4g} over the first {self.early_window}. Fix: "
                               f"{self._advice(mon, 'check that the optimizer updates the model parameters, try a larger learning rate (run an LR range test), and check the data/label pipeline')}.",
                          step=step, where=name, key=(name, "flat"))
            if f is not None:
                self._emitted.append((f, name, recent))
        elif name == "loss" and len(st["early"]) >= 3 and min(st["early"][:3]) > 0 and \
                last20 > self.blowup_factor * min(st["early"][:3]):
            start = min(st["early"][:3])
            self.emit(mon, f"{label} is diverging (it blew up): median {last20:.4g} over the last 20 steps up to step {step} is "
                           f"{last20 / start:.0f}x its value at the start ({start:.4g}) and it never came back: "
                           f"the first updates destroyed what the initialization gave. Fix: "
                           f"{self._advice(mon, 'lower the learning rate (an LR range test finds a good one), add warmup or gradient clipping')}.",
                      step=step, where=name, key=(name, "diverge"))
        elif last20 > self.diverge_factor * st["best"] and last20 > early * 1.2 and st["best"] < math.inf:
            self.emit(mon, f"{label} is diverging: median {last20:.4g} over the last 20 steps up to step {step} "
                           f"is {last20 / max(st['best'], 1e-30):.1f}x its best ({st['best']:.4g} around step "
                           f"{st['best_step']}). Fix: "
                           f"{self._advice(mon, 'lower the learning rate, add warmup or gradient clipping')}.",
                      step=step, where=name, key=(name, "diverge"))

    def _warmup(self, mon):
        w = self.warmup
        info = mon._loaders.get(id(mon._train_loader())) if mon._train_loader is not None else None
        if mon._epoch_source is not None and mon.epoch == 0:
            return max(w, mon.step + 1)  # never inside the first pass when passes are known
        if info is not None:
            w = max(w, info.get("steps", 0) // max(1, info.get("passes", 1)))
        return w

    @staticmethod
    def _advice(mon, default):
        causes = [_CAUSES[c] for c in _CAUSES if any(f.code == c for f in mon.findings)]
        if causes:
            return f"first fix what this run already shows: {' and '.join(causes)}; that alone explains it"
        return default

    def _maybe_withdraw(self, mon):
        for f, name, level in list(self._emitted):
            st = self._s.get(name)
            if not st or len(st["recent"]) < 20:
                continue
            last20 = median(v for _, v in list(st["recent"])[-20:])
            if last20 < (1 - self.withdraw_drop) * level:
                self._emitted.remove((f, name, level))
                mon.withdraw(f, f"the loss fell later (median {last20:.4g} over the last 20 steps up to step "
                                f"{st['recent'][-1][0]}, vs. {level:.4g} when reported): a slow start, not a stall")

    def finalize(self, mon):
        # RT104/RT105 may have been found after this finding: point its advice at them
        for f, _, _ in self._emitted:
            advice = self._advice(mon, "")
            if advice and "Fix:" in f.message and "first fix" not in f.message:
                f.message = f.message[: f.message.index("Fix:")] + f"Fix: {advice}."

    def skip_reason(self, mon):
        if not self._s:
            return "no loss was observed"
        if all(len(st["recent"]) < self.recent_window for st in self._s.values()):
            return f"fewer than {self.recent_window} losses were observed"
        return None
