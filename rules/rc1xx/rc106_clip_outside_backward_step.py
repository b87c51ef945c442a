from recipecheck.finding import Severity
from recipecheck.program.accumulation import exclusive, loop_guards
from recipecheck.rule import Context, Rule


class ClipOutsideBackwardStep(Rule):
    """
    ## What it does
    Flags `clip_grad_norm_` / `clip_grad_value_` called before `backward()` (no gradient of
    this iteration exists yet) or after `optimizer.step()` (the update already used the
    unclipped gradients) in the same iteration.

    ## Why is this bad?
    Clipping only works between the backward pass that produces the gradients and the step
    that consumes them. Anywhere else it clips stale or already-used gradients, so the run
    has no protection against exploding gradients although the code says it has. With AMP,
    call `scaler.unscale_(optimizer)` first, then clip, then `scaler.step(optimizer)`.

    Measured (`recipecheck validate RC106`, seeds 0-4): largest update norm / (lr x max_norm)
    over 30 SGD steps: 11.3 [8.61, 12.6] with clip after step() vs 1 [1, 1] with clip between
    backward() and step() (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Only clipping reached in the same loop iteration as the backward/step is analysed.

    ## Example
    ```python
    loss.backward()
    optimizer.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    ```

    ## Use instead
    ```python
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Pascanu, Mikolov, Bengio (2013), "On the difficulty of training recurrent neural networks".
    - PyTorch AMP examples, "Gradient clipping" (unscale_ before clipping).
    - Runtime twin: RT108 vanishing-or-exploding-gradients.
    """

    CODE = "RC106"
    NAME = "clip-outside-backward-step"
    SEVERITY = Severity.WARNING
    MESSAGE = "gradient clipping outside backward()..step() has no effect on the update"
    STATIC_TWIN = "RT108"
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n    opt.step()\n",
        "import torch\nfrom torch.nn.utils import clip_grad_norm_\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nscaler = torch.amp.GradScaler()\n"
        "for i, (x, y) in enumerate(loader):\n    scaler.scale(crit(model(x), y) / 2).backward()\n"
        "    if (i + 1) % 2 == 0:\n        scaler.unscale_(opt)\n        clip_grad_norm_(model.parameters(), 1.0)\n"
        "        scaler.step(opt)\n        scaler.update()\n        opt.zero_grad()\n",
        # a multi-task loss balancer whose backward() runs backward, then clips
        "import torch\nclass Balancer:\n    def __init__(self, max_norm):\n        self.max_norm = max_norm\n"
        "    def backward(self, losses, params):\n        loss = losses.sum()\n        loss.backward()\n"
        "        torch.nn.utils.clip_grad_norm_(params, self.max_norm)\n        return loss\n"
        "bal = Balancer(1.0)\nopt = torch.optim.Adam(model.parameters())\n"
        "for x, y in loader:\n    opt.zero_grad()\n    bal.backward(crit(model(x), y), model.parameters())\n"
        "    opt.step()\n",
    )
    INVALID = (
        # the same balancer clipping before its own backward(): the clip sees zeroed gradients
        "import torch\nclass Balancer:\n    def __init__(self, max_norm):\n        self.max_norm = max_norm\n"
        "    def backward(self, losses, params):\n        loss = losses.sum()\n"
        "        torch.nn.utils.clip_grad_norm_(params, self.max_norm)  # expect: RC106\n"
        "        loss.backward()\n        return loss\n"
        "bal = Balancer(1.0)\nopt = torch.optim.Adam(model.parameters())\n"
        "for x, y in loader:\n    opt.zero_grad()\n    bal.backward(crit(model(x), y), model.parameters())\n"
        "    opt.step()\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n    opt.step()\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: RC106\n",
        "import torch.nn as nn\nimport torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n"
        "    nn.utils.clip_grad_value_(model.parameters(), 0.5)  # expect: RC106\n"
        "    crit(model(x), y).backward()\n    opt.step()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for xl in p.all_xloops():
            seq = [e for e, _ in xl.walk()]
            direct = {id(e) for e in xl.direct()}
            kinds = []
            for e in seq:
                if e.event.kind == "backward":
                    kinds.append("b")
                elif p.optimizer_step_target(e.event):
                    kinds.append("s")
                elif e.event.kind == "clip":
                    kinds.append("c")
                else:
                    kinds.append("")
            if "b" not in kinds or "s" not in kinds:
                continue
            for j, e in enumerate(seq):
                if kinds[j] != "c" or id(e) not in direct:
                    continue
                together = _runs_with(xl, seq, e)
                prev_b = max((i for i in range(j) if kinds[i] == "b" and together(i)), default=None)
                prev_s = max((i for i in range(j) if kinds[i] == "s" and together(i)), default=None)
                next_b = next((i for i in range(j + 1, len(seq)) if kinds[i] == "b" and together(i)), None)
                node = e.event.node
                if prev_b is None and next_b is not None:
                    where = "before backward()"
                elif prev_s is not None and (prev_b is None or prev_b < prev_s):
                    where = "after optimizer.step()"
                else:
                    continue
                ctx.report(node, (
                    f"{ctx.code(node).split('(')[0]}(...) runs {where} in this iteration, so the "
                    "update uses unclipped gradients; clip between backward() and step() (RC106)"))


def _runs_with(xl, seq, e):
    """Events in the other branch of an `if` (AMP vs plain step) never run with the clip."""
    mine = loop_guards(xl, e)
    return lambda i: not exclusive(loop_guards(xl, seq[i]), mine)
