"""Numbers for the recipe: hyperparameter values, loop counts, and a tiny interpreter for
hand-written LR functions (nanoGPT's `get_lr`).
"""

from __future__ import annotations

import math
from typing import Callable

import libcst as cst

from recipecheck.program.nodes import iter_children
from recipecheck.program import hparams as hp
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import FunctionInfo, ProgramModel, XLoop


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
        self.origin: ProgramModel | None = None  # the neighbour model `module` belongs to

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
            if self.origin is not None:  # a neighbour read as a view: the line in its file
                from recipecheck.program.link import file_line

                self._lines[key] = file_line(self.origin, self._lines[key])
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
    found = p.param_args(f, expr.value)
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
    if depth == 0 and expr is not None and getattr(p, "link", None) is not None:
        # the project's value evaluator: config objects, other modules' call sites
        from recipecheck.program.values import value_of

        return value_of(p, f, expr).number()
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
    return p.steps_optimizer_in(xl)


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
