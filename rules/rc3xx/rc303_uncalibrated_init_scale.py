from recipecheck.rule import Field

from recipecheck.finding import Severity
from recipecheck.program.init import init_model, outside_premise
from recipecheck.rule import Context, Rule, RuleOptions


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


class UncalibratedInitScale(Rule):
    """
    ## What it does
    Flags layer weights drawn at random with a fixed, large scale that ignores the layer's
    fan-in: `nn.init.normal_(w)` / `normal_(w, 0, 1)`, `w.data.normal_()`,
    `nn.init.uniform_(w, -1, 1)`, `w.data.uniform_(-1, 1)`, `torch.randn(out, in)` or
    `torch.rand(out, in)` used as a weight (`nn.Parameter(torch.randn(256, 784))`,
    `torch.randn(784, 256, requires_grad=True)`). A literal standard deviation (normal) or
    half-width (uniform) of at least `min-scale` (0.5 by default) is reported.

    ## Why is this bad?
    A unit's pre-activation variance is fan_in x Var(w) x Var(x): with std 1 and 784 inputs it
    is ~800x the input's, so activations explode layer after layer (or saturate tanh/sigmoid
    units, whose gradients then vanish). Calibrated schemes set Var(w) = 2/fan_in (He, ReLU)
    or 2/(fan_in + fan_out) (Glorot).

    Measured (`recipecheck validate RC303`, seeds 0-4): activation std at layer 10 / at layer 1
    (ReLU MLP, width 256): 2.37e+09 [1.72e+09, 2.84e+09] with normal_(w, 0, 1) vs 0.779 [0.568,
    0.936] with N(0, 2/fan_in) (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Learned tokens/queries/slots/registers, learned inputs expanded to the batch (StyleGAN's
    constant), gates, inputs, files of tests and head-mixing
    matrices (`randn(heads, heads)`, a fan-in of a few heads) are not reported.
    Small fixed scales are a deliberate convention and are not flagged: GPT-2/BERT/DCGAN draw
    weights from N(0, 0.02), the word-language-model example uses U(-0.1, 0.1). Embedding
    tables (whose PyTorch default is N(0, 1)), position embeddings and tokens are not weights
    in this sense and are skipped. Scales given by an expression (`std=1 / math.sqrt(fan_in)`,
    `std=args.init_std`) are assumed calibrated.

    ## Example
    ```python
    self.W1 = nn.Parameter(torch.randn(256, 784))
    ```

    ## Use instead
    ```python
    self.W1 = nn.Parameter(torch.randn(256, 784) * math.sqrt(2 / 784))
    # or: nn.init.kaiming_normal_(self.W1, nonlinearity="relu")
    ```

    ## Options
    - `min-scale` (float, default 0.5): the smallest literal std / uniform half-width reported.

    ## Fix safety
    No automatic fix.

    ## References
    - Glorot and Bengio (2010), "Understanding the difficulty of training deep feedforward
      neural networks".
    - He et al. (2015), "Delving Deep into Rectifiers".
    - CS231n notes, "Calibrating the variances with 1/sqrt(n)".
    - Runtime twins: RT101 initial-loss-off, RT108 vanishing-or-exploding-gradients.
    """

    class Options(RuleOptions):
        min_scale: float = Field(0.5, alias="min-scale", gt=0)

    CODE = "RC303"
    NAME = "uncalibrated-init-scale"
    SEVERITY = Severity.WARNING
    MESSAGE = "weights drawn with a fixed scale that ignores fan-in"
    STATIC_TWIN = "RT108"
    VALID = (
        # talking heads: a heads x heads mixing matrix has a fan-in of a few heads
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class TalkingHeadsAttention(nn.Module):\n'
        '    def __init__(self, dim, heads=8):\n'
        '        super().__init__()\n'
        '        self.heads = heads\n'
        '        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)\n'
        '        self.mix_heads_pre_attn = nn.Parameter(torch.randn(heads, heads))\n'
        '        self.to_out = nn.Linear(dim, dim)\n'
        ),
        # learned queries, slots and register tokens (scaled or normalized where used)
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class PatchMerger(nn.Module):\n'
        '    def __init__(self, dim, num_tokens_out):\n'
        '        super().__init__()\n'
        '        self.norm = nn.LayerNorm(dim)\n'
        '        self.queries = nn.Parameter(torch.randn(num_tokens_out, dim))\n'
        '\n'
        '    def forward(self, x):\n'
        '        sim = self.queries @ self.norm(x).transpose(-1, -2) * x.shape[-1] ** -0.5\n'
        '        return sim.softmax(dim=-1) @ x\n'
        '\n'
        'class SlotEncoder(nn.Module):\n'
        '    def __init__(self, dim, num_slots=(16, 8), num_registers=4):\n'
        '        super().__init__()\n'
        '        self.slots = nn.ParameterList([nn.Parameter(torch.randn(n, dim)) for n in num_slots])\n'
        '        self.register_tokens = nn.Parameter(torch.randn(num_registers, dim))\n'
        '        self.to_qkv = nn.Linear(dim, dim * 3)\n'
        ),
        # GPT-2 / BERT convention: small fixed std
        "import torch.nn as nn\nclass GPT(nn.Module):\n    def _init_weights(self, module):\n"
        "        if isinstance(module, nn.Linear):\n"
        "            nn.init.normal_(module.weight, mean=0.0, std=0.02)\n"
        "            if module.bias is not None:\n                nn.init.zeros_(module.bias)\n"
        "        elif isinstance(module, nn.Embedding):\n"
        "            nn.init.normal_(module.weight, mean=0.0, std=0.02)\n",
        # word language model: U(-0.1, 0.1); embeddings at N(0, 1) are PyTorch's default
        "import torch.nn as nn\nclass RNNModel(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.encoder = nn.Embedding(1000, 200)\n        self.decoder = nn.Linear(200, 1000)\n"
        "        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)\n"
        "        nn.init.normal_(self.encoder.weight, 0, 1)\n"
        "        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)\n",
        # scaled by fan-in
        "import math\nimport torch\nimport torch.nn as nn\nclass L(nn.Module):\n    def __init__(self, n_in, n_out):\n"
        "        super().__init__()\n        self.w = nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))\n"
        "        self.pos_embedding = nn.Parameter(torch.randn(1, 65, n_out))\n",
        # DCGAN: BatchNorm scale ~ N(1, 0.02)
        "import torch.nn as nn\ndef weights_init(m):\n    classname = m.__class__.__name__\n"
        "    if classname.find('BatchNorm') != -1:\n        nn.init.normal_(m.weight.data, 1.0, 0.02)\n",
    )
    INVALID = (
        "import torch\nimport torch.nn as nn\nclass TwoLayer(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.W1 = nn.Parameter(torch.randn(256, 784))  # expect: RC303\n"
        "        self.b1 = nn.Parameter(torch.zeros(256))\n",
        "import torch.nn as nn\ndef init_weights(m):\n    if isinstance(m, nn.Linear):\n"
        "        nn.init.normal_(m.weight, 0, 1)  # expect: RC303\n",
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(100, 100)\n        self.fc2 = nn.Linear(100, 10)\n"
        "        self.fc1.weight.data.uniform_(-1, 1)  # expect: RC303\n",
        "import torch\nW1 = torch.randn(784, 100, requires_grad=True)  # expect: RC303\n"
        "b1 = torch.zeros(100, requires_grad=True)\nW2 = (torch.randn(100, 10) * 0.01).requires_grad_()\n",
    )

    def check(self, ctx: Context) -> None:
        im = init_model(ctx.program)
        threshold = self.options.min_scale
        for s in im.sites:
            if s.role != "weight" or s.placeholder or s.kind not in ("normal", "uniform"):
                continue
            if s.scale is None or s.scale < threshold:
                continue
            if outside_premise(s, ctx.path, ctx.module):
                continue  # a gain, gate, token, input, test tensor or zero-init head
            dist = (f"N({_fmt(s.mean or 0)}, {_fmt(s.scale)}^2)" if s.kind == "normal"
                    else f"a uniform range of half-width {_fmt(s.scale)}")
            what = s.target_text or "the weight"
            ctx.report(s.node, (
                f"{ctx.code(s.node)} draws {what} from {dist}, a scale that ignores the layer's fan-in: "
                "activations grow (or saturate) layer after layer; scale by 1/sqrt(fan_in) or use "
                "nn.init.kaiming_normal_ / xavier_uniform_ (RC303)"))
