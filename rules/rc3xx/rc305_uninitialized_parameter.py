import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import ProgramModel
from recipecheck.program.nodes import walk
from recipecheck.rule import Context, Rule

_PARAMETER = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}
# constructors that allocate without writing: the memory holds whatever was there before
_UNINIT_ALWAYS = {"torch.empty", "torch.empty_like"}
_UNINIT_SIZES = {"torch.Tensor", "torch.FloatTensor", "torch.cuda.FloatTensor", "torch.DoubleTensor",
                 "torch.HalfTensor"}
_SIZE_WORDS = ("dim", "size", "num", "features", "channels", "hidden", "heads", "len", "width",
               "depth", "classes", "out", "in_", "n_", "_n")
# methods whose body is (by convention) the module's initialization
_INIT_METHODS = {"reset_parameters", "_reset_parameters", "init_weights", "_init_weights",
                 "initialize", "_initialize", "init_parameters", "_init_parameters", "reset",
                 "weights_init", "init_params", "_init_params", "initialize_weights",
                 "_initialize_weights", "reset_params"}


def _looks_like_size(arg: cst.BaseExpression) -> bool:
    if isinstance(arg, cst.Integer):
        return True
    if isinstance(arg, cst.BinaryOperation):
        return any(isinstance(n, cst.Integer) for n in walk(arg)) or \
            _looks_like_size(arg.left) or _looks_like_size(arg.right)
    d = dotted_name(arg)
    if d is None:
        return False
    leaf = d.rsplit(".", 1)[-1].lower()
    return leaf in ("n", "d", "k", "c", "h", "w") or any(w in leaf for w in _SIZE_WORDS)


def _uninitialized_storage(p: ProgramModel, expr: cst.BaseExpression) -> str | None:
    """`torch.empty(...)` / `torch.Tensor(out, in)`: the text of the allocation, else None."""
    if not isinstance(expr, cst.Call):
        return None
    q = p.imports.resolve(expr.func)
    if q in _UNINIT_ALWAYS:
        args = [a for a in expr.args if a.keyword is None]
        if len(args) == 1 and isinstance(args[0].value, cst.Integer) and args[0].value.value == "0":
            return None  # no elements
        return q
    if q in _UNINIT_SIZES:
        args = [a for a in expr.args if a.keyword is None]
        if not args or any(a.star for a in args):
            return None
        if len(args) >= 2 and all(not isinstance(a.value, (cst.List, cst.Tuple, cst.ListComp)) for a in args):
            return q
        if len(args) == 1 and _looks_like_size(args[0].value):
            return q  # torch.Tensor(dim); torch.Tensor(array) copies data and is not reported
    return None


def _is_inplace_name(name: str | None) -> bool:
    return bool(name) and name.endswith("_") and not name.endswith("__")


class _Touches:
    """Names (attribute leaves or plain names) that some statement of the file fills."""

    def __init__(self, p: ProgramModel) -> None:
        self.names: set[str] = set()
        self.all_params = False  # a loop over self.parameters() that initializes each one
        self.p = p
        for cs in p.calls:
            self._call(cs)
        for a in p.assignments:
            # `self.w.data = torch.randn(...)`, `self.w.data[:] = ...`
            parts = a.target.split(".")
            if len(parts) >= 2 and parts[-1] == "data":
                self.names.add(parts[-2])

    def _call(self, cs) -> None:
        call = cs.node
        func = call.func
        method = func.attr.value if isinstance(func, cst.Attribute) else None
        fn_name = dotted_name(func)
        leaf = fn_name.rsplit(".", 1)[-1] if fn_name else method
        in_init_method = cs.function.name in _INIT_METHODS
        # `self.w.data.normal_()`, `self.w.copy_(...)`, `m.weight.fill_(1)`
        if method and _is_inplace_name(method):
            self._add_receiver(func.value)
        # `nn.init.xavier_uniform_(self.w)`, `trunc_normal_(self.pos_embed, std=.02)`, and any
        # call that gets the parameter inside an initialization method (`glorot(self.weight)`)
        if self._opaque_init(cs, leaf, method):
            self.all_params = True  # initialized by code we cannot see: stay quiet
        if _is_inplace_name(leaf) or in_init_method or (leaf and "init" in leaf.lower()):
            for a in call.args:
                self._add_receiver(a.value)
                if isinstance(a.value, (cst.List, cst.Tuple)):
                    for el in a.value.elements:
                        self._add_receiver(el.value)
        if _is_inplace_name(leaf) or (leaf and "init" in leaf.lower()):
            loop = cs.loop
            while loop is not None:
                text = dotted_name(loop.iter.func) if isinstance(loop.iter, cst.Call) else loop.iter_text
                if text and text.rsplit(".", 1)[-1] in ("parameters", "named_parameters", "values"):
                    self.all_params = True
                elif text:
                    self.names.add(text.rsplit(".", 1)[-1])
                loop = loop.parent

    def _opaque_init(self, cs, leaf: str | None, method: str | None) -> bool:
        """`model.apply(init_fn)` / `initialize(self)` with a function from another module."""
        call = cs.node
        if method == "apply" and call.args:
            fn = dotted_name(call.args[0].value)
            if fn is None:
                return True
            fn_leaf = fn.rsplit(".", 1)[-1]
            return not any(f.name == fn_leaf for f in self.p.functions.values())
        if leaf and "init" in leaf.lower() and not (cs.qualname or "").startswith(("torch", "timm")):
            local = any(f.name == leaf for f in self.p.functions.values())
            passes_module = any(isinstance(a.value, cst.Name) and a.value.value in ("self", "model", "net", "m")
                                for a in call.args)
            return passes_module and not local
        return False

    def _add_receiver(self, expr: cst.BaseExpression) -> None:
        while isinstance(expr, (cst.Subscript, cst.Call)):
            expr = expr.value if isinstance(expr, cst.Subscript) else expr.func
        d = dotted_name(expr)
        if d is None:
            return
        parts = [x for x in d.split(".") if x not in ("data", "weight_orig")]
        if parts:
            self.names.add(parts[-1])


class UninitializedParameter(Rule):
    """
    ## What it does
    Flags `nn.Parameter(torch.empty(...))` / `nn.Parameter(torch.Tensor(out, in))` (and
    `torch.FloatTensor(...)`) that nothing in the file ever fills: no `nn.init.*_` call, no
    in-place `normal_()` / `uniform_()` / `copy_()` / `fill_()` / `zero_()`, no assignment to
    its `.data`, no call that receives it in a `reset_parameters()` / `_init_weights()`
    method, and no loop that initializes every parameter. `torch.Tensor(array)` (which copies
    data) and frozen parameters (`requires_grad=False`) are not reported.

    ## Why is this bad?
    `torch.empty` and the size form of `torch.Tensor` allocate memory without writing to it.
    The parameter starts from whatever bytes were there: often zeros (no symmetry breaking),
    sometimes huge values, denormals or NaN, and different on every run and machine. The
    model may train on one machine and diverge on another, results are not reproducible, and
    a NaN from garbage memory poisons the whole run.
    Measured (`recipecheck validate RC305`, seeds 0-4): whether the initial weight changes with
    the memory history or is degenerate (>= 50% one value, |w| > 1e3, non-finite): True with
    nn.Parameter(torch.empty(64, 64)) vs False with initialized (on every seed); the claim held
    on 5 of 5 seeds.

    ## Known problems
    Initialization done in another module (a base class's `reset_parameters()` defined
    elsewhere, `model.apply(init_fn)` or `initialize(self)` with a function imported from a
    utility file) cannot be seen: such classes and files are skipped. A
    model that only ever loads a checkpoint before use is fine, and is not reported when its
    file never trains and calls `load_state_dict()`. Files of a test suite (`tests/`,
    `test_*.py`) are not checked: their modules are built to be called, not trained.

    ## Example
    ```python
    class Attention(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.w = nn.Parameter(torch.Tensor(dim, dim))
    ```

    ## Use instead
    ```python
            self.w = nn.Parameter(torch.empty(dim, dim))
            nn.init.xavier_uniform_(self.w)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: the right initializer depends on the layer.

    ## References
    - PyTorch docs, `torch.empty` ("Returns a tensor filled with uninitialized data") and
      `torch.nn.init`.
    - PyTorch docs, `torch.nn.Linear.reset_parameters` (how built-in layers initialize).
    """

    CODE = "RC305"
    NAME = "uninitialized-parameter"
    SEVERITY = Severity.ERROR
    MESSAGE = "a parameter allocated with torch.empty/torch.Tensor is never initialized"
    VALID = (
        "import torch\nimport torch.nn as nn\n"
        "class Attn(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n"
        "        self.w = nn.Parameter(torch.empty(dim, dim))\n        nn.init.xavier_uniform_(self.w)\n"
        "        self.b = nn.Parameter(torch.Tensor(dim))\n        self.b.data.zero_()\n",
        # reset_parameters, the way torch's own layers do it
        "import math\nimport torch\nimport torch.nn as nn\n"
        "class MyLinear(nn.Module):\n    def __init__(self, i, o):\n        super().__init__()\n"
        "        self.weight = nn.Parameter(torch.Tensor(o, i))\n        self.bias = nn.Parameter(torch.Tensor(o))\n"
        "        self.reset_parameters()\n"
        "    def reset_parameters(self):\n        stdv = 1. / math.sqrt(self.weight.size(1))\n"
        "        self.weight.data.uniform_(-stdv, stdv)\n        glorot_zeros(self.bias)\n",
        # timm-style: tokens initialized in _init_weights through apply()
        "import torch\nimport torch.nn as nn\nfrom timm.layers import trunc_normal_\n"
        "class ViT(nn.Module):\n    def __init__(self, n, d):\n        super().__init__()\n"
        "        self.cls_token = nn.Parameter(torch.empty(1, 1, d))\n"
        "        self.pos_embed = nn.Parameter(torch.empty(1, n + 1, d))\n"
        "        self.init_weights()\n"
        "    def init_weights(self):\n        trunc_normal_(self.pos_embed, std=.02)\n"
        "        nn.init.normal_(self.cls_token, std=1e-6)\n",
        # data, not a size; a frozen buffer-like tensor; every parameter initialized in a loop
        "import numpy as np\nimport torch\nimport torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self, table):\n        super().__init__()\n"
        "        self.scale = nn.Parameter(torch.Tensor([1.0]))\n"
        "        self.emb = nn.Parameter(torch.Tensor(table))\n"
        "        self.pe = nn.Parameter(torch.empty(512, 64), requires_grad=False)\n"
        "        self.u = nn.Parameter(torch.empty(64, 64))\n"
        "        for p in self.parameters():\n            nn.init.normal_(p, 0, 0.02)\n",
    )
    INVALID = (
        "import torch\nimport torch.nn as nn\n"
        "class GraphConv(nn.Module):\n    def __init__(self, in_features, out_features):\n"
        "        super().__init__()\n"
        "        self.weight = nn.Parameter(torch.FloatTensor(in_features, out_features))  # expect: RC305\n"
        "    def forward(self, x, adj):\n        return adj @ (x @ self.weight)\n",
        "import torch\nfrom torch import nn\n"
        "class Attention(nn.Module):\n    def __init__(self, hidden_dim):\n        super().__init__()\n"
        "        self.v = nn.Parameter(torch.empty(hidden_dim))  # expect: RC305\n"
        "        self.W = nn.Linear(hidden_dim, hidden_dim)\n"
        "    def forward(self, h):\n        return torch.tanh(self.W(h)) @ self.v\n",
    )

    def check(self, ctx: Context) -> None:
        from recipecheck.program.init import is_test_path

        if is_test_path(ctx.path):
            return  # a module of a test suite is built to be called, not trained
        p = ctx.program
        touches = None
        for cs in p.calls:
            if cs.qualname not in _PARAMETER or not cs.node.args:
                continue
            first = cs.node.args[0].value
            alloc = _uninitialized_storage(p, first)
            if alloc is None:
                continue
            if any(a.keyword is not None and a.keyword.value == "requires_grad" for a in cs.node.args):
                continue
            if touches is None:
                touches = _Touches(p)
                if touches.all_params or self._loads_weights(p):
                    return
            cls = cs.function.cls or (cs.function.parent.cls if cs.function.parent else None)
            if cls is not None and not self._hierarchy_visible(p, cls):
                continue
            name = self._target_name(p, cs)
            if name is None or name in touches.names:
                continue
            ctx.report(cs.node, (
                f"`{ctx.code(cs.node)}` allocates `{name}` with {alloc}(), "
                "which leaves whatever was in memory, and nothing in this file ever initializes it: "
                "training starts from garbage (sometimes NaN); call an nn.init function on it (RC305)"))

    @staticmethod
    def _target_name(p: ProgramModel, cs) -> str | None:
        for a in cs.function.assignments:
            value = a.value.body if isinstance(a.value, cst.IfExp) else a.value  # `... if cond else None`
            if isinstance(a.node, (cst.Assign, cst.AnnAssign)) and value is cs.node:
                return a.target.rsplit(".", 1)[-1]
        # `self.register_parameter("w", nn.Parameter(...))`
        for other in p.calls:
            if other.function is cs.function and other.dotted and other.dotted.endswith("register_parameter") \
                    and any(a.value is cs.node for a in other.node.args):
                first = other.node.args[0].value
                if isinstance(first, cst.SimpleString) and isinstance(first.evaluated_value, str):
                    return first.evaluated_value
        return None  # in a list or comprehension: too indirect to follow

    @staticmethod
    def _hierarchy_visible(p: ProgramModel, cls) -> bool:
        """Every base is nn.Module or a class of this file whose own bases are visible (a base
        from another project module may initialize the parameter in methods not linted here)."""
        foreign = getattr(p, "foreign_classes", set())
        seen = set()
        stack = [cls]
        while stack:
            c = stack.pop()
            if c.name in seen:
                continue
            seen.add(c.name)
            for b in c.bases:
                if b in ("torch.nn.Module", "torch.nn.modules.module.Module", "object", ""):
                    continue
                local = p.classes.get(b)
                if local is None or b in foreign:
                    return False
                stack.append(local)
        return True

    @staticmethod
    def _loads_weights(p: ProgramModel) -> bool:
        """A file that never trains and loads a checkpoint fills every parameter from it."""
        loads = any(cs.dotted and cs.dotted.endswith("load_state_dict") for cs in p.calls)
        trains = any(ev.kind == "backward" for f in p.functions.values() for ev in f.events)
        return loads and not trains
