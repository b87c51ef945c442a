"""RT101 initial-loss-off: the first loss differs from the chance level."""

from __future__ import annotations

import math

from ..stats import Never
from .base import Check


def chance_level(info, num_classes=None):
    """(chance loss, description) from the criterion info and/or ``num_classes``; None if unknown."""
    kind = (info or {}).get("type")
    shape = (info or {}).get("logits_shape")
    C = num_classes
    if C is None and shape:
        C = shape[1] if len(shape) >= 2 else None
    if kind in ("BCEWithLogitsLoss", "BCELoss"):
        return math.log(2.0), "ln 2 for binary cross-entropy"
    if kind == "MultiMarginLoss" and C and C > 1:
        return (C - 1) / C, f"(C-1)/C = {(C - 1) / C:.3g} for the multi-class hinge loss over {C} classes"
    if kind in ("CrossEntropyLoss", "NLLLoss") or (kind is None and num_classes):
        if C and C > 1:
            return math.log(C), f"ln {C} = {math.log(C):.3g} for cross-entropy over {C} classes"
    return None


class InitialLossOff(Check):
    code = "RT101"
    name = "initial-loss-off"
    severity = "warning"
    static_twin = "RC303"
    schedule = Never()
    rel_tol = 0.25  # same thresholds as the sanity suite's RT101
    abs_tol = 0.3

    def on_read(self, mon, losses):
        if getattr(self, "_done", False) or not (losses or mon.init_loss is not None):
            return
        self._done = True
        # the loss module's (or F.cross_entropy's) own output at step 1 when seen: a GAN's D step sums
        # two such losses, an accumulation sums scaled ones; otherwise the step's loss
        if mon.init_loss is not None:
            first = mon.init_loss
        else:
            step, first = losses[0]
            if step != 1:
                self._skip = f"the first loss observed was at step {step}, not step 1"
                return
        if not math.isfinite(first):
            return
        info = mon.criterion_info
        ch = chance_level(info, mon.num_classes)
        if ch is None:
            kind = (info or {}).get("type")
            self._skip = (f"no chance level for a {kind} loss (pass num_classes= for cross-entropy-like losses)"
                          if kind else "no loss module or functional loss was seen, so the chance level is "
                                       "unknown (pass num_classes=)")
            return
        chance, desc = ch
        if info and info.get("reduction") == "sum":
            self._skip = "the loss is summed over the batch (reduction='sum'): no per-example chance level"
            return  # a summed loss scales with the batch; chance per example is unknown here
        if abs(first - chance) <= max(self.rel_tol * chance, self.abs_tol):
            return
        if first > chance:
            why = ("too high: the network is confidently wrong at init (weights or last-layer bias "
                   "too large, inputs not normalized, or a softmax applied before the loss)")
            fix = "scale the last layer's init down (or zero its bias), normalize the inputs"
        else:
            why = ("too low: the model is already confident at init, which usually means the labels "
                   "leak into the inputs, the targets are mostly one class, or the loss is not the one intended")
            fix = "check the label/target pairing, the class balance and the loss definition"
        self.emit(mon, f"Initial loss {first:.4g} at step 1 vs. the chance level {desc}: {why}. "
                       f"Fix: {fix}.{self.twin_note()}", step=1, where=(info or {}).get("type"))

    def skip_reason(self, mon):
        if not getattr(self, "_done", False):
            return "no loss was observed"
        return getattr(self, "_skip", None)
