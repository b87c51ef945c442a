import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.evaluation import analysis, forward_text, insert_before_transform
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, FixSpec, Rule


class MissingTrainMode(Rule):
    """
    ## What it does
    Flags `model.eval()` called inside the training loop (usually for a per-epoch validation)
    when `model.train()` is not called again before the next training pass: the next epoch's
    batches run through the model in evaluation mode. The analysis follows helper calls both
    ways: a `train_one_epoch()` that calls `model.train()` at its top is correct, an
    `evaluate()` that calls `model.eval()` counts as the epoch loop's. When those helpers are
    in another module, the finding is on this file's call to the evaluation helper.

    ## Why is this bad?
    From the second epoch on, Dropout is off and BatchNorm normalizes with its frozen running
    statistics instead of batch statistics: the network trains without its regularization and
    with different normalization than it was designed for. Training silently overfits or
    becomes unstable, and nothing crashes.

    Measured (`recipecheck validate RC702`, seeds 0-4): share of training steps run in eval mode
    (10 epochs, validation after each): 0.9 [0.9, 0.9] with model.train() never restored vs 0
    [0, 0] with model.train() each epoch (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Mode changes the linter cannot see (callbacks, `model.apply(fn)`, helpers in other files)
    are not taken into account. A model built in the file only from layers that behave the
    same in both modes (no Dropout, BatchNorm, InstanceNorm, RNN/Transformer layers) is not
    reported, since the mode changes nothing; a custom layer branching on `self.training` is
    not recognized as mode-dependent; a conditional `model.train()` counts as reached.

    ## Example
    ```python
    model.train()
    for epoch in range(epochs):
        for x, y in train_loader:
            ...
        model.eval()
        validate(model, val_loader)
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            ...
        model.eval()
        validate(model, val_loader)
    ```

    ## Options
    None.

    ## Fix safety
    Safe: inserts `model.train()` (with the name the training loop uses) right before the batch
    loop, at the top of the training pass. No fix is offered when the evaluation happens inside
    the batch loop itself.

    ## References
    - PyTorch docs, `nn.Module.train`; PyTorch examples (mnist, imagenet): `model.train()` at the top of each training epoch.
    - Runtime twin: RT111 train-mode-during-eval (the eval side of the same pairing).
    """

    CODE = "RC702"
    NAME = "missing-train-mode"
    SEVERITY = Severity.ERROR
    MESSAGE = "model.eval() in the training loop is never undone by model.train()"
    FIX = "safe"
    VALID = (
        "import torch\n"
        "def train_one_epoch(model, loader, opt):\n    model.train()\n    for x, y in loader:\n"
        "        opt.zero_grad()\n        crit(model(x), y).backward()\n        opt.step()\n"
        "def evaluate(model, loader):\n    model.eval()\n    with torch.no_grad():\n"
        "        for x, y in loader:\n            model(x)\n"
        "model = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "for epoch in range(10):\n    train_one_epoch(model, train_loader, opt)\n    evaluate(model, val_loader)\n",
        "import torch\nfor epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    model.eval()\n    validate(model)\n"
        "    model.train()\n",
        "import torch\n@torch.no_grad()\ndef estimate_loss():\n    model.eval()\n"
        "    for k in range(10):\n        model(*get_batch('val'))\n    model.train()\n"
        "for it in range(1000):\n    if it % 100 == 0:\n        estimate_loss()\n"
        "    loss = model(x)\n    loss.backward()\n    opt.step()\n    opt.zero_grad()\n",
    )
    INVALID = (
        # an iteration-based loop evaluates every N steps; the helper never restores train mode
        "import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(10, 2)\n        self.drop = nn.Dropout(0.1)\n"
        "    def forward(self, x):\n        return self.fc(self.drop(x))\n"
        "@torch.no_grad()\ndef estimate_loss(model, loader):\n    model.eval()  # expect: RC702\n"
        "    return sum(crit(model(x), y).item() for x, y in loader)\n"
        "model = Net()\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4)\nmodel.train()\n"
        "for it in range(5000):\n    x, y = next(train_iter)\n    loss = crit(model(x), y)\n"
        "    opt.zero_grad()\n    loss.backward()\n    opt.step()\n"
        "    if it % 500 == 0:\n        print(it, estimate_loss(model, val_loader))\n",
        "import torch\nmodel.train()\nfor epoch in range(10):\n    for x, y in train_loader:\n"
        "        opt.zero_grad()\n        crit(model(x), y).backward()\n        opt.step()\n"
        "    model.eval()  # expect: RC702\n    with torch.no_grad():\n        for x, y in val_loader:\n"
        "            model(x)\n",
        "import torch\n"
        "def validate(net, loader):\n    net.eval()  # expect: RC702\n    with torch.no_grad():\n"
        "        for x, y in loader:\n            net(x)\n"
        "def train_epoch(net, loader, opt):\n    for x, y in loader:\n"
        "        opt.zero_grad()\n        crit(net(x), y).backward()\n        opt.step()\n"
        "model = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "for epoch in range(10):\n    train_epoch(model, train_loader, opt)\n    validate(model, val_loader)\n",
    )

    def check(self, ctx: Context) -> None:
        ev = analysis(ctx.program)
        done: set[int] = set()
        _check_periodic_eval(ctx, ev, done)
        for batch in ev.training_loops():
            for model, fwd in _training_forwards(ev, batch).items():
                matters = ev.mode_matters(model)  # no Dropout/BatchNorm: no effect today
                for sc in ev.scenarios(fwd, model):
                    if sc.wrap is None or not sc.states or any(s.mode != "eval" for s in sc.states):
                        continue
                    inside = [s for s in sc.states if sc.wrap in s.node.ancestors()]
                    for s in inside:
                        node = s.node.event.node
                        if id(node) in done:
                            continue
                        done.add(id(node))
                        own = {id(fn) for fn in ctx.program.functions.values()}
                        if id(s.node.event.function) not in own:
                            # eval() and the training forward in helpers of another module
                            # (engine.evaluate / engine.train_one_epoch): report this file's call
                            _report_foreign(ctx, ev, s.node, fwd, model, own)
                            continue
                        fix = self._fix(ev, batch, fwd, s)
                        name = forward_text(fwd.event)
                        if matters:
                            ctx.report(node, (
                                f"{ctx.code(node)} switches {name} to eval mode inside the training "
                                f"loop and nothing calls {name}.train() before the next training pass: "
                                "later epochs train with Dropout off and frozen BatchNorm statistics; "
                                f"call {name}.train() before training resumes (RC702)"), fix=fix)
                        else:
                            ctx.report(node, (
                                f"{ctx.code(node)} switches {name} to eval mode inside the training "
                                f"loop and nothing calls {name}.train() again: no effect today ({name} "
                                "has no Dropout/BatchNorm), but later epochs will train in eval mode "
                                f"once one is added; call {name}.train() before training resumes "
                                "(RC702)"), fix=fix, severity=Severity.INFO)

    @staticmethod
    def _fix(ev, batch, fwd, ms):
        # the batch loop must not itself contain the eval() (periodic eval inside the loop)
        if batch in ms.node.ancestors() or fwd.chain != batch.chain:
            return None
        name = forward_text(fwd.event)
        if not name or "(" in name:
            return None
        loop = batch.loop
        tr = insert_before_transform(loop.function.node, loop.node, f"{name}.train()\n")
        if tr is None:
            return None
        return FixSpec("safe", f"call {name}.train() at the top of the training pass", transform=tr)


def _own_call(node, own: set[int]):
    """The last call of `node`'s chain made from a function of this file."""
    for call in reversed(node.chain):
        if id(call.function) in own:
            return call
    return None


def _report_foreign(ctx: Context, ev, mode_node, fwd, model: str, own: set[int]) -> None:
    """RC702 where eval() runs in another module's helper: reported at the call here that
    reaches it, for a model this file passes to the training helper (a name local to a helper
    is not this file's to judge)."""
    from recipecheck.program.nodes import bind_arguments

    site = _own_call(mode_node, own)
    fcall = _own_call(fwd, own) if id(fwd.event.function) not in own else None
    if site is None:
        return
    arg = model
    if fcall is not None:
        fn = fwd.event.function
        if "." in model or model not in fn.params or fcall.callee is not fn:
            return
        arg = next((dotted_name(v) for n, v in bind_arguments(fcall.node, fn.params, fn.cls is not None)
                    if n == model), None)
    if not arg or not ev.mode_matters(arg):
        return
    ctx.report(site.node, (
        f"`{ctx.code(site.node)}` switches {arg} to eval mode (in {mode_node.event.function.name}(), "
        f"another module) inside the training loop and nothing calls {arg}.train() before the next "
        "training pass: later epochs train with Dropout off and frozen BatchNorm statistics; call "
        f"{arg}.train() before training resumes (RC702)"))


def _check_periodic_eval(ctx: Context, ev, done: set[int]) -> None:
    """Evaluation every N steps inside the training loop (`if it % 500 == 0: evaluate()`):
    the conditional eval() leaves the model in eval mode for every later iteration when
    nothing inside the loop calls train() again; a train() before the loop only covers the
    first iteration."""
    for batch in ev.training_loops():
        for model, fwd in _training_forwards(ev, batch).items():
            if not ev.mode_matters(model) or _train_call_in(batch.loop.node, model):
                continue
            for sc in ev.scenarios(fwd, model):
                if sc.wrap is not batch:
                    continue
                inside = [s for s in sc.states if batch in s.node.ancestors()]
                if not inside or any(s.mode != "eval" for s in inside):
                    continue
                for s in inside:
                    node = s.node.event.node
                    if id(node) in done:
                        continue
                    done.add(id(node))
                    name = forward_text(fwd.event)
                    ctx.report(node, (
                        f"{ctx.code(node)} switches {name} to eval mode during training (a periodic "
                        f"evaluation) and nothing in the training loop calls {name}.train() again: "
                        "every later step trains with Dropout off and frozen BatchNorm statistics; "
                        f"call {name}.train() after the evaluation (RC702)"))


def _train_call_in(loop_node, model: str) -> bool:
    """Any `<...model...>.train(...)` in the loop, chained ones included
    (`model.to(device).train()`), which the mode view does not see as events."""
    from recipecheck.program.nodes import walk

    for n in walk(loop_node):
        if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value == "train":
            names = {x.value for x in walk(n.func.value) if isinstance(x, cst.Name)}
            attrs = {x.attr.value for x in walk(n.func.value) if isinstance(x, cst.Attribute)}
            if model in names or model in attrs:
                return True
    return False


def _training_forwards(ev, batch) -> dict:
    """The training forward of each model in this iteration: a model call with autograd on,
    not in a nested loop (an evaluation helper called from the loop is not the training pass)."""
    forwards = {}
    for n in batch.walk():
        key = ev.is_model_call(n) if n.event is not None else None
        if not key or key in forwards or n.grad_free:
            continue
        if next((a for a in n.ancestors() if a.loop is not None), None) is not batch:
            continue
        forwards[key] = n
    return forwards
