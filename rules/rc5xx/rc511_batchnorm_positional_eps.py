import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program import torchnames as tn
from recipecheck.program.values import number_of as number
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule

# classes whose signature is (num_features, eps, momentum, ...)
_NORM_CLASSES = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
                 "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"}
# the Lazy variants infer num_features, so eps is their first positional parameter
_LAZY_CLASSES = {"LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
                 "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"}
# an eps this large no longer guards a division: it is a momentum (0.1, 0.8, 0.9, 0.99) put in
# the wrong slot. Real eps values are 1e-5 ... 1e-3.
_EPS_LIMIT = 0.1


def eps_position(qualname: str | None) -> int | None:
    """0-based position of `eps` in the constructor of a torch norm class, else None."""
    if not qualname or not qualname.startswith("torch.nn."):
        return None
    name = tn.last(qualname)
    if name in _NORM_CLASSES:
        return 1
    if name in _LAZY_CLASSES:
        return 0
    return None


def _positional(call: cst.Call, position: int) -> cst.BaseExpression | None:
    pos = 0
    for a in call.args:
        if a.star:
            return None
        if a.keyword is None:
            if pos == position:
                return a.value
            pos += 1
    return None


class BatchNormPositionalEps(Rule):
    """
    ## What it does
    Flags `nn.BatchNorm1d/2d/3d(C, x)` (and `SyncBatchNorm`, `InstanceNorm*d`) whose second
    positional argument reads as a momentum: a number of 0.1 or more (`0.8`, `0.9`, `0.1`),
    or a name like `momentum` / `bn_momentum`. The second positional parameter of these
    classes is `eps`, not `momentum`: `BatchNorm2d(256, 0.8)` sets `eps=0.8`. Real eps values
    (`1e-5`, `1e-3`, `0.001`) passed positionally are fine.

    ## Why is this bad?
    BatchNorm divides by `sqrt(var + eps)`. With `eps=0.8` the divisor is dominated by eps
    for every channel whose variance is below about 1, so the layer no longer normalizes:
    activations with small variance are shrunk instead of scaled to unit variance, the
    rescaling depends on the batch in a different way at train and eval time, and the
    benefit of BatchNorm (a well-conditioned, scale-invariant layer) is largely lost, while
    the momentum the author meant to set stays at its default 0.1. The mistake comes from
    Keras, whose `BatchNormalization(momentum=0.8)` takes momentum first; it is copied
    across a popular GAN collection about fifty times.
    Measured (`recipecheck validate RC511`, seeds 0-4): std of the BatchNorm output at init
    (spiral inputs, default init): 0.226 [0.214, 0.24] with BatchNorm1d(64, 0.9) vs 1 [1, 1]
    with BatchNorm1d(64, momentum=0.9) (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    A deliberately large eps passed positionally is reported too; write it as `eps=...` to
    make the intent explicit.

    ## Example
    ```python
    nn.BatchNorm2d(128, 0.8)
    ```

    ## Use instead
    ```python
    nn.BatchNorm2d(128)                 # defaults: eps=1e-5, momentum=0.1
    nn.BatchNorm2d(128, momentum=0.2)   # Keras' momentum=0.8 is PyTorch's momentum=0.2
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: whether the author meant PyTorch's momentum (the weight of the new
    batch) or Keras' momentum (the weight of the running average, `1 - m` in PyTorch) cannot
    be told from the code.

    ## References
    - PyTorch docs, `torch.nn.BatchNorm2d(num_features, eps=1e-05, momentum=0.1, ...)`.
    - Keras docs, `BatchNormalization(axis=-1, momentum=0.99, epsilon=0.001, ...)`.
    """

    CODE = "RC511"
    NAME = "batchnorm-positional-eps"
    SEVERITY = Severity.ERROR
    MESSAGE = "the second positional argument of BatchNorm is eps, not momentum"
    VALID = (
        "import torch.nn as nn\n"
        "bn = nn.BatchNorm2d(64)\nbn2 = nn.BatchNorm2d(64, momentum=0.8)\n"
        "bn3 = nn.BatchNorm2d(64, eps=1e-3, momentum=0.01)\n",
        # a real eps passed positionally, as in ported TensorFlow models
        "import torch.nn as nn\n"
        "bn = nn.BatchNorm2d(64, 1e-3)\nbn2 = nn.BatchNorm1d(32, 0.001, 0.01)\n"
        "bn3 = nn.BatchNorm2d(num_features=64, eps=0.001)\n",
        "import torch.nn as nn\nBN_EPS = 1e-5\nbn = nn.BatchNorm2d(64, BN_EPS)\n"
        "gn = nn.GroupNorm(32, 64, 1e-5)\n",
    )
    INVALID = (
        "import torch.nn as nn\n"
        "block = nn.Sequential(nn.Conv2d(64, 128, 3, 1, 1), nn.BatchNorm2d(128, 0.8),  # expect: RC511\n"
        "                      nn.LeakyReLU(0.2, inplace=True))\n",
        "import torch.nn as nn\n"
        "def block(in_feat, out_feat, normalize=True):\n"
        "    layers = [nn.Linear(in_feat, out_feat)]\n"
        "    if normalize:\n"
        "        layers.append(nn.BatchNorm1d(out_feat, 0.8))  # expect: RC511\n"
        "    layers.append(nn.LeakyReLU(0.2, inplace=True))\n    return layers\n",
        "from torch import nn\nclass Net(nn.Module):\n"
        "    def __init__(self, c, bn_momentum=0.9):\n        super().__init__()\n"
        "        self.bn = nn.BatchNorm2d(c, bn_momentum)  # expect: RC511\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        for cs in p.calls:
            position = eps_position(cs.qualname)
            if position is None:
                continue
            arg = _positional(cs.node, position)
            if arg is None:
                continue
            value = number(p, cs.function, arg)
            name = dotted_name(arg)
            leaf = name.rsplit(".", 1)[-1].lower() if name else ""
            if "momentum" in leaf or leaf in ("mom", "bn_mom"):
                what = f"`{ctx.code(arg)}`"
            elif value is not None and value >= _EPS_LIMIT:
                what = f"{value:g}"
            else:
                continue
            cls = tn.last(cs.qualname)
            ctx.report(cs.node, (
                f"`{ctx.code(cs.node)}` passes {what} positionally where {cls} takes `eps`, not "
                "`momentum`: an eps this large stops the layer from normalizing "
                "and momentum stays 0.1; drop it or pass `momentum=` by keyword (Keras' momentum m "
                "is PyTorch's 1 - m) (RC511)"))
