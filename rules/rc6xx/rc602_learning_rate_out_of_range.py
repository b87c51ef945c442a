import libcst as cst
from recipecheck.rule import Field

from recipecheck.finding import Severity
from recipecheck.program.hparams import opt_arg, small_model_context, tiny_network
from recipecheck.program.values import ALL, hparam, judge, optimizer_sites, settled_in_owner
from recipecheck.rule import Context, Rule, RuleOptions
from recipecheck.rules.rc6xx.rc605_rnn_without_grad_clipping import _is_rnn, clips_gradients

ADAPTIVE = ("Adam", "AdamW", "NAdam", "RAdam", "Adamax")
# schedulers that replace the optimizer's lr with their own max_lr / base_lr
_TINY_FACTOR = 5  # how far above the limit a tiny network's LR is still a published value
_OVERRIDES = ("OneCycleLR", "CyclicLR", "LambdaLR", "MultiplicativeLR")  # they set or scale the LR


class Options(RuleOptions):
    max_sgd_lr: float = Field(1.0, alias="max-sgd-lr", gt=0)
    max_adaptive_lr: float = Field(1e-2, alias="max-adaptive-lr", gt=0)
    min_adaptive_lr: float = Field(1e-6, alias="min-adaptive-lr", ge=0)


class LearningRateOutOfRange(Rule):
    """
    ## What it does
    Flags an optimizer whose learning rate, as the file states it (a literal, a name bound to
    one, an argparse default, a config-class field), is far outside the range that works for
    that optimizer: SGD above `max-sgd-lr` (1), Adam/AdamW/NAdam/RAdam/Adamax above
    `max-adaptive-lr` (1e-2) or below `min-adaptive-lr` (1e-6).

    ## Why is this bad?
    SGD above 1 and Adam above 1e-2 diverge or bounce for almost every network: Adam's step is
    about `lr` per weight whatever the gradient scale, so 0.1 moves every weight by 0.1 per
    step. Below 1e-6 Adam barely moves and the run wastes its budget. An SGD-sized LR passed
    to Adam (`Adam(lr=0.1)`) after switching optimizers is the usual cause.

    Measured (`recipecheck validate RC602`, seeds 0-4): training loss after 200 SGD steps (1e6:
    non-finite): 2.15 [1.43, 3.64] with SGD lr=5 vs 0.272 [0.248, 0.295] with SGD lr=0.1 (mean
    [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    For a reinforcement-learning policy, a linear probe on frozen features or a layer trained by
    its own optimizer (forward-forward), where such LRs are published and work, it reports at `info`;
    so it does for a tiny network (every layer the file builds 64 units or fewer) whose LR is at
    most 5 times the limit (toy regressions and RNN demos train with Adam at 0.02-0.03).
    The LR is followed through the project: a name bound in either branch of an `if` or a
    conditional expression, a function parameter to the arguments of its calls, an argparse
    default, a config field, and an optimizer built in another module (`model.configure_optimizers()`
    in model.py, a Lightning module's `configure_optimizers`), reported at the call in the
    linted file. It reports at the rule's severity only when every possible value is out of
    range; when only some are (`lr = 10.0 if args.big else 1e-3`), at `info`, naming the
    condition; so does an LR that is a parameter's default in a function no analysed code
    calls (a caller elsewhere may pass another). Values computed at run time (`lr = base_lr * world_size`) are not checked. An optimizer
    driven by OneCycleLR/CyclicLR (which set the LR themselves) or by LambdaLR/MultiplicativeLR
    (whose factor makes the base LR a scale, as in the Noam schedule `Adam(lr=1.0)` times
    `d_model**-0.5 * ...`) is skipped, and so is SGD in a
    file that trains an RNN with gradient clipping (word-level language models use lr=20 to
    30). When one `--lr` feeds alternative optimizers (SGD or Adam by flag), it is not checked.

    ## Example
    ```python
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    ```

    ## Use instead
    ```python
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ```

    ## Options
    - `max-sgd-lr` (float, default 1.0): largest SGD learning rate not reported.
    - `max-adaptive-lr` (float, default 0.01): largest Adam-family learning rate not reported.
    - `min-adaptive-lr` (float, default 1e-6): smallest Adam-family learning rate not reported.

    ## Fix safety
    No automatic fix.

    ## References
    - Kingma and Ba (2015), "Adam: A Method for Stochastic Optimization" (default lr 1e-3).
    - Bengio (2012), "Practical recommendations for gradient-based training of deep architectures".
    - Runtime twins: RT103 update-ratio-off, RT112 loss-not-decreasing.
    """

    CODE = "RC602"
    NAME = "learning-rate-out-of-range"
    SEVERITY = Severity.WARNING
    MESSAGE = "learning rate far outside the usual range for this optimizer"
    STATIC_TWIN = "RT103"
    Options = Options
    VALID = (
        "import torch\nimport torch.nn as nn\nrnn = nn.LSTM(200, 200, 2)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=20)\nfor x, y in batches:\n    opt.zero_grad()\n"
        "    crit(model(x), y).backward()\n    nn.utils.clip_grad_norm_(model.parameters(), 0.25)\n"
        "    opt.step()\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=3e-4)\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=1000)\n",
        # Noam: lr=1.0 is a scale for the LambdaLR factor
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98))\n"
        "sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 512 ** -0.5 * min((s + 1) ** -0.5, (s + 1) * 4000 ** -1.5))\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=args.lr)\n",
        # one --lr for alternative optimizers: the user picks both together
        "import argparse\nimport torch\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--lr', type=float, default=0.1)\nparser.add_argument('--optim', default='sgd')\n"
        "args = parser.parse_args()\nif args.optim == 'sgd':\n"
        "    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)\nelse:\n"
        "    opt = torch.optim.Adam(model.parameters(), lr=args.lr)\n",
        # the bad value belongs to the other branch
        "import torch\nif args.sgd:\n    lr = 0.1\n    opt = torch.optim.SGD(model.parameters(), lr=lr)\n"
        "else:\n    lr = 1e-3\n    opt = torch.optim.Adam(model.parameters(), lr=lr)\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=0.1)  # expect: RC602\n",
        "import torch\nlr = 5.0\nopt = torch.optim.SGD(model.parameters(), lr, momentum=0.9)  # expect: RC602\n",
        "import argparse\nimport torch\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--lr', type=float, default=1e-8)\nargs = parser.parse_args()\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=args.lr)  # expect: RC602\n",
        # one branch only: reported at info, naming the condition
        "import torch\nlr = 10.0 if args.big else 1e-3\n"
        "opt = torch.optim.Adam(model.parameters(), lr=lr)  # expect: RC602\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        o = self.options
        sites = optimizer_sites(p)
        rnn_clipped = None
        for site in sites:
            c = site.construction
            if _schedule_overrides(p, site):
                continue
            lr_expr = opt_arg(c, "lr")
            if lr_expr is None:
                continue
            lr_text = _code(lr_expr)
            if any(other is not site and other.name != c.name and opt_arg(other.construction, "lr") is not None
                   and other.construction.function is c.function
                   and _code(opt_arg(other.construction, "lr")) == lr_text for other in sites):
                continue  # one --lr shared by alternative optimizers: the user picks both together
            value = hparam(p, site, "lr")
            if c.name == "SGD":
                j = judge(value, lambda v: v > o.max_sgd_lr)
                if not j or settled_in_owner(p, site, "lr", lambda v: v > o.max_sgd_lr):
                    continue
                if rnn_clipped is None:
                    rnn_clipped = any(_is_rnn(cs.qualname) for cs in p.calls) and clips_gradients(p)
                if rnn_clipped:
                    continue  # word-level RNN LMs: SGD lr=20 with clipping is the reference recipe
                why = (f"SGD with lr={j.first:g} (above {o.max_sgd_lr:g}) takes steps larger than the weights: "
                       "training diverges or oscillates; use 0.1 or less (scale with the batch size and warm up)")
            elif c.name in ADAPTIVE:
                out_of_range = lambda v: v > o.max_adaptive_lr or v < o.min_adaptive_lr  # noqa: E731
                j = judge(value, out_of_range)
                if not j or settled_in_owner(p, site, "lr", out_of_range):
                    continue
                if j.first > o.max_adaptive_lr:
                    why = (f"{c.name} with lr={j.first:g} (above {o.max_adaptive_lr:g}) moves every weight by "
                           "about lr per step whatever its gradient scale: the run diverges or bounces; "
                           "use 1e-4 to 1e-3")
                else:
                    why = (f"{c.name} with lr={j.first:g} (below {o.min_adaptive_lr:g}) barely changes the "
                           "weights: the run wastes its budget; use 1e-5 to 1e-3")
            else:
                continue
            if site.via:
                why = f"{why} (the optimizer is {site.via})"
            small = small_model_context(p, c)
            limit = o.max_sgd_lr if c.name == "SGD" else o.max_adaptive_lr
            if not small and j.first > limit and j.first <= _TINY_FACTOR * limit and tiny_network(p):
                # toy regressions and RNN demos publish Adam at 0.02-0.03; 0.25 is still a bug
                small = "tiny networks (every layer 64 units or fewer)"
            if small:
                ctx.report(site.report, f"{why}; values like this are published for {small}, so check "
                           "it rather than change it (RC602, runtime twin RT103)",
                           severity=Severity.INFO)
            elif j.verdict != ALL:
                ctx.report(site.report, f"{why}; only {j.when()} (RC602, runtime twin RT103)",
                           severity=Severity.INFO)
            else:
                ctx.report(site.report, f"{why} (RC602, runtime twin RT103)")


def _code(node) -> str:
    return cst.Module([]).code_for_node(node)


def _schedule_overrides(p, site) -> bool:
    """A scheduler that sets or scales the LR itself (OneCycleLR, LambdaLR...) drives this
    optimizer, in the linted file or in the module that builds it."""
    c = site.construction
    progs = [p] + ([c.function.program] if c.function.program not in (None, p) else [])
    names = {n for n in (site.target, c.target) if n}
    for prog in progs:
        for s in prog.constructions("scheduler"):
            if s.name not in _OVERRIDES:
                continue
            arg = s.arg("optimizer", 0)
            if arg is None:
                continue
            if arg is c.node or _code(arg) in names:
                return True
    return False
