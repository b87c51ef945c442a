import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.init import activation_families, init_model
from recipecheck.rule import Context, Rule


def _string(node) -> str | None:
    if isinstance(node, cst.SimpleString) and isinstance(node.evaluated_value, str):
        return node.evaluated_value
    return None


class InitActivationMismatch(Rule):
    """
    ## What it does
    Reports Xavier/Glorot initialization (`xavier_uniform_`, `xavier_normal_` without a
    `gain=`) of layers in a model whose nonlinearities are all ReLU-like (ReLU, LeakyReLU,
    ReLU6, PReLU), and Kaiming/He initialization (`kaiming_normal_`, `kaiming_uniform_` with
    the default or a ReLU `nonlinearity`) in a model whose nonlinearities are all tanh or
    sigmoid. The activations are read from the model class that runs the initialization (and
    the local module classes it builds), or from the whole file for a free `init_fn`.

    ## Why is this bad?
    Each scheme keeps the activation variance constant for the nonlinearity it was derived
    for. Xavier ignores that ReLU zeroes half its input, so the signal shrinks by about 2x per
    layer in a deep ReLU net; Kaiming's extra factor 2 makes a tanh/sigmoid net start in the
    saturated regime. Shallow or normalized (BatchNorm) models usually train anyway, hence
    advice only.

    Measured (`recipecheck validate RC304`, seeds 0-4): activation std factor per layer (10 ReLU
    layers of width 256): 0.687 [0.664, 0.702] with Xavier in a ReLU MLP vs 0.971 [0.939, 0.993]
    with Kaiming in a ReLU MLP (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Mixed models (ReLU and tanh, GELU/SiLU, attention, LSTM/GRU) are never reported: Xavier is
    the standard for transformers and RNNs. `gain=nn.init.calculate_gain("relu")` and
    `nonlinearity="tanh"` make the scheme fit and are respected. Off by default (info).

    ## Example
    ```python
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
    ```

    ## Use instead
    ```python
                    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Glorot and Bengio (2010), "Understanding the difficulty of training deep feedforward
      neural networks".
    - He et al. (2015), "Delving Deep into Rectifiers: Surpassing Human-Level Performance on
      ImageNet Classification".
    - PyTorch docs, `torch.nn.init.calculate_gain`.
    """

    CODE = "RC304"
    NAME = "init-activation-mismatch"
    SEVERITY = Severity.INFO
    MESSAGE = "the initialization scheme does not match the activation"
    VALID = (
        "import torch.nn as nn\nclass MLP(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))\n"
        "        for m in self.modules():\n            if isinstance(m, nn.Linear):\n"
        "                nn.init.kaiming_uniform_(m.weight, nonlinearity='relu')\n",
        "import torch.nn as nn\nclass MLP(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(784, 256), nn.Tanh(), nn.Linear(256, 10))\n"
        "        for m in self.modules():\n            if isinstance(m, nn.Linear):\n"
        "                nn.init.xavier_uniform_(m.weight)\n",
        # an explicit gain calibrates Xavier for ReLU
        "import torch.nn as nn\nclass MLP(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))\n"
        "        for m in self.modules():\n            if isinstance(m, nn.Linear):\n"
        "                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain('relu'))\n",
        # transformer: Xavier is the convention
        "import torch.nn as nn\nclass Model(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.enc = nn.TransformerEncoderLayer(256, 8)\n        self.ff = nn.Sequential(nn.Linear(256, 256), nn.ReLU())\n"
        "        for p in self.parameters():\n            if p.dim() > 1:\n                nn.init.xavier_uniform_(p)\n",
    )
    INVALID = (
        "import torch.nn as nn\nclass MLP(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))\n"
        "        for m in self.modules():\n            if isinstance(m, nn.Linear):\n"
        "                nn.init.xavier_uniform_(m.weight)  # expect: RC304\n",
        "import torch\nimport torch.nn as nn\nclass TanhNet(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(10, 50)\n        self.fc2 = nn.Linear(50, 1)\n"
        "        nn.init.kaiming_normal_(self.fc1.weight)  # expect: RC304\n"
        "    def forward(self, x):\n        return self.fc2(torch.tanh(self.fc1(x)))\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        im = init_model(p)
        for s in im.sites:
            if s.kind not in ("xavier", "kaiming") or s.role not in ("weight", "unknown") or s.placeholder:
                continue
            if s.layer and s.layer not in ("Linear", "Bilinear") and not s.layer.startswith(("Conv", "Lazy")):
                continue
            fams = activation_families(p, s)
            if s.kind == "xavier":
                if "gain" in s.keywords or len(s.node.args) > 1 or fams != {"relu"}:
                    continue
                msg = ("Xavier/Glorot init assumes a symmetric activation, but this model uses only "
                       "ReLU-like activations: the signal shrinks ~2x per layer; use "
                       "nn.init.kaiming_*_(w, nonlinearity='relu') or gain=calculate_gain('relu') (RC304)")
            else:
                nl = _string(s.keywords.get("nonlinearity"))
                if nl is not None and nl not in ("relu", "leaky_relu"):
                    continue
                if fams != {"tanh"}:
                    continue
                msg = ("Kaiming/He init is derived for ReLU, but this model uses only tanh/sigmoid "
                       "activations: units start saturated; use nn.init.xavier_*_ (or "
                       "nonlinearity='tanh') (RC304)")
            ctx.report(s.node, f"{ctx.code(s.node)}: {msg}")
