import re

import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule

_SCHEDULE_HINT = re.compile(r"sched|warmup|anneal|lr_decay|decay_lr|adjust_learning_rate|get_lr|lr_lambda", re.I)


def lr_changes_anywhere(p) -> bool:
    """Anything in the file that could change the LR during training."""
    if p.constructions("scheduler"):
        return True
    if any(ev.kind == "lr_set" for f in p.reachable_functions for ev in f.events):
        return True
    for cs in p.calls:
        d = cs.dotted or ""
        if _SCHEDULE_HINT.search(d.rsplit(".", 1)[-1]):
            return True
    for a in p.assignments:
        if _SCHEDULE_HINT.search(a.target.rsplit(".", 1)[-1]):
            return True
    return any(_SCHEDULE_HINT.search(name) for name in p.functions)


class NoLrAnnealing(Rule):
    """
    ## What it does
    Reports an optimizer whose learning rate never changes during the run: the file builds no
    LR scheduler, never writes `param_group["lr"]`, and calls no schedule helper (names like
    `adjust_learning_rate`, `get_lr`, `*scheduler*`, `*warmup*`).

    ## Why is this bad?
    With a constant LR, SGD-type training stalls at a noise floor set by the LR: the loss
    stops improving long before the model is as good as it can be. Decaying the LR (step
    decay, cosine, linear, 1/t) is one of the most reliable improvements to a recipe.

    Measured (`recipecheck validate RC205`, seeds 0-4): training loss after 20 epochs (SGD
    lr=0.3, momentum 0.9, batch 20, spiral): 0.181 [0.0831, 0.344] with constant LR vs 0.116
    [0.103, 0.138] with cosine annealing (mean [min, max]); the claim held on 4 of 5 seeds.

    ## Known problems
    Not reported on GAN recipes (optimizers for a generator and a discriminator keep a constant
    Adam LR by design) nor on short fine-tunes (a `from_pretrained`/`pretrained=True` model
    trained for at most 5 epochs).
    Not reported when the optimizer updates copies of data rather than a model
    (`Adam([target])` with `target = content.clone().requires_grad_(True)`: style transfer,
    an adversarial perturbation), nor on an optimizer factory (a function returning the optimizer in a file that
    never steps one): the caller that trains with it sets the schedule.
    Schedules applied by a framework the file does not show (a YAML config, a Trainer built
    elsewhere) are not seen. Off by default (info).

    ## Example
    ```python
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(100):
        train_one_epoch(...)
    ```

    ## Use instead
    ```python
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
    for epoch in range(100):
        train_one_epoch(...)
        scheduler.step()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Bengio (2012), "Practical recommendations for gradient-based training of deep architectures".
    - Loshchilov and Hutter (2017), "SGDR: Stochastic Gradient Descent with Warm Restarts".
    """

    CODE = "RC205"
    NAME = "no-lr-annealing"
    SEVERITY = Severity.INFO
    MESSAGE = "the learning rate is constant for the whole run"
    VALID = (
        # a GAN recipe: constant Adam 2e-4, betas (0.5, 0.999), by design
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'generator = Generator()\n'
        'discriminator = Discriminator()\n'
        'adversarial_loss = nn.BCELoss()\n'
        'optimizer_G = torch.optim.Adam(generator.parameters(), lr=0.0002, betas=(0.5, 0.999))\n'
        'optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=0.0002, betas=(0.5, 0.999))\n'
        'for epoch in range(200):\n'
        '    for imgs, _ in dataloader:\n'
        '        valid = torch.ones(imgs.size(0), 1)\n'
        '        fake = torch.zeros(imgs.size(0), 1)\n'
        '        z = torch.randn(imgs.size(0), 100)\n'
        '        optimizer_G.zero_grad()\n'
        '        gen_imgs = generator(z)\n'
        '        g_loss = adversarial_loss(discriminator(gen_imgs), valid)\n'
        '        g_loss.backward()\n'
        '        optimizer_G.step()\n'
        '        optimizer_D.zero_grad()\n'
        '        real_loss = adversarial_loss(discriminator(imgs), valid)\n'
        '        fake_loss = adversarial_loss(discriminator(gen_imgs.detach()), fake)\n'
        '        d_loss = (real_loss + fake_loss) / 2\n'
        '        d_loss.backward()\n'
        '        optimizer_D.step()\n'
        ),
        # a short fine-tune of a pretrained model (3 epochs)
        (
        'import torch\n'
        'from transformers import AutoModelForSequenceClassification\n'
        '\n'
        'model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)\n'
        'optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)\n'
        'for epoch in range(3):\n'
        '    model.train()\n'
        '    for batch in train_loader:\n'
        '        optimizer.zero_grad()\n'
        '        out = model(**batch)\n'
        '        out.loss.backward()\n'
        '        optimizer.step()\n'
        ),
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, 30)\n"
        "for epoch in range(90):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    sched.step()\n",
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=6e-4)\nfor it in range(1000):\n"
        "    for g in opt.param_groups:\n        g['lr'] = get_lr(it)\n    opt.zero_grad()\n"
        "    model(x).backward()\n    opt.step()\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: RC205\n"
        "for epoch in range(90):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        opts = p.constructions("optimizer")
        if not opts or not p.batch_loops or lr_changes_anywhere(p):
            return
        for opt in opts:
            if any(a.function is opt.function and a.loop is not None and a.value is opt.node
                   for a in p.assignments):
                return  # rebuilt inside a loop: the LR may change between rebuilds
        if _adversarial(opts, _stepped(p)) or _short_fine_tune(p):
            return  # GAN recipes keep a constant Adam LR by design; a few epochs from pretrained
        if all(_returned(o) for o in opts) and not _steps_an_optimizer(p):
            return  # an optimizer factory: the caller that trains with it sets the schedule
        if all(_optimizes_data(o) for o in opts):
            return  # an image or a perturbation optimized (style transfer, CW attack): no model
        opt = opts[0]
        lr = opt.arg("lr", 1)
        lr_txt = f" (lr={ctx.code(lr)})" if lr is not None else ""
        target = opt.target or dotted_name(opt.node.func) or "the optimizer"
        ctx.report(opt.node, (
            f"{target} keeps one learning rate{lr_txt} for the whole run: nothing decays it; add a "
            "schedule (step decay, cosine or linear) to reach a lower loss (RC205)"))


_GAN_NAME = re.compile(r"(^|_)(g|d|gen|disc|generator|discriminator|critic|netg|netd|"
                       r"g_ab|g_ba|d_a|d_b|ge|e)(_|$|\d)|generator|discriminator|critic", re.I)


def _adversarial(opts, stepped=()) -> bool:
    """Two or more optimizers for a generator and a discriminator (optimizer_G / optimizer_D,
    netG / netD, or one construction in a loop over the nets, stepped as
    `optims.generator.step()` / `optims.discriminator.step()`): a GAN recipe, whose published
    LR is a constant (Adam 2e-4, betas 0.5)."""
    names = set()
    for text in [t for o in opts for t in (o.target or "", o.params_owner or "")] + list(stepped):
        leaf = text.rsplit(".", 1)[-1]
        if leaf and _GAN_NAME.search(leaf):
            names.add(leaf.lower())
    gen = any(re.search(r"(^|_)(g|ge|gen|netg)($|_|\d)|generator", n) for n in names)
    disc = any(re.search(r"(^|_)(d|disc|netd)($|_|\d)|discriminator|critic", n) for n in names)
    return (len(opts) >= 2 or len(set(stepped)) >= 2) and gen and disc


def _stepped(p) -> list[str]:
    """Receivers of the optimizer steps of the file (`optims.generator`, `opt_d`)."""
    return [ev.receiver for f in p.functions.values() for ev in f.events
            if ev.kind == "step" and ev.receiver and p.role_of(f, ev.receiver) != "scheduler"]


def _short_fine_tune(p) -> bool:
    """A pretrained model trained for at most a few epochs (a fine-tune)."""
    from recipecheck.program.values import number_of as number
    pretrained = any((cs.qualname or cs.dotted or "").endswith("from_pretrained")
                     or any(a.keyword is not None and a.keyword.value in ("pretrained", "weights")
                            for a in cs.node.args)
                     for cs in p.calls)
    if not pretrained:
        return False
    counts = []
    for xl in p.epoch_loops:
        it = xl.loop.iter
        if isinstance(it, cst.Call) and dotted_name(it.func) == "range" and it.args:
            counts.append(number(p, xl.loop.function, it.args[-1].value if len(it.args) == 1
                                 else it.args[1].value))
    return bool(counts) and all(c is not None and c <= 5 for c in counts)


def _returned(opt) -> bool:
    """The optimizer is built to be returned (`def smart_optimizer(...): ... return optimizer`)."""
    for r in opt.function.returns:
        if r is opt.node or (opt.target and dotted_name(r) == opt.target):
            return True
    return False


def _steps_an_optimizer(p) -> bool:
    return any(ev.kind == "step" and p.role_of(f, ev.receiver) == "optimizer"
               for f in p.functions.values() for ev in f.events)


_COPIES = ("clone", "detach", "requires_grad_", "to", "cuda", "float", "contiguous")


def _optimizes_data(opt) -> bool:
    """The optimizer's parameters are a literal list of tensors copied from data
    (`[target]` with `target = content_img.clone().requires_grad_(True)`, `[w]` with
    `w = to_tanh_space(images).detach()`), not a model's parameters nor fresh tensors
    (`torch.zeros(..., requires_grad=True)` is a hand-written model)."""
    first = opt.arg("params", 0)
    if not isinstance(first, (cst.List, cst.Tuple)) or not first.elements:
        return False
    for el in first.elements:
        if not isinstance(el.value, cst.Name):
            return False
        binds = [a.value for a in opt.function.bindings(el.value.value)]
        if not binds or not all(_copy_of_data(v) for v in binds):
            return False
    return True


def _copy_of_data(v) -> bool:
    if not (isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute) and v.func.attr.value in _COPIES):
        return False
    while isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute) and v.func.attr.value in _COPIES:
        v = v.func.value
    # the copied tensor is data (a name, or a transform of one), not a factory call like torch.randn
    if isinstance(v, cst.Call):
        leaf = (dotted_name(v.func) or "").rsplit(".", 1)[-1]
        return bool(leaf) and leaf not in _FACTORIES and bool(v.args)
    return isinstance(v, (cst.Name, cst.Attribute, cst.Subscript))


_FACTORIES = {"zeros", "ones", "randn", "rand", "randint", "empty", "full", "eye", "arange", "linspace",
              "tensor", "Tensor", "FloatTensor", "normal", "zeros_like", "ones_like", "randn_like",
              "rand_like", "empty_like", "full_like", "Parameter", "from_numpy", "as_tensor"}
