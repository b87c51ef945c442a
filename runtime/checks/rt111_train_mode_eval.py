"""RT111 train-mode-during-eval: forward passes under no_grad/inference_mode while Dropout or
BatchNorm modules are in training mode (``model.eval()`` was forgotten)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..stats import Never
from .base import Check

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class TrainModeDuringEval(Check):
    code = "RT111"
    name = "train-mode-during-eval"
    severity = "error"
    static_twin = "RC701"
    schedule = Never()
    model_inputs = "eval"

    def setup(self, mon):
        self._mods = {}

    def on_model(self, mon, model):
        self._mods[id(model)] = [(n, m) for n, m in model.named_modules() if isinstance(m, _DROPOUT + (_BatchNorm,))]

    def on_model_input(self, mon, model, args, kwargs):
        mods = self._mods.get(id(model))
        if not mods:
            return
        training = [(n, m) for n, m in mods if m.training]
        if not training:
            return
        names = ", ".join(f"{n or type(model).__name__} ({type(m).__name__})" for n, m in training[:4])
        if len(training) > 4:
            names += f" and {len(training) - 4} more"
        ctx = "inference_mode" if torch.is_inference_mode_enabled() else "no_grad"
        self.emit(mon, f"A forward pass under torch.{ctx}() after step {mon.step} ran with {names} in training "
                       f"mode: dropout stays on and BatchNorm uses batch statistics (and updates its running "
                       f"stats from evaluation data), so the evaluation numbers are wrong. Fix: call "
                       f"model.eval() before evaluating and model.train() before training again."
                       f"{self.twin_note()}", where=training[0][0] or type(model).__name__, key="eval")
