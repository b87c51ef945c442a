import libcst as cst

from recipecheck.rule import Field

from recipecheck.finding import Severity
from recipecheck.program.hparams import dict_value, opt_arg, param_groups
from recipecheck.program.imports import dotted_name
from recipecheck.program.init import _TEST_PATH
from recipecheck.program.values import ALL, hparam, judge, optimizer_sites, owner_view, settled_in_owner
from recipecheck.rule import Context, Rule, RuleOptions
from recipecheck.rules.rc6xx.rc605_rnn_without_grad_clipping import _is_rnn

WEIGHT_LAYERS = {"Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                 "ConvTranspose3d", "LSTM", "GRU", "RNN", "TransformerEncoderLayer",
                 "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder", "Transformer",
                 "MultiheadAttention", "LazyLinear", "LazyConv2d"}
_DEEP_FACTORIES = ("torchvision.models.", "timm.create_model", "timm.models.")


class Options(RuleOptions):
    min_layers: int = Field(3, alias="min-layers", ge=1)


def network_depth(p) -> int:
    """Weight layers built in the file; a large number when a layer is built in a loop or a
    pretrained architecture is loaded."""
    n = 0
    uses: dict[str, int] = {}
    for cs in p.calls:
        if cs.dotted:
            uses[cs.dotted] = uses.get(cs.dotted, 0) + 1
    for cs in p.calls:
        q = cs.qualname or ""
        if q.startswith(_DEEP_FACTORIES) or (q.startswith("transformers.") and q.endswith("from_pretrained")):
            return 1000
        if q.startswith("torch.nn.") and q.rsplit(".", 1)[-1] in WEIGHT_LAYERS:
            if cs.loop is not None:
                return 1000
            f = cs.function
            if f.cls is not None and f.name == "__init__":
                n += max(1, uses.get(f.cls.name, 0))  # one set of layers per instance built
            elif f.parent is not None:
                n += max(1, len(f.callers))  # a layer factory like conv_bn(cin, cout)
            else:
                n += 1
    return n


class PlainSgdNoMomentum(Rule):
    """
    ## What it does
    Reports `torch.optim.SGD` built without momentum (no `momentum=` argument, or one the file
    sets to 0) when the file trains a deep network: at least `min-layers` (3) weight layers
    (Linear/Conv/RNN/Transformer), a layer built in a loop, or a torchvision/timm/transformers
    architecture.

    ## Why is this bad?
    Plain SGD crawls along the low-curvature directions of a deep network's loss surface and
    zig-zags across the high-curvature ones. Momentum (0.9, often Nesterov) averages the
    steps and trains deep networks several times faster at the same LR; every standard SGD
    recipe (ResNet, VGG, word LM with SGD aside) uses it. Adam/AdamW are the other sensible
    default.

    Measured (`recipecheck validate RC606`, seeds 0-4): SGD steps to a training loss of 0.5,
    best over lr in {0.01, 0.1, 1} (301: never in 300): 299 [291, 301] with SGD, momentum=0 vs
    93.8 [77, 113] with SGD, momentum=0.9 (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Depth is estimated from the layers the file builds (and, for an optimizer built in another
    project module, the layers that module builds); a model class imported from another file
    is otherwise not counted. When the optimizer's own model is visible (a layer, an
    `nn.Sequential` of layers or a module class of the file), its depth decides: plain SGD on an
    `nn.Linear(3, 2)` next to a ResNet is not reported. Files of tests are skipped. A `momentum=` the code passes is followed like RC602's LR; when
    only some of its values are 0 the message names the condition. Recurrent language models (an RNN/LSTM/GRU in the file) are
    skipped: plain SGD with gradient clipping is their classic recipe (Zaremba et al. 2014,
    Merity et al. 2018). Off by default (info).

    ## Example
    ```python
    optimizer = torch.optim.SGD(resnet.parameters(), lr=0.1, weight_decay=1e-4)
    ```

    ## Use instead
    ```python
    optimizer = torch.optim.SGD(resnet.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    ```

    ## Options
    - `min-layers` (int, default 3): the number of weight layers from which a network counts as deep.

    ## Fix safety
    No automatic fix.

    ## References
    - Sutskever, Martens, Dahl, Hinton (2013), "On the importance of initialization and momentum in deep learning".
    - Polyak (1964); Nesterov (1983).
    """

    CODE = "RC606"
    NAME = "plain-sgd-no-momentum"
    SEVERITY = Severity.INFO
    MESSAGE = "SGD without momentum on a deep network"
    Options = Options
    VALID = (
        "import torch\nimport torch.nn as nn\nenc = nn.Embedding(10000, 400)\nrnn = nn.LSTM(400, 1150, 3)\n"
        "dec = nn.Linear(1150, 10000)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=30, weight_decay=1.2e-6)\n",
        "import torch\nimport torchvision\nmodel = torchvision.models.resnet50()\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)\n",
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(10, 2)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
        "import torch\nimport torchvision\nmodel = torchvision.models.resnet18()\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=args.momentum)\n",
    )
    INVALID = (
        "import torch\nimport torchvision\nmodel = torchvision.models.resnet50()\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)  # expect: RC606\n",
        "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),\n"
        "                      nn.ReLU(), nn.Linear(256, 10))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.0)  # expect: RC606\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        if _TEST_PATH.search(ctx.path.replace("\\", "/")):
            return  # a unit test of a training step, not a recipe
        depth = None
        for site in optimizer_sites(p):
            c = site.construction
            if c.name != "SGD":
                continue
            partial = ""
            if opt_arg(c, "momentum") is not None:
                j = judge(hparam(p, site, "momentum"), lambda m: m <= 0)
                if not j:
                    continue
                partial = "" if j.verdict == ALL else f"; only {j.when()}"
            if any(dict_value(g, "momentum") is not None for g in param_groups(c)):
                continue
            if depth is None:
                depth = 0 if any(_is_rnn(cs.qualname) for cs in p.calls) else network_depth(p)
            d = depth
            other = c.function.program
            if site.via and other is not None and other is not p and depth:
                d = max(d, 0 if any(_is_rnn(cs.qualname) for cs in other.calls) else network_depth(other))
            if d < self.options.min_layers:
                continue
            own = _model_depth(p, c)
            if own is not None and own < self.options.min_layers:
                continue  # this optimizer's own model is shallow (`SGD(linear.parameters())`)
            owner = owner_view(p, site)
            if owner is not None and (opt_arg(c, "momentum") is None or settled_in_owner(
                    p, site, "momentum", lambda m: m <= 0)) and not any(_is_rnn(cs.qualname) for cs in owner.calls) \
                    and network_depth(owner) >= self.options.min_layers:
                continue  # the module that builds it is reported itself, whatever this file passes
            via = f" (the optimizer is {site.via})" if site.via else ""
            ctx.report(site.report, (
                "SGD without momentum on a deep network crawls along flat directions and zig-zags "
                f"across steep ones; use momentum=0.9 (nesterov=True), or Adam/AdamW{via}{partial} (RC606)"))


def _model_depth(p, c) -> int | None:
    """Weight layers of the one model this optimizer trains, when the file shows it: the
    params owner bound once to a torch.nn layer, an nn.Sequential of layers, or a module class
    of the file (its own layers; a nested module class of the file or anything else unknown
    gives None, the file-wide count then decides)."""
    owner = c.params_owner
    if not owner or "." in owner:
        return None
    binds = [a for a in p.assignments if a.target == owner and a.augmented is None]
    if len(binds) != 1 or not isinstance(binds[0].value, cst.Call):
        return None
    call = binds[0].value
    q = p.imports.resolve(call.func) or ""
    leaf = q.rsplit(".", 1)[-1]
    if q.startswith("torch.nn.") and leaf in WEIGHT_LAYERS:
        return 1
    if q == "torch.nn.Sequential":
        n = 0
        for a in call.args:
            if not isinstance(a.value, cst.Call):
                return None  # `*layers`, a module built elsewhere
            aq = p.imports.resolve(a.value.func) or ""
            if not aq.startswith("torch.nn."):
                return None
            n += aq.rsplit(".", 1)[-1] in WEIGHT_LAYERS
        return n
    d = dotted_name(call.func)
    cls = p.classes.get(d) if d else None
    if cls is None or not cls.is_module:
        return None
    n = 0
    for cs in p.calls:
        f = cs.function
        while f is not None and f.cls is None:
            f = f.parent
        if f is None or f.cls is not cls:
            continue
        cq = cs.qualname or ""
        if cs.dotted in p.classes or cs.dotted in p.functions or cs.loop is not None or \
                cq.startswith(_DEEP_FACTORIES):
            return None  # blocks of other classes, a layer factory (`conv_bn()`), layers built
            # in a loop, a library model: the file-wide count decides
        if cq.startswith("torch.nn.") and cq.rsplit(".", 1)[-1] in WEIGHT_LAYERS:
            n += 1
    return n
