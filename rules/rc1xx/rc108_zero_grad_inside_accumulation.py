from recipecheck.finding import Severity
from recipecheck.program.accumulation import accumulations, loop_guards
from recipecheck.rule import Context, Rule


class ZeroGradInsideAccumulation(Rule):
    """
    ## What it does
    Flags a gradient reset (`optimizer.zero_grad()`, `model.zero_grad()`, `p.grad = None`)
    that runs on every micro-batch of a gradient-accumulation loop: the optimizer steps only
    every k iterations (`if (i + 1) % k == 0:`, a reset counter, or once after an inner loop
    over k micro-batches, `range(k)` or named micro-batches) while the reset runs
    unconditionally in each iteration, directly or inside a helper such as
    `forward_backward(mb)`. A reset inside the
    step's branch (after `step()`), or one gated by its own modulo test at the start of each
    window, is the intended pattern and is not reported.

    ## Why is this bad?
    Accumulation relies on `backward()` adding into `.grad` across the k micro-batches. A
    reset on every micro-batch discards the k - 1 earlier contributions, so each update uses
    one micro-batch's gradient: the effective batch is k times smaller than configured
    (noisier updates, an LR tuned for the large batch is now too large), and k - 1 of every
    k backward passes are wasted compute. The run still trains, so nothing looks broken.
    Measured (`recipecheck validate RC108`, seeds 0-4): share of the update explained by the
    last micro-batch alone (k=4): 1 [1, 1] with zero_grad every micro-batch vs 0 [0, 0] with
    zero_grad once per step (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A reset hidden in a helper the linter cannot see, or accumulation driven by a counter
    compared to k without a modulo (`if count == k:`), is not recognised. Accelerate's
    `with accelerator.accumulate(model):` handles resets itself and is not reported.

    ## Example
    ```python
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        loss = criterion(model(x), y) / accum_steps
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
    ```

    ## Use instead
    ```python
    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y) / accum_steps
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: the reset has to move into the step's branch.

    ## References
    - Hugging Face Accelerate, "Gradient accumulation" guide.
    - PyTorch docs, `torch.optim.Optimizer.zero_grad`.
    - Runtime twin: RT103 update-ratio-off.
    """

    CODE = "RC108"
    NAME = "zero-grad-inside-accumulation"
    SEVERITY = Severity.ERROR
    MESSAGE = "zero_grad() on every micro-batch discards the accumulated gradients"
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    loss = crit(model(x), y) / accum\n    loss.backward()\n"
        "    if (i + 1) % accum == 0:\n        opt.step()\n        opt.zero_grad()\n",
        # reset at the start of each accumulation window
        "import torch\nopt = torch.optim.AdamW(model.parameters())\n"
        "for step, batch in enumerate(loader):\n    if step % accum == 0:\n        opt.zero_grad()\n"
        "    loss = model(batch) / accum\n    loss.backward()\n"
        "    if (step + 1) % accum == 0:\n        opt.step()\n",
        # WGAN: the critic steps every iteration, the generator every n_critic iterations with
        # its own backward in the same branch: no accumulation
        "import torch\noptimizer_D = torch.optim.RMSprop(D.parameters(), lr=5e-5)\n"
        "optimizer_G = torch.optim.RMSprop(G.parameters(), lr=5e-5)\n"
        "for i, imgs in enumerate(loader):\n    optimizer_D.zero_grad()\n"
        "    loss_D = -torch.mean(D(imgs)) + torch.mean(D(G(z).detach()))\n    loss_D.backward()\n"
        "    optimizer_D.step()\n    optimizer_G.zero_grad()\n    if i % n_critic == 0:\n"
        "        loss_G = -torch.mean(D(G(z)))\n        loss_G.backward()\n        optimizer_G.step()\n",
        # nanoGPT: micro-steps in an inner loop, reset once after the step
        "import torch\nopt = torch.optim.AdamW(model.parameters())\nwhile True:\n"
        "    for micro_step in range(grad_accum):\n        loss = model(X) / grad_accum\n"
        "        loss.backward()\n    opt.step()\n    opt.zero_grad(set_to_none=True)\n",
        # accelerate: the wrapped optimizer skips zero_grad until gradients sync
        "import torch\nopt = torch.optim.AdamW(model.parameters())\n"
        "for i, batch in enumerate(loader):\n    with accelerator.accumulate(model):\n"
        "        loss = model(batch)\n        accelerator.backward(loss)\n"
        "        if (i + 1) % accum == 0:\n            opt.step()\n        opt.zero_grad()\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    opt.zero_grad()  # expect: RC108\n"
        "    loss = crit(model(x), y) / accum_steps\n    loss.backward()\n"
        "    if (i + 1) % accum_steps == 0:\n        opt.step()\n",
        "import torch\nopt = torch.optim.AdamW(model.parameters())\nfor it in range(1000):\n"
        "    for micro in range(grad_accum):\n        model.zero_grad()  # expect: RC108\n"
        "        loss = model(x) / grad_accum\n        loss.backward()\n    opt.step()\n",
        # the reset after the gated step, but outside its branch
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    loss = crit(model(x), y) / k\n"
        "    loss.backward()\n    if (i + 1) % k == 0:\n        opt.step()\n"
        "    opt.zero_grad()  # expect: RC108\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for acc in accumulations(p):
            for e in acc.loop.direct():
                ev = e.event
                if ev.kind not in ("zero_grad", "grad_reset"):
                    continue
                if loop_guards(acc.loop, e):
                    continue  # a reset under any test: a window start or an explicit choice
                scope = p.reset_scope(ev)
                if not any(p.reset_covers(scope, key) for key in acc.opt_keys):
                    continue
                node = e.site_in(acc.loop.loop.function)
                # name the step of the optimizer this reset clears (two optimizers: GAN, VAE+disc)
                mine = [st for st in acc.steps if p.reset_covers(scope, p.optimizer_step_target(st.event))]
                step = (mine or acc.steps)[0].site_in(acc.step_loop.loop.function)
                where = ("every iteration, while the optimizer steps only under an accumulation "
                         "gate" if acc.shape == "gated" else "on every micro-batch of the inner loop")
                ctx.report(node, (
                    f"{ctx.code(node)} runs {where} (`{ctx.code(step)}`): each reset discards the "
                    "gradients accumulated so far, so every update uses only the last micro-batch; "
                    "reset right after step() instead (RC108)"))
