from recipecheck.finding import Severity
from recipecheck.program.evaluation import analysis, forward_text
from recipecheck.rule import Context, Rule


def grad_disabled_by_call(p, el) -> bool:
    """`torch.set_grad_enabled(False)` called as a statement in a function on the loop's path."""
    fns = {id(el.node.loop.function)} | {id(ev.function) for ev in el.node.chain}
    for cs in p.calls:
        if cs.qualname in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled") and \
                id(cs.function) in fns and cs.node.args and \
                getattr(cs.node.args[0].value, "value", None) == "False":
            return True
    return False


class EvalWithoutNoGrad(Rule):
    """
    ## What it does
    Reports an evaluation loop (over a validation/test loader, or in a function named like
    `evaluate`/`validate`/`test`) whose model calls run with autograd on: no
    `torch.no_grad()` / `torch.inference_mode()` around the loop, around the call that reaches
    it, or as a decorator of a function on the way. Loops under `torch.set_grad_enabled(...)`
    (the "train/val phase" idiom) are left alone.

    ## Why is this bad?
    Every forward pass records an autograd graph that is never used: evaluation takes more
    memory (activations are kept until the output is freed) and time, so the evaluation batch
    size must be smaller than it could be. The metric itself is not wrong, hence info.

    Measured (`recipecheck validate RC703`, seeds 0-4): bytes saved for backward during one
    evaluation batch of 100 (2x256 MLP): 4.10e+05 [410400, 410400] with no torch.no_grad() vs 0
    [0, 0] with torch.no_grad() (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Gradients disabled another way (`torch.set_grad_enabled(False)` as a plain call,
    `requires_grad_(False)` on every parameter) are not seen. Off by default (info).

    ## Example
    ```python
    model.eval()
    for x, y in val_loader:
        correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Use instead
    ```python
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - PyTorch docs, `torch.no_grad`, `torch.inference_mode` ("Locally disabling gradient computation").
    """

    CODE = "RC703"
    NAME = "eval-without-no-grad"
    SEVERITY = Severity.INFO
    MESSAGE = "evaluation loop builds autograd graphs (no torch.no_grad())"
    VALID = (
        "import torch\nmodel.eval()\nwith torch.no_grad():\n    for x, y in val_loader:\n        model(x)\n",
        "import torch\n@torch.inference_mode()\ndef evaluate(model, loader):\n    model.eval()\n"
        "    for x, y in loader:\n        model(x)\nfor epoch in range(3):\n    evaluate(model, val_loader)\n",
        "import torch\nmodel.eval()\nfor x, y in val_loader:\n    with torch.no_grad():\n        out = model(x)\n",
        # generate() disables autograd itself
        "import torch\nmodel.eval()\nfor batch in val_loader:\n"
        "    out = model.generate(batch['input_ids'])\n",
    )
    INVALID = (
        "import torch\nmodel.eval()\nfor x, y in val_loader:  # expect: RC703\n"
        "    correct += (model(x).argmax(1) == y).sum().item()\n",
        "import torch\ndef validate(model, loader):\n    model.eval()\n"
        "    for x, y in loader:  # expect: RC703\n        loss = crit(model(x), y).item()\n"
        "for epoch in range(3):\n    validate(model, loader)\n",
    )

    def check(self, ctx: Context) -> None:
        ev = analysis(ctx.program)
        for el in ev.eval_loops:
            if "no_grad" in el.reasons or el.node.grad_controlled or el.forward.grad_controlled:
                continue
            if grad_disabled_by_call(ctx.program, el):
                continue
            if forward_text(el.forward.event) != el.forward.event.callee_text:
                continue  # generate() (Hugging Face) disables autograd itself
            loop = el.node.loop
            anchor = loop.node.iter if loop.iter is not None else loop.node.test
            ctx.report(anchor, (
                f"evaluation loop calls {el.forward.event.callee_text} with autograd on: every batch "
                "records a graph that is never used (memory and time); wrap it in torch.no_grad() or "
                "torch.inference_mode() (RC703)"))
