import re

import libcst as cst

from recipecheck.program.nodes import iter_children
from recipecheck.rule import Field

from recipecheck.finding import Severity
from recipecheck.program.hparams import opt_arg, small_model_context
from recipecheck.program.values import (ALL, judge, number_of, optimizer_sites, settled_in_owner, site_hparams,
                                        worst)
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule, RuleOptions

# optimizers whose weight_decay is coupled L2 (AdamW's decoupled decay is commonly 0.01-0.1)
COUPLED = ("SGD", "Adam", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax", "Adadelta")
_PENALTY_CALLS = ("norm", "abs", "pow", "square", "sum", "l1_loss", "mse_loss")
# names of parameter-norm terms: l2_reg, l1_norm, l2_penalty, weight_penalty, ... (not a WGAN
# gradient_penalty or an orthogonality term: those are other regularizers with their own scales)
_PENALTY_NAME = re.compile(r"(^|_)(l1|l2)(_|$|reg|norm|loss|penalty)|^weight_(reg|penalty|norm|decay)|"
                           r"^(param|params|parameter|weights?)_(norm|penalty|reg)", re.I)


class Options(RuleOptions):
    max_weight_decay: float = Field(1e-2, alias="max-weight-decay", gt=0)
    max_penalty_lambda: float = Field(1e-1, alias="max-penalty-lambda", gt=0)


def _is_penalty(expr: cst.CSTNode) -> bool:
    """An L1/L2 norm of parameters: mentions parameters()/.weight with norm/abs/pow/**2."""
    stack = [expr]
    params = False
    norm = False
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            d = dotted_name(n.func) or ""
            leaf = d.rsplit(".", 1)[-1] if d else (n.func.attr.value if isinstance(n.func, cst.Attribute) else "")
            if leaf in ("parameters", "named_parameters"):
                params = True
            if leaf in _PENALTY_CALLS:
                norm = True
        elif isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Power):
            norm = True
        elif isinstance(n, cst.Name):
            low = n.value.lower()
            if _PENALTY_NAME.search(low):
                params = norm = True
            if low in ("weight", "weights", "w", "param", "params", "p"):
                params = True
        elif isinstance(n, cst.Attribute) and n.attr.value in ("weight", "weights"):
            params = True
        stack.extend(iter_children(n))
    return params and norm


def _factors(expr) -> list:
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
        return _factors(expr.left) + _factors(expr.right)
    return [expr]


class WeightDecayOutOfRange(Rule):
    """
    ## What it does
    Flags coupled L2 weight decay above `max-weight-decay` (1e-2) passed to SGD, Adam,
    RMSprop, Adagrad, NAdam, RAdam, Adamax or Adadelta (as a literal, a name bound to one, an
    argparse default, a config-class field or a param group's `"weight_decay"`), and an L1/L2
    penalty added to the loss by hand with a coefficient above `max-penalty-lambda` (0.1):
    `loss = loss + 0.5 * sum(p.pow(2).sum() for p in model.parameters())`.
    AdamW is not checked against this bound: its decoupled decay is commonly 0.01 to 0.1.

    ## Why is this bad?
    Typical L2 strengths are 1e-4 to 5e-4 (ImageNet/CIFAR SGD recipes) and 1e-5 to 1e-4 with
    Adam. Ten times that and the penalty dominates the data term: weights are pulled to zero,
    the network underfits and the loss plateaus high. The usual cause is an AdamW-sized value
    (0.05) given to SGD or Adam, or a penalty coefficient written as a fraction.

    Measured (`recipecheck validate RC603`, seeds 0-4): training accuracy after 200 SGD steps:
    0.53 [0.487, 0.587] with weight_decay=0.1 vs 0.88 [0.867, 0.89] with weight_decay=5e-4 (mean
    [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    For a reinforcement-learning policy, a linear probe on frozen features or a layer trained by
    its own optimizer, it reports at `info`.
    Values computed at run time are not checked; penalty terms are recognized by their shape
    (a parameter norm times a number added to a loss).
    The value is followed through the project (a name bound in either branch of an `if`, a
    parameter to the arguments of its calls, an argparse default, a config field), and so is
    an optimizer built in another module (`model.configure_optimizers()`), reported at the
    call in the linted file. It reports at the rule's severity only when every possible
    value qualifies; when only some do, at `info`, naming the condition. When the same
    weight-decay expression also feeds AdamW in another branch of the same function (one
    config field for an optimizer chosen by a flag), the value is sized for AdamW and the
    SGD branch is reported at `info`.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
    loss = criterion(out, y) + 0.5 * sum(p.pow(2).sum() for p in model.parameters())
    ```

    ## Use instead
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss = criterion(out, y) + 1e-4 * sum(p.pow(2).sum() for p in model.parameters())
    ```

    ## Options
    - `max-weight-decay` (float, default 0.01): largest coupled weight decay not reported.
    - `max-penalty-lambda` (float, default 0.1): largest coefficient of a hand-written L1/L2 penalty not reported.

    ## Fix safety
    No automatic fix.

    ## References
    - Krogh and Hertz (1992), "A Simple Weight Decay Can Improve Generalization".
    - He et al. (2016), "Deep Residual Learning" (SGD, weight decay 1e-4).
    - Related runtime check: RT112 loss-not-decreasing (an over-regularized run plateaus high).
    """

    CODE = "RC603"
    NAME = "weight-decay-out-of-range"
    SEVERITY = Severity.WARNING
    MESSAGE = "weight decay / penalty strength far above the usual range"
    Options = Options
    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)\n",
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)\n",
        "import torch\nfor x, y in loader:\n    loss = crit(model(x), y) + 1e-4 * sum(p.pow(2).sum() for p in model.parameters())\n",
        "import torch\nfor x, y in loader:\n    loss = crit(model(x), y) + 0.5 * kl_div\n",
        "lambda_gp = 10\nfor real, _ in loader:\n    loss_D = fake_score - real_score + lambda_gp * gradient_penalty\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)  # expect: RC603\n",
        "import torch\nfor x, y in loader:\n"
        "    loss = crit(model(x), y) + 0.5 * sum(p.pow(2).sum() for p in model.parameters())  # expect: RC603\n",
        "import torch\nl1_lambda = 1.0\nfor x, y in loader:\n    loss = crit(model(x), y)\n"
        "    loss += l1_lambda * sum(p.abs().sum() for p in model.parameters())  # expect: RC603\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        o = self.options
        sites = optimizer_sites(p)
        for site in sites:
            c = site.construction
            if c.name not in COUPLED:
                continue
            big = lambda x: x > o.max_weight_decay  # noqa: E731
            j = worst(judge(v, big) for v in site_hparams(p, site, "weight_decay"))
            if j and not settled_in_owner(p, site, "weight_decay", big):
                small = small_model_context(p, c)
                msg = (f"{c.name}(weight_decay={j.first:g}) is L2 regularization far above the usual "
                       f"1e-5 to 5e-4 (limit {o.max_weight_decay:g}): the penalty outweighs the data "
                       "and the model underfits; use 1e-4 to 5e-4 (AdamW-sized values belong to AdamW)")
                if site.via:
                    msg += f" (the optimizer is {site.via})"
                shared = _decoupled_alternative(sites, site)
                if shared:
                    # `if name == 'sgd': SGD(..., weight_decay=cfg.wd) elif name == 'adamw': AdamW(...,
                    # weight_decay=cfg.wd)`: the value is sized for the other branch, this one is a
                    # latent misconfiguration when someone switches optimizer
                    ctx.report(site.report, f"{msg}; the same value feeds {shared} in another branch, "
                               f"where it fits: give {c.name} its own weight decay (RC603)",
                               severity=Severity.INFO)
                elif small:
                    ctx.report(site.report, f"{msg}; larger values are common for {small} (RC603)",
                               severity=Severity.INFO)
                elif j.verdict != ALL:
                    ctx.report(site.report, f"{msg}; only {j.when()} (RC603)", severity=Severity.INFO)
                else:
                    ctx.report(site.report, f"{msg} (RC603)")
        for a in p.assignments:
            if a.value is None or not isinstance(a.value, cst.CSTNode):
                continue
            leaf = a.target.rsplit(".", 1)[-1].lower()
            if "loss" not in leaf and leaf not in ("cost", "objective", "obj"):
                continue
            terms = []
            if a.augmented == "AddAssign":
                terms = [a.value]
            elif a.augmented is None and isinstance(a.value, cst.BinaryOperation) and \
                    isinstance(a.value.operator, cst.Add):
                stack = [a.value]
                while stack:
                    n = stack.pop()
                    if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Add):
                        stack += [n.left, n.right]
                    else:
                        terms.append(n)
            for t in terms:
                lam = self._coefficient(p, a.function, t)
                if lam is not None and lam > o.max_penalty_lambda:
                    ctx.report(a.node, (
                        f"the L1/L2 penalty added to `{a.target}` has coefficient {lam:g} (limit "
                        f"{o.max_penalty_lambda:g}): it dominates the data loss and pulls the weights to "
                        "zero; use 1e-5 to 1e-3 (RC603)"))
                    break

    @classmethod
    def _coefficient(cls, p, f, term, depth=0) -> float | None:
        factors = _factors(term)
        if len(factors) < 2 and depth == 0:
            return None
        coef = 1.0
        penalty = False
        for fac in factors:
            v = number_of(p, f, fac)
            if v is not None:
                coef *= v
            elif _is_penalty(fac) and not penalty:
                penalty = True
                if isinstance(fac, cst.Name) and depth < 2:
                    # `l2_reg = lam * sum(...)`: the coefficient may live in the binding
                    binds = [b for b in f.bindings(fac.value) if isinstance(b.value, cst.BinaryOperation)]
                    if len(binds) == 1:
                        inner = cls._coefficient(p, f, binds[0].value, depth + 1)
                        if inner is None:
                            return None
                        coef *= inner
            else:
                return None
        return coef if penalty else None


def _decoupled_alternative(sites, site) -> str | None:
    """An AdamW-style optimizer built in the same function from the same weight-decay
    expression (one config field for the optimizer chosen by a flag)."""
    c = site.construction
    wd = opt_arg(c, "weight_decay")
    if wd is None:
        return None
    text = cst.Module([]).code_for_node(wd)
    for other in sites:
        oc = other.construction
        if other is site or oc.name in COUPLED or oc.function is not c.function:
            continue
        owd = opt_arg(oc, "weight_decay")
        if owd is not None and cst.Module([]).code_for_node(owd) == text:
            return oc.name
    return None
