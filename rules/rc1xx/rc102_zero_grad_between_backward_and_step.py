from recipecheck.finding import Severity
from recipecheck.rule import Context, Rule


class ZeroGradBetweenBackwardAndStep(Rule):
    """
    ## What it does
    Flags `zero_grad()` that runs after `backward()` and before `optimizer.step()` in the same
    iteration, with no new `backward()` in between: the step then uses zeroed (or `None`)
    gradients.

    ## Why is this bad?
    The optimizer step sees no gradient: plain SGD does not move at all, momentum and Adam
    keep moving on stale state only, weight decay alone shrinks the weights. The loss stays
    flat and the run looks like a bad learning rate.

    Measured (`recipecheck validate RC102`, seeds 0-4): ||theta_T - theta_0|| after 3 epochs of
    SGD: 0 [0, 0] with zero_grad after backward vs 3.02 [2.96, 3.11] with zero_grad before
    backward (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A `model.zero_grad()` is matched to the optimizer built from `model.parameters()`; when
    the optimizer's parameters come from elsewhere the match is by name only.

    ## Example
    ```python
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    ```

    ## Use instead
    ```python
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: where the reset belongs depends on gradient accumulation.

    ## References
    - PyTorch docs, `torch.optim.Optimizer.zero_grad`.
    - Runtime twin: RT103 update-ratio-off (the update ratio collapses to zero).
    """

    CODE = "RC102"
    NAME = "zero-grad-between-backward-and-step"
    SEVERITY = Severity.ERROR
    MESSAGE = "zero_grad() between backward() and step() erases the gradients the step needs"
    STATIC_TWIN = "RT103"
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n    opt.step()\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    crit(model(x), y).backward()\n    opt.step()\n"
        "    opt.zero_grad(set_to_none=True)\n",
        # GAN: resetting the generator between D's backward and D's step is harmless
        "import torch\noptD = torch.optim.Adam(netD.parameters())\n"
        "optG = torch.optim.Adam(netG.parameters())\n"
        "for x in loader:\n    netD.zero_grad()\n    lossD(x).backward()\n    netG.zero_grad()\n"
        "    optD.step()\n    lossG(x).backward()\n    optG.step()\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    opt.zero_grad()  # expect: RC102\n    opt.step()\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    crit(model(x), y).backward()\n"
        "    model.zero_grad()  # expect: RC102\n    opt.step()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for xl in p.all_xloops():
            seq = [e for e, _ in xl.walk()]
            direct = {id(e) for e in xl.direct()}
            for j, z in enumerate(seq):
                if z.event.kind != "zero_grad" or id(z) not in direct:
                    continue
                scope = p.reset_scope(z.event)
                last_backward = max((i for i in range(j) if seq[i].event.kind == "backward"), default=None)
                if last_backward is None:
                    continue
                for k in range(j + 1, len(seq)):
                    ev = seq[k].event
                    if ev.kind == "backward":
                        break
                    key = p.optimizer_step_target(ev)
                    if key is None:
                        continue
                    stepped_before = any(p.optimizer_step_target(seq[i].event) == key
                                         for i in range(last_backward + 1, j))
                    if p.reset_covers(scope, key) and not stepped_before:
                        node = z.event.node
                        ctx.report(node, (
                            f"{ctx.code(node)} runs after backward() and before "
                            f"{ctx.code(seq[k].site_in(xl.loop.function))}: the step sees zeroed "
                            "gradients and the model does not learn; reset before backward() or "
                            "after step() (RC102)"))
                        break
