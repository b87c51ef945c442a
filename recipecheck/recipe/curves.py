"""LR schedules: each scheduler's arguments, where it is stepped, and its curve's endpoints
from the closed forms.
"""

from __future__ import annotations

import math
from typing import Any

import libcst as cst

from recipecheck.program.model import Construction, ProgramModel, XLoop
from recipecheck.program.schedules import counts_steps, is_epoch_scheduler
from recipecheck.recipe.facts import Recipe, ScheduleFacts
from recipecheck.recipe.evaluate import (
    _Src, _Unknown, _eval_expr, _numbers, _sample, _where, fmt, lr_function, num,
)


_DEFAULTS = {
    "StepLR": {"gamma": 0.1},
    "MultiStepLR": {"gamma": 0.1},
    "CosineAnnealingLR": {"eta_min": 0.0},
    "LinearLR": {"start_factor": 1 / 3, "end_factor": 1.0, "total_iters": 5},
    "ConstantLR": {"factor": 1 / 3, "total_iters": 5},
    "PolynomialLR": {"total_iters": 5, "power": 1.0},
    "OneCycleLR": {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4},
    "ReduceLROnPlateau": {"factor": 0.1, "patience": 10},
    "CosineAnnealingWarmRestarts": {"T_mult": 1, "eta_min": 0.0},
}


_POS = {
    "StepLR": ("step_size", "gamma"), "MultiStepLR": ("milestones", "gamma"),
    "ExponentialLR": ("gamma",), "CosineAnnealingLR": ("T_max", "eta_min"),
    "LinearLR": ("start_factor", "end_factor", "total_iters"), "ConstantLR": ("factor", "total_iters"),
    "PolynomialLR": ("total_iters", "power"),
    "OneCycleLR": ("max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start"),
    "ReduceLROnPlateau": ("mode", "factor", "patience"),
    "CosineAnnealingWarmRestarts": ("T_0", "T_mult", "eta_min"),
    "LambdaLR": ("lr_lambda",),
    "get_linear_schedule_with_warmup": ("num_warmup_steps", "num_training_steps"),
    "get_cosine_schedule_with_warmup": ("num_warmup_steps", "num_training_steps"),
    "get_constant_schedule_with_warmup": ("num_warmup_steps",),
    "get_polynomial_decay_schedule_with_warmup": ("num_warmup_steps", "num_training_steps"),
}


def _sched_args(p: ProgramModel, s: _Src, c: Construction) -> tuple[dict[str, Any], dict[str, str]]:
    """Resolved numbers (None when unknown) and the source text of each argument."""
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    names = _POS.get(c.name, ())
    for i, key in enumerate(names):
        expr = c.arg(key, i + 1)
        if expr is None:
            continue
        texts[key] = s.code(expr)
        if key == "lr_lambda":
            values[key] = None
        elif key == "milestones":
            values[key] = _numbers(p, c.function, expr)
        elif key == "mode":
            values[key] = expr.evaluated_value if isinstance(expr, cst.SimpleString) else None
        else:
            values[key] = num(p, c.function, expr)
    for a in c.node.args:  # keywords outside the positional table
        if a.keyword is not None and a.keyword.value not in texts and a.keyword.value != "optimizer":
            texts[a.keyword.value] = s.code(a.value)
            values[a.keyword.value] = num(p, c.function, a.value)
    return values, texts


def _shown(value, text: str) -> str:
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return text


def _lr_at(name: str, a: dict[str, Any], lr0: float, t: float) -> float | None:
    d = {**_DEFAULTS.get(name, {}), **{k: v for k, v in a.items() if v is not None}}
    try:
        if name == "StepLR":
            return lr0 * d["gamma"] ** (t // d["step_size"])
        if name == "MultiStepLR":
            ms = d.get("milestones")
            if ms is None or any(m is None for m in ms):
                return None
            return lr0 * d["gamma"] ** sum(1 for m in ms if m <= t)
        if name == "ExponentialLR":
            return lr0 * d["gamma"] ** t
        if name == "CosineAnnealingLR":
            return d["eta_min"] + (lr0 - d["eta_min"]) * (1 + math.cos(math.pi * t / d["T_max"])) / 2
        if name == "LinearLR":
            frac = min(t, d["total_iters"]) / d["total_iters"]
            return lr0 * (d["start_factor"] + (d["end_factor"] - d["start_factor"]) * frac)
        if name == "ConstantLR":
            return lr0 * (d["factor"] if t < d["total_iters"] else 1.0)
        if name == "PolynomialLR":
            return lr0 * (1 - min(t, d["total_iters"]) / d["total_iters"]) ** d["power"]
    except (KeyError, TypeError, ZeroDivisionError, OverflowError):
        return None
    return None


def _compose(p, s, c, sf: ScheduleFacts, parts: list[Construction], lr0, recipe: Recipe) -> None:
    """SequentialLR([warmup, main], milestones): one line, the parts in order, the endpoints of
    the first and the last part, each evaluated as if stepped where the whole is stepped."""
    texts = []
    facts = []
    for part in parts:
        pf = _schedule(p, s, part, lr0, recipe.epochs, recipe.iterations)
        # the parts are stepped through the parent: describe them with the parent's stepping
        head = pf.description.split(" (never stepped)")[0].split(" per ")[0]
        if pf.stepped is None:
            sub = _schedule_as(p, s, part, lr0, recipe, sf.stepped)
            if sub is not None:
                pf = sub
        texts.append(head)
        facts.append(pf)
        if pf.warmup and sf.warmup is None:
            sf.warmup = pf.warmup
    ms = c.arg("milestones", 2)
    joined = " then ".join(texts)
    sf.lr_start = facts[0].lr_start if facts else lr0
    sf.lr_peak = lr0
    sf.lr_end = facts[-1].lr_end if facts else None
    curve = ""
    if sf.lr_start is not None and sf.lr_end is not None:
        curve = f": {fmt(sf.lr_start)} -> {fmt(lr0)} -> {fmt(sf.lr_end)}"
    elif sf.lr_start is not None:
        curve = f": starts at {fmt(sf.lr_start)}"
    at = f" (switch at milestones={s.code(ms)})" if ms is not None and c.name == "SequentialLR" else ""
    sf.description = f"{c.name}: {joined}{at} {sf.stepped or '(never stepped)'}{curve}"


def _schedule_as(p, s, c, lr0, recipe: Recipe, where: str | None) -> ScheduleFacts | None:
    """Facts for a scheduler stepped by a parent (SequentialLR) stepped `where`."""
    if where is None:
        return None
    values, texts = _sched_args(p, s, c)
    f = ScheduleFacts(name=c.name, line=s.line(c.node), args={k: values.get(k) for k in texts},
                      stepped=where, steps=None, lr_start=lr0)
    if c.name == "LinearLR":
        sfac = values.get("start_factor") or _DEFAULTS["LinearLR"]["start_factor"]
        efac = values.get("end_factor") or _DEFAULTS["LinearLR"]["end_factor"]
        if lr0 is not None:
            f.lr_start = lr0 * sfac
            f.lr_end = lr0 * efac
        if sfac < efac:
            unit = "epochs" if where == "per epoch" else "steps"
            f.warmup = f"linear warmup over {_shown(values.get('total_iters'), texts.get('total_iters', '5'))} {unit}"
    elif c.name in ("CosineAnnealingLR", "PolynomialLR"):
        first = _POS[c.name][0]
        if where != "per epoch" and counts_steps(c.arg(first, 1), p, c) or \
                (where == "per epoch" and recipe.epochs is not None):
            f.lr_end = (values.get("eta_min") or 0.0) if c.name == "CosineAnnealingLR" else 0.0
    elif c.name in ("StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR") and lr0 is not None:
        n = recipe.epochs if where == "per epoch" else None
        if n:
            f.lr_end = _lr_at(c.name, values, lr0, n - 1)
    return f


def _lambda_schedule(p, s, c, facts, head, where, lr0, epochs, iterations) -> ScheduleFacts:
    """LambdaLR: evaluate a `lambda step: ...` or a local `def f(step)` on a few steps."""
    fn_expr = c.arg("lr_lambda", 1)
    factor = None
    if isinstance(fn_expr, cst.Lambda) and len(fn_expr.params.params) == 1:
        param = fn_expr.params.params[0].name.value
        body = fn_expr.body

        def factor(t):  # noqa: F811 - the lambda's body
            try:
                return _eval_expr(p, c.function, {param: float(t)}, body)
            except (_Unknown, RecursionError):
                return None
    elif isinstance(fn_expr, cst.Name):
        target = p._resolve_callee(c.function, fn_expr.value)
        if target is not None:
            factor = lr_function(p, target)
    n = epochs if where == "per epoch" else (iterations if where == "per iteration" else None)
    facts.lr_start = lr0
    curve = ""
    if factor is not None and lr0 is not None:
        horizon = int(min(n, 1_000_000)) if n else 100_000  # unknown run length: a long look
        sampled = _sample(factor, horizon)
        if sampled is not None:
            samples, warm, peak = sampled
            start = lr0 * samples[0][1]
            facts.lr_start, facts.lr_peak = start, lr0 * peak
            curve = f": {fmt(start)}"
            if peak > samples[0][1] * 1.0001 and warm > 0:
                facts.warmup = f"LambdaLR warmup to {fmt(lr0 * peak)} over {warm} steps"
                curve += f" -> {fmt(lr0 * peak)} (step {warm})"
            if n:
                facts.lr_end = lr0 * samples[-1][1]
                curve += f" -> {fmt(facts.lr_end)}"
    elif lr0 is not None:
        curve = f": starts at {fmt(lr0)}"
    span = f" for {fmt(n)} {'epochs' if where == 'per epoch' else 'steps'}" if n else ""
    facts.description = f"{head} {where or '(never stepped)'}{span}{curve}"
    return facts


def _horizon_of(name: str, a: dict[str, Any]) -> float | None:
    """The scheduler's own horizon, used when the run length is not known."""
    for key in ("T_max", "total_iters", "num_training_steps", "total_steps"):
        if a.get(key) is not None and name != "ConstantLR":
            return a[key]
    return None


def _where_stepped(p: ProgramModel, c: Construction) -> tuple[str | None, XLoop | None]:
    found: list[tuple[str, XLoop]] = []
    for xl in p.all_xloops():
        for e in xl.direct():
            ev = e.event
            if ev.kind != "step" or not p.is_scheduler_step(ev):
                continue
            if not any(o.node is c.node for o in p.schedulers_of(ev)):
                continue
            found.append((_where(p, xl, e.conds), xl))
    if not found:
        return None, None
    return found[0]


def _schedule(p: ProgramModel, s: _Src, c: Construction, lr0: float | None,
              epochs: float | None, iterations: float | None) -> ScheduleFacts:
    name = c.name
    values, texts = _sched_args(p, s, c)
    where, xl = _where_stepped(p, c)
    shown = ", ".join(f"{k}={_shown(values.get(k), texts[k])}" for k in texts)
    facts = ScheduleFacts(name=name, line=s.line(c.node), args={k: values.get(k) for k in texts},
                          stepped=where, steps=None)
    head = f"{name}({shown})"
    if c.qualname.startswith("transformers"):
        where = where or "per optimizer step"
        facts.stepped = where
        facts.lr_start = 0.0 if "warmup" in name else lr0
        facts.lr_peak = lr0
        facts.lr_end = 0.0 if ("linear" in name or "cosine" in name or "polynomial" in name) else lr0
        if "warmup" in name:
            facts.warmup = ("linear warmup over "
                            f"{_shown(values.get('num_warmup_steps'), texts.get('num_warmup_steps', '?'))} steps")
        total = texts.get("num_training_steps")
        over = f" over {total} steps" if total else ""
        facts.description = (f"{head} {where}{over}: {fmt(facts.lr_start)} -> {fmt(lr0)} -> "
                             f"{fmt(facts.lr_end)}")
        return facts
    if name == "OneCycleLR":
        d = {**_DEFAULTS["OneCycleLR"], **{k: v for k, v in values.items() if v is not None}}
        mx = d.get("max_lr")
        if mx is not None:
            facts.lr_start = mx / d["div_factor"]
            facts.lr_peak = mx
            facts.lr_end = facts.lr_start / d["final_div_factor"]
            facts.warmup = f"one-cycle warmup over the first {fmt(d['pct_start'] * 100)}% of the steps"
            facts.description = (f"{head} {where or 'stepped ?'}: {fmt(facts.lr_start)} -> "
                                 f"{fmt(mx)} (at {fmt(d['pct_start'] * 100)}%) -> {fmt(facts.lr_end)}")
        else:
            facts.description = f"{head} {where or '(never stepped)'}"
        return facts
    if name == "ReduceLROnPlateau":
        d = {**_DEFAULTS[name], **{k: v for k, v in values.items() if v is not None}}
        facts.lr_start = lr0
        start = fmt(lr0) if lr0 is not None else "the optimizer's lr"
        facts.description = (f"{head} {where or ''}: starts at {start}, multiplied by "
                             f"{fmt(d['factor'])} after {fmt(d['patience'])} epochs without improvement"
                             ).replace("  ", " ")
        return facts
    if name == "LambdaLR":
        return _lambda_schedule(p, s, c, facts, head, where, lr0, epochs, iterations)
    # closed forms: the LR in effect during the last scheduler step of the run
    n = None
    unit = "steps"
    if where == "per epoch":
        n, unit = epochs, "epochs"
    elif where in ("per batch", "per optimizer step", "per iteration"):
        n = iterations if where == "per iteration" else None
        if n is None and counts_steps(c.arg(_POS.get(name, ("",))[0], 1), p, c):
            n = _horizon_of(name, values)
        if n is None and name == "CosineAnnealingLR" and epochs is None:
            n = _horizon_of(name, values)
    facts.steps = int(n) if n is not None else None
    facts.lr_start = lr0
    if lr0 is not None and n:
        pts = [_lr_at(name, values, lr0, t) for t in range(0, int(min(n, 100000)))]
        if all(v is not None for v in pts) and pts:
            facts.lr_end = pts[-1]
            facts.lr_peak = max(pts)
            facts.lr_start = pts[0]
    elif lr0 is not None and where in ("per batch", "per optimizer step", "per iteration") and \
            name in ("CosineAnnealingLR", "PolynomialLR") and \
            counts_steps(c.arg(_POS[name][0], 1), p, c):
        # the horizon is the run's length in steps: the schedule ends at its floor
        facts.lr_end = values.get("eta_min") or 0.0 if name == "CosineAnnealingLR" else 0.0
        span_text = texts.get(_POS[name][0], "?")
        facts.description = (f"{head} {where} over {span_text} steps: {fmt(lr0)} -> "
                             f"{fmt(facts.lr_end)}")
        return facts
    if name == "LinearLR" and values.get("start_factor", _DEFAULTS[name]["start_factor"]) is not None and \
            (values.get("start_factor") or _DEFAULTS[name]["start_factor"]) < \
            (values.get("end_factor") or _DEFAULTS[name]["end_factor"]):
        facts.warmup = f"linear warmup over {texts.get('total_iters', '5')} {unit}"
    span = f" for {fmt(n)} {unit}" if n else ""
    curve = ""
    if facts.lr_start is not None and facts.lr_end is not None:
        curve = f": {fmt(facts.lr_start)} -> {fmt(facts.lr_end)}"
    elif lr0 is not None:
        curve = f": starts at {fmt(lr0)}"
    facts.description = f"{head} {where or '(never stepped)'}{span}{curve}"
    if where == "per batch" and is_epoch_scheduler(p, c):
        facts.description += (" (its horizon is in epochs: stepped per batch it decays len(loader) "
                              "times too fast, see RC201)")
    return facts
