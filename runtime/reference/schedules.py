"""Learning-rate schedules as pure functions of the step (or epoch) ``t``.

Every schedule is a function ``fn(t, lr0, *hyperparameters) -> float`` with ``t = 0`` the first
step, so a schedule can be plotted, tested against its formula, and composed (warmup + any
other) without an optimizer. :class:`FunctionScheduler` turns any of them into a
``torch.optim.lr_scheduler.LRScheduler``: it calls ``fn(t, base_lr)`` for every param group,
where ``base_lr`` is the group's LR when the scheduler was created; bind the other arguments
with ``functools.partial``::

    sched = FunctionScheduler(opt, partial(step_decay, step_size=30, gamma=0.1))

Reduce-on-plateau depends on the validation metric, not only on ``t``, so it is a small
stateful class, :class:`NewBobPlateau`, with ``.step(metric)``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "constant",
    "step_decay",
    "multistep_decay",
    "exponential_decay",
    "inverse_time_decay",
    "cosine_decay",
    "linear_decay",
    "inverse_sqrt_decay",
    "linear_warmup",
    "with_warmup",
    "cyclic",
    "one_cycle",
    "cosine_warm_restarts",
    "sgdr_cycle_ends",
    "FunctionScheduler",
    "NewBobPlateau",
]

Schedule = Callable[..., float]


def _check_t(t: int) -> None:
    if t < 0:
        raise ValueError(f"the step t must be >= 0, got {t}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def constant(t: int, lr0: float) -> float:
    """``lr(t) = lr0``."""
    _check_t(t)
    return lr0


def step_decay(t: int, lr0: float, step_size: int, gamma: float = 0.1) -> float:
    """``lr(t) = lr0 * gamma ** floor(t / step_size)`` (torch's StepLR)."""
    _check_t(t)
    _check_positive("step_size", step_size)
    return lr0 * gamma ** (t // step_size)


def multistep_decay(t: int, lr0: float, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """``lr(t) = lr0 * gamma ** #{m in milestones : m <= t}`` (torch's MultiStepLR).

    A milestone listed twice counts twice, as in torch.
    """
    _check_t(t)
    return lr0 * gamma ** bisect.bisect_right(sorted(milestones), t)


def exponential_decay(t: int, lr0: float, k: float) -> float:
    """``lr(t) = lr0 * exp(-k * t)``; torch's ExponentialLR is this with ``gamma = exp(-k)``."""
    _check_t(t)
    return lr0 * math.exp(-k * t)


def inverse_time_decay(t: int, lr0: float, k: float) -> float:
    """``lr(t) = lr0 / (1 + k * t)`` (the 1/t decay of stochastic approximation)."""
    _check_t(t)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return lr0 / (1 + k * t)


def cosine_decay(t: int, lr0: float, T_max: int, eta_min: float = 0.0) -> float:
    """``lr(t) = eta_min + (lr0 - eta_min) * (1 + cos(pi * min(t, T_max) / T_max)) / 2``.

    Torch's CosineAnnealingLR agrees for ``t <= T_max``; past the horizon torch's LR rises
    again along the cosine (period ``2*T_max``) while this one stays at ``eta_min``.
    """
    _check_t(t)
    _check_positive("T_max", T_max)
    t = min(t, T_max)
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2


def linear_decay(
    t: int,
    lr0: float,
    total_iters: int,
    start_factor: float = 1.0,
    end_factor: float = 0.0,
) -> float:
    """``lr(t) = lr0 * (s + (e - s) * min(t, T) / T)`` with ``s, e = start_factor, end_factor``.

    Torch's LinearLR (whose defaults are ``s = 1/3, e = 1``, i.e. a warmup; here the defaults
    decay to zero).
    """
    _check_t(t)
    _check_positive("total_iters", total_iters)
    return lr0 * (start_factor + (end_factor - start_factor) * min(t, total_iters) / total_iters)


def inverse_sqrt_decay(t: int, lr0: float, timescale: float = 1.0) -> float:
    """``lr(t) = lr0 / sqrt(1 + t / timescale)`` (the Transformer-style 1/sqrt(t) decay)."""
    _check_t(t)
    _check_positive("timescale", timescale)
    return lr0 / math.sqrt(1 + t / timescale)


def linear_warmup(
    t: int,
    lr0: float,
    schedule: Schedule,
    warmup_steps: int,
    start_factor: float = 0.0,
) -> float:
    """Linear warmup for ``warmup_steps`` steps, then ``schedule`` shifted to start after it::

        t <  W:  lr(t) = schedule(0, lr0) * (start_factor + (1 - start_factor) * t / W)
        t >= W:  lr(t) = schedule(t - W, lr0)

    ``schedule`` is any ``fn(t, lr0)`` (bind its other arguments with ``functools.partial``).
    Warmup keeps the first updates small while Adam's second-moment estimate, or a large
    batch's linear-scaled LR, is still unreliable.
    """
    _check_t(t)
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if t < warmup_steps:
        return schedule(0, lr0) * (start_factor + (1 - start_factor) * t / warmup_steps)
    return schedule(t - warmup_steps, lr0)


def with_warmup(schedule: Schedule, warmup_steps: int, start_factor: float = 0.0) -> Schedule:
    """``fn(t, lr0)`` = :func:`linear_warmup` around ``schedule``: warmup composed with any schedule."""

    def fn(t: int, lr0: float) -> float:
        return linear_warmup(t, lr0, schedule, warmup_steps, start_factor)

    return fn


def cyclic(
    t: int,
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> float:
    """Smith's cyclical LR (CLR), as torch's CyclicLR::

        cycle = floor(1 + t / (up + down));   x = 1 + t / (up + down) - cycle   # position in cycle
        h = x / r if x <= r else (x - 1) / (r - 1)       with r = up / (up + down)
        lr = base_lr + (max_lr - base_lr) * h * scale

    where ``scale`` is 1 (``triangular``), ``1 / 2**(cycle - 1)`` (``triangular2``: the
    amplitude halves every cycle) or ``gamma**t`` (``exp_range``).
    """
    _check_t(t)
    _check_positive("step_size_up", step_size_up)
    down = step_size_up if step_size_down is None else step_size_down
    total = step_size_up + down
    ratio = step_size_up / total
    cycle = math.floor(1 + t / total)
    x = 1.0 + t / total - cycle
    h = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = 1 / (2.0 ** (cycle - 1))
    elif mode == "exp_range":
        scale = gamma**t
    else:
        raise ValueError(f"mode must be 'triangular', 'triangular2' or 'exp_range', got {mode!r}")
    return base_lr + (max_lr - base_lr) * h * scale


def _anneal(start: float, end: float, pct: float, strategy: str) -> float:
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def one_cycle(
    t: int,
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> float:
    """Smith's one-cycle policy, as torch's OneCycleLR (the LR part; momentum is not cycled).

    With ``a = max_lr / div_factor`` and ``z = a / final_div_factor``, the LR anneals (cosine or
    linear) ``a -> max_lr`` over the first ``pct_start * total_steps - 1`` steps, then
    ``max_lr -> z`` until step ``total_steps - 1``. With ``three_phase``: ``a -> max_lr``,
    ``max_lr -> a`` (symmetric), then ``a -> z``. Phase boundaries are torch's
    (``end_step = pct_start * total_steps - 1`` etc.), so the sequences agree exactly.
    Note: in :class:`FunctionScheduler` the second argument is the group's LR, so create the
    optimizer with ``lr=max_lr``.
    """
    _check_t(t)
    _check_positive("total_steps", total_steps)
    # t == total_steps is allowed, as in torch: the loop's last scheduler.step() after the final
    # optimizer step computes an LR that is never used
    if t > total_steps:
        raise ValueError(f"one_cycle is defined for t <= total_steps={total_steps}, got {t}")
    if not 0.0 <= pct_start <= 1.0:
        raise ValueError(f"pct_start must be in [0, 1], got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    initial = max_lr / div_factor
    final = initial / final_div_factor
    if three_phase and 2 * pct_start * total_steps - 2 > total_steps - 1:
        # torch accepts this and returns phases out of order (LRs outside [min, max])
        raise ValueError(
            f"three_phase needs pct_start <= (total_steps + 1) / (2 * total_steps), got {pct_start}"
        )
    if three_phase:
        phases = [
            (pct_start * total_steps - 1, initial, max_lr),
            (2 * pct_start * total_steps - 2, max_lr, initial),
            (total_steps - 1, initial, final),
        ]
    else:
        phases = [(pct_start * total_steps - 1, initial, max_lr), (total_steps - 1, max_lr, final)]
    start_step = 0.0
    for i, (end_step, lo, hi) in enumerate(phases):
        if t <= end_step or i == len(phases) - 1:
            # a phase of zero length (pct_start * total_steps == 1) is already at its end;
            # torch raises ZeroDivisionError here
            span = end_step - start_step
            pct = (t - start_step) / span if span != 0 else 1.0
            return _anneal(lo, hi, pct, anneal_strategy)
        start_step = end_step
    raise AssertionError("unreachable")  # pragma: no cover


def _sgdr_position(t: int, T_0: int, T_mult: int) -> tuple[int, int]:
    """(T_cur, T_i): steps since the last restart and the current cycle length."""
    T_i = T_0
    while t >= T_i:  # integer walk over the cycles: exact, unlike the log() closed form
        t -= T_i
        T_i *= T_mult
    return t, T_i


def cosine_warm_restarts(
    t: int, lr0: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> float:
    """SGDR (Loshchilov & Hutter), as torch's CosineAnnealingWarmRestarts::

        lr(t) = eta_min + (lr0 - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    where ``T_cur`` counts steps since the last restart and the i-th cycle lasts
    ``T_i = T_0 * T_mult**i`` steps.
    """
    _check_t(t)
    _check_positive("T_0", T_0)
    if not (isinstance(T_mult, int) and T_mult >= 1):
        raise ValueError(f"T_mult must be an integer >= 1, got {T_mult!r}")
    T_cur, T_i = _sgdr_position(t, T_0, T_mult)
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2


def sgdr_cycle_ends(n_steps: int, T_0: int, T_mult: int = 1) -> list[int]:
    """The steps ``t < n_steps`` that end an SGDR cycle (lowest LR; where snapshots are taken)."""
    ends, end, T_i = [], T_0 - 1, T_0
    while end < n_steps:
        ends.append(end)
        T_i *= T_mult
        end += T_i
    return ends


class FunctionScheduler(torch.optim.lr_scheduler.LRScheduler):
    """An ``LRScheduler`` that sets each group's LR to ``fn(t, base_lr)``.

    ``t`` is the number of ``.step()`` calls so far (``last_epoch``); ``base_lr`` is the
    group's ``initial_lr`` (its LR when the scheduler was created). The LR is recomputed from
    the closed form at every step, so it never drifts the way chained multiplicative updates can.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, fn: Schedule, last_epoch: int = -1
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(t, lr0), got {fn!r}")
        self.fn = fn
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """``[fn(last_epoch, base_lr) for each param group]``."""
        return [self.fn(self.last_epoch, base_lr) for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler state without ``fn`` (functions are not serializable state)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "fn")}


class NewBobPlateau:
    """Reduce-on-plateau ("new-bob" halving): multiply the LR by ``factor`` when the
    validation metric stops improving by at least ``threshold``.

    Rule, after each epoch's ``step(metric)`` (``mode="min"``)::

        ref = previous metric if compare_to == "previous" else best metric so far
        improved = metric < ref - threshold              (threshold_mode="abs")
                   metric < ref * (1 - threshold)        (threshold_mode="rel")
        bad = 0 if improved else bad + 1
        if bad > patience:  lr = max(lr * factor, min_lr);  bad = 0

    ``compare_to="previous"`` is the classic new-bob rule (improvement over the last epoch);
    ``compare_to="best"`` is torch's ReduceLROnPlateau (with ``cooldown=0``). With
    ``optimizer`` given, every param group's LR is set to the scaled value of its own LR.
    """

    def __init__(
        self,
        lr0: float | None = None,
        *,
        factor: float = 0.5,
        threshold: float = 0.0,
        threshold_mode: str = "abs",
        mode: str = "min",
        compare_to: str = "previous",
        patience: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        if threshold_mode not in ("abs", "rel"):
            raise ValueError(f"threshold_mode must be 'abs' or 'rel', got {threshold_mode!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if compare_to not in ("previous", "best"):
            raise ValueError(f"compare_to must be 'previous' or 'best', got {compare_to!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        if optimizer is None and lr0 is None:
            raise ValueError("give lr0, an optimizer, or both")
        self.optimizer = optimizer
        if optimizer is not None:
            self.lrs = [float(g["lr"]) for g in optimizer.param_groups]
        else:
            self.lrs = [float(lr0)]  # type: ignore[arg-type]
        if lr0 is not None and optimizer is not None:
            self.lrs = [float(lr0)] * len(self.lrs)
            self._apply()
        self.factor = factor
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode = mode
        self.compare_to = compare_to
        self.patience = patience
        self.min_lr = min_lr
        self.eps = eps
        self.reference: float | None = None
        self.num_bad_epochs = 0
        self.history: list[float] = []

    @property
    def lr(self) -> float:
        """The current LR (of the first param group)."""
        return self.lrs[0]

    def _improved(self, metric: float) -> bool:
        ref = self.reference
        if ref is None:
            return True
        sign = 1.0 if self.mode == "min" else -1.0
        if self.threshold_mode == "abs":
            return sign * metric < sign * ref - self.threshold
        rel = 1.0 - self.threshold if self.mode == "min" else 1.0 + self.threshold
        return sign * metric < sign * ref * rel

    def _apply(self) -> None:
        if self.optimizer is not None:
            for group, lr in zip(self.optimizer.param_groups, self.lrs):
                group["lr"] = lr

    def step(self, metric: float) -> float:
        """Record one epoch's validation metric; returns the (possibly reduced) LR."""
        metric = float(metric)
        improved = self._improved(metric)
        if self.compare_to == "previous" or improved:
            self.reference = metric
        self.num_bad_epochs = 0 if improved else self.num_bad_epochs + 1
        if self.num_bad_epochs > self.patience:
            new = [max(lr * self.factor, self.min_lr) for lr in self.lrs]
            # like torch: ignore reductions smaller than eps (already at min_lr)
            self.lrs = [n if lr - n > self.eps else lr for lr, n in zip(self.lrs, new)]
            self.num_bad_epochs = 0
            self._apply()
        self.history.append(self.lr)
        return self.lr
