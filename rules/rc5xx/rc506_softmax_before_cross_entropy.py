import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.program.layers import functional_kind, layer_analysis
from recipecheck.program.model import _Unpacked
from recipecheck.rule import Context, Rule

_CE = {"torch.nn.functional.cross_entropy", "torch.nn.CrossEntropyLoss"}
_BCE = {"torch.nn.functional.binary_cross_entropy_with_logits", "torch.nn.BCEWithLogitsLoss"}
_NLL = {"torch.nn.functional.nll_loss", "torch.nn.NLLLoss"}
_SHAPE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "permute",
                  "transpose", "float", "double", "to", "view_as", "reshape_as"}
_NOT_SQUASHED = ("not squashed",)
_PROB_MODULES = {"torch.nn.Softmax": "softmax", "torch.nn.LogSoftmax": "log_softmax",
                 "torch.nn.Sigmoid": "sigmoid", "torch.nn.modules.activation.Softmax": "softmax"}
_PROB_METHODS = {"softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid"}
_NOT_LOSSES = {"print", "len", "range", "isinstance", "getattr", "setattr", "enumerate", "zip",
               "min", "max", "sum", "float", "int", "str", "list", "dict", "tuple", "super"}


class SoftmaxBeforeCrossEntropy(Rule):
    """
    ## What it does
    Flags probabilities passed to a loss that expects logits: the input of
    `nn.CrossEntropyLoss` / `F.cross_entropy` went through `softmax` or `log_softmax`, or the
    input of `nn.BCEWithLogitsLoss` / `F.binary_cross_entropy_with_logits` went through
    `sigmoid`, or the input of `nn.NLLLoss` / `F.nll_loss` went through `softmax` instead of
    `log_softmax`. The squashing is found in the loss call itself
    (`F.cross_entropy(F.softmax(z, 1), y)`), in the variable it passes (`probs = z.softmax(1)`),
    or in the model: `criterion(model(x), y)` where the model's last layer is `nn.Softmax` /
    `nn.LogSoftmax` / `nn.Sigmoid` or its `forward()` returns `F.softmax(...)`. A project loss
    function or loss module that passes its first input, only reshaped or indexed, to one of
    these losses counts as that loss (`CrossEntropy2d()(F.log_softmax(pred, 1), y)`). A
    softmax module built on the spot counts (`m = nn.LogSoftmax(dim=1); pred = m(pred)`,
    `nn.Softmax(dim=1)(z)`). The finding is on the softmax/sigmoid, or, when another module's
    training helper applies the CrossEntropyLoss this file passes to the softmax model it also
    passes, on this file's call.

    ## Why is this bad?
    `CrossEntropyLoss` applies `log_softmax` itself. On probabilities in [0, 1] it
    computes a "double softmax": the loss can barely move (its inputs differ by at most 1),
    gradients shrink several-fold and vanish for confident predictions, and the model
    learns far more slowly or stalls. The same holds for a sigmoid before
    `BCEWithLogitsLoss`. `NLLLoss` on probabilities (softmax where log_softmax was meant)
    computes `-p[y]` instead of `-log p[y]`: the loss is bounded in [-1, 0], and its gradient
    for a confidently wrong prediction is tiny where the log-likelihood's is large, so
    learning is slow and calibration poor. (`log_softmax` before CrossEntropyLoss is
    redundant rather than harmful; use `nn.NLLLoss` on log-probabilities.)

    Measured (`recipecheck validate RC506`, seeds 0-4): gradient norm at initialization: 0.058
    [0.0503, 0.0663] with CE(softmax(z)) vs 0.329 [0.299, 0.413] with CE(z) (mean [min, max]);
    the claim held on 5 of 5 seeds.

    ## Known problems
    A model defined in another module is not followed. A forward() that returns
    probabilities only at evaluation (`if not self.training: return x.softmax(1)`) is
    correct and not reported.

    ## Example
    ```python
    criterion = nn.CrossEntropyLoss()
    loss = criterion(F.softmax(model(x), dim=1), y)
    ```

    ## Use instead
    ```python
    logits = model(x)
    loss = criterion(logits, y)
    probs = logits.softmax(dim=1)  # for reporting only
    ```
    Or keep `log_softmax` in the model and use `nn.NLLLoss`.

    ## Options
    None.

    ## Fix safety
    No automatic fix: the model's output is also used at inference, where probabilities may
    be wanted.

    ## References
    - PyTorch docs, `torch.nn.CrossEntropyLoss` ("The input is expected to contain the
      unnormalized logits for each class") and `torch.nn.BCEWithLogitsLoss`.
    - CS231n, "Linear classification: Softmax classifier".
    """

    CODE = "RC506"
    NAME = "softmax-before-cross-entropy"
    SEVERITY = Severity.ERROR
    MESSAGE = "probabilities are passed to a loss that expects logits (double softmax)"
    VALID = (
        # softmax only for reporting, after the loss
        "import torch.nn as nn\nimport torch.nn.functional as F\ncriterion = nn.CrossEntropyLoss()\n"
        "for x, y in loader:\n    logits = model(x)\n    loss = criterion(logits, y)\n"
        "    probs = F.softmax(logits, dim=1)\n    logits = logits.softmax(1)\n",
        # log_softmax + NLLLoss is the intended pairing
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(10, 3)\n"
        "    def forward(self, x):\n        return F.log_softmax(self.fc(x), dim=1)\n"
        "model = Net()\ncriterion = nn.NLLLoss()\nloss = criterion(model(x), y)\n"
        "loss2 = F.nll_loss(F.log_softmax(z, 1), y)\n",
        # the log of probabilities is a log-probability
        "import torch\nimport torch.nn as nn\n"
        "loss = nn.NLLLoss()(torch.log(torch.softmax(z, 1) + 1e-8), y)\n",
        # probabilities only at evaluation
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(10, 3)\n"
        "    def forward(self, x):\n        logits = self.fc(x)\n        if not self.training:\n"
        "            return F.softmax(logits, dim=1)\n        return logits\n"
        "model = Net()\nloss = F.cross_entropy(model(x), y)\n",
        # DCGAN: a sigmoid discriminator with BCELoss is correct
        "import torch.nn as nn\n"
        "netD = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1), nn.Sigmoid())\n"
        "criterion = nn.BCELoss()\nloss = criterion(netD(x).view(-1), labels)\n",
        # project loss helpers: one takes the log of its probabilities, one gets the logits
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
        "class ProbNLL(nn.Module):\n    def forward(self, probs, target):\n"
        "        return F.nll_loss(torch.log(probs.clamp_min(1e-8)), target)\n"
        "def pixel_ce(logits, target):\n    n, c = logits.shape[:2]\n"
        "    return F.cross_entropy(logits.permute(0, 2, 3, 1).reshape(-1, c), target.view(-1))\n"
        "def losses(z, y):\n    probs = F.softmax(z, dim=1)\n"
        "    return ProbNLL()(probs, y) + pixel_ce(z, y)\n",
        # a two-headed model: log-probabilities into NLLLoss, probabilities only reported
        "import torch.nn as nn\n"
        "class D(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(10, 3)\n        self.log_softmax = nn.LogSoftmax(dim=1)\n"
        "        self.softmax = nn.Softmax(dim=1)\n"
        "    def forward(self, x):\n        h = self.fc(x)\n"
        "        return self.log_softmax(h), self.softmax(h)\n"
        "netD = D()\ncrit = nn.NLLLoss()\nfor x, y in loader:\n"
        "    logp, probs = netD(x)\n    loss = crit(logp, y)\n",
        # (logits, probabilities): the logits element goes into CrossEntropyLoss
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(10, 3)\n"
        "    def forward(self, x):\n        logits = self.fc(x)\n"
        "        return logits, F.softmax(logits, dim=1)\n"
        "model = Net()\nfor x, y in loader:\n    logits, probs = model(x)\n"
        "    loss = F.cross_entropy(logits, y)\n",
        # a helper returning (validity, logits): the logits go into cross_entropy
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
        "shared = nn.Sequential(nn.Linear(784, 128), nn.PReLU())\n"
        "gan = nn.Sequential(nn.Linear(128, 1), nn.Sigmoid())\naux = nn.Linear(128, 10)\n"
        "def D(X):\n    h = shared(X)\n    return gan(h), aux(h)\n"
        "for X, y in loader:\n    d_real, c_real = D(X)\n    loss = F.cross_entropy(c_real, y)\n",
    )
    INVALID = (
        # the same helper whose class head ends in Softmax
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
        "shared = nn.Sequential(nn.Linear(784, 128), nn.PReLU())\n"
        "gan = nn.Sequential(nn.Linear(128, 1), nn.Sigmoid())\n"
        "aux = nn.Sequential(nn.Linear(128, 10), nn.Softmax(dim=1))  # expect: RC506\n"
        "def D(X):\n    h = shared(X)\n    return gan(h), aux(h)\n"
        "for X, y in loader:\n    d_real, c_real = D(X)\n    loss = F.cross_entropy(c_real, y)\n",
        # ACGAN: the class head of a (real/fake, classes) discriminator ends in Softmax
        "import torch.nn as nn\n"
        "class D(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc_dis = nn.Linear(10, 1)\n        self.fc_aux = nn.Linear(10, 3)\n"
        "        self.softmax = nn.Softmax(dim=1)\n        self.sigmoid = nn.Sigmoid()\n"
        "    def forward(self, x):\n        realfake = self.sigmoid(self.fc_dis(x)).view(-1)\n"
        "        classes = self.softmax(self.fc_aux(x))  # expect: RC506\n"
        "        return realfake, classes\n"
        "netD = D()\naux = nn.NLLLoss()\nfor x, y in loader:\n"
        "    dis_out, aux_out = netD(x)\n    loss = aux(aux_out, y)\n",
        "import torch.nn.functional as F\n"
        "loss = F.cross_entropy(F.softmax(logits, dim=1), y)  # expect: RC506\n",
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10),\n"
        "                      nn.Softmax(dim=1))  # expect: RC506\n"
        "criterion = nn.CrossEntropyLoss()\nfor x, y in loader:\n"
        "    out = model(x)\n    loss = criterion(out, y)\n",
        "import torch\nimport torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(10, 1)\n"
        "    def forward(self, x):\n        return torch.sigmoid(self.fc(x)).squeeze(1)  # expect: RC506\n"
        "def train(model, loader, criterion):\n    for x, y in loader:\n"
        "        loss = criterion(model(x), y)\n        loss.backward()\n"
        "train(Net(), loader, nn.BCEWithLogitsLoss())\n",
        "import torch.nn as nn\ncriterion = nn.CrossEntropyLoss()\nfor x, y in loader:\n"
        "    probs = model(x).softmax(dim=-1)  # expect: RC506\n    loss = criterion(probs, y)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(10, 3)\n"
        "    def forward(self, x):\n        return F.softmax(self.fc(x), dim=1)  # expect: RC506\n"
        "model = Net()\nfor x, y in loader:\n    loss = F.nll_loss(model(x), y)\n",
        "import torch\nimport torch.nn as nn\ncriterion = nn.NLLLoss()\n"
        "out = criterion(torch.softmax(logits, -1), y)  # expect: RC506\n"
        "bce = nn.BCEWithLogitsLoss()(torch.sigmoid(z), t)  # expect: RC506\n",
        # the probabilities bound in the statement just above the loss
        "import torch.nn.functional as F\n"
        "def step(z, y):\n    probs = F.softmax(z, dim=1)  # expect: RC506\n"
        "    return F.cross_entropy(probs, y)\n",
        # a project loss module that reshapes its input and hands it to F.cross_entropy
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class PixelCE(nn.Module):\n    def forward(self, predict, target):\n"
        "        n, c, h, w = predict.size()\n"
        "        predict = predict.permute(0, 2, 3, 1).contiguous().view(-1, c)\n"
        "        return F.cross_entropy(predict, target.view(-1))\n"
        "def loss_calc(pred, label):\n    criterion = PixelCE()\n"
        "    pred = F.log_softmax(pred, dim=1)  # expect: RC506\n    return criterion(pred, label)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        la = None
        wrappers: dict[int, str | None] = {}
        for cs in p.calls:
            kind = self._loss_kind(p, cs)
            if kind is None:
                kind = self._wrapper_kind(p, cs, wrappers)
            if kind is None:
                continue
            arg = _first_arg(cs.node)
            if arg is None:
                continue
            if la is None:
                la = layer_analysis(p)
            got = self._squashed(p, la, cs.function, arg, cs.order, 0)
            if got is None:
                continue
            node, squash, label = got
            if kind == "ce" and squash == "softmax":
                loss, why, fix = ("CrossEntropyLoss", "CrossEntropyLoss applies log_softmax itself: on "
                                  "probabilities the loss barely moves and gradients shrink (double softmax)",
                                  "pass the raw logits")
            elif kind == "ce" and squash == "log_softmax":
                loss, why, fix = ("CrossEntropyLoss", "CrossEntropyLoss applies log_softmax itself, so it "
                                  "runs twice", "pass the raw logits, or keep log_softmax and use NLLLoss")
            elif kind == "bce" and squash == "sigmoid":
                loss, why, fix = ("BCEWithLogitsLoss", "BCEWithLogitsLoss applies the sigmoid itself: a second "
                                  "sigmoid squashes the logits into [0, 1] and gradients vanish",
                                  "pass the raw logits")
            elif kind == "nll" and squash == "softmax":
                loss, why, fix = ("NLLLoss", "NLLLoss expects log-probabilities and only negates the "
                                  "picked entry: on probabilities it maximizes p instead of log p, whose "
                                  "gradient vanishes for wrong confident predictions",
                                  "use log_softmax (or pass the logits to CrossEntropyLoss)")
            else:
                continue
            ctx.report(node, (
                f"{label} turns the logits into probabilities before {loss} "
                f"(`{ctx.code(cs.node)}`): {why}; {fix} (RC506)"))
        self._check_foreign_helpers(ctx, la, wrappers)

    def _check_foreign_helpers(self, ctx: Context, la, wrappers) -> None:
        """`train_one_epoch(model, criterion, ...)` of another module computes
        `criterion(model(x), y)` with the model and loss this file passes in: the finding goes on
        this file's call (the helper's module cannot see what it is given). Each call is judged
        by its own arguments."""
        from recipecheck.program.nodes import bind_arguments

        p = ctx.program
        if "cross_entropy" not in ctx.source and "CrossEntropyLoss" not in ctx.source:
            return  # this file builds or names no cross-entropy loss: nothing to hand over
        own = {id(fn) for fn in p.functions.values()}
        for cs in p.calls:
            if id(cs.function) not in own or len(cs.node.args) < 2:
                continue
            try:
                callees = p._callees_of(cs.function, cs.node)
            except Exception:  # the callee search is best effort
                continue
            if len(callees) != 1 or id(callees[0]) in own:
                continue
            g = callees[0]
            prog = getattr(g, "program", None)
            if prog is None or prog is p or not isinstance(g.node, cst.FunctionDef):
                continue
            bound = dict(bind_arguments(cs.node, g.params, g.cls is not None))
            for inner in prog.calls:
                if inner.function is not g or not isinstance(inner.node.func, cst.Name):
                    continue
                loss = bound.get(inner.node.func.value)
                if loss is None or not any(o.qualname in _CE for o in p.evaluate(cs.function, loss)):
                    continue
                out = _param_call(g, _first_arg(inner.node), inner.order)
                model = bound.get(out) if out else None
                if model is None:
                    continue
                if la is None:
                    la = layer_analysis(p)
                unit = la.model_of_call(cst.Call(func=model), cs.function)
                last = unit.last_op() if unit is not None else None
                if last is None or last.kind not in ("softmax", "log_softmax") or last.conditional:
                    continue
                what = "probabilities" if last.kind == "softmax" else "log-probabilities"
                ctx.report(cs.node, (
                    f"`{ctx.code(cs.node)}` hands {g.name}() (another module) `{ctx.code(model)}`, "
                    f"whose last layer is {last.describe()}, and a CrossEntropyLoss that it applies "
                    f"to the model's output (`{prog.module.code_for_node(inner.node)}`): the loss gets "
                    f"{what} and applies log_softmax again (double softmax); return the raw logits "
                    "from the model (RC506)"))
                break

    @staticmethod
    def _loss_kind(p, cs) -> str | None:
        q = cs.qualname
        if q is None and isinstance(cs.node.func, cst.Call):
            q = p.imports.resolve(cs.node.func.func)
        elif q is None and cs.dotted and len(cs.node.args) >= 2 and cs.dotted not in _NOT_LOSSES and \
                (cs.dotted.count(".") == 0 or (cs.dotted.startswith("self.") and cs.dotted.count(".") == 1)):
            objs = p.evaluate_dotted(cs.function, cs.dotted)
            quals = {o.qualname for o in objs}
            if len(quals) == 1:
                q = quals.pop()
        if q in _CE:
            return "ce"
        if q in _BCE:
            return "bce"
        if q in _NLL:
            return "nll"
        return None

    def _wrapper_kind(self, p, cs, memo) -> str | None:
        """The loss kind of a project function or loss module (`loss_calc(pred, y)`,
        `criterion = CrossEntropy2d(); criterion(pred, y)`) that hands its first input, only
        reshaped or indexed, to a logits loss."""
        if len(cs.node.args) < 2 or not cs.dotted or cs.dotted in _NOT_LOSSES or cs.qualname is not None:
            return None
        fns = []
        try:
            fns = p._callees_of(cs.function, cs.node)
        except Exception:  # the callee search is best effort
            fns = []
        if not fns and cs.dotted.count(".") == 0 or (cs.dotted.startswith("self.") and cs.dotted.count(".") == 1):
            for c in p.evaluate_dotted(cs.function, cs.dotted):
                cls = p.classes.get(c.qualname[6:]) if c.qualname.startswith("local:") else None
                m = p.class_method(cls, "forward") if cls is not None and cls.is_module else None
                if m is not None:
                    fns.append(m)
        if len(fns) != 1:
            return None
        w = fns[0]
        if id(w) in memo:
            return memo[id(w)]
        memo[id(w)] = None
        params = [q for q in w.params if q not in ("self", "cls")]
        if not params:
            return None
        for inner in p.calls:
            if inner.function is not w:
                continue
            kind = self._loss_kind(p, inner)
            if kind is None:
                continue
            arg = _first_arg(inner.node)
            if arg is not None and _reaches_param(w, arg, params[0], inner.order, 0):
                memo[id(w)] = kind
                return kind
        return None

    def _squashed(self, p, la, f, expr, order, depth):
        """(node, kind, label) of a softmax/log_softmax/sigmoid that `expr` ends with."""
        if depth > 4 or expr is None:
            return None
        if isinstance(expr, cst.Subscript):
            return self._squashed(p, la, f, expr.value, order, depth + 1)
        if isinstance(expr, cst.Name):
            # a call site carries the order of the last event before it, which an assignment in
            # the statement just above takes too: `<=` keeps `p = F.softmax(z, 1); ce(p, y)`
            binds = [a for a in f.assignments if a.target == expr.value and a.augmented is None
                     and a.order <= order]
            if not binds:
                return None
            a = max(binds, key=lambda a: a.order)
            v = a.value
            if isinstance(v, _Unpacked):
                got = self._tuple_element(p, la, f, v, depth)
                if got is not None or v.index != 0:
                    return None if got is _NOT_SQUASHED else got
                v = v.value
            # the calls inside the bound value come before the binding: order - 1
            return self._squashed(p, la, f, v, a.order - 1, depth + 1)
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        q = p.imports.resolve(func)
        if q is not None:
            kind = functional_kind(q)
            if kind in ("softmax", "log_softmax", "sigmoid"):
                return expr, kind, f"`{dotted_name(func) or kind}`"
            if kind == "shape" and expr.args:
                return self._squashed(p, la, f, expr.args[0].value, order, depth + 1)
            return None
        if isinstance(func, cst.Call) and (q := p.imports.resolve(func.func)) in _PROB_MODULES:
            return expr, _PROB_MODULES[q], f"`{q.rsplit('.', 1)[-1]}`"  # `nn.Softmax(dim=1)(z)`
        if isinstance(func, cst.Name):
            # `m = nn.LogSoftmax(dim=1)` earlier in the function, then `m(pred)`
            quals = {o.qualname for o in p.evaluate_dotted(f, func.value)}
            if len(quals) == 1 and (q := quals.pop()) in _PROB_MODULES:
                return expr, _PROB_MODULES[q], f"`{func.value}` ({q.rsplit('.', 1)[-1]})"
        if isinstance(func, cst.Attribute):
            meth = func.attr.value
            if isinstance(func.value, cst.Name) and func.value.value == "self":
                # `self.softmax(h)`: the layer the attribute holds decides, not its name
                quals = {o.qualname for o in p.evaluate_dotted(f, dotted_name(func))}
                if len(quals) == 1 and (q := quals.pop()) in _PROB_MODULES:
                    return expr, _PROB_MODULES[q], f"`{dotted_name(func)}` ({q.rsplit('.', 1)[-1]})"
                if quals:
                    return None
            if meth in _PROB_METHODS:
                return expr, _PROB_METHODS[meth], f"`.{meth}()`"
            if meth in _SHAPE_METHODS:
                return self._squashed(p, la, f, func.value, order, depth + 1)
        unit = la.model_of_call(expr, f)
        if unit is None:
            return None
        last = unit.last_op()
        if last is not None and last.kind in ("softmax", "log_softmax", "sigmoid") and not last.conditional:
            if unit.name in getattr(p, "foreign_classes", ()):  # the class is in another module:
                return expr, last.kind, (f"{last.describe()}, the last layer of `{unit.name}` "
                                         "(defined in another module),")  # report the call here
            return last.node, last.kind, f"{last.describe()}, the last layer of `{unit.name}`,"
        return None


    def _tuple_element(self, p, la, f, v, depth):
        """`a, probs = model(x)`: element `index` of the tuple the model's forward returns,
        when forward has exactly one return, a tuple literal, and that element is squashed."""
        if not isinstance(v.value, cst.Call):
            return None
        unit = la.model_of_call(v.value, f)
        cls = p.classes.get(unit.name) if unit is not None else None
        fwd = p.class_method(cls, "forward") if cls is not None else None
        owner = unit.name if unit is not None else None
        if fwd is None and unit is None and isinstance(v.value.func, cst.Name):
            # a module-level helper of this file: `def D(X): h = shared(X); return gan(h), aux(h)`
            fwd = p.functions.get(v.value.func.value)
            owner = v.value.func.value
            if fwd is None or fwd.cls is not None or not isinstance(fwd.node, cst.FunctionDef):
                return None
        if fwd is None or owner in getattr(p, "foreign_classes", ()):
            return None
        rets = _returns(fwd.node)
        if len(rets) != 1 or not isinstance(rets[0].value, cst.Tuple):
            return None
        elems = rets[0].value.elements
        if v.index >= len(elems) or any(isinstance(e, cst.StarredElement) for e in elems):
            return None
        got = self._squashed(p, la, fwd, elems[v.index].value, 10**9, depth + 1)
        if got is None:
            return _NOT_SQUASHED  # the element is known: the model's last layer says nothing of it
        node, kind, label = got
        return node, kind, f"{label.rstrip(',')}, output {v.index} of `{owner}`,"


def _returns(fn: cst.CSTNode) -> list:
    """The return statements of a function, not of the functions nested in it."""
    out: list = []
    todo = list(fn.body.children) if hasattr(fn, "body") else []
    while todo:
        n = todo.pop()
        if isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(n, cst.Return):
            out.append(n)
        todo.extend(n.children)
    return out


def _first_arg(call: cst.Call):
    for a in call.args:
        if a.keyword is None and not a.star:
            return a.value
        if a.keyword is not None and a.keyword.value == "input":
            return a.value
    return None


def _reaches_param(f, expr, param: str, order: int, depth: int) -> bool:
    """`expr` is the parameter `param` of `f`, at most reshaped, indexed or cast."""
    if depth > 8 or expr is None:
        return False
    if isinstance(expr, cst.Subscript):
        return _reaches_param(f, expr.value, param, order, depth + 1)
    if isinstance(expr, cst.Name):
        binds = [a for a in f.assignments if a.target == expr.value and a.augmented is None and a.order <= order]
        if not binds:
            return expr.value == param
        a = max(binds, key=lambda a: a.order)
        if isinstance(a.value, _Unpacked):
            return False
        return _reaches_param(f, a.value, param, a.order - 1, depth + 1)
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
            expr.func.attr.value in _SHAPE_METHODS:
        return _reaches_param(f, expr.func.value, param, order, depth + 1)
    return False


def _param_call(f, expr, order: int, depth: int = 0) -> str | None:
    """The parameter of `f` whose call `expr` is (`model(x)`, or a name bound to it)."""
    if expr is None or depth > 4:
        return None
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value in f.params:
        return expr.func.value
    if isinstance(expr, cst.Name):
        binds = [a for a in f.assignments if a.target == expr.value and a.augmented is None and a.order <= order]
        if binds:
            a = max(binds, key=lambda a: a.order)
            if isinstance(a.value, cst.CSTNode):
                return _param_call(f, a.value, a.order - 1, depth + 1)
    return None
