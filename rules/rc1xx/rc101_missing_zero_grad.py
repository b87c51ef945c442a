from recipecheck.finding import Severity
from recipecheck.rule import Context, FixSpec, Rule


class MissingZeroGrad(Rule):
    """
    ## What it does
    Flags a loop that calls `backward()` and `optimizer.step()` but never resets the gradients
    inside that loop: no `optimizer.zero_grad()`, `model.zero_grad()`, `p.grad = None` or
    `p.grad.zero_()` in the same iteration (helper functions called from the loop count). A
    reset that runs only on some iterations, as in gradient accumulation, is fine; but when
    the step runs every iteration and every reset sits under a periodic test
    (`if i % 100 == 0: print(...); optimizer.zero_grad()`), the steps in between apply the
    running sum of gradients, and that is reported.

    ## Why is this bad?
    PyTorch *adds* each `backward()` into `.grad`. Without a reset, step t applies the sum of
    all gradients since the start: the effective step grows linearly with t and training
    diverges or crawls in a stale direction.

    Measured (`recipecheck validate RC101`, seeds 0-4): gradient norm seen by step() after 20
    SGD steps / its first value: 10 [8.15, 12.3] with no zero_grad vs 0.9 [0.663, 1.12] with
    zero_grad each step (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A reset done by a function of another module (or a framework hook) is not seen.

    ## Example
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Options
    None.

    ## Fix safety
    Safe: `optimizer.zero_grad()` is inserted as the first statement of the loop body. It is
    offered only when the step is in the loop's own body and names the optimizer directly.

    ## References
    - PyTorch docs, `torch.optim.Optimizer.zero_grad`; "Zeroing out gradients in PyTorch" recipe.
    - Runtime twin: RT104 gradients-not-reset.
    """

    CODE = "RC101"
    NAME = "missing-zero-grad"
    SEVERITY = Severity.ERROR
    MESSAGE = "gradients are never reset in this training loop"
    FIX = "safe"
    STATIC_TWIN = "RT104"
    VALID = (
        # the classic loop
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    loss = crit(model(x), y)\n"
        "    loss.backward()\n    opt.step()\n",
        # set_to_none after step, as in nanoGPT
        "import torch\nopt = torch.optim.AdamW(model.parameters())\n"
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    opt.step()\n    opt.zero_grad(set_to_none=True)\n",
        # p.grad = None
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    for p in model.parameters():\n        p.grad = None\n"
        "    crit(model(x), y).backward()\n    opt.step()\n",
        # gradient accumulation with a conditional reset
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for i, (x, y) in enumerate(loader):\n    loss = crit(model(x), y) / 4\n    loss.backward()\n"
        "    if (i + 1) % 4 == 0:\n        opt.step()\n        opt.zero_grad()\n",
        # AMP, reset through model.zero_grad()
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler()\nfor x, y in loader:\n    model.zero_grad()\n"
        "    scaler.scale(crit(model(x), y)).backward()\n    scaler.step(opt)\n    scaler.update()\n",
        # a GAN: each network's zero_grad() resets what its own optimizer steps, also when the
        # loop uses other names for the modules (`netG = self.gen`)
        "import torch\nclass T:\n    def __init__(self, d, g):\n        self.d, self.g = d, g\n"
        "        self.opt_d = torch.optim.Adam(self.d.parameters())\n"
        "        self.opt_g = torch.optim.Adam(self.g.parameters())\n"
        "    def run(self, loader):\n        netD, netG = self.d, self.g\n"
        "        for x in loader:\n            netD.zero_grad()\n            lossD(netD, x).backward()\n"
        "            self.opt_d.step()\n            netG.zero_grad()\n"
        "            lossG(netD, netG).backward()\n            self.opt_g.step()\n",
        # reset inside a helper called from the loop
        "import torch\ndef reset(o):\n    o.zero_grad()\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    reset(opt)\n    crit(model(x), y).backward()\n    opt.step()\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
        "    opt.step()  # expect: RC101\n",
        # reset once per epoch only
        "import torch.optim as optim\ndef train(model, loader, optimizer):\n"
        "    for epoch in range(10):\n        optimizer.zero_grad()\n        for x, y in loader:\n"
        "            crit(model(x), y).backward()\n            optimizer.step()  # expect: RC101\n"
        "train(net, dl, optim.Adam(net.parameters()))\n",
        # a GAN where only the generator is reset: the discriminator's gradients pile up
        "import torch\noptD = torch.optim.Adam(netD.parameters())\n"
        "optG = torch.optim.Adam(netG.parameters())\nfor x in loader:\n"
        "    lossD(netD, x).backward()\n    optD.step()  # expect: RC101\n"
        "    netG.zero_grad()\n    lossG(netD, netG).backward()\n    optG.step()\n",
        # AMP without a reset
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "scaler = torch.cuda.amp.GradScaler()\nfor x, y in loader:\n"
        "    scaler.scale(crit(model(x), y)).backward()\n    scaler.step(opt)  # expect: RC101\n"
        "    scaler.update()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for xl in p.all_xloops():
            seq = list(xl.walk())
            if not any(e.event.kind == "backward" for e, _ in seq):
                continue
            reset_events = [e for e, _ in seq if e.event.kind in ("zero_grad", "grad_reset")]
            resets = [p.reset_scope(e.event) for e in reset_events]
            for e, path in seq:
                key = p.optimizer_step_target(e.event)
                if key is None:
                    continue
                covering = [r for r, ev in zip(resets, reset_events) if p.reset_covers(r, key, unknown=True)]
                if covering:
                    gated_twin = any(p.optimizer_step_target(o.event) == key and o is not e
                                     for o, _ in seq)  # a second step of it: RC107's case
                    if not gated_twin:
                        self._periodic_reset(ctx, xl, e, [ev for r, ev in zip(resets, reset_events)
                                                          if p.reset_covers(r, key, unknown=True)])
                    continue
                if path and any(p.is_batch_loop(inner) for inner in path):
                    continue  # analysed at the inner loop
                node = e.site_in(xl.loop.function)
                name = e.event.receiver or "optimizer"
                opt_name = name
                if p.role_of(e.event.function, name) == "scaler" and e.event.call is not None \
                        and e.event.call.args:
                    opt_name = ctx.code(e.event.call.args[0].value)
                ctx.report(node, (
                    f"{ctx.code(node)} runs every iteration but the gradients are never reset in this "
                    f"loop: each step applies the sum of all previous gradients; call "
                    f"{opt_name}.zero_grad() once per iteration (RC101)"),
                    fix=self._fix(ctx, xl, e, opt_name))

    @staticmethod
    def _periodic_reset(ctx: Context, xl, step, resets) -> None:
        """The step runs every iteration but every reset sits under a periodic test
        (`if i % log_every == 0: print(...); optimizer.zero_grad()`, an indentation slip):
        between two resets each step applies the running sum of all gradients since the last."""
        from recipecheck.program.accumulation import _has_modulo, loop_guards

        if not resets or any(not getattr(r.event, "conds", None) and not r.event.function.callers
                             and r.event.function is xl.loop.function for r in resets):
            return  # a reset outside any branch of the loop's own function: every iteration
        if loop_guards(xl, step):
            return  # a gated step: accumulation, judged by RC105/RC108
        gates = []
        for r in resets:
            guards = loop_guards(xl, r)
            periodic = [g for g in guards if g.positive and _has_modulo(g.test)]
            if not periodic:
                return
            gates.append(periodic[0])
        node = step.site_in(xl.loop.function)
        ctx.report(node, (
            f"{ctx.code(node)} runs every iteration but the gradients are reset only when "
            f"`{ctx.code(gates[0].test)}`: in between, each step applies the sum of all gradients "
            "since the last reset; move zero_grad() out of that branch so it runs once per "
            "iteration (RC101)"))

    @staticmethod
    def _fix(ctx: Context, xl, e, opt_name: str) -> FixSpec | None:
        import libcst as cst

        loop = xl.loop.node
        if e.event.function is not xl.loop.function or e.event.loop is not xl.loop:
            return None
        if not opt_name.replace(".", "").replace("_", "").isalnum():
            return None
        body = loop.body
        if not isinstance(body, cst.IndentedBlock) or not body.body:
            return None
        stmt = cst.parse_statement(f"{opt_name}.zero_grad()\n")
        new_body = body.with_changes(body=(stmt, *body.body))
        return FixSpec("safe", f"insert {opt_name}.zero_grad() at the top of the loop body",
                       old=body, new=new_body)
