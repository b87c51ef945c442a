import libcst as cst

from recipecheck.program.nodes import iter_children

from recipecheck.finding import Severity
from recipecheck.program.accumulation import _micro_batches, counter_gate
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule


def _has_op(node, ops) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, ops):
            return True
        if isinstance(n, cst.AugAssign) and isinstance(n.operator, (cst.DivideAssign, cst.MultiplyAssign)):
            return True
        stack.extend(iter_children(n))
    return False


def _is_modulo_test(expr, fn=None) -> bool:
    """`(i + 1) % k == 0`, a flag bound to one in the loop's function (`do_step = ...`), or
    a counter test (`n >= k`, reset to 0 at each step)."""
    if _has_op(expr, (cst.Modulo,)):
        return True
    if fn is None:
        return False
    if counter_gate(expr, fn):
        return True  # `if n_accum >= k:` on a counter the loop resets at each step
    names = {n.value for n in _names(expr)}
    return any(a.target in names and a.augmented is None and isinstance(a.value, cst.CSTNode) and
               _has_op(a.value, (cst.Modulo,)) for a in fn.assignments)


def _names(node):
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Name):
            yield n
        stack.extend(iter_children(n))


def _scaled_sum(node) -> bool:
    """A loss expression divided or multiplied somewhere; for a sum of terms
    (`recon + lam * sparsity`), every term: a weighted penalty is not a scaled loss."""
    while isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)) \
            and not node.lpar:
        if not _scaled_sum(node.right):
            return False
        node = node.left
    return _has_op(node, (cst.Divide, cst.Multiply))


class GradAccumulationUnscaled(Rule):
    """
    ## What it does
    Flags gradient accumulation, where `optimizer.step()` runs only every k iterations
    (`if (i + 1) % k == 0:`, or a micro-batch counter `n += 1; if n >= k: ...; n = 0`) or
    after an inner loop over k micro-batches (`for _ in range(k)`, `for mb in
    batch.split(n)`), when the loss that `backward()` runs on is not divided (or multiplied by
    a fraction) anywhere.

    ## Why is this bad?
    Accumulated gradients are summed, not averaged: the update is k times larger than the
    one of a real batch of k times the size, so the LR tuned for that batch is silently
    multiplied by k.

    Measured (`recipecheck validate RC105`, seeds 0-4): update norm / the norm of the one
    large-batch update it should equal (k=4): 4 [4, 4] with loss not / k vs 1 [1, 1] with loss /
    k (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Averaging the accumulated gradients explicitly (`p.grad.div_(n)`, `p.grad.mul_(1 / n)`,
    `_foreach_div_`) or a loss helper of the file that divides the loss counts as scaled.
    A loss scaled inside another function, or a criterion built with `reduction="sum"` on
    purpose, is not recognised; suppress with `# noqa: RC105`.

    ## Example
    ```python
    loss = criterion(model(x), y)
    loss.backward()
    if (i + 1) % accum_steps == 0:
        optimizer.step()
        optimizer.zero_grad()
    ```

    ## Use instead
    ```python
    loss = criterion(model(x), y) / accum_steps
    loss.backward()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Hugging Face Accelerate, "Gradient accumulation" guide; nanoGPT's
      `loss = loss / gradient_accumulation_steps`.
    """

    CODE = "RC105"
    NAME = "grad-accumulation-unscaled"
    SEVERITY = Severity.WARNING
    MESSAGE = "accumulated gradients are summed: divide the loss by the accumulation steps"
    VALID = (
        # the accumulated gradients are averaged explicitly before the step
        (
        'import torch\n'
        '\n'
        'model = Net()\n'
        'optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n'
        'accum_steps = 4\n'
        'for epoch in range(10):\n'
        '    for i, (x, y) in enumerate(train_loader):\n'
        '        loss = criterion(model(x), y)\n'
        '        loss.backward()\n'
        '        if (i + 1) % accum_steps == 0:\n'
        '            for p in model.parameters():\n'
        '                if p.grad is not None:\n'
        '                    p.grad.mul_(1.0 / accum_steps)\n'
        '            optimizer.step()\n'
        '            optimizer.zero_grad()\n'
        ),
        # the loss helper divides by the accumulation steps
        (
        'import torch\n'
        '\n'
        'grad_accum = 8\n'
        '\n'
        'def compute_loss(model, batch):\n'
        '    logits = model(batch["input_ids"])\n'
        '    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), batch["labels"].view(-1))\n'
        '    return loss / grad_accum\n'
        '\n'
        'model = Net()\n'
        'optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)\n'
        'for step, batch in enumerate(train_loader):\n'
        '    loss = compute_loss(model, batch)\n'
        '    loss.backward()\n'
        '    if (step + 1) % grad_accum == 0:\n'
        '        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n'
        '        optimizer.step()\n'
        '        optimizer.zero_grad(set_to_none=True)\n'
        ),
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    loss = crit(model(x), y) / accum\n    loss.backward()\n"
        "    if (i + 1) % accum == 0:\n        opt.step()\n        opt.zero_grad()\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    loss = crit(model(x), y)\n    loss = loss / accum\n"
        "    scaler.scale(loss).backward()\n    if (i + 1) % accum == 0:\n        scaler.step(opt)\n"
        "        scaler.update()\n        opt.zero_grad()\n",
        "import torch\nopt = torch.optim.AdamW(model.parameters())\nwhile True:\n"
        "    for micro in range(8):\n        loss = model(x)\n        loss = loss / 8\n        loss.backward()\n"
        "    opt.step()\n    opt.zero_grad(set_to_none=True)\n",
        # no accumulation: logging every 100 steps is not a step condition
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    opt.zero_grad()\n    loss = crit(model(x), y)\n"
        "    loss.backward()\n    opt.step()\n    if i % 100 == 0:\n        print(loss.item())\n",
        # a step flag bound to the modulo test; the whole penalized loss is divided
        "import torch\nopt = torch.optim.Adam(sae.parameters())\n"
        "for i, (x,) in enumerate(loader):\n    is_step = (i + 1) % accum == 0\n    recon, c = sae(x)\n"
        "    loss = ((recon - x).pow(2).mean() + lam * c.abs().mean()) / accum\n    loss.backward()\n"
        "    if is_step:\n        opt.step()\n        opt.zero_grad()\n",
    )
    INVALID = (
        # the same with the division forgotten: the sparsity weight is not a scaling of the loss
        "import torch\nopt = torch.optim.Adam(sae.parameters())\n"
        "for i, (x,) in enumerate(loader):\n    is_step = (i + 1) % accum == 0\n    recon, c = sae(x)\n"
        "    loss = (recon - x).pow(2).mean() + lam * c.abs().mean()\n"
        "    loss.backward()  # expect: RC105\n"
        "    if is_step:\n        opt.step()\n        opt.zero_grad()\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    loss = crit(model(x), y)\n"
        "    loss.backward()  # expect: RC105\n"
        "    if (i + 1) % accum_steps == 0:\n        opt.step()\n        opt.zero_grad()\n",
        "import torch\nopt = torch.optim.AdamW(model.parameters())\nfor it in range(1000):\n"
        "    for micro in range(grad_accum):\n        loss = model(x)\n"
        "        loss.backward()  # expect: RC105\n    opt.step()\n    opt.zero_grad()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for xl in p.batch_loops:
            seq = list(xl.walk())
            steps = [e for e, path in seq if not path and p.optimizer_step_target(e.event)]
            accumulating = bool(steps) and all(
                any(_is_modulo_test(c, e.event.function) for c in e.event.conds) for e in steps)
            if not steps and xl.parent is not None and isinstance(xl.loop.node, cst.For) and (
                    (isinstance(xl.loop.node.iter, cst.Call) and dotted_name(xl.loop.node.iter.func) == "range")
                    or _micro_batches(xl.loop.node.iter)):
                after = False
                for e, path in xl.parent.walk():
                    if path and path[0] is xl:
                        after = True
                    elif after and not path and p.optimizer_step_target(e.event):
                        accumulating = True
                        break
            if not accumulating or _grads_averaged(p):
                continue  # `p.grad.div_(accum)` before the step averages them explicitly
            for e in xl.direct():
                ev = e.event
                if ev.kind != "backward" or ev.conditional or ev.operand is None:
                    continue
                if any("accumulate" in w for w in ev.withs):
                    continue  # accelerate's accumulate() scales for you
                if self._scaled(ev) or _scaled_in_helper(p, ev):
                    continue
                node = e.site_in(xl.loop.function)
                ctx.report(node, (
                    f"{ctx.code(node)} accumulates gradients over several iterations before each "
                    "optimizer step, but the loss is not divided by the number of accumulation "
                    "steps: the update is that many times too large; divide the loss by it (RC105)"))

    @staticmethod
    def _scaled(ev) -> bool:
        operand = ev.operand
        if _has_op(operand, (cst.Divide, cst.Multiply)):
            return True
        name = dotted_name(operand)
        if name is None:
            return True  # an expression we do not follow: stay quiet
        if name in ev.function.params:
            return True
        assigns = [a for a in ev.function.assignments if a.target == name]
        if not assigns:
            return True
        for a in assigns:
            if a.augmented in ("DivideAssign", "MultiplyAssign"):
                return True
            if isinstance(a.value, cst.CSTNode) and _scaled_sum(a.value):
                return True
            if isinstance(a.value, cst.Call) and isinstance(a.value.func, (cst.Name, cst.Attribute)):
                fname = dotted_name(a.value.func) or ""
                if fname.rsplit(".", 1)[-1] not in ("crit", "criterion", "loss_fn", "loss_func",
                                                     "cross_entropy", "mse_loss", "nll_loss",
                                                     "binary_cross_entropy_with_logits", "model",
                                                     "compute_loss") and "loss" not in fname.lower() \
                        and "crit" not in fname.lower() and "model" not in fname.lower():
                    return True  # an unknown call may scale inside
        return False


def _grads_averaged(p) -> bool:
    """The gradients themselves are averaged: `p.grad.mul_(1 / n)`, `p.grad.div_(n)`,
    `p.grad /= n`, `torch._foreach_div_(grads, n)`."""
    for cs in p.calls:
        f = cs.node.func
        if isinstance(f, cst.Attribute) and f.attr.value in ("mul_", "div_"):
            recv = dotted_name(f.value) or ""
            if recv.endswith((".grad", ".grad.data")):
                return True
        if (cs.qualname or "").endswith(("_foreach_mul_", "_foreach_div_")):
            return True
    return any(a.augmented in ("DivideAssign", "MultiplyAssign") and
               a.target.endswith((".grad", ".grad.data")) for a in p.assignments)


def _scaled_in_helper(p, ev) -> bool:
    """`loss = compute_loss(model, batch)` where the file's own compute_loss() divides or
    multiplies the loss before returning it."""
    name = dotted_name(ev.operand)
    if name is None:
        return False
    for a in ev.function.assignments:
        if a.target != name or not isinstance(a.value, cst.Call):
            continue
        leaf = (dotted_name(a.value.func) or "").rsplit(".", 1)[-1]
        for f in p.functions.values():
            if f.name != leaf or not isinstance(f.node, cst.FunctionDef):
                continue
            if any(_has_op(r, (cst.Divide, cst.Multiply)) for r in f.returns) or any(
                    b.augmented in ("DivideAssign", "MultiplyAssign") or
                    (isinstance(b.value, cst.CSTNode) and _has_op(b.value, (cst.Divide,)))
                    for b in f.assignments if "loss" in b.target.lower()):
                return True
    return False
