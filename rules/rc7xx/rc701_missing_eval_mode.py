import re

import libcst as cst

from recipecheck.program.nodes import iter_children

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import build_program
from recipecheck.program.evaluation import NO_GRAD, analysis, insert_before_transform
from recipecheck.rule import Context, FixSpec, Rule


def _leaves_training_fixable(ctx: Context, transform) -> bool:
    """After inserting eval(), training must still run in train mode, or RC702 must be able to
    fix it (eval inside the batch loop with no train() after it would make things worse)."""
    from recipecheck.rule import Context as _Ctx
    from recipecheck.rules.rc7xx.rc702_missing_train_mode import MissingTrainMode

    try:
        new = transform(ctx.module)
        module = cst.parse_module(new.code)
        after = _Ctx(ctx.path, module.code, module, build_program(module))
        rule = MissingTrainMode()
        after._rule = rule
        rule.check(after)
    except Exception:
        return False
    return all(r.fix is not None for r in after.reports)


def _over_training_data(el) -> bool:
    loop = el.node.loop
    text = el.node.canon(loop.iter_text) if loop.iter_text else None
    if text is None and loop.iter is not None:
        text = " ".join(n for n in _iter_names(loop.iter))
    return bool(text) and any(t.startswith("train") for t in re.split(r"[^a-z0-9]+|_", text.lower()))


def _iter_names(expr):
    stack = [expr]
    while stack:
        n = stack.pop()
        d = dotted_name(n)
        if d is not None:
            yield d
            continue
        stack.extend(iter_children(n))


class MissingEvalMode(Rule):
    """
    ## What it does
    Flags an evaluation loop that runs while the model is still in training mode. An eval loop
    is a loop that calls the model without calling `backward()` and is under `torch.no_grad()`
    / `torch.inference_mode()` (a `with`, or a decorator on the function), iterates a
    validation/test loader (`val_loader`, `loaders["test"]`, `DataLoader(val_ds)`,
    `MNIST(train=False)`), or sits in a function named like `evaluate`/`validate`/`test`. The
    rule walks back from the loop, through helper calls (`evaluate(model, ...)` called from the
    epoch loop), and through the end of the enclosing loop body (what later epochs see): if
    the last `model.eval()` / `model.train()` reached is `model.train()`, or nothing sets the
    mode of a model that was built or trained in the file, the loop is reported.

    ## Why is this bad?
    In training mode Dropout keeps dropping units and BatchNorm normalizes with the statistics
    of the evaluation batch (and updates its running averages with evaluation data). The
    reported metric is noisier and worse than the model's real quality, depends on the eval
    batch size, and the BatchNorm running statistics drift towards the validation set. The
    runtime twin RT111 sees this while the run executes.

    Measured (`recipecheck validate RC701`, seeds 0-4): range of the validation accuracy over 10
    evaluations: 0.0667 [0.037, 0.0815] with no model.eval() vs 0 [0, 0] with model.eval() (mean
    [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Mode changes the linter cannot see (a callback framework, `model.apply(fn)`, a helper in
    another file) are not taken into account. A conditional `model.eval()` counts as reached.
    A model built in the file only from layers that behave the same in both modes (no
    Dropout, BatchNorm, InstanceNorm, RNN/Transformer layers) is not reported, since the mode
    changes nothing; a custom layer branching on `self.training` is not recognized.
    Models loaded with `from_pretrained` (already in eval mode) are only checked after training.

    ## Example
    ```python
    def evaluate(model, loader):
        with torch.no_grad():
            for x, y in loader:
                correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Use instead
    ```python
    def evaluate(model, loader):
        model.eval()
        with torch.no_grad():
            for x, y in loader:
                correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Options
    None.

    ## Fix safety
    Safe: inserts `model.eval()` (with the name the loop uses) right before the loop, or before
    the `with torch.no_grad():` that holds it. Training code that then needs `model.train()`
    again is reported by RC702, whose fix adds it; when RC702 could not fix it (evaluation
    inside the batch loop itself), no fix is offered.

    ## References
    - PyTorch docs, `nn.Module.eval` and "Saving and loading models" (call `model.eval()` before inference).
    - Srivastava et al. (2014), "Dropout"; Ioffe and Szegedy (2015), "Batch Normalization".
    - Runtime twin: RT111 train-mode-during-eval.
    """

    CODE = "RC701"
    NAME = "missing-eval-mode"
    SEVERITY = Severity.ERROR
    MESSAGE = "evaluation loop runs with the model in training mode"
    FIX = "safe"
    STATIC_TWIN = "RT111"
    VALID = (
        # the classic pair of helpers, mode set in each
        "import torch\n"
        "def train(model, loader, opt):\n    model.train()\n    for x, y in loader:\n"
        "        opt.zero_grad()\n        model(x).sum().backward()\n        opt.step()\n"
        "def test(model, loader):\n    model.eval()\n    with torch.no_grad():\n"
        "        for x, y in loader:\n            model(x)\n"
        "model = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "for epoch in range(10):\n    train(model, train_loader, opt)\n    test(model, val_loader)\n",
        # nanoGPT: @torch.no_grad() estimate_loss() with eval()/train() inside
        "import torch\n@torch.no_grad()\ndef estimate_loss():\n    model.eval()\n"
        "    for k in range(10):\n        model(*get_batch('val'))\n    model.train()\n"
        "for it in range(1000):\n    if it % 100 == 0:\n        estimate_loss()\n"
        "    loss = model(x)\n    loss.backward()\n    opt.step()\n    opt.zero_grad()\n",
        # the transfer-learning tutorial: one loop for both phases
        "import torch\nfor epoch in range(25):\n    for phase in ['train', 'val']:\n"
        "        if phase == 'train':\n            model.train()\n        else:\n            model.eval()\n"
        "        for x, y in loaders[phase]:\n            opt.zero_grad()\n"
        "            with torch.set_grad_enabled(phase == 'train'):\n                loss = crit(model(x), y)\n"
        "                if phase == 'train':\n                    loss.backward()\n                    opt.step()\n",
        # precise-BN: recompute BatchNorm statistics in train mode over the training data
        "import torch\nmodel = Net()\nmodel.train()\nwith torch.no_grad():\n    for x, _ in train_loader:\n"
        "        model(x)\n",
        # an EMA update under no_grad is not an evaluation
        "import torch\nwith torch.no_grad():\n    for ema_p, p in zip(ema.parameters(), model.parameters()):\n"
        "        ema_p.mul_(0.999).add_(p, alpha=0.001)\n",
    )
    INVALID = (
        "import torch\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "for epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    with torch.no_grad():\n"
        "        for x, y in val_loader:  # expect: RC701\n            acc += (model(x).argmax(1) == y).sum().item()\n",
        "import torch\n"
        "def evaluate(net, loader):\n    total = 0\n    for x, y in loader:  # expect: RC701\n"
        "        total += (net(x).argmax(1) == y).sum().item()\n    return total\n"
        "def train_one_epoch(model, loader, opt):\n    model.train()\n    for x, y in loader:\n"
        "        opt.zero_grad()\n        crit(model(x), y).backward()\n        opt.step()\n"
        "model = Net()\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
        "for epoch in range(5):\n    train_one_epoch(model, train_loader, opt)\n    evaluate(model, val_loader)\n",
    )

    def check(self, ctx: Context) -> None:
        ev = analysis(ctx.program)
        reported: set[int] = set()
        for el in ev.eval_loops:
            if id(el.node.loop) in reported:
                continue
            if el.reasons == ("no_grad",) and _over_training_data(el):
                continue  # precise-BN style recalibration: train mode over train data on purpose
            for model in el.models:
                if not ev.mode_matters(model):
                    continue  # no Dropout/BatchNorm: both modes compute the same thing
                bad = False
                for sc in ev.scenarios(el.node, model):
                    modes = sc.modes()
                    if "eval" in modes or "unknown" in modes:
                        continue
                    if "train" in modes or ("default" in modes and ev.default_is_train(el.node.root, model)):
                        bad = True
                        break
                if not bad:
                    continue
                reported.add(id(el.node.loop))
                loop = el.node.loop
                name = self._local_name(ev, el, model)
                fix = None
                if name is not None:
                    tr = insert_before_transform(loop.function.node, loop.node, f"{name}.eval()\n",
                                                 frozenset(NO_GRAD), ctx.program.imports.resolve)
                    if tr is not None and _leaves_training_fixable(ctx, tr):
                        fix = FixSpec("safe", f"call {name}.eval() before the evaluation loop", transform=tr)
                shown = name or model
                where = " over held-out data" if el.split else ""
                anchor = loop.node.iter if loop.iter is not None else loop.node.test
                ctx.report(anchor, (
                    f"evaluation loop{where} runs with {shown} in training mode: Dropout stays on and "
                    f"BatchNorm uses batch statistics, so the metric is wrong; call {shown}.eval() before "
                    f"it (RC701, runtime twin RT111)"), fix=fix)
                break

    @staticmethod
    def _local_name(ev, el, model):
        for n in [el.forward, *el.node.walk()]:
            if n.event is None or n.chain != el.node.chain:
                continue
            if ev.is_model_call(n) == model:
                text = n.event.callee_text
                return text if text and "(" not in text else None
        return None
