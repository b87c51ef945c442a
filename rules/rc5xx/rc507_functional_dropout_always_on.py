import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.gates import guards_of, mentions_training, training_gated
from recipecheck.program.layers import functional_kind, layer_analysis
from recipecheck.program.nodes import call_arg, literal_number
from recipecheck.program.values import ALL, judge, value_of
from recipecheck.rule import Context, FixSpec, Rule


class FunctionalDropoutAlwaysOn(Rule):
    """
    ## What it does
    Flags `F.dropout(x, p)` (and `dropout1d/2d/3d`, `alpha_dropout`,
    `feature_alpha_dropout`) called in a method of an `nn.Module` subclass without the
    `training` argument, and `F.scaled_dot_product_attention(..., dropout_p=p)` whose
    `dropout_p` is not switched off at evaluation; also an `nn.Dropout` module built inside
    `forward` (or another method but `__init__`) and applied there (`nn.Dropout(p=0.5)(x)`,
    `drop = nn.Dropout(p); drop(x)`), which is never registered and so never sees `eval()`.
    `F.dropout(x, p, training=self.training)`,
    the positional `F.dropout(x, p, self.training)`, a call under `if self.training:` (or
    `if self.training and p > 0:`), `dropout_p=self.p if self.training else 0.0` (also through
    a local variable) and `nn.Dropout` modules are fine.

    ## Why is this bad?
    Unlike `nn.Dropout`, the functional form does not know about `model.eval()`: its
    `training` argument defaults to True, so dropout stays on at evaluation and inference.
    Validation metrics are computed on a randomly thinned network (noisy and pessimistic),
    predictions change from one call to the next, and model selection is driven by noise.

    Measured (`recipecheck validate RC507`, seeds 0-4): std of the outputs over 10 eval() passes
    on the same inputs: 1.25 [1.17, 1.37] with F.dropout(h, p) vs 0 [0, 0] with
    training=self.training (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    An explicit `training=True` is taken as deliberate (Monte Carlo dropout) and not
    reported. A `dropout_p` attribute that the module itself resets in `train()`/`eval()`
    overrides is not recognised. A probability that is 0 in every value the code gives it
    (a literal, a name, an attribute or config field set to 0, the argument of every call that
    builds the module) is not reported; a parameter's default alone does not count, since a
    caller elsewhere may pass another value.

    ## Example
    ```python
    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, 0.5)
        return self.fc2(x)
    ```

    ## Use instead
    ```python
        x = F.dropout(x, 0.5, training=self.training)
    ```
    or an `nn.Dropout(0.5)` module, which follows `model.train()` / `model.eval()`.

    ## Options
    None.

    ## Fix safety
    Safe: `training=self.training` is added to the call. It is offered only in methods whose
    first parameter is `self` (so `self.training` exists) and keeps the call's other
    arguments and formatting.

    ## References
    - PyTorch docs, `torch.nn.functional.dropout` (`training` defaults to True).
    - PyTorch forum, "F.dropout in eval mode" (a frequently reported pitfall).
    - Runtime twin: RT111 train-mode-during-eval.
    """

    CODE = "RC507"
    NAME = "functional-dropout-always-on"
    SEVERITY = Severity.ERROR
    MESSAGE = "F.dropout without training=self.training stays on at evaluation"
    FIX = "safe"
    STATIC_TWIN = "RT111"
    VALID = (
        # the gate written the other way round, through a local (LLMs-from-scratch)
        "import torch.nn as nn\nclass MHA(nn.Module):\n    def __init__(self, p):\n        super().__init__()\n"
        "        self.dropout = p\n    def forward(self, q, k, v):\n"
        "        use_dropout = 0. if not self.training else self.dropout\n"
        "        return nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=use_dropout, is_causal=True)\n",
        # the probability is 0 in every configuration the code builds
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self, p):\n        super().__init__()\n"
        "        self.p = p\n        self.fc = nn.Linear(4, 2)\n    def forward(self, x):\n"
        "        return self.fc(F.dropout(x, self.p))\nmodel = Net(p=0.0)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def forward(self, x):\n"
        "        x = F.dropout(x, 0.5, training=self.training)\n"
        "        x = F.dropout(x, 0.5, self.training)\n"
        "        return F.dropout2d(x, p=0.1, training=self.training, inplace=False)\n",
        # nn.Dropout modules follow eval() by themselves (built in __init__ or a builder it calls)
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.head = self._head()\n    def _head(self):\n"
        "        return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2))\n",
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.drop = nn.Dropout(0.5)\n    def forward(self, x):\n        return self.drop(x)\n",
        # Monte Carlo dropout: explicitly on, on purpose
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class MCNet(nn.Module):\n    def forward(self, x):\n"
        "        return F.dropout(x, 0.1, training=True)\n",
        # outside a module (a data augmentation helper): not a model's forward
        "import torch.nn.functional as F\ndef corrupt(x):\n    return F.dropout(x, 0.1)\n",
        # gated by the module's mode (EfficientNet-style classifier dropout)
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class EfficientNet(nn.Module):\n    def forward(self, x):\n"
        "        out = self.layers(x)\n        dropout_rate = self.cfg['dropout_rate']\n"
        "        if self.training and dropout_rate > 0:\n"
        "            out = F.dropout(out, p=dropout_rate)\n        return self.linear(out)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Block(nn.Module):\n    def forward(self, x):\n"
        "        if not self.training:\n            return self.fc(x)\n"
        "        return self.fc(F.dropout2d(x, 0.1))\n",
        # attention dropout switched off at evaluation (nanoGPT, timm)
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Attention(nn.Module):\n    def forward(self, q, k, v):\n"
        "        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0,"
        " is_causal=True)\n"
        "        dropout_p = self.attn_drop_p if self.training else 0.0\n"
        "        z = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=dropout_p)\n"
        "        return y + z + F.scaled_dot_product_attention(q, k, v)\n",
    )
    INVALID = (
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc1 = nn.Linear(20, 64)\n        self.fc2 = nn.Linear(64, 2)\n"
        "    def forward(self, x):\n        x = F.relu(self.fc1(x))\n"
        "        x = F.dropout(x, 0.5)  # expect: RC507\n        return self.fc2(x)\n",
        "import torch.nn as nn\nfrom torch.nn import functional\n"
        "class Net(nn.Module):\n    def forward(self, x):\n"
        "        return functional.dropout(x, p=0.2, inplace=False)  # expect: RC507\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Attention(nn.Module):\n    def __init__(self, dropout=0.1):\n        super().__init__()\n"
        "        self.dropout_p = dropout\n"
        "    def forward(self, q, k, v):\n"
        "        return F.scaled_dot_product_attention(  # expect: RC507\n"
        "            q, k, v, attn_mask=None, dropout_p=self.dropout_p, is_causal=False)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Block(nn.Module):\n    def forward(self, x):\n"
        "        if self.use_drop:\n            x = F.alpha_dropout(x, 0.1)  # expect: RC507\n"
        "        return F.feature_alpha_dropout(x, 0.1)  # expect: RC507\n",
        # a Dropout module built in forward is never registered: eval() cannot reach it
        "import torch.nn as nn\n"
        "class Head(nn.Module):\n    def forward(self, x):\n"
        "        x = nn.Dropout(p=0.5)(x)  # expect: RC507\n        return self.fc(x)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        la = None
        for cs in p.calls:
            if cs.qualname == _SDPA:
                if la is None:
                    la = layer_analysis(p)
                self._check_sdpa(ctx, la, cs)
                continue
            if cs.qualname in _DROPOUT_MODULES:
                if la is None:
                    la = layer_analysis(p)
                self._check_module_built_in_call(ctx, la, cs)
                continue
            if functional_kind(cs.qualname) != "dropout" or not cs.qualname.startswith("torch.nn.functional."):
                continue
            f = cs.function
            if f.cls is None:
                continue
            if la is None:
                la = layer_analysis(p)
            if not la.is_module_class(f.cls.name):
                continue
            call = cs.node
            if any(a.star for a in call.args):
                continue
            if any(a.keyword is not None and a.keyword.value == "training" for a in call.args):
                continue
            if sum(1 for a in call.args if a.keyword is None) >= 3:
                continue
            if _always_zero(p, f, call_arg(call, "p", 1)):
                continue  # p=0: nothing is dropped
            if training_gated(f.node, call):
                continue  # `if self.training: x = F.dropout(x, p)` runs only in training
            fix = None
            node = f.node
            if isinstance(node, cst.FunctionDef) and node.params.params and \
                    node.params.params[0].name.value == "self":
                fix = FixSpec("safe", "pass training=self.training", old=call, new=_with_training(call))
            ctx.report(call, (
                f"`{ctx.code(call)}` in `{f.key}` has no `training=` argument: functional dropout "
                "ignores model.eval() and stays on at evaluation, so validation and inference are "
                "random; pass `training=self.training` or use an nn.Dropout module (RC507)"), fix=fix)


    def _check_module_built_in_call(self, ctx: Context, la, cs) -> None:
        """`x = nn.Dropout(p=0.5)(x)` in forward: the module is built on every call and never
        registered, so `model.eval()` cannot reach it and it is always in training mode."""
        f = cs.function
        if f.cls is None or f.name == "__init__" or not la.is_module_class(f.cls.name):
            return
        call = cs.node
        applied = any(isinstance(c.node.func, cst.Call) and c.node.func is call
                      for c in ctx.program.calls if c.function is f)
        if not applied:
            # `drop = nn.Dropout(p)` then `drop(x)` in the same method
            names = {a.target for a in f.assignments if a.value is call and "." not in a.target}
            applied = bool(names) and any(c.dotted in names for c in ctx.program.calls if c.function is f)
        if not applied or _always_zero(ctx.program, f, call_arg(call, "p", 0)):
            return
        if training_gated(f.node, call):
            return
        ctx.report(call, (
            f"`{ctx.code(call)}` is built inside `{f.key}` and applied at once: the module is never "
            "registered, so model.eval() cannot switch it off and dropout stays on at evaluation; "
            "build it in __init__ as an attribute, or use F.dropout(..., training=self.training) "
            "(RC507)"))

    def _check_sdpa(self, ctx: Context, la, cs) -> None:
        f = cs.function
        if f.cls is None or not la.is_module_class(f.cls.name):
            return
        call = cs.node
        if any(a.star for a in call.args):
            return
        arg = _sdpa_dropout_arg(call)
        if arg is None or _always_zero(ctx.program, f, arg.value):
            return
        if training_gated(f.node, call) or _value_gated(f, arg.value):
            return
        fix = None
        node = f.node
        if isinstance(node, cst.FunctionDef) and node.params.params and \
                node.params.params[0].name.value == "self":
            gated = cst.IfExp(
                test=cst.Attribute(value=cst.Name("self"), attr=cst.Name("training")),
                body=arg.value, orelse=cst.Float("0.0"))
            fix = FixSpec("safe", "switch dropout_p off outside training", old=arg.value, new=gated)
        ctx.report(call, (
            f"`dropout_p={ctx.code(arg.value)}` in `{f.key}` is applied whatever the module's mode: "
            "scaled_dot_product_attention does not know about model.eval(), so attention dropout "
            "stays on at evaluation and inference; pass "
            f"`dropout_p={ctx.code(arg.value)} if self.training else 0.0` (RC507)"), fix=fix)


_SDPA = "torch.nn.functional.scaled_dot_product_attention"
_DROPOUT_MODULES = {"torch.nn.Dropout", "torch.nn.Dropout1d", "torch.nn.Dropout2d", "torch.nn.Dropout3d",
                    "torch.nn.AlphaDropout", "torch.nn.FeatureAlphaDropout"}


def _always_zero(p, f, expr) -> bool:
    """The dropout probability is 0 in every possibility the code states (a literal, a name or
    config field bound to 0). A parameter's default is not enough: a caller elsewhere may pass
    another value."""
    if expr is None:
        return False
    if literal_number(expr) == 0.0:
        return True
    v = value_of(p, f, expr)
    return judge(v, lambda x: x == 0).verdict == ALL and not any(
        x.source.startswith("default of parameter") for x in v.possibilities)


def _sdpa_dropout_arg(call: cst.Call) -> cst.Arg | None:
    pos = 0
    for a in call.args:
        if a.keyword is not None:
            if a.keyword.value == "dropout_p":
                return a
        else:
            if pos == 4:
                return a
            pos += 1
    return None


def _gated_ifexp(v: cst.IfExp) -> bool:
    """`p if self.training else 0.0`, or the other way round, `0. if not self.training else p`."""
    return mentions_training(v.test, True) or (
        mentions_training(v.test, False) and literal_number(v.body) == 0.0)


def _value_gated(f, value: cst.BaseExpression) -> bool:
    """`self.p if self.training else 0.0`, directly or through a local variable whose every
    binding is gated that way (or made under `if self.training:`)."""
    if isinstance(value, cst.IfExp):
        return _gated_ifexp(value)
    if isinstance(value, cst.Name):
        binds = [a for a in f.assignments if a.target == value.value]
        if not binds:
            return False
        for a in binds:
            if isinstance(a.value, cst.IfExp) and _gated_ifexp(a.value):
                continue
            if literal_number(a.value) == 0.0:
                continue
            guards = guards_of(f.node, a.node) or []
            if any(mentions_training(g.test, g.positive) for g in guards):
                continue
            return False
        return True
    return False


def _with_training(call: cst.Call) -> cst.Call:
    args = list(call.args)
    new_arg = cst.Arg(
        value=cst.Attribute(value=cst.Name("self"), attr=cst.Name("training")),
        keyword=cst.Name("training"),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                              whitespace_after=cst.SimpleWhitespace("")),
    )
    last = args[-1] if args else None
    if last is not None and isinstance(last.comma, cst.Comma):
        # trailing comma (a multi-line call): the new argument takes over the layout
        sep = args[-2].comma if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma) else \
            cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        new_arg = new_arg.with_changes(comma=last.comma)
        args[-1] = last.with_changes(comma=sep)
    args.append(new_arg)
    return call.with_changes(args=args)
