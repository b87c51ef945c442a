import libcst as cst

from recipecheck.program.nodes import iter_children

from recipecheck.finding import Severity
from recipecheck.program.schedules import is_epoch_scheduler
from recipecheck.rule import Context, FixSpec, Rule


def _periodic_or_unconditional(conds) -> bool:
    """Unconditional, or under a periodic test (`i % k == 0`) that still fires many times."""
    if not conds:
        return True
    for c in conds:
        stack = [c]
        periodic = False
        while stack:
            n = stack.pop()
            if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Modulo):
                right = n.right
                periodic = not (isinstance(right, cst.Call) and isinstance(right.func, cst.Name)
                                and right.func.value == "len")
            stack.extend(iter_children(n))
        if not periodic:
            return False
    return True


def _mode_test(c, xl, ev) -> bool:
    """`if phase == "train":` / `if train:` on a name that stays fixed for the whole batch loop
    (the target of an enclosing loop, or a parameter, never rebound inside the batch loop): when
    it holds, the step runs on every batch."""
    if ev.function is not xl.loop.function:
        return False
    if isinstance(c, cst.UnaryOperation) and isinstance(c.operator, cst.Not):
        c = c.expression
    if isinstance(c, cst.Comparison) and len(c.comparisons) == 1 and isinstance(c.left, cst.Name) and \
            isinstance(c.comparisons[0].operator, (cst.Equal, cst.NotEqual, cst.In, cst.NotIn)) and \
            _literal_value(c.comparisons[0].comparator):
        name = c.left.value
    elif isinstance(c, cst.Name):
        name = c.value
    else:
        return False
    fixed = set(ev.function.params)
    outer = xl.parent
    while outer is not None and outer.loop.function is xl.loop.function:
        node = outer.loop.node
        if isinstance(node, cst.For):
            fixed |= {n.value for n in _names(node.target)}
        outer = outer.parent
    if name not in fixed:
        return False
    return not any(_binds(n, name) for n in _walk(xl.loop.node))


def _literal_value(node) -> bool:
    if isinstance(node, (cst.SimpleString, cst.Integer)):
        return True
    if isinstance(node, (cst.Tuple, cst.List, cst.Set)):
        return all(isinstance(e.value, (cst.SimpleString, cst.Integer)) for e in node.elements)
    return False


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(iter_children(n))


def _names(node):
    return [n for n in _walk(node) if isinstance(n, cst.Name)]


def _binds(n, name: str) -> bool:
    targets = []
    if isinstance(n, cst.For):
        targets = [n.target]
    elif isinstance(n, cst.Assign):
        targets = [t.target for t in n.targets]
    elif isinstance(n, (cst.AugAssign, cst.AnnAssign)):
        targets = [n.target]
    elif isinstance(n, cst.NamedExpr):
        targets = [n.target]
    elif isinstance(n, cst.AsName):
        targets = [n.name]
    return any(isinstance(x, cst.Name) and x.value == name for t in targets for x in _walk(t))


class EpochSchedulerSteppedPerBatch(Rule):
    """
    ## What it does
    Flags `scheduler.step()` inside the batch loop (the innermost loop that reaches
    `backward()`, nested in an epoch loop directly or through a call such as
    `train_one_epoch(...)`) when the scheduler's horizon is counted in epochs: StepLR,
    MultiStepLR, ExponentialLR, ReduceLROnPlateau, PolynomialLR, and CosineAnnealingLR whose
    `T_max` is a number of epochs. Horizons written in steps (`len(loader)`, `total_steps`,
    `max_iters`, literals of 1000 or more) are per-batch schedules and are not flagged.

    ## Why is this bad?
    The schedule advances len(loader) times per epoch instead of once: StepLR(step_size=30,
    gamma=0.1) reaches 1e-4 of the initial LR after 90 *batches* and the rest of the run
    trains at an LR of almost zero; a cosine schedule finishes its cycle within the first
    epoch and then restarts.

    Measured (`recipecheck validate RC201`, seeds 0-4): LR after epoch 1 (base LR 0.5, StepLR(5,
    0.5), 10 batches per epoch): 0.125 [0.125, 0.125] with step() per batch vs 0.5 [0.5, 0.5]
    with step() per epoch (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A scheduler with an epoch horizon that is deliberately stepped per iteration (an
    iteration-based recipe whose numbers happen to be small) is reported; suppress it with
    `# noqa: RC201` or write the horizon in steps.

    ## Example
    ```python
    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(90):
        for x, y in train_loader:
            ...
            optimizer.step()
            scheduler.step()
    ```

    ## Use instead
    ```python
    for epoch in range(90):
        for x, y in train_loader:
            ...
            optimizer.step()
        scheduler.step()
    ```

    ## Options
    None.

    ## Fix safety
    Unsafe: the fix moves `scheduler.step()` after the batch loop, which changes the LR curve
    of the run (as intended); offered only when the step and the batch loop are in the same
    function and the epoch loop directly contains the batch loop.

    ## References
    - PyTorch docs, "How to adjust learning rate" (`torch.optim.lr_scheduler`).
    - Runtime twin: RT105 scheduler-stepped-too-often.
    """

    CODE = "RC201"
    NAME = "epoch-scheduler-stepped-per-batch"
    SEVERITY = Severity.ERROR
    MESSAGE = "an epoch-based scheduler is stepped once per batch"
    FIX = "unsafe"
    STATIC_TWIN = "RT105"
    VALID = (
        "import torch\nfrom torch.optim.lr_scheduler import StepLR\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nsched = StepLR(opt, step_size=30, gamma=0.1)\n"
        "for epoch in range(90):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    sched.step()\n",
        # OneCycleLR is meant to be stepped per batch
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))\n"
        "for epoch in range(10):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n        sched.step()\n",
        # cosine with a horizon in steps
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))\n"
        "for epoch in range(epochs):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n        sched.step()\n",
        # LambdaLR warmup with a horizon in steps
        "import torch\nfrom torch.optim.lr_scheduler import LambdaLR\n"
        "opt = torch.optim.AdamW(model.parameters())\n"
        "sched = LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup_steps))\n"
        "for epoch in range(3):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n        sched.step()\n",
        # iteration-based training: no epoch loop at all
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)\n"
        "for it, (x, y) in enumerate(loader):\n    opt.zero_grad()\n    crit(model(x), y).backward()\n"
        "    opt.step()\n    sched.step()\n",
        # stepped on the last batch of the epoch only
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)\n"
        "for epoch in range(90):\n    for i, (x, y) in enumerate(loader):\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n        if i == len(loader) - 1:\n"
        "            sched.step()\n",
        # train/val phases: the scheduler steps once per training phase, after the batch loop
        "import torch\nsched = torch.optim.lr_scheduler.StepLR(opt, step_size=7)\n"
        "for epoch in range(25):\n    for phase in ['train', 'val']:\n"
        "        for x, y in loaders[phase]:\n            opt.zero_grad()\n"
        "            if phase == 'train':\n                crit(model(x), y).backward()\n                opt.step()\n"
        "        if phase == 'train':\n            sched.step()\n",
        # a flag recomputed on every batch is not a phase
        "import torch\nsched = torch.optim.lr_scheduler.StepLR(opt, step_size=7)\n"
        "for epoch in range(25):\n    for i, (x, y) in enumerate(loader):\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n        last = i + 1 == n_batches\n"
        "        if last:\n            sched.step()\n",
    )
    INVALID = (
        # train/val phases: the step sits in the batch loop, under the phase test
        "import torch\nsched = torch.optim.lr_scheduler.StepLR(opt, step_size=7)\n"
        "for epoch in range(25):\n    for phase in ['train', 'val']:\n"
        "        for x, y in loaders[phase]:\n            opt.zero_grad()\n"
        "            if phase == 'train':\n                crit(model(x), y).backward()\n                opt.step()\n"
        "                sched.step()  # expect: RC201\n",
        "import torch\nfrom torch.optim.lr_scheduler import StepLR\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nsched = StepLR(opt, step_size=30, gamma=0.1)\n"
        "for epoch in range(90):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n        sched.step()  # expect: RC201\n",
        # through train_one_epoch and an aliased import
        "import torch.optim as optim\nfrom torch.optim import lr_scheduler as lrs\n"
        "def train_one_epoch(model, loader, optimizer, scheduler):\n    for x, y in loader:\n"
        "        optimizer.zero_grad()\n        crit(model(x), y).backward()\n        optimizer.step()\n"
        "        scheduler.step()  # expect: RC201\n"
        "def main():\n    opt = optim.SGD(net.parameters(), lr=0.1)\n"
        "    sched = lrs.CosineAnnealingLR(opt, T_max=100)\n    for epoch in range(100):\n"
        "        train_one_epoch(net, dl, opt, sched)\n",
        # a Trainer class
        "import torch\nclass Trainer:\n    def __init__(self, model):\n"
        "        self.opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, milestones=[30, 60])\n"
        "    def _run_epoch(self, loader):\n        for x, y in loader:\n            self.opt.zero_grad()\n"
        "            self.loss(x, y).backward()\n            self.opt.step()\n"
        "            self.sched.step()  # expect: RC201\n"
        "    def fit(self, loader, epochs):\n        for epoch in range(epochs):\n"
        "            self._run_epoch(loader)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for xl in p.batch_loops:
            if xl.parent is None:
                continue  # no epoch loop around it: an iteration-based recipe
            for e in xl.direct():
                ev = e.event
                if not p.is_scheduler_step(ev):
                    continue
                scheds = p.schedulers_of(ev)
                if not scheds or not all(is_epoch_scheduler(p, s) for s in scheds):
                    continue
                conds = [c for c in ev.conds if not _mode_test(c, xl, ev)]
                if conds and not _periodic_or_unconditional(conds):
                    continue  # e.g. `if i == len(loader) - 1:` steps once per epoch
                node = e.event.node
                s = scheds[0]
                pace = f"len({xl.loop.iter_text}) times faster than intended" if xl.loop.iter_text \
                    else "as many times faster than intended as there are batches per epoch"
                if ev.function.program is not None and ev.function.program is not p and \
                        s.function.program in (p, None):
                    # stepped by a class of another module (`Trainer(lr_scheduler=...)`): report
                    # the scheduler this file builds and hands over
                    where = ev.function.key
                    ctx.report(s.node, (
                        f"{s.name} is handed to `{where}()` (another module), which steps it once "
                        f"per batch: the LR schedule advances {pace}; use a per-step scheduler "
                        "there, or step this one per epoch"))
                    continue
                ctx.report(node, (
                    f"{ctx.code(node)} on {s.name} runs once per batch: the LR schedule advances "
                    f"{pace}; step it once per epoch, after the "
                    "batch loop"), fix=self._fix(ctx, xl, e))

    @staticmethod
    def _fix(ctx: Context, xl, e) -> FixSpec | None:
        """Move the scheduler step from the batch loop's body to right after the batch loop."""
        ev = e.event
        loop = xl.loop.node
        parent = xl.parent
        if ev.function is not xl.loop.function or ev.loop is not xl.loop or ev.conds:
            return None
        if parent is None or parent.loop.function is not xl.loop.function:
            return None
        outer_body = parent.loop.node.body
        if not isinstance(loop.body, cst.IndentedBlock) or not isinstance(outer_body, cst.IndentedBlock) \
                or not any(stmt is loop for stmt in outer_body.body):
            return None  # the batch loop is not a direct statement of the epoch loop
        target_stmt = next((stmt for stmt in loop.body.body
                            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                            and isinstance(stmt.body[0], cst.Expr) and stmt.body[0].value is ev.node),
                           None)
        if target_stmt is None or len(loop.body.body) < 2:
            return None
        new_loop = loop.with_changes(body=loop.body.with_changes(
            body=tuple(s for s in loop.body.body if s is not target_stmt)))
        new_outer = []
        for stmt in outer_body.body:
            if stmt is loop:
                new_outer += [new_loop, target_stmt.with_changes(leading_lines=())]
            else:
                new_outer.append(stmt)
        return FixSpec("unsafe", "move the scheduler step after the batch loop",
                       old=outer_body, new=outer_body.with_changes(body=tuple(new_outer)))
