import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.hparams import is_hparam_name, is_lr_or_wd_name
from recipecheck.program.values import number_of as number
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule

_LINEAR = {"numpy.linspace", "torch.linspace", "numpy.arange", "torch.arange", "jax.numpy.linspace"}
_UNIFORM = {"numpy.random.uniform", "random.uniform", "torch.distributions.Uniform"}
_GRID = {"itertools.product", "sklearn.model_selection.ParameterGrid"}


def _targets(loop) -> list[str]:
    t = loop.node.target if isinstance(loop.node, cst.For) else None
    if t is None:
        return []
    if isinstance(t, (cst.Tuple, cst.List)):
        return [dotted_name(e.value) or "" for e in t.elements]
    return [dotted_name(t) or ""]


def _trains(p, loop) -> bool:
    """The loop is not itself a training loop (runs no backward directly)."""
    return not any(getattr(i, "kind", None) == "backward" for i in loop.items)


class GridOrLinearHparamSearch(Rule):
    """
    ## What it does
    Reports hyperparameter searches that waste trials: a grid (`itertools.product` over value
    lists, `sklearn`'s `ParameterGrid`, nested `for lr in ...: for wd in ...:` loops over value
    lists), or a learning rate / weight decay taken from a linear range (`np.linspace`,
    `torch.arange`, `[0.001 * i for i in range(...)]`, `np.random.uniform(1e-5, 1e-1)`).
    `np.logspace`, `10 ** np.random.uniform(-5, -1)` and single loops over log-spaced lists
    are fine.

    ## Why is this bad?
    With a grid, most trials repeat the same values of the hyperparameters that matter, so the
    important one is explored at only a few values; random search covers each dimension with
    every trial (Bergstra and Bengio, 2012). Learning rate and weight decay act
    multiplicatively: a linear range from 1e-5 to 1e-1 puts 90% of its points in the top
    decade and almost none where small values live. Sample them log-uniformly.

    Measured (`recipecheck validate RC706`, seeds 0-4): best validation loss of 9 trials (lr in
    [1e-3, 1], wd in [1e-6, 1e-2]): 0.862 [0.497, 1.16] with 3x3 log grid vs 0.912 [0.468, 1.22]
    with 9 random log-uniform trials (mean [min, max]); the claim held on 2 of 5 seeds.

    ## Known problems
    Searches driven by a config file or a tuning library are not seen. Off by default (info).

    ## Example
    ```python
    for lr, wd in itertools.product([1e-4, 1e-3, 1e-2], [0, 1e-4, 1e-3]):
        train(lr=lr, weight_decay=wd)
    lrs = np.linspace(1e-5, 1e-1, 20)
    ```

    ## Use instead
    ```python
    for trial in range(20):
        lr = 10 ** np.random.uniform(-5, -1)
        wd = 10 ** np.random.uniform(-6, -2)
        train(lr=lr, weight_decay=wd)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Bergstra and Bengio (2012), "Random Search for Hyper-Parameter Optimization", JMLR.
    - Bengio (2012), "Practical recommendations for gradient-based training of deep architectures" (log scale for the learning rate).
    - CS231n notes, "Hyperparameter optimization" (search in log space, random over grid).
    """

    CODE = "RC706"
    NAME = "grid-or-linear-hparam-search"
    SEVERITY = Severity.INFO
    MESSAGE = "hyperparameter grid or linear range: prefer random log-uniform search"
    VALID = (
        "import numpy as np\nfor trial in range(20):\n    lr = 10 ** np.random.uniform(-5, -1)\n"
        "    train(lr=lr)\n",
        "import numpy as np\nfor lr in np.logspace(-5, -1, 9):\n    train(lr=lr)\n",
        "for lr in [1e-4, 3e-4, 1e-3]:\n    train(lr=lr)\n",
        "for i in range(-5, 0):\n    lr = 10 ** i\n    train(lr=lr)\n",
        "import itertools\nfor i, j in itertools.product(range(h), range(w)):\n    img[i, j] = 0\n",
        "import numpy as np\nwarmup = np.linspace(0, 1e-3, 100)\n",
    )
    INVALID = (
        "import itertools\nfor lr, wd in itertools.product([1e-4, 1e-3, 1e-2], [0, 1e-4]):  # expect: RC706\n"
        "    train(lr=lr, weight_decay=wd)\n",
        "import numpy as np\nlrs = np.linspace(1e-5, 1e-1, 20)  # expect: RC706\nfor lr in lrs:\n    train(lr=lr)\n",
        "for lr in [0.1, 0.01]:  # expect: RC706\n    for wd in [1e-4, 5e-4]:\n        train(lr, wd)\n",
        "import numpy as np\nfor trial in range(20):\n    lr = np.random.uniform(1e-5, 1e-1)  # expect: RC706\n"
        "    train(lr=lr)\n",
        "for i in range(1, 11):\n    lr = 0.01 * i  # expect: RC706\n    train(lr=lr)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        reported: set[int] = set()

        def report(node, msg):
            if id(node) not in reported:
                reported.add(id(node))
                ctx.report(node, msg)

        loops = [loop for f in p.functions.values() for loop in f.loops]
        iter_of = {}
        for loop in loops:
            if loop.iter is not None:
                stack = [loop.iter]
                while stack:
                    n = stack.pop()
                    if isinstance(n, cst.Call):
                        iter_of[id(n)] = loop
                        stack += [a.value for a in n.args]
        # grids through itertools.product / ParameterGrid
        for cs in p.calls:
            if cs.qualname not in _GRID:
                continue
            loop = iter_of.get(id(cs.node))
            names = [dotted_name(a.value) for a in cs.node.args]
            hparam = any(is_hparam_name(n) for n in names if n) or \
                (loop is not None and any(is_hparam_name(t) for t in _targets(loop))) or \
                cs.qualname.endswith("ParameterGrid")
            if hparam and len(cs.node.args) >= (1 if cs.qualname.endswith("ParameterGrid") else 2) or \
                    (hparam and any(a.star for a in cs.node.args)):
                report(cs.node, (
                    f"`{ctx.code(cs.node)}` searches hyperparameters on a grid: each important value is "
                    "tried only a few times; sample the trials at random, log-uniformly for lr and weight "
                    "decay (RC706)"))
        # nested loops over hyperparameter value lists
        for loop in loops:
            if not self._value_loop(p, loop) or not _trains(p, loop):
                continue
            outer = loop.parent
            while outer is not None and not self._value_loop(p, outer):
                outer = outer.parent
            if outer is None:
                continue
            while outer.parent is not None and self._value_loop(p, outer.parent):
                outer = outer.parent
            report(outer.node.iter, (
                f"nested loops over hyperparameter values (`{ctx.code(outer.node.target)}`, "
                f"`{ctx.code(loop.node.target)}`) form a grid search: each important value is tried "
                "only a few times; sample the trials at random, log-uniformly (RC706)"))
        # linear ranges for lr / weight decay
        for cs in p.calls:
            if cs.qualname not in _LINEAR and cs.qualname not in _UNIFORM:
                continue
            target = self._bound_name(p, cs, iter_of)
            if not is_lr_or_wd_name(target):
                continue
            if cs.qualname in _UNIFORM:
                if not self._spans_decade(p, cs):
                    continue
                if self._under_power(p, cs):
                    continue
            else:
                if not self._used_as_search(p, cs, target, iter_of, loops):
                    continue
            kind = "uniformly" if cs.qualname in _UNIFORM else "from a linear range"
            report(cs.node, (
                f"`{target}` is drawn {kind} (`{ctx.code(cs.node)}`): most values land in the top decade; "
                "the learning rate and weight decay act on a log scale, use np.logspace or "
                "10 ** uniform(low, high) (RC706)"))
        # for i in range(1, 10): lr = 1e-3 * i
        for a in p.assignments:
            loop = a.loop
            if a.augmented is not None or not is_lr_or_wd_name(a.target) or loop is None or \
                    not isinstance(loop.node, cst.For) or not isinstance(loop.iter, cst.Call) or \
                    dotted_name(loop.iter.func) != "range" or not _trains(p, loop):
                continue
            var = dotted_name(loop.node.target)
            v = a.value
            if var and isinstance(v, cst.BinaryOperation) and \
                    isinstance(v.operator, (cst.Multiply, cst.Divide, cst.Add)) and \
                    any(isinstance(x, cst.Name) and x.value == var for x in (v.left, v.right)) and \
                    any(isinstance(x, (cst.Float, cst.Integer)) for x in (v.left, v.right)):
                report(a.node, (
                    f"`{ctx.code(a.node)}` steps `{a.target}` linearly over range(): most trials land "
                    "in the top decade; the learning rate and weight decay act on a log scale, use "
                    "10 ** uniform(low, high) or np.logspace (RC706)"))
        # [c * i for i in range(...)] bound to lrs
        for a in p.assignments:
            if a.augmented is None and is_lr_or_wd_name(a.target) and \
                    isinstance(a.value, (cst.ListComp, cst.GeneratorExp)) and self._linear_comp(a.value):
                report(a.node, (
                    f"`{a.target}` is a linear range of values: most of them land in the top decade; "
                    "the learning rate and weight decay act on a log scale, use np.logspace or "
                    "10 ** uniform(low, high) (RC706)"))

    @staticmethod
    def _linear_comp(comp) -> bool:
        fors = comp.for_in
        if not isinstance(fors.iter, cst.Call) or dotted_name(fors.iter.func) != "range":
            return False
        var = dotted_name(fors.target)
        elt = comp.elt
        if isinstance(elt, cst.BinaryOperation) and isinstance(elt.operator, (cst.Multiply, cst.Divide, cst.Add)):
            sides = (elt.left, elt.right)
            return any(isinstance(s, cst.Name) and s.value == var for s in sides) and \
                any(isinstance(s, (cst.Float, cst.Integer)) for s in sides)
        return False

    @staticmethod
    def _value_loop(p, loop) -> bool:
        if not isinstance(loop.node, cst.For) or not any(is_hparam_name(t) for t in _targets(loop)):
            return False
        it = loop.iter
        if isinstance(it, cst.Name):
            binds = loop.function.bindings(it.value) or p.module_function.bindings(it.value)
            if not binds:
                return is_hparam_name(it.value)
            it = binds[-1].value
        if isinstance(it, (cst.List, cst.Tuple)):
            return len(it.elements) >= 2
        if isinstance(it, cst.Call):
            q = p.imports.resolve(it.func) or ""
            return q in _LINEAR or q in ("numpy.logspace", "torch.logspace", "numpy.geomspace")
        return False

    @staticmethod
    def _bound_name(p, cs, iter_of) -> str | None:
        loop = iter_of.get(id(cs.node))
        if loop is not None:
            ts = _targets(loop)
            return next((t for t in ts if is_lr_or_wd_name(t)), ts[0] if ts else None)
        for a in cs.function.assignments:
            if a.value is cs.node:
                return a.target
        return None

    @staticmethod
    def _used_as_search(p, cs, target, iter_of, loops) -> bool:
        loop = iter_of.get(id(cs.node))
        if loop is not None:
            return _trains(p, loop)
        leaf = target.rsplit(".", 1)[-1]
        for lp in loops:
            if lp.iter is None:
                continue
            if leaf in {dotted_name(n) for n in [lp.iter, *(a.value for a in getattr(lp.iter, "args", ()))]}:
                return _trains(p, lp)
        return False

    @staticmethod
    def _spans_decade(p, cs) -> bool:
        args = [a.value for a in cs.node.args[:2]]
        if len(args) < 2:
            return False
        lo, hi = number(p, cs.function, args[0]), number(p, cs.function, args[1])
        return lo is not None and hi is not None and lo > 0 and hi / lo >= 10

    @staticmethod
    def _under_power(p, cs) -> bool:
        for a in cs.function.assignments:
            v = a.value
            if isinstance(v, cst.BinaryOperation) and isinstance(v.operator, cst.Power) and v.right is cs.node:
                return True
        return False
