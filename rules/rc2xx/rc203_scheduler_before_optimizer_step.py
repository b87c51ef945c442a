import libcst as cst

from recipecheck.finding import Severity
from recipecheck.rule import Context, Rule


class SchedulerBeforeOptimizerStep(Rule):
    """
    ## What it does
    Flags `scheduler.step()` that runs before `optimizer.step()` in the same iteration: at the
    top of the epoch loop before the batch loop, or before the optimizer step inside the batch
    loop. A scheduler step guarded by a condition (`if epoch > 0:`) is left alone, unless the
    optimizer step sits under the same condition right after it (an accumulation gate
    `if (i + 1) % k == 0: scheduler.step(); optimizer.step()`), or under every condition of
    the scheduler step written the same way (the phase loop of the transfer-learning
    tutorial: `if phase == 'train': scheduler.step()` before the batches whose optimizer step
    runs under `if phase == 'train':`).

    ## Why is this bad?
    Since PyTorch 1.1 the scheduler must be stepped after the optimizer. Stepping it first
    skips the first value of the schedule (the initial LR is never used: a warmup starts one
    step in, a StepLR decays one epoch early) and PyTorch warns "Detected call of
    `lr_scheduler.step()` before `optimizer.step()`".

    Measured (`recipecheck validate RC203`, seeds 0-4): LR of the first epoch / base LR
    (ExponentialLR(gamma=0.7)): 0.7 [0.7, 0.7] with scheduler.step() first vs 1 [1, 1] with
    optimizer.step() first (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Order is judged within one iteration of the loop; a scheduler stepped at the end of the
    previous iteration is fine and not reported.

    ## Example
    ```python
    for epoch in range(epochs):
        scheduler.step()
        train_one_epoch(model, loader, optimizer)
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer)
        scheduler.step()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - PyTorch docs, `torch.optim.lr_scheduler` ("Prior to PyTorch 1.1.0, the learning rate
      scheduler was expected to be called before the optimizer's update").
    """

    CODE = "RC203"
    NAME = "scheduler-before-optimizer-step"
    SEVERITY = Severity.WARNING
    MESSAGE = "scheduler.step() runs before optimizer.step()"
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, 30)\nfor epoch in range(90):\n"
        "    for x, y in loader:\n        opt.zero_grad()\n        crit(model(x), y).backward()\n"
        "        opt.step()\n    sched.step()\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, 30)\nfor epoch in range(90):\n"
        "    if epoch > 0:\n        sched.step()\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n",
        # the same gate with the optimizer first; a scheduler under its own condition
        "import torch\nfrom torch.optim.lr_scheduler import LambdaLR, StepLR\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=3e-5)\n"
        "sched = LambdaLR(opt, lambda s: min(1.0, (s + 1) / 500))\n"
        "for step, batch in enumerate(loader):\n    (model(**batch).loss / 4).backward()\n"
        "    if (step + 1) % 4 == 0:\n        opt.step()\n        sched.step()\n        opt.zero_grad()\n",
        "import torch\nfrom torch.optim.lr_scheduler import StepLR\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\nsched = StepLR(opt, 1000)\n"
        "for step, (x, y) in enumerate(loader):\n    if step > 0 and step % 1000 == 0:\n        sched.step()\n"
        "    opt.zero_grad()\n    crit(model(x), y).backward()\n    opt.step()\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, 30)\nfor epoch in range(90):\n"
        "    sched.step()  # expect: RC203\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=10 * len(loader))\n"
        "for epoch in range(10):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        sched.step()  # expect: RC203\n        opt.step()\n",
        # both under the accumulation gate, the scheduler first
        "import torch\nfrom torch.optim.lr_scheduler import LambdaLR\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=3e-5)\n"
        "sched = LambdaLR(opt, lambda s: min(1.0, (s + 1) / 500))\n"
        "for step, batch in enumerate(loader):\n    (model(**batch).loss / 4).backward()\n"
        "    if (step + 1) % 4 == 0:\n        sched.step()  # expect: RC203\n"
        "        opt.step()\n        opt.zero_grad()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for xl in p.all_xloops():
            seq = [e for e, _ in xl.walk()]
            direct = {id(e) for e in xl.direct()}
            paths = [path for _, path in xl.walk()]
            for j, e in enumerate(seq):
                ev = e.event
                if id(e) not in direct or not p.is_scheduler_step(ev):
                    continue
                before = any(p.optimizer_step_target(seq[i].event) for i in range(j))
                k = next((i for i in range(j + 1, len(seq))
                          if p.optimizer_step_target(seq[i].event)), None)
                if before or k is None:
                    continue
                after = seq[k]
                if e.conds and not _same_guard(ev, after.event) and \
                        not _implied_guard(ev, after.event, paths[k]):
                    continue  # a conditional scheduler step: only under the optimizer's own gate
                node = e.event.node
                ctx.report(node, (
                    f"{ctx.code(node)} runs before {ctx.code(after.site_in(xl.loop.function))} in "
                    "each iteration: the first LR of the schedule is skipped; step the scheduler "
                    "after the optimizer (RC203)"))


def _same_guard(a, b) -> bool:
    """Both calls sit in the same function under the same conditions
    (`if (i + 1) % k == 0: scheduler.step(); optimizer.step()`): whenever one runs, both do."""
    return a.function is b.function and a.loop is b.loop and bool(a.conds) and \
        tuple(map(id, a.conds)) == tuple(map(id, b.conds))


def _implied_guard(sched, opt, loops) -> bool:
    """Every condition of the scheduler step also guards the optimizer step after it, written
    the same way in the same function (`for phase in ('train', 'val'): if phase == 'train':
    scheduler.step()` ... `if phase == 'train': optimizer.step()` in the batch loop): whenever
    the optimizer steps, the scheduler has stepped just before it."""
    if sched.function is not opt.function:
        return False
    code = cst.Module([]).code_for_node
    guards = {code(c) for c in opt.conds}
    for xl in loops:
        guards |= {code(c) for c in xl.loop.conds}
    return all(code(c) in guards for c in sched.conds)
