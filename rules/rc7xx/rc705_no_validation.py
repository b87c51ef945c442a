import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.evaluation import _EVAL_FUNC, analysis, split_kind
from recipecheck.rule import Context, Rule


def _held_out_mentioned(p, ev) -> bool:
    if ev.eval_loops or any(ms.mode == "eval" for ms in ev.mode_sets):
        return True
    for a in p.assignments:
        if split_kind(a.target):
            return True
    for cs in p.calls:
        if split_kind(cs.dotted) or (cs.dotted and _EVAL_FUNC.search(cs.dotted.rsplit(".", 1)[-1])):
            return True
        for a in cs.node.args:
            if a.keyword is not None and split_kind(a.keyword.value):
                return True
    for f in p.functions.values():
        if _EVAL_FUNC.search(f.name) or any(split_kind(x) for x in f.params):
            return True
        for loop in f.loops:
            if split_kind(loop.iter_text):
                return True
    return any(n.grad_free and ev.is_model_call(n) for n in ev._all_nodes if n.event is not None)


def _several(loop) -> bool:
    it = loop.iter
    if it is None:
        return True  # a while loop over epochs
    if isinstance(it, cst.Call) and getattr(it.func, "value", None) == "range" and it.args:
        last = it.args[0].value if len(it.args) == 1 else it.args[1].value
        if isinstance(last, cst.Integer):
            return int(last.evaluated_value) > 1
    return True


class NoValidation(Rule):
    """
    ## What it does
    Reports a script that trains for several epochs (an epoch loop around the batch loop)
    without any held-out evaluation: no evaluation loop, no `model.eval()`, no model call under
    `torch.no_grad()`, no function named like evaluate/validate/test, and no
    validation/test data (`val_loader`, `X_test`, `train_test_split`, ...) anywhere in the file.

    ## Why is this bad?
    Without a held-out metric there is no way to see overfitting, choose the number of epochs,
    compare hyperparameters or trust the final model: the training loss keeps going down while
    the model gets worse. Every recipe's sanity checks start with a validation split.

    Not measured (`recipecheck validate RC705`): protocol advice (train with a held-out split at
    all): there is no buggy/fixed pair of training runs to compare; what a missing validation
    split costs is what RC406 measures (the training metric's optimism over accuracy on new
    data).

    ## Known problems
    Evaluation done by another file or by a framework callback is not seen. Scripts with
    several optimizers (GANs) and reinforcement-learning loops (`env.step`) are skipped: they
    have no validation split by design, and so are self-supervised or unsupervised runs whose
    training loop throws the labels away (`for images, _ in loader`: SimCLR, MAE, SimMIM
    pretraining, evaluated afterwards by a linear probe or a fine-tune). Loops that call
    backward() in a file with no optimizer (Jacobians, gradients of an input) are not
    training. Off by default (info).

    ## Example
    ```python
    for epoch in range(100):
        for x, y in train_loader:
            ...
    torch.save(model.state_dict(), "model.pt")
    ```

    ## Use instead
    ```python
    for epoch in range(100):
        train_one_epoch(model, train_loader)
        val_loss = evaluate(model, val_loader)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Bengio (2012), "Practical recommendations for gradient-based training of deep architectures" (early stopping on a validation set).
    - Related runtime check: RT113 overfitting-detected (needs a validation metric to compare with).
    """

    CODE = "RC705"
    NAME = "no-validation"
    SEVERITY = Severity.INFO
    MESSAGE = "several epochs of training with no held-out evaluation"
    VALID = (
        "import torch\noptD = torch.optim.Adam(netD.parameters(), lr=2e-4)\n"
        "optG = torch.optim.Adam(netG.parameters(), lr=2e-4)\nfor epoch in range(25):\n"
        "    for real, _ in loader:\n        optD.zero_grad()\n        lossD(netD, real).backward()\n"
        "        optD.step()\n        optG.zero_grad()\n        lossG(netD, netG).backward()\n"
        "        optG.step()\n",
        "import torch\nfor epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    model.eval()\n"
        "    with torch.no_grad():\n        print(crit(model(X_val), y_val).item())\n    model.train()\n",
        "import torch\nfor x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n    opt.step()\n",
    )
    INVALID = (
        "import torch\nfor epoch in range(10):  # expect: RC705\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        ev = analysis(p)
        epochs = [n for n in ev.epoch_loops() if not any(a in ev.epoch_loops() for a in n.ancestors())]
        epochs = [n for n in epochs if _several(n.loop)]
        if not epochs or len(p.constructions("optimizer")) > 1 or _held_out_mentioned(p, ev):
            return
        if not p.constructions("optimizer") and not any(
                ev_.kind in ("step", "zero_grad") and p.role_of(f, ev_.receiver) == "optimizer"
                for f in p.functions.values() for ev_ in f.events):
            return  # backward without an optimizer (a Jacobian, an attack's input gradient): no training
        if any(cs.dotted and cs.dotted.endswith("env.step") or (cs.qualname or "").startswith(("gym", "gymnasium"))
               for cs in p.calls):
            return
        if _labels_discarded(ev):
            return  # self-supervised or unsupervised training: validated downstream (a probe)
        loop = epochs[0].loop
        anchor = loop.node.iter if loop.iter is not None else loop.node.test
        ctx.report(anchor, (
            "the model trains for several epochs and is never evaluated on held-out data: overfitting "
            "and the right number of epochs cannot be seen; split off a validation set and evaluate "
            "it every epoch (RC705)"))


def _labels_discarded(ev) -> bool:
    """Every training (batch) loop unpacks its batch and drops the label: `for x, _ in loader`,
    `for i, (img, mask, _) in enumerate(loader)`."""
    loops = ev.training_loops()
    return bool(loops) and all(_drops_label(n.loop.node) for n in loops)


def _drops_label(node) -> bool:
    if not isinstance(node, cst.For):
        return False
    target = node.target
    if isinstance(target, cst.Tuple) and len(target.elements) == 2 and \
            isinstance(target.elements[1].value, cst.Tuple):
        target = target.elements[1].value  # enumerate(loader): (i, batch)
    if not isinstance(target, cst.Tuple) or len(target.elements) < 2:
        return False
    last = target.elements[-1].value
    return isinstance(last, cst.Name) and last.value.startswith("_")
