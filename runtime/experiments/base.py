"""The experiment record, its result, and the catalog that ``recipecheck validate`` runs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

import torch

from ..reference.trainer import single_thread

__all__ = ["Result", "Experiment", "Skipped", "experiment", "catalog", "select", "format_value"]

Metrics = dict[str, Any]


class Skipped(Exception):
    """Raised by an experiment that cannot run here (an optional dependency is missing)."""


@dataclass
class Result:
    """What one experiment measured.

    ``buggy`` and ``fixed`` map metric names to numbers for the two recipes run on the same
    seed; ``verdict`` is ``"pass"`` when the claim held with its margin, ``"fail"`` when it
    did not, ``"skip"`` when the experiment could not run (``details`` says why).
    ``series`` holds curves for plotting: ``{name: {"buggy": [...], "fixed": [...]}}``.
    """

    buggy: Metrics
    fixed: Metrics
    verdict: str
    details: str = ""
    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    monitor: Optional[dict[str, list[str]]] = None  # RT codes seen in the buggy / fixed run
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass
class Experiment:
    """One validated claim: ``rule`` (an RC code or ``"sanity:<name>"``), the ``claim`` in one
    sentence, and ``fn(seed, device) -> Result`` that measures it with an explicit margin.

    ``headline`` names the metric the table shows for the buggy and fixed recipes;
    ``buggy_label``/``fixed_label`` say what the two recipes are.
    """

    rule: str
    claim: str
    fn: Callable[[int, str], Result]
    headline: str
    buggy_label: str = "buggy"
    fixed_label: str = "fixed"
    slow: bool = False
    rt_codes: tuple[str, ...] = ()  # runtime checks the buggy run should trigger (item 7)

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def monitor_codes(self) -> tuple[str, ...]:
        """The declared ``rt_codes`` that a runtime-monitor check implements (RT114/RT115 belong
        to the sanity suite, not to the monitor)."""
        known = runtime_check_codes()
        return tuple(c for c in self.rt_codes if c in known)

    def run(self, seed: int = 0, device: Union[str, torch.device] = "cpu") -> Result:
        """Run the experiment (one intra-op thread, timed); a :class:`Skipped` becomes a ``"skip"`` result."""
        start = time.perf_counter()
        try:
            with single_thread():
                result = self.fn(seed, str(device))
        except Skipped as exc:
            result = Result({}, {}, "skip", str(exc))
        if result.monitor is not None:
            result.details = (result.details + "; " if result.details else "") + monitor_note(self, result.monitor)
        result.seconds = time.perf_counter() - start
        return result

    def summary(self, result: Result) -> str:
        """One line of evidence: the headline metric buggy vs fixed, and the verdict."""
        b = format_value(result.buggy.get(self.headline))
        f = format_value(result.fixed.get(self.headline))
        return f"{self.headline}: {b} ({self.buggy_label}) vs {f} ({self.fixed_label}) [{result.verdict}]"


def runtime_check_codes() -> frozenset[str]:
    """Codes of the runtime monitor's checks (``runtime/checks``)."""
    from ..checks import all_check_classes

    return frozenset(c.code for c in all_check_classes())


def monitor_note(exp: Experiment, monitor: dict[str, list[str]]) -> str:
    """One clause for ``Result.details``: the RT codes the runtime monitor reported on each run."""
    def codes(label: str) -> str:
        return ", ".join(monitor.get(label) or []) or "none"

    expected = ", ".join(exp.monitor_codes) or "none declared"
    return f"runtime monitor: buggy run fired {codes('buggy')}, fixed run fired {codes('fixed')} " \
           f"(expected on the buggy run only: {expected})"


_CATALOG: list[Experiment] = []


def experiment(
    rule: str,
    claim: str,
    headline: str,
    *,
    buggy_label: str = "buggy",
    fixed_label: str = "fixed",
    slow: bool = False,
    rt_codes: Iterable[str] = (),
) -> Callable[[Callable[[int, str], Result]], Experiment]:
    """Register ``fn(seed, device) -> Result`` as an experiment in the catalog."""

    def wrap(fn: Callable[[int, str], Result]) -> Experiment:
        exp = Experiment(rule, claim, fn, headline, buggy_label, fixed_label, slow, tuple(rt_codes))
        _CATALOG.append(exp)
        return exp

    return wrap


def catalog() -> list[Experiment]:
    """Every registered experiment, in catalog order."""
    import importlib

    for module in _MODULES:  # importing a module registers its experiments
        importlib.import_module(f"{__package__}.{module}")
    return list(_CATALOG)


_MODULES = ("rc1xx", "rc2xx", "rc3xx", "rc4xx", "rc5xx", "rc6xx", "rc7xx", "sanity")


def select(codes: Iterable[str] = ()) -> list[Experiment]:
    """Experiments whose rule starts with any of ``codes`` (case-insensitive): ``RC201``,
    ``RC2`` (a block), ``sanity`` or ``sanity:overfit-tiny``. No codes: all of them."""
    codes = [c.strip().lower() for c in codes if c.strip()]
    exps = catalog()
    if not codes:
        return exps
    return [e for e in exps if any(e.rule.lower().startswith(c) for c in codes)]


def verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


def format_value(v: Any) -> str:
    """Compact number formatting for tables: 3 significant digits, scientific when far from 1."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v == 0:
            return "0"
        if 1e-3 <= abs(v) < 1e4:
            return f"{v:.3g}"
        return f"{v:.2e}"
    return str(v)
