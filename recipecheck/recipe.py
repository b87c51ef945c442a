"""`recipecheck recipe train.py`: the training recipe as the program model sees it, plus advice.

The summary is read from the same program model the rules use (one parse, no import of the
script): the optimizer and its hyperparameters, the LR schedule with where it is stepped (per
batch, per optimizer step, per epoch, from the expanded loop view) and the LR curve's endpoints
computed from the literals with the schedulers' closed forms, warmup, batch size, epochs or
iterations, gradient clipping, accumulation, mixed precision, initialization, input
normalization, regularizers and the evaluation protocol. Numbers behind names are resolved by
`recipecheck.program.hparams` (literals, simple variables, argparse defaults, config fields);
anything else is shown as the code says it.

The advice is every finding of every rule (info rules included) ranked by severity, followed by
recipe-level observations that no single rule states.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Callable

import libcst as cst

from recipecheck.program.nodes import call_arg

from recipecheck.program.nodes import iter_children

from recipecheck.program import hparams as hp
from recipecheck.program import torchnames as tn
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import Construction, FunctionInfo, ProgramModel, XLoop, build_program
from recipecheck.program.schedules import counts_steps, is_epoch_scheduler

# --------------------------------------------------------------------------- records


@dataclass
class OptimizerFacts:
    name: str
    line: int
    target: str | None
    lr: float | None
    lr_text: str | None
    lr_is_default: bool = False
    momentum: float | None = None
    nesterov: bool | None = None
    betas: list[float | None] | None = None
    eps: float | None = None
    weight_decay: float | None = None
    param_groups: int = 1
    no_decay_group: bool = False
    group_weight_decays: list[float | None] = field(default_factory=list)
    cell: int | None = None  # notebooks: the cell, and `line` is the line within it


@dataclass
class ScheduleFacts:
    name: str
    line: int
    args: dict[str, Any]
    stepped: str | None  # per batch | per optimizer step | per epoch | per iteration | None
    steps: int | None  # scheduler.step() calls over the run, when known
    lr_start: float | None = None
    lr_peak: float | None = None
    lr_end: float | None = None
    warmup: str | None = None
    description: str = ""
    cell: int | None = None


@dataclass
class Advice:
    rank: int
    code: str | None
    severity: str
    title: str
    message: str
    line: int | None
    cell: int | None = None
    source: str = "rule"  # rule | recipe


@dataclass
class Recipe:
    path: str
    parsed: bool = True
    optimizers: list[OptimizerFacts] = field(default_factory=list)
    manual_update: str | None = None
    schedules: list[ScheduleFacts] = field(default_factory=list)
    manual_lr: list[str] = field(default_factory=list)
    warmup: str | None = None
    batch_size: float | None = None
    batch_size_text: str | None = None
    epochs: float | None = None
    epochs_text: str | None = None
    iterations: float | None = None
    grad_clip: list[str] = field(default_factory=list)
    accumulation_steps: float | None = None
    accumulation_text: str | None = None
    amp: list[str] = field(default_factory=list)
    initialization: list[str] = field(default_factory=list)
    input_normalization: list[str] = field(default_factory=list)
    regularization: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    advice: list[Advice] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return _rounded(asdict(self))


def _rounded(obj):
    """Floats to 12 significant digits, so 0.1 * 0.1 ** 2 reads 0.001 in JSON."""
    if isinstance(obj, float):
        return float(f"{obj:.12g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- helpers


def fmt(v: float | None) -> str:
    """A number as a person writes it: 0.1, 0.001, 1e-05, 6e-4 -> 0.0006, 90."""
    if v is None:
        return "?"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    if 1e-4 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.3g}"


class _Src:
    def __init__(self, module: cst.Module, program: ProgramModel, source: str) -> None:
        from recipecheck.engine import _Positions

        self.module = module
        self.p = program
        self.source = source
        self._positions = _Positions(module, source)
        self._lines: dict[int, int] = {}

    def code(self, node: cst.CSTNode | None) -> str:
        if node is None:
            return ""
        return " ".join(self.module.code_for_node(node).split())

    def line(self, node: cst.CSTNode) -> int:
        key = id(node)
        if key not in self._lines:
            try:
                self._lines[key] = self._positions.of(node)[0]
            except Exception:
                self._lines[key] = 0
        return self._lines[key]




def _bool(expr) -> bool | None:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value == "True"
    return None


def _callers_args(p: ProgramModel, f: FunctionInfo | None, expr):
    """For a parameter of `f` that is never rebound: the (caller, argument) pairs passed to it."""
    if f is None or not isinstance(expr, cst.Name) or expr.value not in f.params or \
            f.bindings(expr.value):
        return []
    found = p._param_args.get((f.key, expr.value), [])
    if found or f.cls is None or not isinstance(f.node, cst.FunctionDef):
        return found
    # methods reached through an instance the model could not resolve (`GPT().to(device)`),
    # and constructors: `Net(...)` passes its arguments to `Net.__init__`
    params = [x for x in f.params if x not in ("self", "cls")]
    out = []
    for cs in p.calls:
        d = cs.dotted or ""
        if not ((f.name == "__init__" and d.rsplit(".", 1)[-1] == f.cls.name) or
                (f.name != "__init__" and d.endswith(f".{f.name}") and not d.startswith("self."))):
            continue
        pos = 0
        for a in cs.node.args:
            if a.star:
                break
            if a.keyword is not None:
                name = a.keyword.value
            elif pos < len(params):
                name, pos = params[pos], pos + 1
            else:
                continue
            if name == expr.value:
                out.append((cs.function, a.value))
    return out


def num(p: ProgramModel, f: FunctionInfo | None, expr, depth: int = 0) -> float | None:
    """hparams.number, also following a parameter to the arguments of its call sites."""
    v = hp.number(p, f, expr)
    if v is not None or depth > 4:
        return v
    vals = [num(p, caller, arg, depth + 1) for caller, arg in _callers_args(p, f, expr)]
    if vals and all(x is not None for x in vals) and len(set(vals)) == 1:
        return vals[0]
    return None


def _numbers(p: ProgramModel, f: FunctionInfo | None, expr, depth: int = 0) -> list[float | None] | None:
    if isinstance(expr, (cst.List, cst.Tuple)):
        return [num(p, f, el.value) for el in expr.elements]
    if depth > 4:
        return None
    if isinstance(expr, cst.Name) and f is not None:
        for a in f.bindings(expr.value) or p.module_function.bindings(expr.value):
            if isinstance(a.value, (cst.List, cst.Tuple)):
                return _numbers(p, a.function, a.value, depth + 1)
        for caller, arg in _callers_args(p, f, expr):
            return _numbers(p, caller, arg, depth + 1)
    if isinstance(expr, cst.Attribute):
        leaf = expr.attr.value
        for v in (hp._argparse_defaults(p).get(leaf) or []) + (hp._class_fields(p).get(leaf) or []):
            if isinstance(v, (cst.List, cst.Tuple)):
                return _numbers(p, None, v, depth + 1)
    return None


def _unwrap_iter(expr):
    """`enumerate(loader)`, `tqdm(loader)`, `iter(loader)` -> loader."""
    for _ in range(3):
        if isinstance(expr, cst.Call) and expr.args and dotted_name(expr.func) in (
                "enumerate", "tqdm", "tqdm.tqdm", "iter", "zip", "progress_bar", "track"):
            expr = expr.args[0].value
        else:
            break
    return expr


def _range_count(p: ProgramModel, f: FunctionInfo, expr) -> tuple[float | None, str | None]:
    """Iterations of `range(...)`: (count, text of the bound)."""
    if not (isinstance(expr, cst.Call) and dotted_name(expr.func) == "range" and expr.args):
        return None, None
    vals = [a.value for a in expr.args]
    if len(vals) == 1:
        return num(p, f, vals[0]), None
    a, b = num(p, f, vals[0]), num(p, f, vals[1])
    step = num(p, f, vals[2]) if len(vals) > 2 else 1.0
    if a is None or b is None or not step:
        return None, None
    return max(0.0, math.ceil((b - a) / step)), None


def _while_bound(p: ProgramModel, f: FunctionInfo, loop: cst.While) -> float | None:
    """`while it < max_iters` or `while True: ... if it > max_iters: break` -> about max_iters."""
    test = loop.test
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        return num(p, f, test.comparisons[0].comparator)
    stack: list[cst.CSTNode] = [loop.body]
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.For, cst.While, cst.FunctionDef)):
            continue
        if isinstance(n, cst.If) and isinstance(n.test, cst.Comparison) and \
                len(n.test.comparisons) == 1 and any(isinstance(s, cst.SimpleStatementLine) and
                                                     any(isinstance(x, cst.Break) for x in s.body)
                                                     for s in n.body.body if isinstance(n.body, cst.IndentedBlock)):
            v = num(p, f, n.test.comparisons[0].comparator)
            if v is not None:
                return v
        stack.extend(iter_children(n))
    return None


def _loop_count(p: ProgramModel, xl: XLoop) -> float | None:
    node = xl.loop.node
    f = xl.loop.function
    if isinstance(node, cst.For):
        n, _ = _range_count(p, f, _unwrap_iter(node.iter))
        return n
    if isinstance(node, cst.While):
        return _while_bound(p, f, node)
    return None


def _steps_optimizer_directly(p: ProgramModel, xl: XLoop) -> bool:
    return any(p.optimizer_step_target(e.event) is not None for e in xl.direct())


def _training_loop(p: ProgramModel, xl: XLoop) -> XLoop:
    """The loop itself, or for a helper loop (`for g in opt.param_groups`) the nearest
    enclosing batch/epoch loop."""
    for cand in (xl, *xl.ancestors()):
        if p.is_batch_loop(cand) or p.encloses_batch_loop(cand):
            return cand
    return xl


def _where(p: ProgramModel, xl: XLoop, conditional: bool) -> str:
    xl = _training_loop(p, xl)
    if p.is_batch_loop(xl):
        if _steps_optimizer_directly(p, xl) and conditional:
            return "per optimizer step"
        return "per batch" if xl.parent is not None else "per iteration"
    if p.encloses_batch_loop(xl):
        return "per optimizer step" if _steps_optimizer_directly(p, xl) else "per epoch"
    return "in a loop"


def _modulo_k(p: ProgramModel, f: FunctionInfo, conds) -> float | None:
    for c in conds:
        stack = [c]
        while stack:
            n = stack.pop()
            if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Modulo):
                v = num(p, f, n.right)
                if v is not None:
                    return v
            stack.extend(iter_children(n))
    return None


# --------------------------------------------------------------------------- a tiny evaluator


_MATH = {"math.cos": math.cos, "math.sin": math.sin, "math.exp": math.exp, "math.sqrt": math.sqrt,
         "math.log": math.log, "min": min, "max": max, "float": float, "int": int, "abs": abs,
         "math.floor": math.floor, "math.ceil": math.ceil, "np.cos": math.cos, "numpy.cos": math.cos}
_CONST = {"math.pi": math.pi, "np.pi": math.pi, "math.e": math.e}


class _Unknown(Exception):
    pass


def _eval_expr(p: ProgramModel, f: FunctionInfo, env: dict[str, float], e) -> float:
    if isinstance(e, (cst.Integer, cst.Float)):
        return float(e.evaluated_value)
    if isinstance(e, cst.Name):
        if e.value in env:
            return env[e.value]
        cache = p.__dict__.setdefault("_recipe_names", {})
        key = (id(f), e.value)
        if key not in cache:
            cache[key] = num(p, f, e)
        if cache[key] is None:
            raise _Unknown(e.value)
        return cache[key]
    if isinstance(e, cst.Attribute):
        d = dotted_name(e)
        if d in _CONST:
            return _CONST[d]
        v = num(p, f, e)
        if v is None:
            raise _Unknown(d)
        return v
    if isinstance(e, cst.UnaryOperation) and isinstance(e.operator, (cst.Minus, cst.Plus)):
        v = _eval_expr(p, f, env, e.expression)
        return -v if isinstance(e.operator, cst.Minus) else v
    if isinstance(e, cst.BinaryOperation):
        a = _eval_expr(p, f, env, e.left)
        b = _eval_expr(p, f, env, e.right)
        ops: dict[type, Callable[[float, float], float]] = {
            cst.Add: lambda x, y: x + y, cst.Subtract: lambda x, y: x - y,
            cst.Multiply: lambda x, y: x * y, cst.Divide: lambda x, y: x / y,
            cst.FloorDivide: lambda x, y: x // y, cst.Power: lambda x, y: x ** y,
            cst.Modulo: lambda x, y: x % y}
        fn = ops.get(type(e.operator))
        if fn is None:
            raise _Unknown("op")
        try:
            return float(fn(a, b))
        except (ZeroDivisionError, OverflowError, ValueError):
            raise _Unknown("arith") from None
    if isinstance(e, cst.Comparison):
        left = _eval_expr(p, f, env, e.left)
        for comp in e.comparisons:
            right = _eval_expr(p, f, env, comp.comparator)
            op = type(comp.operator)
            ok = {cst.LessThan: left < right, cst.LessThanEqual: left <= right,
                  cst.GreaterThan: left > right, cst.GreaterThanEqual: left >= right,
                  cst.Equal: left == right, cst.NotEqual: left != right}.get(op)
            if ok is None:
                raise _Unknown("cmp")
            if not ok:
                return 0.0
            left = right
        return 1.0
    if isinstance(e, cst.BooleanOperation):
        a = _eval_expr(p, f, env, e.left)
        if isinstance(e.operator, cst.And):
            return _eval_expr(p, f, env, e.right) if a else a
        return a if a else _eval_expr(p, f, env, e.right)
    if isinstance(e, cst.IfExp):
        return _eval_expr(p, f, env, e.body if _eval_expr(p, f, env, e.test) else e.orelse)
    if isinstance(e, cst.Call):
        d = dotted_name(e.func)
        fn = _MATH.get(d or "")
        if fn is None or any(a.keyword is not None or a.star for a in e.args):
            raise _Unknown(str(d))
        try:
            return float(fn(*[_eval_expr(p, f, env, a.value) for a in e.args]))
        except (ValueError, OverflowError, TypeError):
            raise _Unknown("call") from None
    raise _Unknown(type(e).__name__)


def _run_body(p: ProgramModel, f: FunctionInfo, env: dict[str, float], stmts) -> float | None:
    for stmt in stmts:
        if isinstance(stmt, cst.If):
            branch = stmt.body if _eval_expr(p, f, env, stmt.test) else stmt.orelse
            while isinstance(branch, cst.If):  # elif
                if _eval_expr(p, f, env, branch.test):
                    branch = branch.body
                    break
                branch = branch.orelse
            if branch is None:
                continue
            body = branch.body if isinstance(branch, cst.Else) else branch
            r = _run_body(p, f, env, body.body if isinstance(body, cst.IndentedBlock) else ())
            if r is not None:
                return r
            continue
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Return):
                    if small.value is None:
                        raise _Unknown("return")
                    return _eval_expr(p, f, env, small.value)
                if isinstance(small, cst.Assign) and len(small.targets) == 1 and \
                        isinstance(small.targets[0].target, cst.Name):
                    env[small.targets[0].target.value] = _eval_expr(p, f, env, small.value)
                elif isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString,
                                                                               cst.ConcatenatedString)):
                    continue
                elif isinstance(small, (cst.Assert, cst.Pass)):
                    continue
                else:
                    raise _Unknown("stmt")
            continue
        raise _Unknown("stmt")
    return None


def _sample(g: Callable[[float], float | None], n: int) -> tuple[list[tuple[int, float]], int, float] | None:
    """About 500 samples of g over [0, n] and the first step where g reaches its maximum
    (refined step by step around the sample that first reaches it)."""
    step = max(1, n // 500)
    ts = list(range(0, n + 1, step))
    if ts[-1] != n:
        ts.append(n)
    samples = []
    for t in ts:
        v = g(t)
        if v is None:
            return None
        samples.append((t, v))
    peak = max(v for _, v in samples)
    i = next(k for k, (_, v) in enumerate(samples) if v >= peak * 0.9999)
    first = samples[i][0]
    if i > 0:
        for t in range(samples[i - 1][0] + 1, samples[i][0]):
            v = g(t)
            if v is not None and v >= peak * 0.9999:
                first, peak = t, max(peak, v)
                break
    return samples, first, peak


def lr_function(p: ProgramModel, fn: FunctionInfo) -> Callable[[float], float | None] | None:
    """`get_lr(it)` as a Python callable when its body is plain arithmetic on literals."""
    node = fn.node
    if not isinstance(node, cst.FunctionDef) or len(fn.params) != 1 or \
            not isinstance(node.body, cst.IndentedBlock):
        return None
    param = fn.params[0]

    def call(t: float) -> float | None:
        try:
            return _run_body(p, fn, {param: float(t)}, node.body.body)
        except (_Unknown, RecursionError):
            return None

    return call


# --------------------------------------------------------------------------- schedules


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


# --------------------------------------------------------------------------- the recipe


_NORM_LAYERS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
                "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm", "LocalResponseNorm")
_AUGMENT = ("Random", "ColorJitter", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix",
            "GaussianBlur", "ElasticTransform")
_DROPOUT = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"}


def _opt_facts(p: ProgramModel, s: _Src, c: Construction) -> OptimizerFacts:
    lr_expr = hp.opt_arg(c, "lr")
    lr = num(p, c.function, lr_expr)
    facts = OptimizerFacts(name=c.name, line=s.line(c.node), target=c.target, lr=lr,
                           lr_text=s.code(lr_expr) if lr_expr is not None else None)
    if lr_expr is None and c.name in hp.TORCH_DEFAULT_LR:
        facts.lr = hp.TORCH_DEFAULT_LR[c.name]
        facts.lr_is_default = True
    if c.name == "Adadelta" and lr_expr is None:
        facts.lr, facts.lr_is_default = 1.0, True
    if c.name in ("SGD", "RMSprop"):
        facts.momentum = hp.opt_number(p, c, "momentum") if hp.opt_arg(c, "momentum") is not None else 0.0
    if c.name == "SGD":
        nest = hp.opt_arg(c, "nesterov")
        facts.nesterov = _bool(nest) if nest is not None else False
    betas = hp.opt_arg(c, "betas")
    if betas is not None:
        facts.betas = _numbers(p, c.function, betas)
    elif c.name in tn.ADAPTIVE_OPTIMIZERS:
        facts.betas = [0.9, 0.999]
    eps = hp.opt_arg(c, "eps")
    if eps is not None:
        facts.eps = num(p, c.function, eps)
    wd_expr = hp.opt_arg(c, "weight_decay")
    if wd_expr is not None:
        facts.weight_decay = num(p, c.function, wd_expr)
    elif c.name == "AdamW":
        facts.weight_decay = 0.01
    elif c.name in hp.TORCH_DEFAULT_LR or c.name == "Adadelta":
        facts.weight_decay = 0.0
    groups = hp.param_groups(c)
    if groups:
        facts.param_groups = len(groups)
        wds = []
        for g in groups:
            v = hp.dict_value(g, "weight_decay")
            wds.append(num(p, c.function, v) if v is not None else facts.weight_decay)
        facts.group_weight_decays = wds
        facts.no_decay_group = any(w == 0 for w in wds) and any(w for w in wds)
        nonzero = [w for w in wds if w]
        if nonzero:
            facts.weight_decay = nonzero[0]
    else:
        first = c.arg("params", 0)
        if isinstance(first, cst.Name):  # optim_groups built just before
            for a in c.function.bindings(first.value):
                if isinstance(a.value, cst.List):
                    dicts = [el.value for el in a.value.elements if isinstance(el.value, cst.Dict)]
                    wds = []
                    for g in dicts:
                        v = hp.dict_value(g, "weight_decay")
                        wds.append(num(p, a.function, v) if v is not None else facts.weight_decay)
                    if dicts:
                        facts.param_groups = len(dicts)
                        facts.group_weight_decays = wds
                        facts.no_decay_group = any(w == 0 for w in wds) and any(w for w in wds)
                        nonzero = [w for w in wds if w]
                        if nonzero:
                            facts.weight_decay = nonzero[0]
    return facts


def _train_loader_batch(p: ProgramModel, s: _Src) -> tuple[float | None, str | None]:
    loaders = []
    for xl in p.batch_loops:
        it = xl.loop.iter
        if it is None:
            continue
        for o in p.evaluate(xl.loop.function, _unwrap_iter(it)):
            if o.role == "loader":
                loaders.append(o)
    if not loaders:
        loaders = [c for c in p.constructions("loader") if c.target and "train" in c.target.lower()]
    if not loaders:
        loaders = [c for c in p.constructions("loader")
                   if not (c.target and any(k in c.target.lower() for k in ("val", "test", "eval", "dev")))]
    for c in loaders:
        expr = c.arg("batch_size", 1)
        if expr is not None:
            return num(p, c.function, expr), s.code(expr)
    for text in ("args.batch_size", "batch_size", "config.batch_size"):
        v = num(p, None, cst.parse_expression(text))
        if v is not None:
            return v, text
    return None, None


def _manual_lr(p: ProgramModel, s: _Src, iterations: float | None, epochs: float | None,
               recipe: Recipe) -> None:
    seen_fn = set()
    for xl in p.all_xloops():
        for e in xl.direct():
            ev = e.event
            if ev.kind != "lr_set":
                continue
            node = ev.node
            value = node.value if isinstance(node, (cst.Assign, cst.AugAssign)) else None
            where = _where(p, xl, e.conds)
            if where in ("per batch", "per iteration"):
                where = "per optimizer step"
            # lr = get_lr(it); param_group["lr"] = lr
            fn = None
            call = value
            if isinstance(value, cst.Name):
                f = ev.function
                for a in f.bindings(value.value) or p.module_function.bindings(value.value):
                    call = a.value
            if isinstance(call, cst.Call):
                d = dotted_name(call.func)
                fn = p._resolve_callee(ev.function, d) if d else None
            text = f"`{s.code(node)}` {where}"
            if fn is not None and id(fn) not in seen_fn:
                seen_fn.add(id(fn))
                horizon = (iterations if where == "per optimizer step" else epochs) or \
                    (epochs if where == "per epoch" else None)
                g = lr_function(p, fn)
                if g is not None and horizon:
                    n = int(min(horizon, 1_000_000))
                    sampled = _sample(g, n)
                    if sampled is not None:
                        samples, warm, peak = sampled
                        start, end = samples[0][1], samples[-1][1]
                        rest = ""
                        if peak > start * 1.0001 and warm > 0:
                            rest = f" -> {fmt(peak)} (peak at step {warm})"
                            recipe.warmup = recipe.warmup or f"{fn.name}(): warmup to {fmt(peak)} over {warm} steps"
                        shape = _shape_words(fn, p)
                        text = (f"manual{shape}: {fn.name}({fn.params[0]}) written to every param group "
                                f"{where} for {fmt(horizon)} steps: {fmt(start)}{rest} -> {fmt(end)}")
                        recipe.manual_lr.append(text)
                        continue
                text = f"manual: `{s.code(node)}` via {fn.name}() {where}"
            elif fn is not None:
                continue
            if text not in recipe.manual_lr:
                recipe.manual_lr.append(text)
    # `lr /= 4.0` on a plain variable inside the epoch loop (word language model)
    for a in p.assignments:
        leaf = a.target.rsplit(".", 1)[-1].lower()
        if a.augmented and a.loop is not None and (leaf in ("lr", "learning_rate") or leaf.endswith("_lr")):
            cond = " when the validation metric stops improving" if _under_else_or_if(a) else ""
            recipe.manual_lr.append(f"manual decay: `{s.code(a.node)}`{cond}")


def _initial_value(p: ProgramModel, f: FunctionInfo, name: str, depth: int = 0) -> float | None:
    """The first value bound to `name` (`lr = args.lr`, later `lr /= 4.0`), through parameters."""
    if depth > 4:
        return None
    scope: FunctionInfo | None = f
    while scope is not None:
        binds = scope.bindings(name)
        if binds:
            return num(p, scope, binds[0].value)
        if name in scope.params:
            for caller, arg in _callers_args(p, scope, cst.Name(name)):
                if isinstance(arg, cst.Name):
                    return _initial_value(p, caller, arg.value, depth + 1)
                return num(p, caller, arg)
            return None
        scope = scope.parent
    return None


_HF_SCHEDULES = {"linear": "get_linear_schedule_with_warmup", "cosine": "get_cosine_schedule_with_warmup",
                 "constant": "constant", "constant_with_warmup": "get_constant_schedule_with_warmup",
                 "polynomial": "get_polynomial_decay_schedule_with_warmup"}


def _kw(call: cst.Call) -> dict[str, cst.BaseExpression]:
    return {a.keyword.value: a.value for a in call.args if a.keyword is not None}


def _frameworks(p: ProgramModel, s: _Src, recipe: Recipe) -> None:
    """Recipes configured through a framework: transformers' TrainingArguments (the Trainer
    builds AdamW and a linear schedule from them) and Lightning's Trainer(max_epochs=...)."""
    for cs in p.calls:
        q = cs.qualname or ""
        leaf = tn.last(q) if q else ""
        if q.startswith("transformers") and leaf in ("TrainingArguments", "Seq2SeqTrainingArguments"):
            kw = _kw(cs.node)
            f = cs.function
            if not recipe.optimizers:
                lr = num(p, f, kw.get("learning_rate")) if "learning_rate" in kw else 5e-5
                wd = num(p, f, kw.get("weight_decay")) if "weight_decay" in kw else 0.0
                recipe.optimizers.append(OptimizerFacts(
                    name="AdamW", line=s.line(cs.node), target="Trainer (from TrainingArguments)",
                    lr=lr, lr_text=s.code(kw["learning_rate"]) if "learning_rate" in kw else None,
                    lr_is_default="learning_rate" not in kw, betas=[0.9, 0.999], weight_decay=wd,
                    no_decay_group=bool(wd)))
            if not recipe.schedules:
                kind = kw.get("lr_scheduler_type")
                kind_name = kind.evaluated_value if isinstance(kind, cst.SimpleString) else "linear"
                warm = kw.get("warmup_steps") or kw.get("warmup_ratio")
                lr0 = recipe.optimizers[0].lr
                end = lr0 if str(kind_name).startswith("constant") else 0.0
                start = 0.0 if warm is not None else lr0
                desc = (f"Trainer lr_scheduler_type={kind_name!r} per optimizer step: {fmt(start)} -> "
                        f"{fmt(lr0)} -> {fmt(end)}" if warm is not None else
                        f"Trainer lr_scheduler_type={kind_name!r} per optimizer step: {fmt(lr0)} -> {fmt(end)}")
                sf = ScheduleFacts(name=_HF_SCHEDULES.get(str(kind_name), str(kind_name)), line=s.line(cs.node),
                                   args={}, stepped="per optimizer step", steps=None, lr_start=start,
                                   lr_peak=lr0, lr_end=end, description=desc)
                if warm is not None:
                    key = "warmup_steps" if "warmup_steps" in kw else "warmup_ratio"
                    v = num(p, f, warm)
                    sf.warmup = (f"linear warmup over {fmt(v) if v is not None else s.code(warm)} steps"
                                 if key == "warmup_steps" else
                                 f"linear warmup over {fmt((v or 0) * 100)}% of the steps")
                    recipe.warmup = recipe.warmup or sf.warmup
                recipe.schedules.append(sf)
            if recipe.epochs is None and "num_train_epochs" in kw:
                recipe.epochs = num(p, f, kw["num_train_epochs"])
                recipe.epochs_text = s.code(kw["num_train_epochs"])
            if recipe.iterations is None and "max_steps" in kw:
                recipe.iterations = num(p, f, kw["max_steps"])
            bs = kw.get("per_device_train_batch_size")
            if recipe.batch_size is None and bs is not None:
                recipe.batch_size, recipe.batch_size_text = num(p, f, bs), s.code(bs)
            acc = kw.get("gradient_accumulation_steps")
            if acc is not None and recipe.accumulation_steps is None:
                recipe.accumulation_steps = num(p, f, acc)
                recipe.accumulation_text = f"gradient_accumulation_steps={s.code(acc)} (Trainer)"
            clip = num(p, f, kw["max_grad_norm"]) if "max_grad_norm" in kw else 1.0
            if clip and not recipe.grad_clip:
                recipe.grad_clip.append(f"Trainer max_grad_norm={fmt(clip)}")
            for flag in ("fp16", "bf16"):
                if _bool(kw.get(flag)):
                    recipe.amp.append(f"Trainer {flag}=True")
        elif leaf == "Trainer" and ("lightning" in q or "pytorch_lightning" in q):
            kw = _kw(cs.node)
            if recipe.epochs is None and "max_epochs" in kw:
                recipe.epochs = num(p, cs.function, kw["max_epochs"])
                recipe.epochs_text = s.code(kw["max_epochs"])
            if recipe.iterations is None and "max_steps" in kw:
                recipe.iterations = num(p, cs.function, kw["max_steps"])
            if "gradient_clip_val" in kw and not recipe.grad_clip:
                recipe.grad_clip.append(f"Lightning gradient_clip_val={s.code(kw['gradient_clip_val'])}")
            if "accumulate_grad_batches" in kw and recipe.accumulation_steps is None:
                recipe.accumulation_steps = num(p, cs.function, kw["accumulate_grad_batches"])
                recipe.accumulation_text = f"accumulate_grad_batches={s.code(kw['accumulate_grad_batches'])} (Lightning)"
            if "precision" in kw:
                recipe.amp.append(f"Lightning precision={s.code(kw['precision'])}")
    # Lightning steps the schedulers itself: per epoch unless configure_optimizers says "step"
    for sf, c in zip(recipe.schedules, [c for c in p.constructions("scheduler")]):
        if sf.stepped is None and c.function.name == "configure_optimizers":
            interval = "epoch"
            stack = [c.function.node]
            while stack:
                n = stack.pop()
                if isinstance(n, cst.DictElement) and isinstance(n.key, cst.SimpleString) and \
                        n.key.evaluated_value == "interval" and isinstance(n.value, cst.SimpleString):
                    interval = n.value.evaluated_value
                stack.extend(iter_children(n))
            sf.stepped = "per optimizer step (Lightning)" if interval == "step" else "per epoch (Lightning)"
            sf.description = sf.description.replace("(never stepped)", sf.stepped).replace(
                "stepped ?", sf.stepped)


def _under_else_or_if(a) -> bool:
    loop = a.loop.node if a.loop is not None else None
    if loop is None:
        return False
    stack: list[tuple[cst.CSTNode, bool]] = [(loop.body, False)]
    while stack:
        n, cond = stack.pop()
        if n is a.node:
            return cond
        for ch in iter_children(n):
            stack.append((ch, cond or isinstance(n, (cst.If, cst.Else))))
    return False


def _shape_words(fn: FunctionInfo, p: ProgramModel) -> str:
    text = p.module.code_for_node(fn.node)
    parts = []
    if "warmup" in text:
        parts.append("linear warmup")
    if "cos(" in text:
        parts.append("cosine decay")
    elif "**" in text or "exp(" in text:
        parts.append("exponential decay")
    return f" ({' + '.join(parts)})" if parts else ""


def extract(source: str, path: str, module: cst.Module | None = None) -> Recipe:
    """The recipe of one script (no advice)."""
    recipe = Recipe(path=path)
    if module is None:
        from recipecheck.engine import too_deep_for_parser

        if too_deep_for_parser(source) is not None:  # libcst would overflow: RC900 says why
            recipe.parsed = False
            return recipe
        try:
            module = cst.parse_module(source)
        except Exception:  # RC900 explains why, in the advice
            recipe.parsed = False
            return recipe
    p = build_program(module)
    recipe._program = p  # reused by advise(); not a dataclass field, so not in the JSON
    s = _Src(module, p, source)

    # epochs / iterations from the outermost loops around the batch loops
    for xl in p.batch_loops:
        top = xl
        outer = [a for a in xl.ancestors()]
        iter_loop = next((l for l in [xl, *outer] if _steps_optimizer_directly(p, l)), None)
        if iter_loop is not None and iter_loop is not xl and recipe.iterations is None:
            recipe.iterations = _loop_count(p, iter_loop)
            inner = _loop_count(p, xl)
            if inner and recipe.accumulation_steps is None:
                recipe.accumulation_steps = inner
                recipe.accumulation_text = (f"{fmt(inner)} micro-batches per optimizer step "
                                            f"(`{s.code(xl.loop.node.iter) if isinstance(xl.loop.node, cst.For) else 'while'}`)")
        elif iter_loop is xl and not outer and recipe.iterations is None:
            recipe.iterations = _loop_count(p, xl)
        epoch_loops = [l for l in outer if l is not iter_loop and not _steps_optimizer_directly(p, l)]
        if epoch_loops and recipe.epochs is None:
            top = epoch_loops[-1]
            recipe.epochs = _loop_count(p, top)
            node = top.loop.node
            recipe.epochs_text = s.code(node.iter) if isinstance(node, cst.For) else s.code(node.test)
        for e in xl.direct():
            if p.optimizer_step_target(e.event) is not None and e.conds and recipe.accumulation_steps is None:
                k = _modulo_k(p, e.event.function, e.event.conds)
                if k and k > 1:
                    recipe.accumulation_steps = k
                    recipe.accumulation_text = f"optimizer steps every {fmt(k)} batches"
                elif e.event.conds:
                    cond_text = s.code(e.event.conds[0])
                    if "%" in cond_text:
                        recipe.accumulation_text = f"optimizer steps when `{cond_text}`"

    for c in p.constructions("optimizer"):
        recipe.optimizers.append(_opt_facts(p, s, c))
    if not recipe.optimizers:
        for cs in p.calls:
            if cs.dotted and cs.dotted.endswith((".add_", ".sub_")) and cs.loop is not None and \
                    ".grad" in s.code(cs.node):
                recipe.manual_update = f"parameters updated by hand: `{s.code(cs.node)}`"
                lr = _initial_value(p, cs.function, "lr")
                if lr is not None:
                    recipe.manual_update += f" (lr starts at {fmt(lr)})"
                break
    lr0 = recipe.optimizers[0].lr if recipe.optimizers else None
    scheds = p.constructions("scheduler")
    children: dict[int, list[Construction]] = {}  # SequentialLR/ChainedScheduler -> its parts
    for c in scheds:
        if c.name in ("SequentialLR", "ChainedScheduler"):
            lst = c.arg("schedulers", 1) if c.name == "SequentialLR" else c.arg("schedulers", 0)
            if isinstance(lst, cst.Name):
                binds = c.function.bindings(lst.value)
                lst = binds[0].value if binds else lst
            if isinstance(lst, (cst.List, cst.Tuple)):
                nodes = {id(el.value) for el in lst.elements}
                names = {dotted_name(el.value) for el in lst.elements}
                children[id(c.node)] = [o for o in scheds if id(o.node) in nodes or
                                        (o.target is not None and o.target in names)]
    nested = {id(o.node) for parts in children.values() for o in parts}
    for c in scheds:
        if id(c.node) in nested:
            continue  # described as part of its SequentialLR
        owner = c.arg("optimizer", 0)
        lr_c = lr0
        if owner is not None:
            for o in p.evaluate(c.function, owner):
                match = next((f for f in recipe.optimizers if f.line == s.line(o.node)), None)
                if match is not None:
                    lr_c = match.lr
        sf = _schedule(p, s, c, lr_c, recipe.epochs, recipe.iterations)
        if children.get(id(c.node)):
            _compose(p, s, c, sf, children[id(c.node)], lr_c, recipe)
        recipe.schedules.append(sf)
        if sf.warmup and recipe.warmup is None:
            recipe.warmup = sf.warmup
    _manual_lr(p, s, recipe.iterations, recipe.epochs, recipe)

    recipe.batch_size, recipe.batch_size_text = _train_loader_batch(p, s)
    _frameworks(p, s, recipe)

    dropout: list[str] = []
    label_smoothing = None
    mix: list[str] = []
    augment: list[str] = []
    early: list[str] = []
    ema: list[str] = []
    norm_layers: dict[str, int] = {}
    autocast: list[str] = []
    no_grad = False
    eval_mode = False
    for cs in p.calls:
        q = cs.qualname or ""
        leaf = tn.last(q) if q else (cs.dotted or "").rsplit(".", 1)[-1]
        call = cs.node
        if tn.is_clip(q):
            arg = call_arg(call, "max_norm", 1) if "norm" in leaf else call_arg(call, "clip_value", 1)
            v = num(p, cs.function, arg)
            label = "max_norm" if "norm" in leaf else "clip_value"
            text = f"{leaf}({label}={fmt(v) if v is not None else s.code(arg)})"
            if text not in recipe.grad_clip:
                recipe.grad_clip.append(text)
        elif q.startswith("torch.nn.init."):
            rest = ", ".join(s.code(a.value) if a.keyword is None else f"{a.keyword.value}={s.code(a.value)}"
                             for a in call.args[1:])
            target = s.code(call.args[0].value) if call.args else ""
            text = f"nn.init.{leaf}({target}{', ' + rest if rest else ''})"
            if text not in recipe.initialization:
                recipe.initialization.append(text)
        elif q.startswith("torch.nn.") and leaf in _DROPOUT:
            arg = call_arg(call, "p", 0)
            v = num(p, cs.function, arg) if arg is not None else 0.5
            dropout.append(f"{leaf}({fmt(v) if v is not None else s.code(arg)})")
        elif q in ("torch.nn.functional.dropout", "torch.dropout"):
            arg = call_arg(call, "p", 1)
            v = num(p, cs.function, arg) if arg is not None else 0.5
            dropout.append(f"F.dropout(p={fmt(v) if v is not None else s.code(arg)})")
        elif q.startswith("torch.nn.") and leaf in _NORM_LAYERS:
            norm_layers[leaf] = norm_layers.get(leaf, 0) + 1
        elif leaf == "Normalize" and ("transforms" in q or "transforms" in (cs.dotted or "")):
            text = f"Normalize({', '.join(s.code(a.value) for a in call.args)})"
            if text not in recipe.input_normalization:
                recipe.input_normalization.append(text)
        elif q.startswith("sklearn.preprocessing.") and leaf in ("StandardScaler", "MinMaxScaler",
                                                                  "RobustScaler", "MaxAbsScaler",
                                                                  "QuantileTransformer", "PowerTransformer"):
            text = f"{leaf} (sklearn)"
            if text not in recipe.input_normalization:
                recipe.input_normalization.append(text)
        elif ("transforms" in q or "albumentations" in q) and leaf.startswith(_AUGMENT):
            if leaf not in augment:
                augment.append(leaf)
        elif q in ("torch.autocast", "torch.cuda.amp.autocast", "torch.amp.autocast",
                   "torch.cpu.amp.autocast"):
            dt = call_arg(call, "dtype", None)
            text = f"autocast({s.code(dt) if dt is not None else ''})".replace("()", "")
            if text not in autocast:
                autocast.append(text)
        elif tn.is_grad_scaler(q):
            if "GradScaler" not in recipe.amp:
                recipe.amp.append("GradScaler (loss scaling)")
        elif q in ("torch.no_grad", "torch.inference_mode"):
            no_grad = True
        elif "swa_utils" in q or leaf in ("AveragedModel", "ModelEma", "ModelEmaV2", "ModelEmaV3",
                                          "ExponentialMovingAverage", "EMA"):
            ema.append(leaf)
        elif "mixup" in leaf.lower() or "cutmix" in leaf.lower():
            if leaf not in mix:
                mix.append(leaf)
        elif "earlystopping" in leaf.lower().replace("_", ""):
            early.append(leaf)
        if cs.dotted and cs.dotted.endswith(".eval") and not call.args:
            eval_mode = True
        for a in call.args:
            if a.keyword is None:
                continue
            kw = a.keyword.value
            if kw in ("label_smoothing", "label_smoothing_factor"):
                label_smoothing = num(p, cs.function, a.value)
            elif kw == "dropout" and not (q.startswith("torch.nn.") and leaf in _DROPOUT):
                v = num(p, cs.function, a.value)
                dropout.append(f"{leaf}(dropout={fmt(v) if v is not None else s.code(a.value)})")
    if any(w.startswith("torch.no_grad") or w.startswith("torch.inference_mode")
           for cs in p.calls for w in cs.withs):
        no_grad = True
    recipe.amp = autocast + recipe.amp
    for name, count in norm_layers.items():
        recipe.input_normalization.append(f"{count} {name} layer{'s' if count > 1 else ''} in the model")
    for a in p.assignments:
        leaf = a.target.rsplit(".", 1)[-1].lower()
        if "patience" in leaf or "early_stop" in leaf:
            early.append(a.target)
        if (leaf.startswith("ema") or leaf.endswith("_ema")) and not a.target.isupper():
            ema.append(a.target)
    applied = [s.code(cs.node) for cs in p.calls
               if cs.dotted and cs.dotted.endswith(".apply") and len(cs.node.args) == 1 and
               (dotted_name(cs.node.args[0].value) or "").rsplit(".", 1)[-1] in
               {f.name for f in p.functions.values()}]
    if recipe.initialization and applied:
        recipe.initialization.append("applied with " + ", ".join(dict.fromkeys(applied)))
    if not recipe.initialization:
        if any(cs.dotted and cs.dotted.endswith("from_pretrained") for cs in p.calls):
            recipe.initialization.append("pretrained weights (from_pretrained)")
        else:
            recipe.initialization.append("PyTorch defaults (Kaiming-uniform for Linear/Conv layers)")
    wds = []
    for o in recipe.optimizers:
        if o.weight_decay:
            note = " (biases/norms excluded)" if o.no_decay_group else ""
            wds.append(f"{o.name} weight_decay={fmt(o.weight_decay)}{note}")
    recipe.regularization = {
        "weight_decay": wds,
        "dropout": list(dict.fromkeys(dropout)),
        "label_smoothing": label_smoothing,
        "mixup_cutmix": mix,
        "augmentation": augment,
        "early_stopping": list(dict.fromkeys(early)),
        "ema": list(dict.fromkeys(ema)),
    }

    # evaluation protocol
    held_out = []
    for c in p.constructions("loader"):
        if c.target and any(k in c.target.lower() for k in ("val", "test", "eval", "dev")):
            held_out.append(c.target)
    eval_fns = []
    for f in p.functions.values():
        lname = f.name.lower()
        if f.callers and any(k in lname for k in ("eval", "valid", "test", "estimate_loss")):
            eval_fns.append(f"{f.name}()")
    trainer_selection = None
    for cs in p.calls:
        q = cs.qualname or ""
        if q.startswith("transformers") and tn.last(q) in ("Trainer", "Seq2SeqTrainer", "SFTTrainer"):
            kw = _kw(cs.node)
            if "eval_dataset" in kw:
                held_out.append(f"eval_dataset={s.code(kw['eval_dataset'])} (Trainer)")
        if q.startswith("transformers") and tn.last(q).endswith("TrainingArguments"):
            kw = _kw(cs.node)
            for key in ("eval_strategy", "evaluation_strategy"):
                if key in kw:
                    eval_fns.append(f"Trainer {key}={s.code(kw[key])}")
            if "load_best_model_at_end" in kw and _bool(kw["load_best_model_at_end"]):
                trainer_selection = "Trainer load_best_model_at_end=True" + (
                    f" on {s.code(kw['metric_for_best_model'])}" if "metric_for_best_model" in kw else "")
    best = sorted({a.target for a in p.assignments if "best" in a.target.lower() and a.augmented is None})
    saves = any(cs.qualname == "torch.save" or (cs.dotted or "").endswith(("save_checkpoint",
                                                                           "save_pretrained"))
                for cs in p.calls)
    selection = trainer_selection
    if selection is not None:
        pass
    elif best:
        selection = f"keeps the best {', '.join(best)}" + (" and checkpoints it" if saves else "")
    elif saves:
        selection = "checkpoints saved (no best-model selection found)"
    recipe.evaluation = {
        "held_out_data": held_out,
        "eval_functions": eval_fns,
        "eval_mode": eval_mode,
        "no_grad": no_grad,
        "model_selection": selection,
    }
    return recipe


# --------------------------------------------------------------------------- advice


_SEV_RANK = {"error": 0, "warning": 1, "info": 2}


def _observations(recipe: Recipe, p_uses_conv: bool, transformer: bool,
                  classifier: bool = True) -> list[Advice]:
    """Recipe-level advice no single rule gives. Regularization and augmentation advice is for
    supervised classifiers only (GANs and VAEs are trained differently)."""
    out = []
    reg = recipe.regularization
    if classifier and recipe.optimizers and not reg.get("weight_decay") and not reg.get("dropout") and \
            not reg.get("augmentation") and not reg.get("mixup_cutmix"):
        out.append(Advice(0, None, "info", "no explicit regularization",
                          "no weight decay, dropout or augmentation was found: add weight decay "
                          "(AdamW's decoupled decay, or L2 1e-4 to 5e-4 with SGD) and watch the "
                          "train/validation gap", None, source="recipe"))
    if classifier and p_uses_conv and recipe.batch_size is not None and not reg.get("augmentation") and \
            not reg.get("mixup_cutmix"):
        out.append(Advice(0, None, "info", "no data augmentation",
                          "an image model with no random transform in its data pipeline: random "
                          "crops and horizontal flips are the cheapest regularizer for images", None,
                          source="recipe"))
    sgd = [o for o in recipe.optimizers if o.name == "SGD" and o.lr and o.momentum]
    effective = (recipe.batch_size or 0) * (recipe.accumulation_steps or 1)
    if sgd and effective >= 1024:  # the rule is about large batches; small ones vary widely
        suggested = 0.1 * effective / 256
        ratio = sgd[0].lr / suggested
        if ratio >= 4 or ratio <= 0.25:
            out.append(Advice(0, None, "info", "LR far from the linear-scaling rule",
                              f"SGD+momentum at lr={fmt(sgd[0].lr)} for batch {fmt(effective)}: the "
                              f"linear-scaling rule (0.1 per 256 examples, Goyal et al. 2017) suggests "
                              f"about {fmt(suggested)}; {'large-batch runs also need warmup (RC206)' if ratio <= 0.25 and effective >= 1024 else 'check the LR with a short LR range test'}",
                              None, source="recipe"))
    if transformer and recipe.optimizers and not recipe.grad_clip:
        out.append(Advice(0, None, "info", "no gradient clipping",
                          "transformer training usually clips the global gradient norm at 1.0 "
                          "(clip_grad_norm_ after backward, before step) to survive loss spikes",
                          None, source="recipe"))
    return out


def advise(source: str, path: str, recipe: Recipe, findings=None) -> list[Advice]:
    """All rules' findings (info included), ranked, then recipe-level observations."""
    from recipecheck.engine import lint_source
    from recipecheck.rule import all_rules

    if findings is None:
        findings = lint_source(source, path, [r() for r in all_rules()]).findings
    advice = []
    for f in findings:
        advice.append(Advice(0, f.code, f.severity.value, f.name.replace("-", " "), f.message,
                             f.line, f.extra.get("cell")))
    advice.sort(key=lambda a: (_SEV_RANK[a.severity], a.cell or 0, a.line or 0, a.code or ""))
    try:
        p = getattr(recipe, "_program", None)
        if p is None:
            if not recipe.parsed:  # too deep or a syntax error: never handed to libcst again
                raise ValueError("not parsed")
            p = build_program(cst.parse_module(source))
        conv = any(cs.qualname and tn.last(cs.qualname).startswith("Conv") and
                   cs.qualname.startswith("torch.nn") for cs in p.calls)
        transformer = p.uses_transformer()
        classifier = any(cs.qualname and tn.last(cs.qualname) in (
            "CrossEntropyLoss", "cross_entropy", "nll_loss", "NLLLoss") for cs in p.calls)
    except Exception:
        conv = transformer = classifier = False
    covered = {a.code for a in advice}
    for obs in _observations(recipe, conv, transformer, classifier):
        if obs.title == "no gradient clipping" and "RC605" in covered:
            continue
        advice.append(obs)
    for i, a in enumerate(advice, 1):
        a.rank = i
    return advice


def build_recipe(source: str, path: str) -> Recipe:
    """Recipe and advice for a script or a notebook's text."""
    findings = None
    program_source = source
    if path.endswith(".ipynb"):
        from recipecheck.notebook import NotebookError, lint_notebook, parse_notebook
        from recipecheck.rule import all_rules

        try:
            program_source = parse_notebook(source).source
        except NotebookError as exc:
            r = Recipe(path=path, parsed=False)
            r.advice = [Advice(1, "RC900", "error", "syntax error", exc.message, exc.line)]
            return r
        findings = lint_notebook(source, path, [r() for r in all_rules()]).findings
    try:
        recipe = extract(program_source, path)
    except RecursionError:
        recipe = Recipe(path=path, parsed=False)
    recipe.advice = advise(program_source, path, recipe, findings)
    if path.endswith(".ipynb"):
        nb = parse_notebook(source)
        for facts in (*recipe.optimizers, *recipe.schedules):
            facts.cell, facts.line = nb.locate(facts.line)
    return recipe


# --------------------------------------------------------------------------- rendering


def _opt_line(o: OptimizerFacts) -> str:
    parts = [f"lr={fmt(o.lr) if o.lr is not None else (o.lr_text or '?')}"
             + (" (torch default)" if o.lr_is_default else "")]
    if o.momentum is not None:
        parts.append(f"momentum={fmt(o.momentum)}")
    if o.nesterov:
        parts.append("nesterov=True")
    if o.betas:
        parts.append("betas=(" + ", ".join(fmt(b) for b in o.betas) + ")")
    if o.eps is not None:
        parts.append(f"eps={fmt(o.eps)}")
    if o.weight_decay is not None:
        parts.append(f"weight_decay={fmt(o.weight_decay)}")
    if o.param_groups > 1:
        parts.append(f"{o.param_groups} param groups" + (" (no-decay group)" if o.no_decay_group else ""))
    who = f"{o.target} = " if o.target else ""
    return f"{who}{o.name}({', '.join(parts)})  {_at(o)}"


def _at(facts) -> str:
    return f"[cell {facts.cell}, line {facts.line}]" if facts.cell else f"[line {facts.line}]"


def rows(recipe: Recipe) -> list[tuple[str, str]]:
    """(aspect, value) rows of the summary, in reading order."""
    out: list[tuple[str, str]] = []
    none = "none found"
    out.append(("Optimizer", "\n".join(_opt_line(o) for o in recipe.optimizers)
                or recipe.manual_update or none))
    sched = [f"{sf.description}  {_at(sf)}" for sf in recipe.schedules] + recipe.manual_lr
    out.append(("LR schedule", "\n".join(sched) or "constant LR (no scheduler, no manual decay)"))
    out.append(("Warmup", recipe.warmup or none))
    batch = fmt(recipe.batch_size) if recipe.batch_size is not None else (recipe.batch_size_text or "unknown")
    if recipe.batch_size is not None and recipe.accumulation_steps and recipe.accumulation_steps > 1:
        batch += (f" per micro-batch, {fmt(recipe.batch_size * recipe.accumulation_steps)} per optimizer "
                  f"step ({fmt(recipe.accumulation_steps)} accumulated)")
    out.append(("Batch size", batch))
    run = []
    if recipe.epochs is not None or recipe.epochs_text:
        run.append(f"{fmt(recipe.epochs)} epochs" if recipe.epochs is not None
                   else f"epochs: {recipe.epochs_text}")
    if recipe.iterations is not None:
        run.append(f"{fmt(recipe.iterations)} optimizer steps")
    out.append(("Length", ", ".join(run) or "unknown"))
    out.append(("Gradient clipping", ", ".join(recipe.grad_clip) or none))
    out.append(("Accumulation", recipe.accumulation_text or none))
    out.append(("Mixed precision", ", ".join(recipe.amp) or "no (fp32)"))
    out.append(("Initialization", "\n".join(recipe.initialization)))
    out.append(("Input normalization", "\n".join(recipe.input_normalization) or none))
    reg = recipe.regularization
    reg_lines = []
    labels = (("weight_decay", "weight decay"), ("dropout", "dropout"), ("augmentation", "augmentation"),
              ("mixup_cutmix", "mixup/cutmix"), ("early_stopping", "early stopping"), ("ema", "EMA"))
    for key, label in labels:
        if reg.get(key):
            reg_lines.append(f"{label}: {', '.join(reg[key])}")
    if reg.get("label_smoothing") is not None:
        reg_lines.append(f"label smoothing: {fmt(reg['label_smoothing'])}")
    out.append(("Regularization", "\n".join(reg_lines) or none))
    ev = recipe.evaluation
    ev_lines = []
    if ev.get("held_out_data"):
        ev_lines.append("held-out loaders: " + ", ".join(ev["held_out_data"]))
    if ev.get("eval_functions"):
        ev_lines.append("evaluated by: " + ", ".join(ev["eval_functions"]))
    ev_lines.append(f"model.eval(): {'yes' if ev.get('eval_mode') else 'no'}, "
                    f"no_grad/inference_mode: {'yes' if ev.get('no_grad') else 'no'}")
    if ev.get("model_selection"):
        ev_lines.append("selection: " + ev["model_selection"])
    out.append(("Evaluation", "\n".join(ev_lines)))
    return out


_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_text(recipe: Recipe, stream: IO[str], color: bool | None = None) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream, force_terminal=color if color else None, no_color=color is False,
                      highlight=False, emoji=False, width=max(100, min(140, Console(file=stream).width)))
    if not recipe.parsed:
        console.print(Text(f"{recipe.path}: the file could not be parsed; no recipe.", style="bold red"))
    else:
        _render_summary(console, recipe)
    _render_advice(console, recipe)


def _render_summary(console, recipe: Recipe) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("aspect", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for aspect, value in rows(recipe):
        table.add_row(aspect, Text(value, style="dim" if value in ("none found", "unknown") else ""))
    console.print(Panel(table, title=Text(f"Training recipe: {recipe.path}", style="bold"),
                        title_align="left", expand=True))


def _render_advice(console, recipe: Recipe) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    if not recipe.advice:
        console.print(Panel(Text("No advice: every rule is satisfied.", style="green"),
                            title=Text("Advice", style="bold"), title_align="left"))
        return
    advice = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1, 1, 0))
    advice.add_column("rank", justify="right", style="bold", no_wrap=True)
    advice.add_column("code", no_wrap=True)
    advice.add_column("advice", overflow="fold")
    for a in recipe.advice:
        code = Text(a.code or "recipe", style=_STYLE.get(a.severity, ""))
        code.append(f"\n{a.severity}", style="dim")
        body = Text(a.title, style="bold")
        if a.line:
            body.append(f"  (cell {a.cell}, line {a.line})" if a.cell else f"  (line {a.line})", style="dim")
        body.append("\n" + a.message)
        advice.add_row(f"{a.rank}.", code, body)
    console.print(Panel(advice, title=Text("Advice, most important first", style="bold"),
                        title_align="left", expand=True))
