from recipecheck.rule import Field

from recipecheck.finding import Severity
from recipecheck.program.layers import layer_analysis
from recipecheck.rule import Context, Rule, RuleOptions

_RESET = {"bn", "norm", "add", "merge", "act", "rnn", "module"}


class SaturatingActivationDeepStack(Rule):
    """
    ## What it does
    Flags a model with five or more sigmoid/tanh activations stacked one after the other
    (each after a Linear/Conv layer) with no normalization layer and no residual connection
    in between. Counted along the model's layer order, with `nn.Sequential` lists built in
    loops (`for _ in range(6): layers += [nn.Linear(h, h), nn.Tanh()]`) and static
    `nn.ModuleList` loops unrolled. The fifth activation of the run is reported. The
    `min-depth` option sets the count.

    ## Why is this bad?
    The derivative of sigmoid is at most 0.25 and tanh's is below 1 away from zero, so the
    backpropagated gradient shrinks geometrically with depth: the first layers of a deep
    sigmoid/tanh stack barely learn (vanishing gradients, Glorot & Bengio 2010), and
    saturated units pass no gradient at all. ReLU-family activations, normalization layers
    or residual connections keep the gradient flowing.

    Measured (`recipecheck validate RC510`, seeds 0-4): relative gradient ||g||/||w|| of the
    first layer / the last hidden layer's, at init: 5.51e-07 [2.64e-07, 1.06e-06] with 8 x
    (Linear -> Sigmoid) vs 1.03 [0.653, 1.3] with 8 x (Linear -> BN -> Sigmoid) (mean [min,
    max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Advice only (off by default). Recurrent cells (LSTM/GRU) use sigmoid/tanh gates by
    design and are not counted.

    ## Example
    ```python
    layers = []
    for _ in range(6):
        layers += [nn.Linear(256, 256), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(256, 10))
    ```

    ## Use instead
    ```python
    for _ in range(6):
        layers += [nn.Linear(256, 256), nn.LayerNorm(256), nn.GELU()]
    ```

    ## Options
    - `min-depth` (int, default 5): how many stacked saturating activations are reported.

    ## Fix safety
    No automatic fix.

    ## References
    - Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
      networks", AISTATS 2010.
    - CS231n, "Neural Networks Part 1: Commonly used activation functions" (sigmoid
      saturates and kills gradients).
    - Runtime twins: RT107 dead-or-saturated-units, RT108 vanishing-or-exploding-gradients.
    """

    class Options(RuleOptions):
        min_depth: int = Field(5, alias="min-depth")

    CODE = "RC510"
    NAME = "saturating-activation-deep-stack"
    SEVERITY = Severity.INFO
    MESSAGE = "a deep stack of sigmoid/tanh layers without normalization or residuals"
    STATIC_TWIN = "RT108"
    VALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),\n"
        "                      nn.Linear(64, 1), nn.Sigmoid())\n",
        # normalized deep tanh stack
        "import torch.nn as nn\nlayers = []\nfor _ in range(8):\n"
        "    layers += [nn.Linear(64, 64), nn.LayerNorm(64), nn.Tanh()]\n"
        "model = nn.Sequential(*layers)\n",
        # residual tanh blocks
        "import torch\nimport torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.layers = nn.ModuleList([nn.Linear(32, 32) for _ in range(8)])\n"
        "    def forward(self, x):\n        for layer in self.layers:\n"
        "            x = x + torch.tanh(layer(x))\n        return x\n",
        # unknown depth: not counted
        "import torch.nn as nn\ndef mlp(depth):\n    layers = []\n    for _ in range(depth):\n"
        "        layers += [nn.Linear(64, 64), nn.Sigmoid()]\n    return nn.Sequential(*layers)\n",
    )
    INVALID = (
        "import torch.nn as nn\nlayers = []\nfor _ in range(6):\n"
        "    layers += [nn.Linear(64, 64), nn.Sigmoid()]  # expect: RC510\n"
        "model = nn.Sequential(*layers, nn.Linear(64, 10))\n",
        "import torch\nimport torch.nn as nn\n"
        "class DeepTanh(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.inp = nn.Linear(10, 32)\n"
        "        self.hidden = nn.ModuleList([nn.Linear(32, 32) for _ in range(5)])\n"
        "        self.out = nn.Linear(32, 1)\n"
        "    def forward(self, x):\n        x = torch.tanh(self.inp(x))\n"
        "        for layer in self.hidden:\n"
        "            x = torch.tanh(layer(x))  # expect: RC510\n        return self.out(x)\n",
    )

    def check(self, ctx: Context) -> None:
        la = layer_analysis(ctx.program)
        depth = self.options.min_depth if self.options is not None else 5
        seen: set[int] = set()
        units = sorted(la.units, key=lambda u: (not u.top_level, u.kind != "class"))
        for unit in units:
            chain = self._chain(unit)
            run = []
            for op in chain:
                if op.kind in ("sigmoid", "tanh"):
                    run.append(op)
                    if len(run) == depth:
                        if any(id(o.node) in seen for o in run):
                            break
                        seen.update(id(o.node) for o in run)
                        ctx.report(op.node, (
                            f"{op.describe()} is the {depth}th sigmoid/tanh stacked in `{unit.name}` with no "
                            "normalization or residual connection: gradients shrink at every layer "
                            "and the first layers barely learn; use ReLU/GELU, add normalization "
                            "or residual connections (RC510)"))
                        break
                elif op.kind in _RESET:
                    run = []

    @staticmethod
    def _chain(unit):
        if unit.output is not None:
            return list(unit.output.ops)
        if unit.steps:
            last = unit.steps[-1]
            return [*last.before, last.op]
        return []
