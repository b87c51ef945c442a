"""RT110 unshuffled-training-data: the training data comes in the same order every epoch.

* ``recipecheck run``: the DataLoader that feeds the optimizer steps is identified (reversible
  ``DataLoader.__iter__`` patch) and its sampler inspected (SequentialSampler = shuffle=False).
* Everywhere: the batches that reach the model are fingerprinted on the device (a weighted sum
  of the first elements of the input; only the first batches of each epoch, and the first 256
  overall) and the order is compared across epochs, or, when epoch boundaries are unknown, a
  repeating period is looked for. Random augmentation of the inputs hides a repeated order from
  the fingerprints (the sampler check still works under ``recipecheck run``).

Not reported for a stateful model trained by truncated backpropagation through time (an RNN whose
hidden state from one batch is fed, detached, into the next): such a model must see the batches
in order. It is recognized when a forward receives, besides its input, a tensor that shares storage
with the previous forward's output (``hidden = repackage_hidden(hidden)``).
"""

from __future__ import annotations

import torch

from ..stats import Never
from .base import Check


class UnshuffledTrainingData(Check):
    code = "RT110"
    name = "unshuffled-training-data"
    severity = "warning"
    static_twin = "RC401"
    schedule = Never()
    per_epoch = 16  # fingerprinted batches at the start of each epoch
    overall = 256  # fingerprinted batches from the start (period detection)
    elems = 512

    stateful_probe = 8  # training forwards looked at for a carried-over hidden state

    def setup(self, mon):
        self._stateful = False
        self._probed = 0
        self._prev_out = set()
        self._idx_epoch = 0
        self._idx_total = 0
        self._fps = {}  # epoch -> {index in epoch: fp}
        self._seq = []  # (global index, fp) for the first `overall` batches
        self._ramp = {}

    def on_model_output(self, mon, model, output):
        if not (model.training and torch.is_grad_enabled()):
            return
        self._probed += 1
        self._prev_out = {t.untyped_storage().data_ptr() for t in _tensors(output, skip_first=False)
                          if t.numel()}
        if self._probed >= self.stateful_probe:
            mon.pause(self, "on_model_output")

    def _carried_state(self, args, kwargs):
        if not self._prev_out:
            return False
        extra = list(args[1:]) + list((kwargs or {}).values())
        return any(t.numel() and t.untyped_storage().data_ptr() in self._prev_out for t in _tensors(extra))

    def skip_reason(self, mon):
        if self._stateful:
            return ("the model carries its hidden state from one batch to the next (truncated BPTT): it must "
                    "see the batches in order")
        return None

    def on_train_loader(self, mon, loader):
        from torch.utils.data import IterableDataset, SequentialSampler

        if self._stateful:
            return

        if isinstance(getattr(loader, "dataset", None), IterableDataset):
            return
        sampler = getattr(loader, "sampler", None)
        bs = getattr(loader, "batch_sampler", None)
        inner = getattr(bs, "sampler", None)
        if isinstance(sampler, SequentialSampler) and (bs is None or isinstance(inner, SequentialSampler)):
            self.emit(mon, f"The training DataLoader uses a SequentialSampler (shuffle=False): every epoch "
                           f"sees the batches in the same order, so the gradient steps are correlated and "
                           f"any ordering in the data (e.g. sorted by label) biases training. Fix: "
                           f"DataLoader(..., shuffle=True) or a random/distributed sampler.{self.twin_note()}",
                      where=f"DataLoader(sampler={type(sampler).__name__})", key="sampler")

    model_inputs = "train"

    def on_epoch(self, mon, epoch):
        self._idx_epoch = 0
        if not self._stateful:
            mon.pause(self, paused=False)

    def on_model_input(self, mon, model, args, kwargs):
        i, g = self._idx_epoch, self._idx_total
        if i >= self.per_epoch and g >= self.overall:
            mon.pause(self)  # until the next epoch
            return
        if not model.training:
            return
        if self._probed < self.stateful_probe and self._carried_state(args, kwargs):
            self._stateful = True  # the order is part of the method: nothing to report, ever
            mon.pause(self)
            mon.pause(self, "on_model_output")
            return
        self._idx_epoch += 1
        self._idx_total += 1
        from ..monitor import _first_tensor

        x = _first_tensor(args, kwargs)
        if x is None or x.numel() == 0:
            return
        with torch.no_grad():
            v = x.detach().reshape(-1)[: self.elems]
            n = v.numel()
            key = (v.device, n)
            ramp = self._ramp.get(key)
            dt = torch.float32 if v.device.type == "mps" else torch.float64
            if ramp is None:
                ramp = self._ramp[key] = torch.linspace(1.0, 2.0, n, dtype=dt, device=v.device)
            fp = torch.dot(v.to(dt), ramp)
        mon.defer(self, (mon.epoch, i, g), fp.reshape(1))

    def on_values(self, mon, step, key, values):
        epoch, i, g = key
        if i < self.per_epoch:
            self._fps.setdefault(epoch, {})[i] = values[0]
        if g < self.overall:
            self._seq.append((g, values[0]))

    @staticmethod
    def _fix(mon):
        if mon._train_loader is not None and mon._train_loader() is not None:
            return "DataLoader(..., shuffle=True) or a random sampler"
        order = ("visit the training examples in a new random order every epoch (e.g. index them with "
                 "torch.randperm(n), generated anew each epoch)")
        if mon.patch_dataloader:
            return order  # no DataLoader fed the steps: do not name one the script does not have
        return order + ", or DataLoader(..., shuffle=True) if the batches come from a DataLoader"

    def on_read(self, mon, losses):
        if ("RT110", "sampler") in mon._emitted or self._stateful:
            return  # the sampler finding already says it
        if mon._epoch_source is not None:
            for e in sorted(self._fps):
                prev = self._fps.get(e - 1)
                cur = self._fps[e]
                if not prev:
                    continue
                m = min(len(prev), len(cur), self.per_epoch)
                a = [prev.get(j) for j in range(m)]
                b = [cur.get(j) for j in range(m)]
                if m >= 2 and None not in a and a == b and len(set(a)) > 1:
                    self.emit(mon, f"The training batches of epoch {e} came in exactly the same order as in "
                                   f"epoch {e - 1} (first {m} batches compared): the data is not shuffled "
                                   f"between epochs. Fix: {self._fix(mon)}."
                                   f"{self.twin_note()}", epoch=e, where="training data order", key="order")
                    return
            return
        seq = [fp for _, fp in sorted(self._seq)]
        n = len(seq)
        for p in range(2, n - 1):
            if seq[p] != seq[0]:
                continue
            m = min(p, 8, n - p)
            if m >= 2 and seq[p:p + m] == seq[:m] and len(set(seq[:m])) > 1:
                self.emit(mon, f"The training batches repeat in the same order every {p} batches (first {m} "
                               f"batches of each pass compared): the data is not shuffled between epochs. "
                               f"Fix: {self._fix(mon)}.{self.twin_note()}",
                          where="training data order", key="order")
                return


def _tensors(objs, skip_first=False):
    """The tensors in a (nested) tuple/list/dict, as a flat list (hidden states are (h, c) tuples)."""
    out, stack = [], [objs]
    while stack:
        o = stack.pop()
        if isinstance(o, torch.Tensor):
            out.append(o)
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, dict):
            stack.extend(o.values())
    return out
