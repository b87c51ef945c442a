from recipecheck.finding import Severity
from recipecheck.rule import Context, Rule


class PlateauStepWithoutMetric(Rule):
    """
    ## What it does
    Flags `scheduler.step()` called with no argument on a `ReduceLROnPlateau` scheduler.

    ## Why is this bad?
    ReduceLROnPlateau decides from the metric it is given (validation loss or accuracy).
    Without it the call raises a TypeError at the end of the first epoch, after an epoch of
    compute is lost; wrappers that swallow the error leave the LR constant for the whole run.

    ## Known problems
    Only schedulers the linter can trace back to their construction are checked.

    ## Example
    ```python
    scheduler = ReduceLROnPlateau(optimizer, mode="min", patience=5)
    for epoch in range(epochs):
        train(...)
        val_loss = evaluate(...)
        scheduler.step()
    ```

    ## Use instead
    ```python
        scheduler.step(val_loss)
    ```

    ## Options
    None.

    ## Fix safety
    Unsafe (when a fix exists): pass the validation metric that is in scope.

    ## References
    - PyTorch docs, `torch.optim.lr_scheduler.ReduceLROnPlateau`.
    """

    CODE = "RC204"
    NAME = "plateau-step-without-metric"
    SEVERITY = Severity.ERROR
    MESSAGE = "ReduceLROnPlateau.step() needs the monitored metric"
    VALID = (
        "from torch.optim.lr_scheduler import ReduceLROnPlateau\n"
        "sched = ReduceLROnPlateau(opt, patience=3)\nfor epoch in range(10):\n"
        "    val_loss = evaluate()\n    sched.step(val_loss)\n",
        "from torch.optim.lr_scheduler import StepLR\nsched = StepLR(opt, 3)\n"
        "for epoch in range(10):\n    train()\n    sched.step()\n",
    )
    INVALID = (
        "from torch.optim.lr_scheduler import ReduceLROnPlateau\n"
        "sched = ReduceLROnPlateau(opt, patience=3)\nfor epoch in range(10):\n"
        "    val_loss = evaluate()\n    sched.step()  # expect: RC204\n",
        "import torch.optim as optim\nclass T:\n    def __init__(self, opt):\n"
        "        self.scheduler = optim.lr_scheduler.ReduceLROnPlateau(opt, 'max')\n"
        "    def end_epoch(self, acc):\n        self.scheduler.step()  # expect: RC204\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for f in p.functions.values():
            for ev in f.events:
                if ev.kind != "step" or ev.call is None or ev.call.args:
                    continue
                scheds = p.schedulers_of(ev)
                if scheds and all(s.name == "ReduceLROnPlateau" for s in scheds):
                    ctx.report(ev.node, (
                        f"{ctx.code(ev.node)} on ReduceLROnPlateau has no metric: it raises at the "
                        "end of the first epoch, or never reduces the LR; pass the validation "
                        "metric, e.g. scheduler.step(val_loss) (RC204)"))
