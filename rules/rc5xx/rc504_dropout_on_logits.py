import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.layers import layer_analysis
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule


class DropoutOnLogits(Rule):
    """
    ## What it does
    Flags a Dropout that is the last operation of a model: the model's output (logits,
    regression values) goes through dropout. Checked on whole models: the last element of
    an `nn.Sequential` model, or the value `forward()` returns, following sub-modules and
    `nn.Sequential` attributes. Blocks of a larger model (a transformer layer's residual
    dropout) are not whole models and are not flagged.

    ## Why is this bad?
    Dropout on the output zeroes random logits (and rescales the rest by 1/(1-p)) during
    training: the loss sees corrupted predictions, with noise that no later layer can learn
    to compensate, so training is noisier and slower for no regularization benefit. Dropout
    belongs on hidden units, before the final layer.

    Measured (`recipecheck validate RC504`, seeds 0-4): training loss (eval mode) after 20 Adam
    epochs (spiral, 2x128 MLP): 0.0951 [0.0782, 0.121] with Dropout(0.5) on the logits vs 0.0776
    [0.0621, 0.0983] with Dropout(0.5) before the last Linear (mean [min, max]); the claim held
    on 2 of 5 seeds.

    ## Known problems
    Only the model's final output counts: a block (an encoder, a feature extractor) whose instance
    is passed into another module's construction feeds further layers and is not reported, nor
    is a module built inside another class that has a `forward()` (a block of a model whose base
    class comes from a library, `BertModel(PreTrainedModel)` building `BertEmbeddings`).
    Models whose output is computed dynamically are not followed. A module of the file that
    is built and used only as a feature extractor for another model (whose output is not
    the loss input) is taken as a whole model; suppress with `# noqa: RC504` there. A class
    that the file only defines, never builds, is not checked (it may be a block).

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10), nn.Dropout(0.5))
    ```

    ## Use instead
    ```python
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
      Overfitting", JMLR 2014 (dropout on hidden and input units).
    - Goodfellow, Bengio, Courville, *Deep Learning*, section 7.12.
    """

    CODE = "RC504"
    NAME = "dropout-on-logits"
    SEVERITY = Severity.WARNING
    MESSAGE = "Dropout is applied to the model's output"
    VALID = (
        # an encoder / feature extractor ending in dropout feeds the classifier's layers
        (
        'import torch.nn as nn\n'
        '\n'
        'class Encoder(nn.Module):\n'
        '    def __init__(self, vocab, emb_dim, hid_dim, dropout):\n'
        '        super().__init__()\n'
        '        self.embedding = nn.Embedding(vocab, emb_dim)\n'
        '        self.proj = nn.Linear(emb_dim, hid_dim)\n'
        '        self.dropout = nn.Dropout(dropout)\n'
        '\n'
        '    def forward(self, src):\n'
        '        return self.dropout(self.proj(self.embedding(src)).relu())\n'
        '\n'
        'class Classifier(nn.Module):\n'
        '    def __init__(self, encoder, hid_dim, n_classes):\n'
        '        super().__init__()\n'
        '        self.encoder = encoder\n'
        '        self.fc = nn.Linear(hid_dim, n_classes)\n'
        '\n'
        '    def forward(self, src):\n'
        '        return self.fc(self.encoder(src).mean(dim=1))\n'
        '\n'
        'encoder = Encoder(25000, 100, 256, 0.5)\n'
        'model = Classifier(encoder, 256, 2)\n'
        'feature_extractor = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5))\n'
        'probe = nn.Sequential(feature_extractor, nn.Linear(256, 10))\n'
        ),
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))\n",
        # a transformer block ends with residual dropout: it is a block, not the model
        "import torch.nn as nn\n"
        "class Block(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.ln = nn.LayerNorm(d)\n        self.fc = nn.Linear(d, d)\n"
        "        self.drop = nn.Dropout(0.1)\n"
        "    def forward(self, x):\n        return self.drop(self.fc(self.ln(x)))\n"
        "class Model(nn.Module):\n    def __init__(self, d, n):\n        super().__init__()\n"
        "        self.blocks = nn.ModuleList([Block(d) for _ in range(n)])\n"
        "        self.head = nn.Linear(d, 10)\n"
        "    def forward(self, x):\n        for b in self.blocks:\n            x = x + b(x)\n"
        "        return self.head(x)\n",
        # dropout on features returned alongside the logits is only the second output
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(8, 8)\n        self.out = nn.Linear(8, 2)\n"
        "        self.drop = nn.Dropout(0.3)\n"
        "    def forward(self, x):\n        h = self.drop(self.fc(x).relu())\n"
        "        return self.out(h), h\n",
        # the dropout is appended only between hidden layers (the loop's last pass skips it)
        "import torch.nn as nn\ndef mlp(dims, p=0.2):\n    layers = []\n"
        "    for i in range(len(dims) - 1):\n        layers.append(nn.Linear(dims[i], dims[i + 1]))\n"
        "        if i < len(dims) - 2:\n            layers += [nn.ReLU(), nn.Dropout(p)]\n"
        "    return nn.Sequential(*layers)\nmodel = mlp([10, 32, 32, 2])\n",
    )
    INVALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(\n    nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10),\n"
        "    nn.Dropout(0.5),  # expect: RC504\n)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(20, 64)\n        self.fc2 = nn.Linear(64, 3)\n"
        "        self.drop = nn.Dropout(0.2)\n"
        "    def forward(self, x):\n        logits = self.fc2(F.relu(self.fc1(x)))\n"
        "        return self.drop(logits)  # expect: RC504\n"
        "model = Net()\n",
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU())\n"
        "        self.head = nn.Sequential(nn.Linear(64, 3),\n"
        "                                  nn.Dropout(0.1))  # expect: RC504\n"
        "    def forward(self, x):\n        return self.head(self.body(x))\n"
        "def build():\n    return Net()\n",
    )

    def check(self, ctx: Context) -> None:
        la = layer_analysis(ctx.program)
        for unit in la.model_units(instantiated=True):
            ops = unit.output_ops()
            if not ops or ops[0].kind != "dropout" or ops[0].conditional:
                continue
            if not any(o.kind in ("linear", "conv", "embedding", "rnn", "module") for o in ops[1:]):
                continue
            if _feeds_another_module(ctx.program, unit):
                continue  # an encoder/feature extractor passed into the model: not its output
            drop = ops[0]
            ctx.report(drop.node, (
                f"{drop.describe()} is the last operation of `{unit.name}`: it zeroes random outputs "
                "(logits) in training, corrupting what the loss sees; apply dropout to hidden "
                "units, before the final layer (RC504)"))


def _feeds_another_module(p, unit) -> bool:
    """An instance of `unit` is passed to another module's construction
    (`Classifier(encoder, ...)`, `nn.Sequential(feature_extractor, head)`): its output feeds
    further layers, so dropout at its end is hidden-unit dropout."""
    names = set()
    for a in p.assignments:
        v = a.value
        if a.augmented is not None or v is None:
            continue
        if v is unit.node or (unit.kind == "class" and isinstance(v, cst.Call) and
                              dotted_name(v.func) == unit.name):
            names.add(a.target)
    if not names:
        return False
    for cs in p.calls:
        q = cs.qualname or ""
        d = cs.dotted or ""
        builds_module = q.startswith("torch.nn.") or (d in p.classes and p.classes[d].is_module)
        if not builds_module or cs.node is unit.node:
            continue
        if any(dotted_name(arg.value) in names for arg in cs.node.args):
            return True
    return False
