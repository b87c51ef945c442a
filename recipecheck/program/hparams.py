"""Optimizer and hyperparameter vocabulary shared by the rules and the recipe.

Where optimizer hyperparameters sit in torch.optim constructors (:func:`opt_arg`), param groups,
the indexes of argparse defaults and config-class fields that the value evaluator reads, names
that look like hyperparameters, and the "small model" contexts where unusual values are
published. The *values* themselves come from one place, :mod:`recipecheck.program.values`
(:func:`number` is a thin wrapper over it, kept for callers that need one agreed number).
"""

from __future__ import annotations

import re

import libcst as cst

from recipecheck.program.imports import dotted_name
from recipecheck.program.nodes import iter_children
from recipecheck.program.model import Construction, FunctionInfo, ProgramModel

_CACHE_ATTR = "_recipecheck_hparams"


def _cache(program: ProgramModel) -> dict:
    c = getattr(program, _CACHE_ATTR, None)
    if c is None:
        c = {}
        setattr(program, _CACHE_ATTR, c)
    return c


def _argparse_defaults(program: ProgramModel) -> dict[str, list[cst.BaseExpression | None]]:
    """dest -> the `default=` expressions of every add_argument defining it (None: no default)."""
    cache = _cache(program)
    if "argparse" in cache:
        return cache["argparse"]
    out: dict[str, list] = {}
    for cs in program.calls:
        if not cs.dotted or not cs.dotted.endswith(".add_argument"):
            continue
        dests = []
        default = None
        for a in cs.node.args:
            if a.keyword is None and isinstance(a.value, cst.SimpleString):
                s = a.value.evaluated_value
                if isinstance(s, str):
                    dests.append(s)
            elif a.keyword is not None and a.keyword.value == "dest" and isinstance(a.value, cst.SimpleString):
                dests = [a.value.evaluated_value]
                break
        for a in cs.node.args:
            if a.keyword is not None and a.keyword.value == "default":
                default = a.value
        if not dests:
            continue
        longs = [d for d in dests if isinstance(d, str) and d.startswith("--")]
        name = (longs[0] if longs else dests[0]) if dests else None
        if not isinstance(name, str):
            continue
        out.setdefault(name.lstrip("-").replace("-", "_"), []).append(default)
    cache["argparse"] = out
    return out


def _class_fields(program: ProgramModel) -> dict[str, list[cst.BaseExpression]]:
    """field name -> values of class-level `name: T = value` / `name = value` in local classes."""
    cache = _cache(program)
    if "fields" in cache:
        return cache["fields"]
    out: dict[str, list] = {}
    for cls in program.classes.values():
        body = cls.node.body
        stmts = body.body if isinstance(body, cst.IndentedBlock) else ()
        for stmt in stmts:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if isinstance(small, cst.AnnAssign) and small.value is not None and \
                        isinstance(small.target, cst.Name):
                    out.setdefault(small.target.value, []).append(small.value)
                elif isinstance(small, cst.Assign) and len(small.targets) == 1 and \
                        isinstance(small.targets[0].target, cst.Name):
                    out.setdefault(small.targets[0].target.value, []).append(small.value)
    cache["fields"] = out
    return out


def number(program: ProgramModel, f: FunctionInfo | None, expr, depth: int = 0) -> float | None:
    """The number an expression stands for, or None when the code does not say (or says several
    things): a thin wrapper over :func:`recipecheck.program.values.number_of`, the one
    evaluator. Rules that can decide on a set of possibilities use ``values.value_of``."""
    from recipecheck.program.values import number_of

    return number_of(program, f, expr)


def is_positive(v: float | None) -> bool:
    return v is not None and v > 0


# ------------------------------------------------------------------------ optimizer arguments

# position of each hyperparameter in torch.optim constructors (params is position 0)
_POSITIONS = {
    "SGD": {"lr": 1, "momentum": 2, "dampening": 3, "weight_decay": 4, "nesterov": 5},
    "Adam": {"lr": 1, "betas": 2, "eps": 3, "weight_decay": 4, "amsgrad": 5},
    "AdamW": {"lr": 1, "betas": 2, "eps": 3, "weight_decay": 4, "amsgrad": 5},
    "RMSprop": {"lr": 1, "alpha": 2, "eps": 3, "weight_decay": 4, "momentum": 5},
    "Adagrad": {"lr": 1, "lr_decay": 2, "weight_decay": 3},
    "Adamax": {"lr": 1, "betas": 2, "eps": 3, "weight_decay": 4},
    "NAdam": {"lr": 1, "betas": 2, "eps": 3, "weight_decay": 4},
    "RAdam": {"lr": 1, "betas": 2, "eps": 3, "weight_decay": 4},
    "Adadelta": {"lr": 1, "rho": 2, "eps": 3, "weight_decay": 4},
}
TORCH_DEFAULT_LR = {"SGD": 1e-3, "Adam": 1e-3, "AdamW": 1e-3, "RMSprop": 1e-2, "Adagrad": 1e-2,
                    "Adamax": 2e-3, "NAdam": 2e-3, "RAdam": 1e-3}


def is_torch_optimizer(c: Construction) -> bool:
    return c.role == "optimizer" and c.qualname.startswith("torch.optim")


def opt_arg(c: Construction, name: str) -> cst.BaseExpression | None:
    """An optimizer hyperparameter passed by keyword or at its torch.optim position."""
    pos = _POSITIONS.get(c.name, {}).get(name)
    return c.arg(name, pos)


def opt_number(program: ProgramModel, c: Construction, name: str) -> float | None:
    return number(program, c.function, opt_arg(c, name))


def param_groups(c: Construction) -> list[cst.Dict]:
    """The dict literals of `Opt([{"params": ...}, {...}])`."""
    first = c.arg("params", 0)
    if isinstance(first, (cst.List, cst.Tuple)):
        return [el.value for el in first.elements if isinstance(el.value, cst.Dict)]
    return []


def dict_value(d: cst.Dict, key: str) -> cst.BaseExpression | None:
    for el in d.elements:
        if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) and \
                el.key.evaluated_value == key:
            return el.value
    return None


def whole_model_params(c: Construction) -> str | None:
    """`model` when the optimizer gets `model.parameters()` (optionally through filter/list)."""
    first = c.arg("params", 0)
    node = first
    for _ in range(3):
        if isinstance(node, cst.Call):
            d = dotted_name(node.func)
            if isinstance(node.func, cst.Attribute) and node.func.attr.value == "parameters" and not node.args:
                return dotted_name(node.func.value)
            if d in ("filter", "list") and node.args:
                node = node.args[-1].value
                continue
        return None
    return None


_HPARAM_TOKENS = re.compile(r"^(lr|lrs|learning_rates?|wd|wds|weight_decays?|decay|decays|l2|l2_reg|"
                            r"reg|regs|lam|lambdas?|alpha|alphas|momentum|momentums|dropout|dropouts|"
                            r"batch_sizes?|bs|hidden|hidden_sizes?|hidden_dims?|n_layers|num_layers|"
                            r"layers|depth|width|eps|beta1|beta2|gamma|gammas|lr_list|wd_list)$")
_LR_WD = re.compile(r"^(lr|lrs|learning_rates?|wd|wds|weight_decays?|l2|l2_regs?|lr_list|wd_list|"
                    r"lr_values|wd_values|lr_grid|wd_grid|lr_range|wd_range|lr_candidates|"
                    r"wd_candidates)$")


def is_hparam_name(name: str | None) -> bool:
    if not name:
        return False
    return bool(_HPARAM_TOKENS.match(name.rsplit(".", 1)[-1].lower()))


def is_lr_or_wd_name(name: str | None) -> bool:
    if not name:
        return False
    return bool(_LR_WD.match(name.rsplit(".", 1)[-1].lower()))


_PROBE_OWNER = re.compile(r"(^|_)(head|fc|classifier|linear|probe|last_layer|linear_classifier)"
                          r"(_|$|\d)", re.I)


def small_model_context(program: ProgramModel, c: Construction) -> str | None:
    """Why an optimizer trains something small, where LR and weight decay outside the usual
    range for a deep network are common and published (None when no such context shows):
    a reinforcement-learning policy, a linear probe on frozen features, or one layer that owns
    its optimizer (forward-forward style local training)."""
    p = program
    if any((cs.qualname or "").startswith(("gym.", "gymnasium.", "torch.distributions."))
           for cs in p.calls) or any((cs.dotted or "").endswith("env.step") for cs in p.calls):
        return "a reinforcement-learning policy"
    owner = c.params_owner
    leaf = (owner or "").rsplit(".", 1)[-1]
    frozen = any(isinstance(cs.node.func, cst.Attribute) and cs.node.func.attr.value == "requires_grad_"
                 and cs.node.args and isinstance(cs.node.args[0].value, cst.Name)
                 and cs.node.args[0].value.value == "False" for cs in p.calls) or \
        any(a.target.endswith(".requires_grad") and isinstance(a.value, cst.Name) and
            a.value.value == "False" for a in p.assignments)
    if owner and _PROBE_OWNER.search(leaf) and (frozen or owner != leaf or "probe" in leaf.lower()
                                                or "linear_classifier" in leaf.lower()):
        return "a linear probe on frozen features"
    if frozen and _trainable_only(c):
        # `params = filter(lambda p: p.requires_grad, model.parameters())` after freezing
        # all but the classifier: the MoCo / SimSiam linear evaluation (SGD lr=30 there)
        return "a linear probe on frozen features"
    if owner == "self":
        f = c.function
        while f is not None and f.cls is None:
            f = f.parent
        if f is not None and f.cls is not None and any(
                b.rsplit(".", 1)[-1] in ("Linear", "Conv1d", "Conv2d", "Conv3d") for b in f.cls.bases):
            return "one layer trained by its own optimizer"
    return None


def _trainable_only(c: Construction) -> bool:
    """The optimizer gets only the parameters that still require gradients (a `requires_grad`
    filter or comprehension, directly or through a name bound in the same function)."""
    first = c.arg("params", 0)
    exprs = [first] if first is not None else []
    if isinstance(first, cst.Name):
        exprs += [a.value for a in c.function.bindings(first.value) if isinstance(a.value, cst.CSTNode)]
    for e in exprs:
        stack = [e]
        while stack:
            n = stack.pop()
            if isinstance(n, cst.Attribute) and n.attr.value == "requires_grad":
                return True
            stack.extend(iter_children(n))
    return False
