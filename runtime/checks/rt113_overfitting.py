"""RT113 overfitting-detected: the train/validation gap keeps growing.

Fed by ``mon.log_val(...)`` (and ``mon.log_train(...)``; without a logged train value for a
metric named "loss", the mean training loss since the previous validation is used).
"""

from __future__ import annotations

import math

from ..stats import Never
from .base import Check

_LOWER_BETTER = ("loss", "err", "error", "ppl", "perplexity", "mse", "mae", "rmse", "nll")


def lower_is_better(metric: str) -> bool:
    m = metric.lower()
    return any(k in m for k in _LOWER_BETTER)


class OverfittingDetected(Check):
    code = "RT113"
    name = "overfitting-detected"
    severity = "info"
    static_twin = None
    schedule = Never()
    patience = 3  # consecutive evaluations with a growing gap and a worse val metric
    min_worse = 0.01  # relative

    def setup(self, mon):
        self._train = {}
        self._hist = {}  # metric -> list of (epoch, step, train, val)
        self._loss_sum = 0.0
        self._loss_n = 0

    def on_read(self, mon, losses):
        for _, v in losses:
            if math.isfinite(v):
                self._loss_sum += v
                self._loss_n += 1

    def on_log(self, mon, split, metrics):
        if split == "train":
            self._train.update(metrics)
            return
        for name, val in metrics.items():
            train = self._train.get(name)
            if train is None and name == "loss" and self._loss_n:
                train = self._loss_sum / self._loss_n
            if train is None or not math.isfinite(val):
                continue
            self._hist.setdefault(name, []).append((mon.epoch, mon.step, train, val))
            self._judge(mon, name)
        self._train = {}
        self._loss_sum, self._loss_n = 0.0, 0

    def _judge(self, mon, name):
        h = self._hist[name]
        k = self.patience
        if len(h) < k + 1:
            return
        low = lower_is_better(name)
        gaps = [(v - t) if low else (t - v) for _, _, t, v in h]
        vals = [v for _, _, _, v in h]
        best_i = min(range(len(vals)), key=lambda i: vals[i]) if low else max(range(len(vals)), key=lambda i: vals[i])
        best = vals[best_i]
        last = vals[-1]
        worse = (last - best) if low else (best - last)
        growing = all(gaps[-j] > gaps[-j - 1] for j in range(1, k + 1))
        if growing and best_i <= len(vals) - 1 - (k - 1) and worse > self.min_worse * max(abs(best), 1e-12):
            e_best = h[best_i][0]
            self.emit(mon, f"Overfitting: the train/val gap in {name} grew for {k} evaluations in a row "
                           f"({gaps[-k - 1]:.4g} -> {gaps[-1]:.4g}) while val {name} got worse than its best "
                           f"{best:.4g} (epoch {e_best}, step {h[best_i][1]}) to {last:.4g}. Fix: early stopping "
                           f"(keep the checkpoint of epoch {e_best}), or more regularization (weight decay, "
                           f"dropout, augmentation, more data).", where=f"val/{name}", key=name)
