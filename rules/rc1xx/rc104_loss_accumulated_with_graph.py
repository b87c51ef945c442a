import libcst as cst

from recipecheck.program.nodes import iter_children, statements

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


def _backward_names(f) -> set[str]:
    """Names the tensors `f` back-propagates are computed from (outside detaching calls)."""
    out: set[str] = set()
    for e in f.events:
        if e.kind == "backward" and isinstance(e.operand, cst.CSTNode):
            out |= _graph_names(e.operand)
    return out


def _is_python_number(value) -> bool:
    return isinstance(value, cst.CSTNode) and not _graph_names(value) and not isinstance(value, cst.Name)


class LossAccumulatedWithGraph(Rule):
    """
    ## What it does
    Flags a running total that adds the loss tensor itself, `total += loss` or
    `total = total + loss * x.size(0)`, or a list that keeps it (`losses.append(loss)`), inside
    a loop, where `loss` is the tensor that `backward()` runs on, or one of the loss terms it
    is summed from (`loss = mse + ce; ...; total_mse += mse`); a total kept in a dict or list
    (`totals["loss"] += loss`) counts too. Totals that add `loss.item()`, `loss.detach()` or
    `float(loss)` are fine, and so is accumulating a loss that is itself back-propagated later.

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
        # validation under no_grad: no graph is recorded
        "import torch\nimport torch.nn.functional as F\n@torch.no_grad()\ndef evaluate(model, loader):\n"
        "    total = 0\n    for x, y in loader:\n        total += F.cross_entropy(model(x), y)\n    return total\n"
        "def validate(model, loader):\n    total = 0\n    with torch.no_grad():\n        for x, y in loader:\n"
        "            loss = F.mse_loss(model(x), y)\n            total += loss\n    return total\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    total = total + loss.detach() * x.size(0)\n",
        # accumulate the loss, then one backward on the total
        "total = 0\nfor x, y in loader:\n    total += crit(model(x), y)\ntotal.backward()\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss += 0.1 * reg(model)\n"
        "    loss.backward()\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    loss = loss.item()\n    total += loss\n",
        # the look-alikes: the list keeps numbers; a per-iteration list summed into the loss
        "import torch\nfor epoch in range(10):\n    losses = []\n"
        "    for i, batch in enumerate(loader):\n        loss = crit(model(batch['x']), batch['y'])\n"
        "        opt.zero_grad()\n        loss.backward()\n        opt.step()\n"
        "        losses.append(loss.item())\n    print(sum(losses) / len(losses))\n",
        "import torch\nfor x, y in loader:\n    parts = []\n    for head in heads:\n"
        "        loss = crit(head(x), y)\n        parts.append(loss)\n"
        "    loss = torch.stack(parts).sum()\n    opt.zero_grad()\n    loss.backward()\n    opt.step()\n",
        # Hugging Face / Accelerate evaluation: the outputs come from under no_grad
        "import torch\nfor epoch in range(3):\n    for batch in train_loader:\n"
        "        loss = model(**batch).loss\n        loss.backward()\n        opt.step()\n        opt.zero_grad()\n"
        "    losses = []\n    for batch in eval_loader:\n        with torch.no_grad():\n"
        "            outputs = model(**batch)\n        loss = outputs.loss\n        losses.append(loss)\n",
    )
    INVALID = (
        # validation loss summed with autograd on: every batch's graph is kept
        "import torch.nn as nn\ncriterion = nn.CrossEntropyLoss()\nmodel.eval()\nval_loss = 0\n"
        "for x, y in val_loader:\n    val_loss += criterion(model(x), y)  # expect: RC104\n",
        "total_loss = 0\nfor x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    total_loss += loss  # expect: RC104\n",
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    epoch_loss = epoch_loss + loss * x.size(0)  # expect: RC104\n",
        # the epoch's losses kept in a list, graphs and all
        "import torch\nfor epoch in range(10):\n    losses = []\n"
        "    for i, batch in enumerate(loader):\n        loss = crit(model(batch['x']), batch['y'])\n"
        "        opt.zero_grad()\n        loss.backward()\n        opt.step()\n"
        "        losses.append(loss)  # expect: RC104\n    print(torch.stack(losses).mean().item())\n",
    )

    def check(self, ctx: Context) -> None:
        self._check_training_totals(ctx)
        self._check_subscript_totals(ctx)
        self._check_training_lists(ctx)
        _check_eval_totals(ctx)

    def _check_training_lists(self, ctx: Context) -> None:
        """`losses.append(loss)` in the training loop: the list holds every graph."""
        p = ctx.program
        by_function: dict[int, list] = {}
        for cs in p.calls:
            if cs.loop is not None and cs.dotted and cs.dotted.endswith(".append") and \
                    cs.dotted.count(".") <= 2 and len(cs.node.args) == 1:
                by_function.setdefault(id(cs.function), []).append(cs)
        for f in p.functions.values():
            calls = by_function.get(id(f))
            if not calls:
                continue
            backward_names = _backward_names(f)
            if not backward_names:
                continue
            feeding = _feeding(f, backward_names)  # names the back-propagated tensor is computed from
            for cs in calls:
                holder = cs.dotted[:-len(".append")]
                if holder in feeding or holder.rsplit(".", 1)[-1] in feeding:
                    continue  # the list is summed and back-propagated later
                if any(a.target == holder and a.loop is cs.loop for a in f.assignments):
                    continue  # emptied every iteration: no graph outlives it
                value = cs.node.args[0].value
                hits = [n for n in _graph_names(value) & backward_names
                        if n != holder and not self._reassigned_to_number(f, n, cs.order)
                        and not _bound_without_graph(p, f, n, cs.order)]
                if hits:
                    name = sorted(hits)[0]
                    ctx.report(cs.node, (
                        f"`{ctx.code(cs.node)}` keeps the loss tensor `{name}` in a list: every "
                        f"iteration's autograd graph stays in memory; append `{name}.item()` or "
                        f"`{name}.detach()` instead (RC104)"))

    def _check_training_totals(self, ctx: Context) -> None:
        p = ctx.program
        for f in p.functions.values():
            backward_names = _backward_names(f)
            if not backward_names:
                continue
            terms = _loss_terms(p, f, backward_names)
            feeding = _feeding(f, backward_names) if terms else set()
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
                graph = backward_names if a.target in feeding else backward_names | terms
                hits = [n for n in _graph_names(value) & graph
                        if n != a.target and not self._reassigned_to_number(f, n, a.order)]
                if hits:
                    name = sorted(hits)[0]
                    ctx.report(a.node, (
                        f"`{ctx.code(a.node)}` adds the loss tensor `{name}` to a running total: "
                        f"every iteration's autograd graph stays in memory; add `{name}.item()` or "
                        f"`{name}.detach()` instead (RC104)"))

    def _check_subscript_totals(self, ctx: Context) -> None:
        """`totals["loss"] += loss` in the training loop: a dict (or list) of running totals
        that adds the loss tensor itself (the model records no assignment to a subscript)."""
        p = ctx.program
        for f in p.functions.values():
            if not f.loops or not isinstance(f.node, (cst.FunctionDef, cst.Module)):
                continue
            backward_names = _backward_names(f)  # cheap: first, before walking the loops
            if not backward_names:
                continue
            # inside the function's loops (the outermost ones hold the others)
            cands = [n for lp in f.loops if lp.parent is None for n in statements(lp.node)
                     if type(n) is cst.AugAssign and type(n.operator) is cst.AddAssign and
                     type(n.target) is cst.Subscript]
            if not cands:
                continue
            graph = backward_names | _loss_terms(p, f, backward_names)
            feeding = _feeding(f, backward_names)
            for st in cands:
                holder = dotted_name(st.target.value)
                if holder is None or holder in feeding:
                    continue
                hits = [n for n in _graph_names(st.value) & graph if not self._reassigned_to_number(f, n, 10**9)]
                if hits:
                    name = sorted(hits)[0]
                    ctx.report(st, (
                        f"`{ctx.code(st)}` adds the loss tensor `{name}` to a running total: every "
                        f"iteration's autograd graph stays in memory; add `{name}.item()` or "
                        f"`{name}.detach()` instead (RC104)"))

    @staticmethod
    def _reassigned_to_number(f, name: str, order: int) -> bool:
        last = None
        for a in f.assignments:
            if a.target == name and a.order < order and a.augmented is None:
                last = a
        return last is not None and _is_python_number(last.value)


_LOSS_FUNCS = {"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
               "binary_cross_entropy_with_logits", "kl_div", "smooth_l1_loss", "huber_loss",
               "ctc_loss", "poisson_nll_loss", "gaussian_nll_loss", "triplet_margin_loss",
               "cosine_embedding_loss", "margin_ranking_loss", "hinge_embedding_loss",
               "multi_margin_loss", "multilabel_margin_loss", "soft_margin_loss",
               "multilabel_soft_margin_loss"}
_CRITERION_NAMES = {"criterion", "crit", "loss_fn", "loss_func", "loss_function", "lossfn"}


def _loss_terms(p, f, backward_names: set[str]) -> set[str]:
    """The loss terms the back-propagated loss is summed from (`mse = crit1(...)`,
    `ce = crit2(...)`, `loss = mse + ce`): each carries the same graph as the loss."""
    out: set[str] = set()
    for a in f.assignments:
        if a.target in backward_names and a.augmented is None and isinstance(a.value, cst.CSTNode):
            for n in _graph_names(a.value) - backward_names:
                if _loss_tensor(p, f, cst.Name(n), a.order, 0):
                    out.add(n)
    return out


def _feeding(f, names: set[str]) -> set[str]:
    """The names the tensors `names` are computed from (a total that is itself
    back-propagated later feeds them)."""
    feeding = set(names)
    changed = True
    while changed:
        changed = False
        for a in f.assignments:
            if a.target in feeding and isinstance(a.value, cst.CSTNode):
                new = _graph_names(a.value) - feeding
                if new:
                    feeding |= new
                    changed = True
    return feeding


def _check_eval_totals(ctx: Context) -> None:
    """Running totals of a loss in evaluation loops (no backward) with autograd on."""
    from recipecheck.program.evaluation import GRAD_CONTROL, _decorator_withs, analysis

    p = ctx.program
    eval_loops: set[int] | None = None  # computed on the first candidate (the mode view costs)
    backward_names: set[str] = set()
    for f in p.functions.values():
        backward_names |= _backward_names(f)
    for f in p.functions.values():
        if any(w in GRAD_CONTROL for w in _decorator_withs(p, f)):
            continue
        if f.callers and all(any(w in GRAD_CONTROL for w in (*c.withs, *_decorator_withs(p, c.function)))
                             for c in f.callers):
            continue
        for a in f.assignments:
            if a.loop is None or not isinstance(a.value, cst.CSTNode) or a.target in backward_names:
                continue
            if a.augmented == "AddAssign":
                value = a.value
            elif a.augmented is None and isinstance(a.value, cst.BinaryOperation) and \
                    isinstance(a.value.operator, cst.Add) and dotted_name(a.value.left) == a.target:
                value = a.value.right
            else:
                continue
            loop = a.loop
            if not _loss_tensor(p, f, value, a.order, 0):
                continue
            if eval_loops is None:
                eval_loops = {id(el.node.loop) for el in analysis(p).eval_loops}
            outer = loop
            while outer is not None and id(outer) not in eval_loops:
                outer = outer.parent
            if outer is None:
                continue  # only evaluation loops (over a val/test loader, or in evaluate())
            if any(w in GRAD_CONTROL for w in loop.withs) or _loop_backprops(loop):
                continue
            if _under_grad_control(p, f, a.node):
                continue
            ctx.report(a.node, (
                f"`{ctx.code(a.node)}` sums loss tensors in a loop that never calls backward(), with "
                "autograd on: every batch's graph (and its activations) stays in memory until the "
                "total is freed; add `.item()` and run the loop under torch.no_grad() (RC104)"))


def _loop_backprops(loop) -> bool:
    stack = [loop]
    while stack:
        lp = stack.pop()
        for it in lp.items:
            if hasattr(it, "kind"):
                if it.kind == "backward" or (it.kind == "call" and it.callee is not None and
                                             any(e.kind == "backward" for e in it.callee.events)):
                    return True
            else:
                stack.append(it)
    return False


def _bound_without_graph(p, f, name: str, order: int) -> bool:
    """`name` was last bound, before `order`, under torch.no_grad(), or from values that all
    were (`with torch.no_grad(): out = model(x)` then `loss = out.loss`): it has no graph."""
    # (an assignment and a later call with no event between them share an order)
    binds = [a for a in f.assignments if a.target == name and a.order <= order]
    if not binds or binds[-1].augmented is not None or not isinstance(binds[-1].value, cst.CSTNode):
        return False
    last = binds[-1]
    if _under_grad_control(p, f, last.node):
        return True
    sources = _graph_names(last.value)
    if not sources:
        return False
    for src in sources:
        prior = [a for a in f.assignments if a.target == src and a.order < last.order]
        if not prior or not _under_grad_control(p, f, prior[-1].node):
            return False
    return True


def _under_grad_control(p, f, node: cst.CSTNode) -> bool:
    """A `with torch.no_grad():` (or set_grad_enabled) of `f` around `node`."""
    from recipecheck.program.evaluation import GRAD_CONTROL
    from recipecheck.program.nodes import walk

    for w in walk(f.node):
        if not isinstance(w, cst.With):
            continue
        names = []
        for item in w.items:
            expr = item.item.func if isinstance(item.item, cst.Call) else item.item
            names.append(p.imports.resolve(expr))
        if not any(n in GRAD_CONTROL for n in names):
            continue
        if any(x is node for x in walk(w.body)):
            return True
    return False


def _loss_tensor(p, f, expr, order: int, depth: int) -> bool:
    if depth > 3 or expr is None:
        return False
    if isinstance(expr, cst.BinaryOperation):
        return _loss_tensor(p, f, expr.left, order, depth + 1) or _loss_tensor(p, f, expr.right, order, depth + 1)
    if isinstance(expr, cst.Name):
        binds = [b for b in f.assignments if b.target == expr.value and b.order < order]
        if not binds or binds[-1].augmented is not None:
            return False
        last = binds[-1]
        return isinstance(last.value, cst.CSTNode) and _loss_tensor(p, f, last.value, last.order, depth + 1)
    if not isinstance(expr, cst.Call):
        return False
    q = p.imports.resolve(expr.func)
    if q is not None:
        return q.startswith("torch.nn.functional.") and q.rsplit(".", 1)[-1] in _LOSS_FUNCS
    d = dotted_name(expr.func)
    if d is None:
        return False
    leaf = d.rsplit(".", 1)[-1]
    if leaf in _CRITERION_NAMES or leaf.startswith("criterion"):
        return True
    return any(o.role == "criterion" for o in p.evaluate_dotted(f, d)) if d.count(".") <= 1 else False
