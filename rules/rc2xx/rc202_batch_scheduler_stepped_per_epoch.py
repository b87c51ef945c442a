from recipecheck.finding import Severity
from recipecheck.program.schedules import horizon
from recipecheck.rule import Context, Rule


class BatchSchedulerSteppedPerEpoch(Rule):
    """
    ## What it does
    Flags a per-iteration scheduler whose `.step()` runs only in the epoch loop (outside every
    batch loop): OneCycleLR built with `steps_per_epoch` or a `total_steps` counted in steps,
    CyclicLR, CosineAnnealingLR / LambdaLR / LinearLR / PolynomialLR whose horizon is
    `epochs * len(loader)` or a number of steps, and the `transformers` schedules
    (`get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps)`).

    ## Why is this bad?
    The schedule was sized for every optimizer step but advances once per epoch, so by the end
    of training it has covered 1/len(loader) of its horizon: OneCycleLR never reaches its
    peak LR and never anneals, a warmup lasts thousands of epochs.

    Measured (`recipecheck validate RC202`, seeds 0-4): peak LR reached / max_lr (OneCycleLR):
    0.265 [0.265, 0.265] with step() per epoch vs 1 [1, 1] with step() per batch (mean [min,
    max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A horizon held in a variable whose name does not say steps or epochs is not classified
    and not flagged.

    ## Example
    ```python
    scheduler = OneCycleLR(optimizer, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))
    for epoch in range(10):
        for x, y in loader:
            ...
        scheduler.step()
    ```

    ## Use instead
    ```python
    for epoch in range(10):
        for x, y in loader:
            ...
            optimizer.step()
            scheduler.step()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Smith and Topin (2017), "Super-Convergence"; Smith (2017), "Cyclical Learning Rates".
    - PyTorch docs, `OneCycleLR`: "step should be called after a batch has been used".
    """

    CODE = "RC202"
    NAME = "batch-scheduler-stepped-per-epoch"
    SEVERITY = Severity.ERROR
    MESSAGE = "a per-iteration scheduler is stepped only once per epoch"
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))\n"
        "for epoch in range(10):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n        sched.step()\n",
        # OneCycleLR sized in epochs and stepped per epoch
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs)\n"
        "for epoch in range(epochs):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    sched.step()\n",
        # Lightning: the trainer steps it
        "import torch\nimport lightning as L\nclass M(L.LightningModule):\n"
        "    def configure_optimizers(self):\n        opt = torch.optim.AdamW(self.parameters())\n"
        "        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=self.trainer.estimated_stepping_batches)\n"
        "        return {'optimizer': opt, 'lr_scheduler': {'scheduler': sched, 'interval': 'step'}}\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))\n"
        "for epoch in range(10):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    sched.step()  # expect: RC202\n",
        "import torch\nfrom transformers import get_linear_schedule_with_warmup\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=5e-5)\n"
        "sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=100, num_training_steps=epochs * len(loader))\n"
        "for epoch in range(epochs):\n    for batch in loader:\n        opt.zero_grad()\n"
        "        model(**batch).loss.backward()\n        opt.step()\n    sched.step()  # expect: RC202\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        placements: dict[int, tuple] = {}
        for xl in p.all_xloops():
            for e in xl.direct():
                ev = e.event
                if not p.is_scheduler_step(ev):
                    continue
                entry = placements.setdefault(id(ev), (e, []))
                entry[1].append(xl)
        for e, loops in placements.values():
            ev = e.event
            scheds = p.schedulers_of(ev)
            if not scheds or not all(horizon(p, s) == "batch" for s in scheds):
                continue
            if any(p.is_batch_loop(xl) for xl in loops):
                continue
            epoch_loops = [xl for xl in loops if p.encloses_batch_loop(xl)]
            if not epoch_loops:
                continue
            node = e.event.node
            ctx.report(node, (
                f"{ctx.code(node)} on {scheds[0].name} runs once per epoch, but its horizon is "
                "counted in optimizer steps: the schedule covers only 1/len(loader) of its course; "
                "step it after every optimizer.step() in the batch loop (RC202)"))
