from recipecheck.finding import Severity
from recipecheck.program.hparams import whole_model_params
from recipecheck.program.values import ALL, hparam, judge, optimizer_sites, settled_in_owner
from recipecheck.rule import Context, Rule


class WeightDecayOnBiasAndNorm(Rule):
    """
    ## What it does
    Reports an optimizer built with `weight_decay > 0` (as the file states it) on
    `model.parameters()` as a whole, so biases and normalization scales/shifts
    (BatchNorm/LayerNorm weight and bias) are decayed like the weight matrices. Optimizers
    built from param groups (nanoGPT's `decay` / `no_decay` groups, timm's
    `param_groups_weight_decay`) are not reported.

    ## Why is this bad?
    Weight decay is meant to limit the norm of weight matrices. A normalization layer's scale
    and shift and the biases carry no such capacity: decaying them pulls BatchNorm/LayerNorm
    gains towards zero, fights the normalization, and costs accuracy; with BatchNorm the
    layer before is scale-invariant, so decaying its scale only changes the effective LR.
    Transformer recipes (BERT, GPT-2, nanoGPT) and "Bag of Tricks" (He et al. 2019) exclude
    biases and norm parameters from decay.

    Measured (`recipecheck validate RC604`, seeds 0-4): mean BatchNorm gain after 20 epochs
    (SGD, weight_decay=5e-3): 0.474 [0.457, 0.488] with decay on all parameters vs 0.998 [0.981,
    1.03] with no decay on biases and norm gains (mean [min, max]); the claim held on 5 of 5
    seeds.

    ## Known problems
    The rule does not check that the model has biases or normalization layers (almost all do).
    AdamW's implicit default `weight_decay=0.01` is not reported. Off by default (info).
    The value is followed through the project (a name bound in either branch of an `if`, a
    parameter to the arguments of its calls, an argparse default, a config field), and so is
    an optimizer built in another module (`model.configure_optimizers()`), reported at the
    call in the linted file. It reports as it is when every possible value is positive; when
    only some are, the message names the condition.

    ## Example
    ```python
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    ```

    ## Use instead
    ```python
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([
        {"params": decay, "weight_decay": 0.1},
        {"params": no_decay, "weight_decay": 0.0},
    ], lr=3e-4)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - He et al. (2019), "Bag of Tricks for Image Classification with Convolutional Neural Networks" (no bias decay).
    - Karpathy, nanoGPT `configure_optimizers` (decay only parameters with dim >= 2).
    - Devlin et al. (2019), BERT reference implementation (no decay for bias and LayerNorm).
    """

    CODE = "RC604"
    NAME = "weight-decay-on-bias-and-norm"
    SEVERITY = Severity.INFO
    MESSAGE = "weight decay applied to all parameters, biases and normalization scales included"
    VALID = (
        "import torch\ndecay = [p for p in model.parameters() if p.dim() >= 2]\n"
        "no_decay = [p for p in model.parameters() if p.dim() < 2]\n"
        "opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1},\n"
        "                         {'params': no_decay, 'weight_decay': 0.0}], lr=3e-4)\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n",
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=args.wd)\n",
    )
    INVALID = (
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)  # expect: RC604\n",
        "import torch\nopt = torch.optim.SGD(net.parameters(), 0.1, 0.9, 0, 5e-4)  # expect: RC604\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for site in optimizer_sites(p):
            c = site.construction
            owner = whole_model_params(c)
            if owner is None:
                continue
            j = judge(hparam(p, site, "weight_decay"), lambda x: x > 0)
            if not j or settled_in_owner(p, site, "weight_decay", lambda x: x > 0):
                continue
            if owner == "self" and c.function.cls is not None:
                owner = c.function.cls.name
            msg = (f"{c.name}(weight_decay={j.first:g}) decays every parameter of {owner}, biases and "
                   "normalization scales included: it pulls norm gains to zero and fights the "
                   "normalization; put parameters with dim < 2 in a group with weight_decay=0")
            if site.via:
                msg += f" (the optimizer is {site.via})"
            if j.verdict != ALL:
                msg += f"; only {j.when()}"
            ctx.report(site.report, msg + " (RC604)")
