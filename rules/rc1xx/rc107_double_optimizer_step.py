from recipecheck.finding import Severity
from recipecheck.program.accumulation import exclusive, loop_guards
from recipecheck.rule import Context, Rule


def _implies(a, b) -> bool:
    """Every guard of `b` is also a guard of `a` (same test, same way): whenever a runs, b runs."""
    return all(any(ga.test is gb.test and ga.positive == gb.positive for ga in a) for gb in b)


class DoubleOptimizerStep(Rule):
    """
    ## What it does
    Flags an optimizer that is stepped twice for one `backward()` in the same iteration:
    `scaler.step(optimizer)` followed by a plain `optimizer.step()` that also runs, or two
    `optimizer.step()` calls on the same optimizer with no gradient reset and new `backward()`
    between them. Steps of two different optimizers (a GAN's generator and discriminator),
    steps in exclusive branches (`if use_amp: scaler.step(opt) else: opt.step()`, or an early
    `continue`) and two passes separated by `zero_grad()` and a new `backward()` are fine.

    ## Why is this bad?
    `scaler.step(optimizer)` already calls `optimizer.step()` (after unscaling, and only when
    the gradients are finite). A second `optimizer.step()` applies the same gradient again:
    every update is doubled, so the effective learning rate is twice the configured one for
    SGD, momentum and Adam's moment estimates are updated twice per batch, and on AMP the
    second step uses still-scaled gradients and skips the inf/NaN check, so an overflowed
    batch is applied anyway. Schedules and step counters (Adam's bias correction) drift too.
    Measured (`recipecheck validate RC107`, seeds 0-4): mean update norm per batch relative to
    one step() per batch (Adam, 20 batches): 1.98 [1.92, 2.02] with two step() per backward vs 1
    [1, 1] with one step() (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    The two steps must be visible in the same loop (directly or through helper calls of the
    same file). Steps under two different, non-exclusive conditions are not reported.

    ## Example
    ```python
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.step()
    ```

    ## Use instead
    ```python
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: which of the two steps to keep depends on whether AMP is wanted.

    ## References
    - PyTorch docs, "Automatic Mixed Precision examples" (`scaler.step(optimizer)` replaces
      `optimizer.step()`).
    - PyTorch docs, `torch.amp.GradScaler.step`.
    """

    CODE = "RC107"
    NAME = "double-optimizer-step"
    SEVERITY = Severity.ERROR
    MESSAGE = "the optimizer is stepped twice for one backward()"
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler()\nfor x, y in loader:\n    opt.zero_grad()\n"
        "    if use_amp:\n        scaler.scale(crit(model(x), y)).backward()\n"
        "        scaler.step(opt)\n        scaler.update()\n    else:\n"
        "        crit(model(x), y).backward()\n        opt.step()\n",
        # an early continue makes the plain step the other branch
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler()\nfor x, y in loader:\n    opt.zero_grad()\n"
        "    loss = crit(model(x), y)\n    if scaler is not None:\n"
        "        scaler.scale(loss).backward()\n        scaler.step(opt)\n        scaler.update()\n"
        "        continue\n    loss.backward()\n    opt.step()\n",
        # GAN: two optimizers, one step each
        "import torch\noptD = torch.optim.Adam(netD.parameters())\n"
        "optG = torch.optim.Adam(netG.parameters())\nfor x in loader:\n"
        "    optD.zero_grad()\n    lossD(x).backward()\n    optD.step()\n"
        "    optG.zero_grad()\n    lossG(x).backward()\n    optG.step()\n",
        # two passes with a backward each (SAM-like): two updates, two gradients
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\nfor x, y in loader:\n"
        "    crit(model(x), y).backward()\n    opt.step()\n    opt.zero_grad()\n"
        "    crit(model(x), y).backward()\n    opt.step()\n    opt.zero_grad()\n",
        # scheduler.step() is not an optimizer step
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=1000)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n"
        "    opt.step()\n    sched.step()\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.AdamW(model.parameters())\n"
        "scaler = torch.amp.GradScaler()\nfor x, y in loader:\n    opt.zero_grad()\n"
        "    with torch.autocast('cuda'):\n        loss = crit(model(x), y)\n"
        "    scaler.scale(loss).backward()\n    scaler.step(opt)\n    scaler.update()\n"
        "    opt.step()  # expect: RC107\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "def train_step(x, y):\n    loss = crit(model(x), y)\n    loss.backward()\n    opt.step()\n"
        "    return loss\n"
        "for x, y in loader:\n    opt.zero_grad()\n    train_step(x, y)\n"
        "    opt.step()  # expect: RC107\n",
        # a GAN with AMP whose plain steps were left at the end: the generator's backward in
        # between adds to the discriminator's gradient, it does not replace it
        "import torch\noptim_d = torch.optim.AdamW(net_d.parameters())\n"
        "optim_g = torch.optim.AdamW(net_g.parameters())\nscaler = torch.amp.GradScaler()\n"
        "for x in loader:\n    optim_d.zero_grad()\n    scaler.scale(loss_d(x)).backward()\n"
        "    scaler.step(optim_d)\n    optim_g.zero_grad()\n    scaler.scale(loss_g(x)).backward()\n"
        "    scaler.step(optim_g)\n    scaler.update()\n"
        "    optim_g.step()  # expect: RC107\n    optim_d.step()  # expect: RC107\n",
        # the plain step runs whether or not AMP stepped already
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler()\nfor x, y in loader:\n    opt.zero_grad()\n"
        "    loss = crit(model(x), y)\n    if use_amp:\n        scaler.scale(loss).backward()\n"
        "        scaler.step(opt)\n        scaler.update()\n    else:\n        loss.backward()\n"
        "    opt.step()  # expect: RC107\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for xl in p.batch_loops:
            seq = [e for e, _ in xl.walk()]
            direct = {id(e) for e in xl.direct()}
            for j, b in enumerate(seq):
                key = p.optimizer_step_target(b.event) if id(b) in direct else None
                if key is None:
                    continue
                gb = loop_guards(xl, b)
                for i in range(j - 1, -1, -1):
                    a = seq[i]
                    if id(a) not in direct or p.optimizer_step_target(a.event) != key:
                        continue
                    ga = loop_guards(xl, a)
                    if exclusive(ga, gb) or not (_implies(ga, gb) or _implies(gb, ga)):
                        continue
                    # a reset and a new backward between the steps give the second its own
                    # gradient (two passes); a backward alone adds to the gradient already applied
                    between = [seq[m] for m in range(i + 1, j)
                               if not exclusive(loop_guards(xl, seq[m]), ga) and
                               not exclusive(loop_guards(xl, seq[m]), gb)]
                    if any(e.event.kind == "backward" for e in between) and \
                            any(p.reset_covers(p.reset_scope(e.event), key) for e in between):
                        break
                    fn = xl.loop.function
                    first, second = a.site_in(fn), b.site_in(fn)
                    ctx.report(second, (
                        f"`{ctx.code(second)}` steps the optimizer that `{ctx.code(first)}` already "
                        "stepped with the same gradients: every gradient is applied twice (on AMP, "
                        "unscaled and unchecked the second time); keep one step (RC107)"))
                    break
