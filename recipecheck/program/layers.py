"""The layer-order analysis: for each model of a file, the ordered layers and operations.

A *unit* is one model the file defines: an ``nn.Module`` subclass (its ``forward`` is followed
statement by statement, with ``self.<attr>`` resolved to the layer built in ``__init__``,
``nn.Sequential`` attributes, local sub-modules, helper methods and static ``nn.ModuleList``
iterations inlined) or an ``nn.Sequential(...)`` construction (its arguments, an
``OrderedDict``, or a list unpacked with ``*layers`` that is built by literals, ``.append``,
``.extend`` and ``+=``, in loops whose order is static).

Every layer application is recorded as a :class:`Step`: the operation and the history of
operations its input went through. Rules ask questions such as "which op feeds this
BatchNorm" or "what does the model return last" from these steps, so they never walk the
syntax tree themselves. Computed lazily once per :class:`ProgramModel` and cached on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import libcst as cst

from recipecheck.program.nodes import call_arg, literal_number

from recipecheck.program import torchnames as tn
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import Construction, FunctionInfo, ProgramModel

# ----------------------------------------------------------------------------- vocabulary

_NN_KINDS: dict[str, str] = {}
for _n in ("Linear", "Bilinear", "LazyLinear"):
    _NN_KINDS[_n] = "linear"
for _n in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
           "LazyConvTranspose3d"):
    _NN_KINDS[_n] = "conv"
for _n in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d",
           "LazyBatchNorm2d", "LazyBatchNorm3d"):
    _NN_KINDS[_n] = "bn"
for _n in ("LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LocalResponseNorm", "RMSNorm", "LazyInstanceNorm1d", "LazyInstanceNorm2d",
           "LazyInstanceNorm3d"):
    _NN_KINDS[_n] = "norm"
for _n in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
    _NN_KINDS[_n] = "dropout"
for _n in ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "CELU", "SELU", "GELU", "SiLU",
           "Mish", "Softplus", "Hardswish", "Hardsigmoid", "Hardtanh", "Softsign", "Tanhshrink",
           "GLU", "LogSigmoid", "Threshold"):
    _NN_KINDS[_n] = "act"
_NN_KINDS.update({"Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax", "Softmax2d": "softmax",
                  "LogSoftmax": "log_softmax", "Flatten": "shape", "Unflatten": "shape",
                  "Identity": "shape", "Embedding": "embedding", "EmbeddingBag": "embedding",
                  "LSTM": "rnn", "GRU": "rnn", "RNN": "rnn"})

_FUNCTIONAL_KINDS = {
    "relu": "act", "relu_": "act", "relu6": "act", "leaky_relu": "act", "leaky_relu_": "act",
    "elu": "act", "elu_": "act", "selu": "act", "celu": "act", "gelu": "act", "silu": "act",
    "mish": "act", "softplus": "act", "hardswish": "act", "hardtanh": "act", "prelu": "act",
    "rrelu": "act", "glu": "act", "logsigmoid": "act", "softsign": "act",
    "sigmoid": "sigmoid", "tanh": "tanh",
    "softmax": "softmax", "log_softmax": "log_softmax",
    "dropout": "dropout", "dropout1d": "dropout", "dropout2d": "dropout", "dropout3d": "dropout",
    "alpha_dropout": "dropout", "feature_alpha_dropout": "dropout",
    "batch_norm": "bn", "layer_norm": "norm", "group_norm": "norm", "instance_norm": "norm",
    "rms_norm": "norm", "normalize": "norm",
    "linear": "linear", "conv1d": "conv", "conv2d": "conv", "conv3d": "conv",
    "conv_transpose1d": "conv", "conv_transpose2d": "conv", "conv_transpose3d": "conv",
    "flatten": "shape", "reshape": "shape", "squeeze": "shape", "unsqueeze": "shape",
    "transpose": "shape", "permute": "shape", "contiguous": "shape",
    "cat": "merge", "concat": "merge", "stack": "merge", "add": "add",
}
_FUNCTIONAL_PREFIXES = ("torch.nn.functional.", "torch.", "torch.special.")
_TENSOR_METHOD_KINDS = {
    "relu": "act", "relu_": "act", "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "tanh": "tanh",
    "tanh_": "tanh", "softmax": "softmax", "log_softmax": "log_softmax",
    "view": "shape", "reshape": "shape", "flatten": "shape", "squeeze": "shape",
    "unsqueeze": "shape", "transpose": "shape", "permute": "shape", "contiguous": "shape",
    "view_as": "shape", "reshape_as": "shape", "to": "shape", "float": "shape", "type_as": "shape",
    "clone": "shape", "expand": "shape", "expand_as": "shape",
}
# moving a model or switching modes returns the same module
_MODULE_PASSTHROUGH = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval",
                       "requires_grad_"}
ACTIVATIONS = {"act", "sigmoid", "tanh"}
WEIGHTED = {"linear", "conv"}
NORMS = {"bn", "norm"}

# positional index of `dropout` for the classes that take it as a hyperparameter
_DROPOUT_KW_POSITION = {
    "Transformer": 5, "TransformerEncoderLayer": 3, "TransformerDecoderLayer": 3,
    "MultiheadAttention": 2, "LSTM": None, "GRU": None, "RNN": None,
}
_BIAS_POSITION = {"Linear": 2, "Bilinear": 3, "LazyLinear": 1, "Conv1d": 7, "Conv2d": 7, "Conv3d": 7,
                  "ConvTranspose1d": 8, "ConvTranspose2d": 8, "ConvTranspose3d": 8}
_MAX_UNROLL = 16
_MAX_DEPTH = 8
_MAX_RESOLVE_DEPTH = 10  # resolve_module <-> _resolve_moved, counted together
_MAX_CHAIN = 256  # ops kept in one value's history
_MAX_STEPS = 4000  # steps recorded per unit
_FILE_BUDGET = 60000
_BUDGET = 8000  # expressions evaluated per unit: generated or pathological code stays fast


def nn_kind(qualname: str | None) -> str | None:
    """The layer kind of a `torch.nn.X` class, or None."""
    if not qualname or not qualname.startswith("torch.nn."):
        return None
    return _NN_KINDS.get(tn.last(qualname))


def functional_kind(qualname: str | None) -> str | None:
    """The op kind of a torch function (`torch.nn.functional.relu`, `torch.sigmoid`), or None."""
    if not qualname or not qualname.startswith("torch"):
        return None
    name = tn.last(qualname)
    if not qualname.startswith(_FUNCTIONAL_PREFIXES) or name not in _FUNCTIONAL_KINDS:
        return None
    head = qualname[: -len(name) - 1]
    if head not in ("torch", "torch.nn.functional", "torch.special"):
        return None
    return _FUNCTIONAL_KINDS[name]






def call_arg_node(call: cst.Call, keyword: str, position: int | None) -> cst.Arg | None:
    pos = 0
    for a in call.args:
        if a.keyword is not None:
            if a.keyword.value == keyword:
                return a
        elif a.star:
            return None
        else:
            if position is not None and pos == position:
                return a
            pos += 1
    return None


def dropout_p(call: cst.Call, qualname: str) -> tuple[float | None, cst.CSTNode | None]:
    """(literal dropout probability, its node) of a dropout layer/call or a `dropout=` kwarg."""
    name = tn.last(qualname)
    if qualname.startswith("torch.nn.functional."):
        node = call_arg(call, "p", 1)
    elif name in _DROPOUT_KW_POSITION:
        node = call_arg(call, "dropout", _DROPOUT_KW_POSITION[name])
    else:
        node = call_arg(call, "p", 0)
    return literal_number(node), node


def has_bias(call: cst.Call, qualname: str) -> bool | None:
    """Whether a Linear/Conv construction keeps its bias (True by default); None if unknown."""
    name = tn.last(qualname)
    if name not in _BIAS_POSITION and not name.startswith(("LazyConv", "Conv")):
        return None
    node = call_arg(call, "bias", _BIAS_POSITION.get(name))
    if node is None:
        if any(a.star for a in call.args):
            return None
        return True
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return node.value == "True"
    return None


# ----------------------------------------------------------------------------- records


@dataclass(eq=False)
class Op:
    """One layer or operation a tensor goes through."""

    kind: str  # linear conv bn norm dropout act sigmoid tanh softmax log_softmax shape add merge
    #            embedding rnn module other
    label: str  # what the user wrote: `nn.BatchNorm1d`, `F.dropout`, `self.bn`
    node: cst.CSTNode  # where it is applied: the call in forward(), or the element of nn.Sequential
    ctor: cst.Call | None = None  # the construction of the module (nn.Linear(...)), if known
    qualname: str | None = None
    functional: bool = False
    conditional: bool = False  # under an `if`, or appended conditionally
    function: FunctionInfo | None = None  # where `node` is
    attr: str | None = None  # the name the module is called through (`self.bn2`), if any

    def describe(self) -> str:
        """`self.bn2` (nn.BatchNorm1d), or `F.dropout`, for messages."""
        if self.attr and self.attr != self.label:
            return f"`{self.attr}` ({self.label})"
        return f"`{self.label}`"

    @property
    def significant(self) -> bool:
        return self.kind != "shape"

    @property
    def is_activation(self) -> bool:
        return self.kind in ACTIVATIONS

    def bias(self) -> bool | None:
        if self.ctor is None or self.qualname is None or self.kind not in WEIGHTED:
            return None
        return has_bias(self.ctor, self.qualname)


@dataclass(eq=False)
class Val:
    """A tensor value inside forward(): the ops applied to it since the model input."""

    ops: tuple[Op, ...] = ()
    from_input: bool = False  # derives from a forward() parameter (the model's input)

    def then(self, op: Op) -> "Val":
        ops = self.ops + (op,)
        if len(ops) > _MAX_CHAIN:
            ops = ops[-_MAX_CHAIN:]  # long chains keep their recent history only
        return Val(ops, self.from_input)


@dataclass(eq=False)
class Step:
    op: Op
    before: tuple[Op, ...]  # the ops the input went through, in order
    from_input: bool

    def previous(self, skip: Iterable[str] = ("shape",)) -> list[Op]:
        """The ops before this one, nearest first, without the kinds in `skip`."""
        skip = set(skip)
        return [o for o in reversed(self.before) if o.kind not in skip]


@dataclass(eq=False)
class Unit:
    """One model: an nn.Module subclass or an nn.Sequential construction."""

    kind: str  # "class" | "sequential"
    name: str
    node: cst.CSTNode
    function: FunctionInfo | None
    steps: list[Step] = field(default_factory=list)
    output: Val | None = None  # what the model returns (the last unconditional return)
    top_level: bool = False  # not a part of another model of this file
    instantiated: bool = False  # built in this file as a model (`model = Net()`), not only defined
    complete: bool = True  # the output is known from input to return

    def output_ops(self) -> list[Op]:
        """The significant ops of the model output, last first."""
        if self.output is None:
            return []
        return [o for o in reversed(self.output.ops) if o.significant]

    def last_op(self) -> Op | None:
        ops = self.output_ops()
        return ops[0] if ops else None


@dataclass(eq=False)
class _Elem:
    expr: cst.BaseExpression
    function: FunctionInfo
    conditional: bool = False


@dataclass(eq=False)
class _ModRef:
    """A name in forward() bound to a module (a loop variable over an nn.ModuleList)."""

    elem: _Elem


# ----------------------------------------------------------------------------- analysis


class LayerAnalysis:
    """Units of one file. Use :func:`layer_analysis` to get the cached instance."""

    def __init__(self, program: ProgramModel) -> None:
        self.p = program
        self.units: list[Unit] = []
        self._class_units: dict[str, Unit] = {}
        self._seq_units: dict[int, Unit] = {}
        self._list_memo: dict[tuple[int, str], list[_Elem] | None] = {}
        self._moving: set[tuple[int, str]] = set()
        self._nested_containers: set[int] = set()
        self._module_classes = self._find_module_classes()
        self.budget = _BUDGET
        self._file_budget = _FILE_BUDGET
        self._build()

    def _start_unit(self) -> None:
        """Give the next unit its share of the evaluation budget."""
        self._file_budget -= _BUDGET - max(self.budget, 0)
        self.budget = max(0, min(_BUDGET, self._file_budget))

    # -- which classes are modules (also through a local base class)
    def _find_module_classes(self) -> set[str]:
        out = {n for n, c in self.p.classes.items() if c.is_module}
        changed = True
        while changed:
            changed = False
            for n, c in self.p.classes.items():
                if n not in out and any(b in out for b in c.bases):
                    out.add(n)
                    changed = True
        return out

    def is_module_class(self, name: str | None) -> bool:
        return name is not None and name in self._module_classes

    def _method(self, cls_name: str, meth: str) -> FunctionInfo | None:
        seen = set()
        while cls_name in self.p.classes and cls_name not in seen:
            seen.add(cls_name)
            c = self.p.classes[cls_name]
            if meth in c.methods:
                return c.methods[meth]
            cls_name = next((b for b in c.bases if b in self.p.classes), "")
        return None

    # -- building
    def _build(self) -> None:
        p = self.p
        seq_calls = [cs for cs in p.calls if cs.qualname in ("torch.nn.Sequential",
                                                               "torch.nn.modules.container.Sequential")]
        container_q = ("torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict")
        for cs in p.calls:
            if cs.qualname in container_q:
                for a in cs.node.args:
                    for n in _element_calls(a.value):
                        self._nested_containers.add(id(n))
        seq_elems = [(cs, self.sequence_elements(cs.node, cs.function)) for cs in seq_calls]
        appended = self._appended
        inner_classes: set[str] = set()
        built: set[str] = set()
        for cs in p.calls:
            if cs.dotted in self._module_classes:
                owner = _owner_class(cs.function)
                # a class with a forward() is a module even when its base is not known as one
                # (`BertModel(PreTrainedModel)` from a library): what it builds is its block
                modulelike = owner is not None and (
                    owner.name in self._module_classes or "forward" in owner.methods)
                if not modulelike:
                    built.add(cs.dotted)
                if (modulelike and owner.name != cs.dotted) \
                        or id(cs.node) in self._nested_containers or id(cs.node) in appended:
                    inner_classes.add(cs.dotted)
        # classes first: their forward inlines Sequential attributes
        for name in sorted(self._module_classes):
            cls = p.classes[name]
            fwd = self._method(name, "forward")
            if fwd is None or not isinstance(fwd.node, cst.FunctionDef):
                continue
            unit = Unit("class", name, cls.node, fwd, top_level=name not in inner_classes)
            self._start_unit()
            unit.instantiated = unit.top_level and (name in built or any(
                b.endswith("LightningModule") for b in cls.bases))
            w = _ForwardWalker(self, unit.steps)
            out = w.run_function(fwd, (Val((), True),), (("cls", id(cls)),))
            unit.output = out
            unit.complete = out is not None
            self._class_units[name] = unit
            self.units.append(unit)
        targets = {id(a.value): a.target for a in p.assignments if isinstance(a.value, cst.Call)}
        for cs, elems in seq_elems:
            if elems is None:
                continue
            target = targets.get(id(cs.node))
            name = f"{target} = nn.Sequential(...)" if target else "nn.Sequential(...)"
            unit = Unit("sequential", name, cs.node, cs.function)
            self._start_unit()
            w = _ForwardWalker(self, unit.steps)
            unit.output = w.apply_elems(elems, Val((), True), ())
            unit.top_level = self._sequential_is_model(cs)
            unit.instantiated = unit.top_level and (cs.function is p.module_function or
                                                    bool(cs.function.callers))
            self._seq_units[id(cs.node)] = unit
            self.units.append(unit)

    def _sequential_is_model(self, cs) -> bool:
        """An nn.Sequential used as the model itself: not inside a module class or a container."""
        if id(cs.node) in self._nested_containers or id(cs.node) in self._appended:
            return False
        owner = _owner_class(cs.function)
        if owner is not None:
            return False
        f = cs.function
        if f is not self.p.module_function and f.callers:
            # built by a helper: a model only if no module class calls that helper
            if any(_owner_class(ev.function) is not None for ev in f.callers):
                return False
        return True

    @property
    def _appended(self) -> set[int]:
        """Calls that are elements of lists built for a container (`layers.append(nn.Sequential(...))`)."""
        got = getattr(self, "_appended_ids", None)
        if got is None:
            got = set()
            for elems in self._list_memo.values():
                for e in elems or ():
                    got.add(id(e.expr))
            self._appended_ids = got
        return got

    # -- sequence elements
    def sequence_elements(self, call: cst.Call, f: FunctionInfo) -> list[_Elem] | None:
        """The layers of `nn.Sequential(...)` in order, or None when the order is not static."""
        out: list[_Elem] = []
        for a in call.args:
            if a.keyword is not None:
                continue
            v = a.value
            if a.star == "*":
                got = self.list_elements(v, f)
                if got is None:
                    return None
                out += got
            elif a.star:
                return None
            elif isinstance(v, cst.Call) and (dotted_name(v.func) or "").endswith("OrderedDict"):
                got = _ordered_dict_elements(v, f)
                if got is None:
                    return None
                out += got
            else:
                out.append(_Elem(v, f))
        return out

    def list_elements(self, expr: cst.BaseExpression, f: FunctionInfo) -> list[_Elem] | None:
        """The elements of a list expression or of a list variable built statically in `f`."""
        if isinstance(expr, (cst.List, cst.Tuple)):
            out = []
            for el in expr.elements:
                if isinstance(el, cst.StarredElement):
                    got = self.list_elements(el.value, f)
                    if got is None:
                        return None
                    out += got
                else:
                    out.append(_Elem(el.value, f))
            return out
        if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
            n = _comp_count(expr)
            inner = expr.elt
            if isinstance(inner, (cst.List, cst.Tuple)):
                one = [_Elem(e.value, f) for e in inner.elements if isinstance(e, cst.Element)]
            else:
                one = [_Elem(inner, f)]
            return (one * (n if n is not None else 2))[:_MAX_ELEMS]
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            left = self.list_elements(expr.left, f)
            right = self.list_elements(expr.right, f)
            return None if left is None or right is None else left + right
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            n = literal_number(expr.right)
            left = self.list_elements(expr.left, f)
            if left is None or n is None:
                return None
            return (left * max(0, min(int(n), _MAX_UNROLL)))[:_MAX_ELEMS]
        d = dotted_name(expr)
        if d is None:
            return None
        key = (id(f), d)
        if key not in self._list_memo:
            self._list_memo[key] = None
            body = _body_of(f.node)
            if body is not None:
                b = _ListBuilder(self, f, d)
                pieces = b.walk(body, False)
                self._list_memo[key] = None if b.dynamic or not b.seen else _flatten(pieces)
        return self._list_memo[key]

    # -- resolution of module expressions
    def resolve_module(self, expr: cst.BaseExpression, f: FunctionInfo, depth: int = 0) -> list[Construction]:
        """What a module expression (`self.bn`, `nn.ReLU()`, a local name) was built from.

        `depth` is shared with `_resolve_moved`, which calls back here: the bound holds across
        the pair (`x = x.cuda()` would otherwise recurse forever)."""
        if depth > _MAX_RESOLVE_DEPTH:
            return []
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
                expr.func.attr.value in _MODULE_PASSTHROUGH:
            return self.resolve_module(expr.func.value, f, depth + 1)
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Attribute):
            # self.transformer.drop: an entry of an nn.ModuleDict(dict(drop=...)) attribute
            key = expr.attr.value
            for c in self.resolve_module(expr.value, f, depth + 1):
                if c.qualname == "torch.nn.ModuleDict" and c.node.args:
                    entry = _dict_entry(c.node.args[0].value, key)
                    if entry is not None:
                        return self.p.evaluate(c.function, entry)
            return []
        objs = self.p.evaluate(f, expr)
        if len(objs) > 1:
            # `nn.Dropout(p) if p > 0 else nn.Identity()`: an optional layer, present when on
            present = [o for o in objs if o.qualname != "torch.nn.Identity"]
            if len(present) == 1:
                return present
        if objs:
            return objs
        d = dotted_name(expr)
        return self._resolve_moved(f, d, depth + 1) if d else []

    def _resolve_moved(self, f: FunctionInfo, d: str, depth: int) -> list[Construction]:
        """`model` bound to `Net().to(device)` (the program model sees only the `.to` call)."""
        key = (id(f), d)
        if depth > _MAX_RESOLVE_DEPTH or key in self._moving:
            return []
        self._moving.add(key)  # `x = x.cuda()`: a name resolved through itself is a cycle
        try:
            return self._resolve_moved_once(f, d, depth)
        finally:
            self._moving.discard(key)

    def _resolve_moved_once(self, f: FunctionInfo, d: str, depth: int) -> list[Construction]:
        out: list[Construction] = []
        for fn, a in self._bindings(f, d):
            v = a.value
            if isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute) and \
                    v.func.attr.value in _MODULE_PASSTHROUGH:
                out += self.resolve_module(v.func.value, fn, depth + 1)
            elif isinstance(v, cst.IfExp):
                out += self._optional_layer(v, fn, depth + 1)
        if not out and "." not in d:
            scope: FunctionInfo | None = f
            while scope is not None and d not in scope.params and not scope.bindings(d):
                scope = scope.parent
            if scope is not None and d in scope.params and not scope.bindings(d):
                for caller, arg in self.p.param_args(scope, d):
                    ad = dotted_name(arg)
                    out += self.p.evaluate(caller, arg) or (
                        self._resolve_moved(caller, ad, depth + 1) if ad else [])
        return out

    def _optional_layer(self, v: cst.IfExp, f: FunctionInfo, depth: int = 0) -> list[Construction]:
        """`nn.Dropout(p) if p > 0 else None` (or `nn.Identity()`): the layer when it exists."""
        arms = [v.body, v.orelse]
        absent = [a for a in arms if _is_absent_layer(self.p, a)]
        present = [a for a in arms if not _is_absent_layer(self.p, a)]
        if len(absent) != 1 or len(present) != 1:
            return []
        return self.resolve_module(present[0], f, depth)

    def _bindings(self, f: FunctionInfo, d: str):
        if d.startswith("self.") and d.count(".") == 1:
            owner = _owner_class(f)
            if owner is not None:
                for m in owner.methods.values():
                    for a in m.bindings(d):
                        yield m, a
            return
        if "." in d:
            return
        scope: FunctionInfo | None = f
        while scope is not None:
            binds = scope.bindings(d)
            if binds:
                for a in binds:
                    yield scope, a
                return
            if d in scope.params:
                return
            scope = scope.parent

    # -- queries
    def unit_for_class(self, name: str) -> Unit | None:
        return self._class_units.get(name)

    def unit_for_sequential(self, call: cst.Call) -> Unit | None:
        return self._seq_units.get(id(call))

    def model_units(self, instantiated: bool = False) -> list[Unit]:
        """The units that are whole models (not a block of another model of the file).

        With `instantiated`, only those the file also builds (`model = Net()`, a Sequential
        assigned at top level or returned by a helper that is called): a class that a
        library file only defines may be a block of a model defined elsewhere.
        """
        return [u for u in self.units if u.top_level and (u.instantiated or not instantiated)]

    def all_steps(self) -> Iterator[tuple[Unit, Step]]:
        for u in self.units:
            for s in u.steps:
                yield u, s

    def model_of_call(self, call: cst.Call, f: FunctionInfo) -> Unit | None:
        """The unit whose output a call like `model(x)`, `self.net(x)` or `self(x)` returns."""
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        if isinstance(func, cst.Name) and func.value == "self":
            owner = _owner_class(f)
            return self._class_units.get(owner.name) if owner is not None else None
        for c in self.resolve_module(func, f):
            if c.qualname.startswith("local:"):
                u = self._class_units.get(c.qualname[6:])
                if u is not None:
                    return u
            elif c.qualname == "torch.nn.Sequential":
                u = self._seq_units.get(id(c.node))
                if u is not None:
                    return u
        return None


def layer_analysis(program: ProgramModel) -> LayerAnalysis:
    """The layer analysis of `program`, computed once and cached on it."""
    got = getattr(program, "_layer_analysis", None)
    if got is None:
        got = LayerAnalysis(program)
        program._layer_analysis = got  # type: ignore[attr-defined]
    return got


# ----------------------------------------------------------------------------- helpers


def _element_calls(node: cst.CSTNode) -> Iterator[cst.Call]:
    """The calls that build a container's elements (in lists, comprehensions, dicts, calls).

    Follows only the node types that hold elements: cheaper than a full walk (libcst's
    `children` runs a visitor).
    """
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            yield n
            stack.extend(a.value for a in n.args)
        elif isinstance(n, (cst.List, cst.Tuple, cst.Set)):
            stack.extend(e.value for e in n.elements)
        elif isinstance(n, (cst.ListComp, cst.GeneratorExp, cst.SetComp)):
            stack.append(n.elt)
        elif isinstance(n, cst.Dict):
            stack.extend(e.value for e in n.elements)
        elif isinstance(n, cst.IfExp):
            stack.extend((n.body, n.orelse))


def _dict_entry(d: cst.BaseExpression, key: str) -> cst.BaseExpression | None:
    """The value for `key` in `dict(a=...)` or `{"a": ...}`."""
    if isinstance(d, cst.Call) and isinstance(d.func, cst.Name) and d.func.value == "dict":
        for a in d.args:
            if a.keyword is not None and a.keyword.value == key:
                return a.value
    if isinstance(d, cst.Dict):
        for el in d.elements:
            if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) and \
                    el.key.evaluated_value == key:
                return el.value
    return None


def _owner_class(f: FunctionInfo | None):
    while f is not None:
        if f.cls is not None:
            return f.cls
        f = f.parent
    return None


def _body_of(node) -> list[cst.CSTNode] | None:
    if isinstance(node, cst.Module):
        return list(node.body)
    if isinstance(node, cst.FunctionDef) and isinstance(node.body, cst.IndentedBlock):
        return list(node.body.body)
    return None


def _block(node) -> list[cst.CSTNode]:
    if isinstance(node, cst.IndentedBlock):
        return list(node.body)
    if isinstance(node, cst.SimpleStatementSuite):
        return [cst.SimpleStatementLine(body=node.body)]
    return []


def _range_count(it: cst.BaseExpression) -> int | None:
    """How many times `for _ in range(n)` runs when n is a literal (capped)."""
    if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "range":
        nums = [literal_number(a.value) for a in it.args]
        if nums and all(n is not None for n in nums):
            if len(nums) == 1:
                n = nums[0]
            else:
                step = nums[2] if len(nums) > 2 else 1.0
                n = (nums[1] - nums[0]) / step if step else 0
            return max(0, min(int(n), _MAX_UNROLL))
    if isinstance(it, (cst.List, cst.Tuple)):
        return min(len(it.elements), _MAX_UNROLL)
    return None


def _comp_count(comp) -> int | None:
    f = comp.for_in
    if f.inner_for_in is not None or f.ifs:
        return None
    return _range_count(f.iter)


def _ordered_dict_elements(call: cst.Call, f: FunctionInfo) -> list[_Elem] | None:
    if len(call.args) != 1:
        return None
    v = call.args[0].value
    if isinstance(v, cst.Dict):
        return [_Elem(e.value, f) for e in v.elements if isinstance(e, cst.DictElement)]
    if isinstance(v, (cst.List, cst.Tuple)):
        out = []
        for el in v.elements:
            t = el.value
            if not isinstance(t, cst.Tuple) or len(t.elements) != 2:
                return None
            out.append(_Elem(t.elements[1].value, f))
        return out
    return None


@dataclass(eq=False)
class _Loop:
    count: int | None
    pieces: list


_MAX_ELEMS = 512


def _flatten(pieces: list) -> list[_Elem]:
    out: list[_Elem] = []
    for p in pieces:
        if len(out) >= _MAX_ELEMS:
            break
        if isinstance(p, _Loop):
            n = p.count if p.count is not None else 2
            body = _flatten(p.pieces)
            for _ in range(n):
                if len(out) >= _MAX_ELEMS or not body:
                    break
                out += body
        else:
            out.append(p)
    return out[:_MAX_ELEMS]


class _ListBuilder:
    """Walks one function's statements for the ops that build the list named `name`."""

    def __init__(self, analysis: LayerAnalysis, f: FunctionInfo, name: str) -> None:
        self.a = analysis
        self.f = f
        self.name = name
        self.dynamic = False
        self.seen = False

    def walk(self, stmts, cond: bool) -> list:
        pieces: list = []
        for s in stmts:
            if isinstance(s, cst.SimpleStatementLine):
                for small in s.body:
                    pieces = self._small(small, pieces, cond)
            elif isinstance(s, cst.For):
                inner = self.walk(_block(s.body), cond)
                if inner:
                    pieces.append(_Loop(_range_count(s.iter), inner))
            elif isinstance(s, cst.While):
                inner = self.walk(_block(s.body), cond)
                if inner:
                    pieces.append(_Loop(None, inner))
            elif isinstance(s, cst.If):
                pieces += self.walk(_block(s.body), True)
                orelse = s.orelse
                while orelse is not None:
                    if isinstance(orelse, cst.If):
                        pieces += self.walk(_block(orelse.body), True)
                        orelse = orelse.orelse
                    else:
                        pieces += self.walk(_block(orelse.body), True)
                        orelse = None
            elif isinstance(s, (cst.With, cst.Try)):
                pieces += self.walk(_block(s.body), cond)
        return pieces

    def _elems(self, expr, cond) -> list[_Elem] | None:
        got = self.a.list_elements(expr, self.f) if not isinstance(expr, cst.Name) or \
            expr.value != self.name else None
        if got is None:
            return None
        return [_Elem(e.expr, e.function, cond or e.conditional) for e in got]

    def _small(self, small, pieces: list, cond: bool) -> list:
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and \
                dotted_name(small.targets[0].target) == self.name:
            self.seen = True
            v = small.value
            if isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value == "list" \
                    and not v.args:
                return []
            if isinstance(v, cst.Call) and self.a.p.imports.resolve(v.func) in (
                    "torch.nn.ModuleList", "torch.nn.Sequential"):
                return []  # its own arguments are counted by the caller
            got = self._elems(v, cond)
            if got is None:
                self.dynamic = True
                return []
            return list(got)
        if isinstance(small, cst.AugAssign) and dotted_name(small.target) == self.name:
            self.seen = True
            if not isinstance(small.operator, cst.AddAssign):
                self.dynamic = True
                return pieces
            got = self._elems(small.value, cond)
            if got is None:
                self.dynamic = True
                return pieces
            return pieces + got
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            func = call.func
            if isinstance(func, cst.Attribute) and dotted_name(func.value) == self.name:
                self.seen = True
                meth = func.attr.value
                if meth == "append" and len(call.args) == 1:
                    return pieces + [_Elem(call.args[0].value, self.f, cond)]
                if meth == "extend" and len(call.args) == 1:
                    got = self._elems(call.args[0].value, cond)
                    if got is not None:
                        return pieces + got
                self.dynamic = True
        return pieces


# ----------------------------------------------------------------------------- forward()


_NON_TENSOR_METHODS = {"size", "dim", "numel", "item", "tolist", "numpy", "ndimension", "nelement",
                       "data_ptr", "get_device", "stride", "element_size"}
_NON_TENSOR_ATTRS = {"device", "dtype", "shape", "ndim", "is_cuda", "requires_grad", "grad_fn",
                     "layout", "is_leaf"}
_SHAPE_PASS_FUNCS = {"int", "float", "len", "print", "isinstance", "getattr", "hasattr"}


class _ForwardWalker:
    """Follows tensors through forward() (and what it inlines), recording every layer step."""

    def __init__(self, analysis: LayerAnalysis, steps: list[Step]) -> None:
        self.a = analysis
        self.p = analysis.p
        self.steps = steps
        # what is being inlined, by identity (a name would confuse two modules' `block()` or two
        # classes of the same name): ("seq", id of the construction), ("cls", id of the class),
        # ("fn", id of the function)
        self.stack: tuple[tuple[str, int], ...] = ()
        self.in_branch = 0  # inside an `if` of forward(): the ops may not run

    # -- applying ops
    def apply(self, op: Op, val: Val | None) -> Val:
        val = val if val is not None else Val()
        if self.in_branch:
            op.conditional = True
        if len(self.steps) < _MAX_STEPS:
            self.steps.append(Step(op, val.ops, val.from_input))
        return val.then(op)

    def apply_elems(self, elems: list[_Elem], val: Val, stack: tuple[tuple[str, int], ...]) -> Val:
        for e in elems:
            val = self.apply_module_expr(e.expr, e.function, val, e.expr, stack, e.conditional)
        return val

    def apply_module_expr(self, expr, f: FunctionInfo, val: Val, site: cst.CSTNode,
                          stack: tuple[tuple[str, int], ...], conditional: bool = False) -> Val:
        """Apply the module `expr` (an attribute, a construction, a name) to `val`."""
        self.a.budget -= 10
        if len(stack) > _MAX_DEPTH or self.a.budget < 0:
            return self.apply(Op("module", _label(expr), site, function=f), val)
        objs = self.a.resolve_module(expr, f)
        if len(objs) == 1:
            c = objs[0]
            q = c.qualname
            kind = nn_kind(q)
            if kind is not None:
                attr = dotted_name(expr) if isinstance(expr, cst.BaseExpression) else None
                return self.apply(Op(kind, _label(c.node.func), site, ctor=c.node, qualname=q,
                                     conditional=conditional, function=f, attr=attr), val)
            if q == "torch.nn.Sequential":
                elems = self.a.sequence_elements(c.node, c.function)
                if elems is not None:
                    if conditional:
                        elems = [_Elem(e.expr, e.function, True) for e in elems]
                    return self.apply_elems(elems, val, stack + (("seq", id(c.node)),))
            if q.startswith("local:"):
                name = q[6:]
                fwd = self.a._method(name, "forward")
                key = ("cls", id(self.p.classes.get(name)))
                if fwd is not None and key not in stack and isinstance(fwd.node, cst.FunctionDef):
                    out = self.run_function(fwd, (val,), stack + (key,))
                    if out is not None:
                        return out
            return self.apply(Op("module", _label(expr), site, ctor=c.node, qualname=q,
                                 conditional=conditional, function=f), val)
        return self.apply(Op("module", _label(expr), site, conditional=conditional, function=f), val)

    # -- functions
    def run_function(self, fn: FunctionInfo, args: tuple[Val | None, ...], stack) -> Val | None:
        node = fn.node
        if not isinstance(node, cst.FunctionDef):
            return None
        params = [p.name.value for p in node.params.params]
        if fn.cls is not None and params and params[0] in ("self", "cls"):
            params = params[1:]
        env: dict[str, object] = {}
        for i, name in enumerate(params):
            if i < len(args) and args[i] is not None:
                env[name] = args[i]
            elif i == 0 and not args:
                env[name] = Val((), True)
        saved = self.stack
        self.stack = stack
        returns: list[tuple[Val | None, bool]] = []
        try:
            self._block(_block(node.body), env, fn, returns, False)
        finally:
            self.stack = saved
        final = [v for v, cond in returns if not cond]
        if final:
            return final[-1]
        return None

    def _block(self, stmts, env, fn, returns, cond) -> bool:
        """Process statements; False once a return ends the block."""
        for s in stmts:
            if isinstance(s, cst.SimpleStatementLine):
                for small in s.body:
                    if isinstance(small, cst.Return):
                        v = None
                        if small.value is not None:
                            e = small.value
                            if isinstance(e, cst.Tuple) and e.elements:
                                e = e.elements[0].value
                            v = self.eval(e, env, fn)
                        returns.append((v, cond))
                        return False
                    self._small(small, env, fn)
            elif isinstance(s, cst.If):
                self._if(s, env, fn, returns, cond)
            elif isinstance(s, cst.For):
                self._for(s, env, fn, returns)
            elif isinstance(s, cst.While):
                for _ in range(2):
                    self._block(_block(s.body), env, fn, returns, True)
            elif isinstance(s, (cst.With, cst.Try)):
                if not self._block(_block(s.body), env, fn, returns, cond):
                    return False
        return True

    def _if(self, s: cst.If, env, fn, returns, cond) -> None:
        self.eval(s.test, env, fn)
        if s.orelse is None and self._optional_layer_test(s.test, fn):
            # `if self.dropout is not None: x = self.dropout(x)`: the layer runs whenever the
            # model has it; treat the branch as part of the model, not as a maybe
            self._block(_block(s.body), env, fn, returns, cond)
            return
        branches = [s.body]
        orelse = s.orelse
        while orelse is not None:
            if isinstance(orelse, cst.If):
                branches.append(orelse.body)
                orelse = orelse.orelse
            else:
                branches.append(orelse.body)
                orelse = None
        merged = dict(env)
        for body in branches:
            local = dict(env)
            self.in_branch += 1
            try:
                self._block(_block(body), local, fn, returns, True)
            finally:
                self.in_branch -= 1
            for k, v in local.items():
                if env.get(k) is not v and (merged.get(k) is env.get(k)):
                    merged[k] = v
        env.clear()
        env.update(merged)

    def _optional_layer_test(self, test: cst.BaseExpression, fn: FunctionInfo) -> bool:
        """`self.X is not None`, or a bare `self.X` holding a torch layer."""
        target = None
        if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and \
                isinstance(test.comparisons[0].operator, cst.IsNot) and \
                isinstance(test.comparisons[0].comparator, cst.Name) and \
                test.comparisons[0].comparator.value == "None":
            target = test.left
        elif isinstance(test, cst.Attribute):
            target = test
        d = dotted_name(target) if target is not None else None
        if d is None or not d.startswith("self.") or d.count(".") != 1 or d == "self.training":
            return False
        return any(nn_kind(c.qualname) is not None for c in self.a.resolve_module(target, fn))

    def _for(self, s: cst.For, env, fn, returns) -> None:
        it = s.iter
        target = s.target
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "enumerate" \
                and it.args and isinstance(target, cst.Tuple) and len(target.elements) == 2:
            it = it.args[0].value
            target = target.elements[1].value
        elems = self._module_list_elements(it, fn)
        body = _block(s.body)
        if elems is not None and isinstance(target, cst.Name):
            for e in elems[:_MAX_UNROLL]:
                env[target.value] = _ModRef(e)
                self._block(body, env, fn, returns, True)
            return
        n = _range_count(it)
        for _ in range(n if n is not None else 2):
            self._block(body, env, fn, returns, True)

    def _module_list_elements(self, it, fn) -> list[_Elem] | None:
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and \
                it.func.attr.value in ("children", "values") and not it.args:
            it = it.func.value
        objs = self.a.resolve_module(it, fn) if dotted_name(it) else []
        if len(objs) != 1:
            return None
        c = objs[0]
        if c.qualname in ("torch.nn.ModuleList", "torch.nn.Sequential"):
            if c.qualname == "torch.nn.Sequential":
                return self.a.sequence_elements(c.node, c.function)
            elems: list[_Elem] = []
            if c.node.args:
                got = self.a.list_elements(c.node.args[0].value, c.function)
                if got is None:
                    return None
                elems += got
            # self.layers.append(...) in __init__
            target = dotted_name(it)
            if target is not None:
                body = _body_of(c.function.node)
                if body is not None:
                    b = _ListBuilder(self.a, c.function, target)
                    pieces = b.walk(body, False)
                    if b.dynamic:
                        return None
                    elems += _flatten(pieces)
            return elems
        return None

    def _small(self, small, env, fn) -> None:
        if isinstance(small, cst.Assign):
            v = self.eval(small.value, env, fn)
            for t in small.targets:
                self._bind(t.target, v, env)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self._bind(small.target, self.eval(small.value, env, fn), env)
        elif isinstance(small, cst.AugAssign):
            right = self.eval(small.value, env, fn)
            name = dotted_name(small.target)
            left = env.get(name) if name else None
            left = left if isinstance(left, Val) else None
            if name is None:
                return
            if left is not None and right is not None:
                kind = "add" if isinstance(small.operator, cst.AddAssign) else "merge"
                env[name] = self._merge([left, right], kind, small, fn)
            elif left is not None:
                env[name] = left
        elif isinstance(small, cst.Expr):
            self.eval(small.value, env, fn)

    def _bind(self, target, v, env) -> None:
        if isinstance(target, cst.Name):
            if v is None:
                env.pop(target.value, None)
            else:
                env[target.value] = v
        elif isinstance(target, (cst.Tuple, cst.List)):
            for i, el in enumerate(target.elements):
                self._bind(el.value, v if i == 0 else None, env)

    def _merge(self, vals: list[Val], kind: str, node, fn) -> Val:
        longest = max(vals, key=lambda v: len(v.ops))
        op = Op(kind, kind, node, function=fn)
        merged = Val(longest.ops, any(v.from_input for v in vals))
        self.steps.append(Step(op, merged.ops, merged.from_input))
        return merged.then(op)

    # -- expressions
    def eval(self, e, env, fn) -> Val | None:
        self.a.budget -= 1
        if self.a.budget < 0:
            return None
        if isinstance(e, cst.Name):
            v = env.get(e.value)
            return v if isinstance(v, Val) else None
        if isinstance(e, cst.Attribute):
            if isinstance(e.value, cst.Name) and e.value.value == "self":
                return None
            if e.attr.value in _NON_TENSOR_ATTRS:
                return None
            return self.eval(e.value, env, fn)
        if isinstance(e, cst.Subscript):
            return self.eval(e.value, env, fn)
        if isinstance(e, cst.UnaryOperation):
            return self.eval(e.expression, env, fn)
        if isinstance(e, cst.BinaryOperation):
            left = self.eval(e.left, env, fn)
            right = self.eval(e.right, env, fn)
            if left is not None and right is not None:
                kind = "add" if isinstance(e.operator, (cst.Add, cst.Subtract)) else "merge"
                return self._merge([left, right], kind, e, fn)
            return left if left is not None else right
        if isinstance(e, cst.Call):
            return self._call(e, env, fn)
        if isinstance(e, (cst.Tuple, cst.List)):
            for el in e.elements:
                self.eval(el.value, env, fn)
            return None
        return None

    def _first_val(self, call: cst.Call, env, fn) -> Val | None:
        """The tensor a call applies to: its first positional tensor argument (or `input=`)."""
        vals = [(a, self.eval(a.value, env, fn)) for a in call.args]
        for a, v in vals:
            if v is not None and (a.keyword is None or a.keyword.value == "input"):
                return v
        return None

    def _call(self, call: cst.Call, env, fn) -> Val | None:
        func = call.func
        q = self.p.imports.resolve(func)
        if q is not None:
            kind = functional_kind(q)
            if kind in ("merge", "add"):
                vals = []
                for a in call.args:
                    if isinstance(a.value, (cst.List, cst.Tuple)):
                        vals += [self.eval(el.value, env, fn) for el in a.value.elements]
                    else:
                        vals.append(self.eval(a.value, env, fn))
                vals = [v for v in vals if v is not None]
                if len(vals) >= 2:
                    return self._merge(vals, kind, call, fn)
                return vals[0] if vals else None
            val = self._first_val(call, env, fn)
            if kind is not None:
                return self.apply(Op(kind, _label(func), call, qualname=q, functional=True, function=fn), val)
            nk = nn_kind(q)
            if nk is not None:  # nn.ReLU()(x) is rare; the construction is not applied here
                return val
            if q.startswith("torch") and val is not None:
                return self.apply(Op("other", _label(func), call, qualname=q, functional=True, function=fn), val)
            return val
        if isinstance(func, cst.Name):
            ref = env.get(func.value)
            if isinstance(ref, _ModRef):
                arg = self._first_val(call, env, fn)
                return self.apply_module_expr(ref.elem.expr, ref.elem.function, arg or Val(), call,
                                              self.stack, ref.elem.conditional)
            if func.value in _SHAPE_PASS_FUNCS:
                self._first_val(call, env, fn)
                return None
            val = self._first_val(call, env, fn)
            # a free function of the module the running code is in (a model class of another
            # module calls its own helpers, not the linted file's namesakes)
            callee = (fn.program or self.p).functions.get(func.value)
            if callee is not None and callee.cls is None and ("fn", id(callee)) not in self.stack and \
                    len(self.stack) <= _MAX_DEPTH:
                args = tuple(self.eval(a.value, env, fn) for a in call.args if not a.keyword)
                out = self.run_function(callee, args, self.stack + (("fn", id(callee)),))
                if out is not None:
                    return out
            if val is not None:
                return self.apply(Op("other", func.value, call, function=fn), val)
            return None
        if isinstance(func, cst.Attribute):
            recv = func.value
            meth = func.attr.value
            if isinstance(recv, cst.Name) and recv.value == "self":
                return self._self_call(call, meth, env, fn)
            if isinstance(recv, cst.Subscript) and dotted_name(recv.value) and \
                    (dotted_name(recv.value) or "").startswith("self."):
                # self.layers[0](x): a literal index into a static ModuleList
                return self._indexed_module_call(call, recv, env, fn)
            base = self.eval(recv, env, fn)
            if base is None:
                # self.fc.forward(x), self.transformer.drop(x) and the like
                d = dotted_name(recv) or ""
                if d.startswith("self.") and meth == "forward":
                    arg = self._first_val(call, env, fn)
                    return self.apply_module_expr(recv, fn, arg or Val(), call, self.stack)
                if d.startswith("self."):
                    arg = self._first_val(call, env, fn)
                    if arg is not None:
                        return self.apply_module_expr(func, fn, arg, call, self.stack)
                    return None
                for a in call.args:
                    self.eval(a.value, env, fn)
                return None
            for a in call.args:
                self.eval(a.value, env, fn)
            if meth in _NON_TENSOR_METHODS:
                return None
            kind = _TENSOR_METHOD_KINDS.get(meth)
            if kind is not None:
                return self.apply(Op(kind, f".{meth}()", call, functional=True, function=fn), base)
            return self.apply(Op("other", f".{meth}()", call, functional=True, function=fn), base)
        if isinstance(func, cst.Subscript):
            return self._indexed_module_call(call, func, env, fn)
        return self._first_val(call, env, fn)

    def _indexed_module_call(self, call, sub: cst.Subscript, env, fn) -> Val | None:
        arg = self._first_val(call, env, fn)
        idx = sub.slice[0].slice if len(sub.slice) == 1 else None
        n = literal_number(idx.value) if isinstance(idx, cst.Index) else None
        elems = self._module_list_elements(sub.value, fn)
        if elems is not None and n is not None and -len(elems) <= int(n) < len(elems):
            e = elems[int(n)]
            return self.apply_module_expr(e.expr, e.function, arg or Val(), call, self.stack, e.conditional)
        return self.apply(Op("module", _label(sub), call, function=fn), arg)

    def _self_call(self, call, meth, env, fn) -> Val | None:
        owner = _owner_class(fn)
        arg_vals = [self.eval(a.value, env, fn) for a in call.args if not a.keyword]
        first = next((v for v in arg_vals if v is not None), None)
        if owner is not None:
            m = self.a._method(owner.name, meth)
            if m is not None and meth != "forward":
                key = ("fn", id(m))
                if key in self.stack or len(self.stack) > _MAX_DEPTH:
                    return self.apply(Op("other", f"self.{meth}", call, function=fn), first)
                out = self.run_function(m, tuple(arg_vals), self.stack + (key,))
                return out
        return self.apply_module_expr(call.func, fn, first or Val(), call, self.stack)


def _label(expr) -> str:
    d = dotted_name(expr) if isinstance(expr, cst.BaseExpression) else None
    if d:
        return d
    try:
        return cst.Module([]).code_for_node(expr)[:40]
    except Exception:
        return "layer"


def _is_absent_layer(p: ProgramModel, expr: cst.BaseExpression) -> bool:
    """`None` or `nn.Identity()`: an optional layer switched off."""
    if isinstance(expr, cst.Name) and expr.value == "None":
        return True
    return isinstance(expr, cst.Call) and p.imports.resolve(expr.func) == "torch.nn.Identity"
