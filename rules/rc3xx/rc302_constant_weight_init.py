import os

import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.init import foreign_constant_sites, init_model, outside_premise
from recipecheck.program.nodes import walk
from recipecheck.program.values import ALL, Judgement, Possibility, judge, value_of
from recipecheck.rule import Context, Rule


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


class ConstantWeightInit(Rule):
    """
    ## What it does
    Flags a layer *weight* set to one nonzero constant: `nn.init.ones_(m.weight)`,
    `nn.init.constant_(w, 0.5)`, `w.data.fill_(0.01)`, `nn.Parameter(torch.ones(out, in))`,
    `torch.full((out, in), 0.1)`. Normalization scales (`BatchNorm`/`LayerNorm` weight at 1),
    biases and 1-D parameters are not flagged; zero is reported by RC301 instead.

    ## Why is this bad?
    Every unit of the layer starts with the same incoming weights, so all of them compute the
    same activation and receive the same gradient: they stay identical copies for the whole
    run (the layer has the capacity of a single unit). Random initialization exists to break
    this symmetry.

    Measured (`recipecheck validate RC302`, seeds 0-4): largest difference between rows of the
    hidden weight after 200 SGD steps: 0 [0, 0] with constant_(w, 0.1) vs 6.92 [4.99, 9.3] with
    default init (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Weight-norm gains (`weight_g`), gates, learned tokens, inputs and files of tests are not
    weights of a linear map and are not reported.
    A constant that is not a literal is followed through the project (`Net(c=0.5)` reaching
    `nn.init.constant_(m.weight, c)`, reported at that call when `Net` is defined in another
    module); when only some of its possible values are nonzero, the finding is `info` and
    names the condition; one it cannot resolve is not reported. When the file
    has a single weight layer (no hidden units to keep apart) the rule is silent.

    ## Example
    ```python
    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.05)
    ```

    ## Use instead
    ```python
    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Goodfellow, Bengio and Courville, *Deep Learning*, section 8.4.
    - CS231n notes, "Setting up the data and the model": weight initialization.
    - Runtime twin: RT109 symmetric-units.
    """

    CODE = "RC302"
    NAME = "constant-weight-init"
    SEVERITY = Severity.ERROR
    MESSAGE = "a layer weight is initialized to one constant"
    STATIC_TWIN = "RT109"
    VALID = (
        # DINO head: the weight-norm gain starts at 1
        (
        'import torch.nn as nn\n'
        '\n'
        'class DINOHead(nn.Module):\n'
        '    def __init__(self, in_dim, out_dim, hidden_dim=2048, bottleneck_dim=256):\n'
        '        super().__init__()\n'
        '        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))\n'
        '        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))\n'
        '        self.last_layer.weight_g.data.fill_(1)\n'
        '        self.last_layer.weight_g.requires_grad = False\n'
        ),
        # norm scales at one: correct
        "import torch.nn as nn\ndef init_fn(m):\n    if isinstance(m, nn.Linear):\n"
        "        nn.init.xavier_uniform_(m.weight)\n        nn.init.zeros_(m.bias)\n"
        "    elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):\n        nn.init.ones_(m.weight)\n"
        "        nn.init.zeros_(m.bias)\n",
        "import torch\nimport torch.nn as nn\nclass RMSNorm(nn.Module):\n    def __init__(self, d):\n"
        "        super().__init__()\n        self.weight = nn.Parameter(torch.ones(d))\n",
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(8, 8)\n        self.ln = nn.LayerNorm(8)\n        self.head = nn.Linear(8, 2)\n"
        "        self.ln.weight.data.fill_(1.0)\n        self.fc.bias.data.fill_(0.01)\n",
    )
    INVALID = (
        "import torch.nn as nn\ndef init_weights(m):\n    if isinstance(m, nn.Linear):\n"
        "        nn.init.constant_(m.weight, 0.05)  # expect: RC302\n"
        "model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\nmodel.apply(init_weights)\n",
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(8, 16)\n        self.fc2 = nn.Linear(16, 2)\n"
        "        nn.init.ones_(self.fc1.weight)  # expect: RC302\n",
        "import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.w1 = nn.Parameter(torch.full((16, 8), 0.1))  # expect: RC302\n"
        "        self.w2 = nn.Parameter(torch.randn(2, 16) * 0.1)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        im = init_model(p)
        cases = [(s, im, ctx.path, ctx.module, None) for s in im.sites]
        # a class or init helper of another module whose constant comes from this file's
        # arguments (a helper's layers are this file's: its layer count is this file's)
        calls = {}
        for fs in foreign_constant_sites(p):
            calls[id(fs.call), id(fs.site.node)] = fs
            cases.append((fs.site, init_model(fs.owner) if fs.site.cls is not None else im,
                          fs.owner.path or "", fs.owner.module, fs.call))
        for s, sim, path, module, call in cases:
            if s.role != "weight" or s.placeholder or s.kind not in ("ones", "constant"):
                continue
            nonzero = lambda v: v != 0  # noqa: E731
            if s.value_expr is None:
                if call is not None or s.value is None or s.value == 0:
                    continue
                j = Judgement(ALL, (Possibility(s.value, "literal"),))
            else:
                if call is not None and judge(value_of(s.function.program or p, s.function, s.value_expr),
                                              nonzero).verdict == ALL:
                    continue  # the class's own module already makes it constant: reported there
                fs = calls.get((id(call), id(s.node))) if call is not None else None
                j = judge(fs.value(p) if fs is not None else value_of(p, s.function, s.value_expr), nonzero)
                if not j:
                    continue
            if sim.weight_layer_count() <= 1:
                continue
            if outside_premise(s, path, module):
                continue  # a gain, gate, token, input, test tensor or zero-init head
            what = s.target_text or "this parameter"
            if s.whole_model and s.owner is None:
                what = f"every weight ({what})"
            elif s.whole_model and s.layer:
                named = [t for t, pos in s.conds if pos and any(
                    isinstance(n, cst.SimpleString) for n in walk(t))]
                what = (f"the weight of the {s.layer} layers selected by `{ctx.code(named[0])}` "
                        f"({what})" if named else f"the weight of every {s.layer} ({what})")
            head = ctx.code(s.node)
            if call is not None:
                head = (f"{ctx.code(call)} passes `{ctx.code(s.value_expr)}` = {_fmt(j.first)} to "
                        f"`{ctx.code(s.node)}` in {os.path.basename(path)}, which")
            when = "" if j.verdict == ALL else f" (only {j.when()})"
            partial = {} if j.verdict == ALL else {"severity": Severity.INFO}
            ctx.report(call if call is not None else s.node, (
                f"{head} sets {what} to the constant {_fmt(j.first)}{when}: every unit starts "
                "identical and gets the same gradient, so the units never differentiate; use a random "
                "init (nn.init.kaiming_normal_ / xavier_uniform_) (RC302)"), **partial)
