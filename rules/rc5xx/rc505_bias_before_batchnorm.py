import re

from recipecheck.finding import Severity
from recipecheck.program.layers import WEIGHTED, layer_analysis
from recipecheck.program.nodes import call_arg, literal_number
from recipecheck.rule import Context, Rule


class BiasBeforeBatchNorm(Rule):
    """
    ## What it does
    Flags a Linear/Conv layer that keeps its bias (`bias=True`, the default) and feeds a
    BatchNorm layer directly. The finding is on the layer's construction, where
    `bias=False` goes.

    ## Why is this bad?
    BatchNorm subtracts the per-channel batch mean, so any constant added before it is
    cancelled exactly: the bias receives zero gradient (in expectation) and only costs
    parameters, memory and optimizer state; its weight decay is wasted too. BatchNorm's own
    shift (beta) plays the bias's role. This is why ResNet, the BatchNorm paper and
    torchvision models use `bias=False` before BatchNorm.

    Measured (`recipecheck validate RC505`, seeds 0-4): gradient norm of the bias / gradient
    norm of the weight: 4.83e-06 [1.58e-06, 1.14e-05] with Linear(bias=True) -> BN vs 0.788
    [0.537, 1.08] with Linear(bias=True), no BN (mean [min, max]); the claim held on 4 of 5
    seeds.

    ## Known problems
    Only where BatchNorm normalizes the layer's own channels: Linear into BatchNorm1d, ConvNd into
    BatchNormNd (same literal channel count). `Linear -> view -> BatchNorm2d` keeps a bias that
    varies within each channel and is not reported.
    Advice only (off by default): the model trains the same either way. torchvision's
    `vgg*_bn` keep the bias, and checkpoints saved with it need it to load.

    ## Example
    ```python
    nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
    ```

    ## Use instead
    ```python
    nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: removing a parameter changes the state_dict that checkpoints load.

    ## References
    - Ioffe & Szegedy, "Batch Normalization", ICML 2015, section 3.2 (the bias "can be
      ignored" since its effect is cancelled by the mean subtraction).
    - He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (conv, BN, no bias).
    """

    CODE = "RC505"
    NAME = "bias-before-batchnorm"
    SEVERITY = Severity.INFO
    MESSAGE = "a Linear/Conv bias directly before BatchNorm is cancelled"
    VALID = (
        # DCGAN generator: Linear -> view -> BatchNorm2d; the bias varies within each channel
        (
        'import torch.nn as nn\n'
        '\n'
        'class Generator(nn.Module):\n'
        '    def __init__(self, latent_dim, channels, img_size):\n'
        '        super().__init__()\n'
        '        self.init_size = img_size // 4\n'
        '        self.l1 = nn.Sequential(nn.Linear(latent_dim, 128 * self.init_size ** 2))\n'
        '        self.conv_blocks = nn.Sequential(\n'
        '            nn.BatchNorm2d(128),\n'
        '            nn.Upsample(scale_factor=2),\n'
        '            nn.Conv2d(128, 128, 3, stride=1, padding=1, bias=False),\n'
        '            nn.BatchNorm2d(128),\n'
        '            nn.LeakyReLU(0.2, inplace=True),\n'
        '            nn.Conv2d(128, channels, 3, stride=1, padding=1),\n'
        '            nn.Tanh(),\n'
        '        )\n'
        '\n'
        '    def forward(self, z):\n'
        '        out = self.l1(z)\n'
        '        out = out.view(out.shape[0], 128, self.init_size, self.init_size)\n'
        '        return self.conv_blocks(out)\n'
        ),
        "import torch.nn as nn\n"
        "block = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())\n",
        # bias followed by an activation, then BN: not cancelled
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.BatchNorm1d(32), nn.Linear(32, 1))\n",
        # LayerNorm is per-sample, not per-channel over the batch: out of scope
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(10, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 1))\n",
    )
    INVALID = (
        "import torch.nn as nn\n"
        "block = nn.Sequential(\n    nn.Conv2d(3, 64, 3, padding=1),  # expect: RC505\n"
        "    nn.BatchNorm2d(64), nn.ReLU(),\n)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(20, 64, bias=True)  # expect: RC505\n"
        "        self.bn = nn.BatchNorm1d(64)\n        self.out = nn.Linear(64, 2)\n"
        "    def forward(self, x):\n        return self.out(F.relu(self.bn(self.fc(x))))\n",
    )

    def check(self, ctx: Context) -> None:
        la = layer_analysis(ctx.program)
        for _unit, step in la.all_steps():
            if step.op.kind != "bn":
                continue
            prev = step.previous()
            if not prev or prev[0].kind not in WEIGHTED or prev[0].bias() is not True:
                continue
            layer = prev[0]
            if not _same_channels(layer, step.op):
                continue  # Linear -> view -> BatchNorm2d: the bias varies within a channel
            ctx.report(layer.ctor if layer.ctor is not None else layer.node, (
                f"{layer.describe()} keeps its bias but feeds {step.op.describe()} directly: BatchNorm "
                "subtracts the batch mean, so the bias is cancelled and never learns; pass "
                "`bias=False` (RC505)"))


def _dims(qualname: str | None) -> int | None:
    """1 for Linear/Conv1d/BatchNorm1d, 2 for Conv2d/BatchNorm2d, ... (None: unknown)."""
    leaf = (qualname or "").rsplit(".", 1)[-1]
    if leaf in ("Linear", "LazyLinear", "Bilinear"):
        return 1
    m = re.search(r"(\d)d$", leaf)
    return int(m.group(1)) if m else None


def _same_channels(layer, bn) -> bool:
    """BatchNorm normalizes exactly the layer's output channels: Linear into BatchNorm1d, ConvNd
    into BatchNormNd, with the same (literal) channel count. A Linear reshaped into
    BatchNorm2d keeps a bias that varies over positions within a channel: not cancelled."""
    a, b = _dims(layer.qualname), _dims(bn.qualname)
    if a is not None and b is not None and a != b:
        return False
    if layer.ctor is not None and bn.ctor is not None:
        leaf = (layer.qualname or "").rsplit(".", 1)[-1]
        out = call_arg(layer.ctor, "out_features" if "Linear" in leaf else "out_channels",
                       0 if leaf.startswith("Lazy") else 1)
        feats = call_arg(bn.ctor, "num_features", 0)
        x, y = literal_number(out), literal_number(feats)
        if x is not None and y is not None and x != y:
            return False
    return True
