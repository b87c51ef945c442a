import libcst as cst

from recipecheck.program.imports import dotted_name
from recipecheck.program.nodes import iter_children

from recipecheck.finding import Severity
from recipecheck.rule import Context, Rule


class MissingOptimizerStep(Rule):
    """
    ## What it does
    Flags a training loop that calls `backward()` but never `optimizer.step()` or
    `scaler.step(optimizer)`, neither in the loop (helpers included) nor in an enclosing loop
    (gradient accumulation over an inner micro-batch loop is fine). Loops that use the
    gradients by hand (`w -= lr * w.grad`, adversarial examples from `x.grad`) are not flagged.

    ## Why is this bad?
    Gradients are computed and thrown away: the weights never change, every epoch costs a
    full forward and backward pass for nothing, and the loss curve is flat.

    Measured (`recipecheck validate RC103`, seeds 0-4): drop of the training loss over 3 epochs:
    0 [0, 0] with no optimizer.step() vs 0.375 [0.343, 0.4] with optimizer.step() (mean [min,
    max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A step performed by code in another module (a framework, a `Trainer` imported from
    elsewhere) is not seen; the rule only fires when the file builds or names an optimizer,
    and only on loops that can reach one (in their function, the functions around it, its
    class, its callers or the helpers it calls): a profiler timing backward passes next to an
    optimizer factory is not a training loop.
    A call the linter cannot follow (a library, an unreadable module) that is handed the
    optimizer and is named for a step or update (`xm.optimizer_step(optimizer)` on TPUs) counts
    as the step.

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - PyTorch docs, "Optimizing model parameters" tutorial.
    - Runtime twin: RT103 update-ratio-off (no update at all).
    """

    CODE = "RC103"
    NAME = "missing-optimizer-step"
    SEVERITY = Severity.ERROR
    MESSAGE = "backward() runs in this loop but the optimizer never steps"
    STATIC_TWIN = "RT103"
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n    opt.step()\n",
        # nanoGPT: micro-step loop inside the iteration loop
        "import torch\nopt = torch.optim.AdamW(model.parameters())\nwhile True:\n"
        "    for micro in range(8):\n        loss = model(x) / 8\n        loss.backward()\n"
        "    opt.step()\n    opt.zero_grad(set_to_none=True)\n",
        # manual SGD
        "import torch\nw = torch.zeros(3, requires_grad=True)\n"
        "opt = torch.optim.SGD([w], lr=0.1)\nfor x, y in loader:\n    loss = ((x @ w - y) ** 2).mean()\n"
        "    loss.backward()\n    with torch.no_grad():\n        w -= 0.1 * w.grad\n        w.grad.zero_()\n",
        # AMP
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler()\nfor x, y in loader:\n    opt.zero_grad()\n"
        "    scaler.scale(crit(model(x), y)).backward()\n    scaler.step(opt)\n    scaler.update()\n",
        # TPU: torch_xla steps the optimizer (and reduces gradients across cores)
        "import torch\nimport torch_xla.core.xla_model as xm\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\nfor x, y in loader:\n"
        "    optimizer.zero_grad()\n    crit(model(x), y).backward()\n    xm.optimizer_step(optimizer)\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    loss = crit(model(x), y)\n"
        "    loss.backward()  # expect: RC103\n",
        "import torch\ndef step(model, x, y):\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    return loss\nopt = torch.optim.Adam(net.parameters())\nfor epoch in range(3):\n"
        "    for x, y in loader:\n        opt.zero_grad()\n        step(net, x, y)  # expect: RC103\n",
        # the optimizer handed to a library call that only reads it
        "import torch\nimport wandb\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()  # expect: RC103\n"
        "    wandb.log_lr(opt)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        has_optimizer = bool(p.constructions("optimizer")) or any(
            p.role_of(f, ev.receiver) == "optimizer"
            for f in p.functions.values() for ev in f.events if ev.kind in ("zero_grad", "step"))
        if not has_optimizer:
            return
        with_optimizer = _functions_with_optimizer(p)
        for xl in p.batch_loops:
            if not _reaches_optimizer(xl, with_optimizer):
                continue  # a profiler or gradient check: no optimizer anywhere near this loop
            scopes = [xl, *xl.ancestors()]
            stepped = False
            for scope in scopes:
                for e, _ in scope.walk():
                    if e.event.kind == "step" and p.role_of(e.event.function, e.event.receiver) != "scheduler":
                        stepped = True  # includes unresolved `.step()`: maybe an optimizer
                        break
                if stepped:
                    break
            if stepped or self._uses_grad_by_hand(xl) or self._stepped_outside(p, scopes):
                continue
            for e in xl.direct():
                if e.event.kind == "backward":
                    node = e.site_in(xl.loop.function)
                    ctx.report(node, (
                        f"{ctx.code(node)} computes gradients but no optimizer.step() ever applies "
                        "them in this loop: the weights never change; call optimizer.step() after "
                        "backward() (RC103)"))
                    break

    @staticmethod
    def _stepped_outside(p, scopes) -> bool:
        """The optimizer is handed to a call the analysed code cannot follow (a library, a
        module that could not be read) whose name says it steps or updates:
        `xm.optimizer_step(optimizer)` on TPUs, `step_optimizer(opt, scaler)`. The step is
        there, only not visible."""
        top = scopes[-1]
        roots = [(top.loop.node, top.loop.function)]
        linked: set[int] = set()
        for scope in scopes:
            for e, _ in scope.walk():
                ev = e.event
                if ev.function is not top.loop.function and all(ev.function is not f for _, f in roots):
                    roots.append((ev.function.node, ev.function))
                if ev.kind == "call" and ev.callee is not None and ev.call is not None:
                    linked.add(id(ev.call))  # followed: its own events are seen
        for root, fn in roots:
            stack = [root]
            while stack:
                n = stack.pop()
                stack.extend(iter_children(n))
                if type(n) is not cst.Call or id(n) in linked:
                    continue
                d = dotted_name(n.func)
                leaf = d.rsplit(".", 1)[-1].lower() if d else ""
                if not any(w in leaf for w in ("step", "update")) or leaf == "step":
                    continue  # `.step()` itself is an event, handled above
                if d in fn.program.functions if fn.program is not None else d in p.functions:
                    continue  # a function of the analysed code: its events are seen
                for a in n.args:
                    ad = dotted_name(a.value)
                    if ad and p.role_of(fn, ad) == "optimizer":
                        return True
        return False

    @staticmethod
    def _uses_grad_by_hand(xl) -> bool:
        nodes = [xl.loop.node] + [e.event.function.node for e, _ in xl.walk()
                                  if e.event.function is not xl.loop.function]
        for root in nodes:
            stack = [root]
            while stack:
                n = stack.pop()
                if isinstance(n, cst.Attribute) and n.attr.value == "grad":
                    return True
                stack.extend(iter_children(n))
        return False


def _functions_with_optimizer(p) -> set[int]:
    """Functions that build an optimizer or call zero_grad()/step() on one."""
    out = {id(c.function) for c in p.constructions("optimizer")}
    for f in p.functions.values():
        if any(ev.kind in ("zero_grad", "step") and p.role_of(f, ev.receiver) == "optimizer"
               for ev in f.events):
            out.add(id(f))
    return out


def _reaches_optimizer(xl, with_optimizer: set[int]) -> bool:
    """An optimizer is built or used where this loop can see it: in the loop's function, the
    functions around it, the methods of its class, its callers (transitively) or the helpers
    the loop calls. A file that builds an optimizer elsewhere (`smart_optimizer()` next to a
    `profile()` that times forward and backward passes) does not make every backward a step
    forgotten."""
    seen: set[int] = set()
    todo = [xl.loop.function] + [e.event.function for e, _ in xl.walk()]
    while todo:
        f = todo.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        if id(f) in with_optimizer:
            return True
        if f.parent is not None:
            todo.append(f.parent)
        if f.cls is not None:
            todo.extend(f.cls.methods.values())
        todo.extend(ev.function for ev in f.callers)
    return False
