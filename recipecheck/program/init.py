"""Facts about parameter initialization, shared by the RC3xx rules.

Every place the file initializes a parameter becomes an :class:`InitSite`: ``nn.init.*``
calls, in-place tensor methods on parameters (``w.data.fill_(0)``, ``p.zero_()``,
``m.weight.data.normal_(0, 0.02)``), and parameters built from a tensor factory
(``nn.Parameter(torch.zeros(out, in))``, ``torch.randn(784, 10, requires_grad=True)``).

Each site knows what it initializes: a layer's *weight*, a *bias*, a normalization layer's
scale/shift (*norm*), an *embedding*-like table or token, or a 1-D *vector*. The role is read
from the attribute (``.weight`` / ``.bias``), from the layer the owner refers to
(``self.bn1 = nn.BatchNorm2d``), from the ``isinstance(m, nn.BatchNorm2d)`` or
``classname.find("BatchNorm")`` test that guards the call in an ``apply`` function, from the
``"bias" in name`` / ``p.dim() > 1`` test in a ``named_parameters()`` loop, and for a raw
parameter from its shape (two or more non-unit dimensions: a weight matrix).

Computed lazily from the program model's call index; the only tree walks are over the bodies
of the functions that contain candidate calls (to read the enclosing ``if`` tests and loops).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from recipecheck.program.nodes import call_arg, iter_children, walk
from recipecheck.program.nodes import literal_number as _literal_number

from recipecheck.program import torchnames as tn
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import ClassInfo, FunctionInfo, ProgramModel

NORM_LAYERS = {
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm", "RMSNorm",
    "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "CrossMapLRN2d",
}
WEIGHT_LAYERS = {
    "Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
    "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d",
}
EMBEDDING_LAYERS = {"Embedding", "EmbeddingBag"}
RNN_LAYERS = {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"}

RELU_FAMILY = {"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "relu", "relu_", "relu6", "leaky_relu",
               "leaky_relu_", "prelu", "rrelu"}
TANH_FAMILY = {"Tanh", "Sigmoid", "Hardtanh", "Softsign", "Hardsigmoid", "LogSigmoid", "tanh",
               "sigmoid", "hardtanh", "softsign", "hardsigmoid", "tanh_", "sigmoid_"}
# activations that neither Xavier nor Kaiming is specifically derived for, and blocks whose
# internal nonlinearities are of both kinds: their presence makes the family ambiguous.
OTHER_ACTIVATIONS = {"GELU", "SiLU", "Mish", "ELU", "SELU", "CELU", "Softplus", "GLU", "gelu", "silu",
                     "mish", "elu", "selu", "celu", "softplus", "glu", "MultiheadAttention",
                     "Transformer", "TransformerEncoderLayer", "TransformerDecoderLayer",
                     "TransformerEncoder", "TransformerDecoder", "scaled_dot_product_attention",
                     *RNN_LAYERS}

_INIT_FACTORIES = {"zeros", "ones", "full", "randn", "rand", "empty", "Tensor", "FloatTensor", "normal"}
_INPLACE = {"fill_", "zero_", "normal_", "uniform_"}
_PARAMETER = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}

_TOKEN_SPLIT = re.compile(r"[_\W\d]+|(?<=[a-z])(?=[A-Z])")
_BIAS_NAME = re.compile(r"(^|_)(bias|biases|b|b\d+|beta|shift|offset)$", re.I)
_NORM_NAME = re.compile(r"(^|_)(bn|ln|gn|norm|batchnorm|layernorm|groupnorm|rmsnorm|"
                        r"layer_?norm|batch_?norm|ln_f|ln_\d+|norm_?f)\d*$|^(bn|ln|gn|norm)\d*(_|$)",
                        re.I)
_SCALE_NAME = re.compile(r"(^|_)(gamma|scale|scales|gain|alpha|temperature|temp|logit_scale|"
                         r"layer_?scale|ls\d*|g)$", re.I)
_EMBED_NAME = re.compile(r"emb|embed|token|pos|cls|mask|query_tokens|prompt|latent|register|"
                         r"codebook|wte|wpe|prototype|centroid|memory", re.I)
_OUTPUT_NAME = re.compile(r"^(head|heads|classifier|cls_head|fc_out|out|output|outputs|final|last|"
                          r"logit|logits|out_proj|o_proj|proj_out|to_out|c_proj|readout|predictor|"
                          r"linear_out|out_layer|output_layer|final_layer|last_layer|lm_head|"
                          r"adaln_modulation|zero_\w+|\w+_zero|\w*_head|final_\w+|out_\w+)$", re.I)


@dataclass(eq=False)
class InitSite:
    """One initialization of a parameter."""

    node: cst.Call  # the call to report
    function: FunctionInfo
    kind: str  # zeros | ones | constant | normal | uniform | xavier | kaiming | other
    target_text: str  # what is initialized, `.data` stripped ("self.fc.weight", "m.weight", "p")
    role: str  # weight | bias | norm | embedding | vector | unknown
    owner: str | None = None  # the layer holding the tensor ("self.fc", "m"), if any
    layer: str | None = None  # class name of that layer when known (Linear, BatchNorm2d, ...)
    value: float | None = None  # the constant, for zeros/ones/constant
    scale: float | None = None  # std (normal) or half-width (uniform) when literal
    mean: float | None = None
    source: str = "init"  # init | inplace | parameter
    keywords: dict[str, cst.BaseExpression] = field(default_factory=dict)
    order: int = 0
    branch: tuple = ()  # identity of the enclosing if-branches and loops
    owner_class: ClassInfo | None = None  # local class of the owner's base (isinstance(m, Block))
    placeholder: bool = False  # re-initialized later in the same class/function
    whole_model: bool = False  # applied to every layer of a kind / every parameter
    conds: list = field(default_factory=list)  # (if test, in its body) around the call
    value_expr: cst.BaseExpression | None = None  # the constant as written, when not a literal
    container_last: bool = False  # the last weight layer of the nn.Sequential it is indexed from

    @property
    def cls(self) -> ClassInfo | None:
        f = self.function
        while f is not None:
            if f.cls is not None:
                return f.cls
            f = f.parent
        return None


def literal_number(node: cst.BaseExpression | None) -> float | None:
    """The value of a numeric literal (with unary minus or True/False), else None."""
    return _literal_number(node, bools=True)


def _constant(site: InitSite, program: ProgramModel, function: FunctionInfo, expr) -> float | None:
    """The constant an init writes: a literal, else what the value evaluator finds when every
    possibility agrees (a name, a parameter passed by the file's calls, a config field); the
    expression is kept on the site so that a module that imports this one can evaluate it with
    its own arguments (`Net(constant_weight=0)`)."""
    v = literal_number(expr)
    if v is not None or expr is None:
        return v
    site.value_expr = expr
    from recipecheck.program.values import number_of

    return number_of(program, function, expr)




def _strip_data(text: str) -> str:
    while text.endswith(".data"):
        text = text[: -len(".data")]
    return text


def _num(program: ProgramModel | None, function: FunctionInfo | None, expr) -> float | None:
    """A literal, else the single number the value evaluator finds (None: computed or several)."""
    v = literal_number(expr)
    if v is not None or expr is None or program is None:
        return v
    from recipecheck.program.values import number_of

    return number_of(program, function, expr)


def _set_normal(site, mean, std, program: ProgramModel | None = None) -> None:
    """N(mean, std) with torch's defaults (0, 1) for absent arguments."""
    site.kind = "normal"
    site.mean = 0.0 if mean is None else _num(program, site.function, mean)
    site.scale = 1.0 if std is None else _num(program, site.function, std)


def _set_uniform(site, low, high, program: ProgramModel | None = None) -> None:
    """U(low, high) with torch's defaults (0, 1); the scale is the larger bound's magnitude."""
    site.kind = "uniform"
    lo = 0.0 if low is None else _num(program, site.function, low)
    hi = 1.0 if high is None else _num(program, site.function, high)
    site.scale = None if lo is None or hi is None else max(abs(lo), abs(hi))


fast_walk = walk  # every node under a node, whitespace and punctuation skipped


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    return list(iter_children(node))


_walk = fast_walk


# --------------------------------------------------------------------------- condition contexts


@dataclass
class _Ctx:
    conds: list[tuple[cst.BaseExpression, bool]]  # (test, True in the body / False in orelse)
    loops: list[cst.For]


def _contexts(fn_node: cst.CSTNode, wanted: set[int]) -> dict[int, _Ctx]:
    """For each wanted call (by id), the `if` tests and `for` loops around it within fn_node."""
    out: dict[int, _Ctx] = {}

    def expr_scan(node: cst.CSTNode, conds, loops) -> None:
        for n in _walk(node):
            if id(n) in wanted:
                out[id(n)] = _Ctx(list(conds), list(loops))

    def block(stmts, conds, loops) -> None:
        for s in stmts:
            stmt(s, conds, loops)
            if len(out) == len(wanted):
                return

    def body_of(b) -> list:
        if isinstance(b, cst.IndentedBlock):
            return list(b.body)
        if isinstance(b, cst.SimpleStatementSuite):
            return [cst.SimpleStatementLine(body=b.body)]
        return []

    def stmt(s, conds, loops) -> None:
        if isinstance(s, cst.SimpleStatementLine):
            expr_scan(s, conds, loops)
        elif isinstance(s, cst.If):
            expr_scan(s.test, conds, loops)
            block(body_of(s.body), conds + [(s.test, True)], loops)
            orelse = s.orelse
            negated = [(s.test, False)]
            while orelse is not None:
                if isinstance(orelse, cst.If):
                    expr_scan(orelse.test, conds + negated, loops)
                    block(body_of(orelse.body), conds + negated + [(orelse.test, True)], loops)
                    negated = negated + [(orelse.test, False)]
                    orelse = orelse.orelse
                else:
                    block(body_of(orelse.body), conds + negated, loops)
                    orelse = None
        elif isinstance(s, cst.For):
            expr_scan(s.iter, conds, loops)
            block(body_of(s.body), conds, loops + [s])
        elif isinstance(s, (cst.While, cst.With)):
            block(body_of(s.body), conds, loops)
        elif isinstance(s, cst.Try):
            block(body_of(s.body), conds, loops)
            for h in s.handlers:
                block(body_of(h.body), conds, loops)
            if s.orelse is not None:
                block(body_of(s.orelse.body), conds, loops)
            if s.finalbody is not None:
                block(body_of(s.finalbody.body), conds, loops)
        elif isinstance(s, (cst.FunctionDef, cst.ClassDef)):
            return  # nested definitions are functions of their own
        else:
            expr_scan(s, conds, loops)

    if isinstance(fn_node, cst.Module):
        block(fn_node.body, [], [])
    elif isinstance(fn_node, cst.FunctionDef):
        block(body_of(fn_node.body), [], [])
    return out


# --------------------------------------------------------------------------- roles


_LAYER_KEYWORDS = {"Conv": "Conv2d", "Linear": "Linear", "Embedding": "Embedding", "BatchNorm": "BatchNorm2d",
                   "LayerNorm": "LayerNorm", "GroupNorm": "GroupNorm", "InstanceNorm": "InstanceNorm2d",
                   "Norm": "LayerNorm", "LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN", "BN": "BatchNorm2d"}


def _kind_of_layer(name: str | None) -> str | None:
    if not name:
        return None
    if name in NORM_LAYERS or name.endswith("Norm") or "Norm" in name:
        return "norm"
    if name in EMBEDDING_LAYERS:
        return "embedding"
    if name in WEIGHT_LAYERS or name in RNN_LAYERS:
        return "layer"
    return None


_NORM_VAR = re.compile(r"(^|_)norm(_?(layer|cls|class|fn|module))?$", re.I)


def _isinstance_classes(p: ProgramModel, test: cst.BaseExpression, var: str) -> list[str] | None:
    """Class names tested by `isinstance(var, X)` / `type(var) == X` / string tests on the class name."""
    out: list[str] = []
    found = False
    for n in _walk(test):
        if isinstance(n, cst.Call) and dotted_name(n.func) == "isinstance" and len(n.args) == 2:
            if dotted_name(n.args[0].value) != var:
                continue
            found = True
            cls = n.args[1].value
            elems = [e.value for e in cls.elements] if isinstance(cls, (cst.Tuple, cst.List)) else [cls]
            for e in elems:
                d = dotted_name(e)
                if d and "." not in d and d not in p.classes and p.imports.resolve_dotted(d) is None \
                        and _NORM_VAR.search(d):
                    # `isinstance(m, norm_layer)` with the norm class passed as an argument
                    # (`norm_layer=nn.BatchNorm2d`): a normalization layer
                    out.append("BatchNorm2d")
                elif d:
                    out.append(tn.last(p.imports.resolve_dotted(d) or d))
        elif isinstance(n, cst.SimpleString):
            s = n.evaluated_value
            if isinstance(s, str):
                for key, layer in _LAYER_KEYWORDS.items():
                    if key in s:
                        found = True
                        out.append(layer)
                        break
        elif isinstance(n, cst.Comparison) and isinstance(n.left, cst.Call) and \
                dotted_name(n.left.func) == "type" and n.left.args and \
                dotted_name(n.left.args[0].value) == var:
            for c in n.comparisons:
                d = dotted_name(c.comparator)
                if d:
                    found = True
                    out.append(tn.last(p.imports.resolve_dotted(d) or d))
    return out if found else None


def _names_param_test(test: cst.BaseExpression, pvar: str, namevar: str | None) -> str | None:
    """What a test inside a `named_parameters()` loop selects: bias | norm | weight | vector."""
    text_strings = [n.evaluated_value for n in _walk(test) if isinstance(n, cst.SimpleString)]
    text_strings = [s.lower() for s in text_strings if isinstance(s, str)]
    mentions = {dotted_name(n) for n in _walk(test) if isinstance(n, (cst.Name, cst.Attribute))}
    if namevar and namevar in mentions and text_strings:
        if any("bias" in s for s in text_strings):
            return "bias"
        if any(k in s for s in text_strings for k in ("norm", "bn", "ln", "gamma", "beta")):
            return "norm"
        if any(k in s for s in text_strings for k in ("emb", "token", "pos", "wte", "wpe")):
            return "embedding"
        if any("weight" in s for s in text_strings):
            return "weight"
    # p.dim() > 1, p.ndim >= 2, len(p.shape) > 1, p.dim() == 1
    if pvar in mentions or any(m and m.startswith(pvar + ".") for m in mentions):
        if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
            op = test.comparisons[0].operator
            v = literal_number(test.comparisons[0].comparator)
            if v is not None:
                if isinstance(op, cst.GreaterThan) and v >= 1 or isinstance(op, cst.GreaterThanEqual) and v >= 2:
                    return "weight"
                if isinstance(op, (cst.Equal, cst.LessThanEqual)) and v <= 1 or \
                        isinstance(op, cst.LessThan) and v <= 2:
                    return "vector"
    return None


_NEGATE = {"bias": "weight", "vector": "weight", "weight": "vector", "norm": None, "embedding": None}


def _loop_over_params(loops: list[cst.For], var: str) -> tuple[str | None, str | None] | None:
    """If `var` is the tensor of a `for [name,] p in X.[named_]parameters()` loop: (name var, X)."""
    for loop in reversed(loops):
        it = loop.iter
        if not isinstance(it, cst.Call) or not isinstance(it.func, cst.Attribute):
            continue
        meth = it.func.attr.value
        owner = dotted_name(it.func.value)
        t = loop.target
        if meth == "parameters" and isinstance(t, cst.Name) and t.value == var:
            return None, owner
        if meth in ("named_parameters", "items") and isinstance(t, (cst.Tuple, cst.List)) and \
                len(t.elements) == 2 and dotted_name(t.elements[1].value) == var:
            if meth == "items" and not (owner or "").endswith("state_dict"):
                continue
            return dotted_name(t.elements[0].value), owner
    return None


class InitModel:
    """Initialization facts of one program (see module docstring)."""

    def __init__(self, program: ProgramModel) -> None:
        self.p = program
        self._param_targets: dict[int, str] = {}
        for a in program.assignments:
            if a.value is not None and a.augmented is None and isinstance(a.value, cst.Call):
                self._param_targets[id(a.value)] = a.target
        self.sites: list[InitSite] = []
        self._by_target: dict[str, list] | None = None
        self._layer_count: int | None = None
        self._build()

    # -- layers the file constructs
    def layer_constructions(self, cls: ClassInfo | None = None) -> list[tuple[str, str | None]]:
        """(layer class name, assigned target) of every weight layer built (in `cls` if given)."""
        out = []
        for cs in self.p.calls:
            q = cs.qualname
            if not q or not q.startswith("torch.nn.") or tn.last(q) not in WEIGHT_LAYERS:
                continue
            if cls is not None and _class_of(cs.function) is not cls:
                continue
            out.append((tn.last(q), self._param_targets.get(id(cs.node))))
        return out

    def weight_layer_count(self) -> int:
        if self._layer_count is not None:
            return self._layer_count
        raw = sum(1 for s in self.sites if s.source == "parameter" and s.role == "weight")
        self._layer_count = len(self.layer_constructions()) + raw
        return self._layer_count

    def is_output_layer(self, site: InitSite) -> bool:
        """The zeroed layer is the model's only layer or clearly its output / residual-out layer."""
        if self.weight_layer_count() <= 1 or site.container_last:
            return True  # (the last layer of a Sequential branch: a zero-init gate or head)
        owner = site.owner
        if site.source == "parameter":
            owner = site.target_text
        if owner:
            leaf = owner.rsplit(".", 1)[-1]
            if _OUTPUT_NAME.match(leaf):
                return True
            # a layer of the model's final block (DiT's `self.final_layer.linear`, adaLN-Zero)
            if any(part.lower().startswith(("final", "last", "out")) for part in owner.split(".")[1:-1]):
                return True
            cls = site.cls
            attr = None
            if owner.startswith("self.") and owner.count(".") == 1:
                attr = owner
            elif owner.count(".") == 1 and site.owner_class is not None:
                # `m.conv2` under `isinstance(m, FixupBlock)`: the last layer of that block
                cls, attr = site.owner_class, "self." + leaf
            if attr is not None and cls is not None:
                layers = [t for _, t in self.layer_constructions(cls)
                          if t and t.startswith("self.") and t.count(".") == 1]
                if layers and layers[-1] == attr:
                    return True
        return False

    # -- building
    def _build(self) -> None:
        p = self.p
        cands: list[tuple] = []
        for cs in p.calls:
            q = cs.qualname
            call = cs.node
            if q and q.startswith("torch.nn.init."):
                cands.append(("init", cs))
            elif q in _PARAMETER:
                cands.append(("parameter", cs))
            elif q and q.startswith("torch.") and tn.last(q) in _INIT_FACTORIES and \
                    literal_number(call_arg(call, "requires_grad", None)) == 1.0 and \
                    id(call) in self._param_targets:
                cands.append(("raw", cs))
            elif q is None and isinstance(call.func, cst.Attribute) and \
                    call.func.attr.value == "requires_grad_" and id(call) in self._param_targets:
                cands.append(("raw", cs))
            elif q is None and isinstance(call.func, cst.Attribute) and \
                    call.func.attr.value == "requires_grad_" and isinstance(call.func.value, cst.Name):
                cands.append(("raw_bound", cs))  # w1 = torch.randn(784, 100); w1.requires_grad_()
            elif q is None and isinstance(call.func, cst.Attribute) and call.func.attr.value in _INPLACE:
                recv = call.func.value
                d = dotted_name(recv)
                if d is not None and not d.endswith(".grad") and ".grad." not in d + ".":
                    cands.append(("inplace", cs))
        by_func: dict[int, list] = {}
        for c in cands:
            by_func.setdefault(id(c[1].function), []).append(c)
        for group in by_func.values():
            f = group[0][1].function
            ctxs = _contexts(f.node, {id(cs.node) for _, cs in group})
            for kind, cs in group:
                ctx = ctxs.get(id(cs.node), _Ctx([], []))
                site = self._site(kind, cs, ctx)
                if site is not None:
                    site.order = cs.order
                    site.conds = list(ctx.conds)
                    site.branch = tuple((id(t), pos) for t, pos in ctx.conds) + \
                        tuple(id(lp) for lp in ctx.loops)
                    self.sites.append(site)
        self._mark_placeholders()

    def _mark_placeholders(self) -> None:
        by_text: dict[tuple, list[InitSite]] = {}
        for s in self.sites:
            scope = id(s.cls) if s.cls is not None and s.target_text.startswith("self.") else id(s.function)
            by_text.setdefault((scope, s.target_text), []).append(s)
        for (_, text), group in by_text.items():
            if len(group) < 2 or not text:
                continue
            for s in group:
                others = [o for o in group if o is not s and o.kind != s.kind]
                if s.source == "parameter" and others:
                    s.placeholder = True
                elif s.source != "parameter" and any(
                        o.source != "parameter" and o.function is s.function and
                        o.branch == s.branch and o.node is not s.node and _after(o, s) for o in others):
                    s.placeholder = True

    def _site(self, kind: str, cs, ctx: _Ctx) -> InitSite | None:
        call = cs.node
        if kind == "init":
            name = tn.last(cs.qualname).rstrip("_")
            target = call_arg(call, "tensor", 0)
            if target is None:
                return None
            site = InitSite(node=call, function=cs.function, kind="other", target_text="", role="unknown")
            site.keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
            if name == "zeros":
                site.kind, site.value = "zeros", 0.0
            elif name == "ones":
                site.kind, site.value = "ones", 1.0
            elif name == "constant":
                site.kind, site.value = "constant", _constant(site, self.p, cs.function,
                                                              call_arg(call, "val", 1))
            elif name in ("normal", "trunc_normal"):
                _set_normal(site, call_arg(call, "mean", 1), call_arg(call, "std", 2), self.p)
            elif name == "uniform":
                _set_uniform(site, call_arg(call, "a", 1), call_arg(call, "b", 2), self.p)
            elif name.startswith("xavier"):
                site.kind = "xavier"
            elif name.startswith("kaiming"):
                site.kind = "kaiming"
            return self._with_role(site, target, ctx)
        if kind == "inplace":
            meth = call.func.attr.value
            target = call.func.value
            site = InitSite(node=call, function=cs.function, kind="other", target_text="", role="unknown",
                            source="inplace")
            if meth == "zero_":
                site.kind, site.value = "zeros", 0.0
            elif meth == "fill_":
                v = _constant(site, self.p, cs.function, call_arg(call, "value", 0))
                if v is None and site.value_expr is None:
                    return None
                site.kind, site.value = ("zeros" if v == 0 else "ones" if v == 1 else "constant"), v
            elif meth == "normal_":
                _set_normal(site, call_arg(call, "mean", 0), call_arg(call, "std", 1), self.p)
            elif meth == "uniform_":
                _set_uniform(site, call_arg(call, "from", 0), call_arg(call, "to", 1), self.p)
            site = self._with_role(site, target, ctx, require_param=True)
            return site
        # parameter / raw tensor built from a factory
        if kind == "raw_bound":
            name = call.func.value.value
            binds = [a for a in cs.function.bindings(name) if a.order <= cs.order and a.value is not None]
            if not binds or not isinstance(binds[-1].value, (cst.Call, cst.BinaryOperation)):
                return None
            value = binds[-1].value
            site = self._factory_site(value if isinstance(value, cst.Call) else call, value, cs.function, name)
            if site is not None and not isinstance(value, cst.Call):
                site.node = call  # report the requires_grad_() call: the binding is not a call
            return site
        if kind == "parameter":
            inner = call_arg(call, "data", 0)
            target_text = self._param_targets.get(id(call))
            if target_text is None:
                target_text = self._registered_name(cs) or ""
        else:
            inner = call
            target_text = self._param_targets.get(id(call), "")
        return self._factory_site(call, inner, cs.function, target_text)

    def _registered_name(self, cs) -> str | None:
        for other in self.p.calls:
            if other.function is cs.function and other.dotted and other.dotted.endswith("register_parameter"):
                if len(other.node.args) >= 2 and other.node.args[1].value is cs.node:
                    s = other.node.args[0].value
                    if isinstance(s, cst.SimpleString) and isinstance(s.evaluated_value, str):
                        return "self." + s.evaluated_value
        return None

    def _factory_site(self, report: cst.Call, inner, function, target_text: str) -> InitSite | None:
        scale_mult: float | None = 1.0
        expr = inner
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
                expr.func.attr.value == "requires_grad_":
            expr = expr.func.value
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.Divide)):
            lit_r = _num(self.p, function, expr.right)
            lit_l = _num(self.p, function, expr.left)
            if isinstance(expr.left, cst.Call) and lit_r is not None:
                scale_mult = lit_r if isinstance(expr.operator, cst.Multiply) else (1 / lit_r if lit_r else None)
                expr = expr.left
            elif isinstance(expr.right, cst.Call) and lit_l is not None and isinstance(expr.operator, cst.Multiply):
                scale_mult = lit_l
                expr = expr.right
            else:
                return None  # scaled by something computed (1/sqrt(fan_in), init_std): calibrated
        if not isinstance(expr, cst.Call):
            return None
        chained = None
        factory = expr
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ("normal_", "uniform_", "fill_",
                                                                              "zero_", "requires_grad_"):
            chained = expr
            factory = expr.func.value
            if not isinstance(factory, cst.Call):
                return None
        q = self.p.imports.resolve(factory.func)
        if not q or not q.startswith("torch.") or tn.last(q) not in _INIT_FACTORIES:
            return None
        fname = tn.last(q)
        dims = self._dims(factory, fname)
        site = InitSite(node=report, function=function, kind="other", target_text=target_text,
                        role="unknown", source="parameter")
        if chained is not None and chained.func.attr.value != "requires_grad_":
            meth = chained.func.attr.value
            if meth == "zero_":
                site.kind, site.value = "zeros", 0.0
            elif meth == "fill_":
                v = _num(self.p, function, call_arg(chained, "value", 0))
                if v is None:
                    return None
                site.kind, site.value = ("zeros" if v == 0 else "ones" if v == 1 else "constant"), v
            elif meth == "normal_":
                m, s = call_arg(chained, "mean", 0), call_arg(chained, "std", 1)
                site.kind, site.mean = "normal", (0.0 if m is None else _num(self.p, function, m))
                site.scale = 1.0 if s is None else _num(self.p, function, s)
            else:
                a, b = call_arg(chained, "from", 0), call_arg(chained, "to", 1)
                av = 0.0 if a is None else _num(self.p, function, a)
                bv = 1.0 if b is None else _num(self.p, function, b)
                site.kind = "uniform"
                site.scale = None if av is None or bv is None else max(abs(av), abs(bv))
        elif fname == "zeros":
            site.kind, site.value = "zeros", 0.0
        elif fname == "ones":
            site.kind, site.value = "ones", 1.0
        elif fname == "full":
            v = _num(self.p, function, call_arg(factory, "fill_value", 1))
            if v is None:
                return None
            site.kind, site.value = ("zeros" if v == 0 else "ones" if v == 1 else "constant"), v
        elif fname == "randn":
            site.kind, site.mean, site.scale = "normal", 0.0, 1.0
        elif fname == "rand":
            site.kind, site.scale = "uniform", 1.0
        elif fname == "normal":
            m, s = call_arg(factory, "mean", 0), call_arg(factory, "std", 1)
            site.kind = "normal"
            site.scale = _num(self.p, function, s)
        else:
            return None  # empty / Tensor: uninitialized, set elsewhere
        if site.value is not None and scale_mult is not None:
            site.value *= scale_mult
            if site.value == 0:
                site.kind = "zeros"
            elif site.kind == "ones" and site.value != 1:
                site.kind = "constant"
        if site.scale is not None:
            site.scale = site.scale * scale_mult if scale_mult is not None else None
        leaf = target_text.rsplit(".", 1)[-1] if target_text else ""
        if leaf and _BIAS_NAME.search(leaf):
            site.role = "bias"
        elif leaf and (_SCALE_NAME.search(leaf) or _NORM_NAME.search(leaf)):
            site.role = "norm"
        elif leaf and _EMBED_NAME.search(leaf):
            site.role = "embedding"
        elif dims is None:
            site.role = "unknown"
        elif dims >= 2:
            site.role = "weight"
        else:
            site.role = "vector"
        return site

    @staticmethod
    def _dims(factory: cst.Call, fname: str) -> int | None:
        """Number of dimensions of the factory's shape that are not a literal 1."""
        if fname == "normal":
            return None
        shape_args = []
        for a in factory.args:
            if a.keyword is not None:
                if a.keyword.value == "size":
                    shape_args.append(a.value)
                continue
            if a.star:
                return None
            shape_args.append(a.value)
        if fname == "full":
            shape_args = shape_args[:1]
        if len(shape_args) == 1 and isinstance(shape_args[0], (cst.Tuple, cst.List)):
            shape_args = [e.value for e in shape_args[0].elements]
        if any(isinstance(e, cst.StarredElement) for e in shape_args):
            return None
        return sum(1 for e in shape_args if literal_number(e) != 1.0)

    def _with_role(self, site: InitSite, target: cst.BaseExpression, ctx: _Ctx,
                   require_param: bool = False) -> InitSite | None:
        p = self.p
        f = site.function
        text = dotted_name(target)
        if text is None:
            return self._indexed_role(site, target)
        text = _strip_data(text)
        if "." not in text:
            # w = self.fc.weight; w.data.zero_()
            for a in f.bindings(text):
                alias = dotted_name(a.value) if isinstance(a.value, (cst.Name, cst.Attribute)) else None
                if alias and alias.rsplit(".", 1)[-1] in ("weight", "bias"):
                    text = _strip_data(alias)
                    break
        site.target_text = text
        leaf = text.rsplit(".", 1)[-1]
        if text.startswith("self.") and text.count(".") == 1:
            named = self.sites_for_text(f, text)
            if named:
                site.role = named[0].role
                return site
        if "." in text and text.rsplit(".", 1)[0] != "self" and (leaf == "weight" or leaf.startswith("weight_") or leaf in ("bias",)
                            or leaf.startswith("bias_")):
            owner = text.rsplit(".", 1)[0]
            site.owner = owner
            base = owner.split(".", 1)[0]
            if owner.count(".") == 1 and base != "self":
                for test, positive in ctx.conds:
                    if positive:
                        for c in _isinstance_classes(p, test, base) or []:
                            if c in p.classes:
                                site.owner_class = p.classes[c]
            if leaf.startswith("bias"):
                site.role = "bias"
                return site
            layer = self._owner_layer(f, owner, ctx)
            site.layer = layer
            k = _kind_of_layer(layer)
            if k == "norm":
                site.role = "norm"
            elif k == "embedding":
                site.role = "embedding"
            elif k == "layer":
                site.role = "weight"
            else:
                oleaf = owner.rsplit(".", 1)[-1]
                if _NORM_NAME.search(oleaf) or "norm" in oleaf.lower():
                    site.role = "norm"
                elif _EMBED_NAME.search(oleaf):
                    site.role = "embedding"
                else:
                    site.role = "weight"
            if owner.count(".") == 0 and self._is_apply_var(f, owner):
                site.whole_model = True
            return site
        # a loop over (named_)parameters()
        loop = _loop_over_params(ctx.loops, text) if "." not in text else None
        if loop is not None:
            namevar, _owner = loop
            site.whole_model = True
            role = "weight"
            for test, positive in ctx.conds:
                sel = _names_param_test(test, text, namevar)
                if sel is None:
                    continue
                role = sel if positive else (_NEGATE.get(sel) or "unknown")
                if not positive and sel in ("norm", "embedding"):
                    role = "weight"
            site.role = role
            return site
        # a named parameter: self.W = nn.Parameter(...), W1 = torch.randn(..., requires_grad=True)
        for other in self.sites_for_text(f, text):
            site.role = other.role
            site.owner = None
            return site
        if require_param:
            return None
        if _BIAS_NAME.search(leaf):
            site.role = "bias"
        elif _NORM_NAME.search(leaf) or _SCALE_NAME.search(leaf):
            site.role = "norm"
        elif _EMBED_NAME.search(leaf):
            site.role = "embedding"
        else:
            site.role = "unknown"
        return site

    def _indexed_role(self, site: InitSite, target: cst.BaseExpression) -> InitSite | None:
        """`nn.init.zeros_(self.gate[0].weight)`: a layer picked by index from an nn.Sequential
        the code builds; the element's class gives the role."""
        node = target
        if isinstance(node, cst.Attribute) and node.attr.value == "data":
            node = node.value
        if not isinstance(node, cst.Attribute) or node.attr.value not in ("weight", "bias") or \
                not isinstance(node.value, cst.Subscript) or len(node.value.slice) != 1:
            return None
        idx = node.value.slice[0].slice
        i = literal_number(idx.value) if isinstance(idx, cst.Index) else None
        base = dotted_name(node.value.value)
        if i is None or i != int(i) or base is None or base.count(".") > 1:
            return None
        seqs = [o for o in self.p.evaluate_dotted(site.function, base) if o.qualname == "torch.nn.Sequential"]
        if len(seqs) != 1 or any(a.star or a.keyword is not None for a in seqs[0].node.args):
            return None
        elems = [a.value for a in seqs[0].node.args]
        i = int(i) + (len(elems) if i < 0 else 0)
        if not 0 <= i < len(elems) or not isinstance(elems[i], cst.Call):
            return None
        names = [tn.last(self.p.imports.resolve(e.func) or "") if isinstance(e, cst.Call) else "" for e in elems]
        layer = names[i]
        if not (self.p.imports.resolve(elems[i].func) or "").startswith("torch.nn."):
            return None
        site.owner = f"{base}[{i}]"
        site.target_text = f"{site.owner}.{node.attr.value}"
        site.layer = layer
        k = _kind_of_layer(layer)
        site.role = "bias" if node.attr.value == "bias" else \
            "norm" if k == "norm" else "embedding" if k == "embedding" else "weight" if k == "layer" else "unknown"
        weights = [j for j, n in enumerate(names) if _kind_of_layer(n) == "layer"]
        site.container_last = bool(weights) and weights[-1] == i
        return site

    def sites_for_text(self, f: FunctionInfo, text: str) -> list[InitSite]:
        """Parameter-construction sites already recorded for the same name (self.W, W1)."""
        out = []
        if self._by_target is None:
            self._by_target = {}
            for a in self.p.assignments:
                if isinstance(a.value, cst.Call) and a.augmented is None:
                    self._by_target.setdefault(a.target, []).append(a)
        for a in self._by_target.get(text, []):
            if self.p.imports.resolve(a.value.func) in _PARAMETER or \
                    literal_number(call_arg(a.value, "requires_grad", None)) == 1.0:
                cls_a = _class_of(a.function)
                if (text.startswith("self.") and cls_a is not None and cls_a is _class_of(f)) or \
                        a.function is f or a.function is self.p.module_function:
                    fake = self._factory_site(a.value, call_arg(a.value, "data", 0)
                                              if self.p.imports.resolve(a.value.func) in _PARAMETER
                                              else a.value, a.function, text)
                    if fake is not None:
                        out.append(fake)
                    else:
                        leaf = text.rsplit(".", 1)[-1]
                        role = "weight"
                        if _BIAS_NAME.search(leaf):
                            role = "bias"
                        elif _SCALE_NAME.search(leaf) or _NORM_NAME.search(leaf):
                            role = "norm"
                        elif _EMBED_NAME.search(leaf):
                            role = "embedding"
                        else:
                            inner = call_arg(a.value, "data", 0) or a.value
                            while isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute):
                                inner = inner.func.value
                            if isinstance(inner, cst.Call):
                                fq = self.p.imports.resolve(inner.func)
                                dims = self._dims(inner, tn.last(fq)) if fq else None
                                if dims is not None and dims < 2:
                                    role = "vector"
                        out.append(InitSite(node=a.value, function=a.function, kind="other",
                                            target_text=text, role=role, source="parameter"))
        return out

    def _owner_layer(self, f: FunctionInfo, owner: str, ctx: _Ctx) -> str | None:
        p = self.p
        objs = p.evaluate_dotted(f, owner) if owner.count(".") <= 1 else []
        for o in objs:
            if o.qualname.startswith("torch.nn."):
                return o.name
        if "." not in owner:
            for test, positive in reversed(ctx.conds):
                if not positive:
                    continue
                classes = _isinstance_classes(p, test, owner)
                if classes:
                    kinds = {_kind_of_layer(c) for c in classes}
                    if kinds == {"norm"}:
                        return next(c for c in classes if _kind_of_layer(c) == "norm")
                    for c in classes:
                        if _kind_of_layer(c) == "layer":
                            return c
                    return classes[0]
            # the classname-string idiom in the else branch: `elif classname.find('BatchNorm') != -1`
        return None

    def _is_apply_var(self, f: FunctionInfo, var: str) -> bool:
        """`var` is the module parameter of a function passed to `.apply()` (or its loop var)."""
        if var in f.params and var not in ("self", "cls"):
            return True
        return False


def _after(a: InitSite, b: InitSite) -> bool:
    """Site a comes after site b in the same function (by call order)."""
    return _order(a) > _order(b)


def _order(s: InitSite) -> int:
    return s.order


def _class_of(f: FunctionInfo | None) -> ClassInfo | None:
    while f is not None:
        if f.cls is not None:
            return f.cls
        f = f.parent
    return None


def init_model(program: ProgramModel) -> InitModel:
    """The program's initialization facts, computed once and cached on the program."""
    cached = program.__dict__.get("_rc_init_model")
    if cached is None:
        cached = InitModel(program)
        program.__dict__["_rc_init_model"] = cached
    return cached


# --------------------------------------------------------------------------- activations


def activation_families(program: ProgramModel, site: InitSite) -> set[str]:
    """Activation families ('relu', 'tanh', 'other') used by the model the site initializes:
    the enclosing nn.Module class and the local classes it builds, else the whole file."""
    cls = site.cls
    classes: set[int] | None = None
    if cls is not None and cls.is_module:
        classes = {id(cls)}
        frontier = [cls]
        while frontier:
            c = frontier.pop()
            for cs in program.calls:
                if _class_of(cs.function) is c and cs.dotted in program.classes:
                    sub = program.classes[cs.dotted]
                    if id(sub) not in classes:
                        classes.add(id(sub))
                        frontier.append(sub)
    fams: set[str] = set()
    for cs in program.calls:
        if classes is not None and id(_class_of(cs.function)) not in classes:
            continue
        name = None
        if cs.qualname and cs.qualname.startswith("torch."):
            name = tn.last(cs.qualname)
        elif cs.qualname is None and isinstance(cs.node.func, cst.Attribute):
            attr = cs.node.func.attr.value
            if attr in ("relu", "tanh", "sigmoid", "relu_", "tanh_", "sigmoid_"):
                name = attr
        if name is None:
            continue
        if name in RELU_FAMILY:
            fams.add("relu")
        elif name in TANH_FAMILY:
            fams.add("tanh")
        elif name in OTHER_ACTIVATIONS:
            fams.add("other")
    # a string nonlinearity passed to a layer (nn.RNN(nonlinearity="relu")) is not an activation
    return fams


# ------------------------------------------------------------------------ premises of RC301-RC303

_TEST_PATH = re.compile(r"(^|[/\\])(tests?|testing)[/\\]|(^|[/\\])(test_[^/\\]*|[^/\\]*_test|"
                        r"conftest)\.py$")
# per-channel or scalar gates and scales, learned tokens/queries/slots/memories
_GATE_NAME = re.compile(r"^(lambda|lamb|lam|gate|gates|gating|alpha|beta|gamma|ls|layer_?scale|"
                        r"res_?scale|skip_?scale|rezero|scale|temperature|temp|logit_scale)"
                        r"(_\w+|\d+)?$|_(lambda|gate|gates|gating|scale|scales|alpha|gain)\d*$",
                        re.I)
_TOKEN_NAME = re.compile(r"(^|_)(quer(y|ies)|slots?|memor(y|ies)|registers?|latents?|tokens?|"
                         r"prompts?|anchors?|codes|prototypes?|pos|positional|cls|dist)(_|$|\d)",
                         re.I)
_INPUT_NAME = re.compile(r"^(x|y|z|inp|input|inputs|data|sample|samples|batch|noise|target|"
                         r"targets|img|imgs|image|images|grad_output|dy)(_\w+|\d+)?$", re.I)
_HEAD_STRING = re.compile(r"^(head|heads|classifier|fc|last|final|output|out|logits?|lm_head)"
                          r"([._]|$)", re.I)


_HEADS_NAME = re.compile(r"^(heads|num_heads|n_heads|nhead|n_head|num_attention_heads)$", re.I)


def _over_heads_only(node: cst.CSTNode) -> bool:
    """`nn.Parameter(torch.randn(heads, heads))`: every dimension is a number of attention
    heads, a fan-in of a few units, where N(0, 1) is within a small factor of calibrated."""
    for n in walk(node):
        if isinstance(n, cst.Call) and (dotted_name(n.func) or "").rsplit(".", 1)[-1] in (
                "randn", "rand", "normal", "empty", "zeros", "ones", "full"):
            dims = [a.value for a in n.args if a.keyword is None]
            return bool(dims) and all(
                _HEADS_NAME.match((dotted_name(d) or "").rsplit(".", 1)[-1]) for d in dims)
    return False


def _strings_in(expr: cst.CSTNode) -> list[str]:
    out = []
    for n in walk(expr):
        if isinstance(n, cst.SimpleString):
            try:
                out.append(str(n.evaluated_value))
            except Exception:  # pragma: no cover - odd literal
                continue
    return out


def _assigned_name(module: cst.Module | None, node: cst.CSTNode) -> str:
    """The attribute or name a statement assigns when `node` is buried in its value
    (`self.slots = nn.ParameterList([nn.Parameter(torch.randn(n, d)) for n in sizes])`)."""
    if module is None:
        return ""
    for st in walk(module):
        if isinstance(st, cst.Assign) and len(st.targets) == 1 and \
                any(n is node for n in walk(st.value)):
            return dotted_name(st.targets[0].target) or ""
    return ""


def is_output_name(name: str) -> bool:
    """A layer name that says it is an output / residual-out layer (`head`, `final_conv`,
    `out_proj`, `lm_head`, ...)."""
    return bool(name) and bool(_OUTPUT_NAME.match(name))


def is_test_path(path: str) -> bool:
    """A file of a test suite (`tests/`, `test_*.py`, `*_test.py`, ...)."""
    return bool(path) and bool(_TEST_PATH.search(path.replace("\\", "/")))


def outside_premise(site: InitSite, path: str = "", module: cst.Module | None = None) -> str | None:
    """Why an init site is not the weight of a linear map or convolution whose init matters
    (None when it is): a file of tests or gradient checks, a weight-norm gain, a scalar or
    per-channel gate, a learned token/query/slot, an input tensor, or a classifier head
    selected by name (`if name.startswith("head")`: zero-init heads are a technique)."""
    if is_test_path(path):
        return "test"
    text = site.target_text or _assigned_name(module, site.node)
    leaf = text.rsplit(".", 1)[-1]
    owner_leaf = (site.owner or "").rsplit(".", 1)[-1]
    if leaf in ("weight_g", "g") or (site.layer == "weight_norm" and leaf != "weight_v"):
        return "weight-norm gain"
    for name in (leaf, owner_leaf):
        if name and _GATE_NAME.search(name):
            return "gate or scale"
        if name and _TOKEN_NAME.search(name):
            return "learned token"
    if site.source == "parameter" and leaf and _INPUT_NAME.match(leaf):
        return "input tensor"
    if site.source == "parameter" and _over_heads_only(site.node):
        return "a mixing matrix over a few attention heads"
    if site.source == "parameter" and _broadcast_to_batch(site, text):
        return "learned input"
    if site.source == "parameter" and _made_in_loop(site):
        return "fresh tensor every iteration"
    if owner_leaf and _single_input_linear(site, owner_leaf):
        return "per-channel gain of a single input"
    for test, positive in site.conds:
        if positive and any(_HEAD_STRING.match(t) for t in _strings_in(test)):
            return "classifier head"
    return None


def _made_in_loop(site: InitSite) -> bool:
    """A `requires_grad` tensor created inside the training loop (`z = torch.randn(batch, n,
    requires_grad=True)` each step): rebuilt every iteration, it is an input or noise, never a
    weight that learns."""
    node = site.node
    if dotted_name(node.func) in ("nn.Parameter", "torch.nn.Parameter", "Parameter"):
        return False
    for loop in site.function.loops:
        if _trains(loop) and any(n is node for n in walk(loop.node.body)):
            return True
    return False


def _trains(loop) -> bool:
    """The loop runs backward() (in its body or a nested loop): a training loop, not one that
    builds a list of weights."""
    stack = list(loop.items)
    while stack:
        item = stack.pop()
        if getattr(item, "kind", None) == "backward":
            return True
        stack.extend(getattr(item, "items", ()))
    return False


def _single_input_linear(site: InitSite, leaf: str) -> bool:
    """The zeroed layer is an `nn.Linear(1, channels)` (found by its attribute name in the
    module's classes): a per-channel gain on one scalar input, such as StyleGAN's noise
    strength, which starts at zero by design; with one input there is no weight matrix whose
    rows could stay alike."""
    p = site.function.program
    if p is None:
        return False
    target = f"self.{leaf}"
    for cls in p.classes.values():
        for m in cls.methods.values():
            for a in m.assignments:
                if a.target != target or not isinstance(a.value, cst.Call):
                    continue
                q = p.imports.resolve(a.value.func) or ""
                if q.rsplit(".", 1)[-1] != "Linear":
                    continue
                first = call_arg(a.value, "in_features", 0)
                if first is not None and literal_number(first) == 1:
                    return True
    return False


def _broadcast_to_batch(site: InitSite, text: str) -> bool:
    """The parameter is expanded or repeated to the batch where it is used
    (`self.const.expand(batch, -1, -1, -1)`, `repeat(self.queries, 'n d -> b n d', b=b)`,
    `x = self.const.to(dtype); x.unsqueeze(0).repeat([n, 1, 1, 1])`,
    `map(lambda t: repeat(t, 'd -> b 1 d', b=b), self.null_kv.unbind(-2))`): a learned input
    (StyleGAN's constant, latent queries, null keys/values), not the weight of a linear map."""
    cls = site.cls
    if cls is None or not text.startswith("self.") or text.count(".") != 1:
        return False
    for m in cls.methods.values():
        aliases = {text}
        for n in walk(m.node):
            if isinstance(n, cst.Assign) and _rooted(n.value, aliases):
                for t in n.targets:
                    aliases |= {x.value for x in walk(t.target) if isinstance(x, cst.Name)}
            if not isinstance(n, cst.Call):
                continue
            f = n.func
            if isinstance(f, cst.Attribute) and f.attr.value in ("expand", "expand_as", "repeat") and \
                    _rooted(f.value, aliases):
                return True
            leaf = (dotted_name(f) or "").rsplit(".", 1)[-1]
            if leaf == "repeat" and n.args and _rooted(n.args[0].value, aliases):
                return True
            if leaf == "map" and len(n.args) >= 2 and isinstance(n.args[0].value, cst.Lambda) and \
                    _rooted(n.args[1].value, aliases):
                lam = n.args[0].value
                params = {p.name.value for p in lam.params.params}
                for c in walk(lam.body):
                    if not isinstance(c, cst.Call):
                        continue
                    if isinstance(c.func, cst.Attribute) and c.func.attr.value in ("expand", "repeat") and \
                            _rooted(c.func.value, params):
                        return True
                    if (dotted_name(c.func) or "").rsplit(".", 1)[-1] == "repeat" and c.args and \
                            _rooted(c.args[0].value, params):
                        return True
    return False


def _rooted(expr, names: set[str]) -> bool:
    """`expr` is one of `names`, or computed from it by method calls, attributes and indexing
    (`self.const.to(dtype)`, `x.unsqueeze(0)`, `self.null_kv.unbind(dim=-2)`)."""
    for _ in range(12):
        d = dotted_name(expr)
        if d is not None and d in names:
            return True
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            expr = expr.func.value
        elif isinstance(expr, cst.Subscript):
            expr = expr.value
        else:
            return False
    return False


def _calls_attr(expr: cst.CSTNode, attrs: set[str]) -> bool:
    for n in walk(expr):
        if isinstance(n, cst.Call) and dotted_name(n.func) in attrs:
            return True
    return False


def _terms(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The operands of a top-level sum (`a * g + b` -> [a * g, b])."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract)):
        return _terms(expr.left) + _terms(expr.right)
    return [expr]


def _zero_term(expr: cst.BaseExpression, zero: set[str], attrs: set[str]) -> bool:
    """A term that is zero when the names in `zero` are: one of them, a call of the zeroed
    layer, or a product with such a factor."""
    if isinstance(expr, cst.Name):
        return expr.value in zero
    if isinstance(expr, cst.Call) and dotted_name(expr.func) in attrs:
        return True
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
        return _zero_term(expr.left, zero, attrs) or _zero_term(expr.right, zero, attrs)
    return False


def zeroes_forward_path(site: InitSite, program: ProgramModel | None = None) -> bool | None:
    """For a zeroed layer of a module class: True when the class's forward returns only terms
    that the zero init makes zero (`tokens * gamma + beta` with gamma, beta from the zeroed
    projection and no residual), False when the zeroed output is added to something else (a
    residual, `1 + gamma`), None when this cannot be read."""
    cls = site.cls
    owner = site.owner or ""
    if cls is None or not owner:
        return None
    attrs: set[str] = set()
    if owner.startswith("self.") and owner.count(".") == 1:
        attrs.add(owner)
    elif "." not in owner:
        # a local layer registered through a container: self.to_gamma_beta = nn.Sequential(proj, ...)
        for m in cls.methods.values():
            for a in m.assignments:
                if a.target.startswith("self.") and a.value is not None and \
                        any(isinstance(n, cst.Name) and n.value == owner for n in walk(a.value)):
                    attrs.add(a.target)
    fwd = cls.methods.get("forward")
    if not attrs or fwd is None or not isinstance(fwd.node, cst.FunctionDef):
        return None
    zero: set[str] = set()
    for st in walk(fwd.node.body):
        if isinstance(st, cst.Assign) and _calls_attr(st.value, attrs):
            for t in st.targets:
                zero |= {n.value for n in walk(t.target) if isinstance(n, cst.Name)}
    if not zero and not any(_calls_attr(r, attrs) for r in fwd.returns):
        return None
    verdicts = []
    for r in fwd.returns:
        if not (_calls_attr(r, attrs) or any(isinstance(n, cst.Name) and n.value in zero
                                             for n in walk(r))):
            continue
        zt = [_zero_term(t, zero, attrs) for t in _terms(r)]
        verdicts.append(True if all(zt) else False if any(zt) else None)
    if not verdicts or None in verdicts:
        return None  # the zeroed output feeds further layers inside the block
    if all(verdicts) and program is not None and not _used_as_submodule(program, cls):
        return None  # the model's own output (a zero-init head): the loss still reaches it
    return all(verdicts)


_NORMALIZERS = {"softmax", "log_softmax", "sigmoid", "softmin"}


def feeds_normalizer(site: InitSite) -> bool:
    """The zeroed layer's output goes, in its class's forward, into a softmax or sigmoid (an
    attention-weight or gate logit layer, Deformable-DETR's `attention_weights`): zero logits
    start uniform and the normalizer's gradient differs per unit, so they learn apart."""
    cls = site.cls
    owner = site.owner or ""
    if cls is None or not owner.startswith("self.") or owner.count(".") != 1:
        return False
    fwd = cls.methods.get("forward")
    if fwd is None or not isinstance(fwd.node, cst.FunctionDef):
        return False
    attrs = {owner}
    zero: set[str] = set()

    def reaches(expr) -> bool:
        return _calls_attr(expr, attrs) or any(isinstance(n, cst.Name) and n.value in zero for n in walk(expr))

    for st in walk(fwd.node.body):
        if isinstance(st, cst.Call) and st.args:
            leaf = (dotted_name(st.func) or "").rsplit(".", 1)[-1]
            if leaf in _NORMALIZERS and reaches(st.args[0].value):
                return True
            if leaf in _NORMALIZERS and isinstance(st.func, cst.Attribute) and reaches(st.func.value):
                return True  # `logits.softmax(-1)`
        if isinstance(st, cst.Assign) and reaches(st.value):
            for t in st.targets:
                zero |= {n.value for n in walk(t.target) if isinstance(n, cst.Name)}
    return False


def _used_as_submodule(program: ProgramModel, cls: ClassInfo) -> bool:
    """Another module class builds `cls` (its output feeds further layers)."""
    for other in program.classes.values():
        if other is cls or not other.is_module:
            continue
        for m in other.methods.values():
            for a in m.assignments:
                if a.value is not None and any(
                        isinstance(n, cst.Call) and dotted_name(n.func) == cls.name
                        for n in walk(a.value)):
                    return True
    return False


def _mentions(expr: cst.CSTNode, names: set[str], attrs: set[str]) -> bool:
    for n in walk(expr):
        if isinstance(n, cst.Name) and n.value in names:
            return True
        if isinstance(n, cst.Attribute) and dotted_name(n) in attrs:
            return True
    return False


def added_to_identity(site: InitSite) -> bool:
    """A zero-initialized parameter whose contribution is added to the method's input (a
    residual) or to a parameter initialized to ones or the identity (`dynamic + static_alpha`
    with `static_alpha` built from `torch.eye`): a zero correction on top of an identity, as
    in ReZero, adaLN-Zero or hyper-connections."""
    cls = site.cls
    text = site.target_text or ""
    if cls is None or not (text.startswith("self.") and text.count(".") == 1):
        return False
    identity_attrs = set()
    for m in cls.methods.values():
        for a in m.assignments:
            if a.target.startswith("self.") and a.value is not None and any(
                    isinstance(n, cst.Call) and (dotted_name(n.func) or "").rsplit(".", 1)[-1]
                    in ("eye", "ones", "ones_like") for n in walk(a.value)):
                identity_attrs.add(a.target)
    for m in cls.methods.values():
        if not isinstance(m.node, cst.FunctionDef):
            continue
        zero: set[str] = set()
        for _ in range(3):
            for st in walk(m.node.body):
                if isinstance(st, cst.Assign) and _mentions(st.value, zero, {text}):
                    for t in st.targets:
                        zero |= {n.value for n in walk(t.target) if isinstance(n, cst.Name)}
        inputs = set(m.params) - {"self"}
        for n in walk(m.node.body):
            if not (isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Add)):
                continue
            for a, b in ((n.left, n.right), (n.right, n.left)):
                if _mentions(a, zero, {text}) and not _mentions(b, zero, {text}) and \
                        _mentions(b, inputs, identity_attrs):
                    return True
    return False


# --------------------------------------------------------------------------- other modules


@dataclass(eq=False)
class ForeignSite:
    """An init site of another module reached from a call of the linted file."""

    site: InitSite
    owner: ProgramModel  # the module that holds the site
    call: cst.Call  # the linted file's call (where a finding is reported)
    caller: FunctionInfo  # the function of the linted file that makes the call
    callee: FunctionInfo | None  # the called function, or the class's __init__

    def value(self, program: ProgramModel):
        """The constant as *this* call makes it: a parameter of the callee (directly, or through
        `self.x = x` in `__init__`) is the argument of this call; anything else is evaluated
        over every call (see :mod:`recipecheck.program.values`)."""
        from recipecheck.program.nodes import bind_arguments
        from recipecheck.program.values import value_of

        expr = self.site.value_expr
        fn = self.callee
        name = None
        if fn is not None and isinstance(fn.node, cst.FunctionDef):
            if isinstance(expr, cst.Name) and self.site.function is fn and expr.value in fn.params and \
                    not fn.bindings(expr.value):
                name = expr.value
            d = dotted_name(expr) if isinstance(expr, cst.Attribute) else None
            if d and d.startswith("self.") and d.count(".") == 1:
                binds = fn.bindings(d)
                if len(binds) == 1 and isinstance(binds[0].value, cst.Name) and \
                        binds[0].value.value in fn.params:
                    name = binds[0].value.value
        if name is not None and not any(a.star for a in self.call.args):
            bound = dict(bind_arguments(self.call, fn.params, fn.cls is not None))
            if name in bound:
                return value_of(program, self.caller, bound[name])
            from recipecheck.program.values import _param_default

            default = _param_default(fn, name)
            if default is not None:
                return value_of(self.owner, fn, default)
        return value_of(program, self.site.function, expr)


def foreign_constant_sites(program: ProgramModel) -> list[ForeignSite]:
    """Init sites of project classes and init helpers defined in other modules whose constant
    is not a literal, with each call of the linted file that builds the class or calls the
    helper (where a finding is reported): `Net(constant_weight=0)` in train.py reaching
    `nn.init.constant_(m.weight, constant_weight)` in model.py."""
    link = getattr(program, "link", None)
    if link is None or not link.programs:
        return []
    out = []
    seen: set[tuple[int, int]] = set()
    for cs in program.calls:
        if not cs.dotted or cs.function.program not in (None, program):
            continue
        try:
            target = link.lookup(program, cs.dotted)
        except RecursionError:
            continue
        if isinstance(target, ClassInfo):
            owner = next((m for m in link.programs.values()
                          if getattr(m, "own_classes", m.classes).get(target.name) is target), None)
            callee = owner.class_method(target, "__init__") if owner is not None else None
        elif isinstance(target, FunctionInfo):  # an init helper: `init_weights(layer, 0.0)`
            owner = target.program
            callee = target
        else:
            continue
        if owner is None or owner is program:
            continue
        for site in init_model(owner).sites:
            if site.value_expr is None or (id(site.node), id(cs.node)) in seen:
                continue
            if isinstance(target, ClassInfo) and site.cls is not target:
                continue
            if isinstance(target, FunctionInfo) and not _inside(site.function, target):
                continue
            seen.add((id(site.node), id(cs.node)))
            out.append(ForeignSite(site, owner, cs.node, cs.function, callee))
    return out


def _inside(fn: FunctionInfo | None, outer: FunctionInfo) -> bool:
    while fn is not None:
        if fn is outer:
            return True
        fn = fn.parent
    return False
