"""The experiment record, its result, and the catalog that ``recipecheck validate`` runs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union

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
    # filled by Experiment.run_seeds: one {"seed", "buggy", "fixed", "verdict"} per seed (headline values)
    per_seed: list[dict[str, Any]] = field(default_factory=list)

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
    metric: str = ""  # the headline in words, for the manuals ("accuracy after 200 SGD steps")

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

    def run_seeds(self, seeds: Sequence[int], device: Union[str, torch.device] = "cpu") -> Result:
        """Run on every seed and aggregate: numeric metrics are averaged, ``per_seed`` keeps each
        seed's headline values and verdict, and the verdict is ``pass`` only when the claim held
        on every seed (a single seed is never evidence on its own; the spread is reported)."""
        seeds = list(seeds)
        if len(seeds) == 1:
            res = self.run(seeds[0], device)
            res.per_seed = [_seed_record(self, seeds[0], res)]
            return res
        runs = [(s, self.run(s, device)) for s in seeds]
        if any(r.verdict == "skip" for _, r in runs):
            return next(r for _, r in runs if r.verdict == "skip")
        first = runs[0][1]
        per_seed = [_seed_record(self, s, r) for s, r in runs]
        held = sum(r.passed for _, r in runs)
        monitor = None
        if all(r.monitor is not None for _, r in runs):
            # conservative: a code counts as fired on the buggy run only if every seed fired it,
            # and as fired on the fixed run if any seed did
            buggy = set.intersection(*(set(r.monitor.get("buggy", [])) for _, r in runs))
            fixed = set.union(*(set(r.monitor.get("fixed", [])) for _, r in runs))
            monitor = {"buggy": sorted(buggy), "fixed": sorted(fixed)}
        agg = Result(
            _mean_metrics([r.buggy for _, r in runs]),
            _mean_metrics([r.fixed for _, r in runs]),
            "pass" if held == len(runs) else ("weak" if 2 * held > len(runs) else "fail"),
            f"{spread_text(self, per_seed)}. Seed {seeds[0]}: {first.details}",
            first.series,
            monitor,
            sum(r.seconds for _, r in runs),
            per_seed,
        )
        return agg

    def summary(self, result: Result) -> str:
        """One line of evidence: the headline metric buggy vs fixed, and the verdict."""
        if len(result.per_seed) > 1:
            b, f = (_spread(result.per_seed, k) for k in ("buggy", "fixed"))
            held = sum(r["verdict"] == "pass" for r in result.per_seed)
            how = "mean [min, max] over" if _all_numeric(result.per_seed) else "on each of"
            return (f"{self.headline}: {b} ({self.buggy_label}) vs {f} ({self.fixed_label}), "
                    f"{how} {len(result.per_seed)} seeds, held on {held} [{result.verdict}]")
        b = format_value(result.buggy.get(self.headline))
        f = format_value(result.fixed.get(self.headline))
        return f"{self.headline}: {b} ({self.buggy_label}) vs {f} ({self.fixed_label}) [{result.verdict}]"

    def manual_sentence(self, result: Result) -> str:
        """The evidence sentence quoted in the rule's manual (generated; see ``manuals.py``)."""
        seeds = [r["seed"] for r in result.per_seed] or [0]
        what = self.metric or f"`{self.headline}`"
        if len(result.per_seed) > 1:
            b, f = (_spread(result.per_seed, k) for k in ("buggy", "fixed"))
            held = sum(r["verdict"] == "pass" for r in result.per_seed)
            where = f"seeds {seeds[0]}-{seeds[-1]}"
            how = "mean [min, max]" if _all_numeric(result.per_seed) else "on every seed"
            nums = f"{what}: {b} with {self.buggy_label} vs {f} with {self.fixed_label} ({how})"
            tail = f"the claim held on {held} of {len(seeds)} seeds."
        else:
            where = f"seed {seeds[0]}"
            nums = (f"{what}: {format_value(result.buggy.get(self.headline))} with {self.buggy_label} vs "
                    f"{format_value(result.fixed.get(self.headline))} with {self.fixed_label}")
            tail = "the claim held." if result.passed else "the claim did not hold."
        return f"Measured (`recipecheck validate {self.rule}`, {where}): {nums}; {tail}"


def _seed_record(exp: "Experiment", seed: int, res: Result) -> dict[str, Any]:
    return {"seed": seed, "buggy": res.buggy.get(exp.headline), "fixed": res.fixed.get(exp.headline),
            "verdict": res.verdict}


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mean_metrics(dicts: list[Metrics]) -> Metrics:
    out: Metrics = {}
    for key, v0 in dicts[0].items():
        vals = [d.get(key) for d in dicts]
        if all(_numeric(v) for v in vals):
            finite = [float(v) for v in vals]
            out[key] = sum(finite) / len(finite)
        else:
            out[key] = v0
    return out


def _all_numeric(per_seed: list[dict[str, Any]]) -> bool:
    """Whether a side has numbers on every seed (then shown as mean [min, max])."""
    return any(all(_numeric(r[side]) for r in per_seed) for side in ("buggy", "fixed"))


def _spread(per_seed: list[dict[str, Any]], side: str) -> str:
    vals = [r[side] for r in per_seed]
    if not all(_numeric(v) for v in vals):
        shown = sorted({format_value(v) for v in vals})
        return shown[0] if len(shown) == 1 else "/".join(shown) + " (varies by seed)"
    mean = sum(vals) / len(vals)
    return f"{format_value(mean)} [{format_value(min(vals))}, {format_value(max(vals))}]"


def spread_text(exp: "Experiment", per_seed: list[dict[str, Any]]) -> str:
    """``seeds 0-4: held on 5/5; buggy mean [min, max] vs fixed ...`` for ``details``."""
    seeds = [r["seed"] for r in per_seed]
    held = sum(r["verdict"] == "pass" for r in per_seed)
    how = " (mean [min, max])" if _all_numeric(per_seed) else " (on every seed)"
    return (f"seeds {seeds[0]}-{seeds[-1]}: claim held on {held}/{len(seeds)}; {exp.headline} "
            f"{_spread(per_seed, 'buggy')} vs {_spread(per_seed, 'fixed')}{how}")


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
    metric: str = "",
) -> Callable[[Callable[[int, str], Result]], Experiment]:
    """Register ``fn(seed, device) -> Result`` as an experiment in the catalog."""

    def wrap(fn: Callable[[int, str], Result]) -> Experiment:
        exp = Experiment(rule, claim, fn, headline, buggy_label, fixed_label, slow, tuple(rt_codes), metric)
        _CATALOG.append(exp)
        return exp

    return wrap


def catalog() -> list[Experiment]:
    """Every registered experiment, in catalog order."""
    import importlib

    for module in _MODULES:  # importing a module registers its experiments
        importlib.import_module(f"{__package__}.{module}")
    return sorted(_CATALOG, key=lambda e: (not e.rule.startswith("RC"), e.rule if e.rule.startswith("RC") else ""))


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


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


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
