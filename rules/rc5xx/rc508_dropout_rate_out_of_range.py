from recipecheck.rule import Field

from recipecheck.finding import Severity
from recipecheck.program import torchnames as tn
from recipecheck.program.layers import dropout_p, functional_kind, layer_analysis, nn_kind
from recipecheck.rule import Context, Rule, RuleOptions

_KWARG_CLASSES = {"Transformer", "TransformerEncoderLayer", "TransformerDecoderLayer",
                  "MultiheadAttention", "LSTM", "GRU", "RNN"}


class DropoutRateOutOfRange(Rule):
    """
    ## What it does
    Flags a literal dropout probability that is invalid (`p >= 1` or `p < 0`) or above 0.5
    (the `max-hidden-p` option) on a layer that is not the final one. Checked:
    `nn.Dropout(p)` and its 1d/2d/3d/alpha variants, `F.dropout(x, p=...)`, and the
    `dropout=` argument of `nn.Transformer*`, `nn.MultiheadAttention`, `nn.LSTM`/`GRU`/`RNN`
    (always hidden layers). A Dropout module whose place in the model is known counts as
    final when only the output layer follows it; a rate above 0.5 there (the classic
    classifier dropout) is allowed.

    ## Why is this bad?
    `p` is the probability of *dropping* a unit. `p >= 1` zeroes everything (or raises),
    `p < 0` raises. A rate such as 0.8 or 0.9 on hidden layers usually means the value was
    copied from a TensorFlow 1 `keep_prob` (probability of keeping): the network then
    trains on a tenth of its units and underfits badly. The usual range is 0.1-0.5 for
    hidden layers (0.5 in the original paper's fully connected layers, lower for
    convolutions and transformers).

    Measured (`recipecheck validate RC508`, seeds 0-4): training accuracy after 20 Adam epochs
    (spiral, 2x128 MLP): 0.698 [0.633, 0.803] with Dropout(0.8) vs 0.974 [0.95, 0.993] with
    Dropout(0.2) (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Rates computed at run time (argparse, config files) are not checked.

    ## Example
    ```python
    self.drop = nn.Dropout(0.9)  # meant: keep 90%
    encoder_layer = nn.TransformerEncoderLayer(512, 8, dropout=0.7)
    ```

    ## Use instead
    ```python
    self.drop = nn.Dropout(0.1)
    encoder_layer = nn.TransformerEncoderLayer(512, 8, dropout=0.1)
    ```

    ## Options
    - `max-hidden-p` (float, default 0.5): the highest dropout probability accepted on a
      hidden (non-final) layer.

    ## Fix safety
    No automatic fix: the intended rate cannot be known (0.9 may mean 0.1).

    ## References
    - Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
      Overfitting", JMLR 2014 (retention 0.5-0.8 for hidden units).
    - PyTorch docs, `torch.nn.Dropout` ("p - probability of an element to be zeroed").
    """

    class Options(RuleOptions):
        max_hidden_p: float = Field(0.5, alias="max-hidden-p")

    CODE = "RC508"
    NAME = "dropout-rate-out-of-range"
    SEVERITY = Severity.WARNING
    MESSAGE = "dropout probability is invalid or too high for a hidden layer"
    VALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))\n"
        "enc = nn.TransformerEncoderLayer(512, 8, dropout=0.1)\nrnn = nn.LSTM(256, 256, 2, dropout=0.3)\n",
        # a high rate right before the output layer is a deliberate classifier-head choice
        "import torch.nn as nn\n"
        "head = nn.Sequential(nn.Linear(2048, 512), nn.ReLU(), nn.Dropout(0.7), nn.Linear(512, 10))\n",
        # rate from the command line: unknown
        "import torch.nn as nn\ndrop = nn.Dropout(args.dropout)\n",
    )
    INVALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(\n    nn.Linear(784, 512), nn.ReLU(),\n"
        "    nn.Dropout(0.9),  # expect: RC508\n    nn.Linear(512, 512), nn.ReLU(),\n"
        "    nn.Linear(512, 10),\n)\n",
        "import torch.nn as nn\n"
        "enc = nn.TransformerEncoderLayer(d_model=256, nhead=4, dropout=0.8)  # expect: RC508\n"
        "drop = nn.Dropout(p=1.0)  # expect: RC508\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def forward(self, x):\n"
        "        return F.dropout(x, p=-0.1, training=self.training)  # expect: RC508\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        limit = self.options.max_hidden_p if self.options is not None else 0.5
        la = None
        for cs in p.calls:
            q = cs.qualname
            if not q or not q.startswith("torch.nn."):
                continue
            kwarg_class = tn.last(q) in _KWARG_CLASSES and q.count(".") == 2
            is_layer = nn_kind(q) == "dropout"
            is_func = q.startswith("torch.nn.functional.") and functional_kind(q) == "dropout"
            if not (kwarg_class or is_layer or is_func):
                continue
            value, node = dropout_p(cs.node, q)
            if value is None:
                continue
            what = f"`{ctx.code(node)}`" if node is not None else f"p={value:g}"
            if value >= 1 or value < 0:
                ctx.report(cs.node, (
                    f"dropout probability {what} in `{ctx.code(cs.node)}` is outside [0, 1): it "
                    "drops every unit or raises; p is the probability of dropping (RC508)"))
                continue
            if value <= limit:
                continue
            if not kwarg_class:
                if la is None:
                    la = layer_analysis(p)
                if not _is_hidden(la, cs.node):
                    continue
            ctx.report(cs.node, (
                f"dropout probability {what} on a hidden layer drops {value:.0%} of the units, "
                f"above the usual 0.1-{limit:g}: was it a TensorFlow keep_prob? p is the "
                "probability of dropping (RC508)"))


def _is_hidden(la, node) -> bool:
    """Whether the dropout built or called at `node` sits before more than the output layer."""
    hidden = False
    for unit in la.model_units():
        if unit.output is None:
            continue
        ops = [o for o in unit.output.ops if o.significant]
        for i, o in enumerate(ops):
            if o.node is not node and o.ctor is not node:
                continue
            rest = [r for r in ops[i + 1:] if not r.is_activation and
                    r.kind not in ("softmax", "log_softmax", "shape")]
            if len(rest) > 1 or (rest and rest[0].kind not in ("linear", "conv")):
                hidden = True
    return hidden
