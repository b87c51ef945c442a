"""LR advisor: the learning-rate range test (Smith 2017; "LR finder").

:func:`lr_range_test` trains a *copy* of the model for up to ``num_iters`` mini-batches while the
learning rate grows exponentially from ``start_lr`` to ``end_lr``, records the loss, smooths it
with a bias-corrected exponential moving average (weight ``smooth`` on the newest value), stops
when the smoothed loss exceeds ``diverge_factor`` x its best value (or is not finite), and
reports:

* ``steepest_region``: the LR interval around the steepest descent of the smoothed loss
  against ``log10(lr)`` (the points whose slope is at least half the steepest slope, contiguous
  with it, before the loss minimum);
* ``suggested_lr``: the LR of the steepest descent (``min_loss_lr``, the LR of the lowest
  smoothed loss, is reported too; a tenth of it is the other common pick).

The user's model, optimizer and the global RNG state are left untouched (the optimizer is
built by ``optimizer_factory`` on the copy's parameters; the global RNG is forked for the
duration of the test, so shuffling loaders and dropout do not advance the user's stream).
``LRRangeResult.to_series()`` gives the ``"lr_range_test"`` entry of report.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from .sanity import (
    _forward,
    _map_tensors,
    _model_device,
    _scalar,
    _seed_from,
    _split_batch,
    clean_copy,
    isolated,
    preserve_rng,
)

__all__ = ["LRRangeResult", "lr_range_test", "suggest_lr"]


@dataclass
class LRRangeResult:
    """Outcome of :func:`lr_range_test`."""

    lrs: list[float]
    losses: list[float]  # smoothed
    suggested_lr: Optional[float]
    steepest_region: Optional[tuple[float, float]]
    raw_losses: list[float] = field(default_factory=list)
    min_loss_lr: Optional[float] = None
    diverged_at: Optional[float] = None  # the LR at which the run stopped for divergence
    stopped_early: bool = False  # the time budget ran out before the end of the LR range

    def to_series(self) -> dict[str, Any]:
        """The ``"lr_range_test"`` series of report.json."""
        return {
            "lr": list(self.lrs),
            "loss": list(self.losses),
            "raw_loss": list(self.raw_losses),
            "suggested_lr": self.suggested_lr,
            "steepest_region": list(self.steepest_region) if self.steepest_region else None,
            "min_loss_lr": self.min_loss_lr,
            "diverged_at": self.diverged_at,
            "stopped_early": self.stopped_early,
        }

    def advice(self) -> str:
        if self.stopped_early:
            upto = f" (up to lr {self.lrs[-1]:.2g})" if self.lrs else ""
            return (f"LR range test inconclusive: its time budget ran out after {len(self.lrs)} iterations{upto}; "
                    "run lr_range_test on a GPU or with a smaller batch.")
        if self.suggested_lr is None:
            return "LR range test inconclusive: the loss never decreased over the tested range."
        lo, hi = self.steepest_region or (self.suggested_lr, self.suggested_lr)
        return (f"LR range test: steepest loss descent for lr in [{lo:.2g}, {hi:.2g}]; suggested lr "
                f"{self.suggested_lr:.2g}" + (f" (diverged at {self.diverged_at:.2g})" if self.diverged_at else ""))


def suggest_lr(lrs: list[float], losses: list[float]) -> tuple[Optional[float], Optional[tuple[float, float]], Optional[float]]:
    """(suggested_lr, steepest_region, min_loss_lr) from a smoothed loss curve."""
    pts = [(lr, l) for lr, l in zip(lrs, losses) if lr > 0 and math.isfinite(l)]
    n = len(pts)
    if n < 5:
        return None, None, None
    i_min = min(range(n), key=lambda i: pts[i][1])
    min_lr = pts[i_min][0]
    logs = [math.log10(lr) for lr, _ in pts]
    vals = [l for _, l in pts]
    k = max(1, n // 25)  # slope over +-k points: robust to the remaining noise
    slopes = []
    for i in range(n):
        a, b = max(0, i - k), min(n - 1, i + k)
        slopes.append((vals[b] - vals[a]) / (logs[b] - logs[a]) if logs[b] > logs[a] else 0.0)
    skip = max(1, n // 10)  # the first points carry the EMA warm-up
    lo_i, hi_i = min(skip, i_min), i_min
    if hi_i <= lo_i:
        return None, None, min_lr
    i_star = min(range(lo_i, hi_i + 1), key=lambda i: slopes[i])
    if slopes[i_star] >= 0:
        return None, None, min_lr
    half = 0.5 * slopes[i_star]
    a = i_star
    while a > lo_i and slopes[a - 1] <= half:
        a -= 1
    b = i_star
    while b < hi_i and slopes[b + 1] <= half:
        b += 1
    return pts[i_star][0], (pts[a][0], pts[b][0]), min_lr


def _batches(loader_or_batches: Any) -> Callable[[], Iterable]:
    """A function returning a fresh iterator; re-iterable sources (lists, DataLoaders) cycle."""
    if isinstance(loader_or_batches, (tuple, list)) and len(loader_or_batches) == 2 and isinstance(loader_or_batches[0], torch.Tensor):
        single = loader_or_batches  # one (inputs, targets) batch, reused every iteration
        return lambda: iter([single])
    if hasattr(loader_or_batches, "__next__"):  # a one-shot iterator/generator
        # (never call iter() on a DataLoader here: that draws a seed from the global RNG)
        return lambda: loader_or_batches
    return lambda: iter(loader_or_batches)


def lr_range_test(
    model: nn.Module,
    loss_fn: Callable,
    loader_or_batches: Any,
    optimizer_factory: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iters: int = 100,
    smooth: float = 0.05,
    diverge_factor: float = 4.0,
    generator: Optional[torch.Generator] = None,
    time_budget: Optional[float] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> LRRangeResult:
    """Run the LR range test on a copy of ``model`` (see the module docstring).

    ``loader_or_batches`` is a DataLoader, a list of ``(inputs, targets)`` batches (cycled when
    shorter than ``num_iters``), a one-shot iterator of batches, or a single ``(inputs, targets)``
    batch. ``optimizer_factory(params)`` builds the optimizer; every param group's LR is set to
    the current test LR at each iteration. After ``time_budget`` seconds the test stops
    (``stopped_early``) and suggests nothing: the low end of the range alone is no evidence.
    """
    import time

    t_start = time.perf_counter()
    if not (0 < start_lr < end_lr):
        raise ValueError("need 0 < start_lr < end_lr")
    if num_iters < 2:
        raise ValueError("num_iters must be at least 2")
    m = clean_copy(model)
    m.train()
    device = _model_device(m)
    fn = clean_copy(loss_fn) if isinstance(loss_fn, nn.Module) else loss_fn
    params = [p for p in m.parameters() if p.requires_grad]
    opt = optimizer_factory(params)
    ratio = (end_lr / start_lr) ** (1.0 / (num_iters - 1))
    fresh = _batches(loader_or_batches)
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    avg = 0.0
    best = math.inf
    diverged_at = None
    stopped_early = False
    with preserve_rng(_seed_from(generator)), isolated():
        it = iter(fresh())
        for i in range(num_iters):
            if progress is not None:
                progress(i, num_iters)
            if time_budget is not None and i and time.perf_counter() - t_start > time_budget:
                stopped_early = True
                break
            try:
                batch = next(it)
            except StopIteration:
                it = iter(fresh())  # cycle a re-iterable source; a spent iterator stays empty
                try:
                    batch = next(it)
                except StopIteration:
                    break
            lr = start_lr * ratio**i
            for g in opt.param_groups:
                g["lr"] = lr
            if device is not None:
                batch = _map_tensors(batch, lambda t: t.to(device))
            x, y = _split_batch(batch)
            opt.zero_grad(set_to_none=True)
            loss = _scalar(fn(_forward(m, x), y))
            value = float(loss.detach())
            lrs.append(lr)
            raw.append(value)
            if not math.isfinite(value):
                smoothed.append(math.inf)
                diverged_at = lr
                break
            avg = (1 - smooth) * avg + smooth * value
            s = avg / (1 - (1 - smooth) ** (i + 1))
            smoothed.append(s)
            best = min(best, s)
            if i > 0 and s > diverge_factor * best:
                diverged_at = lr
                break
            torch.autograd.backward(loss)  # not Tensor.backward: a monitor may have patched it
            opt.step()
    suggested, region, min_lr = suggest_lr(lrs, smoothed)
    if stopped_early:  # only the low end of the range was seen: its steepest part says nothing
        suggested, region = None, None
    return LRRangeResult(lrs=lrs, losses=smoothed, suggested_lr=suggested, steepest_region=region,
                         raw_losses=raw, min_loss_lr=min_lr, diverged_at=diverged_at, stopped_early=stopped_early)
