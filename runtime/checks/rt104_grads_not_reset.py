"""RT104 gradients-not-reset: an optimizer steps twice without its gradients being reset in between.

Reasoned per optimizer, over parameters that optimizer steps. After a sampled step of optimizer
``O`` the check watches a few of ``O``'s parameters (first, middle, last with a gradient): it keeps
a weak reference to each gradient tensor and its ``_version``, and a post-accumulate-grad hook
(only until ``O``'s next step) sees every accumulation into it. An accumulation into the *same*
tensor whose version rose by exactly one since the previous observation added to the old values;
anything else is a reset: a new tensor (``zero_grad()`` with ``set_to_none``, ``p.grad = None``,
``module.zero_grad()``) or an extra version bump (``zero_grad(set_to_none=False)``,
``p.grad.zero_()``, any in-place zeroing). At ``O``'s next step the gradient was never reset if
every accumulation since the previous step added to the old values.

So a GAN is fine: the generator's backward adds to the discriminator's gradients after ``optD``
stepped, and ``netD.zero_grad()`` resets them before ``optD`` steps again. Gradient accumulation is
fine (the reset comes once per step). Manual update loops (no optimizer) are judged between two
backward calls. Clipping or unscaling between the last backward and the step is not a reset and
does not matter (only accumulations are compared).
"""

from __future__ import annotations

import weakref

from ..stats import Always
from .base import Check


class GradientsNotReset(Check):
    code = "RT104"
    name = "gradients-not-reset"
    severity = "error"
    static_twin = "RC101"
    # the check counts each optimizer's own steps; the monitor calls it at every post-step (O(1))
    schedule = Always()
    first = 3  # the first steps of each optimizer are watched...
    every = 20  # ...then every 20th up to step `dense_until`...
    dense_until = 200
    every_late = 100  # ...then every 100th (arming costs hooks on the parameters: keeps the overhead low)
    watch = 3  # parameters watched per optimizer
    confirmations = 2

    def setup(self, mon):
        self._n = {}
        self._armed = {}
        self._hits = {}
        self._judged = 0
        self._pick_cache = {}

    def on_post_step(self, mon, opt):
        # called at every step of every optimizer: [steps of this optimizer, the next armed one]
        c = self._n.get(id(opt))
        if c is None:
            c = self._n[id(opt)] = [0, self._next_armed(0)]
        n = c[0] = c[0] + 1
        if self._armed:
            watched = self._armed.pop(id(opt), None)
            if watched is not None:
                self._judge(mon, opt, watched)
        if n == c[1]:
            c[1] = self._next_armed(n)
            self._arm(mon, opt)

    def _next_armed(self, n):
        """The step after ``n`` at which the check arms: each of the first ``first``, then every
        ``every``-th up to ``dense_until``, then every ``every_late``-th."""
        if n < self.first:
            return n + 1
        every = self.every if n < self.dense_until else self.every_late
        return (n // every + 1) * every

    def _picks(self, mon, opt):
        """(parameter, name) of the watched parameters of ``opt``: first, middle and last with a
        gradient; kept while they still have a dense gradient (no scan over all parameters, which
        is hundreds of tensors in a real model, at every armed step)."""
        picks = self._pick_cache.get(id(opt))
        if picks is not None and all(p.grad is not None and not p.grad.is_sparse for p, _ in picks):
            return picks
        params = [p for g in opt.param_groups for p in g["params"]
                  if p.requires_grad and p.grad is not None and not p.grad.is_sparse]
        picks = [(params[i], mon.param_name(params[i], f"param{i}"))
                 for i in sorted({0, len(params) // 2, len(params) - 1})[: self.watch]] if params else []
        self._pick_cache[id(opt)] = picks
        return picks

    def _arm(self, mon, opt):
        picks = self._picks(mon, opt)
        if not picks:
            return
        watched = []
        for p, name in picks:
            g = p.grad
            st = {"name": name, "grad": weakref.ref(g), "version": g._version, "n": 0, "pure": True}
            # removed at the optimizer's next step, or in release() at exit
            st["handle"] = p.register_post_accumulate_grad_hook(_Observer(st))
            watched.append((weakref.ref(p), st))
        self._armed[id(opt)] = watched

    def _judge(self, mon, opt, watched):
        stale = None
        for pref, st in watched:
            try:
                st["handle"].remove()
            except Exception:
                pass
            p = pref()
            if p is None or st["n"] == 0:
                continue
            if st["pure"] and p.grad is not None and p.grad is st["grad"]():
                stale = stale or st["name"]
        if not any(st["n"] for _, st in watched):
            return  # no backward reached these parameters between the two steps
        self._judged += 1
        k = id(opt)
        if stale is None:
            self._hits[k] = 0
            return
        self._hits[k] = self._hits.get(k, 0) + 1
        if self._hits[k] >= self.confirmations:
            label = mon._opt_label(opt, full=True)
            self.emit(mon, f"Gradients were not reset between two steps of {label} (seen at step {mon.step}: "
                           f"backward() added the new gradient of {stale} to the one the previous step had "
                           f"already used), so each step applies the sum of all past gradients. Fix: call "
                           f"optimizer.zero_grad() (or model.zero_grad()) once per optimizer step (with "
                           f"gradient accumulation: after each step).{self.twin_note()}",
                      where=stale, key=("rt104", k))

    def skip_reason(self, mon):
        if self._judged == 0:
            return "no two consecutive steps of one optimizer with a backward() between them were seen"
        return None

    def release(self):
        for watched in (self._armed or {}).values():
            for _, st in watched:
                try:
                    st["handle"].remove()
                except Exception:
                    pass
        super().release()


class _Observer:
    """Post-accumulate-grad hook: did this accumulation add to the gradient watched since the step?"""

    __slots__ = ("st",)

    def __init__(self, st):
        self.st = st

    def __call__(self, param) -> None:
        st = self.st
        try:
            g = param.grad
            st["n"] += 1
            if g is None or g is not st["grad"]() or g._version != st["version"] + 1:
                st["pure"] = False
                if g is not None:
                    st["grad"] = weakref.ref(g)
            if g is not None:
                st["version"] = g._version
        except Exception:
            st["pure"] = False
