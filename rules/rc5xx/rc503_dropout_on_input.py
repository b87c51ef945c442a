from recipecheck.finding import Severity
from recipecheck.program.layers import WEIGHTED, layer_analysis
from recipecheck.rule import Context, Rule


class DropoutOnInput(Rule):
    """
    ## What it does
    Flags a Dropout applied to the model's raw input, before its first Linear/Conv layer:
    the first layer of an `nn.Sequential` model, or the first operation on `forward()`'s
    input. Only whole models are checked: a block or classifier head of a larger model of the
    same file (whose input is a hidden representation) is not, and dropout after an
    embedding is not input dropout.

    ## Why is this bad?
    Dropping raw input features (pixels, tabular columns) is a strong, unusual
    regularizer: with the usual hidden-layer rate (0.5) it destroys most of the signal.
    Srivastava et al. use a much lower rate on inputs (0.2, i.e. keeping 80%) than on hidden
    units; with a hidden-layer rate it usually underfits. Often it is a layer placed one
    position too early.

    Measured (`recipecheck validate RC503`, seeds 0-4): training accuracy after 20 Adam epochs
    (spiral, 2x128 MLP): 0.685 [0.633, 0.747] with Dropout(0.5) on the input vs 0.967 [0.947,
    0.977] with Dropout(0.5) after the first layer (mean [min, max]); the claim held on 5 of 5
    seeds.

    ## Known problems
    Advice only (off by default): input dropout at a low rate is a legitimate regularizer
    (denoising, the original dropout paper's MNIST networks).

    ## Example
    ```python
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    ```

    ## Use instead
    ```python
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Srivastava, Hinton, Krizhevsky, Sutskever, Salakhutdinov, "Dropout: A Simple Way to
      Prevent Neural Networks from Overfitting", JMLR 2014 (input retention 0.8, hidden 0.5).
    - CS231n, "Neural Networks Part 2: Setting up the Data and the Loss" (dropout).
    """

    CODE = "RC503"
    NAME = "dropout-on-input"
    SEVERITY = Severity.INFO
    MESSAGE = "Dropout is applied to the raw input"
    VALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))\n",
        # AlexNet/VGG classifier head: its input is the feature map, not the raw input
        "import torch.nn as nn\n"
        "class AlexNetLite(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.features = nn.Sequential(nn.Conv2d(3, 64, 11, 4), nn.ReLU(), nn.MaxPool2d(3, 2))\n"
        "        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(64 * 6 * 6, 10))\n"
        "    def forward(self, x):\n        x = self.features(x)\n"
        "        return self.classifier(x.flatten(1))\n",
        # dropout after the embedding (word-level language model)
        "import torch.nn as nn\n"
        "class RNNModel(nn.Module):\n    def __init__(self, ntoken):\n        super().__init__()\n"
        "        self.encoder = nn.Embedding(ntoken, 200)\n        self.drop = nn.Dropout(0.2)\n"
        "        self.rnn = nn.LSTM(200, 200)\n        self.decoder = nn.Linear(200, ntoken)\n"
        "    def forward(self, tokens, hidden):\n        emb = self.drop(self.encoder(tokens))\n"
        "        output, hidden = self.rnn(emb, hidden)\n"
        "        return self.decoder(self.drop(output)), hidden\n",
        # a file that only defines a block: it may be used deeper inside a model elsewhere
        "import torch.nn as nn\n"
        "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.drop = nn.Dropout(0.5)\n        self.fc = nn.Linear(512, 10)\n"
        "    def forward(self, x):\n        return self.fc(self.drop(x))\n",
    )
    INVALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(\n    nn.Dropout(0.5),  # expect: RC503\n"
        "    nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10),\n)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class TabularNet(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(d, 64)\n        self.fc2 = nn.Linear(64, 1)\n"
        "    def forward(self, x):\n"
        "        x = F.dropout(x.float(), p=0.5, training=self.training)  # expect: RC503\n"
        "        return self.fc2(F.relu(self.fc1(x)))\n"
        "model = TabularNet(16)\n",
    )

    def check(self, ctx: Context) -> None:
        la = layer_analysis(ctx.program)
        for unit in la.model_units(instantiated=True):
            for step in unit.steps:
                if step.op.kind != "dropout" or not step.from_input or step.op.conditional:
                    continue
                if any(o.significant for o in step.before):
                    continue
                if not any(s.op.kind in WEIGHTED for s in unit.steps):
                    continue
                ctx.report(step.op.node, (
                    f"{step.op.describe()} drops the model's raw input features before the first "
                    "Linear/Conv layer: at hidden-layer rates this destroys most of the signal; "
                    "move it after the first layer, or use a low rate (<= 0.2) on purpose (RC503)"))
