from recipecheck.finding import Severity
from recipecheck.program.accumulation import accumulations, is_accumulation_gate, loop_guards
from recipecheck.rule import Context, Rule


class ClipPerMicroBatch(Rule):
    """
    ## What it does
    Flags gradient clipping (`clip_grad_norm_`, `clip_grad_value_`) that runs on every
    micro-batch of a gradient-accumulation loop, outside the branch that steps the optimizer
    (`if (i + 1) % k == 0:`), or inside an inner loop over micro-batches when the step comes
    after that loop.

    ## Why is this bad?
    Clipping is meant to bound the norm of the gradient the update uses: the sum over all k
    micro-batches. Clipping each partial sum instead bounds something else: early
    micro-batches are clipped again and again as later ones are added, large contributions
    are cut before they can cancel, and the final norm can still be up to k times the
    threshold, so the update neither matches the unaccumulated recipe nor respects the
    threshold. Clipping k times also costs k norm computations per update.

    Measured (`recipecheck validate RC109`, seeds 0-4): relative error of the update to the
    clipped large-batch update (k=4, max_norm=0.1): 0.36 [0.123, 0.632] with clip every
    micro-batch vs 6.81e-07 [3.78e-07, 1.34e-06] with clip once before step() (mean [min, max]);
    the claim held on 5 of 5 seeds.

    ## Known problems
    Clipping inside a helper the linter cannot follow is not seen. With AMP, unscale before
    clipping: `scaler.unscale_(optimizer)` belongs in the step branch too.

    ## Example
    ```python
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    if (i + 1) % accum_steps == 0:
        optimizer.step()
        optimizer.zero_grad()
    ```

    ## Use instead
    ```python
    loss.backward()
    if (i + 1) % accum_steps == 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Hugging Face Transformers `Trainer` (clips once per optimizer step, after accumulation).
    - Pascanu et al., "On the difficulty of training recurrent neural networks", ICML 2013.
    """

    CODE = "RC109"
    NAME = "clip-per-micro-batch"
    SEVERITY = Severity.WARNING
    MESSAGE = "gradient clipping runs on every micro-batch instead of once before step()"
    VALID = (
        "import torch\nopt = torch.optim.AdamW(model.parameters())\n"
        "for i, batch in enumerate(loader):\n    loss = model(batch) / accum\n    loss.backward()\n"
        "    if (i + 1) % accum == 0:\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "        opt.step()\n        opt.zero_grad()\n",
        # nanoGPT: clip after the micro-step loop
        "import torch\nopt = torch.optim.AdamW(model.parameters())\nscaler = torch.amp.GradScaler()\n"
        "while True:\n    for micro_step in range(grad_accum):\n        loss = model(X) / grad_accum\n"
        "        scaler.scale(loss).backward()\n    scaler.unscale_(opt)\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n    scaler.step(opt)\n"
        "    scaler.update()\n    opt.zero_grad(set_to_none=True)\n",
        # no accumulation: clipping every step is the normal recipe
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)\n    opt.step()\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.AdamW(model.parameters())\n"
        "for i, batch in enumerate(loader):\n    loss = model(batch) / accum\n    loss.backward()\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: RC109\n"
        "    if (i + 1) % accum == 0:\n        opt.step()\n        opt.zero_grad()\n",
        "import torch\nfrom torch.nn.utils import clip_grad_norm_\n"
        "opt = torch.optim.AdamW(model.parameters())\nfor it in range(max_iters):\n"
        "    for micro in range(grad_accum):\n        loss = model(x) / grad_accum\n        loss.backward()\n"
        "        clip_grad_norm_(model.parameters(), 1.0)  # expect: RC109\n"
        "    opt.step()\n    opt.zero_grad()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for acc in accumulations(p):
            for e in acc.loop.direct():
                if e.event.kind != "clip":
                    continue
                if acc.shape == "gated" and any(is_accumulation_gate(g, e) for g in loop_guards(acc.loop, e)):
                    continue  # clipped in the step's branch
                node = e.site_in(acc.loop.loop.function)
                step = acc.steps[0].site_in(acc.step_loop.loop.function)
                ctx.report(node, (
                    f"{ctx.code(node).split('(')[0]}(...) runs on every micro-batch while gradients "
                    f"accumulate until `{ctx.code(step)}`: it clips partial sums, not the gradient the "
                    "update uses; clip once, right before step() (RC109)"))
