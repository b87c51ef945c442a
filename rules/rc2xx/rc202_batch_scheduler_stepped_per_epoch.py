import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
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
    Also a LightningModule's `configure_optimizers()` that returns such a scheduler without
    `'interval': 'step'` (Lightning's default interval is one epoch).

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
        # Lightning: an epoch scheduler at the default interval; a step scheduler told so
        "import torch\nimport pytorch_lightning as pl\nclass M(pl.LightningModule):\n"
        "    def configure_optimizers(self):\n        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)\n"
        "        return [opt], [torch.optim.lr_scheduler.StepLR(opt, 30)]\n"
        "class N(pl.LightningModule):\n"
        "    def configure_optimizers(self):\n        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)\n"
        "        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=self.trainer.estimated_stepping_batches)\n"
        "        return [opt], [{'scheduler': sched, 'interval': 'step'}]\n",
        # an update loop that gathers micro-batches: the scheduler steps beside optimizer.step()
        "import torch\nfrom transformers import get_linear_schedule_with_warmup\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=5e-5)\n"
        "sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=100, num_training_steps=total)\n"
        "for epoch in range(epochs):\n    it = iter(loader)\n    for update in range(updates_per_epoch):\n"
        "        micro = [next(it) for _ in range(accum)]\n        for batch in micro:\n"
        "            (model(**batch).loss / accum).backward()\n"
        "        opt.step()\n        sched.step()\n        opt.zero_grad()\n",
        # a constant schedule has no horizon to cover
        "import torch\nfrom transformers import get_constant_schedule\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=5e-5)\nsched = get_constant_schedule(opt)\n"
        "for epoch in range(epochs):\n    for batch in loader:\n        opt.zero_grad()\n"
        "        model(**batch).loss.backward()\n        opt.step()\n    sched.step()\n",
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
        # Lightning steps a returned scheduler once per epoch unless told 'interval': 'step'
        "import torch\nimport pytorch_lightning as pl\nclass M(pl.LightningModule):\n"
        "    def configure_optimizers(self):\n        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)\n"
        "        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=self.trainer.estimated_stepping_batches)\n"
        "        return [opt], [sched]  # expect: RC202\n",
        "import torch\nimport lightning as L\nclass M(L.LightningModule):\n"
        "    def configure_optimizers(self):\n        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)\n"
        "        sched = {'scheduler': torch.optim.lr_scheduler.OneCycleLR(  # expect: RC202\n"
        "            opt, max_lr=1e-3, epochs=self.hparams.epochs, steps_per_epoch=self.hparams.steps),\n"
        "            'name': 'lr'}\n        return [opt], [sched]\n",
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
            if any(p.steps_optimizer_in(xl) for xl in loops):
                continue  # beside optimizer.step() (an update loop over micro-batches): per step
            epoch_loops = [xl for xl in loops if p.encloses_batch_loop(xl)]
            if not epoch_loops:
                continue
            node = e.event.node
            ctx.report(node, (
                f"{ctx.code(node)} on {scheds[0].name} runs once per epoch, but its horizon is "
                "counted in optimizer steps: the schedule covers only 1/len(loader) of its course; "
                "step it after every optimizer.step() in the batch loop (RC202)"))
        _check_lightning(ctx, p)


def _check_lightning(ctx: Context, p) -> None:
    """`configure_optimizers()` of a LightningModule returning a per-iteration scheduler without
    `'interval': 'step'`: Lightning's default interval is 'epoch', so it steps once per epoch."""
    for cls in p.classes.values():
        if not any(b.endswith("LightningModule") for b in cls.bases):
            continue
        f = cls.methods.get("configure_optimizers")
        if f is None or "lr_scheduler_step" in cls.methods:
            continue  # a custom lr_scheduler_step decides the stepping itself
        if any(e.callee_text and e.callee_text.endswith("lr_schedulers") for m in cls.methods.values()
               for e in m.events):
            continue  # manual optimization steps the schedulers in training_step
        for ret in f.returns:
            entries = _returned_schedulers(ret)
            for i, (sched, interval) in enumerate(list(entries)):
                binds = f.bindings(sched.value) if isinstance(sched, cst.Name) else []
                if len(binds) == 1 and isinstance(binds[0].value, cst.Dict):
                    entries[i:i + 1] = _scheduler_entry(binds[0].value)  # sched = {"scheduler": ...}
            for sched, interval in entries:
                if interval == "step":
                    continue
                cons = [c for c in p.evaluate(f, sched) if c.role == "scheduler"]
                if not cons or not all(horizon(p, c) == "batch" for c in cons):
                    continue
                ctx.report(sched, (
                    f"{cons[0].name} `{ctx.code(sched)}` is returned to Lightning without "
                    "`'interval': 'step'`: Lightning steps it once per epoch by default, but its "
                    "horizon is counted in optimizer steps, so the schedule covers only "
                    "1/len(loader) of its course; return {'scheduler': ..., 'interval': 'step'} (RC202)"))


def _returned_schedulers(expr):
    """(scheduler expression, interval or None) for each scheduler in a configure_optimizers
    return value: `[opt], [sched]`, `{"optimizer": o, "lr_scheduler": sched}`, or the dict form
    `{"scheduler": sched, "interval": "step"}`."""
    out = []
    if isinstance(expr, (cst.Tuple, cst.List)):
        elements = [el.value for el in expr.elements]
        if len(elements) == 2 and isinstance(expr, cst.Tuple) and \
                all(isinstance(x, (cst.List, cst.Tuple)) for x in elements):
            for x in elements[1].elements:  # ([opt], [sched])
                out += _scheduler_entry(x.value)
        return out
    if isinstance(expr, cst.Dict):
        value = _dict_get(expr, "lr_scheduler")
        if value is not None:
            out += _scheduler_entry(value)
    return out


def _scheduler_entry(value):
    if isinstance(value, cst.Dict):
        sched = _dict_get(value, "scheduler")
        if sched is None:
            return []
        interval = _dict_get(value, "interval")
        if interval is None:
            return [(sched, None)]
        if isinstance(interval, cst.SimpleString):
            return [(sched, str(interval.evaluated_value))]
        return []  # an interval the code computes: unknown
    if isinstance(value, (cst.Name, cst.Attribute, cst.Call)):
        return [(value, None)]
    return []


def _dict_get(d: cst.Dict, key: str):
    for el in d.elements:
        if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) and \
                el.key.evaluated_value == key:
            return el.value
    return None
