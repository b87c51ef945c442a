"""Branch conditions around a node: is this call gated by `self.training`, by an optional
layer test, or does it sit in one branch of an `if`/`else`?

The program model records the conditions of training events; rules about layers and
functional calls need the same for any node of a function body. These helpers walk one
function's body once per question (functions are small), keeping the tests that hold on the
path to the node, with their polarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from recipecheck.program.imports import dotted_name
from recipecheck.program.nodes import iter_children


@dataclass(frozen=True)
class Guard:
    """A condition on the path to a node: `test` holds (positive) or does not (negative)."""

    test: cst.BaseExpression
    positive: bool


def guards_of(root: cst.CSTNode, target: cst.CSTNode) -> list[Guard] | None:
    """The tests that hold on the path from `root` to `target` (outermost first), including
    early exits (`if not self.training: return x` before the target in the same block); None
    when `target` is not under `root`."""
    out: list[Guard] = []
    if _find(root, target, out):
        return out
    return None


def _find(node: cst.CSTNode, target: cst.CSTNode, out: list[Guard]) -> bool:
    if node is target:
        return True
    t = type(node)  # exact types: isinstance on libcst's ABC node classes is slow here
    if t is cst.If:
        if _find(node.test, target, out):
            return True
        out.append(Guard(node.test, True))
        if _find(node.body, target, out):
            return True
        out[-1] = Guard(node.test, False)
        if node.orelse is not None and _find(node.orelse, target, out):
            return True
        out.pop()
        return False
    if t is cst.IfExp:
        if _find(node.test, target, out):
            return True
        out.append(Guard(node.test, True))
        if _find(node.body, target, out):
            return True
        out[-1] = Guard(node.test, False)
        if _find(node.orelse, target, out):
            return True
        out.pop()
        return False
    if t is cst.BooleanOperation and type(node.operator) is cst.And:
        # `a and f(x)`: f runs only when a holds
        if _find(node.left, target, out):
            return True
        out.append(Guard(node.left, True))
        if _find(node.right, target, out):
            return True
        out.pop()
        return False
    if t is cst.IndentedBlock or t is cst.Module:
        mark = len(out)
        for stmt in node.body:
            if _find(stmt, target, out):
                return True
            exit_test = _early_exit_test(stmt)
            if exit_test is not None:
                out.append(Guard(exit_test, False))
        del out[mark:]
        return False
    for child in iter_children(node):
        if _find(child, target, out):
            return True
    return False


def _early_exit_test(stmt: cst.CSTNode) -> cst.BaseExpression | None:
    """`if t: return` / `raise` / `continue` / `break` with no else: the rest of the block runs
    only when not t."""
    if not isinstance(stmt, cst.If) or stmt.orelse is not None:
        return None
    body = stmt.body
    stmts = body.body if isinstance(body, cst.IndentedBlock) else ()
    if isinstance(body, cst.SimpleStatementSuite):
        smalls = body.body
    elif stmts and isinstance(stmts[-1], cst.SimpleStatementLine):
        smalls = stmts[-1].body
    else:
        return None
    if smalls and isinstance(smalls[-1], (cst.Return, cst.Raise, cst.Continue, cst.Break)):
        return stmt.test
    return None


def mentions_training(test: cst.BaseExpression, positive: bool) -> bool:
    """Whether `test` holding (positive) or failing implies the module is in training mode:
    `self.training`, `self.training and p > 0`, `not self.training` failing, and the like."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return mentions_training(test.expression, not positive)
    if isinstance(test, cst.BooleanOperation):
        if isinstance(test.operator, cst.And) and positive:
            return mentions_training(test.left, True) or mentions_training(test.right, True)
        if isinstance(test.operator, cst.Or) and not positive:
            return mentions_training(test.left, False) or mentions_training(test.right, False)
        return False
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        # `self.training is True`, `self.training == False`
        comp = test.comparisons[0]
        if _is_training(test.left) and isinstance(comp.comparator, cst.Name) and \
                comp.comparator.value in ("True", "False"):
            truth = comp.comparator.value == "True"
            if isinstance(comp.operator, (cst.IsNot, cst.NotEqual)):
                truth = not truth
            return positive == truth
        return False
    return positive and _is_training(test)


def _is_training(expr: cst.BaseExpression) -> bool:
    d = dotted_name(expr)
    return d is not None and (d == "training" or d.endswith(".training"))


def training_gated(root: cst.CSTNode, target: cst.CSTNode) -> bool:
    """Whether `target` runs only in training mode (inside `if self.training:`, the else of
    `if not self.training`, after `if not self.training: return`, or the true arm of
    `... if self.training else ...`)."""
    guards = guards_of(root, target)
    return bool(guards) and any(mentions_training(g.test, g.positive) for g in guards)
