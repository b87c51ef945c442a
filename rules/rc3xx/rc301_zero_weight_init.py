import os

import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.init import (added_to_identity, foreign_constant_sites, init_model, outside_premise,
                                      feeds_normalizer, is_output_name, zeroes_forward_path)
from recipecheck.program.imports import dotted_name
from recipecheck.program.nodes import literal_number, walk
from recipecheck.program.values import ALL, NONE, Judgement, judge, value_of
from recipecheck.rule import Context, Rule



def _helper_for_output_layers(p, s) -> bool:
    """The zeroing sits in a helper whose first parameter is the layer (`def zero_init_(m):
    nn.init.zeros_(m.weight)`), and every call of it names an output layer
    (`zero_init_(self.final_conv)`, `zero_module(self.out)`): the zero-init-the-last-layer
    technique, written once."""
    f = s.function
    owner = (s.owner or "").split(".", 1)[0]
    if f is None or f.cls is not None or not f.params or owner != f.params[0]:
        return False
    args = [cs.node.args[0].value for cs in p.calls
            if cs.dotted == f.name and cs.node.args and cs.node.args[0].keyword is None]
    if not args or any(cs.dotted and cs.dotted.endswith(".apply") and any(
            dotted_name(a.value) == f.name for a in cs.node.args) for cs in p.calls):
        return False  # also applied to every layer of a model
    leaves = [(dotted_name(a) or "").rsplit(".", 1)[-1] for a in args]
    return all(is_output_name(leaf) for leaf in leaves)

class ZeroWeightInit(Rule):
    """
    ## What it does
    Flags a layer *weight* initialized to zero: `nn.init.zeros_(m.weight)`,
    `nn.init.constant_(w, 0)`, `self.fc.weight.data.fill_(0)`, `w.data.zero_()`,
    `nn.Parameter(torch.zeros(out_features, in_features))`, a `named_parameters()` loop that
    zeroes every parameter, an `apply()` function that zeroes every `nn.Linear`'s weight, or a
    layer picked by index from an `nn.Sequential` (`nn.init.zeros_(self.gate[0].weight)`; the
    Sequential's last weight layer counts as a branch output, a technique).
    Biases (`m.bias`, a 1-D `nn.Parameter(torch.zeros(out_features))`), normalization
    scales and shifts (`nn.BatchNorm2d`/`LayerNorm`/`GroupNorm` weights, recognized through the
    layer an attribute refers to, an `isinstance(m, nn.BatchNorm2d)` test or the
    `classname.find("BatchNorm")` idiom), embedding-like tables and tokens (`cls_token`,
    `pos_embed`) are not flagged: zero is a correct initial value for them.

    ## Why is this bad?
    With a zero weight matrix every unit of the layer computes the same output and receives
    the same gradient: the units never become different (no symmetry breaking). Behind a ReLU
    it is worse: the layer's output and its gradient are exactly zero, so the weight never
    moves at all and the layers before it receive no gradient.

    Measured (`recipecheck validate RC301`, seeds 0-4): training accuracy after 200 SGD steps
    (3-class spiral, chance 0.33): 0.333 [0.333, 0.333] with zeros_ init vs 0.95 [0.927, 0.967]
    with default init (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A constant that is not a literal is followed through the project (`Net(constant_weight=0)`
    reaching `nn.init.constant_(m.weight, constant_weight)`, in the same file or in the module
    that defines `Net`, reported at the call that passes it). When only some of its possible
    values are zero (two calls, or either branch of an `if`), the finding is `info` and names
    the condition.
    Not reported: weight-norm gains, scalar or per-channel gates (`lambda_*`, layer scale, an
    `nn.Linear(1, channels)` noise strength), learned tokens/queries/slots, inputs, files of tests, a classifier head selected by name
    (`if name.startswith("head")`), and a zero term added to a residual or an identity
    (ReZero, adaLN-Zero, hyper-connections, `x * (1 + gamma) + beta`). A block whose forward
    returns only terms the zero init cancels (a FiLM `x * gamma + beta` with both zeroed) is
    reported even when the zeroed layer is its last one.
    Zero-initializing the *output* layer is a deliberate, harmless technique (logistic
    regression, a classifier head, the "zero-init residual" / Fixup / adaLN-Zero schemes that
    zero the last projection of a residual branch such as `out_proj`, `c_proj`, `to_out`):
    the layer's input still differs between units, so its rows diverge after the first step.
    The rule therefore stays silent when the zeroed layer is the only weight layer of the file,
    when its name says it is an output / residual-out layer (`head`, `classifier`, `out`,
    `out_proj`, `c_proj`, `final_layer`, `lm_head`, ...), or when it is the last weight layer
    assigned in its module's `__init__`, or when its class's forward feeds its output into a
    softmax or sigmoid (attention-weight and gate logits, as Deformable DETR's
    `attention_weights`: zero logits start uniform and the normalizer's gradient differs per
    unit). A zeroed hidden layer with an unusual name that is
    nevertheless a residual branch's output is flagged: add `# noqa: RC301` there.
    A parameter created as zeros and re-initialized later in the same class
    (`reset_parameters()`) is not flagged, nor a layer whose bias is set to a chosen vector
    next to its zeroed weight (`fc.bias.data.copy_(identity)`, the spatial-transformer init):
    it starts by outputting that vector.

    ## Example
    ```python
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 256)
            self.fc2 = nn.Linear(256, 10)
            nn.init.zeros_(self.fc1.weight)
    ```

    ## Use instead
    ```python
            nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
            nn.init.zeros_(self.fc1.bias)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: the right initializer depends on the activation.

    ## References
    - Goodfellow, Bengio and Courville, *Deep Learning*, section 8.4 (breaking symmetry).
    - CS231n notes, "Neural Networks Part 2: Setting up the Data and the Loss" (pitfall:
      all zero initialization).
    - He et al. (2015), "Delving Deep into Rectifiers"; Goyal et al. (2017) for zero-init of
      the last BN gamma in residual blocks (correct, not flagged).
    - Runtime twin: RT109 symmetric-units.
    """

    CODE = "RC301"
    NAME = "zero-weight-init"
    SEVERITY = Severity.ERROR
    MESSAGE = "a layer weight is initialized to zero"
    STATIC_TWIN = "RT109"
    VALID = (
        # the final block's projection zeroed (DiT's adaLN-Zero final layer)
        "import torch.nn as nn\nclass FinalLayer(nn.Module):\n    def __init__(self, d, out):\n        super().__init__()\n"
        "        self.norm = nn.LayerNorm(d)\n        self.linear = nn.Linear(d, out)\n"
        "    def forward(self, x):\n        return self.linear(self.norm(x))\n"
        "class DiT(nn.Module):\n    def __init__(self, d, out):\n        super().__init__()\n"
        "        self.embed = nn.Linear(out, d)\n        self.block = nn.Linear(d, d)\n        self.final_layer = FinalLayer(d, out)\n"
        "        nn.init.constant_(self.final_layer.linear.weight, 0)\n        nn.init.constant_(self.final_layer.linear.bias, 0)\n"
        "    def forward(self, x):\n        return self.final_layer(self.block(self.embed(x)).relu())\n",
        # a zero-init helper called on the output layer only (imagen's `zero_init_(self.final_conv)`)
        'import torch.nn as nn\n\ndef zero_init_(m):\n    nn.init.zeros_(m.weight)\n    if m.bias is not None:\n        nn.init.zeros_(m.bias)\n\nclass Unet(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n        self.init_conv = nn.Conv2d(3, dim, 7, padding=3)\n        self.mid = nn.Conv2d(dim, dim, 3, padding=1)\n        self.final_conv = nn.Conv2d(dim, 3, 1)\n        zero_init_(self.final_conv)\n\n    def forward(self, x):\n        return self.final_conv(self.mid(self.init_conv(x)).relu())\n',
        # attention-weight logits zeroed before a softmax (Deformable DETR): uniform at first
        "import torch.nn as nn\nimport torch.nn.functional as F\nfrom torch.nn.init import constant_, xavier_uniform_\n"
        "class DeformAttn(nn.Module):\n    def __init__(self, d, heads, points):\n        super().__init__()\n"
        "        self.attention_weights = nn.Linear(d, heads * points)\n        self.value_proj = nn.Linear(d, d)\n"
        "        self.output_proj = nn.Linear(d, d)\n"
        "        constant_(self.attention_weights.weight.data, 0.0)\n        constant_(self.attention_weights.bias.data, 0.0)\n"
        "        xavier_uniform_(self.value_proj.weight.data)\n        xavier_uniform_(self.output_proj.weight.data)\n"
        "    def forward(self, query, value):\n        w = self.attention_weights(query).view(query.shape[0], -1)\n"
        "        w = F.softmax(w, -1)\n        return self.output_proj(self.value_proj(value) * w.sum(-1, keepdim=True))\n",
        # hyper-connections: a zero dynamic term added to an identity static term
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class HyperConnection(nn.Module):\n'
        '    def __init__(self, dim, num_streams):\n'
        '        super().__init__()\n'
        '        self.norm = nn.RMSNorm(dim)\n'
        '        self.static_alpha = nn.Parameter(torch.eye(num_streams))\n'
        '        self.dynamic_alpha_fn = nn.Parameter(torch.zeros(dim, num_streams))\n'
        '        self.proj = nn.Linear(dim, dim)\n'
        '\n'
        '    def forward(self, residuals):\n'
        '        dynamic = (self.norm(residuals) @ self.dynamic_alpha_fn).tanh()\n'
        '        alpha = dynamic + self.static_alpha\n'
        '        return self.proj(alpha @ residuals)\n'
        ),
        # timm-style init: zero-init of the classifier head selected by name
        (
        'import torch.nn as nn\n'
        '\n'
        'class Mixer(nn.Module):\n'
        '    def __init__(self, dim, num_classes):\n'
        '        super().__init__()\n'
        '        self.blocks = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))\n'
        '        self.head = nn.Linear(dim, num_classes)\n'
        '\n'
        'def init_weights(module, name="", head_bias=0.0):\n'
        '    if isinstance(module, nn.Linear):\n'
        '        if name.startswith("head"):\n'
        '            nn.init.zeros_(module.weight)\n'
        '            nn.init.constant_(module.bias, head_bias)\n'
        '        else:\n'
        '            nn.init.xavier_uniform_(module.weight)\n'
        '            if module.bias is not None:\n'
        '                nn.init.zeros_(module.bias)\n'
        ),
        # differential attention: scalar lambda gates start at zero
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class DiffAttention(nn.Module):\n'
        '    def __init__(self, dim, num_heads=8):\n'
        '        super().__init__()\n'
        '        self.qkv = nn.Linear(dim, dim * 3)\n'
        '        self.proj = nn.Linear(dim, dim)\n'
        '        self.lambda_a = nn.Parameter(torch.empty(()))\n'
        '        self.lambda_b = nn.Parameter(torch.empty(()))\n'
        '        self.reset_parameters()\n'
        '\n'
        '    def reset_parameters(self):\n'
        '        nn.init.zeros_(self.lambda_a)\n'
        '        nn.init.zeros_(self.lambda_b)\n'
        ),
        # a FiLM initialized to identity: x * (1 + gamma) + beta
        (
        'import torch.nn as nn\n'
        '\n'
        'class FiLM(nn.Module):\n'
        '    def __init__(self, dim):\n'
        '        super().__init__()\n'
        '        self.proj = nn.Linear(dim, dim * 2)\n'
        '        nn.init.zeros_(self.proj.weight)\n'
        '        nn.init.zeros_(self.proj.bias)\n'
        '\n'
        '    def forward(self, tokens, cond):\n'
        '        gamma, beta = self.proj(cond).chunk(2, dim=-1)\n'
        '        return tokens * (1 + gamma) + beta\n'
        '\n'
        'class Block(nn.Module):\n'
        '    def __init__(self, dim):\n'
        '        super().__init__()\n'
        '        self.film = FiLM(dim)\n'
        '        self.ff = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))\n'
        ),
        # biases and BatchNorm shifts at zero, BatchNorm scale at one (torchvision ResNet)
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 16, 3)\n        self.bn = nn.BatchNorm2d(16)\n"
        "        self.fc = nn.Linear(16, 10)\n"
        "        for m in self.modules():\n            if isinstance(m, nn.Conv2d):\n"
        "                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')\n"
        "            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):\n"
        "                nn.init.constant_(m.weight, 1)\n                nn.init.constant_(m.bias, 0)\n",
        # zero-init of the last BN gamma of residual blocks
        "import torch.nn as nn\ndef zero_init(model):\n    for m in model.modules():\n"
        "        if isinstance(m, Bottleneck):\n            nn.init.constant_(m.bn3.weight, 0)\n",
        # DCGAN weights_init: BatchNorm found through the class-name string
        "import torch.nn as nn\ndef weights_init(m):\n    classname = m.__class__.__name__\n"
        "    if classname.find('Conv') != -1:\n        nn.init.normal_(m.weight.data, 0.0, 0.02)\n"
        "    elif classname.find('BatchNorm') != -1:\n        nn.init.normal_(m.weight.data, 1.0, 0.02)\n"
        "        nn.init.constant_(m.bias.data, 0)\n",
        # named_parameters loop: zeros only for biases
        "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
        "for name, p in model.named_parameters():\n    if 'bias' in name:\n        nn.init.zeros_(p)\n"
        "    else:\n        nn.init.kaiming_uniform_(p, nonlinearity='relu')\n",
        # a 1-D parameter is a bias; tokens and position tables start at zero in ViT
        "import torch\nimport torch.nn as nn\nclass Layer(nn.Module):\n    def __init__(self, n_in, n_out):\n"
        "        super().__init__()\n        self.weight = nn.Parameter(torch.empty(n_out, n_in))\n"
        "        self.bias = nn.Parameter(torch.zeros(n_out))\n"
        "        self.cls_token = nn.Parameter(torch.zeros(1, 1, n_out))\n"
        "        nn.init.kaiming_uniform_(self.weight)\n",
        # zeros placeholder re-initialized in reset_parameters()
        "import math\nimport torch\nimport torch.nn as nn\nclass Dense(nn.Module):\n"
        "    def __init__(self, n_in, n_out):\n        super().__init__()\n"
        "        self.weight = nn.Parameter(torch.zeros(n_out, n_in))\n        self.reset_parameters()\n"
        "    def reset_parameters(self):\n        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))\n",
        # zero-init of the output layer / residual output projection (deliberate)
        "import torch.nn as nn\nclass Block(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.fc = nn.Linear(d, 4 * d)\n        self.out_proj = nn.Linear(4 * d, d)\n"
        "        nn.init.zeros_(self.out_proj.weight)\n",
        # logistic regression from scratch: one layer, no hidden symmetry
        "import torch\nW = torch.zeros(784, 10, requires_grad=True)\nb = torch.zeros(10, requires_grad=True)\n",
    )
    INVALID = (
        # the same helper called on a hidden layer
        'import torch.nn as nn\n\ndef zero_init_(m):\n    nn.init.zeros_(m.weight)  # expect: RC301\n    if m.bias is not None:\n        nn.init.zeros_(m.bias)\n\nclass Unet(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n        self.init_conv = nn.Conv2d(3, dim, 7, padding=3)\n        self.mid = nn.Conv2d(dim, dim, 3, padding=1)\n        self.final_conv = nn.Conv2d(dim, 3, 1)\n        zero_init_(self.mid)\n\n    def forward(self, x):\n        return self.final_conv(self.mid(self.init_conv(x)).relu())\n',
        # a FiLM with gamma and beta both zero and no residual: the block outputs zeros
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class FiLM(nn.Module):\n'
        '    def __init__(self, dim):\n'
        '        super().__init__()\n'
        '        self.proj = nn.Linear(dim, dim * 2)\n'
        '        nn.init.zeros_(self.proj.weight)  # expect: RC301\n'
        '        nn.init.zeros_(self.proj.bias)\n'
        '\n'
        '    def forward(self, tokens, cond):\n'
        '        gamma, beta = self.proj(cond).chunk(2, dim=-1)\n'
        '        return tokens * gamma + beta\n'
        '\n'
        'class Block(nn.Module):\n'
        '    def __init__(self, dim):\n'
        '        super().__init__()\n'
        '        self.film = FiLM(dim)\n'
        '        self.ff = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))\n'
        '\n'
        '    def forward(self, x, cond):\n'
        '        x = self.film(x, cond)\n'
        '        return x + self.ff(x)\n'
        ),
        "import torch.nn as nn\nclass MLP(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(784, 256)\n        self.fc2 = nn.Linear(256, 10)\n"
        "        nn.init.zeros_(self.fc1.weight)  # expect: RC301\n",
        "import torch.nn as nn\nclass MLP(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(784, 256)\n        self.fc2 = nn.Linear(256, 10)\n"
        "        self.fc1.weight.data.fill_(0)  # expect: RC301\n        self.fc1.bias.data.zero_()\n",
        # an apply() function that zeroes every Linear layer
        "import torch.nn as nn\ndef init_weights(m):\n    if isinstance(m, nn.Linear):\n"
        "        nn.init.constant_(m.weight, 0.0)  # expect: RC301\n        nn.init.zeros_(m.bias)\n"
        "model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\nmodel.apply(init_weights)\n",
        # a 2-D raw parameter
        "import torch\nimport torch.nn as nn\nclass TwoLayer(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.w1 = nn.Parameter(torch.zeros(256, 784))  # expect: RC301\n"
        "        self.b1 = nn.Parameter(torch.zeros(256))\n        self.w2 = nn.Parameter(torch.randn(10, 256) * 0.01)\n",
        # every parameter zeroed
        "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))\n"
        "for p in model.parameters():\n    p.data.zero_()  # expect: RC301\n",
        # the else branch of `"bias" in name` holds the weights
        "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
        "for name, p in model.named_parameters():\n    if 'bias' in name:\n        nn.init.normal_(p, 0, 0.01)\n"
        "    else:\n        nn.init.zeros_(p)  # expect: RC301\n",
        # the constant is an argument: every call passes 0
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self, w0=None):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(8, 16)\n        self.fc2 = nn.Linear(16, 2)\n        if w0 is not None:\n"
        "            nn.init.constant_(self.fc1.weight, w0)  # expect: RC301\n"
        "    def forward(self, x):\n        return self.fc2(nn.functional.relu(self.fc1(x)))\n"
        "model = Net(w0=0)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        im = init_model(p)
        cases = [(s, im, p, ctx.path, ctx.module, None) for s in im.sites]
        calls = {}
        # a class or init helper of another module whose constant comes from this file's
        # arguments (a helper's layers are this file's: its layer count is this file's)
        for fs in foreign_constant_sites(p):
            s = fs.site
            calls[id(fs.call), id(s.node)] = fs
            cases.append((s, init_model(fs.owner) if s.cls is not None else im, fs.owner,
                          fs.owner.path or "", fs.owner.module, fs.call))
        for s, sim, prog, path, module, call in cases:
            if s.role != "weight" or s.placeholder or s.kind not in ("zeros", "constant"):
                continue
            j = self._zero(p, s, calls.get((id(call), id(s.node))))
            if not j:
                continue
            if outside_premise(s, path, module):
                continue  # a gain, gate, token, input, test tensor or zero-init head
            if _bias_set_to_vector(s):
                continue  # zero weight, bias set to a chosen output (STN identity)
            path_zeroed = zeroes_forward_path(s, prog)
            if path_zeroed is False or (path_zeroed is None and (sim.is_output_layer(s) or
                                                                 added_to_identity(s))):
                continue  # zero-init of a head or a residual branch's last layer: a technique
            if feeds_normalizer(s):
                continue  # attention/gate logits into a softmax or sigmoid: they learn apart
            if _helper_for_output_layers(prog, s):
                continue  # `zero_init_(self.final_conv)`: a helper called on output layers only
            node = call if call is not None else s.node
            partial = {} if j.verdict == ALL else {"severity": Severity.INFO}
            when = "" if j.verdict == ALL else f" (only {j.when()})"
            via = ""
            if call is not None:
                via = (f"{ctx.code(call)} passes `{ctx.code(s.value_expr)}` = 0 to "
                       f"`{ctx.code(s.node)}` in {os.path.basename(path)}, which ")
            if path_zeroed:
                ctx.report(node, (
                    f"{via or ctx.code(s.node) + ' '}zeroes {s.target_text or 'this layer'}{when}, and "
                    f"{s.cls.name}.forward returns only terms multiplied by its output (no "
                    "residual): the block outputs zeros at init and the layers after it get no "
                    "signal; initialize to identity (`x * (1 + gamma) + beta`) or add the "
                    "input back (RC301)"), **partial)
                continue
            what = s.target_text or "this parameter"
            if s.whole_model and s.owner is None:
                what = f"every weight ({what})"
            elif s.whole_model and s.layer:
                named = [t for t, pos in s.conds if pos and any(
                    isinstance(n, cst.SimpleString) for n in walk(t))]
                what = (f"the weight of the {s.layer} layers selected by `{ctx.code(named[0])}` "
                        f"({what})" if named else f"the weight of every {s.layer} ({what})")
            ctx.report(node, (
                f"{via or ctx.code(s.node) + ' '}initializes {what} to zero{when}: all units of the layer "
                "compute the same thing and get the same gradient (behind a ReLU none at all), so they "
                "never differentiate; use a random init such as nn.init.kaiming_normal_ / "
                "xavier_uniform_ (RC301)"), **partial)

    @staticmethod
    def _zero(p, s, fs) -> Judgement:
        """Is the site's constant zero, in every possibility (ALL) or some (SOME)? A site of
        another module (`fs`) counts only when its own module does not already make it zero
        (it is reported there) and the value this call passes does."""
        zero = lambda v: v == 0  # noqa: E731
        if s.value_expr is None:
            return Judgement(ALL) if s.kind == "zeros" or s.value == 0 else Judgement(NONE)
        if fs is None:
            return judge(value_of(p, s.function, s.value_expr), zero)
        if judge(value_of(s.function.program or p, s.function, s.value_expr), zero).verdict == ALL:
            return Judgement(NONE)
        return judge(fs.value(p), zero)


def _bias_set_to_vector(site) -> bool:
    """The zeroed layer's own bias is set to a chosen vector next to it
    (`fc.weight.data.zero_(); fc.bias.data.copy_(identity)`, the spatial-transformer init):
    the layer starts by outputting that vector (an identity transform, initial control
    points), and its weight still gets a gradient from its non-zero input. A bias filled with
    one constant is not this (every unit would still start the same)."""
    owner = site.owner
    if not owner:
        return False
    biases = {f"{owner}.bias", f"{owner}.bias.data"}
    cls = site.cls
    fns = list(cls.methods.values()) if cls is not None else [site.function]
    code = cst.Module([]).code_for_node

    def vector(expr) -> bool:
        if literal_number(expr) is not None or not isinstance(expr, cst.BaseExpression):
            return False  # one constant for every unit
        if isinstance(expr, cst.Call):
            leaf = code(expr.func).rsplit(".", 1)[-1]
            return leaf not in ("zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "empty")
        return True

    for f in fns:
        for a in f.assignments:
            if a.target in biases and a.augmented is None and a.value is not None and vector(a.value):
                return True  # `fc.bias.data = torch.from_numpy(initial_points)`
        for n in walk(f.node):
            if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and \
                    n.func.attr.value == "copy_" and code(n.func.value) in biases and \
                    n.args and vector(n.args[0].value):
                return True  # `fc.bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0]))`
    return False
