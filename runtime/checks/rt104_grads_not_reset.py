"""RT104 gradients-not-reset: optimizer.step() runs twice without the gradients being reset.

Inferred from the gradient tensor's identity and ``_version``: right after a sampled step the
check remembers one gradient tensor (weakly) and its version; a post-accumulate-grad hook (one
parameter, only until the next backward) sees the first accumulation after the step. If the
gradient is still the same tensor and only that accumulation bumped its version, nothing reset
it (no ``zero_grad()``, ``p.grad = None`` or ``p.grad.zero_()``). Gradient accumulation (several
backward calls, then one step, then a reset) is fine: only the first backward after a step is
looked at.
"""

from __future__ import annotations

import weakref

from ..stats import Every, FirstK
from .base import Check


class GradientsNotReset(Check):
    code = "RT104"
    name = "gradients-not-reset"
    severity = "error"
    static_twin = "RC101"
    schedule = FirstK(2) | Every(20)
    confirmations = 2

    def setup(self, mon):
        self._mon = weakref.ref(mon)
        self._armed = {}
        self._hits = 0
        self._checks = 0

    def on_post_step(self, mon, opt):
        if id(opt) in self._armed:
            return
        for name, p in mon.params(opt):
            g = p.grad
            if g is not None and not g.is_sparse:
                state = {"name": name, "grad": weakref.ref(g), "version": g._version, "opt": id(opt)}
                handle = p.register_post_accumulate_grad_hook(lambda t, st=state: self._accumulated(t, st))
                state["handle"] = handle
                mon.own(handle)
                self._armed[id(opt)] = state
                return

    def _accumulated(self, param, state) -> None:
        mon = self._mon()
        try:
            state["handle"].remove()
        except Exception:
            pass
        self._armed.pop(state["opt"], None)
        if mon is None or self.disabled:
            return
        try:
            g = param.grad
            same = g is not None and state["grad"]() is g and g._version == state["version"] + 1
            self._checks += 1
            if not same:
                self._hits = 0
                return
            self._hits += 1
            if self._hits >= self.confirmations:
                self.emit(mon, f"Gradients were not reset between optimizer steps (seen at step {mon.step}: "
                               f"the gradient of {state['name']} still held the previous step's values when "
                               f"backward() added the new ones), so each step applies the sum of all past "
                               f"gradients. Fix: call optimizer.zero_grad() once per optimizer step (with "
                               f"gradient accumulation: after each step).{self.twin_note()}",
                          where=state["name"], key="rt104")
        except Exception as exc:
            mon._disable(self, exc)
