"""Small helpers for the runtime monitor: sampling schedules and bounded series.

Nothing here touches the global RNG or synchronizes with a device.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Optional


# --------------------------------------------------------------------------------------------
# schedules: a schedule is a predicate ``schedule(step) -> bool`` over 1-based optimizer steps
# --------------------------------------------------------------------------------------------


class Schedule:
    """Base class of sampling schedules; ``a | b`` fires when either does."""

    def __call__(self, step: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __or__(self, other: "Schedule") -> "Schedule":
        return AnyOf(self, other)

    def steps_in(self, start: int, end: int) -> list:
        """The steps in [start, end) where this schedule fires (subclasses compute it directly)."""
        return [s for s in range(start, end) if self(s)]

    def first_after(self, step: int, horizon: int = 1 << 20) -> Optional[int]:
        """The first step > ``step`` this schedule fires at (None within ``horizon``)."""
        for s in range(step + 1, step + horizon):
            if self(s):
                return s
        return None


class Always(Schedule):
    def __call__(self, step: int) -> bool:
        return True

    def steps_in(self, start: int, end: int) -> list:
        return list(range(max(start, 1), end))

    def __repr__(self) -> str:
        return "Always()"


class Never(Schedule):
    def __call__(self, step: int) -> bool:
        return False

    def steps_in(self, start: int, end: int) -> list:
        return [] if type(self) is Never else Schedule.steps_in(self, start, end)

    def __repr__(self) -> str:
        return "Never()"


class Every(Schedule):
    """Every ``n``-th step (n, 2n, 3n, ...)."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("Every(n) needs n >= 1")
        self.n = int(n)

    def __call__(self, step: int) -> bool:
        return step % self.n == 0

    def steps_in(self, start: int, end: int) -> list:
        first = max(1, -(-start // self.n)) * self.n
        return list(range(first, end, self.n))

    def __repr__(self) -> str:
        return f"Every({self.n})"


class FirstK(Schedule):
    """The first ``k`` steps (1..k)."""

    def __init__(self, k: int):
        self.k = int(k)

    def __call__(self, step: int) -> bool:
        return 1 <= step <= self.k

    def steps_in(self, start: int, end: int) -> list:
        return list(range(max(start, 1), min(end, self.k + 1)))

    def __repr__(self) -> str:
        return f"FirstK({self.k})"


class LogSpaced(Schedule):
    """Steps 1, 2, 4, 8, ... (powers of two), a dense start and a sparse tail."""

    def __call__(self, step: int) -> bool:
        return step >= 1 and (step & (step - 1)) == 0

    def steps_in(self, start: int, end: int) -> list:
        out, p = [], 1
        while p < end:
            if p >= start:
                out.append(p)
            p <<= 1
        return out

    def __repr__(self) -> str:
        return "LogSpaced()"


class AnyOf(Schedule):
    def __init__(self, *parts: Schedule):
        flat: list[Schedule] = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, AnyOf) else [p])
        self.parts = tuple(flat)

    def __call__(self, step: int) -> bool:
        for p in self.parts:
            if p(step):
                return True
        return False

    def steps_in(self, start: int, end: int) -> list:
        out: set = set()
        for p in self.parts:
            out.update(p.steps_in(start, end))
        return sorted(out)

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.parts))


# --------------------------------------------------------------------------------------------
# bounded series
# --------------------------------------------------------------------------------------------


class BoundedSeries:
    """A (step, value) series that never holds more than ``max_points`` points.

    When full, every other point is dropped and only every ``stride``-th appended point is
    kept from then on (stride doubles), so a 10k- or 10M-step run costs the same memory and
    the kept points stay evenly spread over the whole run.
    """

    __slots__ = ("steps", "values", "max_points", "stride", "_seen")

    def __init__(self, max_points: int = 1024):
        self.steps: list[int] = []
        self.values: list[float] = []
        self.max_points = max(4, int(max_points))
        self.stride = 1
        self._seen = 0

    def append(self, step: int, value: float) -> None:
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.steps.append(int(step))
        self.values.append(value)
        if len(self.steps) >= self.max_points:
            del self.steps[1::2]
            del self.values[1::2]
            self.stride *= 2

    def extend(self, steps: list, values: list) -> None:
        """``append`` for many points (one call per batched read instead of one per point)."""
        if self.stride == 1 and len(self.steps) + len(steps) < self.max_points:
            self._seen += len(steps)
            self.steps.extend(steps)
            self.values.extend(values)
            return
        for st, v in zip(steps, values):
            self.append(st, v)

    def __len__(self) -> int:
        return len(self.steps)

    def to_json(self) -> dict:
        return {"step": list(self.steps), "value": [_finite_or_none(v) for v in self.values]}


def _finite_or_none(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class SeriesStore:
    """All series of a run: bounded step/value series plus free-form entries (histograms)."""

    def __init__(self, max_points: int = 1024, max_series: int = 512):
        self.max_points = max_points
        self.max_series = max_series
        self._series: dict[str, BoundedSeries] = {}
        self._other: dict[str, dict] = {}

    def append(self, name: str, step: int, value: float) -> None:
        s = self._series.get(name)
        if s is None:
            if len(self._series) >= self.max_series:
                return  # bounded number of series too
            s = self._series[name] = BoundedSeries(self.max_points)
        s.append(step, value)

    def extend(self, name: str, steps: list, values: list) -> None:
        s = self._series.get(name)
        if s is None:
            if len(self._series) >= self.max_series:
                return
            s = self._series[name] = BoundedSeries(self.max_points)
        s.extend(steps, values)

    def set(self, name: str, data: dict) -> None:
        self._other[name] = data

    def get(self, name: str):
        if name in self._series:
            return self._series[name]
        return self._other.get(name)

    def names(self) -> list[str]:
        return list(self._series) + list(self._other)

    def __contains__(self, name: str) -> bool:
        return name in self._series or name in self._other

    def to_json(self) -> dict:
        out = {name: s.to_json() for name, s in self._series.items()}
        out.update(self._other)
        return out

    def __getitem__(self, name: str) -> dict:
        if name in self._series:
            return self._series[name].to_json()
        return self._other[name]

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._series) + len(self._other)


def median(values: Iterable[float]) -> float:
    v = sorted(x for x in values if x is not None and math.isfinite(x))
    if not v:
        return float("nan")
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def fmt_sci(x: float) -> str:
    """1 significant digit scientific formatting: 3e-05 -> '3e-5'."""
    if x == 0 or not math.isfinite(x):
        return repr(x)
    s = f"{x:.0e}"
    mant, exp = s.split("e")
    return f"{mant}e{int(exp)}"


def as_schedule(obj) -> Schedule:
    if isinstance(obj, Schedule):
        return obj
    if callable(obj):
        return _FnSchedule(obj)
    raise TypeError(f"not a schedule: {obj!r}")


class _FnSchedule(Schedule):
    def __init__(self, fn: Callable[[int], bool]):
        self.fn = fn

    def __call__(self, step: int) -> bool:
        return bool(self.fn(step))
