"""Values: what an expression may be, as a small set of possibilities with provenance.

Stage 4 of the pipeline (DESIGN.md, "The project, not the file"). :func:`value_of` follows
literals and arithmetic, names through every binding in scope (both branches of an ``if``, an
augmented assignment under a condition keeps the value before it as a possibility), parameters
to the arguments of every call site (in any linked module), ``args.x`` to argparse defaults,
``config.x`` to dataclass fields and ``C.x = v`` assignments, conditional expressions to both
branches, calls of project functions to their returns, and module globals of a script that
``exec``s a configuration file to their value with the note that it may be overridden.

Anything else is ``unknown`` with the reason, so that a caller can say *why* it does not know
instead of pretending a default applies. A parameter's default is certain only where the analysed
code calls the function; the evaluation sees the module and the project modules it imports.

What rules use: :func:`value_of` (or :func:`number_of` for one agreed number), :func:`judge`
(decide a predicate on the set: ``ALL`` possibilities bad -> the rule's severity, ``SOME`` ->
``info`` naming the condition, ``NONE``; unknown is never bad), :func:`optimizer_sites` (the
linted file's torch optimizers, including those built in another project module and reported at
the call that obtains them) with :func:`hparam` / :func:`site_hparams` (their hyperparameters,
with possibilities of the other branch removed) and :func:`settled_in_owner` (a value already
bad in the module that builds the optimizer is that module's finding).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import libcst as cst

from recipecheck.program.imports import dotted_name
from recipecheck.program.model import FunctionInfo, ProgramModel

_MAX_DEPTH = 10
_MAX_POSSIBILITIES = 8


@dataclass(frozen=True)
class Possibility:
    value: object  # float | int | str | bool | tuple
    source: str  # how it was found: "literal", "argparse default of --lr", "GPTConfig.n_layer", ...
    condition: str | None = None  # the branch it holds under, as code


@dataclass
class Value:
    """The possibilities of an expression; empty with `unknown` set when it cannot be known."""

    possibilities: list[Possibility] = field(default_factory=list)
    unknown: str | None = None  # why (a part of) it is unknown
    overridable: str | None = None  # "may be overridden by configurator.py / the command line"

    @property
    def known(self) -> bool:
        return bool(self.possibilities) and self.unknown is None

    def single(self):
        """The value when every possibility agrees (and nothing is unknown), else None."""
        if not self.known:
            return None
        vals = {p.value for p in self.possibilities}
        return self.possibilities[0].value if len(vals) == 1 else None

    def number(self) -> float | None:
        v = self.single()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        return float(v)

    def describe(self, fmt=repr) -> str:
        parts = []
        for p in self.possibilities:
            t = fmt(p.value)
            if p.condition:
                t += f" if `{p.condition}`"
            parts.append(t)
        text = " or ".join(dict.fromkeys(parts))
        if self.unknown:
            text = (text + "; " if text else "") + f"unknown: {self.unknown}"
        if self.overridable and text:
            text += f" ({self.overridable})"
        return text

    def provenance(self) -> list[dict]:
        out = [{"value": p.value if not isinstance(p.value, tuple) else list(p.value),
                "source": p.source, **({"condition": p.condition} if p.condition else {})}
               for p in self.possibilities]
        if self.unknown:
            out.append({"unknown": self.unknown})
        if self.overridable:
            out.append({"overridable": self.overridable})
        return out


def _code(node) -> str:
    try:
        return " ".join(cst.Module([]).code_for_node(node).split())
    except Exception:
        return "?"


def _merge(values: list[Value]) -> Value:
    out = Value()
    for v in values:
        for p in v.possibilities:
            if p not in out.possibilities:
                out.possibilities.append(p)
        if v.unknown and not out.unknown:
            out.unknown = v.unknown
        if v.overridable and not out.overridable:
            out.overridable = v.overridable
    del out.possibilities[_MAX_POSSIBILITIES:]
    return out


def _unknown(why: str) -> Value:
    return Value(unknown=why)


def _const(v, source: str) -> Value:
    return Value([Possibility(v, source)])


_BINOPS = {
    cst.Add: lambda a, b: a + b, cst.Subtract: lambda a, b: a - b,
    cst.Multiply: lambda a, b: a * b, cst.Divide: lambda a, b: a / b,
    cst.FloorDivide: lambda a, b: a // b, cst.Power: lambda a, b: a ** b,
    cst.Modulo: lambda a, b: a % b,
}


_CMPOPS = {
    cst.GreaterThan: lambda a, b: a > b, cst.LessThan: lambda a, b: a < b,
    cst.GreaterThanEqual: lambda a, b: a >= b, cst.LessThanEqual: lambda a, b: a <= b,
    cst.Equal: lambda a, b: a == b, cst.NotEqual: lambda a, b: a != b,
    cst.Is: lambda a, b: a is b, cst.IsNot: lambda a, b: a is not b,
}


class Evaluator:
    """Value evaluation over one (possibly linked) program model."""

    def __init__(self, program: ProgramModel) -> None:
        self.p = program
        self._memo: dict[tuple[int, int], Value] = {}
        self._modules: list[ProgramModel] | None = None

    def modules(self) -> list[ProgramModel]:
        """The program and the project modules it imports, transitively: what it can know.
        (Not every module the shared project link has loaded: those depend on which other
        files were linted in the process, and a value must not.)"""
        if self._modules is None:
            link = self.p.link
            deps: list[ProgramModel] = []
            if link is not None and getattr(link, "shared", None) is not None:
                deps = list(link.programs.values())  # the linted file: its view is its closure
            elif link is not None and hasattr(link, "closure"):  # a neighbour: the shared link
                try:
                    deps = link.closure(self.p)
                except RecursionError:
                    deps = []
            self._modules = [self.p, *[d for d in deps if d is not self.p]]
        return self._modules

    # -- entry
    def value(self, f: FunctionInfo | None, expr, depth: int = 0) -> Value:
        if expr is None:
            return _unknown("no expression")
        if depth > _MAX_DEPTH:
            return _unknown(f"`{_code(expr)}` is computed too indirectly")
        key = (id(f), id(expr))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        self._memo[key] = _unknown(f"`{_code(expr)}` depends on itself")
        v = self._value(f or self.p.module_function, expr, depth)
        self._memo[key] = v
        return v

    def _value(self, f: FunctionInfo, expr, depth: int) -> Value:
        if isinstance(expr, (cst.Integer, cst.Float)):
            return _const(expr.evaluated_value, "literal")
        if isinstance(expr, cst.SimpleString):
            return _const(expr.evaluated_value, "literal")
        if isinstance(expr, cst.Name) and expr.value in ("True", "False", "None"):
            return _const({"True": True, "False": False, "None": None}[expr.value], "literal")
        if isinstance(expr, cst.UnaryOperation):
            inner = self.value(f, expr.expression, depth + 1)
            if isinstance(expr.operator, cst.Minus):
                return self._map(inner, lambda a: -a)
            if isinstance(expr.operator, cst.Not):
                return self._map(inner, lambda a: not a)
            return inner
        if isinstance(expr, cst.BinaryOperation):
            op = _BINOPS.get(type(expr.operator))
            if op is None:
                return _unknown(f"`{_code(expr)}`")
            return self._combine(self.value(f, expr.left, depth + 1),
                                 self.value(f, expr.right, depth + 1), op)
        if isinstance(expr, (cst.Tuple, cst.List)):
            vals = [self.value(f, el.value, depth + 1).single() for el in expr.elements]
            if any(v is None for v in vals):
                return _unknown(f"`{_code(expr)}` has unresolved elements")
            return _const(tuple(vals), "literal")
        if isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1:
            op = _CMPOPS.get(type(expr.comparisons[0].operator))
            if op is None:
                return _unknown(f"`{_code(expr)}`")
            return self._combine(self.value(f, expr.left, depth + 1),
                                 self.value(f, expr.comparisons[0].comparator, depth + 1), op)
        if isinstance(expr, cst.BooleanOperation):
            op = (lambda a, b: a and b) if isinstance(expr.operator, cst.And) else (lambda a, b: a or b)
            return self._combine(self.value(f, expr.left, depth + 1),
                                 self.value(f, expr.right, depth + 1), op)
        if isinstance(expr, cst.IfExp):
            cond = _code(expr.test)
            a = self._under(self.value(f, expr.body, depth + 1), cond)
            b = self._under(self.value(f, expr.orelse, depth + 1), f"not ({cond})")
            return _merge([a, b])
        if isinstance(expr, cst.Name):
            return self._name(f, expr.value, depth)
        if isinstance(expr, cst.Attribute):
            return self._attribute(f, expr, depth)
        if isinstance(expr, cst.Call):
            return self._call(f, expr, depth)
        return _unknown(f"`{_code(expr)}`")

    # -- helpers
    @staticmethod
    def _map(v: Value, fn) -> Value:
        out = Value(unknown=v.unknown, overridable=v.overridable)
        for p in v.possibilities:
            try:
                out.possibilities.append(Possibility(fn(p.value), p.source, p.condition))
            except Exception:
                out.unknown = out.unknown or "not a number"
        return out

    @staticmethod
    def _combine(a: Value, b: Value, op) -> Value:
        out = Value(unknown=a.unknown or b.unknown, overridable=a.overridable or b.overridable)
        for pa in a.possibilities:
            for pb in b.possibilities:
                try:
                    r = op(pa.value, pb.value)
                except Exception:
                    out.unknown = out.unknown or "arithmetic on a non-number"
                    continue
                if isinstance(r, float) and (math.isnan(r) or math.isinf(r)):
                    continue
                cond = " and ".join(c for c in (pa.condition, pb.condition) if c) or None
                src = pa.source if pa.source == pb.source else f"{pa.source}, {pb.source}"
                p = Possibility(r, src, cond)
                if p not in out.possibilities:
                    out.possibilities.append(p)
        del out.possibilities[_MAX_POSSIBILITIES:]
        return out

    @staticmethod
    def _under(v: Value, cond: str) -> Value:
        if cond.startswith("not (") and cond.endswith(")") and cond[5:-1].isidentifier():
            cond = "not " + cond[5:-1]
        return Value([Possibility(p.value, p.source, p.condition or cond) for p in v.possibilities],
                     v.unknown, v.overridable)

    def _name(self, f: FunctionInfo, name: str, depth: int) -> Value:
        scope: FunctionInfo | None = f
        while scope is not None:
            binds = [a for a in scope.assignments if a.target == name]
            if binds:
                return self._bindings(scope, name, binds, depth)
            if name in scope.params:
                return self._param(scope, name, depth)
            scope = scope.parent
        here = f.program or self.p
        if name in here.imports.project:  # `from config import lr`
            g = self._global_of(here, name, None, depth)
            if g is not None:
                return g
        return _unknown(f"`{name}` is not assigned in the code analysed")

    def _global_of(self, here: ProgramModel, local: str, attr: str | None, depth: int) -> Value | None:
        """A module global of another project module, named through an import of `here`."""
        link = self.p.link
        t = here.imports.project.get(local)
        if link is None or t is None:
            return None
        name = attr if t.attr is None else (t.attr if attr is None else None)
        if name is None:
            return None
        try:
            prog = link.view_of(here, t.path, [name])
        except RecursionError:
            return None
        if prog is None:
            return None
        binds = [a for a in prog.module_function.assignments if a.target == name]
        if not binds:
            return None
        return self._bindings(prog.module_function, name, binds, depth)

    def _bindings(self, scope: FunctionInfo, name: str, binds, depth: int) -> Value:
        vals: list[Value] = []
        plain = [a for a in binds if a.augmented is None]
        for a in plain:
            v = self.value(a.function, a.value, depth + 1) if a.value is not None else _unknown(name)
            cond = self._condition_of(a)
            vals.append(self._under(v, cond) if cond and len(plain) > 1 else v)
        out = _merge(vals) if vals else _unknown(f"`{name}` has no plain assignment")
        ops = {"AddAssign": cst.Add, "SubtractAssign": cst.Subtract, "MultiplyAssign": cst.Multiply,
               "DivideAssign": cst.Divide, "FloorDivideAssign": cst.FloorDivide}
        for a in binds:
            if a.augmented is None:
                continue
            op = _BINOPS.get(ops.get(a.augmented, type(None)))
            if op is None or a.loop is not None:
                out = Value(out.possibilities, out.unknown or f"`{name}` changes in a loop",
                            out.overridable)
                continue
            rhs = self.value(a.function, a.value, depth + 1)
            cond = self._condition_of(a)
            if cond and not rhs.possibilities:
                rhs = Value(unknown=f"`{_code(a.node)}` when `{cond}`")
            changed = self._combine(out, rhs, op)
            if cond:  # the value before the statement stays possible when the branch is not taken
                changed = self._under(changed, cond)
                out = _merge([self._under(out, f"not ({cond})"), changed])
            else:
                out = changed
        if scope is self.p.module_function or scope.node is getattr(scope.program, "module", None):
            override = _config_override(scope.program or self.p)
            if override and out.possibilities:
                out.overridable = override
        return out

    def _condition_of(self, a) -> str | None:
        for ev_cond in _conds_of_assignment(a):
            return _code(ev_cond)
        return None

    def _param(self, scope: FunctionInfo, name: str, depth: int) -> Value:
        sites = self.p.param_args(scope, name)
        if not sites:
            default = _param_default(scope, name)
            if default is not None:
                v = self.value(scope, default, depth + 1)
                unknown = v.unknown
                if unknown is None and not self._called(scope):
                    # the default holds only if the code that calls it passes nothing
                    unknown = (f"`{scope.name}()` is not called in the code analysed: a caller "
                               f"elsewhere may pass `{name}`")
                return Value([Possibility(p.value, f"default of parameter `{name}`", p.condition)
                              for p in v.possibilities], unknown, v.overridable)
            return _unknown(f"`{name}` is a parameter of `{scope.name}()` and no call passes it")
        return _merge([self.value(caller, arg, depth + 1) for caller, arg in sites])

    def _called(self, fn: FunctionInfo) -> bool:
        """Some analysed code calls `fn` (or builds its class, for `__init__`), or passes it as a
        callback (`model.apply(init_weights)`)."""
        progs = self.modules()
        ids = {id(q) for q in progs}
        # callers the link added from modules this view does not import do not count
        if any(id(getattr(ev.function, "program", None) or self.p) in ids for ev in fn.callers):
            return True
        names = {fn.name}
        if fn.name in ("__init__", "__call__", "forward") and fn.cls is not None:
            names = {fn.cls.name}  # built, then called as `obj(...)`
        for prog in progs:
            # `from util.misc import GradScalerWrapper as NativeScaler`
            local = names | {k for k, t in prog.imports.project.items() if getattr(t, "attr", None) in names}
            for cs in prog.calls:
                leaf = (cs.dotted or "").rsplit(".", 1)[-1]
                if leaf in local:
                    return True
                for a in cs.node.args:
                    if isinstance(a.value, (cst.Name, cst.Attribute)) and \
                            (dotted_name(a.value) or "").rsplit(".", 1)[-1] == fn.name:
                        return True
        return False

    def _attribute(self, f: FunctionInfo, expr: cst.Attribute, depth: int) -> Value:
        d = dotted_name(expr)
        if d is None:
            return _unknown(f"`{_code(expr)}`")
        leaf = d.rsplit(".", 1)[-1]
        head = d.split(".", 1)[0]
        here = f.program or self.p
        if head in here.imports.aliases:  # `math.pi`, `np.e`, `torch.float32`: not the project's
            return _unknown(f"`{d}` comes from `{here.imports.aliases[head]}`")
        if head in here.imports.project and d.count(".") == 1:  # `import config; config.lr`
            g = self._global_of(here, head, leaf, depth)
            if g is not None:
                return g
        # `self.x`: what the methods of this class (and its bases) assign first
        own = self._self_attribute(f, d, depth) if head == "self" and d.count(".") == 1 else None
        if own is not None:
            return own
        progs = self.modules()
        # argparse defaults: `args.lr`
        from recipecheck.program import hparams as hp

        for prog in progs:
            defaults = hp._argparse_defaults(prog).get(leaf)
            if defaults:
                flag = _store_flag_default(prog, leaf)
                vals = [self.value(prog.module_function, v, depth + 1) if v is not None else
                        (_const(flag, "literal") if flag is not None else _const(None, "literal"))
                        for v in defaults]
                m = _merge(vals)
                return Value([Possibility(p.value, f"argparse default of --{leaf}", p.condition)
                              for p in m.possibilities], m.unknown,
                             m.overridable or "may be overridden on the command line")
        # config objects: `C.trainer.batch_size = 64`, dataclass fields, `self.x = v`
        vals: list[Value] = []
        tail = d.split(".", 1)[1] if "." in d else d
        for prog in progs:
            for a in prog.assignments:
                if a.augmented is None and (a.target == d or (a.target.endswith("." + leaf) and
                                                              _same_tail(a.target, tail))):
                    vals.append(self.value(a.function, a.value, depth + 1))
            if prog is self.p and vals:
                break  # the linted script sets it: that overrides the defaults of other modules
            fields = hp._class_fields(prog).get(leaf)
            if fields:
                for v in fields:
                    vals.append(self.value(prog.module_function, v, depth + 1))
                # a dataclass field is also set by its constructor: `GPTConfig(dropout=0.1)`
                vals += self._constructor_keywords(progs, prog, leaf, depth)
        if vals:
            m = _merge(vals)
            return Value([Possibility(p.value, f"`{leaf}` set in a config object", p.condition)
                          for p in m.possibilities], m.unknown, m.overridable)
        return _unknown(f"`{d}` is not set in the code analysed")

    def _self_attribute(self, f: FunctionInfo, d: str, depth: int) -> Value | None:
        """`self.lr` from the assignments of the methods of the enclosing class and of its bases
        (in any module); None when none assigns it (another object may: a looser lookup)."""
        scope: FunctionInfo | None = f
        while scope is not None and scope.cls is None:
            scope = scope.parent
        if scope is None:
            return None
        classes = []
        cls = scope.cls
        seen: set[int] = set()
        while cls is not None and id(cls) not in seen:
            seen.add(id(cls))
            classes.append(cls)
            cls = next((self.p.classes[b.rsplit(".", 1)[-1]] for b in cls.bases
                        if b.rsplit(".", 1)[-1] in self.p.classes), None)
        vals = [self.value(m, a.value, depth + 1) for c in classes for m in c.methods.values()
                for a in m.assignments if a.target == d and a.augmented is None and a.value is not None]
        if not vals:
            return None
        return _merge(vals)

    def _constructor_keywords(self, progs, prog: ProgramModel, leaf: str, depth: int) -> list[Value]:
        """Values given to field `leaf` by calls of the classes of `prog` that declare it
        (`Config(lr=0.1)`); `Config(**kw)` or positional arguments make it partly unknown."""
        owners = set()
        for cls in getattr(prog, "own_classes", prog.classes).values():
            body = cls.node.body
            for stmt in (body.body if isinstance(body, cst.IndentedBlock) else ()):
                if isinstance(stmt, cst.SimpleStatementLine) and any(
                        (isinstance(x, cst.AnnAssign) and isinstance(x.target, cst.Name) and x.target.value == leaf)
                        or (isinstance(x, cst.Assign) and len(x.targets) == 1 and
                            isinstance(x.targets[0].target, cst.Name) and x.targets[0].target.value == leaf)
                        for x in stmt.body):
                    owners.add(cls.name)
        out: list[Value] = []
        if not owners:
            return out
        for q in progs:
            for cs in q.calls:
                if not cs.dotted or cs.dotted.rsplit(".", 1)[-1] not in owners:
                    continue
                for a in cs.node.args:
                    if a.keyword is not None and a.keyword.value == leaf:
                        out.append(self.value(cs.function, a.value, depth + 1))
                    elif a.star == "**" or (a.keyword is None and not a.star and
                                            cs.dotted.rsplit(".", 1)[-1] not in ("dataclass",)):
                        out.append(_unknown(f"`{leaf}` may be set by `{_code(cs.node)}`"))
                        break
        return out

    def _call(self, f: FunctionInfo, call: cst.Call, depth: int) -> Value:
        d = dotted_name(call.func)
        if d in ("int", "float") and call.args:
            return self._map(self.value(f, call.args[0].value, depth + 1),
                             int if d == "int" else float)
        if d in ("min", "max") and len(call.args) >= 2:
            vals = [self.value(f, a.value, depth + 1) for a in call.args]
            out = vals[0]
            for v in vals[1:]:
                out = self._combine(out, v, min if d == "min" else max)
            return out
        callees = self.p._callees_of(f, call) if d else []
        if callees:
            fn = callees[0]
            if fn.returns:
                return _merge([self.value(fn, r, depth + 1) for r in fn.returns])
        return _unknown(f"`{_code(call)}` is computed at run time")


def _store_flag_default(prog: ProgramModel, leaf: str) -> bool | None:
    """False for `add_argument('--use-optimizer', action='store_true')` (True for store_false)."""
    for cs in prog.calls:
        if not cs.dotted or not cs.dotted.endswith(".add_argument"):
            continue
        names = [a.value.evaluated_value for a in cs.node.args
                 if a.keyword is None and isinstance(a.value, cst.SimpleString)]
        if not any(isinstance(n, str) and n.lstrip("-").replace("-", "_") == leaf for n in names):
            continue
        for a in cs.node.args:
            if a.keyword is not None and a.keyword.value == "action" and isinstance(a.value, cst.SimpleString):
                act = a.value.evaluated_value
                if act == "store_true":
                    return False
                if act == "store_false":
                    return True
    return None


def _same_tail(target: str, tail: str) -> bool:
    """`C.trainer.batch_size` matches `config.batch_size` (the leaf) and `trainer.batch_size`."""
    t = target.split(".")
    s = tail.split(".")
    return t[-len(s):] == s or t[-1] == s[-1]


def _param_default(fn: FunctionInfo, name: str):
    node = fn.node
    if not isinstance(node, cst.FunctionDef):
        return None
    for prm in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params):
        if prm.name.value == name:
            return prm.default
    return None


def _conds_of_assignment(a) -> list:
    """The `if` tests an assignment sits under (the model records them for events only)."""
    return conditions_of(a.function, a.node)


def conditions_of(fn: FunctionInfo, target) -> list:
    """The `if` tests `target` sits under in `fn`, as expressions (`not t` for an `else`).
    One walk per function, kept on the function (rules and the evaluator ask for many nodes)."""
    index = fn.__dict__.get("_rc_conditions")
    if index is None:
        index = _index_conditions(fn)
        fn.__dict__["_rc_conditions"] = index
    return list(index.get(id(target), ()))


def _index_conditions(fn: FunctionInfo) -> dict[int, tuple]:
    from recipecheck.program.nodes import iter_children

    out: dict[int, tuple] = {}
    stack = [(fn.node, ())]
    while stack:
        node, conds = stack.pop()
        out[id(node)] = conds
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node is not fn.node:
            continue
        if isinstance(node, cst.If):
            stack.append((node.test, conds))
            stack.append((node.body, conds + (node.test,)))
            if node.orelse is not None:
                stack.append((node.orelse, conds + (cst.UnaryOperation(cst.Not(), node.test),)))
            continue
        for c in iter_children(node):
            stack.append((c, conds))
    return out




def _config_override(prog: ProgramModel) -> str | None:
    """Module globals of a script that execs a configuration file may be overridden by it."""
    cached = getattr(prog, "_config_override", 0)
    if cached != 0:
        return cached
    text = None
    for cs in prog.calls:
        if cs.dotted == "exec" and cs.function is prog.module_function and cs.node.args:
            code = _code(cs.node.args[0].value)
            text = f"may be overridden by `{code}`: config files, command line"
            import re

            m = re.search(r"['\"]([\w./-]+\.py)['\"]", code)
            if m:
                text = f"may be overridden via {m.group(1)}: config files, command line"
            break
    prog._config_override = text  # type: ignore[attr-defined]
    return text


def evaluator(program: ProgramModel) -> Evaluator:
    ev = getattr(program, "_values", None)
    if ev is None:
        ev = Evaluator(program)
        program._values = ev  # type: ignore[attr-defined]
    return ev


def value_of(program: ProgramModel, f: FunctionInfo | None, expr) -> Value:
    """The possible values of `expr` evaluated in function `f` of `program` (any linked module)."""
    return evaluator(program).value(f, expr)


# ------------------------------------------------------------------------ what rules ask

# A rule's decision on a value (issue 8: "rules decide on the set"):
ALL = "all"  # every possibility is bad and nothing is unknown: report at the rule's severity
SOME = "some"  # a possibility is bad, not all (or a part is unknown): report at info, say when
NONE = "none"  # no known possibility is bad (unknown alone never counts as bad)


@dataclass(frozen=True)
class Judgement:
    verdict: str
    bad: tuple[Possibility, ...] = ()
    value: Value | None = None

    def __bool__(self) -> bool:
        return self.verdict != NONE

    @property
    def first(self) -> float:
        return float(self.bad[0].value)

    def when(self) -> str:
        """Why the finding holds only in part (empty for ALL): the conditions of the bad values,
        or that the value is not always this one."""
        if self.verdict != SOME:
            return ""
        conds = [p.condition for p in self.bad if p.condition]
        if conds and len(conds) == len(self.bad):
            return "when `" + "` or `".join(dict.fromkeys(conds)) + "`"
        v = self.value
        bad = " or ".join(dict.fromkeys(_fmt_num(p.value) for p in self.bad))
        if v is not None and v.unknown and len(self.bad) == len(v.possibilities):
            return f"if it is {bad} ({v.unknown})"
        return f"if it is {bad} (possible values: {v.describe(_fmt_num) if v is not None else '?'})"


def _fmt_num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def judge(v: Value, bad, numeric: bool = True) -> Judgement:
    """Decide `bad(number)` over the numeric possibilities of `v` (every possibility with
    `numeric=False`): ALL when every possibility is one for which it holds and nothing is
    unknown, SOME when it holds for some, NONE otherwise (a value the code does not state is
    never taken for a default)."""
    nums = [p for p in v.possibilities if not numeric or _is_num(p.value)]
    hits = tuple(p for p in nums if _safe(bad, p.value))
    if not hits:
        return Judgement(NONE, (), v)
    every = v.unknown is None and len(nums) == len(v.possibilities) and len(hits) == len(nums)
    return Judgement(ALL if every else SOME, hits, v)


def _safe(pred, x) -> bool:
    try:
        return bool(pred(x))
    except Exception:
        return False


def _norm_cond(c: str) -> tuple[bool, str]:
    """(negated, core) of a condition as code: `not (x)` / `not x` -> (True, x)."""
    c = c.strip()
    neg = False
    while c.startswith("not "):
        neg = not neg
        c = c[4:].strip()
        if c.startswith("(") and c.endswith(")"):
            c = c[1:-1].strip()
    return neg, c


def consistent_with(v: Value, conds: list[str]) -> Value:
    """Drop the possibilities that hold only under the negation of a condition the use sits
    under (`if big: lr = 10.0 ... else: lr = 1e-3; opt = Adam(lr=lr)` inside `if not big:`)."""
    if not conds or not v.possibilities:
        return v
    here = {_norm_cond(c) for c in conds}
    keep = []
    for p in v.possibilities:
        parts = [_norm_cond(x) for x in (p.condition or "").split(" and ") if x.strip()]
        if any((not neg, core) in here for neg, core in parts):
            continue
        keep.append(p)
    if not keep:
        return v
    return Value(keep, v.unknown, v.overridable)


def number_of(program: ProgramModel, f: FunctionInfo | None, expr) -> float | None:
    """The number `expr` stands for when every possibility agrees (None when the code does not
    say, or says several things): for callers that need one number."""
    if expr is None:
        return None
    return value_of(program, f, expr).number()


@dataclass
class OptimizerSite:
    """A torch optimizer the linted file builds or obtains from another project module, with the
    node of the linted file where a finding on it is reported."""

    construction: object  # Construction
    report: cst.CSTNode
    via: str | None = None  # "built by `model.configure_optimizers()` in model.py"
    target: str | None = None  # the name it is bound to in the linted file
    _conds: list | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.construction.name

    def conds(self) -> list[str]:
        if self._conds is None:
            c = self.construction
            self._conds = [_code(t) for t in conditions_of(c.function, c.node)]
        return self._conds


def optimizer_sites(program: ProgramModel) -> list[OptimizerSite]:
    """The torch.optim optimizers of the linted file: those it builds, and those built in another
    project module that a call of the file returns (`model.configure_optimizers(...)`) or that a
    project class it instantiates builds in its `configure_optimizers` (Lightning), reported at
    that call. Memoized per program."""
    cached = getattr(program, "_optimizer_sites", None)
    if cached is not None:
        return cached
    from recipecheck.program.hparams import is_torch_optimizer

    out = [OptimizerSite(c, c.node, None, c.target) for c in program.constructions("optimizer")
           if is_torch_optimizer(c)]
    seen = {id(s.construction.node) for s in out}
    if getattr(program, "link", None) is not None and program.link.programs:
        targets = {id(a.value): a.target for a in program.assignments if a.augmented is None}
        for pass_ in ("calls", "classes"):  # an explicit call is the better place to report
            for cs in program.calls:
                if cs.function.program not in (None, program) or (cs.qualname or "").startswith("torch"):
                    continue
                if pass_ == "calls":
                    try:
                        callees = program._callees_of(cs.function, cs.node)
                    except RecursionError:
                        callees = []
                    foreign = [fn for fn in callees if fn.program not in (None, program)]
                    if not foreign:
                        continue
                    via_fn = foreign[0]
                    # what the call returns, or (a tuple, a dict) what the callee builds
                    found = program.evaluate(cs.function, cs.node) or [
                        c for c in via_fn.program.all_constructions if c.function is via_fn]
                else:
                    # Lightning calls `configure_optimizers` of the module it is given itself
                    cls = _foreign_class(program, cs)
                    if cls is None or not _is_lightning(program, cls):
                        continue
                    meth = program.class_method(cls, "configure_optimizers")
                    if meth is None or meth.program in (None, program):
                        continue
                    via_fn = meth
                    found = [c for c in meth.program.all_constructions if c.function is meth]
                for c in found:
                    if c.role != "optimizer" or not is_torch_optimizer(c) or id(c.node) in seen:
                        continue
                    if c.function.program in (None, program):
                        continue
                    seen.add(id(c.node))
                    where = os.path.basename(via_fn.program.path or "") if via_fn.program else ""
                    via = f"built by `{via_fn.name}()`" + (f" in {where}" if where else "")
                    out.append(OptimizerSite(c, cs.node, via, targets.get(id(cs.node))))
    program._optimizer_sites = out  # type: ignore[attr-defined]
    return out


def _is_lightning(program: ProgramModel, cls) -> bool:
    seen: set[int] = set()
    while cls is not None and id(cls) not in seen:
        seen.add(id(cls))
        if any(b.endswith("LightningModule") for b in cls.bases):
            return True
        cls = next((program.classes[b.rsplit(".", 1)[-1]] for b in cls.bases
                    if b.rsplit(".", 1)[-1] in program.classes), None)
    return False


def _foreign_class(program: ProgramModel, cs):
    """The project class (of another module) that call `cs` instantiates, if any."""
    d = cs.dotted
    if not d or program.link is None:
        return None
    from recipecheck.program.model import ClassInfo

    try:
        target = program.link.lookup(program, d)
    except RecursionError:
        return None
    if isinstance(target, ClassInfo):
        return target
    return None


def hparam(program: ProgramModel, site: OptimizerSite, name: str, expr=None) -> Value:
    """The value of optimizer hyperparameter `name` (or of `expr`, e.g. a param-group entry),
    with the possibilities that contradict the branch the optimizer is built under removed."""
    from recipecheck.program.hparams import opt_arg

    c = site.construction
    e = expr if expr is not None else opt_arg(c, name)
    if e is None:
        return Value(unknown=f"`{name}` not passed")
    v = value_of(program, c.function, e)
    if not any(p.condition for p in v.possibilities):
        return v  # nothing branch-dependent: no need to find the optimizer's own branch
    return consistent_with(v, site.conds())


def worst(judgements) -> Judgement:
    """The strongest of several judgements (one per param group): ALL before SOME before NONE."""
    js = list(judgements)
    for verdict in (ALL, SOME):
        for j in js:
            if j.verdict == verdict:
                return j
    return Judgement(NONE)


def site_hparams(program: ProgramModel, site: OptimizerSite, name: str) -> list[Value]:
    """The values of `name` for the optimizer: the argument, then each param group's entry."""
    from recipecheck.program.hparams import dict_value, param_groups

    out = []
    c = site.construction
    from recipecheck.program.hparams import opt_arg

    if opt_arg(c, name) is not None:
        out.append(hparam(program, site, name))
    for g in param_groups(c):
        gv = dict_value(g, name)
        if gv is not None:
            out.append(hparam(program, site, name, gv))
    return out


def owner_view(program: ProgramModel, site: OptimizerSite) -> ProgramModel | None:
    """For an optimizer built in another module: that module's own model (what it knows
    without the linted file's arguments); None for the linted file's own optimizers."""
    if site.via is None:
        return None
    owner = getattr(site.construction.function, "program", None)
    return owner if owner is not None and owner is not program else None


def settled_in_owner(program: ProgramModel, site: OptimizerSite, name: str, bad) -> bool:
    """The optimizer comes from another module whose own code already makes `name` bad in every
    possibility (a literal there): that module's finding, not the linted file's (`lint .` would
    report it twice)."""
    owner = owner_view(program, site)
    if owner is None:
        return False
    values = site_hparams(owner, site, name)
    return bool(values) and worst(judge(v, bad) for v in values).verdict == ALL
