"""Evaluation protocol facts shared by the RC7xx rules: eval loops and the model's train/eval mode.

Built lazily from the program model's indexes (no new traversal of the module) and cached on
the ProgramModel instance (see :func:`analysis`).

*The mode view.* The program model's expanded loops drop calls it cannot resolve, and
``model.eval()`` / ``model(x)`` are exactly such calls. This module therefore expands every root
function again, inlining calls to the file's functions like the expanded view does, but keeping
every call event. Names are carried through calls: inside ``evaluate(net, val_loader)`` called
as ``evaluate(model, loaders["val"])``, ``net`` is known as ``model`` and the loader's text as
``loaders["val"]``. A model is identified by the last component of its name (``self.model`` and
a parameter ``model`` bound to it are the same model; ``model.module`` is ``model``).

*Eval loops.* A loop that reaches no ``backward()``, calls a model, and is either under
``torch.no_grad()`` / ``torch.inference_mode()`` (a ``with`` around it or around the call that
reaches it, or a decorator on a function on the way), or iterates a validation/test loader (by
name, through the parameter it was passed as, or by its construction's dataset:
``DataLoader(val_ds)``, ``MNIST(train=False)``), or lives in a function named like
evaluate/validate/test that is called from somewhere. Only the outermost such loop counts.

*Mode before a point.* Walking back from a point in the expanded tree, the last
``m.eval()`` / ``m.train()`` reached is the model's mode; a conditional one adds a possibility
and the walk goes on. At the start of a loop body the walk also looks at the end of that body,
which is what later iterations see ("wrap-around"). Each way of arriving is a *scenario*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

import libcst as cst

from recipecheck.program.nodes import bind_arguments, iter_children, literal_number

from recipecheck.program.imports import dotted_name
from recipecheck.program.model import Event, FunctionInfo, LoopInfo, ProgramModel

_ATTR = "_recipecheck_evaluation"
_MAX_DEPTH = 6

NO_GRAD = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
           "torch.autograd.inference_mode", "torch.autograd.grad_mode.no_grad",
           "torch.autograd.grad_mode.inference_mode"}
GRAD_FREE_BY_NAME = "<decorator named no_grad/inference_mode>"
GRAD_CONTROL = NO_GRAD | {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled",
                          "torch.autograd.grad_mode.set_grad_enabled", GRAD_FREE_BY_NAME}

_EVAL_FUNC = re.compile(
    r"^(eval|evaluate|evaluation|validate|validation|valid|val|test|testing|inference|predict)"
    r"(_|$)|_(eval|evaluate|evaluation|validate|validation|valid|val|test)(_|$)|^estimate_loss$", re.I)
_MODEL_LEAF = re.compile(r"(^|_)(model|net|network|encoder|decoder|classifier|backbone|generator|"
                         r"discriminator|autoencoder|vae|gpt|bert|transformer|cnn|rnn|lstm|mlp)"
                         r"s?(_|$|\d)|^net[a-z]?$|^(netg|netd|g|d)$", re.I)
_GENERATE = ".generate"
_TRAIN_MODELS = ("torchvision.models", "timm.create_model", "timm.models")


_SENSITIVE_LAYERS = re.compile(
    r"^torch\.nn\.(Dropout\w*|AlphaDropout|FeatureAlphaDropout|\w*BatchNorm\w*|InstanceNorm\w*)$|"
    r"^torch\.nn\.functional\.(dropout\w*|alpha_dropout|feature_alpha_dropout|batch_norm|instance_norm)$|"
    r"^(torchvision\.models|timm|transformers)\.")
# layers whose mode matters only through their `dropout` argument: (position, default)
_DROPOUT_ARG = {"torch.nn.RNN": (5, 0.0), "torch.nn.LSTM": (5, 0.0), "torch.nn.GRU": (5, 0.0),
                "torch.nn.MultiheadAttention": (2, 0.0), "torch.nn.Transformer": (6, 0.1),
                "torch.nn.TransformerEncoderLayer": (3, 0.1),
                "torch.nn.TransformerDecoderLayer": (3, 0.1)}


_INSTANCE_NORM = re.compile(r"^torch\.nn\.(Lazy)?InstanceNorm\dd$|^torch\.nn\.functional\.instance_norm$")


def _mode_sensitive(qualname: str | None, call: cst.Call | None = None, program: ProgramModel | None = None,
                    function: FunctionInfo | None = None, in_eval: bool = False) -> bool:
    """A layer that computes differently in train and eval mode: Dropout, BatchNorm,
    InstanceNorm, a library model, or an RNN/attention/Transformer layer with dropout > 0
    (an `nn.LSTM` without `dropout=` is the same in both modes). With `in_eval` (is training
    mode wrong while evaluating?) InstanceNorm does not count: in training mode it normalizes
    each sample by its own statistics, the computation it was trained with, so the output
    neither depends on the rest of the batch nor differs from training."""
    if not qualname:
        return False
    if in_eval and _INSTANCE_NORM.match(qualname):
        return False
    if _SENSITIVE_LAYERS.match(qualname):
        return True
    spec = _DROPOUT_ARG.get(qualname)
    if spec is None:
        return False
    if call is None:
        return True
    from recipecheck.program.nodes import call_arg
    arg = call_arg(call, "dropout", spec[0])
    if arg is None:
        return spec[1] > 0
    v = literal_number(arg)
    if v is not None:
        return v > 0
    if program is None:
        return True
    # `nn.LSTM(..., dropout=args.dropout)`: off only when every value the code gives it is 0
    # (a parameter's default alone does not count: a caller elsewhere may pass another value)
    from recipecheck.program.values import ALL, judge, value_of

    val = value_of(program, function, arg)
    return not (judge(val, lambda x: x == 0).verdict == ALL and not any(
        x.source.startswith("default of parameter") for x in val.possibilities))


# ------------------------------------------------------------------ loops that are not evaluation


def _names_in(expr: cst.CSTNode | None) -> set[str]:
    """Plain variable names an expression reads (`a.b[c]` reads a and c)."""
    out: set[str] = set()
    stack = [expr] if expr is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Name):
            out.add(n.value)
        elif isinstance(n, cst.Attribute):
            stack.append(n.value)
        elif isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        else:
            stack.extend(iter_children(n))
    return out


def is_retry_loop(loop: cst.For | cst.While) -> bool:
    """`while batch_size: try: ...; return/break  except RuntimeError: batch_size //= 2`: a loop
    that retries a run (out-of-memory back-off), not one that iterates data."""
    if not isinstance(loop, cst.While) or not isinstance(loop.body, cst.IndentedBlock):
        return False
    for st in loop.body.body:
        if not isinstance(st, cst.Try) or not st.handlers:
            continue
        caught = {d for h in st.handlers for d in _names_in(h.type)}
        if "StopIteration" in caught:
            return False  # `while True: try: next(it)`: pulling batches by hand
        exits = [n for n in _walk_statements(st.body) if isinstance(n, (cst.Return, cst.Break))]
        if exits:
            return True
    return False


def _walk_statements(node: cst.CSTNode):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.For, cst.While)):
            if n is not node:
                continue
        stack.extend(iter_children(n))


_MOVES = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval", "to_empty"}
_MUTATORS = {"append", "extend", "insert", "fill_", "copy_", "add_", "put", "push", "add", "store"}


def is_feedback_loop(loop: cst.For | cst.While, model_calls: list[cst.Call]) -> bool:
    """The model's output flows back into its own input within the loop, and the input does not
    come from the loop variable: autoregressive decoding, sampling, an RL rollout
    (`action = policy(obs); obs = env.step(action)`). Such a loop generates, it does not
    evaluate held-out data."""
    if not model_calls:
        return False
    flows: list[tuple[set[str], set[str]]] = []  # (names written, names read)
    owners: list[set[str]] = []  # names written by each statement that calls the model
    call_ids = {id(c) for c in model_calls}
    for n in _walk_statements(loop.body):
        targets: list[cst.CSTNode] = []
        value = None
        if isinstance(n, cst.Assign):
            targets, value = [t.target for t in n.targets], n.value
        elif isinstance(n, (cst.AugAssign, cst.AnnAssign)):
            targets, value = [n.target], n.value
        elif isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and \
                n.func.attr.value in _MUTATORS and not any(
                    isinstance(a.value, cst.Call) and id(a.value) in call_ids for a in n.args):
            targets, value = [n.func.value], n
        if value is None:
            continue
        written = set().union(*(_names_in(t) for t in targets)) if targets else set()
        read = _names_in(value)
        flows.append((written, read))
        if any(id(c) in call_ids for c in _walk_exprs(value)):
            owners.append(written)
    out: set[str] = set().union(*owners) if owners else set()
    inputs: set[str] = set()
    for c in model_calls:
        for a in c.args:
            inputs |= _names_in(a.value)
    for _ in range(3):  # a few rounds reach a fixed point on real loops
        for written, read in flows:
            if read & out:
                out |= written
            if written & inputs:
                inputs |= read
    loop_vars = _names_in(loop.target) if isinstance(loop, cst.For) else set()
    if inputs & loop_vars:
        return False  # the input comes from the iterated data
    return bool(inputs & out)


def _walk_exprs(node: cst.CSTNode):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, (cst.Lambda, cst.FunctionDef)):
            continue
        stack.extend(iter_children(n))


# ------------------------------------------------------------------------ split names


def split_kind(text: str | None) -> str | None:
    """'test' / 'val' when a name or text says it holds held-out data, else None."""
    if not text:
        return None
    kinds = set()
    for tok in re.split(r"[^A-Za-z0-9]+|_", text.lower()):
        if not tok:
            continue
        if tok in ("test", "testing", "tst") or re.fullmatch(r"test(loader|set|data|dl|ds|iter|batches)s?", tok):
            kinds.add("test")
        elif tok in ("val", "valid", "validation", "dev", "eval", "evaluation", "holdout", "heldout") or \
                re.fullmatch(r"(val|valid|dev|eval)(loader|set|data|dl|ds|iter|batches)s?", tok):
            kinds.add("val")
    if "val" in kinds:
        return "val"
    if "test" in kinds:
        return "test"
    return None


_CONTAINERS = {"torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict"}


def _holds_parameters(f: FunctionInfo, call: cst.Call) -> bool:
    """A container built from the enclosing function's parameters, whose layers are unknown."""
    for a in call.args:
        v = a.value
        stack = [v]
        while stack:
            e = stack.pop()
            if isinstance(e, (cst.List, cst.Tuple)):
                stack += [el.value for el in e.elements]
            elif isinstance(e, cst.Name) and e.value in f.params and not f.bindings(e.value):
                return True
    return False


def forward_text(ev) -> str | None:
    """The model as written at a forward call: `model` for `model(x)` and `model.generate(x)`."""
    text = ev.callee_text
    if text and text.endswith(_GENERATE) and text.count(".") <= 2:
        return text[:-len(_GENERATE)]
    return text


def model_key(dotted: str | None) -> str | None:
    """The identity of a model object: last name component, `.module` (DDP) stripped."""
    if not dotted:
        return None
    parts = dotted.split(".")
    while len(parts) > 1 and parts[-1] in ("module", "_orig_mod"):
        parts.pop()
    return parts[-1]


# ------------------------------------------------------------------------ the mode view


@dataclass(eq=False)
class Node:
    """One loop or event of the mode view (calls to the file's functions inlined)."""

    parent: "Node | None"
    chain: tuple[Event, ...]
    names: dict[str, str]
    withs: tuple[str, ...]
    loop: LoopInfo | None = None
    event: Event | None = None
    children: list["Node"] = field(default_factory=list)
    root: "Root | None" = None

    @property
    def function(self) -> FunctionInfo:
        return self.loop.function if self.loop is not None else self.event.function

    @property
    def conds(self) -> tuple:
        return self.loop.conds if self.loop is not None else self.event.conds

    def walk(self) -> Iterator["Node"]:
        for c in self.children:
            yield c
            yield from c.walk()

    def ancestors(self) -> Iterator["Node"]:
        p = self.parent
        while p is not None:
            yield p
            p = p.parent

    def canon(self, dotted: str | None) -> str | None:
        if not dotted:
            return dotted
        head, dot, rest = dotted.partition(".")
        mapped = self.names.get(head)
        if mapped is None:
            return dotted
        return f"{mapped}.{rest}" if dot else mapped

    @property
    def grad_free(self) -> bool:
        return any(w in NO_GRAD for w in self.withs)

    @property
    def grad_controlled(self) -> bool:
        return any(w in GRAD_CONTROL for w in self.withs)


@dataclass(eq=False)
class Root:
    function: FunctionInfo
    children: list[Node] = field(default_factory=list)


@dataclass(eq=False)
class ModeSet:
    node: Node
    model: str
    mode: str  # "train" | "eval" | "unknown"


@dataclass(eq=False)
class EvalLoop:
    node: Node
    reasons: tuple[str, ...]  # "no_grad" | "loader:<kind>" | "function"
    split: str | None  # "val" | "test" | None
    models: tuple[str, ...]  # model keys called in the loop
    forward: Node  # the first model call reached in the loop


def _decorator_withs(program: ProgramModel, fn: FunctionInfo) -> tuple[str, ...]:
    node = fn.node
    if not isinstance(node, cst.FunctionDef):
        return ()
    out = []
    for d in node.decorators:
        expr = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
        q = program.imports.resolve(expr)
        if q:
            out.append(q)
        leaf = (q or dotted_name(expr) or "").rsplit(".", 1)[-1]
        if q not in NO_GRAD and _GRAD_FREE_DECORATOR.search(leaf):
            # a project's own wrapper (`smart_inference_mode()` picks inference_mode or
            # no_grad by torch version), named for what it does: it controls autograd, but
            # alone it does not make the function's loops evaluation loops
            out.append(GRAD_FREE_BY_NAME)
    return tuple(out)


_LOSS_CLASS = re.compile(r"(loss|criterion)$", re.I)
_GRAD_FREE_DECORATOR = re.compile(r"(^|_)(no_grad|inference_mode)$")


def _arg_text(program: ProgramModel, node: Node | None, expr: cst.BaseExpression, names: dict) -> str:
    d = dotted_name(expr)
    if d is not None:
        head, dot, rest = d.partition(".")
        mapped = names.get(head)
        if mapped is not None:
            return f"{mapped}.{rest}" if dot else mapped
        return d
    try:
        return program.module.code_for_node(expr).strip()
    except Exception:  # pragma: no cover - defensive
        return ""


def _param_names(program: ProgramModel, call: Event, callee: FunctionInfo, names: dict) -> dict:
    out: dict[str, str] = {}
    if call.call is None or not isinstance(callee.node, cst.FunctionDef):
        return out
    for name, value in bind_arguments(call.call, callee.params, callee.cls is not None):
        if name in callee.params:
            out[name] = _arg_text(program, None, value, names)
    return out


def mode_call(ev: Event) -> tuple[str, str] | None:
    """(receiver dotted, mode) for `m.eval()` / `m.train()` / `m.train(False)`, else None."""
    if ev.kind != "call" or not ev.callee_text or ev.call is None:
        return None
    recv, _, meth = ev.callee_text.rpartition(".")
    if not recv or meth not in ("eval", "train"):
        return None
    if ev.callee is not None and not (ev.callee.cls is not None and ev.callee.cls.is_module):
        return None
    args = ev.call.args
    if meth == "eval":
        return (recv, "eval") if not args else None
    if not args:
        return recv, "train"
    if len(args) > 1 or (args[0].keyword is not None and args[0].keyword.value != "mode"):
        return None
    v = args[0].value
    if isinstance(v, cst.Name) and v.value in ("True", "False"):
        return recv, "train" if v.value == "True" else "eval"
    return recv, "unknown"


class Evaluation:
    """The mode view of one file and the queries the RC7xx rules share."""

    def __init__(self, program: ProgramModel) -> None:
        self.program = program
        self.roots: list[Root] = []
        # bounded like the program model's expanded view: helpers calling each other have
        # exponentially many call paths
        from recipecheck.program.model import expansion_budget

        self._budget = expansion_budget(program)
        for f in program.roots:
            root = Root(function=f)
            root.children = self._expand(f.items, None, (), {}, (id(f),), _decorator_withs(program, f), root)
            self.roots.append(root)
        self._modesets: dict[int, list[ModeSet]] = {}
        self._all_nodes = [n for r in self.roots for c in r.children for n in (c, *c.walk())]
        self.mode_sets: list[ModeSet] = []
        for n in self._all_nodes:
            if n.event is not None:
                mc = mode_call(n.event)
                if mc is not None:
                    key = model_key(n.canon(mc[0]))
                    if key:
                        self.mode_sets.append(ModeSet(n, key, mc[1]))
        self._ms_by_node = {id(ms.node): ms for ms in self.mode_sets}
        self.model_keys = self._model_keys()
        self.eval_loops = self._find_eval_loops()

    # -- building
    def _expand(self, items, parent, chain, names, stack, withs, root) -> list[Node]:
        out: list[Node] = []
        for item in items:
            self._budget -= 1
            if isinstance(item, LoopInfo):
                n = Node(parent=parent, chain=chain, names=names, withs=withs + item.withs, loop=item, root=root)
                n.children = self._expand(item.items, n, chain, names, stack, withs, root)
                out.append(n)
                continue
            callee = item.callee
            if item.kind == "call" and callee is not None and mode_call(item) is None:
                if id(callee) in stack or len(stack) > _MAX_DEPTH or self._budget < 0:
                    continue
                sub_names = _param_names(self.program, item, callee, names)
                sub_withs = withs + item.withs + _decorator_withs(self.program, callee)
                out += self._expand(callee.items, parent, (*chain, item), sub_names, (*stack, id(callee)),
                                    sub_withs, root)
                continue
            out.append(Node(parent=parent, chain=chain, names=names, withs=withs + item.withs, event=item,
                            root=root))
        return out

    def _model_keys(self) -> set[str]:
        p = self.program
        keys = {ms.model for ms in self.mode_sets}
        for c in p.constructions("optimizer"):
            if c.params_owner:
                keys.add(model_key(c.params_owner))
        for a in p.assignments:
            if a.augmented is None and isinstance(a.value, cst.Call) and self._is_model_construction(a):
                keys.add(model_key(a.target))
        keys.discard(None)
        keys.discard("self")
        return keys

    def _is_model_construction(self, a, fresh_only: bool = False) -> bool:
        """`a` binds a network: a local nn.Module class, a torchvision/timm constructor, or
        (unless `fresh_only`: those come back in eval mode) a `from_pretrained` model; moves
        and mode calls chained on it are looked through (with `fresh_only`, a chained
        `.eval()` means the model is not in training mode)."""
        p = self.program
        value = a.value
        mode = None
        while isinstance(value.func, cst.Attribute) and value.func.attr.value in _MOVES and \
                isinstance(value.func.value, cst.Call):
            if mode is None and value.func.attr.value in ("eval", "train"):
                mode = value.func.attr.value  # the outermost mode call is the one that holds
            value = value.func.value  # `Net().to(device)`, `Net().eval()`
        if fresh_only and mode == "eval":
            return False  # `net = Net().eval().to(device)`: built in eval mode
        d = dotted_name(value.func)
        if d is not None and d in p.classes:
            # `criterion = FocalLoss()`: a loss module is not the model whose mode matters
            return p.classes[d].is_module and not _LOSS_CLASS.search(d)
        q = p.imports.resolve(value.func)
        if q and q.startswith(_TRAIN_MODELS):
            return True
        return not fresh_only and bool(q) and q.startswith("transformers.") and q.endswith("from_pretrained")

    def is_model_call(self, n: Node) -> str | None:
        """The model key when the node calls a model (`model(x)`, `self.net(x)`)."""
        ev = n.event
        if ev is None or ev.kind != "call" or ev.callee is not None or not ev.callee_text:
            return None
        if mode_call(ev) is not None:
            return None
        # `model.generate(ids)` (Hugging Face, seq2seq decoders) runs the model's forward in
        # whatever mode the model is in: it is a forward of `model`
        callee = forward_text(ev)
        text = n.canon(callee)
        key = model_key(text)
        if key in self.model_keys:
            return key
        if key and _MODEL_LEAF.search(key) and "." not in callee.split(".", 1)[-1] and \
                not callee.endswith((".eval", ".train")) and self._looks_called_as_module(callee):
            return key
        return None

    @staticmethod
    def _looks_called_as_module(text: str) -> bool:
        parts = text.split(".")
        if len(parts) == 1:
            return True
        return len(parts) == 2 and parts[0] == "self"

    # -- eval loops
    def _is_training(self, n: Node) -> bool:
        return any(c.event is not None and c.event.kind == "backward" for c in n.walk())

    def loop_split(self, n: Node) -> str | None:
        """'val'/'test' when the loop iterates a held-out loader."""
        loop = n.loop
        if loop is None or loop.iter is None:
            return None
        p = self.program
        kinds = set()
        stack = [loop.iter]
        while stack:
            e = stack.pop()
            d = dotted_name(e)
            if d is not None:
                k = split_kind(n.canon(d))
                if k:
                    kinds.add(k)
                else:
                    k = self._loader_split(loop.function, d)
                    if k:
                        kinds.add(k)
                continue
            if isinstance(e, cst.SimpleString):
                k = split_kind(str(e.evaluated_value))
                if k:
                    kinds.add(k)
                continue
            if isinstance(e, cst.Subscript):
                stack.append(e.value)
                for s in e.slice:
                    if isinstance(s.slice, cst.Index):
                        stack.append(s.slice.value)
                continue
            if isinstance(e, cst.Call):
                stack += [a.value for a in e.args]
                if isinstance(e.func, cst.Attribute):
                    stack.append(e.func.value)
                continue
            stack += [c for c in iter_children(e) if isinstance(c, cst.BaseExpression)]
        # a parameter passed a held-out loader
        for head in {dotted_name(x) for x in [loop.iter] if dotted_name(x)}:
            k = split_kind(n.canon(head))
            if k:
                kinds.add(k)
        if "val" in kinds:
            return "val"
        return "test" if "test" in kinds else None

    def _loader_split(self, f: FunctionInfo, dotted: str) -> str | None:
        for c in self.program.evaluate_dotted(f, dotted):
            if c.role != "loader":
                continue
            ds = c.arg("dataset", 0)
            if ds is None:
                continue
            k = split_kind(dotted_name(ds))
            if k:
                return k
            k = self._dataset_split(ds) if isinstance(ds, cst.Call) else None
            if k:
                return k
            d = dotted_name(ds)
            if d:
                for dc in self.program.evaluate_dotted(c.function, d):
                    k = self._dataset_split(dc.node)
                    if k:
                        return k
        return None

    @staticmethod
    def _dataset_split(call: cst.Call) -> str | None:
        for a in call.args:
            if a.keyword is None:
                continue
            if a.keyword.value == "train" and isinstance(a.value, cst.Name) and a.value.value == "False":
                return "test"
            if a.keyword.value in ("split", "subset") and isinstance(a.value, cst.SimpleString):
                return split_kind(str(a.value.evaluated_value))
        return None

    def _find_eval_loops(self) -> list[EvalLoop]:
        out: list[EvalLoop] = []
        seen_loops: set[int] = set()

        def visit(nodes: list[Node], inside_eval: bool) -> None:
            for n in nodes:
                if n.loop is None:
                    continue
                if inside_eval:
                    visit(n.children, True)
                    continue
                if is_retry_loop(n.loop.node):
                    visit(n.children, False)  # the run it retries may hold the eval loop
                    continue
                ev = self._classify(n)
                if ev is not None:
                    out.append(ev)
                    seen_loops.add(id(n.loop))
                    visit(n.children, True)
                else:
                    visit(n.children, False)

        for r in self.roots:
            visit(r.children, False)
        return out

    def _classify(self, n: Node) -> EvalLoop | None:
        if self._is_training(n):
            return None
        forwards = [(c, self.is_model_call(c)) for c in n.walk() if c.event is not None]
        forwards = [(c, k) for c, k in forwards if k]
        if not forwards:
            return None
        reasons = []
        direct = [c for c, _ in forwards if next((a for a in c.ancestors() if a.loop is not None), None) is n]
        if n.grad_free or (direct and all(c.grad_free for c in direct)):
            reasons.append("no_grad")
        split = self.loop_split(n)
        if split:
            reasons.append(f"loader:{split}")
        fn = n.loop.function
        if fn.callers and _EVAL_FUNC.search(fn.name) and \
                not any(a.loop is not None and a.loop.function is fn for a in n.ancestors()):
            reasons.append("function")
        if not reasons:
            return None
        own = [c.event.call for c, _ in forwards if c.chain == n.chain and c.event.call is not None]
        if not split and is_feedback_loop(n.loop.node, own):
            return None  # decoding, sampling or a rollout: the model's output is its next input
        models = tuple(dict.fromkeys(k for _, k in forwards))
        return EvalLoop(node=n, reasons=tuple(reasons), split=split, models=models, forward=forwards[0][0])

    # -- modes
    def _subtree_modesets(self, n: Node, model: str) -> list[ModeSet]:
        key = id(n)
        if key not in self._modesets:
            if n.event is not None:
                ms = self._ms_by_node.get(id(n))
                self._modesets[key] = [ms] if ms is not None else []
            else:
                lst = []
                for c in n.walk():
                    ms = self._ms_by_node.get(id(c))
                    if ms is not None:
                        lst.append(ms)
                self._modesets[key] = lst
        return [ms for ms in self._modesets[key] if ms.model == model]

    @staticmethod
    def _conds_at_level(n: Node, level_chain_len: int) -> set[int]:
        """Condition nodes (by id) that guard `n` relative to its level's statement list."""
        ids = {id(c) for c in n.conds}
        for ev in n.chain[level_chain_len:]:
            ids |= {id(c) for c in ev.conds}
        return ids

    def _conditional(self, ms: Node, ref: Node) -> bool:
        common = 0
        for a, b in zip(ms.chain, ref.chain):
            if a is not b:
                break
            common += 1
        ms_conds = self._conds_at_level(ms, common)
        if ms.parent is not ref.parent:
            # inside a sibling loop: only its own conditions count
            return bool(ms_conds)
        ref_conds = self._conds_at_level(ref, common)
        return not ms_conds <= ref_conds

    def _collect_back(self, siblings: list[Node], ref: Node, model: str) -> tuple[list[ModeSet], bool]:
        found: list[ModeSet] = []
        for s in reversed(siblings):
            for ms in reversed(self._subtree_modesets(s, model)):
                found.append(ms)
                if ms.mode != "unknown" and not self._conditional(ms.node, ref):
                    return found, True
        return found, False

    def scenarios(self, target: Node, model: str) -> list["Scenario"]:
        """Every way of arriving at `target`, with the modes the model may be in there."""
        done: list[Scenario] = []
        pending = [Scenario(states=[], wrap=None)]
        cur = target
        while pending:
            parent = cur.parent
            sibs = parent.children if parent is not None else cur.root.children
            idx = next(i for i, s in enumerate(sibs) if s is cur)
            found, resolved = self._collect_back(sibs[:idx], cur, model)
            for p in pending:
                p.states += found
            if resolved:
                done += pending
                break
            if parent is None:
                for p in pending:
                    p.default = True
                done += pending
                break
            # later iterations of `parent` start where the previous iteration ended: its whole
            # body, from the end back (after `cur`, then before it again)
            after, after_resolved = self._collect_back(sibs[idx + 1:], cur, model)
            wrap_states = after if after_resolved else after + found
            if wrap_states:
                later = [Scenario(states=p.states + wrap_states, wrap=parent) for p in pending]
                if after_resolved:
                    done += later
                else:
                    pending += later
            cur = parent
        return done

    def default_is_train(self, root: Root, model: str) -> bool:
        """A model reached with no mode call is in train mode: freshly built here, or trained."""
        for n in (x for c in root.children for x in (c, *c.walk())):
            if n.loop is not None and any(c.event is not None and c.event.kind == "backward"
                                          for c in n.children) and \
                    any(self.is_model_call(c) == model for c in n.walk()):
                return True
        seen = {id(root.function)} | {id(x.event.function) for c in root.children for x in (c, *c.walk())
                                       if x.event is not None}
        module = self.program.module_function
        for a in self.program.assignments:
            if "." not in a.target and a.function is not module and id(a.function) not in seen:
                continue  # a local of a function this run does not reach is another variable
            if model_key(a.target) == model and isinstance(a.value, cst.Call) and \
                    self._is_model_construction(a, fresh_only=True):
                return True
        return False

    def mode_matters(self, model: str, in_eval: bool = False) -> bool:
        """False only when the model is built here from layers that behave the same in train and
        eval mode (no Dropout, BatchNorm, InstanceNorm, dropout-carrying RNN/Transformer layers).
        With `in_eval`, whether training mode harms an evaluation (InstanceNorm does not)."""
        memo = self.__dict__.setdefault("_mode_matters_memo", {})  # rules ask per loop: scan once
        if (model, in_eval) not in memo:
            memo[model, in_eval] = self._mode_matters(model, in_eval)
        return memo[model, in_eval]

    def _mode_matters(self, model: str, in_eval: bool = False) -> bool:
        p = self.program
        local = False
        for a in p.assignments:
            if model_key(a.target) != model or a.augmented is not None or not isinstance(a.value, cst.Call):
                continue
            value = a.value
            while isinstance(value.func, cst.Attribute) and value.func.attr.value in _MOVES and \
                    isinstance(value.func.value, cst.Call):
                value = value.func.value  # Net().to(device)
            d = dotted_name(value.func)
            q = p.imports.resolve(value.func)
            if (d is not None and d in p.classes and p.classes[d].is_module) or \
                    (q is not None and q.startswith("torch.nn.") and q.count(".") == 2):
                if q in _CONTAINERS and _holds_parameters(a.function, value):
                    return True  # `nn.Sequential(*encoders, head)`: modules handed in from outside
                local = True
            else:
                return True
        if not local:
            return True
        key = "sensitive_in_eval" if in_eval else "sensitive"
        if key not in self.__dict__:
            # model classes of other project modules count with their layers
            progs = [p, *(p.link.programs.values() if getattr(p, "link", None) else ())]
            self.__dict__[key] = any(_mode_sensitive(cs.qualname, cs.node, p, cs.function, in_eval)
                                     for q in progs for cs in q.calls)
        return self.__dict__[key]

    def owner_keys(self, el: EvalLoop, model: str) -> list[str]:
        """Models that contain `model` as called in the loop: `model` for `model.decoder(x)`
        (eval() on a parent module covers its submodules)."""
        out: list[str] = []
        for n in el.node.walk():
            if n.event is None or self.is_model_call(n) != model:
                continue
            parts = (n.canon(n.event.callee_text) or "").split(".")[:-1]
            for i in range(len(parts), 0, -1):
                k = model_key(".".join(parts[:i]))
                if k and k != "self" and k not in out:
                    out.append(k)
        return out

    def eval_at_loop_start(self, el: EvalLoop, keys: list[str]) -> bool:
        """`for x, y in loader: model.eval(); ...`: the loop's body sets eval mode before its
        first model call."""
        for n in el.node.walk():
            ms = self._ms_by_node.get(id(n))
            if ms is not None and ms.model in keys and not n.conds:
                return ms.mode == "eval"
            if n.event is not None and self.is_model_call(n):
                return False
        return False

    def train_at_loop_start(self, el: EvalLoop, keys: list[str]) -> Node | None:
        """`for x, y in val_loader: model.train(); model(x)`: the node of the unconditional
        train() the loop's body runs before its first model call."""
        for n in el.node.walk():
            ms = self._ms_by_node.get(id(n))
            if ms is not None and ms.model in keys and not n.conds:
                return n if ms.mode == "train" else None
            if n.event is not None and self.is_model_call(n):
                return None
        return None

    def eval_in_constructor(self, el: EvalLoop, keys: list[str]) -> bool:
        """`self.model.eval()` in the owning class's `__init__`, and no `self.model.train()`
        anywhere in the class: every method sees the model in eval mode."""
        f: FunctionInfo | None = el.node.loop.function
        while f is not None and f.cls is None:
            f = f.parent
        if f is None or f.cls is None:
            return False
        found = False
        for m in f.cls.methods.values():
            for ev in m.events:
                mc = mode_call(ev)
                if mc is None or not mc[0].startswith("self.") or model_key(mc[0]) not in keys:
                    continue
                if mc[1] != "eval":
                    return False
                found = found or m.name == "__init__"
        return found

    def training_loops(self) -> list[Node]:
        """Loops that run backward() directly (batch loops) in the mode view."""
        return [n for n in self._all_nodes if n.loop is not None and
                any(c.event is not None and c.event.kind == "backward" for c in n.children)]

    def epoch_loops(self) -> list[Node]:
        """Loops that enclose a batch loop (computed once: rules query it per node)."""
        got = self.__dict__.get("_epoch_loops")
        if got is None:
            batch = {id(n) for n in self.training_loops()}
            outer: dict[int, Node] = {}
            for n in self._all_nodes:
                if id(n) in batch:
                    for a in n.ancestors():
                        if isinstance(a, Node) and a.loop is not None:
                            outer[id(a)] = a
            got = [n for n in self._all_nodes if id(n) in outer]
            self.__dict__["_epoch_loops"] = got
        return list(got)


@dataclass(eq=False)
class Scenario:
    states: list[ModeSet]
    wrap: Node | None  # the loop whose later iterations this scenario describes
    default: bool = False

    def modes(self) -> set[str]:
        out = {s.mode for s in self.states}
        if self.default:
            out.add("default")
        return out


def analysis(program: ProgramModel) -> Evaluation:
    """The evaluation facts of a file, computed once and cached on the program model."""
    ev = getattr(program, _ATTR, None)
    if ev is None:
        ev = Evaluation(program)
        setattr(program, _ATTR, ev)
    return ev


# ------------------------------------------------------------------------ fixes


def _statement_blocks(fn_node: cst.CSTNode, target: cst.CSTNode):
    """(block, index, parent statement of the block) for the statement list holding `target`."""
    stack: list[tuple[cst.CSTNode, cst.CSTNode | None]] = [(fn_node, None)]
    while stack:
        node, owner = stack.pop()
        body = None
        if isinstance(node, cst.Module):
            body = node.body
        elif isinstance(node, cst.IndentedBlock):
            body = node.body
        if body is not None:
            for i, s in enumerate(body):
                if s is target:
                    return node, i, owner
        for c in iter_children(node):
            stack.append((c, node if isinstance(node, cst.BaseCompoundStatement) else owner))
    return None


def insert_before_transform(fn_node: cst.CSTNode, target: cst.BaseStatement, code: str,
                            hoist_withs: frozenset[str] = frozenset(), resolve=None):
    """A module transform inserting statement `code` right before `target` in its block.

    With `hoist_withs`, when `target` is the first statement of a `with` of those context
    managers (`with torch.no_grad():`), the statement goes before the `with` instead.
    """
    found = _statement_blocks(fn_node, target)
    if found is None:
        return None
    block, idx, owner = found
    if hoist_withs and idx == 0 and isinstance(owner, cst.With) and resolve is not None:
        names = []
        for item in owner.items:
            expr = item.item.func if isinstance(item.item, cst.Call) else item.item
            names.append(resolve(expr))
        if names and all(n in hoist_withs for n in names):
            outer = insert_before_transform(fn_node, owner, code, hoist_withs, resolve)
            if outer is not None:
                return outer
    new_stmt = cst.parse_statement(code)
    moved = new_stmt.with_changes(leading_lines=target.leading_lines)
    new_target = target.with_changes(leading_lines=())
    body = list(block.body)
    body[idx:idx + 1] = [moved, new_target]
    new_block = block.with_changes(body=tuple(body))

    def transform(module: cst.Module) -> cst.Module:
        if block is module:
            return new_block
        return module.deep_replace(block, new_block)

    return transform
