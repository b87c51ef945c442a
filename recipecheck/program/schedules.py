"""Facts about LR schedulers: is a scheduler's horizon in epochs or in optimizer steps?"""

from __future__ import annotations

import re

import libcst as cst

from recipecheck.program.nodes import iter_children

from recipecheck.program.imports import dotted_name
from recipecheck.program.model import Construction, ProgramModel

# Names whose value counts optimizer steps/iterations rather than epochs.
_STEP_NAME = re.compile(
    r"(^|_)(iters?|iterations?|total_steps|max_steps|num_steps|n_steps|train_steps|training_steps|"
    r"num_training_steps|steps_per_epoch|num_batches|n_batches|updates|num_updates|max_iter|"
    r"total_iters|warmup_steps|num_warmup_steps|decay_steps|lr_decay_iters|warmup_iters|"
    r"batches_per_epoch|iters_per_epoch|total_iterations|estimated_stepping_batches)$",
    re.I,
)
_ITERATION_LITERAL = 1000  # a literal horizon this large is counted in iterations, not epochs

EPOCH_SCHEDULERS = {"StepLR", "MultiStepLR", "ExponentialLR", "ReduceLROnPlateau", "PolynomialLR",
                    "CosineAnnealingLR"}
ALWAYS_BATCH = {"CyclicLR"}


def _names_in(node: cst.CSTNode) -> list[str]:
    out: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.Name, cst.Attribute)):
            d = dotted_name(n)
            if d is not None:
                out.append(d.rsplit(".", 1)[-1])
                if isinstance(n, cst.Attribute):
                    stack.append(n.value)
                continue
        if isinstance(n, cst.Call) and dotted_name(n.func) == "len":
            out.append("len()")
        stack.extend(iter_children(n))
    return out


def _int_literals(node: cst.CSTNode) -> list[float]:
    out: list[float] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.Integer, cst.Float)):
            try:
                out.append(float(n.evaluated_value))
            except (ValueError, TypeError):
                pass
        stack.extend(iter_children(n))
    return out


def counts_steps(expr: cst.CSTNode | None, program: ProgramModel | None = None,
                 construction: Construction | None = None, depth: int = 0) -> bool:
    """True when an expression is measured in optimizer steps (mentions len(loader), *_steps...)."""
    if expr is None or depth > 3:
        return False
    names = _names_in(expr)
    if "len()" in names or any(_STEP_NAME.search(n) for n in names):
        return True
    if any(v >= _ITERATION_LITERAL for v in _int_literals(expr)):
        return True
    # follow a local variable to its definition: T_max = epochs * len(train_loader)
    if program is not None and construction is not None:
        f = construction.function
        for n in names:
            for a in f.bindings(n) or program.module_function.bindings(n):
                if a.value is not None and isinstance(a.value, cst.CSTNode) and \
                        counts_steps(a.value, program, construction, depth + 1):
                    return True
    return False


def _lambda_body(program: ProgramModel, c: Construction, expr) -> cst.CSTNode | None:
    if isinstance(expr, cst.Lambda):
        return expr.body
    d = dotted_name(expr) if expr is not None else None
    if d is not None:
        fn = program.functions.get(d)
        if fn is not None:
            return fn.node
    return expr


def horizon(program: ProgramModel, c: Construction) -> str | None:
    """'batch' when the scheduler is meant to be stepped per optimizer step, 'epoch' when per
    epoch, None when the code does not say."""
    name = c.name
    if c.qualname.startswith("transformers"):
        # a constant schedule has no horizon: stepping it at any rate changes nothing
        kind = c.arg("name", 0) if name == "get_scheduler" else None
        if name == "get_constant_schedule" or (
                isinstance(kind, cst.SimpleString) and kind.evaluated_value == "constant"):
            return None
        return "batch"
    if name in ALWAYS_BATCH:
        return "batch"
    if name == "OneCycleLR":
        if c.arg("steps_per_epoch") is not None:
            return "batch"
        total = c.arg("total_steps", 2)
        if total is None:
            return None
        return "batch" if counts_steps(total, program, c) else "epoch"
    if name in ("CosineAnnealingLR",):
        return "batch" if counts_steps(c.arg("T_max", 1), program, c) else "epoch"
    if name == "StepLR":
        return "batch" if counts_steps(c.arg("step_size", 1), program, c) else "epoch"
    if name == "MultiStepLR":
        return "batch" if counts_steps(c.arg("milestones", 1), program, c) else "epoch"
    if name == "PolynomialLR":
        return "batch" if counts_steps(c.arg("total_iters", 1), program, c) else "epoch"
    if name == "ExponentialLR":
        gamma = c.arg("gamma", 1)
        vals = _int_literals(gamma) if gamma is not None else []
        return "batch" if vals and all(0.999 <= v < 1 for v in vals) else "epoch"
    if name == "ReduceLROnPlateau":
        return "epoch"
    if name in ("LambdaLR", "MultiplicativeLR"):
        body = _lambda_body(program, c, c.arg("lr_lambda", 1))
        if body is not None and counts_steps(body, program, c):
            return "batch"
        return None
    if name in ("LinearLR", "ConstantLR"):
        ti = c.arg("total_iters", 3 if name == "LinearLR" else 2)
        if ti is not None and counts_steps(ti, program, c):
            return "batch"
        return None
    return None


def is_epoch_scheduler(program: ProgramModel, c: Construction) -> bool:
    return c.name in EPOCH_SCHEDULERS and horizon(program, c) == "epoch"
