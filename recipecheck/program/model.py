"""The training-program model: built once per file, queried by every rule.

One libcst traversal records, per function (the module's top level counts as one), the loops
it contains, the training events inside them in statement order (backward, zero_grad, step,
clip, gradient resets, LR writes, calls to functions of the same file), the names bound from
constructor calls, and return values. Linking afterwards resolves calls between the file's
functions, maps parameters to the arguments passed at call sites, and resolves receivers such
as ``self.scheduler`` or a parameter ``optimizer`` to the construction they stand for.

The *expanded* view inlines calls to the file's own functions, so a batch loop inside
``train_one_epoch`` appears nested inside the epoch loop of ``main`` that calls it.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Union

import libcst as cst

from recipecheck.program.nodes import (_IS_NODE, bind_arguments, call_arg, child_fields, is_node_type,
                                       iter_children)

from recipecheck.program import torchnames as tn
from recipecheck.program.imports import ImportMap, dotted_name

MODULE_KEY = "<module>"
_MAX_INLINE_DEPTH = 6


# --------------------------------------------------------------------------- records


@dataclass(eq=False)
class Construction:
    """An object built by a call whose callee the model could name (torch class or local class)."""

    qualname: str  # e.g. torch.optim.lr_scheduler.StepLR, or local:Net for a class of this file
    node: cst.Call
    function: "FunctionInfo"
    target: str | None = None

    @property
    def name(self) -> str:
        return tn.last(self.qualname)

    @cached_property
    def role(self) -> str | None:
        q = self.qualname
        if tn.is_optimizer(q):
            return "optimizer"
        if tn.is_scheduler(q):
            return "scheduler"
        if tn.is_grad_scaler(q):
            return "scaler"
        if tn.is_dataloader(q):
            return "loader"
        if tn.is_loss_class(q):
            return "criterion"
        return None

    def arg(self, keyword: str, position: int | None = None) -> cst.BaseExpression | None:
        """The argument passed as `keyword=` or at `position` (0-based), if any."""
        return call_arg(self.node, keyword, position)

    @cached_property
    def params_owner(self) -> str | None:
        """For an optimizer: `model` in `SGD(model.parameters(), ...)`."""
        first = self.arg("params", 0)
        for node in _walk_calls(first):
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in (
                "parameters", "named_parameters"
            ):
                return dotted_name(node.func.value)
        return None


@dataclass(eq=False)
class Event:
    """One training-relevant call or assignment, in statement order within its function."""

    kind: str  # backward | zero_grad | step | clip | grad_reset | lr_set | call
    node: cst.CSTNode
    function: "FunctionInfo"
    order: int
    loop: "LoopInfo | None"
    conds: tuple[cst.BaseExpression, ...] = ()
    receiver: str | None = None  # dotted text of the object the method is called on
    call: cst.Call | None = None
    operand: cst.BaseExpression | None = None  # the tensor backward() runs on
    callee: "FunctionInfo | None" = None  # for kind == "call", once linked
    callee_text: str | None = None
    withs: tuple[str, ...] = ()  # qualified names of the enclosing `with` items

    @property
    def conditional(self) -> bool:
        return bool(self.conds)


@dataclass(eq=False)
class LoopInfo:
    node: Union[cst.For, cst.While]
    function: "FunctionInfo"
    parent: "LoopInfo | None"
    items: list[Union[Event, "LoopInfo"]] = field(default_factory=list)
    withs: tuple[str, ...] = ()  # qualified names of enclosing `with` items (torch.no_grad, ...)
    conds: tuple[cst.BaseExpression, ...] = ()

    @property
    def iter(self) -> cst.BaseExpression | None:
        return self.node.iter if isinstance(self.node, cst.For) else None

    @property
    def iter_text(self) -> str | None:
        it = self.iter
        return dotted_name(it) if it is not None else None


Item = Union[Event, LoopInfo]


@dataclass(eq=False)
class Assignment:
    target: str  # dotted text
    value: cst.BaseExpression | None
    node: cst.CSTNode
    order: int
    function: "FunctionInfo"
    loop: LoopInfo | None
    augmented: str | None = None  # operator name for `x += v`, else None


@dataclass(eq=False)
class CallSite:
    """Every call in the file, with its resolved qualified name (for rules that match shapes)."""

    node: cst.Call
    qualname: str | None
    dotted: str | None
    function: "FunctionInfo"
    loop: LoopInfo | None
    withs: tuple[str, ...]
    order: int


@dataclass(eq=False)
class ClassInfo:
    name: str
    node: cst.ClassDef
    bases: tuple[str, ...]  # qualified (or local dotted) names of the bases
    methods: dict[str, "FunctionInfo"] = field(default_factory=dict)

    @property
    def is_module(self) -> bool:
        return any(b in tn.NN_MODULE_BASES or b.endswith("LightningModule") for b in self.bases)


@dataclass(eq=False)
class FunctionInfo:
    key: str
    name: str
    node: cst.FunctionDef | cst.Module
    cls: ClassInfo | None
    parent: "FunctionInfo | None"
    params: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    loops: list[LoopInfo] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    returns: list[cst.BaseExpression] = field(default_factory=list)
    nested: dict[str, "FunctionInfo"] = field(default_factory=dict)
    callers: list[Event] = field(default_factory=list)
    program: "ProgramModel | None" = None  # the module's model (another module's, once linked)

    def bindings(self, target: str) -> list[Assignment]:
        return [a for a in self.assignments if a.target == target and a.augmented is None]


# --------------------------------------------------------------------------- expanded view


@dataclass(eq=False)
class XEvent:
    event: Event
    chain: tuple[Event, ...]  # call events from the root down to the event's function
    conds: bool  # conditional relative to the enclosing expanded loop

    def site_in(self, function: FunctionInfo) -> cst.CSTNode:
        """The node to report for this event when analysing a loop of `function`."""
        if self.event.function is function:
            return self.event.node
        for call in self.chain:
            if call.function is function:
                return call.node
        return self.event.node


@dataclass(eq=False)
class XLoop:
    loop: LoopInfo
    parent: "XLoop | None"
    chain: tuple[Event, ...]
    items: list[Union[XEvent, "XLoop"]] = field(default_factory=list)

    def walk(self) -> Iterator[tuple[XEvent, tuple["XLoop", ...]]]:
        """Every event in one iteration, in order, with the loops nested inside this one."""
        stack: list = [(iter(self.items), ())]
        while stack:
            it, path = stack[-1]
            item = next(it, None)
            if item is None:
                stack.pop()
            elif isinstance(item, XEvent):
                yield item, path
            else:
                stack.append((iter(item.items), (*path, item)))

    def direct(self) -> Iterator[XEvent]:
        for item in self.items:
            if isinstance(item, XEvent):
                yield item

    def loops(self) -> Iterator["XLoop"]:
        stack: list = [iter(self.items)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, XLoop):
                yield item
                stack.append(iter(item.items))

    def ancestors(self) -> Iterator["XLoop"]:
        p = self.parent
        while p is not None:
            yield p
            p = p.parent


# --------------------------------------------------------------------------- builder


def _walk_calls(node: cst.CSTNode | None) -> Iterator[cst.Call]:
    if node is None:
        return
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            yield n
        stack.extend(iter_children(n))


_CSTNode = cst.CSTNode
_HANDLERS: dict[type, tuple] = {}


_BACKWARD_OWNERS = ("accelerator", "fabric", "self.accelerator", "self.fabric", "engine", "model_engine")


class _Builder:
    """One pre-order walk over the tree (cheaper than libcst's visitor, which rebuilds nodes)."""

    def __init__(self, program: "ProgramModel") -> None:
        self.p = program
        self.order = 0
        self.func_stack: list[FunctionInfo] = [program.module_function]
        self.class_stack: list[ClassInfo | None] = [None]
        self.loop_stack: list[LoopInfo | None] = [None]
        self.cond_stack: list[list[cst.BaseExpression]] = [[]]
        self.with_stack: list[str] = []

    def walk(self, root: cst.CSTNode) -> None:
        """Pre-order walk with an explicit stack (a 600-branch elif or a 1000-term sum must not
        exhaust Python's recursion limit). The stack holds nodes and callables: a handler that
        needs its own order (a loop's iterable before the loop) schedules them with `_then`."""
        todo: list = [root]
        self._todo = todo
        is_node = _IS_NODE.get  # a type lookup: isinstance on libcst's ABC is slow
        while todo:
            node = todo.pop()
            t = type(node)
            k = is_node(t)
            if k is None:
                k = is_node_type(t)
            if not k:
                node()
                continue
            handlers = _HANDLERS.get(t)
            if handlers is None:
                handlers = (getattr(_Builder, f"visit_{t.__name__}", None),
                            getattr(_Builder, f"leave_{t.__name__}", None))
                _HANDLERS[t] = handlers
            visit, leave = handlers
            if visit is not None and visit(self, node) is False:
                continue
            if leave is not None:
                todo.append(functools.partial(leave, self, node))
            start = len(todo)
            for name in child_fields(t):
                value = getattr(node, name)
                tv = type(value)
                k = is_node(tv)
                if k is None:
                    k = is_node_type(tv)
                if k:
                    todo.append(value)
                elif tv is tuple or tv is list:
                    for v in value:
                        tv = type(v)
                        k = is_node(tv)
                        if k is None:
                            k = is_node_type(tv)
                        if k:
                            todo.append(v)
            todo[start:] = todo[start:][::-1]

    def _then(self, *items) -> None:
        """Run these nodes (walked) and callables next, in this order."""
        self._todo.extend(i for i in reversed(items) if i is not None)

    # -- helpers
    @property
    def func(self) -> FunctionInfo:
        return self.func_stack[-1]

    @property
    def loop(self) -> LoopInfo | None:
        return self.loop_stack[-1]

    def _next(self) -> int:
        self.order += 1
        return self.order

    def _add_item(self, item: Item) -> None:
        (self.loop.items if self.loop is not None else self.func.items).append(item)

    def _event(self, kind: str, node: cst.CSTNode, **kw) -> Event:
        ev = Event(kind=kind, node=node, function=self.func, order=self._next(), loop=self.loop,
                   conds=tuple(self.cond_stack[-1]), withs=tuple(self.with_stack), **kw)
        self.func.events.append(ev)
        self._add_item(ev)
        return ev

    # -- imports, classes, functions
    def visit_Import(self, node: cst.Import) -> bool:
        self.p.imports.add(node)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        self.p.imports.add(node)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        bases = []
        for b in node.bases:
            d = dotted_name(b.value)
            bases.append(self.p.imports.resolve_dotted(d) or d or "")
        info = ClassInfo(name=node.name.value, node=node, bases=tuple(bases))
        self.p.classes.setdefault(info.name, info)
        self.class_stack.append(info)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.class_stack.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        cls = self.class_stack[-1]
        parent = self.func
        name = node.name.value
        if cls is not None and parent.node is not cls.node and parent is self.p.module_function:
            key = f"{cls.name}.{name}"
        elif parent is not self.p.module_function:
            key = f"{parent.key}.<locals>.{name}"
        else:
            key = name
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params,
                                          *node.params.kwonly_params)]
        info = FunctionInfo(key=key, name=name, node=node, cls=cls, parent=parent, params=params,
                            program=self.p)
        if cls is not None and parent is self.p.module_function:
            cls.methods.setdefault(name, info)
        elif parent is not self.p.module_function:
            parent.nested[name] = info
        self.p.functions.setdefault(key, info)
        self.func_stack.append(info)
        self.class_stack.append(None)
        self.loop_stack.append(None)
        self.cond_stack.append([])

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.func_stack.pop()
        self.class_stack.pop()
        self.loop_stack.pop()
        self.cond_stack.pop()

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False  # a lambda body runs later, elsewhere: its calls are not events here

    # -- control flow
    def _enter_loop(self, node: Union[cst.For, cst.While]) -> None:
        loop = LoopInfo(node=node, function=self.func, parent=self.loop,
                        withs=tuple(self.with_stack), conds=tuple(self.cond_stack[-1]))
        self.func.loops.append(loop)
        self._add_item(loop)
        self.loop_stack.append(loop)
        self.cond_stack.append([])

    def _leave_loop(self) -> None:
        self.loop_stack.pop()
        self.cond_stack.pop()

    def visit_For(self, node: cst.For) -> bool:
        # the iterable runs once, before the loop
        self._then(node.iter, lambda: self._enter_loop(node), node.body, self._leave_loop,
                   node.orelse)
        return False

    def visit_While(self, node: cst.While) -> None:
        self._enter_loop(node)

    def leave_While(self, original_node: cst.While) -> None:
        self._leave_loop()

    def visit_If(self, node: cst.If) -> bool:
        self._then(node.test, lambda: self.cond_stack[-1].append(node.test), node.body,
                   node.orelse, lambda: self.cond_stack[-1].pop())
        return False

    def visit_Try(self, node: cst.Try) -> None:
        return None

    def visit_With(self, node: cst.With) -> bool:
        names = []
        for item in node.items:
            expr = item.item
            if isinstance(expr, cst.Call):
                expr = expr.func
            q = self.p.imports.resolve(expr)
            names.append(q or dotted_name(expr) or "")

        def leave() -> None:
            del self.with_stack[len(self.with_stack) - len(names):]

        self._then(*(item.item for item in node.items), lambda: self.with_stack.extend(names),
                   node.body, leave)
        return False

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self.func.returns.append(node.value)

    # -- assignments
    def _record_assign(self, target: cst.BaseExpression, value, node, augmented=None) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for i, el in enumerate(target.elements):
                sub = None
                if isinstance(value, (cst.Tuple, cst.List)) and i < len(value.elements):
                    sub = value.elements[i].value
                elif value is not None:
                    sub = _Unpacked(value, i)
                self._record_assign(el.value, sub, node, augmented)
            return
        if isinstance(target, cst.Subscript):
            key = target.slice[0].slice if len(target.slice) == 1 else None
            if isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString) and \
                    key.value.evaluated_value == "lr":
                self._event("lr_set", node)
            return
        d = dotted_name(target)
        if d is None:
            return
        if d.endswith(".grad") and value is not None and isinstance(value, cst.Name) and \
                value.value == "None":
            self._event("grad_reset", node, receiver=d)
        elif d.endswith(".lr") and augmented is None and "param_group" in d:
            self._event("lr_set", node)
        a = Assignment(target=d, value=value, node=node, order=self._next(), function=self.func,
                       loop=self.loop, augmented=augmented)
        self.func.assignments.append(a)
        self.p.assignments.append(a)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._record_assign(t.target, node.value, node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._record_assign(node.target, node.value, node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._record_assign(node.target, node.value, node, augmented=type(node.operator).__name__)

    # -- calls
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        dotted = dotted_name(func)
        qual = self.p.imports.resolve_dotted(dotted)
        self.p.calls.append(CallSite(node=node, qualname=qual, dotted=dotted, function=self.func,
                                     loop=self.loop, withs=tuple(self.with_stack), order=self.order))
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            recv_node = func.value
            recv = dotted_name(recv_node)
            if attr == "backward" and qual is None:
                if recv in _BACKWARD_OWNERS and node.args:
                    self._event("backward", node, receiver=recv, call=node, operand=node.args[0].value)
                    return
                operand = recv_node
                if isinstance(recv_node, cst.Call) and isinstance(recv_node.func, cst.Attribute) \
                        and recv_node.func.attr.value == "scale" and recv_node.args:
                    operand = recv_node.args[0].value  # scaler.scale(loss).backward()
                self._event("backward", node, receiver=recv, call=node, operand=operand)
                return
            if attr == "manual_backward" and node.args:
                self._event("backward", node, receiver=recv, call=node, operand=node.args[0].value)
                return
            if attr == "zero_grad" and qual is None:
                self._event("zero_grad", node, receiver=recv, call=node)
                return
            if attr == "step" and qual is None:
                if node.args and isinstance(node.args[0].value, cst.Name):
                    # optimizer.step(closure): the closure runs inside step(), before the update
                    self._event("call", node, callee_text=node.args[0].value.value, call=None)
                self._event("step", node, receiver=recv, call=node)
                return
            if attr in ("zero_", "detach_", "requires_grad_") and isinstance(recv_node, cst.Attribute) \
                    and recv_node.attr.value == "grad" and attr == "zero_":
                self._event("grad_reset", node, receiver=recv, call=node)
                return
        if qual == "torch.autograd.backward" and node.args:
            self._event("backward", node, call=node, operand=node.args[0].value)
            return
        if tn.is_clip(qual):
            self._event("clip", node, call=node)
            return
        if qual is None and dotted is not None:
            head = dotted.split(".", 1)[0]
            if head in self.p.imports.aliases:
                return
            self._event("call", node, callee_text=dotted, call=node)


@dataclass(eq=False)
class _Unpacked:
    """Element `index` of an unpacked value: `a, b = make()`."""

    value: cst.BaseExpression
    index: int


# --------------------------------------------------------------------------- the model


class ProgramModel:
    """Everything the rules ask about one file. Build with :func:`build_program`."""

    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.imports = ImportMap()
        self.module_function = FunctionInfo(key=MODULE_KEY, name=MODULE_KEY, node=module, cls=None,
                                            parent=None, program=self)
        self.functions: dict[str, FunctionInfo] = {MODULE_KEY: self.module_function}
        self.classes: dict[str, ClassInfo] = {}
        self.calls: list[CallSite] = []
        self.assignments: list[Assignment] = []
        self._param_args: dict[tuple[str, str], list[tuple[FunctionInfo, cst.BaseExpression]]] = {}
        self._eval_memo: dict[tuple[int, str], list[Construction]] = {}
        self._call_memo: dict[tuple[int, int, int], list[Construction]] = {}
        # project link (recipecheck.program.link): the other modules this one imports
        self.path: str | None = None
        self.link = None
        self.foreign_classes: set[str] = set()

    # -- linking
    def _link(self) -> None:
        self.map_constructor_args(self.calls)
        for f in list(self.functions.values()):
            for ev in f.events:
                if ev.kind != "call" or ev.callee_text is None:
                    continue
                callee = self._resolve_callee(f, ev.callee_text)
                if callee is None or callee is f:
                    continue
                ev.callee = callee
                if callee.program is self or callee.program is None:
                    callee.callers.append(ev)
                self._map_params(f, ev, callee)
        # calls of local classes' methods through an instance: trainer.fit()
        self.link_instance_calls(list(self.functions.values()))

    def _helper_backward(self, f: FunctionInfo, ev: Event) -> None:
        """`balancer.backward(losses)` on an instance of a project class (not a Module, not an
        autograd Function) that defines `backward(self, ...)`: a call of that method, whose own
        backward()/clip/step are then seen in order, not a backward() itself."""
        for c in self.evaluate_dotted(f, ev.receiver):
            cls = self.classes.get(c.qualname[6:]) if c.qualname.startswith("local:") else None
            if cls is None or cls.is_module or any("Function" in b for b in cls.bases):
                continue
            m = self.class_method(cls, "backward")
            if m is None or not m.params or m.params[0] != "self":
                continue
            ev.kind, ev.callee_text, ev.operand = "call", f"{ev.receiver}.backward", None
            return

    def link_instance_calls(self, functions: list[FunctionInfo], undo: list | None = None) -> int:
        """Link `obj.meth()` / `obj()` calls whose `obj` evaluates to an instance of a project
        class; returns how many were linked (the project link repeats until none is)."""
        linked = 0
        for f in functions:
            for ev in f.events:
                if ev.kind == "backward" and ev.receiver and ev.receiver not in _BACKWARD_OWNERS:
                    self._helper_backward(f, ev)
                if ev.kind == "call" and ev.callee is None and ev.callee_text and (
                        "." in ev.callee_text or self.link is not None):
                    obj, _, meth = ev.callee_text.rpartition(".")
                    if not obj:  # calling an instance: `loss_scaler(loss, optimizer)` runs __call__
                        obj, meth = ev.callee_text, "__call__"
                    for c in self.evaluate_dotted(f, obj):
                        cls = self.classes.get(c.qualname[6:]) if c.qualname.startswith("local:") else None
                        m = self.class_method(cls, meth) if cls is not None else None
                        if m is not None:
                            ev.callee = m
                            if undo is not None and f.program is not self:
                                undo.append(ev)  # a shared neighbour's event: undone after the lint
                            if m.program is self or m.program is None:
                                m.callers.append(ev)
                            self._map_params(f, ev, ev.callee)
                            linked += 1
                            break
        return linked

    def class_method(self, cls: ClassInfo, meth: str) -> "FunctionInfo | None":
        """`meth` of `cls` or of its first base class that defines it (bases in any module)."""
        seen: set[int] = set()
        while cls is not None and id(cls) not in seen:
            seen.add(id(cls))
            if meth in cls.methods:
                return cls.methods[meth]
            cls = next((self.classes[b.rsplit(".", 1)[-1]] for b in cls.bases
                        if b.rsplit(".", 1)[-1] in self.classes), None)
        return None

    def _resolve_callee(self, f: FunctionInfo, text: str) -> FunctionInfo | None:
        if "." not in text:
            scope: FunctionInfo | None = f
            while scope is not None:
                if text in scope.nested:
                    return scope.nested[text]
                scope = scope.parent
            prog = f.program or self
            fn = prog.functions.get(text)
            if fn is not None and fn.cls is None:
                return fn
            return self._project_function(f, text)
        head, _, meth = text.partition(".")
        if head in ("self", "cls") and "." not in meth:
            cls = f.cls or (f.parent.cls if f.parent else None)
            return self.class_method(cls, meth) if cls is not None else None
        if "." not in meth and head in (f.program or self).classes:
            # `Trainer.run(model, ...)`: a classmethod or staticmethod called through its class
            # (an instance method called so would take its instance as first argument)
            m = self.class_method((f.program or self).classes[head], meth)
            if m is not None and isinstance(m.node, cst.FunctionDef) and \
                    not (m.params and m.params[0] == "self"):
                return m
        return self._project_function(f, text)

    def _project_function(self, f: FunctionInfo, text: str) -> "FunctionInfo | None":
        """A function or static-style method of another project module: `engine.train_one_epoch`."""
        if self.link is None:
            return None
        target = self.link.lookup(f.program or self, text)
        return target if isinstance(target, FunctionInfo) else None

    def param_args(self, f: FunctionInfo, name: str) -> list[tuple[FunctionInfo, cst.BaseExpression]]:
        """(caller, argument) pairs passed to parameter `name` of `f`, from any linked module."""
        args = self._param_args.get((id(f), name), [])
        if f.program is not None and f.program is not self:
            args = args + f.program._param_args.get((id(f), name), [])
        return args

    def _map_params(self, caller: FunctionInfo, ev: Event, callee: FunctionInfo) -> None:
        call = ev.call
        if call is None or not isinstance(callee.node, cst.FunctionDef):
            return
        for name, value in bind_arguments(call, callee.params, callee.cls is not None):
            self._param_args.setdefault((id(callee), name), []).append((caller, value))

    # -- value resolution
    def evaluate(self, f: FunctionInfo, expr, depth: int = 0) -> list[Construction]:
        """The constructions an expression may evaluate to (empty when unknown)."""
        if expr is None or depth > 8:
            return []
        if isinstance(expr, (cst.Call, _Unpacked)):
            # memoized: chains of helper functions returning each other's results would
            # otherwise be re-evaluated exponentially often
            key = (id(f), id(expr), getattr(expr, "index", -1))
            hit = self._call_memo.get(key)
            if hit is None:
                self._call_memo[key] = []  # recursion guard
                hit = self._evaluate_call(f, expr, depth)
                self._call_memo[key] = hit
            return hit
        if isinstance(expr, cst.IfExp):  # either branch may run
            return self.evaluate(f, expr.body, depth + 1) + self.evaluate(f, expr.orelse, depth + 1)
        if isinstance(expr, cst.Subscript):
            # `loaders["train"]` where loaders is a dict literal, here or returned by a helper
            out = []
            key = _string_key(expr)
            if key is not None:
                for fn, d in self._dict_literals(f, expr.value, depth + 1):
                    for el in d.elements:
                        if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) and \
                                el.key.evaluated_value == key:
                            out += self.evaluate(fn, el.value, depth + 1)
            return out
        d = dotted_name(expr)
        if d is not None:
            if d.endswith(".module") and d.count(".") >= 1:  # DDP/DataParallel's wrapped model
                inner = self.evaluate_dotted(f, d[: -len(".module")], depth + 1)
                if inner:
                    return inner
            return self.evaluate_dotted(f, d, depth + 1)
        return []

    def _dict_literals(self, f: FunctionInfo, expr, depth: int) -> list[tuple[FunctionInfo, cst.Dict]]:
        """The dict literals (with the function they are written in) a name or a helper call
        stands for: `loaders = {...}`, `loaders = get_loaders(...)` whose return is `{...}`."""
        if depth > 6:
            return []
        if isinstance(expr, cst.Dict):
            return [(f, expr)]
        if isinstance(expr, cst.Call):
            out = []
            for fn in self._callees_of(f, expr):
                for r in fn.returns:
                    out += self._dict_literals(fn, r, depth + 1)
            return out
        if isinstance(expr, cst.Name):
            out = []
            for a in f.bindings(expr.value):
                if isinstance(a.value, (cst.Dict, cst.Call, cst.Name)) and a.value is not expr:
                    out += self._dict_literals(f, a.value, depth + 1)
            return out
        return []

    def _evaluate_call(self, f: FunctionInfo, expr, depth: int) -> list[Construction]:
        if isinstance(expr, _Unpacked):
            out = []
            if isinstance(expr.value, cst.Call):
                for fn in self._callees_of(f, expr.value):
                    for r in fn.returns:
                        if isinstance(r, cst.Tuple) and expr.index < len(r.elements):
                            out += self.evaluate(fn, r.elements[expr.index].value, depth + 1)
            return out
        if isinstance(expr, cst.Call):
            qual = (f.program or self).imports.resolve(expr.func)
            if qual is not None:
                return [Construction(qualname=qual, node=expr, function=f)]
            d = dotted_name(expr.func)
            if d is not None and d in self.classes:
                return [Construction(qualname=f"local:{d}", node=expr, function=f)]
            if d is not None and self.link is not None:
                target = self.link.lookup(f.program or self, d)
                if isinstance(target, ClassInfo) and target.name in self.classes:
                    return [Construction(qualname=f"local:{target.name}", node=expr, function=f)]
            out = []
            for fn in self._callees_of(f, expr):
                for r in fn.returns:
                    out += self.evaluate(fn, r, depth + 1)
            return out
        return []

    def _callees_of(self, f: FunctionInfo, call: cst.Call) -> list[FunctionInfo]:
        d = dotted_name(call.func)
        fn = self._resolve_callee(f, d) if d else None
        if fn is None and d and "." in d and not d.startswith("self."):
            # a method of a project class through an instance: model.configure_optimizers()
            obj, _, meth = d.rpartition(".")
            for c in self.evaluate_dotted(f, obj):
                cls = self.classes.get(c.qualname[6:]) if c.qualname.startswith("local:") else None
                m = self.class_method(cls, meth) if cls is not None else None
                if m is not None:
                    return [m]
        return [fn] if fn is not None else []

    def evaluate_dotted(self, f: FunctionInfo, dotted: str, depth: int = 0) -> list[Construction]:
        key = (id(f), dotted)
        if key in self._eval_memo:
            return self._eval_memo[key]
        self._eval_memo[key] = []  # recursion guard
        out: list[Construction] = []
        if dotted.startswith("self.") and dotted.count(".") == 1:
            cls = f.cls or (f.parent.cls if f.parent else None)
            if cls is not None:
                for m in cls.methods.values():
                    for a in m.bindings(dotted):
                        out += self._with_target(self.evaluate(m, a.value, depth + 1), dotted)
        elif "." not in dotted:
            scope: FunctionInfo | None = f
            while scope is not None and not out:
                binds = scope.bindings(dotted)
                for a in binds:
                    out += self._with_target(self.evaluate(scope, a.value, depth + 1), dotted)
                if not binds and dotted in scope.params:
                    for caller, arg in self.param_args(scope, dotted):
                        out += self.evaluate(caller, arg, depth + 1)
                    break
                if binds:
                    break
                scope = scope.parent
                if scope is not None and scope is self.module_function:
                    binds = scope.bindings(dotted)
                    for a in binds:
                        out += self._with_target(self.evaluate(scope, a.value, depth + 1), dotted)
                    break
        # dedupe while keeping order
        seen: set[int] = set()
        uniq = []
        for c in out:
            if id(c.node) not in seen:
                seen.add(id(c.node))
                uniq.append(c)
        self._eval_memo[key] = uniq
        return uniq

    @staticmethod
    def _with_target(objs: list[Construction], target: str) -> list[Construction]:
        for o in objs:
            if o.target is None:
                o.target = target
        return objs

    # -- roles
    def objects(self, ev_or_f, dotted: str | None) -> list[Construction]:
        f = ev_or_f.function if isinstance(ev_or_f, Event) else ev_or_f
        if not dotted:
            return []
        return self.evaluate_dotted(f, dotted)

    def role_of(self, f: FunctionInfo, dotted: str | None) -> str | None:
        """Role of the object named `dotted` in `f`; falls back to the name when unresolved."""
        if not dotted:
            return None
        roles = {o.role for o in self.evaluate_dotted(f, dotted) if o.role}
        if len(roles) == 1:
            return roles.pop()
        if roles:
            return None
        leaf = dotted.rsplit(".", 1)[-1].lower()
        if "sched" in leaf:
            return "scheduler"
        if "scaler" in leaf:
            return "scaler"
        if leaf in ("opt", "optim") or leaf.startswith(("optimizer", "opt_", "optim_")) or \
                leaf.endswith(("optimizer", "_opt", "_optim", "optim")):
            return "optimizer"
        return None

    def schedulers_of(self, ev: Event) -> list[Construction]:
        return [o for o in self.objects(ev, ev.receiver) if o.role == "scheduler"]

    def steps_optimizer_in(self, xl: "XLoop") -> bool:
        """An optimizer step sits directly in the loop `xl` (not in a loop nested inside it):
        what runs beside it runs once per optimizer step."""
        return any(self.optimizer_step_target(e.event) is not None for e in xl.direct())

    def optimizer_step_target(self, ev: Event) -> str | None:
        """For a step event that steps an optimizer: a key naming that optimizer, else None."""
        if ev.kind != "step":
            return None
        inner = self.delegate(ev) if self.link is not None else None
        if inner is not None:
            return self.optimizer_step_target(inner)
        role = self.role_of(ev.function, ev.receiver)
        if role == "optimizer":
            objs = [o for o in self.objects(ev, ev.receiver) if o.role == "optimizer"]
            return f"obj:{id(objs[0].node)}" if len(objs) == 1 else f"name:{ev.receiver}"
        if role == "scaler" and ev.call is not None and ev.call.args:
            arg = ev.call.args[0].value
            d = dotted_name(arg)
            objs = [o for o in self.evaluate(ev.function, arg) if o.role == "optimizer"]
            if len(objs) == 1:
                return f"obj:{id(objs[0].node)}"
            return f"name:{d}" if d else "name:?"
        return None

    def reset_scope(self, ev: Event) -> str | None:
        """What a gradient reset clears: an optimizer key, "module:<name>", "all", or None."""
        if ev.kind == "grad_reset":
            return "all"
        if ev.kind != "zero_grad":
            return None
        inner = self.delegate(ev) if self.link is not None else None
        if inner is not None:
            return self.reset_scope(inner)
        role = self.role_of(ev.function, ev.receiver)
        if role == "optimizer":
            objs = [o for o in self.objects(ev, ev.receiver) if o.role == "optimizer"]
            return f"obj:{id(objs[0].node)}" if len(objs) == 1 else f"name:{ev.receiver}"
        return f"module:{ev.receiver}"

    def reset_covers(self, scope: str | None, opt_key: str, unknown: bool = False) -> bool:
        """Whether a reset of `scope` clears the gradients that optimizer `opt_key` steps on.

        `unknown`: the answer when `scope` is a module name that may be another name for the
        optimizer's module (`netG = self.gen`): True where a missed reset would be a false alarm
        (RC101), False where a reset wrongly taken as covering would be one (RC108)."""
        if scope is None:
            return False
        if scope == "all" or scope == opt_key:
            return True
        if scope.startswith("module:"):
            owner = None
            opt = self.optimizer_for_key(opt_key)
            if opt is not None:
                owner = opt.params_owner
            module = scope[len("module:"):]
            if owner is None or module is None:
                return True
            leaf = module.rsplit(".", 1)[-1]
            if owner.rsplit(".", 1)[-1] == leaf:
                return True
            # only a module that some other optimizer steps is known not to be this one's
            return unknown and not any(c.params_owner and c.params_owner.rsplit(".", 1)[-1] == leaf
                           for c in self.constructions("optimizer"))
        if scope.startswith("name:") and opt_key.startswith("name:"):
            return scope.rsplit(".", 1)[-1] == opt_key.rsplit(".", 1)[-1]
        if scope.startswith("name:") or opt_key.startswith("name:"):
            # one side unresolved: same leaf name counts as the same optimizer
            a = self._key_leaf(scope)
            b = self._key_leaf(opt_key)
            return a is not None and a == b
        return False

    def _key_leaf(self, key: str) -> str | None:
        if key.startswith("name:"):
            return key[5:].rsplit(".", 1)[-1]
        opt = self.optimizer_for_key(key)
        if opt is not None and opt.target:
            return opt.target.rsplit(".", 1)[-1]
        return None

    def is_scheduler_step(self, ev: Event) -> bool:
        return ev.kind == "step" and self.role_of(ev.function, ev.receiver) == "scheduler"

    def optimizer_for_key(self, key: str) -> Construction | None:
        for c in self.constructions("optimizer"):
            if key == f"obj:{id(c.node)}":
                return c
        return None

    # -- project queries (the file's own functions and those of other modules they call)
    @cached_property
    def reachable_functions(self) -> list[FunctionInfo]:
        """The file's functions and every function of any module reached through linked calls."""
        out: list[FunctionInfo] = list(self.functions.values())
        seen = {id(f) for f in out}
        i = 0
        while i < len(out):
            for ev in out[i].events:
                c = ev.callee
                if c is not None and id(c) not in seen:
                    seen.add(id(c))
                    out.append(c)
            i += 1
        return out

    def map_constructor_args(self, calls: list[CallSite]) -> None:
        """`Wrapper(optim.Adam(...), ...)`: the arguments flow into `Wrapper.__init__`'s parameters,
        so `self._optimizer` inside the class evaluates to the Adam construction."""
        for cs in calls:
            if cs.qualname is not None or cs.dotted is None:
                continue
            cls = self.classes.get(cs.dotted)
            if cls is None and self.link is not None:
                t = self.link.lookup(cs.function.program or self, cs.dotted)
                cls = t if isinstance(t, ClassInfo) else None
            init = self.class_method(cls, "__init__") if cls is not None else None
            if init is None or not isinstance(init.node, cst.FunctionDef):
                continue
            for name, value in bind_arguments(cs.node, init.params, True):
                self._param_args.setdefault((id(init), name), []).append((cs.function, value))

    def delegate(self, ev: Event) -> "Event | None":
        """For `wrapper.zero_grad()` / `wrapper.step()` on an instance of a project class that
        defines that method: the same kind of event inside the method (`self._optimizer.step()`)."""
        if ev.kind not in ("zero_grad", "step") or not ev.receiver:
            return None
        meth = "zero_grad" if ev.kind == "zero_grad" else "step"
        for c in self.evaluate_dotted(ev.function, ev.receiver):
            if not c.qualname.startswith("local:"):
                continue
            m = self.class_method(self.classes.get(c.qualname[6:]), meth) if \
                c.qualname[6:] in self.classes else None
            if m is None:
                continue
            for inner in m.events:
                if inner.kind == ev.kind and inner is not ev:
                    return inner
        return None

    # -- whole-file queries
    @cached_property
    def all_constructions(self) -> list[Construction]:
        out = []
        for a in self.assignments:
            if a.augmented is None and isinstance(a.value, cst.Call):
                out += [c for c in self.evaluate(a.function, a.value) if c.node is a.value]
                for c in out[-1:]:
                    if c.target is None:
                        c.target = a.target
        # constructions passed directly as arguments or returned (Lightning's configure_optimizers)
        seen = {id(c.node) for c in out}
        for cs in self.calls:
            if id(cs.node) not in seen and cs.qualname is not None:
                c = Construction(qualname=cs.qualname, node=cs.node, function=cs.function)
                if c.role is not None:
                    out.append(c)
                    seen.add(id(cs.node))
        return out

    def constructions(self, role: str) -> list[Construction]:
        return [c for c in self.all_constructions if c.role == role]

    # -- expanded view
    @cached_property
    def roots(self) -> list[FunctionInfo]:
        return [f for f in self.functions.values() if not f.callers]

    @cached_property
    def expanded(self) -> list[XLoop]:
        """Top-level expanded loops of every root function (calls inlined)."""
        out: list[XLoop] = []
        # Inlining copies a helper's events once per call path: helpers that call each other
        # have exponentially many paths. The expansion is capped at a multiple of the program's
        # own size; past the cap, further calls stay opaque (their events are not inlined).
        self._expand_budget = expansion_budget(self)
        for f in self.roots:
            for item in self._expand_items(f.items, None, (), (id(f),), False):
                if isinstance(item, XLoop):
                    out.append(item)
        return out

    def _expand_items(self, items, parent, chain, stack, cond) -> list:
        out: list = []
        for item in items:
            if isinstance(item, LoopInfo):
                self._expand_budget -= 1
                xl = XLoop(loop=item, parent=parent, chain=chain)
                xl.items = self._expand_items(item.items, xl, chain, stack, False)
                out.append(xl)
            elif item.kind == "call":
                callee = item.callee
                if callee is None or id(callee) in stack or len(stack) > _MAX_INLINE_DEPTH:
                    continue
                self._expand_budget -= 1
                if self._expand_budget < 0:
                    continue
                out += self._expand_items(callee.items, parent, (*chain, item), (*stack, id(callee)),
                                          cond or item.conditional)
            else:
                self._expand_budget -= 1
                out.append(XEvent(event=item, chain=chain, conds=cond or item.conditional))
        return out

    def all_xloops(self) -> Iterator[XLoop]:
        for top in self.expanded:
            yield top
            yield from top.loops()

    def is_batch_loop(self, xl: XLoop) -> bool:
        return any(ev.event.kind == "backward" for ev in xl.direct())

    def encloses_batch_loop(self, xl: XLoop) -> bool:
        return any(self.is_batch_loop(inner) for inner in xl.loops())

    @cached_property
    def batch_loops(self) -> list[XLoop]:
        return [xl for xl in self.all_xloops() if self.is_batch_loop(xl)]

    @cached_property
    def epoch_loops(self) -> list[XLoop]:
        return [xl for xl in self.all_xloops() if self.encloses_batch_loop(xl)]

    def uses_transformer(self) -> bool:
        return any(cs.qualname and cs.qualname.startswith(tn.TRANSFORMER_MARKERS) for cs in self.calls)


_EXPAND_FACTOR = 4
_EXPAND_MIN = 200


def expansion_budget(program: "ProgramModel") -> int:
    """How many items an inlined (expanded) view of `program` may hold: a multiple of the
    program's own size, so that every expansion stays linear in it."""
    return _EXPAND_FACTOR * sum(_count_items(f.items) for f in program.functions.values()) + _EXPAND_MIN


def _count_items(items) -> int:
    n = 0
    stack = list(items)
    while stack:
        item = stack.pop()
        n += 1
        if isinstance(item, LoopInfo):
            stack.extend(item.items)
    return n


def build_program(module: cst.Module) -> ProgramModel:
    program = ProgramModel(module)
    _Builder(program).walk(module)
    program._link()
    return program


def _string_key(sub: cst.Subscript) -> str | None:
    if len(sub.slice) != 1 or not isinstance(sub.slice[0].slice, cst.Index):
        return None
    v = sub.slice[0].slice.value
    if isinstance(v, cst.SimpleString):
        return str(v.evaluated_value)
    return None
