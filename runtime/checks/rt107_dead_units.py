"""RT107 dead-or-saturated-units: ReLU outputs almost all zero, tanh/sigmoid almost all saturated.

Observed two ways:

* the outputs of activation modules (``nn.ReLU``, ``nn.Tanh``, ...) through call taps that exist
  only during sampled steps (also records activation histograms for the report);
* the gradients of ``nn.Linear``/``nn.Conv*`` weights at sampled steps: a unit (output row) whose
  gradient is exactly zero for the whole batch receives no signal, which is what a dead ReLU does.
  This sees functional activations (``F.relu``, ``torch.relu``, ``x.relu()``) too.
"""

from __future__ import annotations

import torch
from torch import nn

from ..stats import Every, FirstK, LogSpaced
from .base import Check

_RELU = (nn.ReLU, nn.ReLU6)
_TANH = (nn.Tanh, nn.Hardtanh)
_SIGMOID = (nn.Sigmoid, nn.Hardsigmoid)


class DeadOrSaturatedUnits(Check):
    code = "RT107"
    name = "dead-or-saturated-units"
    severity = "warning"
    static_twin = "RC304"
    activation_types = _RELU + _TANH + _SIGMOID
    activation_schedule = FirstK(2) | Every(200)
    schedule = FirstK(3) | LogSpaced() | Every(100)  # gradient rows (step 1 is not judged: zero-initialized layers)
    max_row_layers = 32
    dead_threshold = 0.95  # fraction of zero ReLU outputs
    saturated_threshold = 0.9  # fraction of saturated tanh/sigmoid outputs
    confirmations = 2  # consecutive sampled steps
    bins = 30
    max_hist_layers = 16
    max_examples = 16  # examples of the batch looked at per sampled step

    def setup(self, mon):
        self._streak = {}
        self._first_hist = set()
        self._seen_step = {}
        self._row_params = {}  # id(param) -> layer name (Linear/Conv weights)
        self._row_streak = {}
        self._row_seen = False

    def on_model(self, mon, model):
        for name, m in model.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and isinstance(m.weight, torch.Tensor):
                pname = mon.param_name(m.weight, name + ".weight")
                self._row_params[id(m.weight)] = pname[: -len(".weight")] if pname.endswith(".weight") else pname

    def on_pre_step(self, mon, opt):
        if mon.step <= 1:
            return
        named = [(self._row_params[id(p)], p) for _, p in mon.params(opt)
                 if id(p) in self._row_params and p.grad is not None and not p.grad.is_sparse
                 and p.dim() >= 2 and p.shape[0] >= 8][: self.max_row_layers]
        if not named:
            return
        with torch.no_grad():
            dead = [(p.grad.reshape(p.shape[0], -1) == 0).all(1).float().mean() for _, p in named]
            mon.defer(self, ("rows", tuple(n for n, _ in named)), torch.stack(dead))

    def on_activation(self, mon, layer, module, output):
        if self._seen_step.get(layer) == mon.step:
            return  # one sample per layer and step (grad accumulation calls it more often)
        self._seen_step[layer] = mon.step
        with torch.no_grad():
            out = output.detach()
            if out.dim() >= 2 and out.shape[0] > self.max_examples:
                out = out[: self.max_examples]  # a sample of the batch keeps big activations cheap
            if out.numel() == 0:
                return
            if isinstance(module, _RELU):
                kind = "relu"
                frac = (out <= 0).float().mean()
                if out.dim() >= 2:
                    alive = (out > 0).reshape(out.shape[0], out.shape[1], -1).any(-1).any(0)
                    dead_units = 1.0 - alive.float().mean()
                else:
                    dead_units = frac
                vals = torch.stack([frac, dead_units])
            else:
                if isinstance(module, _TANH):
                    kind = "tanh"
                    sat = (out.abs() > 0.99).float().mean()
                else:
                    kind = "sigmoid"
                    sat = ((out < 0.01) | (out > 0.99)).float().mean()
                vals = torch.stack([sat, sat])
            mon.defer(self, (layer, kind, type(module).__name__), vals)
            if len(self._first_hist) < self.max_hist_layers or layer in self._first_hist:
                o = out.float().reshape(-1)
                mm = torch.aminmax(o)
                hist = torch.histc(o, bins=self.bins)
                mon.defer(self, (layer, "hist", type(module).__name__),  # type: the report's title
                          torch.cat([torch.stack([mm.min, mm.max]), hist]))

    def _rows(self, mon, step, names, values):
        self._row_seen = True
        dead = []
        for name, frac in zip(names, values):
            bad = frac >= self.dead_threshold
            streak = self._row_streak.get(name, 0) + 1 if bad else 0
            self._row_streak[name] = streak
            if streak >= self.confirmations:
                dead.append((name, frac))
        if dead:
            layers = ", ".join(f"{f:.0%} of {n}" for n, f in dead[:4]) + (f" and {len(dead) - 4} more layers" if len(dead) > 4 else "")
            self.emit(mon, f"Dead units: {layers}'s output units received exactly zero gradient for the whole "
                           f"batch at {self.confirmations} sampled steps in a row up to step {step}. A unit whose "
                           f"activation (ReLU, also F.relu) is never positive gets no gradient "
                           f"and never recovers. Fix: lower the learning rate, use Kaiming init and no large "
                           f"negative biases, or LeakyReLU/GELU.{self.twin_note()}", step=step, where=dead[0][0],
                      key="rows")

    def skip_reason(self, mon):
        if not self._row_seen and not self._seen_step:
            return "no activation module and no Linear/Conv weight with a gradient was sampled"
        return None

    def on_values(self, mon, step, key, values):
        if len(key) == 2 and key[0] == "rows" and isinstance(key[1], tuple):
            self._rows(mon, step, key[1], values)
            return
        if key[1] == "hist":
            layer = key[0]
            lo, hi, counts = values[0], values[1], values[2:]
            if hi <= lo:
                hi = lo + 1e-12
            w = (hi - lo) / len(counts)
            data = {"edges": [lo + i * w for i in range(len(counts) + 1)], "counts": counts, "step": step,
                    "module": key[2] if len(key) > 2 else None}
            if layer not in self._first_hist:
                self._first_hist.add(layer)
                mon.series.set(f"activations/{layer}/first", data)
            mon.series.set(f"activations/{layer}/last", data)
            return
        layer, kind, cls = key
        frac, dead_units = values
        bad = frac >= (self.dead_threshold if kind == "relu" else self.saturated_threshold)
        streak = self._streak.get(layer, 0) + 1 if bad else 0
        self._streak[layer] = streak
        if streak < self.confirmations:
            return
        if kind == "relu":
            msg = (f"{frac:.0%} of the outputs of {layer} ({cls}) are zero at step {step} "
                   f"({dead_units:.0%} of its units are zero for every sampled example): dead ReLUs get no gradient "
                   f"and never recover. Fix: lower the learning rate, use Kaiming init and no large negative "
                   f"biases, or LeakyReLU/GELU.{self.twin_note()}")
        else:
            msg = (f"{frac:.0%} of the outputs of {layer} ({cls}) are saturated at step {step}: saturated "
                   f"{kind} units pass almost no gradient. Fix: scale the init down (Xavier/Glorot for "
                   f"{kind}), normalize the inputs, or add normalization layers.{self.twin_note()}")
        self.emit(mon, msg, step=step, where=layer)
