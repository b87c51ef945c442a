import libcst as cst

from recipecheck.program.nodes import iter_children

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule

_DETACHING_METHODS = {"item", "detach", "tolist", "numpy", "detach_"}
_DETACHING_FUNCS = {"float", "int"}


def _graph_names(expr: cst.CSTNode) -> set[str]:
    """Names used in `expr` outside `.item()`, `.detach()`, `float(...)` and `.data`."""
    out: set[str] = set()
    stack = [expr]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            f = n.func
            if isinstance(f, cst.Attribute) and f.attr.value in _DETACHING_METHODS:
                continue
            if isinstance(f, cst.Name) and f.value in _DETACHING_FUNCS:
                continue
        if isinstance(n, cst.Attribute):
            if n.attr.value == "data":
                continue
            stack.append(n.value)
            continue
        if isinstance(n, cst.Name):
            out.add(n.value)
            continue
        stack.extend(iter_children(n))
    return out


def _is_python_number(value) -> bool:
    return isinstance(value, cst.CSTNode) and not _graph_names(value) and not isinstance(value, cst.Name)


class LossAccumulatedWithGraph(Rule):
    """
    ## What it does
    Flags a running total that adds the loss tensor itself, `total += loss` or
    `total = total + loss * x.size(0)`, inside a loop, where `loss` is the tensor that
    `backward()` runs on. Totals that add `loss.item()`, `loss.detach()` or `float(loss)` are
    fine, and so is accumulating a loss that is itself back-propagated later.

    ## Why is this bad?
    The total becomes a tensor attached to every iteration's autograd graph: all activations
    of every batch stay alive until the total is freed, so memory grows each step until the
    run dies with an out-of-memory error (a well-known PyTorch FAQ entry).

    Measured (`recipecheck validate RC104`, seeds 0-4): bytes of activations still held after 40
    evaluation batches: 4.96e+06 [4963360, 4963360] with total += loss vs 0 [0, 0] with total +=
    loss.item() (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Only the loss names that `backward()` is called on in the same function are tracked.

    ## Example
    ```python
    loss.backward()
    running_loss += loss
    ```

    ## Use instead
    ```python
    loss.backward()
    running_loss += loss.item()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix (`.item()` forces a device sync some users avoid on purpose; `.detach()`
    is the other choice).

    ## References
    - PyTorch FAQ, "My model reports cuda runtime error(2): out of memory" (accumulating
      history across the training loop).
    """

    CODE = "RC104"
    NAME = "loss-accumulated-with-graph"
    SEVERITY = Severity.WARNING
    MESSAGE = "a running total adds the loss tensor and keeps every graph alive"
    VALID = (
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    total += loss.item()\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    total = total + loss.detach() * x.size(0)\n",
        # accumulate the loss, then one backward on the total
        "total = 0\nfor x, y in loader:\n    total += crit(model(x), y)\ntotal.backward()\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss += 0.1 * reg(model)\n"
        "    loss.backward()\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    loss = loss.item()\n    total += loss\n",
    )
    INVALID = (
        "total_loss = 0\nfor x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    total_loss += loss  # expect: RC104\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    epoch_loss = epoch_loss + loss * x.size(0)  # expect: RC104\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for f in p.functions.values():
            backward_names: set[str] = set()
            for e in f.events:
                if e.kind == "backward" and isinstance(e.operand, cst.CSTNode):
                    backward_names |= _graph_names(e.operand)
            if not backward_names:
                continue
            for a in f.assignments:
                if a.loop is None or a.value is None or not isinstance(a.value, cst.CSTNode):
                    continue
                if a.augmented == "AddAssign":
                    value = a.value
                elif a.augmented is None and isinstance(a.value, cst.BinaryOperation) and \
                        isinstance(a.value.operator, cst.Add) and dotted_name(a.value.left) == a.target:
                    value = a.value.right
                else:
                    continue
                if a.target in backward_names:
                    continue  # the total itself is back-propagated later
                hits = [n for n in _graph_names(value) & backward_names
                        if n != a.target and not self._reassigned_to_number(f, n, a.order)]
                if hits:
                    name = sorted(hits)[0]
                    ctx.report(a.node, (
                        f"`{ctx.code(a.node)}` adds the loss tensor `{name}` to a running total: "
                        f"every iteration's autograd graph stays in memory; add `{name}.item()` or "
                        f"`{name}.detach()` instead (RC104)"))

    @staticmethod
    def _reassigned_to_number(f, name: str, order: int) -> bool:
        last = None
        for a in f.assignments:
            if a.target == name and a.order < order and a.augmented is None:
                last = a
        return last is not None and _is_python_number(last.value)
