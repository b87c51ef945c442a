from recipecheck.finding import Severity
from recipecheck.program.layers import layer_analysis
from recipecheck.rule import Context, Rule


class DropoutBeforeBatchNorm(Rule):
    """
    ## What it does
    Flags a BatchNorm layer whose input comes straight from a Dropout, or from a Dropout
    followed only by an activation (`Dropout -> BatchNorm`, `Dropout -> ReLU -> BatchNorm`).
    The order is taken from `nn.Sequential(...)` (also `*layers` lists built in a loop and
    `OrderedDict`s) and from the calls in `forward()` (`x = self.bn(self.drop(x))`,
    `F.dropout` included), with sub-modules and `nn.ModuleList` loops followed.

    ## Why is this bad?
    During training BatchNorm accumulates its running variance from the dropped-out,
    rescaled activations; at evaluation dropout is off and the variance BatchNorm sees is
    different, so every normalized activation is shifted at test time ("variance shift",
    Li et al. 2019) and accuracy drops.

    Measured (`recipecheck validate RC501`, seeds 0-4): last BatchNorm's running variance / the
    variance of its input at eval time: 3.78 [3.22, 5.41] with Dropout -> BN vs 1.01 [0.99,
    1.04] with BN, Dropout after last BN (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Models built dynamically (layers chosen by strings, `getattr`, registries) are not
    followed. Dropout and BatchNorm separated by pooling are not reported.

    ## Example
    ```python
    nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.5), nn.BatchNorm1d(128))
    ```

    ## Use instead
    ```python
    nn.Sequential(nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.5))
    ```
    Put Dropout after the last BatchNorm (just before the classifier), or drop it: BatchNorm
    already regularizes.

    ## Options
    None.

    ## Fix safety
    No automatic fix: reordering layers changes the architecture and its checkpoints.

    ## References
    - Li, Chen, Hu, Yang, "Understanding the Disharmony between Dropout and Batch
      Normalization by Variance Shift", CVPR 2019.
    - Ioffe & Szegedy, "Batch Normalization", ICML 2015.
    - Runtime twin: RT111 train-mode-during-eval (another train/eval mismatch).
    """

    CODE = "RC501"
    NAME = "dropout-before-batchnorm"
    SEVERITY = Severity.WARNING
    MESSAGE = "Dropout feeds BatchNorm: its running variance will not match evaluation"
    VALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.5),\n"
        "                      nn.Linear(64, 2))\n",
        # dropout after the last BN, then a Linear before the next BN
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(20, 64)\n        self.bn1 = nn.BatchNorm1d(64)\n"
        "        self.drop = nn.Dropout(0.3)\n        self.fc2 = nn.Linear(64, 64)\n"
        "        self.bn2 = nn.BatchNorm1d(64)\n        self.out = nn.Linear(64, 2)\n"
        "    def forward(self, x):\n        x = self.drop(F.relu(self.bn1(self.fc1(x))))\n"
        "        x = F.relu(self.bn2(self.fc2(x)))\n        return self.out(x)\n",
        # a look-alike: the dropout feeds a pooling layer, not the BN
        "import torch.nn as nn\n"
        "features = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Dropout2d(0.1), nn.MaxPool2d(2),\n"
        "                         nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.ReLU())\n",
    )
    INVALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(\n    nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.5),\n"
        "    nn.BatchNorm1d(64),  # expect: RC501\n    nn.Linear(64, 2),\n)\n",
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(20, 64)\n        self.drop = nn.Dropout(0.2)\n"
        "        self.bn = nn.BatchNorm1d(64)\n        self.out = nn.Linear(64, 2)\n"
        "    def forward(self, x):\n        x = self.drop(self.fc(x))\n"
        "        x = self.bn(x)  # expect: RC501\n        return self.out(x)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(20, 64)\n        self.bn = nn.BatchNorm1d(64)\n"
        "        self.out = nn.Linear(64, 2)\n"
        "    def forward(self, x):\n"
        "        h = self.bn(F.relu(F.dropout(self.fc(x), 0.3, self.training)))  # expect: RC501\n"
        "        return self.out(h)\n",
        "import torch.nn as nn\n"
        "def make_mlp(width, depth):\n    layers = []\n    for _ in range(depth):\n"
        "        layers += [nn.Linear(width, width), nn.Dropout(0.1),\n"
        "                   nn.BatchNorm1d(width)]  # expect: RC501\n"
        "    return nn.Sequential(*layers)\n",
    )

    def check(self, ctx: Context) -> None:
        la = layer_analysis(ctx.program)
        for _unit, step in la.all_steps():
            if step.op.kind != "bn":
                continue
            prev = step.previous()
            acts = []
            while prev and prev[0].is_activation:
                acts.append(prev.pop(0))
            if not prev or prev[0].kind != "dropout":
                continue
            drop = prev[0]
            through = f" through {acts[0].describe()}" if acts else ""
            ctx.report(step.op.node, (
                f"{step.op.describe()} is fed by {drop.describe()}{through}: BatchNorm's running variance "
                "is collected with dropout on and is wrong once dropout is off at evaluation "
                "(variance shift); put Dropout after the last BatchNorm (RC501)"))
